#ifndef OTA_DEVICE_VERIFY_H
#define OTA_DEVICE_VERIFY_H

/*
 * The checks before a device switches to a new image (internal). Each
 * failure has a reason that starts with the check's name ("signature
 * invalid", "model mismatch", "artifact mismatch", "device mismatch",
 * "expired", "downgrade refused", "already running", "size mismatch",
 * "crc32 mismatch", "sha256 mismatch"): it is what the device reports as
 * ota.error, and what an operator reads as the assignment's reason.
 */

#include <stddef.h>
#include <time.h>

#include "ota/err.h"
#include "ota/manifest.h"

/** What a manifest is checked against: the device as it is now. Borrowed strings. */
typedef struct ota__verify_device {
    const unsigned char *public_key; /**< the pinned server key, OTA_ED25519_PUBLIC_LEN bytes */
    const char *model;               /**< the device's model */
    const char *device_id;           /**< its id */
    const char *version;             /**< the version it runs */
    time_t now;                      /**< its clock */
} ota__verify_device_t;

/**
 * Checks `m` before anything is downloaded, in this order: its Ed25519
 * signature with the pinned key, that it is for the device's model, that
 * its artifact is "bin", that it is for this device id, that `now` is not
 * past its not_after, and that its version is newer than the running one
 * by semver precedence (or older with downgrade true; the very version the
 * device runs is refused as "already running"). OTA_OK; OTA_ERR_CRYPTO
 * with the reason in `reason` (`cap` bytes) when a check fails;
 * OTA_ERR_NOMEM.
 */
ota_err_t ota__verify_manifest(const ota_manifest_t *m, const ota__verify_device_t *dev, char *reason, size_t cap);

/**
 * Checks the image at `path` against `m`: size, then CRC-32, then SHA-256
 * (one read of the file). OTA_OK; OTA_ERR_CRYPTO with the reason when one
 * differs; OTA_ERR_IO (unreadable; reason says so); OTA_ERR_NOMEM.
 */
ota_err_t ota__verify_image(const char *path, const ota_manifest_t *m, char *reason, size_t cap);

/**
 * Checks that the file at `path` has `size` bytes and the SHA-256 `sha256`
 * (64 lower-case hex digits): a delta against its signed manifest, the
 * running slot against the image a delta applies to. OTA_OK;
 * OTA_ERR_CRYPTO ("size mismatch: ...", "sha256 mismatch: ...");
 * OTA_ERR_IO; OTA_ERR_NOMEM.
 */
ota_err_t ota__verify_file(const char *path, uint64_t size, const char *sha256, char *reason, size_t cap);

/** The --corrupt fault: flips the lowest bit of the byte in the middle of the file at `path`. OTA_OK or OTA_ERR_IO. */
ota_err_t ota__corrupt_file(const char *path);

#endif
