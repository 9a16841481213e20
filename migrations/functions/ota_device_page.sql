-- One keyset page of GET /v1/devices: the devices matching the fleet filter p_filter (ota_fleet_where), newest
-- first, strictly after the cursor (p_after_ts, p_after_id), at most p_limit of them. Run with EXECUTE so that
-- the plan is made for the filter's values: a common tag walks the page index and checks each row, a rare one
-- reads the tags index and sorts what it found, whichever the statistics say is cheaper.
CREATE OR REPLACE FUNCTION ota_device_page(p_filter jsonb, p_after_ts timestamptz, p_after_id uuid,
                                           p_limit integer)
RETURNS SETOF devices
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT d.* FROM devices d WHERE %s AND (d.created_at, d.id) < ($1, $2) '
                                'ORDER BY d.created_at DESC, d.id DESC LIMIT $3', ota_fleet_where(p_filter))
        USING p_after_ts, p_after_id, p_limit;
END $$;
