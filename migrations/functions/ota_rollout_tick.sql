-- One tick of the rollout engine of one server instance: visits the rollouts that have work (running, or with
-- assignments to take back) in random order, and steps the first one that no other instance is stepping
-- (a transaction-scoped advisory lock per rollout: instances share the work and none double-acts) and that
-- has something to do. One rollout per call keeps each transaction short; the caller calls again at once while
-- work is returned. Returns the work done (0: nothing to do anywhere).
CREATE OR REPLACE FUNCTION ota_rollout_tick(p_batch integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    id uuid;
    done integer;
BEGIN
    FOR id IN SELECT r.id FROM rollouts r WHERE r.status = 'running' OR NOT r.settled ORDER BY random() LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(ota_rollout_lock_key(id));
        done := ota_rollout_step(id, p_batch);
        IF done > 0 THEN
            RETURN done;
        END IF;
    END LOOP;
    RETURN 0;
END $$;
