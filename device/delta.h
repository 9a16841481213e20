#ifndef OTA_DEVICE_DELTA_H
#define OTA_DEVICE_DELTA_H

/*
 * Applying a delta (internal): the zstd patch-from frame the server made
 * from the image this device runs (the base) to the new image. The result
 * is only a candidate: the caller checks its size, CRC-32 and SHA-256
 * against the signed manifest, as for a full download, and falls back to
 * the full image on any failure.
 */

#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"

/**
 * Writes into `out_path` (created or truncated, mode 0600) the image that
 * the delta in `delta_path` makes from the base image in `base_path`. The
 * frame must declare its content size, and that size must be `size`.
 * Returns OTA_OK, or with a one-line reason in `why` (`cap` bytes):
 * OTA_ERR_INVALID when the delta is malformed, truncated, declares another
 * size or needs more memory than the device allows; OTA_ERR_IO when a file
 * cannot be read or written; OTA_ERR_NOMEM. Never reads or writes past the
 * files' ends, whatever the delta holds. The memory it uses does not grow
 * with the images' size (docs/deltas.md says how much).
 */
ota_err_t ota__delta_apply(const char *base_path, const char *delta_path, const char *out_path, uint64_t size,
                           char *why, size_t cap);

#endif
