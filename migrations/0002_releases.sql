-- 0002: firmware releases, their artifacts in object storage, and presigned uploads.
--
-- A release row is inserted only after every artifact is stored and
-- verified, in the same statement as its artifact rows, so nothing half-made
-- is ever visible.

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
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
