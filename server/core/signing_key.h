#ifndef OTA_SERVER_SIGNING_KEY_H
#define OTA_SERVER_SIGNING_KEY_H

#include <stddef.h>
#include "ota/err.h"
#include "ota/manifest.h"

/*
 * The Ed25519 key that signs manifests (OTA_SIGNING_KEY). Kept in a PEM
 * file, PKCS#8 "PRIVATE KEY" as `openssl genpkey -algorithm ed25519` writes
 * it, so operators can make, inspect and back it up with stock tools.
 *
 * Several instances may start at once against one shared file and must end
 * up with one key: each writes a whole key to a temporary file and links it
 * into place (ota__write_file_durable), so exactly one creator wins and the
 * others read the winner's file. A start killed at any moment leaves no file
 * or a whole one. An empty or unfinished file can only come from an older
 * version, which wrote the file in place: a reader waits briefly for it (that
 * older instance may still be writing), then refuses to start with a message
 * that says to delete it. It is never replaced automatically: a key file is
 * not something to overwrite behind an operator's back.
 */

/** Characters of the base64 of a 32-byte public key (with padding), without the NUL. */
#define OTA_SIGNING_KEY_PUBLIC_B64_LEN 44

/** Largest key file read, in bytes. */
#define OTA_SIGNING_KEY_FILE_MAX 16384

/** How long a reader waits for an empty or unfinished key file to be completed, in milliseconds. */
#define OTA_SIGNING_KEY_WAIT_MS 2000

/**
 * The signing key. A plain value: nothing to free; wipe it with
 * OPENSSL_cleanse when done, it holds the private key.
 */
typedef struct ota_signing_key {
    unsigned char seed[OTA_ED25519_SEED_LEN];               /**< the private key (RFC 8032 seed) */
    unsigned char public_key[OTA_ED25519_PUBLIC_LEN];       /**< its public key */
    char public_base64[OTA_SIGNING_KEY_PUBLIC_B64_LEN + 1]; /**< standard base64 of public_key, NUL-terminated */
} ota_signing_key_t;

/**
 * Loads the Ed25519 private key PEM at `path` into `*key`, or, when no file
 * is there, makes a random key and writes it there first (mode 0600,
 * O_CREAT|O_EXCL, fsync'ed, the folder must exist). When the file is empty
 * or does not end in a newline (a creator is still writing it), retries for
 * up to OTA_SIGNING_KEY_WAIT_MS before giving up. Encrypted keys are not
 * supported. Blocks (file I/O): call it at start, not on an event loop.
 *
 * On an error writes one line naming `path` into `err` (`cap` bytes) and
 * returns OTA_ERR_IO (cannot read or create the file), OTA_ERR_INVALID (not
 * a PEM private key, or not an Ed25519 one), OTA_ERR_TOO_LARGE (file over
 * OTA_SIGNING_KEY_FILE_MAX), OTA_ERR_CRYPTO or OTA_ERR_NOMEM (OpenSSL
 * failed); `*key` is then all zero.
 */
ota_err_t ota__signing_key_load(const char *path, ota_signing_key_t *key, char *err, size_t cap);

#endif
