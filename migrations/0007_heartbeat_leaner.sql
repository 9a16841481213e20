-- The heartbeat statement does less work per call (issue #7). Same arguments, same result columns (names,
-- types and order), same decisions as 0006: servers of the previous version keep working with it. What
-- changed is what PostgreSQL does for each call, counted in instructions with callgrind on a backend
-- (BENCHMARKS.md, session 6):
--   * The result is a named composite type instead of OUT parameters. For a function with OUT parameters
--     PostgreSQL builds the result's row type from pg_proc on every call (~33,000 instructions, a tenth of a
--     plain heartbeat); a named type's comes from its type cache.
--   * A device with no active assignment (nine heartbeats in ten) skips the decision function.
--   * An assignment keeps what a delivery sends of its release: the model and the .bin artifact's object key,
--     size, CRC32 and SHA-256, copied when the assignment is made (ota_assign below). A release's model and
--     version never change and its artifacts are never rewritten, and a release cannot be deleted while an
--     assignment names it, so the copy cannot go stale; a delivery no longer joins releases and artifacts
--     (~50,000 instructions). Assignments made before this migration have NULLs there and are looked up as
--     before.
--   * Each way out returns one row, built in one expression, instead of assigning a dozen OUT variables one
--     statement at a time: PL/pgSQL prepares each statement's expression again in every transaction.

ALTER TABLE assignments
    ADD COLUMN model text,
    ADD COLUMN object_key text,
    ADD COLUMN size bigint,
    ADD COLUMN crc32 bigint,
    ADD COLUMN sha256 text;

-- As in 0003, and the new assignment copies its release's model and .bin artifact.
CREATE OR REPLACE FUNCTION ota_assign(p_id uuid, p_device uuid, p_release uuid, OUT outcome text,
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
    SELECT * INTO x FROM artifacts WHERE release_id = p_release AND kind = 'bin';
    INSERT INTO assignments (id, device_id, release_id, version, model, object_key, size, crc32, sha256)
        VALUES (p_id, p_device, p_release, r.version, r.model_id, x.object_key, x.size, x.crc32, x.sha256)
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

-- The columns of 0006's OUT parameters, in their order.
CREATE TYPE ota_heartbeat_result AS (
    outcome text, deferred text, deliver boolean,
    assignment_id uuid, assignment_status text, release_id uuid, model text, version text,
    object_key text, size bigint, crc32 bigint, sha256 text,
    signature text, signature_key text, counted boolean, presence_due boolean);

DROP FUNCTION ota_heartbeat(uuid, bytea, text, text, boolean, integer, text, uuid, text, text, boolean, text[],
                            integer, integer, integer);

-- Pass 1 and 2 as in 0005 and 0006. Every RETURN gives the columns in the order of ota_heartbeat_result.
CREATE FUNCTION ota_heartbeat(
    p_device uuid, p_token_hash bytea, p_firmware text, p_connectivity text, p_recording boolean,
    p_battery_percent integer, p_battery_state text, p_ota_assignment uuid, p_ota_state text, p_ota_error text,
    p_relay boolean, p_blocked_battery text[], p_interval integer, p_apply_timeout integer,
    p_presence_interval integer)
RETURNS ota_heartbeat_result
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    a assignments%ROWTYPE;
    decision text;
    wrote boolean := false;
    presence_due boolean;
    counted boolean := false;
BEGIN
    FOR pass IN 1..2 LOOP
        IF pass = 1 THEN
            SELECT * INTO d FROM devices WHERE id = p_device AND token_hash = p_token_hash;
        ELSE
            -- Bare presence need not wait for its WAL flush: losing the last moments of "last seen" in a
            -- crash is harmless. Every assignment transition below turns durability back on.
            PERFORM set_config('synchronous_commit', 'off', true);
            wrote := true;
            UPDATE devices SET
                last_seen_at = now(),
                firmware_version = p_firmware,
                connectivity = coalesce(p_connectivity, connectivity),
                recording = coalesce(p_recording, recording),
                battery_percent = coalesce(p_battery_percent, battery_percent),
                battery_state = coalesce(p_battery_state, battery_state),
                ble_seen_at = CASE WHEN p_relay THEN now() ELSE ble_seen_at END
            WHERE id = p_device AND token_hash = p_token_hash
            RETURNING * INTO d;
        END IF;
        IF NOT FOUND THEN
            RETURN ROW('bad_token', NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                       false, false)::ota_heartbeat_result;
        END IF;
        SELECT * INTO a FROM assignments WHERE device_id = p_device AND status IN ('pending', 'delivered');
        IF FOUND THEN
            decision := ota_heartbeat_decide(a, true, p_firmware, p_ota_assignment, p_ota_state, p_relay,
                                             coalesce(p_recording, d.recording),
                                             coalesce(p_battery_state, d.battery_state),
                                             d.ble_seen_at, p_blocked_battery, p_interval, p_apply_timeout);
        ELSE
            decision := 'none';
        END IF;
        EXIT WHEN pass = 1 AND NOT (
            p_relay
            OR d.last_seen_at IS NULL
            OR d.firmware_version IS DISTINCT FROM p_firmware
            OR d.connectivity IS DISTINCT FROM coalesce(p_connectivity, d.connectivity)
            OR d.recording IS DISTINCT FROM coalesce(p_recording, d.recording)
            OR d.battery_percent IS DISTINCT FROM coalesce(p_battery_percent, d.battery_percent)
            OR d.battery_state IS DISTINCT FROM coalesce(p_battery_state, d.battery_state)
            OR decision IN ('timeout', 'applied', 'failed')
            OR (decision = 'deliver' AND a.status = 'pending'));
    END LOOP;
    -- A read (pass 1 stood) whose presence is stale: the server writes it later, with many others.
    presence_due := NOT wrote AND d.last_seen_at <= now() - make_interval(secs => p_presence_interval);

    IF decision = 'none' THEN
        RETURN ROW('ok', NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   false, presence_due)::ota_heartbeat_result;
    END IF;
    IF decision IN ('timeout', 'applied', 'failed') THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = CASE decision WHEN 'applied' THEN 'applied' ELSE 'failed' END, reason = CASE decision
                WHEN 'timeout' THEN 'timeout'
                WHEN 'failed' THEN left(coalesce(p_ota_error, 'failed'), 500) END,
            finished_at = now()
            WHERE id = a.id;
        RETURN ROW('ok', NULL, false, a.id, CASE decision WHEN 'applied' THEN 'applied' ELSE 'failed' END, NULL,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, presence_due)::ota_heartbeat_result;
    END IF;
    IF decision <> 'deliver' THEN
        -- 'relay', or a deferral ('recording', 'battery', 'ble_connected'), which `deferred` names.
        RETURN ROW('ok', CASE WHEN decision <> 'relay' THEN decision END, false, a.id, a.status, a.release_id,
                   NULL, a.version, NULL, NULL, NULL, NULL, NULL, NULL, false, presence_due)::ota_heartbeat_result;
    END IF;

    -- The first delivery is a transition (durable; pass 2 holds the device row) and is counted here. A
    -- re-delivery writes nothing: the server counts it in memory and adds the counts of many in one
    -- statement (ota_write_deferred, server/heartbeat/deferred_writes.h).
    IF a.status = 'pending' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = 'delivered', delivered_at = now(), deliveries = deliveries + 1
            WHERE id = a.id;
        counted := true;
    END IF;
    IF a.object_key IS NULL THEN
        -- Assigned before this migration.
        SELECT r.model_id, x.object_key, x.size, x.crc32, x.sha256
            INTO a.model, a.object_key, a.size, a.crc32, a.sha256
            FROM releases r JOIN artifacts x ON x.release_id = r.id AND x.kind = 'bin'
            WHERE r.id = a.release_id;
    END IF;
    RETURN ROW('ok', NULL, true, a.id, 'delivered', a.release_id, a.model, a.version, a.object_key, a.size,
               a.crc32, a.sha256, a.signature, a.signature_key, counted, presence_due)::ota_heartbeat_result;
END $$;
