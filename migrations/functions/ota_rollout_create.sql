-- Creates a rollout with its targets, or says why not, or (p_dry_run) says what it would create. Outcomes:
-- created, dry_run, no_release, release_withdrawn, model_mismatch; `body` is the rollout's JSON (created) or the
-- dry run's (dry_run), which names the id p_id that its waves were drawn with.
-- The targets are the devices of the release's model that the filter (already validated and normalized by the
-- server) matches now, in one INSERT ... SELECT, however many. Devices that run the release's version or a newer
-- one are 'skipped' (a rollout never downgrades); which versions those are is decided once per distinct version
-- (ota_fleet_versions), not once per device. A rollout that starts at once has its first wave open from
-- the start, so its targets are inserted 'blocked' (awaiting admission) rather than 'waiting'.
CREATE OR REPLACE FUNCTION ota_rollout_create(
    p_id uuid, p_release uuid, p_name text, p_filter jsonb, p_waves numeric[], p_max_per_minute integer,
    p_success_min numeric, p_soak integer, p_failure_max numeric, p_min_failures integer, p_retries_max integer,
    p_backoff integer, p_start boolean, p_dry_run boolean, OUT outcome text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    r releases%ROWTYPE;
    matched text;
BEGIN
    SELECT * INTO r FROM releases WHERE id = p_release;
    IF NOT FOUND THEN
        outcome := 'no_release';
        RETURN;
    END IF;
    IF r.status = 'withdrawn' THEN
        outcome := 'release_withdrawn';
        RETURN;
    END IF;
    IF p_filter ? 'model' AND p_filter->>'model' <> r.model_id THEN
        outcome := 'model_mismatch';
        RETURN;
    END IF;
    -- device id, firmware version, wave, skipped: one row per target.
    matched := format('SELECT d.id AS device_id, d.firmware_version, ota_rollout_wave(%L, d.id, %L) AS wave, '
                      'coalesce(d.firmware_version = ANY (%L::text[]), false) AS skipped '
                      'FROM devices d WHERE d.model_id = %L AND %s',
                      p_id, p_waves::float8[], ota_fleet_versions('>=' || r.version), r.model_id,
                      ota_fleet_where(p_filter));
    IF p_dry_run THEN
        outcome := 'dry_run';
        -- The id the waves were drawn with: a create naming it gets exactly this split.
        body := (jsonb_build_object('id', p_id) || ota_rollout_dry_run(matched, p_waves)::jsonb)::json;
        RETURN;
    END IF;

    INSERT INTO rollouts (id, name, release_id, model, version, status, paused_reason, config, waves,
                          max_per_minute, success_min_percent, soak_s, failure_max_percent, min_failures,
                          retries_max, backoff_s, current_wave, started_at)
    VALUES (p_id, p_name, p_release, r.model_id, r.version,
            CASE WHEN p_start THEN 'running' ELSE 'paused' END, CASE WHEN p_start THEN NULL ELSE 'created' END,
            json_build_object(
                'filter', p_filter, 'waves', p_waves, 'max_per_minute', p_max_per_minute,
                'success', json_build_object('min_percent', p_success_min, 'soak_s', p_soak),
                'failure', json_build_object('max_percent', p_failure_max, 'min_failures', p_min_failures),
                'retries', json_build_object('max', p_retries_max, 'backoff_s', p_backoff))::jsonb,
            p_waves, p_max_per_minute, p_success_min, p_soak, p_failure_max, p_min_failures, p_retries_max,
            p_backoff, CASE WHEN p_start THEN 1 ELSE 0 END, CASE WHEN p_start THEN now() END);
    INSERT INTO rollout_waves (rollout_id, wave, percent, opened_at)
        SELECT p_id, i, p_waves[i], CASE WHEN p_start AND i = 1 THEN now() END
        FROM generate_subscripts(p_waves, 1) AS i;
    IF p_max_per_minute IS NOT NULL THEN
        INSERT INTO rollout_pacing (rollout_id) VALUES (p_id);
    END IF;
    EXECUTE format('INSERT INTO rollout_targets (device_id, rollout_id, wave, state, reason, retry_at) '
                   'SELECT device_id, %L, wave, '
                   '       CASE WHEN skipped THEN ''skipped'' WHEN wave = 1 AND %L THEN ''blocked'' ELSE ''waiting'' END, '
                   '       CASE WHEN skipped THEN ''runs '' || firmware_version END, '
                   '       CASE WHEN NOT skipped AND wave = 1 AND %L THEN now() END '
                   'FROM (%s) matched',
                   p_id, p_start, p_start, matched);
    -- Fresh statistics, so that the engine's statements on this rollout's targets are planned for their number
    -- (a sample of the table: a fraction of a second, however many targets).
    ANALYZE rollout_targets;
    PERFORM ota_rollout_event(p_id, 'created', CASE WHEN p_start THEN 'running' ELSE 'paused' END,
                              CASE WHEN p_start THEN 1 END, NULL);
    outcome := 'created';
    body := ota_rollout_json(p_id);
END $$;
