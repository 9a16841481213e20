-- Deltas: the bytes that turn one release's image into another's (zstd patch-from; server/releases/delta_builder.c).
-- One row per (to, from) pair, made when a build is claimed, so that one instance builds it and no instance builds
-- it again: a 'failed' or 'not_worth_it' row stays, and the pair is never offered or retried. A 'building' row whose
-- builder vanished (its instance stopped) may be claimed again once it is older than the builder's time limit.
--
-- from_sha256 is the from release's bin SHA-256, copied: release bytes never change (releases/<id>/bin), and the
-- heartbeat finds a delta by the SHA-256 the device reports, in the statement that finds its manifest.
CREATE TABLE release_deltas (
    to_release_id    uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    from_release_id  uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    from_sha256      text NOT NULL CHECK (from_sha256 ~ '^[0-9a-f]{64}$'),
    status           text NOT NULL CHECK (status IN ('building', 'ready', 'not_worth_it', 'failed')),
    -- Set once ready: releases/<to_release_id>/delta-<from_release_id>.
    object_key       text UNIQUE,
    -- The delta's size and SHA-256 (also kept for 'not_worth_it', to show why).
    size             bigint CHECK (size > 0),
    sha256           text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    error            text CHECK (length(error) <= 500),
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    PRIMARY KEY (to_release_id, from_release_id),
    CHECK (from_release_id <> to_release_id),
    CHECK (status <> 'ready' OR (object_key IS NOT NULL AND size IS NOT NULL AND sha256 IS NOT NULL))
);

-- The heartbeat's lookup: the delta into the assignment's release from the image the device runs.
CREATE INDEX release_deltas_from_sha256 ON release_deltas (to_release_id, from_sha256);
-- Deleting a release deletes the deltas made from it, found by this.
CREATE INDEX release_deltas_from_release ON release_deltas (from_release_id);
-- The heartbeat's question when no delta row exists yet: which release of the model has the image the device runs.
CREATE INDEX artifacts_bin_sha256 ON artifacts (sha256) WHERE kind = 'bin';

-- What the device said of the delta with its last progress report: 'used' while it downloads and applies one,
-- 'failed' once it fell back to the full image (the API's progress.delta); NULL for a full download.
ALTER TABLE assignments ADD COLUMN progress_delta text CHECK (progress_delta IN ('used', 'failed'));

-- The signature of the assignment's manifest with a delta, made at its first delivery with that delta and kept like
-- `signature` (server/heartbeat/heartbeat.c): by the key delta_signature_key, for the delta whose SHA-256 is
-- delta_signed_sha256. A device that runs another image gets another delta, and the manifest is signed again.
ALTER TABLE assignments ADD COLUMN delta_signature text, ADD COLUMN delta_signature_key text,
    ADD COLUMN delta_signed_sha256 text;
