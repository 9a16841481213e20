-- The heartbeat reads first and writes only what must be written (issue #7).
--
-- Most heartbeats change nothing: the device reports what it reported a minute ago and has nothing to
-- apply. Such a heartbeat is now a read: no row version, no WAL, no transaction id, no commit to wait
-- for. Presence (devices.last_seen_at) is rewritten only when it is older than p_presence_interval
-- seconds (OTA_PRESENCE_INTERVAL; 0 = every heartbeat), so last_seen_at lags the true last heartbeat by
-- less than that. Anything else that changes (firmware, connectivity, recording, battery, a relay, an
-- assignment transition) is written at once, as before. A re-delivery (the manifest of an assignment
-- already delivered, sent again with a fresh URL) writes nothing either: the server counts it in memory
-- and adds many counts in one statement a second (ota_count_deliveries below).
--
-- Pass 1 reads the device and its active assignment without locks and decides. If nothing must be
-- written, the decision stands: it is what the same heartbeat would have decided a moment earlier.
-- Otherwise pass 2 writes the device row, which locks it, re-reads the assignment, decides again on
-- what it now reads, and writes the transition if there is one. Holding the device row is enough to
-- read the assignment's status without locking it: every status change locks its device row first
-- (the lock order used everywhere), so none can happen until this transaction ends. The assignment
-- row itself is locked only by the UPDATE of a transition, so a heartbeat that merely rewrites
-- presence never waits for the batched re-delivery counts (ota_count_deliveries), which lock
-- assignment rows only.

-- A manifest's signature depends only on the assignment (Ed25519 signatures are deterministic and the signed
-- fields are the assignment's and its release's, which never change), so it is made once, at the first
-- delivery, and kept here with the public key that made it; re-deliveries reuse it unless the server's
-- key has changed since. A stored signature is never trusted blindly: the device verifies every manifest.
ALTER TABLE assignments
    ADD COLUMN signature text CHECK (length(signature) <= 100),
    ADD COLUMN signature_key text CHECK (length(signature_key) <= 100);

-- Writes what a server kept in memory for deliveries (server/delivery_counts.h): adds p_counts[i] to
-- the deliveries of assignment p_ids[i], whatever its status now (the manifests did go out), and
-- stores p_signatures[i], unless NULL, as its signature made by the public key p_key. Not durable,
-- like presence: a lost count is a statistic, a lost signature is made again. The rows are locked in id order first, so the writes of several servers never
-- deadlock each other; nothing else locks an assignment before its device and then waits for another
-- assignment, so none can deadlock with a heartbeat or a cancel either.
CREATE FUNCTION ota_count_deliveries(p_ids uuid[], p_counts integer[], p_signatures text[], p_key text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM assignments WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    UPDATE assignments a SET deliveries = a.deliveries + c.n,
            signature = coalesce(c.signature, a.signature),
            signature_key = CASE WHEN c.signature IS NULL THEN a.signature_key ELSE p_key END
        FROM unnest(p_ids, p_counts, p_signatures) AS c (id, n, signature) WHERE a.id = c.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

DROP FUNCTION ota_heartbeat(uuid, bytea, text, text, boolean, integer, text, uuid, text, text, boolean, text[],
                            integer, integer);

-- The decision for one heartbeat, given the device's state after this heartbeat (recording, battery
-- state, when a relay was last seen) and its active assignment (a_found false when it has none):
--   'none'        no active assignment;
--   'timeout'     delivered longer ago than p_apply_timeout seconds: fails with reason 'timeout';
--   'applied'     the reported firmware is the assignment's version;
--   'failed'      the device reports ota.state 'failed' for this assignment;
--   'relay'       a relayed heartbeat, which never delivers;
--   'recording', 'battery', 'ble_connected'   delivery deferred, and why;
--   'deliver'     the manifest goes out (pending -> delivered, or re-sent while delivered).
CREATE FUNCTION ota_heartbeat_decide(
    a assignments, a_found boolean, p_firmware text, p_ota_assignment uuid, p_ota_state text, p_relay boolean,
    recording boolean, battery_state text, ble_seen_at timestamptz, p_blocked_battery text[], p_interval integer,
    p_apply_timeout integer)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT a_found THEN 'none'
        WHEN a.status = 'delivered' AND a.delivered_at < now() - make_interval(secs => p_apply_timeout) THEN 'timeout'
        WHEN p_firmware = a.version THEN 'applied'
        WHEN p_ota_state = 'failed' AND p_ota_assignment = a.id THEN 'failed'
        WHEN p_relay THEN 'relay'
        WHEN recording THEN 'recording'
        WHEN battery_state = ANY (p_blocked_battery) THEN 'battery'
        WHEN ble_seen_at > now() - make_interval(secs => 2 * p_interval) THEN 'ble_connected'
        ELSE 'deliver'
    END
$$;

CREATE FUNCTION ota_heartbeat(
    p_device uuid, p_token_hash bytea, p_firmware text, p_connectivity text, p_recording boolean,
    p_battery_percent integer, p_battery_state text, p_ota_assignment uuid, p_ota_state text, p_ota_error text,
    p_relay boolean, p_blocked_battery text[], p_interval integer, p_apply_timeout integer,
    p_presence_interval integer,
    OUT outcome text, OUT deferred text, OUT deliver boolean,
    OUT assignment_id uuid, OUT assignment_status text, OUT release_id uuid, OUT model text, OUT version text,
    OUT object_key text, OUT size bigint, OUT crc32 bigint, OUT sha256 text,
    OUT signature text, OUT signature_key text, OUT counted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    a assignments%ROWTYPE;
    a_found boolean;
    decision text;
BEGIN
    deliver := false;
    counted := false;
    outcome := 'ok';
    FOR pass IN 1..2 LOOP
        IF pass = 1 THEN
            SELECT * INTO d FROM devices WHERE id = p_device AND token_hash = p_token_hash;
        ELSE
            -- Bare presence need not wait for its WAL flush: losing the last moments of "last seen" in a
            -- crash is harmless. Every assignment transition below turns durability back on.
            PERFORM set_config('synchronous_commit', 'off', true);
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
            OR d.last_seen_at IS NULL OR d.last_seen_at <= now() - make_interval(secs => p_presence_interval)
            OR d.firmware_version IS DISTINCT FROM p_firmware
            OR d.connectivity IS DISTINCT FROM coalesce(p_connectivity, d.connectivity)
            OR d.recording IS DISTINCT FROM coalesce(p_recording, d.recording)
            OR d.battery_percent IS DISTINCT FROM coalesce(p_battery_percent, d.battery_percent)
            OR d.battery_state IS DISTINCT FROM coalesce(p_battery_state, d.battery_state)
            OR decision IN ('timeout', 'applied', 'failed')
            OR (decision = 'deliver' AND a.status = 'pending'));
    END LOOP;

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
    -- statement (ota_count_deliveries, server/delivery_counts.h).
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
