-- 0001: models, devices and API keys.
--
-- Every per-device table carries device_id and every hot-path statement is
-- keyed by it, so the per-device tables can later be distributed (Citus)
-- by device id without rewriting queries.

-- RFC 3339 UTC text of a timestamp, as the API shows it (second precision).
CREATE FUNCTION ota_ts(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- The same with microseconds: the exact position of a row in a keyset cursor.
CREATE FUNCTION ota_ts_us(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

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
                      CHECK (ota_status IN ('none', 'pending', 'delivered', 'applied', 'failed', 'canceled')),
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Keyset pagination: newest first, ties broken by id.
CREATE INDEX devices_page ON devices (created_at DESC, id DESC);
CREATE INDEX devices_model_page ON devices (model_id, created_at DESC, id DESC);
CREATE INDEX devices_ota_status_page ON devices (ota_status, created_at DESC, id DESC);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('admin', 'viewer')),
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
