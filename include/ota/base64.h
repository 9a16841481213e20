#ifndef OTA_BASE64_H
#define OTA_BASE64_H

#include <stddef.h>
#include "ota/err.h"

/**
 * Base64 (RFC 4648 section 4, with '=' padding) and base64url (section 5,
 * without padding). Decoders are strict: they refuse characters outside the
 * alphabet, wrong padding, and non-zero bits left over in the last symbol,
 * so every byte string has exactly one accepted encoding.
 */

/** Length of the standard (padded) encoding of `len` bytes, without the NUL. */
size_t ota_base64_encoded_len(size_t len);

/** Length of the base64url (unpadded) encoding of `len` bytes, without the NUL. */
size_t ota_base64url_encoded_len(size_t len);

/**
 * Encodes `len` bytes of `src` into `dst` as standard base64 and
 * NUL-terminates it. `dst` must hold ota_base64_encoded_len(len) + 1 bytes.
 */
void ota_base64_encode(const void *src, size_t len, char *dst);

/** As ota_base64_encode, in the base64url alphabet without padding. */
void ota_base64url_encode(const void *src, size_t len, char *dst);

/**
 * Decodes `len` characters of standard base64 at `src` into `dst`, which has
 * room for `cap` bytes; stores the decoded length in `*out_len`.
 * Returns OTA_ERR_INVALID on a malformed input, OTA_ERR_TOO_LARGE when `cap`
 * is too small. `dst` needs at most len / 4 * 3 bytes. On an error
 * `*out_len` is untouched and the contents of `dst` are unspecified.
 */
ota_err_t ota_base64_decode(const char *src, size_t len, void *dst, size_t cap, size_t *out_len);

/**
 * As ota_base64_decode, for unpadded base64url. `dst` needs at most
 * len / 4 * 3 + 2 bytes (exactly len / 4 * 3 + len % 4 - 1 when len % 4 != 0).
 */
ota_err_t ota_base64url_decode(const char *src, size_t len, void *dst, size_t cap, size_t *out_len);

#endif
