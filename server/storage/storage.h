#ifndef OTA_SERVER_STORAGE_STORAGE_H
#define OTA_SERVER_STORAGE_STORAGE_H

#include <stddef.h>
#include <time.h>

#include "core/config.h"
#include "ota/err.h"
#include "storage/list.h"
#include "storage/sigv4.h"

/*
 * Object storage for release artifacts, behind one interface:
 *
 * - `s3`: any S3-compatible endpoint (AWS, MinIO, ...), path-style or
 *   virtual-hosted, requests signed with SigV4 (storage/sigv4.h).
 * - `fs`: the embedded default, blobs under OTA_STORAGE_DIR. The server
 *   serves them itself under /blobs/ at presigned URLs checked with the same
 *   SigV4 code (api/blobs.c), so a device cannot tell the two apart.
 *
 * Keys are made by the server only: [A-Za-z0-9._-] segments joined by '/'.
 *
 * The blocking functions (put, get, delete) run on job threads only
 * (core/jobs.h), never on an event loop. Presigning is pure computation.
 */
typedef struct ota_storage ota_storage_t;

/** Opens the backend that `cfg` names. On failure writes a reason into `err` and returns NULL. */
ota_storage_t *ota__storage_open(const ota_config_t *cfg, char *err, size_t cap);

/** Frees the backend. */
void ota__storage_close(ota_storage_t *st);

/** True when `key` (`len` bytes) is a key this server could have made (no "..", no empty segment, a safe charset). */
int ota__storage_key_valid(const char *key, size_t len);

/** Stores `len` bytes under `key`, replacing any object there; atomic for readers. Blocking. */
ota_err_t ota__storage_put(ota_storage_t *st, const char *key, const void *data, size_t len, char *err, size_t cap);

/**
 * Reads the object at `key` into a malloc'ed buffer (`*data`, freed by the caller), at most
 * `max` bytes (OTA_ERR_TOO_LARGE beyond). OTA_ERR_NOT_FOUND when there is no such object. Blocking.
 */
ota_err_t ota__storage_get(ota_storage_t *st, const char *key, size_t max, unsigned char **data, size_t *len,
                           char *err, size_t cap);

/**
 * Copies the object at `src` to `dst`, replacing any object there: S3 CopyObject, or a hard link in fs (objects
 * are never written in place, so later writes to `src` do not reach `dst`). `dst`'s modification time is the
 * copy's. OTA_ERR_NOT_FOUND when there is no `src`. Blocking.
 */
ota_err_t ota__storage_copy(ota_storage_t *st, const char *src, const char *dst, char *err, size_t cap);

/**
 * Calls `cb` for each object whose key starts with `prefix` (a folder: "releases/"); for fs, the temporary files
 * of unfinished writes too (`<key>.tmp-<id>`). A `cb` that returns non-zero ends the listing. Blocking.
 */
ota_err_t ota__storage_list(ota_storage_t *st, const char *prefix, ota_storage_list_cb cb, void *arg, char *err,
                            size_t cap);

/** Deletes the object at `key`; deleting a missing object succeeds. Blocking. */
ota_err_t ota__storage_delete(ota_storage_t *st, const char *key, char *err, size_t cap);

/** The folder of presigned uploads: the only keys a presigned PUT may name. */
#define OTA_STORAGE_UPLOADS_PREFIX "uploads/"

/**
 * Writes into `url` (cap bytes) a URL that lets its bearer `method` ("GET" or "PUT") the object at `key`
 * from `now` for `ttl` seconds (1..604800). A PUT is presigned only for keys under OTA_STORAGE_UPLOADS_PREFIX
 * (else OTA_ERR_INVALID), so no URL handed out can ever write a release's bytes. Non-blocking.
 */
ota_err_t ota__storage_presign(ota_storage_t *st, const char *method, const char *key, time_t now, int ttl, char *url,
                               size_t cap);

/**
 * ota__storage_presign without the uploads-only rule for PUT: for `ota-server presign`, which its user runs
 * holding the storage credentials anyway. Never for a URL handed out over the network.
 */
ota_err_t ota__storage_presign_any(ota_storage_t *st, const char *method, const char *key, time_t now, int ttl,
                                   char *url, size_t cap);

/** True when the backend is `fs`, whose blobs this server serves itself. */
int ota__storage_is_fs(const ota_storage_t *st);

/** The fs backend's blob folder (NULL for s3). */
const char *ota__storage_fs_root(const ota_storage_t *st);

/** The credentials the fs backend presigns its URLs with (NULL for s3); shared by instances using one folder. */
const ota_sigv4_signer_t *ota__storage_fs_signer(const ota_storage_t *st);

#endif
