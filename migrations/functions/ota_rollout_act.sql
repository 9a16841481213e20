-- An operator's action on a rollout: pause, resume, advance or cancel. Outcomes: ok (body is the rollout),
-- not_found, invalid_transition (the status does not allow it; body is the rollout), release_withdrawn (resume
-- of a rollout whose release is withdrawn). Holds the rollout's engine lock, so no engine step of any instance
-- acts on the rollout meanwhile. What the engine must then do (cancel a paused rollout's pending assignments,
-- admit a resumed one's targets) it does on its next step.
--   pause    running -> paused ('operator')
--   resume   paused -> running (opens wave 1 of a rollout created paused); the failures so far are noted
--            (failures_at_resume, ota_rollout_failure_gate.sql)
--   advance  running or paused, a wave left: opens the next wave now, whatever its gate says
--   cancel   running or paused -> canceled
CREATE OR REPLACE FUNCTION ota_rollout_act(p_rollout uuid, p_action text, OUT outcome text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    r rollouts%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock(ota_rollout_lock_key(p_rollout));
    SELECT * INTO r FROM rollouts WHERE id = p_rollout;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    outcome := 'ok';
    IF p_action = 'pause' AND r.status = 'running' THEN
        UPDATE rollouts SET status = 'paused', paused_reason = 'operator', settled = false WHERE id = r.id;
        PERFORM ota_rollout_event(r.id, 'paused', 'paused', r.current_wave, 'operator');
    ELSIF p_action = 'resume' AND r.status = 'paused' THEN
        IF (SELECT status FROM releases WHERE id = r.release_id) = 'withdrawn' THEN
            outcome := 'release_withdrawn';
            RETURN;
        END IF;
        UPDATE rollouts SET status = 'running', paused_reason = NULL, failures_at_resume = (
                SELECT coalesce(sum(n), 0) FROM rollout_counts
                WHERE rollout_id = r.id AND state IN ('failed', 'rolled_back'))
            WHERE id = r.id RETURNING * INTO r;
        PERFORM ota_rollout_event(r.id, 'resumed', 'running', r.current_wave, NULL);
        IF r.current_wave = 0 THEN
            PERFORM ota_rollout_open_wave(r, 1, 'wave_opened');
        END IF;
    ELSIF p_action = 'advance' AND r.status IN ('running', 'paused') AND r.current_wave < cardinality(r.waves) THEN
        PERFORM ota_rollout_open_wave(r, r.current_wave + 1, 'advanced');
    ELSIF p_action = 'cancel' AND r.status IN ('running', 'paused') THEN
        UPDATE rollouts SET status = 'canceled', paused_reason = NULL, finished_at = now(), settled = false
            WHERE id = r.id;
        PERFORM ota_rollout_event(r.id, 'canceled', 'canceled', r.current_wave, NULL);
    ELSE
        outcome := 'invalid_transition';
    END IF;
    body := ota_rollout_json(p_rollout);
END $$;
