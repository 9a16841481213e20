#ifndef OTA_SERVER_CORE_FILE_IO_H
#define OTA_SERVER_CORE_FILE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ota/err.h"

/*
 * Whole-file reads, full writes, durable and atomic file creation, and
 * opening a file strictly beneath a folder, on blocking descriptors: job
 * threads and start-up only.
 */

/** What ota__write_file_durable does when the file is already there. */
typedef enum ota_write_mode {
    OTA_WRITE_REPLACE, /**< replace it (rename over it) */
    OTA_WRITE_CREATE,  /**< keep it and answer OTA_ERR_INVALID: the first of several writers wins */
} ota_write_mode_t;

/** The suffix of the temporary files ota__write_file_durable makes beside their target (`<name>.tmp-<uuid>`). */
#define OTA_TEMP_SUFFIX ".tmp-"

/**
 * Reads the regular file at `path` (at most `max` bytes) into a malloc'ed `*data` (the caller frees it).
 * OTA_ERR_NOT_FOUND when missing, OTA_ERR_TOO_LARGE past `max`, OTA_ERR_IO otherwise (errno tells why).
 */
ota_err_t ota__read_file(const char *path, size_t max, unsigned char **data, size_t *len);

/**
 * The same for an open descriptor (borrowed, not closed): OTA_ERR_INVALID when it is not a regular file
 * (a FIFO, a device, a folder), checked with fstat before anything is read.
 */
ota_err_t ota__read_fd(int fd, size_t max, unsigned char **data, size_t *len);

/** Writes all `len` bytes to `fd`, retrying short writes and EINTR. OTA_ERR_IO on failure (errno tells why). */
ota_err_t ota__write_all(int fd, const void *buf, size_t len);

/**
 * Writes `len` bytes as the file `path`, durably and atomically: into a new temporary file beside it
 * (`path` + OTA_TEMP_SUFFIX + a random id, created with `mode`), fsync'ed, then moved into place (rename for
 * OTA_WRITE_REPLACE, link for OTA_WRITE_CREATE) and its folder fsync'ed. Whoever opens `path`, even after a
 * crash at any moment, finds no file, the old one or the whole new one: never an empty or partial file. A crash
 * may leave the temporary file behind (the object sweeper removes old ones). With OTA_WRITE_CREATE an existing
 * file is kept and the answer is OTA_ERR_INVALID. OTA_ERR_IO on failure with a reason in `err` (cap bytes).
 */
ota_err_t ota__write_file_durable(const char *path, const void *data, size_t len, mode_t mode, ota_write_mode_t how,
                                  char *err, size_t cap);

/** Fsyncs the folder that holds `path`, so that a name just made or removed there survives a crash. */
ota_err_t ota__fsync_parent(const char *path);

/**
 * Opens `rel` (a relative path of plain names: no "", "." or ".." segment, no leading '/') beneath the folder
 * `dirfd` with `flags` (O_RDONLY | O_NONBLOCK ...; O_CLOEXEC and O_NOFOLLOW are added), following no symbolic
 * link at any level and never leaving the folder: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or, where the
 * kernel has no openat2 (ENOSYS) or `walk` is set, an equivalent walk one O_NOFOLLOW name at a time. Returns the
 * descriptor (the caller closes it) or -1 with errno: ELOOP for a symbolic link on the way, ENOENT or ENOTDIR
 * for a missing name, EXDEV for an escape, or what open(2) says.
 */
int ota__open_beneath(int dirfd, const char *rel, int flags, bool walk);

#endif
