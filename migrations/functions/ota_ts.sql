-- RFC 3339 UTC text of a timestamp, as the API shows it (second precision).
CREATE OR REPLACE FUNCTION ota_ts(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;
