-- Admission, one batch of at most p_batch targets of a running rollout:
--   1. targets of open waves still 'waiting' become 'blocked' (due now);
--   2. blocked targets whose time has come, whose devices no other transaction holds (SKIP LOCKED: a device in
--      a heartbeat is simply tried next time, and the engine never waits for a device), each get:
--        'skipped'  when the device now runs the release's version or a newer one;
--        another try in 30 s ('blocked', the reason names the active assignment) when it has an active one;
--        a pending assignment (rollout_id set) otherwise, and the target becomes 'pending'.
-- Set-wise, a statement for each of these, whatever the batch: admitting a wave of a million targets is a
-- matter of minutes. The transition trigger follows each new assignment as usual (event, device, listeners),
-- but leaves its target to this function, which moves them all in one statement (ota_rollout_follow, the
-- setting ota.admitting).
-- Returns how many targets it moved, so the engine knows whether to come back at once.
CREATE OR REPLACE FUNCTION ota_rollout_admit(r rollouts, p_batch integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    opened integer;
    x artifacts%ROWTYPE;
    newer text[];
    due uuid[];
    ids uuid[];
    firmware text[];
    busy_devices uuid[];
    busy_assignments uuid[];
BEGIN
    UPDATE rollout_targets SET state = 'blocked', retry_at = now()
        WHERE rollout_id = r.id AND (device_id, wave) IN (
            SELECT device_id, wave FROM rollout_targets
            WHERE rollout_id = r.id AND state = 'waiting' AND wave <= r.current_wave
            LIMIT p_batch);
    GET DIAGNOSTICS opened = ROW_COUNT;
    IF opened > 0 THEN
        RETURN opened;
    END IF;

    SELECT array_agg(device_id) INTO due FROM (
        SELECT device_id FROM rollout_targets
        WHERE rollout_id = r.id AND state = 'blocked' AND retry_at <= now()
        ORDER BY retry_at LIMIT p_batch) d;
    IF due IS NULL THEN
        RETURN 0;
    END IF;
    SELECT array_agg(id), array_agg(firmware_version) INTO ids, firmware FROM (
        SELECT d.id, d.firmware_version FROM devices d WHERE d.id = ANY (due)
        ORDER BY d.id
        FOR UPDATE OF d SKIP LOCKED) locked;
    -- A device deleted while the rollout was being made left a target behind (no foreign key): it goes now.
    DELETE FROM rollout_targets t
        WHERE t.rollout_id = r.id AND t.device_id = ANY (due) AND t.device_id <> ALL (coalesce(ids, '{}'))
          AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = t.device_id);
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    newer := ota_fleet_versions('>=' || r.version);

    UPDATE rollout_targets t SET state = 'skipped', reason = 'runs ' || d.firmware, retry_at = NULL
        FROM unnest(ids, firmware) AS d(id, firmware)
        WHERE t.device_id = d.id AND t.rollout_id = r.id AND d.firmware = ANY (newer);
    -- The busy devices first, then their targets by key: one statement joining the two may walk every target.
    SELECT array_agg(device_id), array_agg(id) INTO busy_devices, busy_assignments
        FROM assignments WHERE device_id = ANY (ids) AND status IN ('pending', 'delivered');
    UPDATE rollout_targets t SET reason = 'active assignment ' || b.assignment, retry_at = now() + interval '30 seconds'
        FROM unnest(busy_devices, busy_assignments) AS b(device, assignment)
        WHERE t.device_id = b.device AND t.rollout_id = r.id AND t.state = 'blocked';

    SELECT * INTO x FROM artifacts WHERE release_id = r.release_id AND kind = 'bin';
    PERFORM set_config('ota.admitting', r.id::text, true);
    WITH made AS (
        INSERT INTO assignments (id, device_id, release_id, version, model, object_key, size, crc32, sha256,
                                 rollout_id)
        SELECT gen_random_uuid(), d.id, r.release_id, r.version, r.model, x.object_key, x.size, x.crc32, x.sha256,
               r.id
        FROM unnest(ids, firmware) AS d(id, firmware)
        WHERE NOT coalesce(d.firmware = ANY (newer), false)
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.device_id = d.id AND a.status IN ('pending', 'delivered'))
        RETURNING id, device_id),
    moved AS (
        UPDATE rollout_targets t SET state = 'pending', assignment_id = made.id, attempts = t.attempts + 1,
                                     reason = NULL, retry_at = NULL
        FROM made WHERE t.device_id = made.device_id AND t.rollout_id = r.id
        RETURNING t.wave, t.attempts)
    INSERT INTO rollout_counts (rollout_id, wave, state, n)
        SELECT r.id, wave, 'retries', count(*) FROM moved WHERE attempts > 1 GROUP BY wave;
    PERFORM set_config('ota.admitting', '', true);
    RETURN cardinality(ids);
END $$;
