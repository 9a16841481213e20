-- The fleet filter as a boolean SQL expression over a devices row aliased d, parenthesized, to be appended with
-- AND to a statement that callers run with EXECUTE (ota_device_page, ota_devices_tag, and any other selection of
-- devices by filter): each statement is then planned for the filter's actual values, and uses the index that suits
-- them (the page indexes, the tags GIN index, the serial or the firmware index, the primary key).
--
-- p_filter is the normalized filter the server makes (server/http/fleet_filter.h): model, tags_all, tags_any,
-- version, serial_prefix, ids, and for device lists ota_status. An absent member does not restrict; every member
-- given must hold. Every value enters the text as a literal quoted by format('%L'), so no value can change the
-- expression's shape. An unknown member is an error rather than ignored, and so is a NULL filter (STRICT: the
-- statement text is NULL, which EXECUTE refuses), so a filter is never wider than meant.
CREATE OR REPLACE FUNCTION ota_fleet_where(p_filter jsonb) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    parts text[] := '{}';
    member text;
BEGIN
    FOR member IN SELECT jsonb_object_keys(p_filter) LOOP
        IF member NOT IN ('model', 'ota_status', 'tags_all', 'tags_any', 'version', 'serial_prefix', 'ids') THEN
            RAISE EXCEPTION 'ota_fleet_where: unknown filter member %', member;
        END IF;
    END LOOP;
    IF p_filter ? 'model' THEN
        parts := parts || format('d.model_id = %L', p_filter->>'model');
    END IF;
    IF p_filter ? 'ota_status' THEN
        parts := parts || format('d.ota_status = %L', p_filter->>'ota_status');
    END IF;
    IF p_filter ? 'tags_all' THEN
        parts := parts || format('d.tags @> %L::text[]',
                                 ARRAY(SELECT jsonb_array_elements_text(p_filter->'tags_all')));
    END IF;
    IF p_filter ? 'tags_any' THEN
        parts := parts || format('d.tags && %L::text[]',
                                 ARRAY(SELECT jsonb_array_elements_text(p_filter->'tags_any')));
    END IF;
    -- A LIKE pattern whose only wildcard is the final %: a fixed prefix, which the serial index (collation "C")
    -- answers as a range scan. The prefix's own \, % and _ are escaped to stand for themselves.
    IF p_filter ? 'serial_prefix' THEN
        parts := parts || format('d.serial LIKE %L',
                                 replace(replace(replace(p_filter->>'serial_prefix', '\', '\\'), '%', '\%'), '_', '\_')
                                 || '%');
    END IF;
    IF p_filter ? 'ids' THEN
        parts := parts || format('d.id = ANY (%L::uuid[])',
                                 ARRAY(SELECT x::uuid FROM jsonb_array_elements_text(p_filter->'ids') AS x));
    END IF;
    -- The range resolved here, once, to the versions devices run that are in it: rows are then matched by equality
    -- (the firmware index), and no row is compared by semver precedence.
    IF p_filter ? 'version' THEN
        parts := parts || format('d.firmware_version = ANY (%L::text[])', ota_fleet_versions(p_filter->>'version'));
    END IF;
    RETURN '(' || coalesce(nullif(array_to_string(parts, ' AND '), ''), 'true') || ')';
END $$;
