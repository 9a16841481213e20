#ifndef OTA_DEVICE_UTIL_H
#define OTA_DEVICE_UTIL_H

/*
 * Small helpers of libota-device (internal): bounded strings, paths in the
 * state directory, whole-file reads and atomic file replacement, time.
 * Nothing here allocates except ota__read_file, and nothing aborts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ota/err.h"

/** Copies the NUL-terminated `src` into `dst` (`cap` bytes). OTA_ERR_TOO_LARGE (and `dst` = "") when it does not fit.
 */
ota_err_t ota__copy(char *dst, size_t cap, const char *src);

/** snprintf into `dst` (`cap` bytes). OTA_ERR_TOO_LARGE when the result was cut (`dst` then holds the cut text). */
ota_err_t ota__fmt(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** `dir` + "/" + `name` into `dst` (`cap` bytes); OTA_ERR_TOO_LARGE when it does not fit. */
ota_err_t ota__path(char *dst, size_t cap, const char *dir, const char *name);

/**
 * Reads the whole file at `path` into a malloc'ed, NUL-terminated buffer
 * (`*out`, the caller frees it; `*len` without the NUL). OTA_ERR_NOT_FOUND
 * when it does not exist, OTA_ERR_TOO_LARGE when it is over `cap` bytes,
 * OTA_ERR_IO, OTA_ERR_NOMEM.
 */
ota_err_t ota__read_file(const char *path, size_t cap, char **out, size_t *len);

/**
 * Replaces `dir`/`name` with `len` bytes of `data` atomically: writes
 * `name`.tmp (mode `mode`), fsyncs it, renames it over `name`, fsyncs `dir`.
 * A failure leaves the old file as it was. OTA_ERR_IO or OTA_ERR_TOO_LARGE (path).
 */
ota_err_t ota__write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode);

/** fsyncs the directory `dir` (makes renames and unlinks in it durable). */
ota_err_t ota__fsync_dir(const char *dir);

/** Removes `dir`/`name` if it exists. OTA_OK when it is gone. */
ota_err_t ota__remove(const char *dir, const char *name);

/** Writes all `len` bytes at offset `off` of `fd`, retrying short writes and EINTR. False on an error. */
bool ota__pwrite_all(int fd, const void *data, size_t len, uint64_t off);

/** Milliseconds of the monotonic clock. */
int64_t ota__now_ms(void);

/** Sleeps `ms` milliseconds (EINTR resumes the sleep). */
void ota__sleep_ms(long ms);

/** A UUID in lower-case hyphenated 8-4-4-4-12 form. */
bool ota__uuid_valid(const char *s);

/** `s` consists of 1..`max` printable ASCII characters other than space (0x21..0x7e). */
bool ota__token_valid(const char *s, size_t max);

#endif
