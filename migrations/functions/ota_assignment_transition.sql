-- Records a transition, mirrors it on the device (and on its rollout target, for a rollout's assignment), refuses
-- illegal ones, and tells listeners (GET /v1/events).
-- The trigger is made here, with its function, because the numbered migrations run before any function exists.
CREATE OR REPLACE FUNCTION ota_assignment_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status = OLD.status THEN
            RETURN NEW;
        END IF;
        -- failed, canceled and rolled_back are final; applied is final but for a rollback, which nothing else
        -- may reach. The verify window that ends a rollback's chance is the server's setting, so the heartbeat
        -- keeps it (ota_rollback_check), not this trigger.
        IF OLD.status IN ('failed', 'canceled', 'rolled_back') OR NEW.status = 'pending'
           OR (OLD.status = 'applied') <> (NEW.status = 'rolled_back') THEN
            RAISE EXCEPTION 'illegal assignment transition % -> %', OLD.status, NEW.status
                USING ERRCODE = 'P0001', HINT = 'invalid_transition';
        END IF;
    END IF;
    INSERT INTO assignment_events (assignment_id, device_id, from_status, to_status, reason)
    VALUES (NEW.id, NEW.device_id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status, NEW.reason);
    UPDATE devices SET ota_status = NEW.status WHERE id = NEW.device_id;
    IF NEW.rollout_id IS NOT NULL THEN
        PERFORM ota_rollout_follow(NEW);
    END IF;
    PERFORM pg_notify('ota_events', NEW.id::text);
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER assignments_transition
    AFTER INSERT OR UPDATE OF status ON assignments
    FOR EACH ROW EXECUTE FUNCTION ota_assignment_transition();
