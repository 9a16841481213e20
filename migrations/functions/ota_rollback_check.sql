-- Rollback detection, for ota_heartbeat: a device with no active assignment reports firmware other than what it
-- reported before. If its newest assignment is applied, was applied less than p_verify_window seconds ago and is of
-- another version than the one now reported, the device did not keep it: its bootloader fell back to the old slot,
-- or someone flashed other firmware. The assignment becomes rolled_back with reason 'reported <version>', durably,
-- like every other transition. Returns whether it did.
--
-- Only the newest assignment (by created_at, as the assignments_device_page index orders them) is looked at: a later
-- assignment supersedes an older applied one, whatever became of it, so what the device runs now answers for the
-- later one, not for the release it was given before.
--
-- The caller holds the device row (ota_heartbeat's pass 2), which keeps the lock order: device, then assignment.
CREATE OR REPLACE FUNCTION ota_rollback_check(p_device uuid, p_firmware text, p_verify_window integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE assignments a SET status = 'rolled_back', reason = left('reported ' || p_firmware, 500),
        finished_at = now()
    WHERE a.device_id = p_device
      AND a.id = (SELECT n.id FROM assignments n WHERE n.device_id = p_device
                  ORDER BY n.created_at DESC, n.id DESC LIMIT 1)
      AND a.status = 'applied'
      AND a.version <> p_firmware
      AND a.finished_at > now() - make_interval(secs => p_verify_window);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM set_config('synchronous_commit', 'on', true);
    RETURN true;
END $$;
