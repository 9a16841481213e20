#ifndef OTA_SERVER_HTTP_DEVICE_LIMIT_H
#define OTA_SERVER_HTTP_DEVICE_LIMIT_H

#include <stdbool.h>

#include "http/call.h"

/*
 * The rate limit of device tokens: a device token that sends more than
 * OTA_DEVICE_RATE_LIMIT requests (default 10) in 10 s gets 429
 * `rate_limited` with Retry-After, per instance, on every route (heartbeat,
 * relay, GET /update, Bluetooth transfer reports, and any other it is sent
 * to). It is checked before the body is read and before any database work,
 * so a refused request costs a hash of the token and a table lookup
 * (core/rate_limit.h), and writes nothing.
 *
 * The count is kept per token, not per device id in the path: the id is no
 * secret, so anyone could otherwise use up a device's requests and keep the
 * device itself out. Unknown tokens are counted as well (each on its own).
 */

/** How long a window of the device rate limit lasts. */
#define OTA_DEVICE_RATE_WINDOW_MS 10000

/**
 * True when the call may go on: it carries no device token, or one still within its limit (counting this request),
 * or the limit is off. Otherwise answers 429 `rate_limited` with Retry-After, ends the call and returns false.
 */
bool ota__device_limit_check(ota_call_t *call);

#endif
