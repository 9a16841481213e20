-- A rollout as the API shows it, with its counts, overall and per wave, summed from the counts ledger (a few
-- rows per wave and state, however many targets). NULL when there is no such rollout.
CREATE OR REPLACE FUNCTION ota_rollout_json(p_id uuid) RETURNS json LANGUAGE plpgsql STABLE AS $$
DECLARE
    r rollouts%ROWTYPE;
    per_wave jsonb;
    total jsonb;
    waves json;
BEGIN
    SELECT * INTO r FROM rollouts WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH c AS (SELECT wave, state, sum(n) AS n FROM rollout_counts WHERE rollout_id = p_id GROUP BY wave, state)
    SELECT coalesce((SELECT jsonb_object_agg(wave::text, states) FROM (
                        SELECT wave, jsonb_object_agg(state, n) AS states FROM c GROUP BY wave) w), '{}'),
           coalesce((SELECT jsonb_object_agg(state, n) FROM (
                        SELECT state, sum(n) AS n FROM c GROUP BY state) s), '{}')
        INTO per_wave, total;
    SELECT json_agg(json_build_object(
               'wave', w.wave, 'percent', w.percent, 'targets', (c.counts->>'targets')::bigint,
               'opened_at', ota_ts(w.opened_at), 'gate_passed_at', ota_ts(w.gate_passed_at),
               'counts', c.counts) ORDER BY w.wave)
        INTO waves
        FROM rollout_waves w
        CROSS JOIN LATERAL (SELECT ota_rollout_counts_json(coalesce(per_wave->(w.wave::text), '{}')) AS counts) c
        WHERE w.rollout_id = p_id;
    RETURN json_build_object(
        'id', r.id, 'name', r.name, 'release_id', r.release_id, 'model', r.model, 'version', r.version,
        'status', r.status, 'paused_reason', r.paused_reason, 'created_at', ota_ts(r.created_at),
        'started_at', ota_ts(r.started_at), 'finished_at', ota_ts(r.finished_at),
        'current_wave', nullif(r.current_wave, 0), 'config', r.config,
        'counts', ota_rollout_counts_json(total), 'waves', coalesce(waves, '[]'));
END $$;
