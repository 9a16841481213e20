#include "http/device_limit.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/rate_limit.h"
#include "core/secret.h"
#include "http/auth.h"
#include "http/respond.h"

/*
 * The limiter's key for a token: FNV-1a over the whole token, then a 64-bit finalizer so that the low bits, which
 * choose the table's set, depend on every byte. No cryptographic hash is needed: to land on a device's key one must
 * know its token (or guess 64 bits), and whoever knows the token may as well use it.
 */
static uint64_t token_key(const char *token)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)token; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

/* A coarse monotonic clock (a few ms of resolution, no system call): windows last seconds. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool ota__device_limit_check(ota_call_t *call)
{
    ota_rate_limit_t *limit = call->worker->device_limit;
    char token[OTA_SECRET_MAX];
    uint32_t retry_after_s = 0;
    if (limit == NULL || !ota__auth_bearer(call->req, token) ||
        strncmp(token, OTA_DEVICE_TOKEN_PREFIX, strlen(OTA_DEVICE_TOKEN_PREFIX)) != 0)
        return true;
    if (ota__rate_limit_take(limit, token_key(token), now_ms(), &retry_after_s))
        return true;
    ota__respond_rate_limited(call, retry_after_s);
    return false;
}
