-- Admission, one batch of at most p_batch targets of a running rollout:
--   1. targets of open waves still 'waiting' become 'blocked' (due now);
--   2. blocked targets whose time has come, whose devices no other transaction holds (SKIP LOCKED: a device in
--      a heartbeat is simply tried next time, and the engine never waits for a device), each get:
--        'skipped'  when the device now runs the release's version or a newer one;
--        a pending assignment (rollout_id set) when it has no active one: the transition trigger then makes
--                   the target 'pending' (ota_rollout_follow);
--        another try in 30 s ('blocked', the reason names the active assignment) otherwise.
-- Returns how many targets it moved, so the engine knows whether to come back at once.
CREATE OR REPLACE FUNCTION ota_rollout_admit(r rollouts, p_batch integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    opened integer;
    x artifacts%ROWTYPE;
    newer text[];
    t record;
    busy uuid;
    moved integer := 0;
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

    SELECT * INTO x FROM artifacts WHERE release_id = r.release_id AND kind = 'bin';
    newer := ota_fleet_versions('>=' || r.version);
    FOR t IN
        SELECT d.id, d.firmware_version, tt.wave FROM devices d
        JOIN rollout_targets tt ON tt.device_id = d.id AND tt.rollout_id = r.id
        WHERE d.id IN (SELECT device_id FROM rollout_targets
                       WHERE rollout_id = r.id AND state = 'blocked' AND retry_at <= now()
                       ORDER BY retry_at LIMIT p_batch)
        ORDER BY d.id
        FOR UPDATE OF d SKIP LOCKED
    LOOP
        moved := moved + 1;
        IF t.firmware_version = ANY (newer) THEN
            UPDATE rollout_targets SET state = 'skipped', reason = 'runs ' || t.firmware_version, retry_at = NULL
                WHERE device_id = t.id AND rollout_id = r.id;
            CONTINUE;
        END IF;
        SELECT id INTO busy FROM assignments WHERE device_id = t.id AND status IN ('pending', 'delivered');
        IF FOUND THEN
            UPDATE rollout_targets SET reason = 'active assignment ' || busy, retry_at = now() + interval '30 seconds'
                WHERE device_id = t.id AND rollout_id = r.id;
            CONTINUE;
        END IF;
        INSERT INTO assignments (id, device_id, release_id, version, model, object_key, size, crc32, sha256,
                                 rollout_id)
            VALUES (gen_random_uuid(), t.id, r.release_id, r.version, r.model, x.object_key, x.size, x.crc32,
                    x.sha256, r.id);
    END LOOP;
    RETURN moved;
END $$;
