-- 0004: Bluetooth transfers reported by the phone app.
--
-- A transfer is bookkeeping only: the assignment moves when the device
-- itself reports the new version (through a heartbeat or a relay), never
-- because the app says a transfer completed. A failed transfer leaves the
-- assignment as it was; the app starts again from zero.

CREATE TABLE ble_transfers (
    id          uuid PRIMARY KEY,
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    release_id  uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('started', 'completed', 'failed')),
    error       text CHECK (length(error) <= 500),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ble_transfers_device ON ble_transfers (device_id, created_at DESC);

-- Records a transfer unless the device reports recording. Outcomes: created, recording, no_release.
CREATE FUNCTION ota_ble_transfer(p_id uuid, p_device uuid, p_release uuid, p_state text, p_error text,
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
