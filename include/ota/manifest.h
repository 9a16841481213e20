#ifndef OTA_MANIFEST_H
#define OTA_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "ota/err.h"
#include "ota/semver.h"

/**
 * The update manifest: what a heartbeat answer carries in "ota" and the
 * device client installs from (openapi.yaml, the heartbeat). One codec for the
 * server and the device client. Only jansson (in ota_manifest_decode) and
 * OpenSSL (sign, verify, key derivation) allocate, and only for the call;
 * a failure is returned, never an abort from this code. Every function is
 * safe from any thread on distinct manifests.
 *
 * The wire form (ota_manifest_encode) is one JSON object with these
 * members, each required:
 *
 *   assignment_id   string: UUID, lower-case hyphenated 8-4-4-4-12 hex
 *   device_id       string: UUID, same form: the device the manifest was made for
 *   release_id      string: UUID, same form
 *   model           string: [a-z0-9][a-z0-9-]{0,62}
 *   version         string: a semantic version as ota_semver_parse takes it,
 *                   in normalized form (no leading 'v'), at most OTA_SEMVER_MAX bytes
 *   downgrade       true or false: true when the assignment was made with
 *                   "allow_downgrade" (the only way a device may go back to
 *                   an older version)
 *   artifact        string: "bin" or "ufw" (a heartbeat only carries "bin")
 *   url             string: http:// or https:// URL, 1..OTA_MANIFEST_URL_MAX bytes,
 *                   only the characters RFC 3986 allows (letters, digits,
 *                   -._~:/?#[]@!$&'()*+,;=%)
 *   url_expires_at  string: RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" (a real
 *                   calendar date, seconds 00..59, nothing else)
 *   not_after       string: the same time format: the manifest is not to be
 *                   acted on after this instant (when the assignment's apply
 *                   timeout ends)
 *   size            number: integer, 1..OTA_MANIFEST_SIZE_MAX (bytes of the artifact)
 *   crc32           number: integer, 0..4294967295 (CRC-32, IEEE 802.3, include/ota/crc32.h)
 *   sha256          string: 64 lower-case hex digits
 *   signature       string: standard base64 with '=' padding (RFC 4648 section 4)
 *                   of the 64-byte Ed25519 signature, so exactly 88 characters
 *
 * and one optional member, present when the server offers a delta (the
 * bytes that turn the image the device runs into this one, zstd
 * patch-from; docs/deltas.md):
 *
 *   delta           object, each member required:
 *     from_sha256     string: 64 lower-case hex digits: the image the delta applies to
 *     url             string: as url above, where the delta is
 *     url_expires_at  string: as url_expires_at above
 *     size            number: integer, 1..OTA_MANIFEST_SIZE_MAX (bytes of the delta)
 *     sha256          string: 64 lower-case hex digits: the delta's SHA-256
 *
 * The decoders ignore members they do not know (a newer server may add
 * some), refuse duplicate member names, and refuse anything else that is
 * not exactly the above.
 *
 * THE SIGNED BYTES (a wire contract: the server, the device client and any
 * other verifier must produce them byte for byte). The signature is Ed25519
 * (RFC 8032, pure, no context, no prehash) over the canonical form of the
 * eleven fields other than url, url_expires_at and signature:
 *
 *   {"artifact":A,"assignment_id":I,"crc32":C,"device_id":D,"downgrade":G,"model":M,"not_after":N,
 *    "release_id":R,"sha256":H,"size":S,"version":V}
 *
 * and, when the manifest carries a delta, of those and the delta's three
 * fields other than its url and url_expires_at, as a twelfth member:
 *
 *   {"artifact":A,"assignment_id":I,"crc32":C,"delta":{"from_sha256":F,"sha256":DH,"size":DS},
 *    "device_id":D,...as above}
 *
 * - exactly these members, names in ascending byte order as shown, and
 *   nothing else: no whitespace anywhere, no trailing newline;
 * - C, S and DS are the integers in decimal, without sign, leading zeros,
 *   fraction or exponent ("0" for zero);
 * - G is the literal true or false;
 * - A, I, D, M, N, R, H, V, F and DH are JSON strings: '"', the bytes of the value, '"',
 *   where '"' is written \" and '\' is written \\, the control characters
 *   U+0008, U+0009, U+000A, U+000C, U+000D are written \b \t \n \f \r, the
 *   other control characters below U+0020 as \u00XX with lower-case hex,
 *   and every other byte as itself (no \/, no \u escape of non-ASCII).
 *
 * For a valid manifest the escapes never occur (the formats above exclude
 * those characters), and the result equals the RFC 8785 (JCS)
 * canonicalization of that object. Example (without a delta):
 *
 *   {"artifact":"bin","assignment_id":"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e","crc32":3735928559,
 *    "device_id":"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f","downgrade":false,"model":"bota-pin",
 *    "not_after":"2026-11-22T10:00:00Z","release_id":"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4",
 *    "sha256":"<64 hex digits>","size":42892,"version":"1.2.0"}
 *
 * (shown on several lines here; the real form is one line).
 *
 * Why device_id, not_after and downgrade are signed: the manifest travels
 * over plain HTTP, so anyone on the path can keep one and send it again.
 * Signed, they tie it to one device, to the time its assignment may be
 * applied, and to the version order the operator chose; a device that
 * checks them (device/verify.c) cannot be sent another device's update, a
 * stale one, or an old vulnerable version it was never told to go back to.
 * The delta's fields are signed so that the bytes a device patches with are
 * the server's; the device still checks the patched image against the
 * full image's size, CRC-32 and SHA-256 before it installs it.
 */

#define OTA_MANIFEST_UUID_LEN 36          /**< characters of a UUID in text form */
#define OTA_MANIFEST_MODEL_MAX 63         /**< longest model id */
#define OTA_MANIFEST_ARTIFACT_MAX 3       /**< longest artifact name ("bin", "ufw") */
#define OTA_MANIFEST_URL_MAX 4096         /**< longest url, in bytes */
#define OTA_MANIFEST_TIME_LEN 20          /**< characters of "YYYY-MM-DDTHH:MM:SSZ" */
#define OTA_MANIFEST_SHA256_HEX_LEN 64    /**< hex digits of a SHA-256 */
#define OTA_MANIFEST_SIGNATURE_LEN 64     /**< bytes of an Ed25519 signature */
#define OTA_MANIFEST_SIGNATURE_B64_LEN 88 /**< characters of its base64 */
#define OTA_ED25519_SEED_LEN 32           /**< bytes of an Ed25519 private key (the RFC 8032 seed) */
#define OTA_ED25519_PUBLIC_LEN 32         /**< bytes of an Ed25519 public key */

/**
 * Largest size: 2^53 - 1, the largest integer that every JSON parser
 * (including those that read numbers as IEEE doubles) keeps exact (RFC 7493).
 */
#define OTA_MANIFEST_SIZE_MAX UINT64_C(9007199254740991)

/** Room, with the NUL, for the canonical form of any manifest that ota_manifest_validate accepts. */
#define OTA_MANIFEST_CANONICAL_MAX 832

/** Room, with the NUL, for ota_manifest_encode of any manifest that ota_manifest_validate accepts. */
#define OTA_MANIFEST_JSON_MAX 9344

/** Longest JSON text ota_manifest_decode takes (unknown members included), in bytes. */
#define OTA_MANIFEST_DECODE_MAX 65536

/** A manifest's delta (see above). */
typedef struct ota_manifest_delta {
    char from_sha256[OTA_MANIFEST_SHA256_HEX_LEN + 1]; /**< signed: the image it applies to */
    char url[OTA_MANIFEST_URL_MAX + 1];                /**< not signed */
    char url_expires_at[OTA_MANIFEST_TIME_LEN + 1];    /**< not signed */
    uint64_t size;                                     /**< signed: bytes of the delta */
    char sha256[OTA_MANIFEST_SHA256_HEX_LEN + 1];      /**< signed: SHA-256 of the delta */
} ota_manifest_delta_t;

/**
 * A manifest. A plain value with fixed-size fields: nothing to free, may be
 * copied. Strings are NUL-terminated inside their arrays.
 */
typedef struct ota_manifest {
    char assignment_id[OTA_MANIFEST_UUID_LEN + 1];      /**< signed */
    char device_id[OTA_MANIFEST_UUID_LEN + 1];          /**< signed: the device it was made for */
    char release_id[OTA_MANIFEST_UUID_LEN + 1];         /**< signed */
    char model[OTA_MANIFEST_MODEL_MAX + 1];             /**< signed */
    char version[OTA_SEMVER_MAX + 1];                   /**< signed */
    bool downgrade;                                     /**< signed: the assignment allows an older version */
    char artifact[OTA_MANIFEST_ARTIFACT_MAX + 1];       /**< signed */
    char url[OTA_MANIFEST_URL_MAX + 1];                 /**< not signed (changes on every delivery) */
    char url_expires_at[OTA_MANIFEST_TIME_LEN + 1];     /**< not signed */
    char not_after[OTA_MANIFEST_TIME_LEN + 1];          /**< signed: not to be acted on after this instant */
    uint64_t size;                                      /**< signed */
    uint32_t crc32;                                     /**< signed */
    char sha256[OTA_MANIFEST_SHA256_HEX_LEN + 1];       /**< signed */
    char signature[OTA_MANIFEST_SIGNATURE_B64_LEN + 1]; /**< base64 of the Ed25519 signature */
    bool has_delta;                                     /**< `delta` holds a delta (signed: present or not) */
    ota_manifest_delta_t delta;                         /**< valid when has_delta */
} ota_manifest_t;

/**
 * Checks every field of `m` against the formats above (the same checks as
 * the decoders). Returns OTA_OK or OTA_ERR_INVALID.
 */
ota_err_t ota_manifest_validate(const ota_manifest_t *m);

/**
 * Writes the canonical form of `m` (the signed bytes, see above) into `out`,
 * which has room for `cap` bytes, NUL-terminates it and stores its length
 * (without the NUL) in `*len`. A pure serializer: it checks only that the
 * strings are NUL-terminated inside their arrays (OTA_ERR_INVALID
 * otherwise), not their formats. Returns OTA_ERR_TOO_LARGE when `cap` is
 * less than the length + 1; `*len` then holds the length needed and `out`
 * is unspecified. `out` may be NULL when `cap` is 0.
 */
ota_err_t ota_manifest_canonical(const ota_manifest_t *m, char *out, size_t cap, size_t *len);

/**
 * Signs `m` with the Ed25519 private key `seed` (the 32-byte RFC 8032
 * private key) and stores the base64 signature in m->signature. The signed
 * fields must be valid (OTA_ERR_INVALID otherwise; url, url_expires_at and
 * signature are not looked at). Returns OTA_ERR_NOMEM or OTA_ERR_CRYPTO
 * when OpenSSL fails; on any error m->signature is untouched.
 */
ota_err_t ota_manifest_sign(ota_manifest_t *m, const unsigned char seed[OTA_ED25519_SEED_LEN]);

/**
 * An Ed25519 private key ready to sign many manifests. Making OpenSSL's key
 * from the seed derives the public key, which costs as much as a signature;
 * a signer does it once. Used by one thread at a time.
 */
typedef struct ota_manifest_signer ota_manifest_signer_t;

/** A signer for the private key `seed`; NULL when OpenSSL fails. Free with ota_manifest_signer_free. */
ota_manifest_signer_t *ota_manifest_signer_new(const unsigned char seed[OTA_ED25519_SEED_LEN]);

/** Frees `signer` (NULL allowed). */
void ota_manifest_signer_free(ota_manifest_signer_t *signer);

/** ota_manifest_sign with a signer: the same signature, the same errors. */
ota_err_t ota_manifest_sign_with(ota_manifest_t *m, const ota_manifest_signer_t *signer);

/**
 * Verifies m->signature over the canonical form of `m` with the Ed25519
 * public key `public_key`. Returns OTA_OK when it holds; OTA_ERR_CRYPTO
 * when it does not (any signed field changed, another key); OTA_ERR_INVALID
 * when m->signature is not the base64 of 64 bytes or a signed field is not
 * valid; OTA_ERR_NOMEM when OpenSSL cannot allocate. url and
 * url_expires_at are neither signed nor looked at.
 */
ota_err_t ota_manifest_verify(const ota_manifest_t *m, const unsigned char public_key[OTA_ED25519_PUBLIC_LEN]);

/**
 * Writes `m` as compact JSON with its 14 members in the documented order
 * (assignment_id, device_id, release_id, model, version, downgrade,
 * artifact, url, url_expires_at, not_after, size, crc32, sha256, signature,
 * then delta when it has one, its members in the documented order) into `out` (room for `cap` bytes),
 * NUL-terminated, and stores the length without the NUL in `*len`. `m`
 * must pass ota_manifest_validate (OTA_ERR_INVALID otherwise); then
 * OTA_MANIFEST_JSON_MAX bytes always suffice. Returns OTA_ERR_TOO_LARGE
 * when `cap` is too small, with the length needed in `*len`.
 */
ota_err_t ota_manifest_encode(const ota_manifest_t *m, char *out, size_t cap, size_t *len);

/**
 * Parses `len` bytes at `json` (need not be NUL-terminated) as a manifest
 * object into `*out`. Strict, as described above; duplicate member names,
 * NUL bytes and JSON text over OTA_MANIFEST_DECODE_MAX bytes are refused. Returns
 * OTA_ERR_INVALID on any malformed input, OTA_ERR_TOO_LARGE when `len` is
 * over the cap, OTA_ERR_NOMEM when the parser cannot allocate. The parser
 * stops at its first failure: OTA_ERR_NOMEM says nothing of the text after
 * that point, which may be malformed too. `*out` is written only on success
 * (the unused bytes of its arrays are zero). The signature is checked for
 * its form only: call ota_manifest_verify.
 *
 * Caveat: jansson 2.14 itself may assert (abort) when an allocation fails
 * while its lexer grows a token buffer (akheron/jansson#362, unfixed in
 * 2.14); this function reports every allocation failure that jansson returns.
 */
ota_err_t ota_manifest_decode(const char *json, size_t len, ota_manifest_t *out);

/**
 * As ota_manifest_decode, from an object already parsed with jansson (e.g.
 * the "ota" member of a heartbeat answer, which the caller should parse
 * with JSON_REJECT_DUPLICATES). `obj` stays the caller's. Strings with an
 * embedded NUL (JSON_ALLOW_NUL) are refused. Returns OTA_OK or OTA_ERR_INVALID.
 */
ota_err_t ota_manifest_decode_json(const json_t *obj, ota_manifest_t *out);

/**
 * Derives the Ed25519 public key of the private key `seed` into `pub`.
 * Returns OTA_OK, or OTA_ERR_CRYPTO when OpenSSL fails (out of memory included).
 */
ota_err_t ota_ed25519_public_from_seed(const unsigned char seed[OTA_ED25519_SEED_LEN],
                                       unsigned char pub[OTA_ED25519_PUBLIC_LEN]);

#endif
