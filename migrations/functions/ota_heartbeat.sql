-- The heartbeat, in one round trip (see server/heartbeat/heartbeat.c for the why). Checks the token hash,
-- records presence and the reported state, then acts on the device's active assignment (ota_heartbeat_decide):
-- applied, failed, timeout, delivered (the manifest's fields returned) or deferred ('recording', 'battery',
-- 'ble_connected' or 'rollout_pacing' says why not). The token hash is compared here, not in C: an attacker can learn at most how many
-- leading bytes of SHA-256(guess) match, which says nothing about the token.
--
-- Most heartbeats change nothing: the device reports what it reported a minute ago and has nothing to apply. Such
-- a heartbeat is a read: no row version, no WAL, no transaction id, no commit to wait for.
--   Pass 1 reads the device and its active assignment without locks and decides. If nothing must be written, the
--   decision stands: it is what the same heartbeat would have decided a moment earlier.
--   Otherwise pass 2 writes the device row, which locks it, re-reads the assignment, decides again on what it now
--   reads, and writes the transition if there is one. Holding the device row is enough to read the assignment's
--   status without locking it: every status change locks its device row first (the lock order used everywhere),
--   so none can happen until this transaction ends. The assignment row itself is locked only by the UPDATE of a
--   transition, so a heartbeat that merely rewrites presence never waits for the batched writes
--   (ota_write_deferred), which lock assignment rows only after their devices.
-- Stale presence (last_seen_at older than p_presence_interval seconds) alone does not make pass 2 run:
-- presence_due tells the server to write it later, with many others (ota_write_deferred). A re-delivery writes
-- nothing either: the server counts it in memory. A device seen for the first time and every reported change are
-- written at once.
--
-- The result is a named composite type rather than OUT parameters: for a function with OUT parameters PostgreSQL
-- builds the result's row type from pg_proc on every call (a tenth of a plain heartbeat's instructions), while a
-- named type's comes from the type cache. Each way out returns one row built in one expression, since PL/pgSQL
-- prepares each statement's expression again in every transaction. The type lives in this file, with the only
-- function that returns it: ota-server migrate drops the function before applying this file, so the type can be
-- made again here with other columns.
DROP TYPE IF EXISTS ota_heartbeat_result;
CREATE TYPE ota_heartbeat_result AS (
    outcome text, deferred text, deliver boolean,
    assignment_id uuid, assignment_status text, release_id uuid, model text, version text,
    object_key text, size bigint, crc32 bigint, sha256 text,
    device_id uuid, not_after text, downgrade boolean,
    signature text, signature_key text, counted boolean, presence_due boolean,
    delta_key text, delta_size bigint, delta_sha256 text, delta_need_from uuid,
    delta_signature text, delta_signature_key text);

CREATE OR REPLACE FUNCTION ota_heartbeat(
    p_device uuid, p_token_hash bytea, p_firmware text, p_connectivity text, p_recording boolean,
    p_battery_percent integer, p_battery_state text, p_ota_assignment uuid, p_ota_state text, p_ota_error text,
    p_relay boolean, p_blocked_battery text[], p_interval integer, p_apply_timeout integer,
    p_presence_interval integer, p_verify_window integer, p_firmware_sha256 text)
RETURNS ota_heartbeat_result
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    a assignments%ROWTYPE;
    decision text;
    wrote boolean := false;
    presence_due boolean;
    counted boolean := false;
    firmware_changed boolean;
    delta_key text;
    delta_size bigint;
    delta_sha256 text;
    delta_need_from uuid;
    delta_orphaned boolean;
BEGIN
    FOR pass IN 1..2 LOOP
        IF pass = 1 THEN
            SELECT * INTO d FROM devices WHERE id = p_device AND token_hash = p_token_hash;
        ELSE
            -- Bare presence need not wait for its WAL flush: losing the last moments of "last seen" in a
            -- crash is harmless. Every assignment transition below turns durability back on.
            PERFORM set_config('synchronous_commit', 'off', true);
            wrote := true;
            firmware_changed := d.firmware_version IS DISTINCT FROM p_firmware;
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
            -- Another firmware, the device row now held: did the device fall back from its newest assignment?
            -- Asked only here, so a heartbeat that reports the firmware it reported before never pays for it.
            -- (PERFORM leaves FOUND true, as the UPDATE did.)
            IF FOUND AND firmware_changed THEN
                PERFORM ota_rollback_check(p_device, p_firmware, p_verify_window);
            END IF;
        END IF;
        IF NOT FOUND THEN
            RETURN ROW('bad_token', NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                       NULL, NULL, NULL, false, false, NULL, NULL, NULL, NULL, NULL, NULL)::ota_heartbeat_result;
        END IF;
        SELECT * INTO a FROM assignments WHERE device_id = p_device AND status IN ('pending', 'delivered');
        IF FOUND THEN
            decision := ota_heartbeat_decide(a, p_firmware, p_ota_assignment, p_ota_state, p_relay,
                                             coalesce(p_recording, d.recording),
                                             coalesce(p_battery_state, d.battery_state),
                                             d.ble_seen_at, p_blocked_battery, p_interval, p_apply_timeout);
        ELSE
            decision := 'none';
        END IF;
        -- A rollout's first delivery waits while the rollout does not run or its pacing budget is spent.
        IF decision = 'deliver' AND a.status = 'pending' AND a.rollout_id IS NOT NULL
           AND NOT ota_rollout_may_deliver(a.rollout_id, pass = 2) THEN
            decision := 'rollout_pacing';
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
                   NULL, NULL, NULL, false, presence_due, NULL, NULL, NULL, NULL, NULL, NULL)::ota_heartbeat_result;
    END IF;
    IF decision IN ('timeout', 'applied', 'failed') THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = CASE decision WHEN 'applied' THEN 'applied' ELSE 'failed' END, reason = CASE decision
                WHEN 'timeout' THEN 'timeout'
                WHEN 'failed' THEN left(coalesce(p_ota_error, 'failed'), 500) END,
            finished_at = now()
            WHERE id = a.id;
        RETURN ROW('ok', NULL, false, a.id, CASE decision WHEN 'applied' THEN 'applied' ELSE 'failed' END, NULL,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false,
                   presence_due, NULL, NULL, NULL, NULL, NULL, NULL)::ota_heartbeat_result;
    END IF;
    IF decision <> 'deliver' THEN
        -- 'relay', or a deferral ('recording', 'battery', 'ble_connected', 'rollout_pacing'), which `deferred`
        -- names.
        RETURN ROW('ok', CASE WHEN decision <> 'relay' THEN decision END, false, a.id, a.status, a.release_id,
                   NULL, a.version, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false,
                   presence_due, NULL, NULL, NULL, NULL, NULL, NULL)::ota_heartbeat_result;
    END IF;

    -- The first delivery is a transition (durable; pass 2 holds the device row) and is counted here. A
    -- re-delivery writes nothing: the server counts it in memory and adds the counts of many in one
    -- statement (ota_write_deferred, server/heartbeat/deferred_writes.h).
    -- The manifest's signed deadline (not_after) is fixed here too: the end of the apply timeout that starts now, to
    -- the second, rounded down. Every re-delivery sends the same, so the signature stored at the first delivery holds
    -- (an assignment delivered before not_after was stored gets it from delivered_at, the same way).
    IF a.status = 'pending' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = 'delivered', delivered_at = now(), deliveries = deliveries + 1,
                not_after = date_trunc('second', now() + make_interval(secs => p_apply_timeout))
            WHERE id = a.id
            RETURNING * INTO a;
        counted := true;
    END IF;
    -- The delta offer (docs/deltas.md): a device that says which image it runs gets the delta from that image
    -- into this release when one is ready. When none was ever asked for, and the image is another release's of
    -- the model, delta_need_from names that release: the server asks for the delta on a job thread, and this
    -- delivery goes without it (a 'building', 'failed' or 'not_worth_it' row means nothing to ask for: a failed
    -- build is never tried again).
    -- A 'building' row older than the builder's time limit (BUILD_TIME_LIMIT_S, 30 minutes, in
    -- server/releases/delta_builder.c) lost its builder: it counts as missing, and the claim takes it over.
    IF p_firmware_sha256 IS NOT NULL AND p_firmware_sha256 <> a.sha256 THEN
        SELECT x.object_key, x.size, x.sha256, x.status = 'building' AND x.started_at < now() - interval '30 minutes'
            INTO delta_key, delta_size, delta_sha256, delta_orphaned
            FROM release_deltas x
            WHERE x.to_release_id = a.release_id AND x.from_sha256 = p_firmware_sha256
            ORDER BY x.status = 'ready' DESC
            LIMIT 1;
        IF NOT FOUND OR delta_orphaned THEN
            SELECT f.release_id INTO delta_need_from
                FROM artifacts f JOIN releases r ON r.id = f.release_id
                WHERE f.kind = 'bin' AND f.sha256 = p_firmware_sha256 AND r.model_id = a.model
                  AND f.release_id <> a.release_id
                LIMIT 1;
        ELSIF delta_key IS NULL THEN
            delta_size := NULL;
            delta_sha256 := NULL;
        END IF;
    END IF;
    RETURN ROW('ok', NULL, true, a.id, 'delivered', a.release_id, a.model, a.version, a.object_key, a.size,
               a.crc32, a.sha256, a.device_id,
               ota_ts(coalesce(a.not_after, a.delivered_at + make_interval(secs => p_apply_timeout))), a.downgrade,
               a.signature, a.signature_key, counted, presence_due, delta_key, delta_size, delta_sha256,
               delta_need_from,
               CASE WHEN a.delta_signed_sha256 = delta_sha256 THEN a.delta_signature END,
               CASE WHEN a.delta_signed_sha256 = delta_sha256 THEN a.delta_signature_key END)::ota_heartbeat_result;
END $$;
