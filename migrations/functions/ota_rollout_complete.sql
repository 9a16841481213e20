-- A running rollout is completed when every wave is open and every target has finished: applied, failed with no
-- retry left, rolled back, skipped or canceled (none waiting, blocked, pending or delivered).
CREATE OR REPLACE FUNCTION ota_rollout_complete(r rollouts) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF r.current_wave < cardinality(r.waves) OR EXISTS (
        SELECT 1 FROM rollout_counts WHERE rollout_id = r.id
        AND state IN ('waiting', 'blocked', 'pending', 'delivered') GROUP BY state HAVING sum(n) <> 0) THEN
        RETURN false;
    END IF;
    UPDATE rollouts SET status = 'completed', finished_at = now(), settled = true
        WHERE id = r.id AND status = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM ota_rollout_event(r.id, 'completed', 'completed', r.current_wave, NULL);
    RETURN true;
END $$;
