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
-- indexed column, as these do not) is a HOT update, which adds no index entry. The indexed columns that do change
-- (a device's tags, its firmware_version, its ota_status) change seldom: an operator's edit, an update installed.

CREATE TABLE models (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id                uuid PRIMARY KEY,
    -- Collation "C": the fleet filter's serial_prefix is a LIKE 'prefix%', which only a byte-ordered index answers
    -- as a range scan (functions/ota_fleet_where.sql).
    serial            text COLLATE "C" NOT NULL UNIQUE CHECK (length(serial) BETWEEN 1 AND 128),
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
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Labels an operator selects devices by (eu, beta, site:lyon). The server checks their form and keeps them
    -- distinct and in byte order (hence collation "C", the order ota_tags_merge() sorts them in too).
    tags              text[] COLLATE "C" NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 32)
) WITH (fillfactor = 90);

-- Keyset pagination: newest first, ties broken by id.
CREATE INDEX devices_page ON devices (created_at DESC, id DESC);
CREATE INDEX devices_model_page ON devices (model_id, created_at DESC, id DESC);
CREATE INDEX devices_ota_status_page ON devices (ota_status, created_at DESC, id DESC);
-- The fleet filter (functions/ota_fleet_where.sql): tags_all (@>) and tags_any (&&) through the GIN index; a
-- version range through the firmware index, first to list the distinct versions devices run (one probe per
-- version), then to find the devices running the ones in range.
CREATE INDEX devices_tags ON devices USING gin (tags);
CREATE INDEX devices_firmware_version ON devices (firmware_version);

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

-- A rollout takes one release to the devices a fleet filter matched when it was made (its targets), in waves.
-- Its settings are kept twice: `config` as the API shows them, and the columns the engine reads.
CREATE TABLE rollouts (
    id                   uuid PRIMARY KEY,
    name                 text CHECK (length(name) BETWEEN 1 AND 200),
    -- RESTRICT: a release that a rollout names cannot be deleted (409 in_use).
    release_id           uuid NOT NULL REFERENCES releases (id) ON DELETE RESTRICT,
    model                text NOT NULL,
    version              text NOT NULL,
    status               text NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'canceled')),
    paused_reason        text CHECK (paused_reason IN ('created', 'operator', 'failure_threshold', 'release_withdrawn')),
    config               jsonb NOT NULL,
    -- Cumulative percentages of the targets, strictly increasing, the last one 100.
    waves                numeric[] NOT NULL CHECK (cardinality(waves) BETWEEN 1 AND 20),
    max_per_minute       integer CHECK (max_per_minute > 0),
    success_min_percent  numeric NOT NULL CHECK (success_min_percent BETWEEN 0 AND 100),
    soak_s               integer NOT NULL CHECK (soak_s >= 0),
    failure_max_percent  numeric NOT NULL CHECK (failure_max_percent BETWEEN 0 AND 100),
    min_failures         integer NOT NULL CHECK (min_failures >= 1),
    retries_max          integer NOT NULL CHECK (retries_max >= 0),
    backoff_s            integer NOT NULL CHECK (backoff_s >= 0),
    -- The newest open wave; 0 until the rollout first starts.
    current_wave         smallint NOT NULL DEFAULT 0,
    -- The failures counted when an operator last resumed the rollout (functions/ota_rollout_failure_gate.sql).
    failures_at_resume   bigint NOT NULL DEFAULT 0,
    -- True once a paused or ended rollout has no active assignment left for the engine to cancel.
    settled              boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at           timestamptz,
    finished_at          timestamptz
);
CREATE INDEX rollouts_page ON rollouts (created_at DESC, id DESC);
CREATE INDEX rollouts_release ON rollouts (release_id);
-- What the engine visits every tick: the running rollouts and those with assignments left to cancel.
CREATE INDEX rollouts_active ON rollouts (id) WHERE status = 'running' OR NOT settled;

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
    sha256        text NOT NULL,
    -- The last download progress its device reported while it was delivered (the API's "progress"), written in
    -- bulk with the re-delivery counts (server/heartbeat/deferred_writes.h), so it may lag by up to a minute.
    progress_state  text CHECK (progress_state IN ('downloading', 'verifying', 'installing')),
    progress_bytes  bigint CHECK (progress_bytes >= 0),
    progress_total  bigint CHECK (progress_total >= 0),
    progress_at     timestamptz,
    -- The rollout that made it (NULL for a manual assignment). Its transitions move the rollout's target
    -- (functions/ota_rollout_follow.sql).
    rollout_id    uuid REFERENCES rollouts (id)
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

-- One wave of a rollout: when it opened and when its success gate passed.
CREATE TABLE rollout_waves (
    rollout_id      uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    wave            smallint NOT NULL CHECK (wave >= 1),
    percent         numeric NOT NULL,
    opened_at       timestamptz,
    -- When the wave's applied share last reached the success threshold (NULL while below it): the soak runs from
    -- here.
    gate_met_at     timestamptz,
    gate_passed_at  timestamptz,
    PRIMARY KEY (rollout_id, wave)
);

-- One device of a rollout, fixed when the rollout is made. `state` is where the device stands: waiting (its
-- wave is not open), blocked (waiting for admission: another assignment is active, a retry's backoff runs, or
-- the rollout was paused), skipped (it already ran the release's version or a newer one), or the status of its
-- current assignment (pending, delivered, applied, failed, rolled_back, canceled).
-- Keyed by device_id first, like every per-device table (see the top of this file).
-- No foreign keys: a rollout inserts its targets, up to a million, in one statement, and checking two keys per
-- row would be half of its time. The rows come from devices in the statement that inserts them, after their
-- rollout's row; deleting a device deletes its targets (a trigger, functions/ota_device_deleted.sql), and a
-- target whose device was deleted while its rollout was being made is dropped at admission
-- (functions/ota_rollout_admit.sql). Rollouts are never deleted.
CREATE TABLE rollout_targets (
    device_id      uuid NOT NULL,
    rollout_id     uuid NOT NULL,
    wave           smallint NOT NULL,
    state          text NOT NULL CHECK (state IN ('waiting', 'blocked', 'skipped', 'pending', 'delivered', 'applied',
                                                  'failed', 'rolled_back', 'canceled')),
    assignment_id  uuid,
    -- Assignments made for this target so far (1 + the retries); one taken back by a pause does not count.
    attempts       smallint NOT NULL DEFAULT 0,
    reason         text CHECK (length(reason) <= 500),
    -- For a blocked target: admission is not tried before this.
    retry_at       timestamptz,
    PRIMARY KEY (device_id, rollout_id)
);
-- GET /v1/rollouts/{id}/devices, ordered by wave then device, with or without a state.
CREATE INDEX rollout_targets_page ON rollout_targets (rollout_id, wave, device_id);
CREATE INDEX rollout_targets_state_page ON rollout_targets (rollout_id, state, wave, device_id);
-- Admission: the blocked targets whose time has come.
CREATE INDEX rollout_targets_due ON rollout_targets (rollout_id, retry_at) WHERE state = 'blocked';

-- The rollouts' counts per wave and target state, as a ledger of signed deltas: every statement that changes
-- targets appends its net change (a trigger, functions/ota_rollout_targets_counted.sql), and the engine now and
-- then folds a rollout's rows into one per (wave, state). Appending takes no lock, so a thousand devices applying
-- at once never queue on a counter row, and the sum of a rollout's rows is exact in any snapshot. The pseudo-state
-- 'retries' counts the retry assignments made.
CREATE TABLE rollout_counts (
    rollout_id  uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    wave        smallint NOT NULL,
    state       text NOT NULL,
    n           bigint NOT NULL
);
CREATE INDEX rollout_counts_rollout ON rollout_counts (rollout_id);

-- A paced rollout's first deliveries of the last 65 seconds, in 5-second buckets (parallel arrays: bucket number
-- since the epoch, deliveries in it). One row per paced rollout: locking it serializes the budget check across
-- every server instance (functions/ota_rollout_pacing_take.sql).
CREATE TABLE rollout_pacing (
    rollout_id  uuid PRIMARY KEY REFERENCES rollouts (id) ON DELETE CASCADE,
    buckets     bigint[] NOT NULL DEFAULT '{}',
    counts      integer[] NOT NULL DEFAULT '{}'
);

-- What happened to a rollout, for GET /v1/events (event: rollout). Numbered from the assignment events'
-- sequence, so one cursor orders both kinds.
CREATE TABLE rollout_events (
    id          bigint PRIMARY KEY DEFAULT nextval('assignment_events_id_seq'),
    rollout_id  uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    event       text NOT NULL,
    status      text NOT NULL,
    wave        smallint,
    reason      text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
