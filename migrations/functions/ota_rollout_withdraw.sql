-- The assignments a paused or canceled rollout must take back, one batch at a time: a paused rollout's pending
-- ones (reason 'rollout_paused'; its delivered ones run on), a canceled rollout's pending and delivered ones
-- (reason 'rollout_canceled'). Devices another transaction holds are tried again next time. When nothing is
-- left the rollout is marked settled and the engine stops visiting it. Returns how many it canceled.
CREATE OR REPLACE FUNCTION ota_rollout_withdraw(r rollouts, p_batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    taken text[] := CASE WHEN r.status = 'canceled' THEN ARRAY['pending', 'delivered'] ELSE ARRAY['pending'] END;
    why text := CASE WHEN r.status = 'canceled' THEN 'rollout_canceled' ELSE 'rollout_paused' END;
    a record;
    n integer := 0;
BEGIN
    FOR a IN
        SELECT s.id, s.device_id FROM assignments s
        WHERE s.id IN (SELECT assignment_id FROM rollout_targets
                       WHERE rollout_id = r.id AND state = ANY (taken) LIMIT p_batch)
    LOOP
        PERFORM 1 FROM devices WHERE id = a.device_id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        UPDATE assignments SET status = 'canceled', reason = why, finished_at = now()
            WHERE id = a.id AND status = ANY (taken);
        n := n + 1;
    END LOOP;
    IF n = 0 AND NOT EXISTS (SELECT 1 FROM rollout_targets WHERE rollout_id = r.id AND state = ANY (taken)) THEN
        UPDATE rollouts SET settled = true WHERE id = r.id;
    END IF;
    RETURN n;
END $$;
