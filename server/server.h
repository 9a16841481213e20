#ifndef OTA_SERVER_SERVER_H
#define OTA_SERVER_SERVER_H

#include "core/config.h"

/*
 * The HTTP server: cfg->threads event-loop threads, each with its own
 * SO_REUSEPORT listener, h2o context and database connection, sharing only
 * the read-only configuration. HTTP/1.1 only (a front proxy may speak
 * HTTP/2; libh2o 2.2.5 has no fix for HTTP/2 Rapid Reset).
 *
 * SIGTERM or SIGINT stops it gracefully: every thread stops accepting,
 * finishes the requests it has (for at most OTA_DRAIN_SECONDS) and exits.
 */

/** Seconds a stopping server waits for requests in progress. */
#define OTA_DRAIN_SECONDS 10

/** Runs the server until a stop signal. Returns 0 on a clean stop, 1 when it could not start. */
int ota__server_run(const ota_config_t *cfg);

#endif
