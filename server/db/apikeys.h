#ifndef OTA_SERVER_DB_APIKEYS_H
#define OTA_SERVER_DB_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <libpq-fe.h>
#include "ota/err.h"

/*
 * API key administration, blocking (command line and start-up only).
 * Keys are stored as their SHA-256; the plain key exists only in the output.
 * The command line's creations and revocations go through the same audited
 * statements as the API's (db/statements.h), with the actor
 * OTA_APIKEY_CLI_ACTOR and no key id.
 */

/** The actor name the audit log shows for `ota-server apikey create|revoke`. */
#define OTA_APIKEY_CLI_ACTOR "ota-server apikey"

/** Whether `role` is one a key may have: "admin" or "viewer". */
bool ota__apikey_role_valid(const char *role);

/** Whether `name` may name a key: 1 to OTA_API_KEY_NAME_MAX bytes. */
bool ota__apikey_name_valid(const char *name);

/** Creates a key named `name` with `role` ("admin" or "viewer"); writes the plain key into `key` (cap bytes). */
ota_err_t ota__apikey_create(PGconn *conn, const char *name, const char *role, char *key, size_t cap, char *err,
                             size_t errcap);

/** Writes every key (newest first) to `out`, one JSON object a line, as GET /v1/api-keys shows them. */
ota_err_t ota__apikey_list(PGconn *conn, FILE *out, char *err, size_t errcap);

/**
 * Revokes the key `id` (a lower-case UUID). `*found` says whether it exists; `*revoked` whether this call revoked
 * it (false when it was revoked already: nothing changes then).
 */
ota_err_t ota__apikey_revoke(PGconn *conn, const char *id, bool *found, bool *revoked, char *err, size_t errcap);

/**
 * Ensures `key` exists as an admin key named "bootstrap" (idempotent). A key that was revoked stays revoked:
 * `*revoked` is then true and the key is refused like any revoked key.
 */
ota_err_t ota__apikey_ensure_bootstrap(PGconn *conn, const char *key, bool *revoked, char *err, size_t errcap);

#endif
