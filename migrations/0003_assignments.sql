-- 0003: assignments of releases to devices, their transitions, and the heartbeat.
--
-- The invariants live here, so they hold with any number of server instances:
--   * at most one active (pending or delivered) assignment per device: a
--     partial unique index;
--   * every status change is recorded in assignment_events and mirrored in
--     devices.ota_status: a trigger, so no statement can forget it;
--   * lock order, everywhere: the device row first, then its assignment rows
--     (the transition trigger updates the device row, so a statement that
--     locked an assignment first could deadlock with a heartbeat);
--   * legal transitions only: pending -> delivered -> applied | failed, and
--     pending -> applied | failed | canceled (a Bluetooth update may skip
--     delivery), delivered -> canceled; final states never change.

CREATE TABLE assignments (
    id            uuid PRIMARY KEY,
    device_id     uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- RESTRICT: a release that an assignment names cannot be deleted (409 in_use).
    release_id    uuid NOT NULL REFERENCES releases (id) ON DELETE RESTRICT,
    version       text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'applied', 'failed', 'canceled')),
    reason        text CHECK (length(reason) <= 500),
    deliveries    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at  timestamptz,
    finished_at   timestamptz
);

CREATE UNIQUE INDEX assignments_one_active ON assignments (device_id) WHERE status IN ('pending', 'delivered');
CREATE INDEX assignments_device_page ON assignments (device_id, created_at DESC, id DESC);
CREATE INDEX assignments_page ON assignments (created_at DESC, id DESC);
CREATE INDEX assignments_status_page ON assignments (status, created_at DESC, id DESC);
CREATE INDEX assignments_release_page ON assignments (release_id, created_at DESC, id DESC);
-- The apply-timeout sweep looks only at delivered ones.
CREATE INDEX assignments_delivered ON assignments (delivered_at) WHERE status = 'delivered';

CREATE TABLE assignment_events (
    id             bigserial PRIMARY KEY,
    assignment_id  uuid NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    device_id      uuid NOT NULL,
    from_status    text,
    to_status      text NOT NULL,
    reason         text,
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX assignment_events_assignment ON assignment_events (assignment_id, id);

-- Records a transition, mirrors it on the device, refuses illegal ones, and tells listeners.
CREATE FUNCTION ota_assignment_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status = OLD.status THEN
            RETURN NEW;
        END IF;
        IF OLD.status IN ('applied', 'failed', 'canceled') OR NEW.status = 'pending' THEN
            RAISE EXCEPTION 'illegal assignment transition % -> %', OLD.status, NEW.status
                USING ERRCODE = 'P0001', HINT = 'invalid_transition';
        END IF;
    END IF;
    INSERT INTO assignment_events (assignment_id, device_id, from_status, to_status, reason)
    VALUES (NEW.id, NEW.device_id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status, NEW.reason);
    UPDATE devices SET ota_status = NEW.status WHERE id = NEW.device_id;
    PERFORM pg_notify('ota_events', NEW.id::text);
    RETURN NEW;
END $$;

CREATE TRIGGER assignments_transition
    AFTER INSERT OR UPDATE OF status ON assignments
    FOR EACH ROW EXECUTE FUNCTION ota_assignment_transition();

-- Creates an assignment, or says why not, in one round trip. Outcomes:
-- created, no_device, no_release, model_mismatch, release_withdrawn,
-- already_installed, active_exists (existing_id names the active one).
-- On 'created', version and created_at describe the new assignment.
CREATE FUNCTION ota_assign(p_id uuid, p_device uuid, p_release uuid, OUT outcome text, OUT existing_id uuid,
                           OUT existing_status text, OUT version text, OUT created_at text)
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    r releases%ROWTYPE;
BEGIN
    SELECT * INTO d FROM devices WHERE id = p_device FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_device'; RETURN; END IF;
    SELECT * INTO r FROM releases WHERE id = p_release;
    IF NOT FOUND THEN outcome := 'no_release'; RETURN; END IF;
    IF r.model_id <> d.model_id THEN outcome := 'model_mismatch'; RETURN; END IF;
    IF r.status = 'withdrawn' THEN outcome := 'release_withdrawn'; RETURN; END IF;
    IF d.firmware_version IS NOT DISTINCT FROM r.version THEN outcome := 'already_installed'; RETURN; END IF;
    INSERT INTO assignments (id, device_id, release_id, version) VALUES (p_id, p_device, p_release, r.version)
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

-- Fails deliveries not applied within p_timeout seconds; any instance may run it at any time.
-- Devices another transaction holds (a heartbeat, another sweep) are skipped until the next sweep.
CREATE FUNCTION ota_expire_deliveries(p_timeout integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    stale record;
    n integer := 0;
BEGIN
    FOR stale IN
        SELECT id, device_id FROM assignments
        WHERE status = 'delivered' AND delivered_at < now() - make_interval(secs => p_timeout)
        ORDER BY delivered_at LIMIT 1000
    LOOP
        PERFORM 1 FROM devices WHERE id = stale.device_id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        UPDATE assignments SET status = 'failed', reason = 'timeout', finished_at = now()
            WHERE id = stale.id AND status = 'delivered'
              AND delivered_at < now() - make_interval(secs => p_timeout);
        IF FOUND THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- Cancels an assignment unless it is final. Returns its status afterwards and whether this call canceled it;
-- no row when there is no such assignment.
CREATE FUNCTION ota_cancel(p_id uuid, OUT status text, OUT canceled boolean) RETURNS SETOF record
LANGUAGE plpgsql AS $$
DECLARE
    dev uuid;
BEGIN
    SELECT a.device_id INTO dev FROM assignments a WHERE a.id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM devices WHERE id = dev FOR UPDATE;
    UPDATE assignments a SET status = 'canceled', reason = 'canceled', finished_at = now()
        WHERE a.id = p_id AND a.status IN ('pending', 'delivered');
    canceled := FOUND;
    SELECT a.status INTO status FROM assignments a WHERE a.id = p_id;
    RETURN NEXT;
END $$;

-- Withdrawing a release cancels its pending assignments (reason release_withdrawn); devices in id order.
CREATE FUNCTION ota_cancel_pending_of(p_release uuid) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    pending record;
    n integer := 0;
BEGIN
    FOR pending IN
        SELECT id, device_id FROM assignments WHERE release_id = p_release AND status = 'pending' ORDER BY device_id
    LOOP
        PERFORM 1 FROM devices WHERE id = pending.device_id FOR UPDATE;
        UPDATE assignments SET status = 'canceled', reason = 'release_withdrawn', finished_at = now()
            WHERE id = pending.id AND status = 'pending';
        IF FOUND THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- The heartbeat, in one round trip (see server/heartbeat/heartbeat.c for the why).
-- Checks the token hash, records presence and the reported state, then acts
-- on the device's active assignment:
--   applied    the device reports the assignment's version;
--   failed     the device reports ota.state "failed" for this assignment;
--   delivered  otherwise, when delivery is allowed and this is not a relay:
--              pending -> delivered, deliveries + 1, the manifest's fields returned;
--   deferred   'recording', 'battery' or 'ble_connected' says why not.
-- A delivered assignment older than p_apply_timeout seconds fails with 'timeout' first.
-- The token hash is compared here, not in C: an attacker can learn at most how many
-- leading bytes of SHA-256(guess) match, which says nothing about the token.
CREATE FUNCTION ota_heartbeat(
    p_device uuid, p_token_hash bytea, p_firmware text, p_connectivity text, p_recording boolean,
    p_battery_percent integer, p_battery_state text, p_ota_assignment uuid, p_ota_state text, p_ota_error text,
    p_relay boolean, p_blocked_battery text[], p_interval integer, p_apply_timeout integer,
    OUT outcome text, OUT deferred text, OUT deliver boolean,
    OUT assignment_id uuid, OUT assignment_status text, OUT release_id uuid, OUT model text, OUT version text,
    OUT object_key text, OUT size bigint, OUT crc32 bigint, OUT sha256 text)
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    a assignments%ROWTYPE;
    ble_connected boolean;
BEGIN
    deliver := false;
    -- A bare presence update need not wait for its WAL flush: losing the last few seconds of "last seen"
    -- in a crash is harmless, and the next heartbeat rewrites it. Any assignment transition below turns
    -- durability back on before this transaction commits.
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
    IF NOT FOUND THEN
        outcome := 'bad_token';
        RETURN;
    END IF;
    outcome := 'ok';

    SELECT * INTO a FROM assignments
        WHERE device_id = p_device AND status IN ('pending', 'delivered') FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF a.status = 'delivered' AND a.delivered_at < now() - make_interval(secs => p_apply_timeout) THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = 'failed', reason = 'timeout', finished_at = now() WHERE id = a.id;
        assignment_id := a.id; assignment_status := 'failed';
        RETURN;
    END IF;
    IF p_firmware = a.version THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = 'applied', reason = NULL, finished_at = now() WHERE id = a.id;
        assignment_id := a.id; assignment_status := 'applied';
        RETURN;
    END IF;
    IF p_ota_state = 'failed' AND p_ota_assignment = a.id THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        UPDATE assignments SET status = 'failed', reason = left(coalesce(p_ota_error, 'failed'), 500),
            finished_at = now() WHERE id = a.id;
        assignment_id := a.id; assignment_status := 'failed';
        RETURN;
    END IF;

    assignment_id := a.id;
    assignment_status := a.status;
    release_id := a.release_id;
    version := a.version;
    IF p_relay THEN
        RETURN; /* a relay never delivers: the phone app offers the update over Bluetooth */
    END IF;
    ble_connected := d.ble_seen_at IS NOT NULL AND d.ble_seen_at > now() - make_interval(secs => 2 * p_interval);
    IF d.recording THEN
        deferred := 'recording';
    ELSIF d.battery_state = ANY (p_blocked_battery) THEN
        deferred := 'battery';
    ELSIF ble_connected THEN
        deferred := 'ble_connected';
    END IF;
    IF deferred IS NOT NULL THEN
        RETURN;
    END IF;

    -- The first delivery is a transition (durable); re-deliveries only count, like presence.
    IF a.status = 'pending' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    UPDATE assignments SET status = 'delivered', delivered_at = coalesce(delivered_at, now()),
        deliveries = deliveries + 1 WHERE id = a.id;
    deliver := true;
    assignment_status := 'delivered';
    SELECT r.model_id, x.object_key, x.size, x.crc32, x.sha256
        INTO model, object_key, size, crc32, sha256
        FROM releases r JOIN artifacts x ON x.release_id = r.id AND x.kind = 'bin'
        WHERE r.id = a.release_id;
END $$;
