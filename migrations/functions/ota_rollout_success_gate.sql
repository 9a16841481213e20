-- The success gate of a running rollout's current wave: applied >= success.min_percent % of the wave's targets
-- (skipped ones excluded), held for success.soak_s seconds, opens the next wave. The soak runs from when the
-- share was last reached: a rollback that takes it below the threshold starts the soak again. Returns true
-- when it opened a wave.
CREATE OR REPLACE FUNCTION ota_rollout_success_gate(r rollouts) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    w rollout_waves%ROWTYPE;
    eligible bigint;
    applied bigint;
BEGIN
    IF r.current_wave = 0 THEN
        PERFORM ota_rollout_open_wave(r, 1, 'wave_opened');
        RETURN true;
    END IF;
    IF r.current_wave >= cardinality(r.waves) THEN
        RETURN false;
    END IF;
    SELECT * INTO w FROM rollout_waves WHERE rollout_id = r.id AND wave = r.current_wave;
    SELECT coalesce(sum(n) FILTER (WHERE state NOT IN ('skipped', 'retries')), 0),
           coalesce(sum(n) FILTER (WHERE state = 'applied'), 0)
        INTO eligible, applied FROM rollout_counts WHERE rollout_id = r.id AND wave = r.current_wave;
    IF applied * 100 < r.success_min_percent * eligible THEN
        IF w.gate_met_at IS NOT NULL THEN
            UPDATE rollout_waves SET gate_met_at = NULL WHERE rollout_id = r.id AND wave = w.wave;
        END IF;
        RETURN false;
    END IF;
    IF w.gate_met_at IS NULL THEN
        w.gate_met_at := now();
        UPDATE rollout_waves SET gate_met_at = w.gate_met_at WHERE rollout_id = r.id AND wave = w.wave;
    END IF;
    IF w.gate_met_at + make_interval(secs => r.soak_s) > now() THEN
        RETURN false;
    END IF;
    UPDATE rollout_waves SET gate_passed_at = now() WHERE rollout_id = r.id AND wave = w.wave;
    PERFORM ota_rollout_open_wave(r, w.wave + 1, 'wave_opened');
    RETURN true;
END $$;
