-- Moves a rollout's target with its assignment `a` (called by the transition trigger, in the same transaction,
-- holding the device row). The target takes the assignment's status, except:
--   * a failure with a retry left (attempts <= retries.max) makes it 'blocked' until the backoff has passed,
--     so only its last outcome counts for the gates;
--   * an assignment canceled because the rollout paused ('rollout_paused') or its release was withdrawn
--     ('release_withdrawn') makes it 'blocked' again, to be admitted again on resume.
-- A new assignment counts an attempt (and a retry after the first); the admission (ota_rollout_admit) does
-- that for the assignments it makes. A final failure or a rollback checks the failure gate at once.
CREATE OR REPLACE FUNCTION ota_rollout_follow(a assignments) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t rollout_targets%ROWTYPE;
    r rollouts%ROWTYPE;
    next_state text := a.status;
    due timestamptz;
BEGIN
    SELECT * INTO t FROM rollout_targets WHERE device_id = a.device_id AND rollout_id = a.rollout_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF a.status = 'pending' AND current_setting('ota.admitting', true) = a.rollout_id::text THEN
        RETURN; -- made by the admission, which moves its targets itself, all in one statement
    END IF;
    IF a.status = 'pending' THEN
        UPDATE rollout_targets SET state = 'pending', assignment_id = a.id, attempts = attempts + 1, reason = NULL,
                                   retry_at = NULL
            WHERE device_id = a.device_id AND rollout_id = a.rollout_id;
        IF t.attempts > 0 THEN
            INSERT INTO rollout_counts (rollout_id, wave, state, n) VALUES (a.rollout_id, t.wave, 'retries', 1);
        END IF;
        RETURN;
    END IF;
    IF t.assignment_id IS DISTINCT FROM a.id THEN
        RETURN; -- an earlier attempt's assignment: the target follows its newest one only
    END IF;
    SELECT * INTO r FROM rollouts WHERE id = a.rollout_id;
    IF a.status = 'failed' AND t.attempts <= r.retries_max AND r.status IN ('running', 'paused') THEN
        next_state := 'blocked';
        due := now() + make_interval(secs => r.backoff_s);
    ELSIF a.status = 'canceled' AND a.reason IN ('rollout_paused', 'release_withdrawn') THEN
        next_state := 'blocked';
        due := now();
    END IF;
    UPDATE rollout_targets SET state = next_state, reason = a.reason, retry_at = due,
                               -- an assignment taken back by a pause was no attempt: its successor is no retry
                               attempts = attempts - CASE WHEN a.status = 'canceled' AND next_state = 'blocked'
                                                          THEN 1 ELSE 0 END
        WHERE device_id = a.device_id AND rollout_id = a.rollout_id;
    IF next_state IN ('failed', 'rolled_back') THEN
        PERFORM ota_rollout_failure_gate(r, false);
    END IF;
END $$;
