-- A device's tags after a bulk change: p_tags with p_add added and p_remove taken away, distinct and in byte order
-- (collation "C"), the form the server keeps every device's tags in (0001_schema.sql).
CREATE OR REPLACE FUNCTION ota_tags_merge(p_tags text[], p_add text[], p_remove text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT t FROM unnest(p_tags || coalesce(p_add, '{}')) AS u(t)
                 WHERE t <> ALL (coalesce(p_remove, '{}')) GROUP BY t ORDER BY t COLLATE "C")
$$;
