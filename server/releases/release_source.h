#ifndef OTA_SERVER_RELEASE_SOURCE_H
#define OTA_SERVER_RELEASE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "storage/storage.h"

/*
 * Where the bytes of a release artifact come from, and getting them.
 * Fetching blocks (files, HTTP, object storage): job threads only.
 *
 * The failures are the API's upload errors (openapi.yaml): each maps to one
 * exact message of a 422 `upload_failed`.
 */

typedef enum ota_source_kind {
    OTA_SOURCE_BYTES,  /**< a multipart file part: `text`/`len` are the bytes */
    OTA_SOURCE_BLOB,   /**< JSON "blob": `text`/`len` are base64 */
    OTA_SOURCE_FILE,   /**< JSON "file": `text` is a file://, http:// or https:// URL */
    OTA_SOURCE_UPLOAD, /**< JSON "upload_id": the object at `upload_key`, copied to `copy_key`, whose copy must
                            hold `upload_size` bytes */
} ota_source_kind_t;

/** Longest object key of an upload. */
#define OTA_SOURCE_KEY_MAX 128

typedef struct ota_source {
    ota_source_kind_t kind;
    const char *text; /**< borrowed; lives as long as the request body copy that holds it */
    size_t len;
    char upload_id[37];
    char upload_key[OTA_SOURCE_KEY_MAX];
    uint64_t upload_size;
    /** where an upload is copied to and then read from: the release's own key, which no presigned URL reaches */
    char copy_key[OTA_SOURCE_KEY_MAX];
} ota_source_t;

typedef enum ota_upload_error {
    OTA_UPLOAD_OK,
    OTA_UPLOAD_INVALID_ARGUMENTS,
    OTA_UPLOAD_SCHEME_NOT_SUPPORTED,
    OTA_UPLOAD_FILE_NOT_FOUND,
    OTA_UPLOAD_ACCESS_DENIED,
    OTA_UPLOAD_DOWNLOAD_FAILED,
    OTA_UPLOAD_READ_FAILED,
    OTA_UPLOAD_INVALID_BASE64,
    OTA_UPLOAD_UNSUPPORTED_CONTENT,
    OTA_UPLOAD_STORAGE_FAILED, /**< not the client's fault: answered 503 */
} ota_upload_error_t;

/** The exact message the API gives for `e` ("File not found", ...). */
const char *ota__upload_error_message(ota_upload_error_t e);

/**
 * Gets the bytes of `src` into a malloc'ed `*data` (`*len` bytes, freed by
 * the caller), at most `max` bytes and at least one. `import_dir` is
 * OTA_IMPORT_DIR (NULL: every file:// source is refused). Blocking.
 */
ota_upload_error_t ota__source_fetch(const ota_source_t *src, const char *import_dir, ota_storage_t *storage,
                                     size_t max, unsigned char **data, size_t *len);

/**
 * Opens a file:// path for reading (exposed for tests): `*fd` (the caller closes it) when `path` is below
 * `import_dir` and reached without following any symbolic link below it, else -1 and FILE_NOT_FOUND or
 * ACCESS_DENIED as the API defines them (READ_FAILED for other errors). `walk` forces the openat2-less fallback
 * (core/file_io.h). The descriptor is O_NONBLOCK and may be of any type: check it is a regular file.
 */
ota_upload_error_t ota__source_file_open(const char *path, const char *import_dir, bool walk, int *fd);

#endif
