#ifndef OTA_SERVER_STORAGE_SIGV4_H
#define OTA_SERVER_STORAGE_SIGV4_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "ota/err.h"

/*
 * AWS Signature Version 4 for S3 (service "s3"), on OpenSSL.
 *
 * Three uses, one canonical form:
 * - presigned URLs (query authentication) that devices download from; the
 *   URL is byte for byte what botocore's generate_presigned_url prints for the
 *   same inputs, query parameter order included (see ota__sigv4_presign);
 * - the Authorization header of the server's own S3 requests;
 * - the check of a presigned URL by the filesystem backend, which serves
 *   blobs at URLs it presigned itself.
 *
 * Addressing: a request names a `host` and a raw `path` (bytes, not yet
 * percent-encoded). For bucket B, key K and an endpoint http(s)://E:
 *   path-style:     host = E,       path = "/" B "/" K
 *   virtual-hosted: host = B "." E, path = "/" K
 * E keeps a non-default port ("127.0.0.1:4569"). ota__sigv4_s3_target does
 * this mapping from an endpoint URL, the way botocore does.
 *
 * Every path segment is encoded the AWS way: A-Z a-z 0-9 - . _ ~ and '/'
 * stay, every other byte (UTF-8 byte by byte) becomes %XX in upper-case hex.
 * S3 paths are not normalised ("a//b", "./" stay as they are).
 *
 * The signing key depends only on the secret, the UTC day and the region,
 * so a caller may compute it once a day (ota__sigv4_key_refresh) and pass it
 * in; the key is then used only when its day is the request's day.
 */

/** Length of an X-Amz-Date, "YYYYMMDDTHHMMSSZ" (without the NUL). */
#define OTA_SIGV4_DATE_LEN 16
/** Bytes of a signing key (HMAC-SHA256 output). */
#define OTA_SIGV4_KEY_LEN 32
/** Hex digits of a SHA-256 or a signature (without the NUL). */
#define OTA_SIGV4_HEX_LEN 64
/** Longest lifetime of a presigned URL, seconds (7 days, as S3 allows). */
#define OTA_SIGV4_EXPIRES_MAX 604800
/** How far ahead of the verifier's clock a presigned URL's X-Amz-Date may be, seconds. */
#define OTA_SIGV4_SKEW_MAX 300
/** Room for a host[:port], with its NUL. */
#define OTA_SIGV4_HOST_MAX 256
/** Room for a raw (decoded) request path, with its NUL. */
#define OTA_SIGV4_PATH_MAX 4096
/** Room for a session token, with its NUL (STS tokens are a few KiB at most). */
#define OTA_SIGV4_TOKEN_MAX 8192
/** Longest access key and longest secret key, bytes. */
#define OTA_SIGV4_ACCESS_KEY_MAX 128
#define OTA_SIGV4_SECRET_MAX 128
/** Longest region name, bytes. */
#define OTA_SIGV4_REGION_MAX 63
/** Room for an Authorization header value, with its NUL. */
#define OTA_SIGV4_AUTH_MAX 1024
/** Most extra headers that ota__sigv4_sign_headers signs. */
#define OTA_SIGV4_EXTRA_MAX 8
/** The payload hash of a request whose body is not signed (presigned URLs always use it). */
#define OTA_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/**
 * Who signs: the credentials and the region of the scope. The strings are
 * borrowed (the caller keeps them alive); a signer holds no mutable state,
 * so one may be shared read-only by every thread.
 */
typedef struct ota_sigv4_signer {
    const char *access_key;    /**< e.g. "AKIAIOSFODNN7EXAMPLE" */
    const char *secret_key;    /**< never leaves this module except through HMACs */
    const char *session_token; /**< NULL or "" when the credentials are not temporary */
    const char *region;        /**< e.g. "us-east-1" */
} ota_sigv4_signer_t;

/** A signing key and the UTC day ("YYYYMMDD") it is for; a per-thread cache. */
typedef struct ota_sigv4_key {
    char date8[9];                    /**< "" until first computed */
    uint8_t bytes[OTA_SIGV4_KEY_LEN]; /**< kSigning */
} ota_sigv4_key_t;

/** One extra header to sign (ota__sigv4_sign_headers); strings borrowed. */
typedef struct ota_sigv4_header {
    const char *name;  /**< lower case, [a-z0-9-_], e.g. "range" */
    const char *value; /**< as sent; signed with spaces trimmed and runs of spaces collapsed */
} ota_sigv4_header_t;

/**
 * One request to sign. All strings are borrowed and NUL-terminated.
 * The time is `amz_date` when given, else `now`.
 */
typedef struct ota_sigv4_request {
    const ota_sigv4_signer_t *signer;
    const char *method; /**< "GET", "PUT", "HEAD", "DELETE" (header signing also takes "POST") */
    const char *scheme; /**< "http" or "https" */
    /** host[:port]; a port that is the scheme's default is kept in the URL but not signed (as botocore does) */
    const char *host;
    const char *path;     /**< raw bytes starting with '/', not percent-encoded: "/bucket/a b+c.bin" */
    time_t now;           /**< UTC seconds since the epoch */
    const char *amz_date; /**< NULL, or "YYYYMMDDTHHMMSSZ", which then wins over `now` */
    /** NULL, or a cached key for this signer's secret and region (used only when its day is the request's) */
    const ota_sigv4_key_t *key;

    /* Header signing only (ota__sigv4_sign_headers); a presign refuses them set. */
    const char *query;               /**< canonical query string (sorted, encoded), NULL or "" for none */
    const char *payload_sha256;      /**< lower-case hex SHA-256 of the body, or OTA_SIGV4_UNSIGNED_PAYLOAD */
    const ota_sigv4_header_t *extra; /**< further headers to sign, or NULL */
    size_t n_extra;                  /**< how many, at most OTA_SIGV4_EXTRA_MAX */
} ota_sigv4_request_t;

/** What ota__sigv4_sign_headers gives: the values of the headers to send. */
typedef struct ota_sigv4_signed {
    char authorization[OTA_SIGV4_AUTH_MAX];     /**< "Authorization" */
    char amz_date[OTA_SIGV4_DATE_LEN + 1];      /**< "x-amz-date" */
    char content_sha256[OTA_SIGV4_HEX_LEN + 1]; /**< "x-amz-content-sha256" */
    const char *security_token; /**< "x-amz-security-token", or NULL: send none (borrowed from the signer) */
} ota_sigv4_signed_t;

/** A presigned URL as a server received it. Spans need not be NUL-terminated. */
typedef struct ota_sigv4_received {
    const char *method;
    size_t method_len;
    const char *host; /**< the Host header (authority) */
    size_t host_len;
    const char *path; /**< still percent-encoded, without the query */
    size_t path_len;
    const char *query; /**< after the '?', still percent-encoded; may be empty */
    size_t query_len;
} ota_sigv4_received_t;

/** The outcome of ota__sigv4_verify. */
typedef enum ota_sigv4_verdict {
    OTA_SIGV4_VALID = 0,
    OTA_SIGV4_MALFORMED,     /**< missing, repeated or unknown parameter, bad encoding, wrong algorithm, credential
                                  (access key or scope), signed headers or token presence, X-Amz-Expires out of
                                  1..OTA_SIGV4_EXPIRES_MAX, or an input over its cap */
    OTA_SIGV4_MISMATCH,      /**< well-formed, but not signed by this signer for this method, host and path */
    OTA_SIGV4_EXPIRED,       /**< now > X-Amz-Date + X-Amz-Expires */
    OTA_SIGV4_NOT_YET_VALID, /**< X-Amz-Date more than OTA_SIGV4_SKEW_MAX seconds ahead of now */
} ota_sigv4_verdict_t;

/** Where to send a request for one object (ota__sigv4_s3_target). */
typedef struct ota_sigv4_target {
    char scheme[6];                /**< "http" or "https" */
    char host[OTA_SIGV4_HOST_MAX]; /**< host[:port] as in the endpoint, the bucket in front when virtual-hosted */
    char path[OTA_SIGV4_PATH_MAX]; /**< raw path: "/bucket/key" or "/key" */
} ota_sigv4_target_t;

/** Writes `t` (UTC) as "YYYYMMDDTHHMMSSZ". OTA_ERR_INVALID when it has no such form. */
ota_err_t ota__sigv4_format_date(time_t t, char out[OTA_SIGV4_DATE_LEN + 1]);

/** Parses a strict "YYYYMMDDTHHMMSSZ" (a real UTC date and time) into `*out`; else OTA_ERR_INVALID. */
ota_err_t ota__sigv4_parse_date(const char *s, time_t *out);

/**
 * The day's signing key: HMAC chain "AWS4"+secret → date8 → region → "s3" →
 * "aws4_request", written to `out`. `date8` is "YYYYMMDD".
 * OTA_ERR_INVALID on a bad argument, OTA_ERR_CRYPTO when OpenSSL fails.
 */
ota_err_t ota__sigv4_signing_key(const char *secret, const char *date8, const char *region,
                                 uint8_t out[OTA_SIGV4_KEY_LEN]);

/** Recomputes `key` for the UTC day of `now` unless it already is that day's. */
ota_err_t ota__sigv4_key_refresh(ota_sigv4_key_t *key, const ota_sigv4_signer_t *signer, time_t now);

/**
 * The day's signing key of one signer, shared by the threads that presign
 * with it: four HMACs once a day instead of on every presign.
 */
typedef struct ota_sigv4_key_cache {
    pthread_mutex_t lock;
    ota_sigv4_key_t key; /* under lock */
} ota_sigv4_key_cache_t;

/** Makes `cache` empty and ready. */
void ota__sigv4_key_cache_init(ota_sigv4_key_cache_t *cache);

/** Wipes the key and releases the lock; `cache` may then be freed. */
void ota__sigv4_key_cache_dispose(ota_sigv4_key_cache_t *cache);

/**
 * Copies the signing key for the UTC day of `now` into `*out`, computing it
 * first when the cache holds another day's. When that fails `*out` is left
 * empty, so a presign derives the key itself (and reports the failure).
 * Wipe `*out` with OPENSSL_cleanse after use.
 */
void ota__sigv4_key_cache_get(ota_sigv4_key_cache_t *cache, const ota_sigv4_signer_t *signer, time_t now,
                              ota_sigv4_key_t *out);

/**
 * URI-encodes `len` bytes of `raw` the AWS way into `out` (cap bytes, NUL
 * added), keeping '/' when `keep_slash` (paths) and encoding it otherwise
 * (query values). `*out_len` (may be NULL) gets the length (on OTA_ERR_TOO_LARGE, the length needed).
 * OTA_ERR_TOO_LARGE when it does not fit.
 */
ota_err_t ota__sigv4_uri_encode(const char *raw, size_t len, bool keep_slash, char *out, size_t cap, size_t *out_len);

/**
 * Decodes the %XX escapes of `len` bytes of `in` into `out` (cap bytes, NUL
 * added; '+' stays '+'). OTA_ERR_INVALID on a bad escape or an encoded NUL,
 * OTA_ERR_TOO_LARGE when it does not fit. `*out_len` may be NULL.
 */
ota_err_t ota__sigv4_uri_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len);

/**
 * Maps an endpoint URL ("http(s)://host[:port]" with at most a trailing '/'),
 * a bucket and a key (raw bytes) to scheme, host and path. Virtual-hosted
 * (`path_style` false) puts the bucket in the host; like botocore it falls
 * back to path-style for a bucket that is not a DNS label (3..63 of a-z 0-9 -,
 * no '.'). OTA_ERR_INVALID on a bad endpoint, bucket or empty key,
 * OTA_ERR_TOO_LARGE over the caps.
 */
ota_err_t ota__sigv4_s3_target(const char *endpoint, const char *bucket, const char *key, bool path_style,
                               ota_sigv4_target_t *out);

/**
 * Writes the presigned URL of `req` valid for `expires` seconds
 * (1..OTA_SIGV4_EXPIRES_MAX) into `out` (cap bytes, NUL added); `*out_len`
 * (may be NULL) gets its length. Payload UNSIGNED-PAYLOAD, signed header
 * "host". Query parameters in botocore's printed order:
 *   X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
 *   X-Amz-SignedHeaders, [X-Amz-Security-Token,] X-Amz-Signature
 * (the signed canonical query is sorted, so there the token comes before
 * X-Amz-SignedHeaders). OTA_ERR_INVALID on a bad argument,
 * OTA_ERR_TOO_LARGE when the URL does not fit, OTA_ERR_CRYPTO when OpenSSL fails.
 */
ota_err_t ota__sigv4_presign(const ota_sigv4_request_t *req, long expires, char *out, size_t cap, size_t *out_len);

/**
 * Signs `req` with an Authorization header. Signed headers: host,
 * x-amz-content-sha256, x-amz-date, x-amz-security-token (when the signer
 * has a token) and `req->extra`, sorted. The caller sends every header of
 * `out` and each extra header, at the URL scheme://host + the encoded path
 * (ota__sigv4_uri_encode with keep_slash) + "?" + query.
 * OTA_ERR_INVALID on a bad argument, OTA_ERR_TOO_LARGE when a value does
 * not fit, OTA_ERR_CRYPTO when OpenSSL fails.
 */
ota_err_t ota__sigv4_sign_headers(const ota_sigv4_request_t *req, ota_sigv4_signed_t *out);

/**
 * Writes the canonical request that ota__sigv4_sign_headers signs for `req`
 * into `out` (cap bytes, NUL added): for tests, and for comparing with the
 * CanonicalRequest of an S3 SignatureDoesNotMatch error.
 */
ota_err_t ota__sigv4_canonical_request(const ota_sigv4_request_t *req, char *out, size_t cap);

/**
 * Writes the string to sign for a canonical request whose SHA-256 is
 * `creq_sha256_hex`, at `amz_date` in `region`, into `out` (cap bytes).
 */
ota_err_t ota__sigv4_string_to_sign(const char *amz_date, const char *region, const char *creq_sha256_hex, char *out,
                                    size_t cap);

/** Writes hex(HMAC-SHA256(key, string_to_sign)) into `out`. OTA_ERR_CRYPTO when OpenSSL fails. */
ota_err_t ota__sigv4_signature(const uint8_t key[OTA_SIGV4_KEY_LEN], const char *string_to_sign,
                               char out[OTA_SIGV4_HEX_LEN + 1]);

/**
 * Checks a presigned URL as received against `signer` at time `now`. Only
 * what ota__sigv4_presign makes passes: the seven X-Amz-* parameters and no
 * other, signed header "host", the signer's access key, region and token.
 * The path is decoded and re-encoded canonically, so an equivalent
 * spelling of the same bytes passes too; callers must use the decoded path
 * (ota__sigv4_uri_decode) to find the object. Signatures are compared in
 * constant time. `key` may be NULL or a cached key for `signer`.
 * A default port (":80", ":443") on the Host is ignored, as when signing.
 */
ota_sigv4_verdict_t ota__sigv4_verify(const ota_sigv4_signer_t *signer, const ota_sigv4_received_t *rcv, time_t now,
                                      const ota_sigv4_key_t *key);

/** A short static name of `v` ("valid", "malformed", ...). */
const char *ota__sigv4_verdict_name(ota_sigv4_verdict_t v);

#endif
