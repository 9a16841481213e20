-- API keys that can be listed and revoked, and the audit log of every write made with an API key.
--
-- A key is never deleted, only revoked: the audit log names the key that made each write, so its row stays,
-- and a revoked key's hash must stay known so that it is refused (401) rather than taken for someone else's.
-- last_used_at is written at most once a minute per key (statements.c, api_key_used), not on every request.
ALTER TABLE api_keys
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN revoked_at   timestamptz;

-- One row per write made with an API key (or by `ota-server apikey`), inserted by the write's own statement
-- (server/db/statements.c, AUDITED), so it commits with the write or not at all.
CREATE TABLE audit_log (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at            timestamptz NOT NULL DEFAULT now(),
    -- NULL for the command line (`ota-server apikey create|revoke`), which uses no key.
    actor_key_id  uuid REFERENCES api_keys (id),
    actor_name    text NOT NULL,
    action        text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    target_type   text NOT NULL,
    -- Text, not uuid: a model's id is a slug. NULL when the write has no single target (bulk tagging).
    target_id     text,
    details       jsonb
);
-- GET /v1/audit: newest first, keyset pages, optionally one action or one target.
CREATE INDEX audit_log_page ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_action_page ON audit_log (action, at DESC, id DESC);
CREATE INDEX audit_log_target_page ON audit_log (target_id, at DESC, id DESC);
