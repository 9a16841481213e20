#ifndef OTA_SERVER_CONFIG_H
#define OTA_SERVER_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "ota/err.h"

/** Largest JSON request body on routes that take no upload (64 KiB). */
#define OTA_MAX_JSON_BODY (64 * 1024)

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
} ota_config_t;

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
