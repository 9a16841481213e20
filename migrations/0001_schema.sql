-- The schema: tables, types, indexes and constraints. Stored functions and the triggers that call them are in
-- migrations/functions/, one function per file, applied after the numbered migrations (server/db/migrate.h).
--
-- Every per-device table carries device_id and every hot-path statement is keyed by it, so the per-device tables
-- can be distributed (Citus) by device id without rewriting queries.
--
-- The invariants live in the database, so they hold with any number of server instances:
--   * at most one active (pending or delivered) assignment per device: a partial unique index;
--   * every status change is recorded in assignment_events and mirrored in devices.ota_status: a trigger
--     (functions/ota_assignment_transition.sql), so no statement can forget it;
--   * lock order, everywhere: the device row first, then its assignment rows (the transition trigger updates the
--     device row, so a statement that locked an assignment first could deadlock with a heartbeat);
--   * legal transitions only: pending -> delivered -> applied | failed, and pending -> applied | failed | canceled
--     (a Bluetooth update may skip delivery), delivered -> canceled, applied -> rolled_back (the device fell back
--     to its old firmware within the verify window; functions/ota_rollback_check.sql); failed, canceled and
--     rolled_back never change, and applied changes only to rolled_back.
--
-- devices and assignments keep room on every page for a row's next version (fillfactor 90): presence and
-- re-delivery counts rewrite these rows all day, and an update that finds room on its row's page (and changes no
-- indexed column, as these do not) is a HOT update, which adds no index entry.

CREATE TABLE models (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id                uuid PRIMARY KEY,
    serial            text NOT NULL UNIQUE CHECK (length(serial) BETWEEN 1 AND 128),
    model_id          text NOT NULL REFERENCES models (id),
    name              text CHECK (length(name) <= 200),
    token_hash        bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    firmware_version  text,
    last_seen_at      timestamptz,
    connectivity      text CHECK (connectivity IN ('wifi', 'cellular')),
    recording         boolean NOT NULL DEFAULT false,
    battery_percent   smallint CHECK (battery_percent BETWEEN 0 AND 100),
    battery_state     text CHECK (battery_state IN ('usb', 'high', 'normal', 'low', 'dead')),
    -- When the phone app last relayed for the device (Bluetooth-connected while recent).
    ble_seen_at       timestamptz,
    -- Status of the device's newest assignment ('none' before any), kept by the
    -- assignment transitions so that listing by it needs no join.
    ota_status        text NOT NULL DEFAULT 'none'
                      CHECK (ota_status IN ('none', 'pending', 'delivered', 'applied', 'failed', 'canceled',
                                            'rolled_back')),
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (fillfactor = 90);

-- Keyset pagination: newest first, ties broken by id.
CREATE INDEX devices_page ON devices (created_at DESC, id DESC);
CREATE INDEX devices_model_page ON devices (model_id, created_at DESC, id DESC);
CREATE INDEX devices_ota_status_page ON devices (ota_status, created_at DESC, id DESC);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('admin', 'viewer')),
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- When the key was made: what an operator reviewing the keys asks first, so it is kept from the start.
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A release row is inserted only after every artifact is stored and verified, in the same statement as its
-- artifact rows, so nothing half-made is ever visible.
CREATE TABLE releases (
    id          uuid PRIMARY KEY,
    model_id    text NOT NULL REFERENCES models (id),
    -- Normalized semantic version (no leading 'v').
    version     text NOT NULL CHECK (length(version) BETWEEN 5 AND 128),
    notes       text CHECK (length(notes) <= 10000),
    status      text NOT NULL DEFAULT 'released' CHECK (status IN ('released', 'withdrawn')),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (model_id, version)
);

CREATE INDEX releases_page ON releases (created_at DESC, id DESC);
CREATE INDEX releases_model_page ON releases (model_id, created_at DESC, id DESC);

CREATE TABLE artifacts (
    release_id  uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('bin', 'ufw')),
    -- One object belongs to one artifact: an upload cannot be claimed by two releases.
    object_key  text NOT NULL UNIQUE,
    size        bigint NOT NULL CHECK (size > 0),
    crc32       bigint NOT NULL CHECK (crc32 BETWEEN 0 AND 4294967295),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    md5         text NOT NULL CHECK (md5 ~ '^[0-9a-f]{32}$'),
    PRIMARY KEY (release_id, kind)
);

-- A presigned PUT handed out by POST /v1/uploads; a release may then name it.
CREATE TABLE uploads (
    id          uuid PRIMARY KEY,
    artifact    text NOT NULL CHECK (artifact IN ('bin', 'ufw')),
    size        bigint NOT NULL CHECK (size > 0),
    object_key  text NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE assignments (
    id            uuid PRIMARY KEY,
    device_id     uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- RESTRICT: a release that an assignment names cannot be deleted (409 in_use).
    release_id    uuid NOT NULL REFERENCES releases (id) ON DELETE RESTRICT,
    version       text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'applied', 'failed', 'canceled', 'rolled_back')),
    reason        text CHECK (length(reason) <= 500),
    deliveries    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at  timestamptz,
    -- When it became applied, failed or canceled (an applied one's verify window starts here), or rolled_back.
    finished_at   timestamptz,
    -- A manifest's signature depends only on the assignment (Ed25519 signatures are deterministic and the signed
    -- fields are the assignment's and its release's, which never change), so it is made once, at the first
    -- delivery, and kept here with the public key that made it; re-deliveries reuse it unless the server's key
    -- has changed since. A stored signature is never trusted blindly: the device verifies every manifest.
    signature     text CHECK (length(signature) <= 100),
    signature_key text CHECK (length(signature_key) <= 100),
    -- What a delivery sends of the release: its model and its .bin artifact, copied by ota_assign so that a
    -- delivery joins nothing. A release's model and version never change, its artifacts are never rewritten, and
    -- a release cannot be deleted while an assignment names it, so the copy cannot go stale.
    model         text NOT NULL,
    object_key    text NOT NULL,
    size          bigint NOT NULL,
    crc32         bigint NOT NULL,
    sha256        text NOT NULL
) WITH (fillfactor = 90);

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

-- Bluetooth transfers reported by the phone app. A transfer is bookkeeping only: the assignment moves when the
-- device itself reports the new version (through a heartbeat or a relay), never because the app says a transfer
-- completed. A failed transfer leaves the assignment as it was; the app starts again from zero.
CREATE TABLE ble_transfers (
    id          uuid PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    release_id  uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('started', 'completed', 'failed')),
    error       text CHECK (length(error) <= 500),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ble_transfers_device ON ble_transfers (device_id, created_at DESC);
