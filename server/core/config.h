#ifndef OTA_SERVER_CONFIG_H
#define OTA_SERVER_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "ota/err.h"

/** Largest JSON request body on routes that take no upload (64 KiB). */
#define OTA_MAX_JSON_BODY (64 * 1024)
/** Largest JSON request body on routes that take a fleet filter: room for its 10,000 ids (1 MiB). */
#define OTA_MAX_BULK_JSON_BODY (1024 * 1024)

/**
 * The server's configuration, read once from OTA_* environment variables
 * at start and read-only afterwards (shared by every thread).
 * Strings are malloc'ed and freed by ota__config_free.
 */
typedef struct ota_config {
    char *database_url;        /**< OTA_DATABASE_URL: libpq conninfo or URI ("" = libpq defaults) */
    char *listen_host;         /**< host part of OTA_LISTEN */
    int listen_port;           /**< port part of OTA_LISTEN */
    int threads;               /**< OTA_THREADS: event-loop threads */
    char *public_url;          /**< OTA_PUBLIC_URL, without a trailing '/' */
    char *bootstrap_api_key;   /**< OTA_BOOTSTRAP_API_KEY or NULL */
    size_t max_body;           /**< OTA_MAX_BODY: cap for upload bodies; other routes use OTA_MAX_JSON_BODY */
    int heartbeat_interval;    /**< OTA_HEARTBEAT_INTERVAL, seconds */
    int db_statement_timeout_ms; /**< OTA_DB_STATEMENT_TIMEOUT_MS: a statement running longer is canceled */
    int db_bulk_timeout_ms;      /**< OTA_DB_BULK_TIMEOUT_MS: the same on the side connection (many rows) */
    int access_log;              /**< OTA_ACCESS_LOG: 1 logs one JSON line per request */
    int idle_timeout_ms; /**< OTA_IDLE_TIMEOUT_MS: a connection moving no bytes this long mid-exchange is closed */
    int events_keepalive_s; /**< OTA_EVENTS_KEEPALIVE_S: keep-alive interval of event streams, and a stalled
                                 reader's grace */
    int request_timeout; /**< OTA_REQUEST_TIMEOUT: seconds a request's headers and body may take in all */
    char *metrics_token; /**< OTA_METRICS_TOKEN: the bearer token GET /metrics needs, or NULL (open) */

    /* Object storage (storage/storage.h). */
    char *storage;            /**< OTA_STORAGE: "fs" or "s3" */
    char *storage_dir;        /**< OTA_STORAGE_DIR: where the fs backend keeps blobs */
    char *import_dir;         /**< OTA_IMPORT_DIR: the only folder file:// sources may name, or NULL */
    char *s3_endpoint;        /**< OTA_S3_ENDPOINT: "http(s)://host[:port]", or NULL for AWS */
    char *s3_region;          /**< OTA_S3_REGION */
    char *s3_bucket;          /**< OTA_S3_BUCKET */
    char *s3_access_key;      /**< OTA_S3_ACCESS_KEY */
    char *s3_secret_key;      /**< OTA_S3_SECRET_KEY */
    char *s3_session_token;   /**< OTA_S3_SESSION_TOKEN or NULL */
    int s3_path_style;        /**< OTA_S3_PATH_STYLE: 1 path-style, 0 virtual-hosted */
    int url_ttl;              /**< OTA_URL_TTL: presigned URL lifetime, seconds */
    int job_threads;          /**< OTA_JOB_THREADS: threads for blocking work (uploads, S3) */
    int gc_grace;             /**< OTA_GC_GRACE_S: age, seconds, before an unused object is swept */
    int gc_interval;          /**< OTA_GC_INTERVAL_S: seconds between object sweeps, 0 for none */
    int jobs_queue_max;       /**< OTA_JOBS_QUEUE_MAX: uploads that may wait for a job thread; more get 503 */

    /* Assignments and the heartbeat. */
    char *signing_key;        /**< OTA_SIGNING_KEY: Ed25519 PEM that signs manifests (made at first start) */
    int apply_timeout;        /**< OTA_APPLY_TIMEOUT: seconds a delivered assignment may take to be applied */
    int deferred_write_ms;    /**< OTA_DEFERRED_WRITE_MS: how often presence and signatures are written (deferred_writes.h) */
    int delivery_count_ms;    /**< OTA_DELIVERY_COUNT_MS: how often re-delivery counts are written (deferred_writes.h) */
    int presence_interval;    /**< OTA_PRESENCE_INTERVAL: seconds between rewrites of an unchanged device's last_seen_at */
    int verify_window;        /**< OTA_VERIFY_WINDOW: seconds an applied assignment can still be rolled back */
    /** The interval, timeout, presence interval and window as the heartbeat statement's text parameters, written
     *  once at load (the hot path). */
    char heartbeat_interval_text[12], apply_timeout_text[12], presence_interval_text[12], verify_window_text[12];
    int rollout_tick_ms;      /**< OTA_ROLLOUT_TICK_MS: the rollout engine's pause when it has nothing to do */
    int fleet_cache_ms;       /**< OTA_FLEET_CACHE_MS: how old GET /v1/fleet's numbers may be */
    int device_rate_limit;    /**< OTA_DEVICE_RATE_LIMIT: requests a device token may send in 10 s (0: no limit) */
    char *blocked_battery;    /**< OTA_BLOCKED_BATTERY as a PostgreSQL array literal, e.g. "{low,dead}" */
} ota_config_t;

/**
 * The largest request body a release upload may send: an artifact of OTA_MAX_BODY bytes as base64 in JSON (4/3
 * of it) and a little more.
 */
static inline size_t ota__max_upload_request(const ota_config_t *cfg)
{
    return cfg->max_body + cfg->max_body / 3 + OTA_MAX_JSON_BODY;
}

/**
 * Fills `cfg` from the environment. On a bad value, writes one line naming
 * the variable into `err` (cap bytes) and returns OTA_ERR_INVALID.
 */
ota_err_t ota__config_load(ota_config_t *cfg, char *err, size_t cap);

/** Frees the strings of `cfg`. */
void ota__config_free(ota_config_t *cfg);

/** Prints the table of variables, their meaning and defaults (for --help). */
void ota__config_print_help(FILE *out);

#endif
