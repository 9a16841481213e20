#ifndef OTA_SERVER_DELIVERY_COUNTS_H
#define OTA_SERVER_DELIVERY_COUNTS_H

#include <stddef.h>

#include "worker.h"

/*
 * What deliveries leave to write, kept in memory and written every
 * OTA_DELIVERY_COUNT_MS (default 5 s), 200 assignments a statement: the
 * re-delivery counts (added to assignments.deliveries) and the signatures
 * made at first deliveries (assignments.signature, with this server's
 * public key as signature_key; see api/heartbeat.c for why they are kept).
 *
 * Why: a delivered assignment's manifest is re-sent (with a fresh URL) on
 * every heartbeat until the device reports the new version, and each one
 * counts. Writing the count in the heartbeat's transaction would make every
 * such heartbeat a write (a new row version, WAL, a transaction id) only to
 * add one; counted here, a re-delivering heartbeat is a read like a plain
 * one, and the re-deliveries of one assignment within an interval cost one
 * row update together. The first delivery (pending -> delivered) is a
 * transition and is counted by ota_heartbeat() itself, durably.
 *
 * The cost: GET /v1/assignments/{id} may show a count up to one interval
 * behind, and a crash of the server loses at most the last interval's
 * re-delivery counts (presence, committed with synchronous_commit off, has
 * the same kind of bound). A failed write keeps its counts for the next.
 * Each thread has its own counter and uses its own database connection;
 * a stopping server writes what it holds (SIGTERM). A signature not yet
 * written only means that a re-delivery in the meantime signs again.
 */

typedef struct ota_delivery_counts ota_delivery_counts_t;

/** Starts counting for `worker`, writing on its loop and connection. Free with ota__delivery_counts_stop. */
ota_delivery_counts_t *ota__delivery_counts_start(ota_worker_t *worker);

/** Counts one re-delivery of assignment `assignment_id` (a UUID in text form). */
void ota__delivery_counts_add(ota_delivery_counts_t *counts, const char *assignment_id);

/** Keeps `signature` (base64, OTA_MANIFEST_SIGNATURE_B64_LEN characters), made for `assignment_id`, to be stored. */
void ota__delivery_counts_signature(ota_delivery_counts_t *counts, const char *assignment_id, const char *signature);

/**
 * Writes what is left (running the loop for up to 2 seconds while the
 * statement runs), stops, and frees `counts`. Call it before the worker's
 * database connection is destroyed.
 */
void ota__delivery_counts_stop(ota_delivery_counts_t *counts);

#endif
