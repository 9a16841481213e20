-- Cancels an assignment unless it is final. Returns its status afterwards and whether this call canceled it;
-- no row when there is no such assignment.
CREATE OR REPLACE FUNCTION ota_cancel(p_id uuid, OUT status text, OUT canceled boolean) RETURNS SETOF record
LANGUAGE plpgsql AS $$
DECLARE
    dev uuid;
BEGIN
    SELECT a.device_id INTO dev FROM assignments a WHERE a.id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM devices WHERE id = dev FOR UPDATE;
    UPDATE assignments a SET status = 'canceled', reason = 'canceled', finished_at = now()
        WHERE a.id = p_id AND a.status IN ('pending', 'delivered');
    canceled := FOUND;
    SELECT a.status INTO status FROM assignments a WHERE a.id = p_id;
    RETURN NEXT;
END $$;
