-- The wave of a rollout's target: a stable hash of (rollout id, device id) read as a number in [0, 100) and
-- placed among the cumulative wave percentages, so each wave is a random sample of the targets and
-- [1, 10, 100] puts about 1% of them in wave 1. Inlined into the statements that use it (simple SQL).
CREATE OR REPLACE FUNCTION ota_rollout_wave(p_rollout uuid, p_device uuid, p_waves float8[])
RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (width_bucket((hashtextextended(p_rollout::text || p_device::text, 0) & 4294967295)::float8
                         / 4294967296.0 * 100, p_waves) + 1)::smallint
$$;
