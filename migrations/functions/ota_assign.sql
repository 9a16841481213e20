-- Creates an assignment, or says why not, in one round trip. Outcomes:
-- created, no_device, no_release, model_mismatch, release_withdrawn,
-- already_installed, downgrade (the release is older than the device's firmware
-- by semver precedence, and p_allow_downgrade is false; version names the
-- device's firmware), active_exists (existing_id names the active one).
-- On 'created', version and created_at describe the new assignment, which copies its release's model and .bin
-- artifact (what a delivery sends: see assignments in 0001_schema.sql) and keeps p_allow_downgrade as `downgrade`
-- (its manifest says, signed, whether the device may go back to an older version: 0005_manifest_trust.sql).
CREATE OR REPLACE FUNCTION ota_assign(p_id uuid, p_device uuid, p_release uuid, p_allow_downgrade boolean,
                                      OUT outcome text,
                                      OUT existing_id uuid, OUT existing_status text, OUT version text,
                                      OUT created_at text)
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    r releases%ROWTYPE;
    x artifacts%ROWTYPE;
BEGIN
    SELECT * INTO d FROM devices WHERE id = p_device FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_device'; RETURN; END IF;
    SELECT * INTO r FROM releases WHERE id = p_release;
    IF NOT FOUND THEN outcome := 'no_release'; RETURN; END IF;
    IF r.model_id <> d.model_id THEN outcome := 'model_mismatch'; RETURN; END IF;
    IF r.status = 'withdrawn' THEN outcome := 'release_withdrawn'; RETURN; END IF;
    IF d.firmware_version IS NOT DISTINCT FROM r.version THEN outcome := 'already_installed'; RETURN; END IF;
    IF NOT p_allow_downgrade AND ota_semver_cmp(r.version, d.firmware_version) < 0 THEN
        outcome := 'downgrade';
        version := d.firmware_version;
        RETURN;
    END IF;
    SELECT * INTO x FROM artifacts WHERE release_id = p_release AND kind = 'bin';
    INSERT INTO assignments (id, device_id, release_id, version, model, object_key, size, crc32, sha256, downgrade)
        VALUES (p_id, p_device, p_release, r.version, r.model_id, x.object_key, x.size, x.crc32, x.sha256,
                p_allow_downgrade)
        ON CONFLICT (device_id) WHERE status IN ('pending', 'delivered') DO NOTHING;
    IF FOUND THEN
        outcome := 'created';
        version := r.version;
        SELECT ota_ts(a.created_at) INTO created_at FROM assignments a WHERE a.id = p_id;
        RETURN;
    END IF;
    outcome := 'active_exists';
    SELECT id, status INTO existing_id, existing_status FROM assignments
        WHERE device_id = p_device AND status IN ('pending', 'delivered');
END $$;
