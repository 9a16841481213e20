-- The failure gate: a running rollout whose failures (targets failed with no retry left, or rolled back) reach
-- min_failures and are more than max_percent % of its finished targets (applied + those failures) pauses itself
-- (paused_reason 'failure_threshold'). Returns true when this call paused it.
-- The gate is checked at every outcome: by the transition that makes a failure, and (p_engine) by every engine
-- step too, which sees the failures of concurrent transactions that a transition could not see yet. An operator
-- who resumes a rollout the gate paused has seen its failures: the engine's check then pauses it only for a
-- failure made after the resume (failures_at_resume), as the next failing transition would.
CREATE OR REPLACE FUNCTION ota_rollout_failure_gate(r rollouts, p_engine boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    failures bigint;
    applied bigint;
BEGIN
    IF r.status <> 'running' THEN
        RETURN false;
    END IF;
    SELECT coalesce(sum(n) FILTER (WHERE state IN ('failed', 'rolled_back')), 0),
           coalesce(sum(n) FILTER (WHERE state = 'applied'), 0)
        INTO failures, applied FROM rollout_counts WHERE rollout_id = r.id;
    IF failures < r.min_failures OR failures * 100 <= r.failure_max_percent * (applied + failures)
       OR (p_engine AND failures <= r.failures_at_resume) THEN
        RETURN false;
    END IF;
    UPDATE rollouts SET status = 'paused', paused_reason = 'failure_threshold', settled = false
        WHERE id = r.id AND status = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM ota_rollout_event(r.id, 'paused', 'paused', r.current_wave,
                              format('failure_threshold: %s failed of %s finished', failures, applied + failures));
    RETURN true;
END $$;
