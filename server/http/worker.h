#ifndef OTA_SERVER_WORKER_H
#define OTA_SERVER_WORKER_H

#include <stdint.h>

#include <h2o.h>
#include <h2o/multithread.h>

#include "core/config.h"
#include "db/conn.h"
#include "core/jobs.h"
#include "core/signing_key.h"
#include "storage/storage.h"

/*
 * What one event-loop thread owns. Nothing here is shared between threads
 * except `cfg`, which is read-only after start.
 */
typedef struct ota_worker {
    h2o_context_t ctx; /**< first member: a request finds its worker from req->conn->ctx */
    h2o_evloop_t *loop;
    ota_db_t *db;      /**< heartbeats and the API's short queries, pipelined */
    ota_db_t *side_db; /**< statements that scan or write many rows (GET /metrics, the fleet's numbers, bulk tag
                            changes, creating a rollout), with the bulk timeout, so none holds up those pipelined on
                            `db` */
    const ota_config_t *cfg;
    int index; /**< 0 .. threads-1, for logs */
    size_t calls_in_progress; /**< API calls not yet answered, so a stopping thread knows when it is done */
    ota_jobs_t *jobs;         /**< the process's pool for blocking work (shared, thread-safe) */
    ota_jobs_t *reads;        /**< the process's pool for reading blob files (fs storage; NULL with s3): short
                                   reads that never wait behind an upload (shared, thread-safe) */
    ota_jobs_t *delta_jobs;   /**< the process's pool of one thread for building deltas (releases/delta_builder.h):
                                   seconds of CPU each, that must not hold up `jobs` (shared, thread-safe) */
    h2o_multithread_receiver_t jobs_done; /**< where this loop's finished jobs (of any pool) come back */
    ota_storage_t *storage;   /**< the process's object storage (shared; presigning is read-only) */
    const ota_signing_key_t *signing_key; /**< the manifest signing key (shared, read-only) */
    ota_manifest_signer_t *signer;        /**< this thread's OpenSSL key made from it, for signing manifests */
    struct ota_events *events; /**< this thread's Server-Sent Events hub (events.h) */
    struct ota_presign_cache *presign_cache; /**< download URLs reused within their second (presign_cache.h) */
    struct ota_rate_limit *device_limit; /**< the device tokens' rate limit (device_limit.h; shared, thread-safe), or
                                              NULL when OTA_DEVICE_RATE_LIMIT is 0 */
    struct ota_deferred_writes *deferred_writes; /**< presence and re-delivery counts written in bulk (deferred_writes.h) */
    char instance_id[9];       /**< random per process, so request ids differ across instances */
    uint64_t request_seq;      /**< request ids made on this thread */
} ota_worker_t;

/** The worker that owns `req`. */
static inline ota_worker_t *ota__worker_of(h2o_req_t *req)
{
    return (ota_worker_t *)req->conn->ctx;
}

#endif
