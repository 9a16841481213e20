-- Stale presence is written in bulk, after the heartbeat, by the server (issue #7).
--
-- Since 0005 a heartbeat that changes nothing is a read, except that it rewrote devices.last_seen_at
-- once that was older than OTA_PRESENCE_INTERVAL. With a fleet heartbeating once a minute and the
-- default interval of 120 s that is every second heartbeat: a transaction with a row update, WAL and a
-- commit each, which made a million-device fleet a fifth slower than a small one. Now ota_heartbeat()
-- only says so (presence_due) and the server keeps the device's id and when it was seen in memory, then
-- writes many at once with the re-delivery counts it already keeps (ota_write_deferred below; see
-- server/heartbeat/deferred_writes.h). Presence therefore lags the true last heartbeat by less than
-- OTA_PRESENCE_INTERVAL plus OTA_DEFERRED_WRITE_MS. A device seen for the first time (last_seen_at NULL)
-- and every reported change are still written by the heartbeat itself, at once.

-- Room on every page for a row's next version: presence and re-delivery counts rewrite these rows all day, and
-- an update that finds room on its row's page (and changes no indexed column, as these do not) is a HOT update,
-- which adds no index entry. It measured ~25% cheaper for a first rewrite of rows loaded in bulk. Applies to
-- pages written from now on; VACUUM FULL (or pg_repack) rewrites the others.
ALTER TABLE devices SET (fillfactor = 90);
ALTER TABLE assignments SET (fillfactor = 90);

-- Writes what a server kept in memory (server/heartbeat/deferred_writes.h), in one transaction, not durable (like
-- bare presence always was: a lost "last seen" is rewritten by the next heartbeat, a lost count is a
-- statistic, a lost signature is made again):
--   presence: device p_devices[i] was last seen p_ages_ms[i] milliseconds before now(). The age, not a
--     time, crosses from the server, so its clock never matters; last_seen_at only moves forward.
--   deliveries: adds p_counts[i] to the deliveries of assignment p_assignments[i], whatever its status
--     now (the manifests did go out), and stores p_signatures[i], unless NULL, as its signature made by
--     the public key p_key.
-- Lock order: device rows first, in id order, then assignment rows, in id order. Everything else that
-- locks both locks the device first (the heartbeat, a cancel, the sweeper), so nothing deadlocks with
-- this, and several servers' writes wait for each other at worst. Returns the rows written.
CREATE FUNCTION ota_write_deferred(p_devices uuid[], p_ages_ms integer[], p_assignments uuid[], p_counts integer[],
                                   p_signatures text[], p_key text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    total integer := 0;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF cardinality(p_devices) > 0 THEN
        PERFORM 1 FROM devices WHERE id = ANY (p_devices) ORDER BY id FOR NO KEY UPDATE;
        UPDATE devices d SET last_seen_at = s.seen
            FROM (SELECT id, now() - age_ms * interval '1 millisecond' AS seen
                  FROM unnest(p_devices, p_ages_ms) AS u (id, age_ms)) AS s
            WHERE d.id = s.id AND (d.last_seen_at IS NULL OR d.last_seen_at < s.seen);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END IF;
    IF cardinality(p_assignments) > 0 THEN
        PERFORM 1 FROM assignments WHERE id = ANY (p_assignments) ORDER BY id FOR UPDATE;
        UPDATE assignments a SET deliveries = a.deliveries + c.n,
                signature = coalesce(c.signature, a.signature),
                signature_key = CASE WHEN c.signature IS NULL THEN a.signature_key ELSE p_key END
            FROM unnest(p_assignments, p_counts, p_signatures) AS c (id, n, signature) WHERE a.id = c.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END IF;
    RETURN total;
END $$;

-- ota_count_deliveries (0005) stays for servers of the previous version during a rolling deploy.

DROP FUNCTION ota_heartbeat(uuid, bytea, text, text, boolean, integer, text, uuid, text, text, boolean, text[],
                            integer, integer, integer);

-- As in 0005, with one difference: presence older than p_presence_interval seconds no longer makes pass 2
-- run; presence_due tells the caller to write it (ota_write_deferred). Pass 1 and 2 are described in 0005.
CREATE FUNCTION ota_heartbeat(
    p_device uuid, p_token_hash bytea, p_firmware text, p_connectivity text, p_recording boolean,
    p_battery_percent integer, p_battery_state text, p_ota_assignment uuid, p_ota_state text, p_ota_error text,
    p_relay boolean, p_blocked_battery text[], p_interval integer, p_apply_timeout integer,
    p_presence_interval integer,
    OUT outcome text, OUT deferred text, OUT deliver boolean,
    OUT assignment_id uuid, OUT assignment_status text, OUT release_id uuid, OUT model text, OUT version text,
    OUT object_key text, OUT size bigint, OUT crc32 bigint, OUT sha256 text,
    OUT signature text, OUT signature_key text, OUT counted boolean, OUT presence_due boolean)
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    a assignments%ROWTYPE;
    a_found boolean;
    decision text;
    wrote boolean := false;
BEGIN
    deliver := false;
    counted := false;
    presence_due := false;
    outcome := 'ok';
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
            outcome := 'bad_token';
            RETURN;
        END IF;
        SELECT * INTO a FROM assignments WHERE device_id = p_device AND status IN ('pending', 'delivered');
        a_found := FOUND;
        decision := ota_heartbeat_decide(a, a_found, p_firmware, p_ota_assignment, p_ota_state, p_relay,
                                         coalesce(p_recording, d.recording),
                                         coalesce(p_battery_state, d.battery_state),
                                         d.ble_seen_at, p_blocked_battery, p_interval, p_apply_timeout);
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
        RETURN;
    END IF;
    assignment_id := a.id;
    IF decision IN ('timeout', 'applied', 'failed') THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = CASE decision WHEN 'applied' THEN 'applied' ELSE 'failed' END, reason = CASE decision
                WHEN 'timeout' THEN 'timeout'
                WHEN 'failed' THEN left(coalesce(p_ota_error, 'failed'), 500) END,
            finished_at = now()
            WHERE id = a.id;
        assignment_status := CASE decision WHEN 'applied' THEN 'applied' ELSE 'failed' END;
        RETURN;
    END IF;
    assignment_status := a.status;
    release_id := a.release_id;
    version := a.version;
    IF decision IN ('recording', 'battery', 'ble_connected') THEN
        deferred := decision;
    END IF;
    IF decision <> 'deliver' THEN
        RETURN;
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
    deliver := true;
    assignment_status := 'delivered';
    signature := a.signature;
    signature_key := a.signature_key;
    SELECT r.model_id, x.object_key, x.size, x.crc32, x.sha256
        INTO model, object_key, size, crc32, sha256
        FROM releases r JOIN artifacts x ON x.release_id = r.id AND x.kind = 'bin'
        WHERE r.id = a.release_id;
END $$;
