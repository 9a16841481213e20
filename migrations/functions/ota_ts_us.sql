-- RFC 3339 UTC text of a timestamp with microseconds: the exact position of a row in a keyset cursor.
CREATE OR REPLACE FUNCTION ota_ts_us(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
