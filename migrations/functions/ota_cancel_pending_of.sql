-- Withdrawing a release cancels its pending assignments (reason release_withdrawn); devices in id order.
CREATE OR REPLACE FUNCTION ota_cancel_pending_of(p_release uuid) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    pending record;
    n integer := 0;
BEGIN
    FOR pending IN
        SELECT id, device_id FROM assignments WHERE release_id = p_release AND status = 'pending' ORDER BY device_id
    LOOP
        PERFORM 1 FROM devices WHERE id = pending.device_id FOR UPDATE;
        UPDATE assignments SET status = 'canceled', reason = 'release_withdrawn', finished_at = now()
            WHERE id = pending.id AND status = 'pending';
        IF FOUND THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;
