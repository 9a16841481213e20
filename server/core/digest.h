#ifndef OTA_SERVER_DIGEST_H
#define OTA_SERVER_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "ota/err.h"

/**
 * What the server computes of every artifact it stores: its size, CRC-32
 * (IEEE 802.3, as ota_crc32_update), SHA-256 and MD5, the two hashes in
 * lower-case hex. Either all at once over a buffer (ota__digest_buffer) or
 * incrementally over a stream (init, any number of updates, final).
 */

#define OTA_DIGEST_SHA256_HEX_LEN 64 /**< hex digits of a SHA-256, without the NUL */
#define OTA_DIGEST_MD5_HEX_LEN 32    /**< hex digits of an MD5, without the NUL */

/** The digests of one artifact. A plain value: nothing to free. */
typedef struct ota_digest {
    uint64_t size;                              /**< bytes */
    uint32_t crc32;                             /**< CRC-32, IEEE 802.3 */
    char sha256[OTA_DIGEST_SHA256_HEX_LEN + 1]; /**< lower-case hex, NUL-terminated */
    char md5[OTA_DIGEST_MD5_HEX_LEN + 1];       /**< lower-case hex, NUL-terminated */
} ota_digest_t;

/**
 * A digest in progress. Owns two OpenSSL contexts from a successful
 * ota__digest_init until ota__digest_final or ota__digest_dispose releases
 * them; not to be copied, and used by one thread at a time.
 */
typedef struct ota_digest_ctx {
    EVP_MD_CTX *sha256;
    EVP_MD_CTX *md5;
    uint64_t size;
    uint32_t crc32;
} ota_digest_ctx_t;

/**
 * Starts a digest of no bytes in `ctx`. Returns OTA_ERR_NOMEM or
 * OTA_ERR_CRYPTO (a hash not available, e.g. MD5 under a FIPS-only
 * configuration) on failure, in which case `ctx` holds nothing to release
 * (ota__digest_dispose on it is still allowed).
 */
ota_err_t ota__digest_init(ota_digest_ctx_t *ctx);

/**
 * Adds `len` bytes at `data` (which may be NULL when `len` is 0) to a digest
 * started by ota__digest_init. Returns OTA_ERR_CRYPTO if OpenSSL fails; the
 * digest is then unusable and `ctx` must be released with ota__digest_dispose.
 */
ota_err_t ota__digest_update(ota_digest_ctx_t *ctx, const void *data, size_t len);

/**
 * Writes the digests of every byte added into `*out` and releases `ctx`,
 * whatever the outcome (`ctx` then takes no further update or final).
 * Returns OTA_ERR_CRYPTO if OpenSSL fails; `*out` is then all zero (size 0,
 * crc32 0, empty strings).
 */
ota_err_t ota__digest_final(ota_digest_ctx_t *ctx, ota_digest_t *out);

/**
 * Releases `ctx` without a result, e.g. when a stream is abandoned. Safe on a
 * context that failed to initialise or was already finalised or disposed.
 */
void ota__digest_dispose(ota_digest_ctx_t *ctx);

/**
 * The digests of the `len` bytes at `data` (NULL allowed when `len` is 0)
 * into `*out`. Errors as ota__digest_init and ota__digest_final; on an error
 * `*out` is all zero.
 */
ota_err_t ota__digest_buffer(const void *data, size_t len, ota_digest_t *out);

/**
 * SHA-256 of the `len` bytes at `data` (NULL allowed when `len` is 0) into
 * `out`. For the hot path: OpenSSL 3 looks a digest up by name on every
 * EVP_Digest(..., EVP_sha256(), ...) (locks and hash tables, more work
 * than hashing a token); this one is looked up once per process. Returns
 * OTA_ERR_CRYPTO if OpenSSL fails. Thread-safe.
 */
ota_err_t ota__sha256(const void *data, size_t len, uint8_t out[32]);

#endif
