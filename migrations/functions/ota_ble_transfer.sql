-- Records a transfer unless the device reports recording. Outcomes: created, recording, no_release.
CREATE OR REPLACE FUNCTION ota_ble_transfer(p_id uuid, p_device uuid, p_release uuid, p_state text, p_error text,
                                            OUT outcome text, OUT created_at text)
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM devices WHERE id = p_device AND recording) THEN
        outcome := 'recording';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM releases WHERE id = p_release) THEN
        outcome := 'no_release';
        RETURN;
    END IF;
    INSERT INTO ble_transfers (id, device_id, release_id, state, error) VALUES (p_id, p_device, p_release, p_state,
                                                                             left(p_error, 500));
    outcome := 'created';
    SELECT ota_ts(t.created_at) INTO created_at FROM ble_transfers t WHERE t.id = p_id;
END $$;
