#ifndef OTA_SERVER_STORAGE_FS_H
#define OTA_SERVER_STORAGE_FS_H

#include <stddef.h>

#include "ota/err.h"
#include "storage/list.h"

/*
 * The filesystem storage backend's blob I/O: one file per object under a
 * root folder. Writes go to a temporary file in the same folder, are
 * fsync'ed and renamed over the target, so a reader sees the old object or
 * the new one, never half of one, and a crash leaves no partial object.
 * Blocking: job threads only.
 */

/** Writes `len` bytes as object `key` under `root`. */
ota_err_t ota__fs_put(const char *root, const char *key, const void *data, size_t len, char *err, size_t cap);

/** Reads object `key` (at most `max` bytes) into a malloc'ed `*data`. OTA_ERR_NOT_FOUND when missing. */
ota_err_t ota__fs_get(const char *root, const char *key, size_t max, unsigned char **data, size_t *len, char *err,
                      size_t cap);

/** Copies object `src` to `dst` (a hard link, its time set to now), replacing `dst`. OTA_ERR_NOT_FOUND without `src`.
 */
ota_err_t ota__fs_copy(const char *root, const char *src, const char *dst, char *err, size_t cap);

/**
 * Calls `cb` for each file below the folder that `prefix` names ("releases/"), temporary files included, the
 * hidden ones (".presign-secret") not. A `cb` that returns non-zero ends the listing.
 */
ota_err_t ota__fs_list(const char *root, const char *prefix, ota_storage_list_cb cb, void *arg, char *err, size_t cap);

/** Removes object `key`; a missing object is not an error. */
ota_err_t ota__fs_delete(const char *root, const char *key, char *err, size_t cap);

/** Writes the file path of object `key` into `out`. OTA_ERR_TOO_LARGE when it does not fit. */
ota_err_t ota__fs_path(const char *root, const char *key, char *out, size_t cap);

#endif
