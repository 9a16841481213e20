-- What ota_rollout_create would make of the targets that the query p_matched (its text) selects: exact counts
-- per wave and overall, and up to 20 device ids per wave (targets that would be updated, not skipped ones).
CREATE OR REPLACE FUNCTION ota_rollout_dry_run(p_matched text, p_waves numeric[]) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    per_wave jsonb;
    waves json;
    sample uuid[];
    i integer;
    parts json[] := '{}';
BEGIN
    EXECUTE format('SELECT coalesce(jsonb_object_agg(wave::text, jsonb_build_object(''targets'', targets, '
                   '''skipped'', skipped)), ''{}'') FROM (SELECT wave, count(*) AS targets, '
                   'count(*) FILTER (WHERE skipped) AS skipped FROM (%s) m GROUP BY wave) c', p_matched)
        INTO per_wave;
    FOR i IN 1 .. cardinality(p_waves) LOOP
        -- Stops after 20 rows: a wave of 1% of a million targets is found in a few thousand rows.
        EXECUTE format('SELECT array(SELECT device_id FROM (%s) m WHERE wave = %s AND NOT skipped LIMIT 20)',
                       p_matched, i)
            INTO sample;
        parts := parts || json_build_object(
            'wave', i, 'percent', p_waves[i],
            'targets', coalesce((per_wave->(i::text)->>'targets')::bigint, 0),
            'skipped', coalesce((per_wave->(i::text)->>'skipped')::bigint, 0),
            'sample', to_json(sample));
    END LOOP;
    waves := array_to_json(parts);
    RETURN json_build_object(
        'dry_run', true,
        'targets', (SELECT coalesce(sum((value->>'targets')::bigint), 0) FROM jsonb_each(per_wave)),
        'skipped', (SELECT coalesce(sum((value->>'skipped')::bigint), 0) FROM jsonb_each(per_wave)),
        'waves', waves);
END $$;
