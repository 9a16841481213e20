#ifndef OTA_SERVER_DB_APIKEYS_H
#define OTA_SERVER_DB_APIKEYS_H

#include <stddef.h>
#include <libpq-fe.h>
#include "ota/err.h"

/*
 * API key administration, blocking (command line and start-up only).
 * Keys are stored as their SHA-256; the plain key exists only in the output.
 */

/** Creates a key named `name` with `role` ("admin" or "viewer"); writes the plain key into `key` (cap bytes). */
ota_err_t ota__apikey_create(PGconn *conn, const char *name, const char *role, char *key, size_t cap, char *err,
                             size_t errcap);

/** Ensures `key` exists as an admin key named "bootstrap" (idempotent). */
ota_err_t ota__apikey_ensure_bootstrap(PGconn *conn, const char *key, char *err, size_t errcap);

#endif
