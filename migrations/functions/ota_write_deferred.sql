-- Writes what a server kept in memory (server/heartbeat/deferred_writes.h), in one transaction, not durable, like
-- bare presence (a lost "last seen" is rewritten by the next heartbeat, a lost count is a statistic, a lost
-- signature is made again):
--   presence: device p_devices[i] was last seen p_ages_ms[i] milliseconds before now(). The age, not a
--     time, crosses from the server, so its clock never matters; last_seen_at only moves forward.
--   deliveries: adds p_counts[i] to the deliveries of assignment p_assignments[i], whatever its status
--     now (the manifests did go out), and stores p_signatures[i], unless NULL, as its signature made by
--     the public key p_key;
--   progress: unless p_progress_states[i] is NULL, the download progress its device reported
--     p_progress_ages_ms[i] milliseconds before now(): kept only while the assignment is delivered (a
--     report that arrives after the update ended is stale), and only when newer than the one kept; with it
--     p_progress_deltas[i], what the device said of the delta ('used', 'failed', NULL: a full download);
--   delta signatures: unless p_delta_signatures[i] is NULL, the signature of its manifest with a delta (88
--     characters), then the SHA-256 of that delta (64), made by the public key p_key.
-- Lock order: device rows first, in id order, then assignment rows, in id order. Everything else that
-- locks both locks the device first (the heartbeat, a cancel, the sweeper), so nothing deadlocks with
-- this, and several servers' writes wait for each other at worst. Returns the rows written.
CREATE OR REPLACE FUNCTION ota_write_deferred(p_devices uuid[], p_ages_ms integer[], p_assignments uuid[],
                                              p_counts integer[], p_signatures text[], p_key text,
                                              p_progress_states text[], p_progress_bytes bigint[],
                                              p_progress_totals bigint[], p_progress_ages_ms integer[],
                                              p_progress_deltas text[], p_delta_signatures text[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    total integer := 0;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF cardinality(p_devices) > 0 THEN
        PERFORM 1 FROM devices WHERE id = ANY (p_devices) ORDER BY id FOR NO KEY UPDATE;
        UPDATE devices d SET last_seen_at = s.seen
            FROM (SELECT id, now() - age_ms * interval '1 millisecond' AS seen
                  FROM unnest(p_devices, p_ages_ms) AS u (id, age_ms)) AS s
            WHERE d.id = s.id AND (d.last_seen_at IS NULL OR d.last_seen_at < s.seen);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END IF;
    IF cardinality(p_assignments) > 0 THEN
        PERFORM 1 FROM assignments WHERE id = ANY (p_assignments) ORDER BY id FOR UPDATE;
        UPDATE assignments a SET deliveries = a.deliveries + c.n,
                signature = coalesce(c.signature, a.signature),
                signature_key = CASE WHEN c.signature IS NULL THEN a.signature_key ELSE p_key END,
                progress_state = CASE WHEN c.fresh THEN c.state ELSE a.progress_state END,
                progress_bytes = CASE WHEN c.fresh THEN c.bytes ELSE a.progress_bytes END,
                progress_total = CASE WHEN c.fresh THEN c.total ELSE a.progress_total END,
                progress_at = CASE WHEN c.fresh THEN c.at ELSE a.progress_at END,
                progress_delta = CASE WHEN c.fresh THEN c.delta ELSE a.progress_delta END,
                delta_signature = coalesce(left(c.delta_signature, 88), a.delta_signature),
                delta_signature_key = CASE WHEN c.delta_signature IS NULL THEN a.delta_signature_key ELSE p_key END,
                delta_signed_sha256 = coalesce(substr(c.delta_signature, 89), a.delta_signed_sha256)
            FROM (SELECT u.*, now() - u.age_ms * interval '1 millisecond' AS at,
                         u.state IS NOT NULL AND s.status = 'delivered'
                         AND (s.progress_at IS NULL OR s.progress_at < now() - u.age_ms * interval '1 millisecond')
                         AS fresh
                  FROM unnest(p_assignments, p_counts, p_signatures, p_progress_states, p_progress_bytes,
                              p_progress_totals, p_progress_ages_ms, p_progress_deltas, p_delta_signatures)
                       AS u (id, n, signature, state, bytes, total, age_ms, delta, delta_signature)
                  JOIN assignments s ON s.id = u.id) AS c
            WHERE a.id = c.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END IF;
    RETURN total;
END $$;
