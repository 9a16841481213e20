#ifndef OTA_SERVER_HTTP_AUTH_H
#define OTA_SERVER_HTTP_AUTH_H

#include <stdbool.h>

#include "http/call.h"

/*
 * Authentication of a routed call against its route's access rule.
 *
 * The bearer secret names its kind by prefix: "ota_" an API key, "otd_" a
 * device token. Only SHA-256 hashes are stored. A device token is checked
 * against the hash of the device named in the path, compared in constant
 * time; when it does not match, a second lookup by hash tells a token of
 * another device (403) from an unknown one (401).
 */

/**
 * Checks the call's credentials. On success sets call->principal and calls
 * `next(call)` (now or after a database lookup); otherwise answers 401/403
 * (or 503) and frees the call.
 */
void ota__auth_check(ota_call_t *call, void (*next)(ota_call_t *call));

/** Copies the bearer secret of `req` into `out` (OTA_SECRET_MAX bytes); false when absent or malformed. */
bool ota__auth_bearer(h2o_req_t *req, char *out);

/**
 * Answers a device token that did not match the device in the path: 403 when it is another device's
 * token, 401 when it is nobody's. `hash` is the token's hash (ota__secret_hash_pg). Ends the call.
 */
void ota__auth_reject_device_token(ota_call_t *call, const char *hash);

/** Answers 401 `unauthorized` with a WWW-Authenticate challenge. Ends the call. */
void ota__auth_unauthorized(ota_call_t *call, const char *why);

#endif
