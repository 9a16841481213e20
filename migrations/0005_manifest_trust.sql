-- What a manifest signs besides the release: whether its assignment may take the device back to an older version,
-- and until when it may be applied.
--
-- downgrade: true exactly when the assignment was made with "allow_downgrade" (ota_assign); the manifest carries
-- it, signed, and the device refuses an older version without it.
ALTER TABLE assignments ADD COLUMN downgrade boolean NOT NULL DEFAULT false;

-- not_after: the manifest's deadline, fixed at the first delivery (delivered_at + the apply timeout of the server
-- that delivered it, to the second, rounded down), so that every re-delivery carries the same signed value and the
-- signature made at the first delivery stays valid even when the apply timeout is configured otherwise later.
-- NULL before the first delivery; NULL too for one delivered before this column existed, whose deadline the
-- heartbeat then computes from delivered_at (ota_heartbeat).
ALTER TABLE assignments ADD COLUMN not_after timestamptz;

-- The signatures stored so far cover the older canonical form, which devices no longer accept: the next delivery
-- of each active assignment signs again.
UPDATE assignments SET signature = NULL, signature_key = NULL
    WHERE status IN ('pending', 'delivered') AND signature IS NOT NULL;
