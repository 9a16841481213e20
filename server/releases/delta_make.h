#ifndef OTA_SERVER_RELEASES_DELTA_MAKE_H
#define OTA_SERVER_RELEASES_DELTA_MAKE_H

/*
 * Making a delta: a zstd frame in patch-from mode, the old image as the
 * reference, long-distance matching on, its content size declared (the
 * device checks it). Pure computation, for a job thread: no I/O, no global
 * state.
 */

#include <stddef.h>

#include "ota/err.h"

/**
 * The delta from `from` (`from_len` bytes) to `to` (`to_len` bytes, at
 * least 1) into `*out`, a malloc'ed buffer of `*out_len` bytes the caller
 * frees. Returns OTA_OK, OTA_ERR_NOMEM, or OTA_ERR_INVALID with a one-line
 * reason in `err` (`cap` bytes) when zstd refuses (e.g. images too large for
 * its window).
 */
ota_err_t ota__delta_make(const void *from, size_t from_len, const void *to, size_t to_len, unsigned char **out,
                          size_t *out_len, char *err, size_t cap);

#endif
