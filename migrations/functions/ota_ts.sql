-- RFC 3339 UTC text of a timestamp, as the API shows it (second precision).
CREATE OR REPLACE FUNCTION ota_ts(t timestamptz) RETURNS text
-- STABLE, not IMMUTABLE: to_char is STABLE (it reads the locale), and PostgreSQL inlines a SQL function only when
-- its body is no more volatile than it says. Inlined, it costs nothing; not inlined, it is parsed again in every
-- transaction that calls it (the heartbeat's manifest deadline, every listing's timestamps).
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;
