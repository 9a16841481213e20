#ifndef OTA_SERVER_STORAGE_S3_H
#define OTA_SERVER_STORAGE_S3_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/config.h"
#include "ota/err.h"
#include "storage/list.h"

/*
 * The S3 backend's blocking client: one libcurl easy handle per call, each
 * request signed with an Authorization header (storage/sigv4.h), the
 * payload's SHA-256 signed too (x-amz-content-sha256).
 *
 * Threads: every call except ota__s3_presign blocks and belongs on a job
 * thread (core/jobs.h); any number may run at once on one ota_s3_t.
 * libcurl's global state is the program's: call curl_global_init once at
 * start, before any thread exists, and curl_global_cleanup at the end.
 *
 * Keys are raw bytes (any non-empty string; '/' separates folders), encoded
 * the AWS way on the wire.
 *
 * Errors: on failure a one-line reason goes into `err` (cap bytes, always
 * NUL-terminated when cap > 0): S3's <Code> and <Message>, capped, or the
 * transport error. HTTP statuses map to ota_err_t as follows:
 *   404                         OTA_ERR_NOT_FOUND (no such key or bucket)
 *   401, 403                    OTA_ERR_CRYPTO (credentials or signature refused,
 *                               presigned URL expired, access denied)
 *   400 EntityTooLarge, 413     OTA_ERR_TOO_LARGE
 *   408, 429, 5xx, transport    OTA_ERR_UNAVAILABLE (worth retrying later)
 *   any other status            OTA_ERR_INVALID
 * A transfer that stalls (under 1 byte/s for 30 s) or cannot connect within
 * 10 s ends with OTA_ERR_UNAVAILABLE.
 */
typedef struct ota_s3 ota_s3_t;

/**
 * Opens a client for the bucket that `cfg` names (s3_endpoint, s3_bucket,
 * s3_region, s3_access_key, s3_secret_key, s3_session_token, s3_path_style).
 * A NULL endpoint means AWS: https://s3.<region>.amazonaws.com. Copies
 * what it needs: `cfg` may be freed afterwards. Does not contact S3.
 * Returns NULL with a reason in `err` when a setting is missing or bad.
 * Free with ota__s3_close.
 */
ota_s3_t *ota__s3_open(const ota_config_t *cfg, char *err, size_t cap);

/** Frees the client (no call may be running on it). NULL is ignored. */
void ota__s3_close(ota_s3_t *s3);

/** Stores `len` bytes of `data` (borrowed) as object `key`, replacing any object there. Blocking. */
ota_err_t ota__s3_put(ota_s3_t *s3, const char *key, const void *data, size_t len, char *err, size_t cap);

/**
 * Reads object `key` into a malloc'ed `*data` (freed by the caller; never NULL
 * on success, even for an empty object) of `*len` bytes. Never holds more than
 * `max` bytes: a larger object ends the transfer with OTA_ERR_TOO_LARGE.
 * OTA_ERR_NOT_FOUND when there is no such object. On failure `*data` is NULL. Blocking.
 */
ota_err_t ota__s3_get(ota_s3_t *s3, const char *key, size_t max, unsigned char **data, size_t *len, char *err,
                      size_t cap);

/** Deletes object `key`; deleting a missing object succeeds (as in S3). Blocking. */
ota_err_t ota__s3_delete(ota_s3_t *s3, const char *key, char *err, size_t cap);

/**
 * Writes the size in bytes of object `key` into `*size` (HEAD request).
 * OTA_ERR_NOT_FOUND when there is no such object (a HEAD error has no body,
 * so `err` then only names the status). Blocking.
 */
ota_err_t ota__s3_head(ota_s3_t *s3, const char *key, uint64_t *size, char *err, size_t cap);

/**
 * Copies object `src` to `dst` inside the bucket (CopyObject: the bytes never leave S3), replacing `dst`.
 * OTA_ERR_NOT_FOUND when there is no `src`. Blocking.
 */
ota_err_t ota__s3_copy(ota_s3_t *s3, const char *src, const char *dst, char *err, size_t cap);

/**
 * Calls `cb` for each object whose key starts with `prefix` (ListObjectsV2, page after page), with its size and
 * LastModified; a `cb` that returns non-zero ends the listing. Keys holding XML escapes are skipped. Blocking.
 */
ota_err_t ota__s3_list(ota_s3_t *s3, const char *prefix, ota_storage_list_cb cb, void *arg, char *err, size_t cap);

/**
 * Writes into `url` (cap bytes) a presigned URL that lets its bearer `method`
 * ("GET", "PUT", "HEAD" or "DELETE") object `key` from `now` for `ttl` seconds
 * (1..604800). Pure computation (uses a cached signing key): safe on an event
 * loop. OTA_ERR_INVALID on a bad argument, OTA_ERR_TOO_LARGE when the URL
 * does not fit.
 */
ota_err_t ota__s3_presign(ota_s3_t *s3, const char *method, const char *key, time_t now, int ttl, char *url,
                          size_t cap);

#endif
