-- The decision for one heartbeat, given the device's state after this heartbeat (recording, battery
-- state, when a relay was last seen) and its active assignment `a`:
--   'timeout'     delivered longer ago than p_apply_timeout seconds: fails with reason 'timeout';
--   'applied'     the reported firmware is the assignment's version;
--   'failed'      the device reports ota.state 'failed' for this assignment;
--   'relay'       a relayed heartbeat, which never delivers;
--   'recording', 'battery', 'ble_connected'   delivery deferred, and why;
--   'deliver'     the manifest goes out (pending -> delivered, or re-sent while delivered).
CREATE OR REPLACE FUNCTION ota_heartbeat_decide(
    a assignments, p_firmware text, p_ota_assignment uuid, p_ota_state text, p_relay boolean,
    recording boolean, battery_state text, ble_seen_at timestamptz, p_blocked_battery text[], p_interval integer,
    p_apply_timeout integer)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN a.status = 'delivered' AND a.delivered_at < now() - make_interval(secs => p_apply_timeout) THEN 'timeout'
        WHEN p_firmware = a.version THEN 'applied'
        WHEN p_ota_state = 'failed' AND p_ota_assignment = a.id THEN 'failed'
        WHEN p_relay THEN 'relay'
        WHEN recording THEN 'recording'
        WHEN battery_state = ANY (p_blocked_battery) THEN 'battery'
        WHEN ble_seen_at > now() - make_interval(secs => 2 * p_interval) THEN 'ble_connected'
        ELSE 'deliver'
    END
$$;
