#ifndef OTA_SERVER_CORE_FILE_IO_H
#define OTA_SERVER_CORE_FILE_IO_H

#include <stddef.h>

#include "ota/err.h"

/* Whole-file reads and full writes on a blocking descriptor: job threads and start-up only. */

/**
 * Reads the regular file at `path` (at most `max` bytes) into a malloc'ed `*data` (the caller frees it).
 * OTA_ERR_NOT_FOUND when missing, OTA_ERR_TOO_LARGE past `max`, OTA_ERR_IO otherwise (errno tells why).
 */
ota_err_t ota__read_file(const char *path, size_t max, unsigned char **data, size_t *len);

/** Writes all `len` bytes to `fd`, retrying short writes and EINTR. OTA_ERR_IO on failure (errno tells why). */
ota_err_t ota__write_all(int fd, const void *buf, size_t len);

#endif
