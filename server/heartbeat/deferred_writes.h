#ifndef OTA_SERVER_DEFERRED_WRITES_H
#define OTA_SERVER_DEFERRED_WRITES_H

#include <stddef.h>
#include <stdint.h>

#include "http/worker.h"

/*
 * What heartbeats leave to write, kept in memory by each server thread and
 * written in bulk, 200 rows a statement, the statements spread over most of
 * the next interval so that the database sees an even load, on a database
 * connection of its own:
 *   - every OTA_DEFERRED_WRITE_MS (default 5 s): presence, the devices whose
 *     last_seen_at had grown older than OTA_PRESENCE_INTERVAL, with when
 *     they were seen (devices.last_seen_at), and the signatures made at
 *     first deliveries (assignments.signature, with this server's public
 *     key as signature_key; see heartbeat.c);
 *   - every OTA_DELIVERY_COUNT_MS (default 30 s): re-delivery counts, added
 *     to assignments.deliveries. A delivered assignment is re-sent on each
 *     of its device's heartbeats, about once a minute; kept for half a
 *     minute, its re-deliveries merge into one row update, so that even at a
 *     million devices a re-delivery is a read; and with them the last
 *     download progress each device reported (assignments.progress_*).
 *
 * Why: most heartbeats change nothing, and a heartbeat that writes costs the
 * database about twice one that reads (a transaction id, a row version, WAL,
 * a commit). With a fleet heartbeating once a minute, presence alone would
 * make every second heartbeat a write, and a delivered assignment's manifest
 * is re-sent on every heartbeat until the device reports the new version.
 * Kept here, such a heartbeat is a read; many rows are then written by one
 * statement, and several re-deliveries of one assignment within an interval
 * by one row update. Heartbeats and these writes use different connections,
 * so a write never delays the heartbeats pipelined behind it. What changes a
 * device's state or an assignment's status is written by the heartbeat
 * itself, durably where it must be (migrations/functions/ota_heartbeat.sql).
 *
 * The cost: last_seen_at may be up to two OTA_DEFERRED_WRITE_MS behind its
 * step (kept during one interval, written during most of the next), and
 * GET /v1/assignments/{id}'s deliveries up to a minute behind (30 s kept,
 * then written within one OTA_DEFERRED_WRITE_MS); a crash of the server
 * loses at most that (the next heartbeats rewrite presence; a count is a
 * statistic; a signature is made again). A failed write keeps its rows for the next; a
 * stopping server writes what it holds (SIGTERM).
 */

typedef struct ota_deferred_writes ota_deferred_writes_t;

/** Starts keeping writes for `worker`, written on its loop. Free with ota__deferred_writes_stop. */
ota_deferred_writes_t *ota__deferred_writes_start(ota_worker_t *worker);

/** Device `device_id` (a UUID in text form) was seen now; its last_seen_at is to be rewritten. */
void ota__deferred_writes_presence(ota_deferred_writes_t *w, const char *device_id);

/** Counts one re-delivery of assignment `assignment_id` (a UUID in text form). */
void ota__deferred_writes_redelivery(ota_deferred_writes_t *w, const char *assignment_id);

/**
 * Keeps the download progress the device of `assignment_id` reported: `state`, an index in
 * ota__progress_states (downloading, verifying, installing), `bytes` of `total`, and `delta`, an index in
 * ota__progress_deltas (used, failed) or -1 for a full download. Written with the re-delivery counts; of several
 * reports within an interval the last stands.
 */
void ota__deferred_writes_progress(ota_deferred_writes_t *w, const char *assignment_id, int state, int delta,
                                   int64_t bytes, int64_t total);

/** Keeps `signature` (base64, OTA_MANIFEST_SIGNATURE_B64_LEN characters), made for `assignment_id`, to be stored. */
void ota__deferred_writes_signature(ota_deferred_writes_t *w, const char *assignment_id, const char *signature);

/**
 * Keeps `signature` (base64), made for `assignment_id`'s manifest with the delta whose SHA-256 is `delta_sha256`,
 * to be stored beside the signature of its manifest without one.
 */
void ota__deferred_writes_delta_signature(ota_deferred_writes_t *w, const char *assignment_id, const char *signature,
                                          const char *delta_sha256);

/**
 * The PACE_MS (10 ms) periods from one chunk's sending to the next one's in
 * a write of `rows` rows (200 a chunk) that piled up in `gathered_ms`: at
 * least 1, and so that the chunks spread over three quarters of that time.
 * The first chunk goes at once.
 */
unsigned ota__deferred_writes_pace_periods(int gathered_ms, size_t rows);

/**
 * Writes what is left (running the loop for up to 2 seconds while the
 * statements run), stops, and frees `w`. Call it while the worker's loop
 * still runs nothing else.
 */
void ota__deferred_writes_stop(ota_deferred_writes_t *w);

#endif
