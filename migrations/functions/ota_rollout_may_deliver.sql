-- Whether a heartbeat may send the first manifest of an assignment of rollout p_rollout: only while the rollout
-- runs, and within its pacing budget. With p_take the budget is spent (and the pacing row locked until the
-- heartbeat commits); without, it is only looked at (the heartbeat's read-only first pass).
CREATE OR REPLACE FUNCTION ota_rollout_may_deliver(p_rollout uuid, p_take boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT status, max_per_minute INTO r FROM rollouts WHERE id = p_rollout;
    IF r.status IS DISTINCT FROM 'running' THEN
        RETURN false;
    END IF;
    IF r.max_per_minute IS NULL THEN
        RETURN true;
    END IF;
    RETURN ota_rollout_pacing_take(p_rollout, r.max_per_minute, p_take);
END $$;
