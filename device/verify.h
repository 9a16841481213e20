#ifndef OTA_DEVICE_VERIFY_H
#define OTA_DEVICE_VERIFY_H

/*
 * The checks before a device switches to a new image (internal). Each
 * failure has a reason that starts with the check's name ("signature
 * invalid", "model mismatch", "size mismatch", "crc32 mismatch", "sha256
 * mismatch"): it is what the device reports as ota.error, and what an
 * operator reads as the assignment's reason.
 */

#include <stddef.h>

#include "ota/err.h"
#include "ota/manifest.h"

/**
 * Checks `m` before anything is downloaded: its Ed25519 signature with the
 * pinned `public_key`, that it is for `model` and that its artifact is
 * "bin". OTA_OK; OTA_ERR_CRYPTO with the reason in `reason` (`cap` bytes)
 * when a check fails; OTA_ERR_NOMEM.
 */
ota_err_t ota__verify_manifest(const ota_manifest_t *m, const unsigned char public_key[OTA_ED25519_PUBLIC_LEN],
                               const char *model, char *reason, size_t cap);

/**
 * Checks the image at `path` against `m`: size, then CRC-32, then SHA-256
 * (one read of the file). OTA_OK; OTA_ERR_CRYPTO with the reason when one
 * differs; OTA_ERR_IO (unreadable; reason says so); OTA_ERR_NOMEM.
 */
ota_err_t ota__verify_image(const char *path, const ota_manifest_t *m, char *reason, size_t cap);

/** The --corrupt fault: flips the lowest bit of the byte in the middle of the file at `path`. OTA_OK or OTA_ERR_IO. */
ota_err_t ota__corrupt_file(const char *path);

#endif
