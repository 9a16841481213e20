#ifndef OTA_SERVER_PRESIGN_CACHE_H
#define OTA_SERVER_PRESIGN_CACHE_H

#include <stddef.h>
#include <time.h>

#include "ota/err.h"
#include "ota/manifest.h"

/*
 * Presigned download URLs, reused within the second they were made.
 *
 * Why: a rollout delivers one release to many devices, and every delivery in
 * the same second presigns the same object key with the same X-Amz-Date and
 * expiry. SigV4 is deterministic, so that is the same URL byte for byte: the
 * copy is exactly as fresh as a new one would be, and the HMAC and hashing
 * of a presign (a third of a delivering heartbeat's CPU) are spent once a
 * second per release and thread instead of on every delivery.
 *
 * One cache per event-loop thread (no locks); a few slots chosen by the
 * key's hash, so a handful of releases in flight at once share it.
 */

#define OTA_PRESIGN_CACHE_SLOTS 16

/** Longest object key cached (longer keys are presigned every time). */
#define OTA_PRESIGN_CACHE_KEY_MAX 512

/** How a URL is made on a miss: like ota__storage_presign for "GET". */
typedef ota_err_t (*ota_presign_fn)(void *arg, const char *key, time_t now, int ttl, char *url, size_t cap);

typedef struct ota_presign_cache_slot {
    time_t at; /* 0: empty */
    int ttl;
    char key[OTA_PRESIGN_CACHE_KEY_MAX + 1];
    char url[OTA_MANIFEST_URL_MAX + 1];
} ota_presign_cache_slot_t;

/** A cache; all zero is empty. About 75 KB: allocate it, do not put it on a stack. */
typedef struct ota_presign_cache {
    ota_presign_cache_slot_t slots[OTA_PRESIGN_CACHE_SLOTS];
} ota_presign_cache_t;

/**
 * Writes into `url` (cap bytes) the URL to GET `key` made at `now` for `ttl`
 * seconds: the cached one when one was made for the same key, second and
 * ttl, else a new one from `presign(arg, ...)`, which is then kept.
 * Returns what `presign` returns on a miss (nothing is kept on an error),
 * or OTA_ERR_TOO_LARGE when a cached URL does not fit `cap`.
 */
ota_err_t ota__presign_cache_get(ota_presign_cache_t *cache, ota_presign_fn presign, void *arg, const char *key,
                                 time_t now, int ttl, char *url, size_t cap);

#endif
