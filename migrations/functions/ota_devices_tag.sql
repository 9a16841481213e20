-- POST /v1/devices/tags in one statement: every device matching the fleet filter p_filter (ota_fleet_where) gets
-- the tags p_add and loses the tags p_remove (ota_tags_merge). Returns how many devices the filter matched,
-- whether or not their tags changed; a device whose tags would not change is not rewritten.
--
-- The matched rows are locked in id order, so two bulk changes over overlapping devices wait for each other
-- instead of deadlocking. A device that would end with more than 32 tags fails the statement on the devices_tags
-- check (23514), and no device changes.
CREATE OR REPLACE FUNCTION ota_devices_tag(p_filter jsonb, p_add text[], p_remove text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    matched bigint;
BEGIN
    EXECUTE format('WITH m AS (SELECT d.id FROM devices d WHERE %s ORDER BY d.id FOR UPDATE), '
                   'u AS (UPDATE devices d SET tags = ota_tags_merge(d.tags, $1, $2) FROM m '
                   'WHERE d.id = m.id AND d.tags IS DISTINCT FROM ota_tags_merge(d.tags, $1, $2)) '
                   'SELECT count(*) FROM m', ota_fleet_where(p_filter))
        INTO matched USING p_add, p_remove;
    RETURN matched;
END $$;
