-- Fails deliveries not applied within p_timeout seconds; any instance may run it at any time.
-- Devices another transaction holds (a heartbeat, another sweep) are skipped until the next sweep.
CREATE OR REPLACE FUNCTION ota_expire_deliveries(p_timeout integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    stale record;
    n integer := 0;
BEGIN
    FOR stale IN
        SELECT id, device_id FROM assignments
        WHERE status = 'delivered' AND delivered_at < now() - make_interval(secs => p_timeout)
        ORDER BY delivered_at LIMIT 1000
    LOOP
        PERFORM 1 FROM devices WHERE id = stale.device_id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        UPDATE assignments SET status = 'failed', reason = 'timeout', finished_at = now()
            WHERE id = stale.id AND status = 'delivered'
              AND delivered_at < now() - make_interval(secs => p_timeout);
        IF FOUND THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;
