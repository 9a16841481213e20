#ifndef OTA_SERVER_HTTP_AUTH_H
#define OTA_SERVER_HTTP_AUTH_H

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

#endif
