-- Withdrawing a release pauses its running rollouts (paused_reason 'release_withdrawn'); the engine then cancels
-- their pending assignments like any pause. The trigger is made here, with its function.
CREATE OR REPLACE FUNCTION ota_release_withdrawn() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    paused record;
BEGIN
    IF NEW.status <> 'withdrawn' OR OLD.status = 'withdrawn' THEN
        RETURN NEW;
    END IF;
    FOR paused IN
        UPDATE rollouts SET status = 'paused', paused_reason = 'release_withdrawn', settled = false
        WHERE release_id = NEW.id AND status = 'running' RETURNING id, current_wave
    LOOP
        PERFORM ota_rollout_event(paused.id, 'paused', 'paused', paused.current_wave, 'release_withdrawn');
    END LOOP;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER releases_withdrawn
    AFTER UPDATE OF status ON releases
    FOR EACH ROW EXECUTE FUNCTION ota_release_withdrawn();
