#include "storage/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/digest.h"
#include "ota/hex.h"
#include "ota/text.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define SCOPE_TAIL "/s3/aws4_request"

static const char HEX_UPPER[] = "0123456789ABCDEF";

/* Bytes of the stack buffer a canonical request is hashed from; a longer one gets a heap buffer of its size. */
#define CANONICAL_BUF 8192

/*
 * Canonical text goes into a capped ota_text_t (canonical requests, URLs, headers, tests), or is only measured:
 * a text that failed ignores further writes, and the caller checks once.
 */
static ota_text_t buf_text(char *buf, size_t cap)
{
    ota_text_t t;
    ota_text_fixed(&t, buf, cap);
    return t;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

/* Writes runs of bytes that stay as they are in one piece, escapes the others. */
static void put_enc(ota_text_t *s, const char *p, size_t n, bool keep_slash)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_unreserved(c) || (keep_slash && c == '/'))
            continue;
        ota_text_put(s, p + run, i - run);
        char esc[3] = {'%', HEX_UPPER[c >> 4], HEX_UPPER[c & 15]};
        ota_text_put(s, esc, 3);
        run = i + 1;
    }
    ota_text_put(s, p + run, n - run);
}

static void put_enc_str(ota_text_t *s, const char *str, bool keep_slash)
{
    put_enc(s, str, strlen(str), keep_slash);
}

/* Length of `host` as signed: without ":80" for http or ":443" for https (either when scheme is NULL). */
static size_t signed_host_len(const char *scheme, const char *host, size_t len)
{
    bool any = scheme == NULL;
    if ((any || strcmp(scheme, "http") == 0) && len > 3 && memcmp(host + len - 3, ":80", 3) == 0)
        return len - 3;
    if ((any || strcmp(scheme, "https") == 0) && len > 4 && memcmp(host + len - 4, ":443", 4) == 0)
        return len - 4;
    return len;
}

/* The host as botocore signs it: lower case, without a default port. Lowered where it was written. */
static void put_signed_host(ota_text_t *s, const char *scheme, const char *host)
{
    size_t at = s->len;
    ota_text_put(s, host, signed_host_len(scheme, host, strlen(host)));
    for (size_t i = at; s->err == OTA_OK && i < s->len; i++)
        if (s->base[i] >= 'A' && s->base[i] <= 'Z')
            s->base[i] = (char)(s->base[i] - 'A' + 'a');
}

/* ---- dates and keys ---- */

ota_err_t ota__sigv4_format_date(time_t t, char out[OTA_SIGV4_DATE_LEN + 1])
{
    struct tm tm;
    out[0] = '\0';
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
        return OTA_ERR_INVALID;
    if (strftime(out, OTA_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != OTA_SIGV4_DATE_LEN)
        return OTA_ERR_INVALID;
    return OTA_OK;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

ota_err_t ota__sigv4_parse_date(const char *s, time_t *out)
{
    if (s == NULL || strlen(s) != OTA_SIGV4_DATE_LEN || !digits(s, 8) || s[8] != 'T' || !digits(s + 9, 6) ||
        s[15] != 'Z')
        return OTA_ERR_INVALID;
    struct tm tm = {
        .tm_year = num(s, 4) - 1900,
        .tm_mon = num(s + 4, 2) - 1,
        .tm_mday = num(s + 6, 2),
        .tm_hour = num(s + 9, 2),
        .tm_min = num(s + 11, 2),
        .tm_sec = num(s + 13, 2),
    };
    time_t t = timegm(&tm);
    char back[OTA_SIGV4_DATE_LEN + 1];
    /* timegm normalises "20130231": a date that does not print back the same is not a real one. */
    if (ota__sigv4_format_date(t, back) != OTA_OK || memcmp(back, s, OTA_SIGV4_DATE_LEN) != 0)
        return OTA_ERR_INVALID;
    *out = t;
    return OTA_OK;
}

static bool hmac(const uint8_t *key, size_t key_len, const char *msg, size_t msg_len, uint8_t out[OTA_SIGV4_KEY_LEN])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, out, &n) != NULL &&
           n == OTA_SIGV4_KEY_LEN;
}

static bool valid_region(const char *region)
{
    size_t n = region != NULL ? strlen(region) : 0;
    if (n == 0 || n > OTA_SIGV4_REGION_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)region[i];
        if (!is_unreserved(c) || c == '~')
            return false;
    }
    return true;
}

ota_err_t ota__sigv4_signing_key(const char *secret, const char *date8, const char *region,
                                 uint8_t out[OTA_SIGV4_KEY_LEN])
{
    ota_err_t rc = OTA_ERR_INVALID;
    uint8_t k_date[OTA_SIGV4_KEY_LEN], k_region[OTA_SIGV4_KEY_LEN], k_service[OTA_SIGV4_KEY_LEN];
    char k_secret[4 + OTA_SIGV4_SECRET_MAX];
    size_t secret_len = secret != NULL ? strlen(secret) : 0;

    if (secret_len == 0 || secret_len > OTA_SIGV4_SECRET_MAX || date8 == NULL || strlen(date8) != 8 ||
        !digits(date8, 8) || !valid_region(region))
        goto Exit;
    memcpy(k_secret, "AWS4", 4);
    memcpy(k_secret + 4, secret, secret_len);
    rc = OTA_ERR_CRYPTO;
    if (!hmac((const uint8_t *)k_secret, 4 + secret_len, date8, 8, k_date) ||
        !hmac(k_date, sizeof(k_date), region, strlen(region), k_region) ||
        !hmac(k_region, sizeof(k_region), "s3", 2, k_service) ||
        !hmac(k_service, sizeof(k_service), "aws4_request", 12, out))
        goto Exit;
    rc = OTA_OK;

Exit:
    OPENSSL_cleanse(k_secret, sizeof(k_secret));
    OPENSSL_cleanse(k_date, sizeof(k_date));
    OPENSSL_cleanse(k_region, sizeof(k_region));
    OPENSSL_cleanse(k_service, sizeof(k_service));
    return rc;
}

ota_err_t ota__sigv4_key_refresh(ota_sigv4_key_t *key, const ota_sigv4_signer_t *signer, time_t now)
{
    char date[OTA_SIGV4_DATE_LEN + 1];
    ota_err_t rc = ota__sigv4_format_date(now, date);
    if (rc != OTA_OK || (key->date8[0] != '\0' && memcmp(key->date8, date, 8) == 0))
        return rc;
    key->date8[0] = '\0';
    date[8] = '\0';
    if ((rc = ota__sigv4_signing_key(signer->secret_key, date, signer->region, key->bytes)) == OTA_OK)
        memcpy(key->date8, date, sizeof(key->date8));
    return rc;
}

void ota__sigv4_key_cache_init(ota_sigv4_key_cache_t *cache)
{
    memset(&cache->key, 0, sizeof cache->key);
    pthread_mutex_init(&cache->lock, NULL);
}

void ota__sigv4_key_cache_dispose(ota_sigv4_key_cache_t *cache)
{
    OPENSSL_cleanse(&cache->key, sizeof cache->key);
    pthread_mutex_destroy(&cache->lock);
}

void ota__sigv4_key_cache_get(ota_sigv4_key_cache_t *cache, const ota_sigv4_signer_t *signer, time_t now,
                              ota_sigv4_key_t *out)
{
    pthread_mutex_lock(&cache->lock);
    if (ota__sigv4_key_refresh(&cache->key, signer, now) == OTA_OK)
        *out = cache->key;
    else
        memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&cache->lock);
}

/* The key for the day of `amz_date`: the cached one when it is that day's, else derived into `buf`. */
static const uint8_t *day_key(const ota_sigv4_signer_t *signer, const ota_sigv4_key_t *cached, const char *amz_date,
                              uint8_t buf[OTA_SIGV4_KEY_LEN])
{
    if (cached != NULL && cached->date8[0] != '\0' && memcmp(cached->date8, amz_date, 8) == 0)
        return cached->bytes;
    char date8[9];
    memcpy(date8, amz_date, 8);
    date8[8] = '\0';
    return ota__sigv4_signing_key(signer->secret_key, date8, signer->region, buf) == OTA_OK ? buf : NULL;
}

/* ---- encoding helpers exposed to the storage backends ---- */

ota_err_t ota__sigv4_uri_encode(const char *raw, size_t len, bool keep_slash, char *out, size_t cap, size_t *out_len)
{
    ota_text_t s = buf_text(out, cap);
    put_enc(&s, raw, len, keep_slash);
    if (out_len != NULL)
        *out_len = s.len;
    return s.err;
}

ota_err_t ota__sigv4_uri_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            int hi = i + 2 < len ? ota_hex_value(in[i + 1]) : -1;
            int lo = hi >= 0 ? ota_hex_value(in[i + 2]) : -1;
            if (lo < 0 || (hi | lo) == 0)
                return OTA_ERR_INVALID;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '\0') {
            return OTA_ERR_INVALID;
        }
        if (n + 1 >= cap)
            return OTA_ERR_TOO_LARGE;
        out[n++] = c;
    }
    if (cap == 0)
        return OTA_ERR_TOO_LARGE;
    out[n] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return OTA_OK;
}

/* ---- addressing ---- */

/* botocore's check_dns_name: what may go in front of the endpoint host. */
static bool dns_label(const char *bucket)
{
    size_t n = strlen(bucket);
    if (n < 3 || n > 63 || bucket[0] == '-' || bucket[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = bucket[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static bool host_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("/?#@\\", c) == NULL;
}

static bool valid_host(const char *host, size_t len)
{
    if (len == 0 || len >= OTA_SIGV4_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!host_char((unsigned char)host[i]))
            return false;
    return true;
}

ota_err_t ota__sigv4_s3_target(const char *endpoint, const char *bucket, const char *key, bool path_style,
                               ota_sigv4_target_t *out)
{
    memset(out, 0, sizeof(*out));
    if (endpoint == NULL || bucket == NULL || key == NULL || key[0] == '\0' || bucket[0] == '\0' ||
        strchr(bucket, '/') != NULL || !valid_host(bucket, strlen(bucket)))
        return OTA_ERR_INVALID;
    size_t skip = strncmp(endpoint, "https://", 8) == 0 ? 8 : strncmp(endpoint, "http://", 7) == 0 ? 7 : 0;
    if (skip == 0)
        return OTA_ERR_INVALID;
    const char *auth = endpoint + skip;
    size_t auth_len = strcspn(auth, "/?#");
    if (!valid_host(auth, auth_len) || !(auth[auth_len] == '\0' || strcmp(auth + auth_len, "/") == 0))
        return OTA_ERR_INVALID;
    memcpy(out->scheme, endpoint, skip - 3);

    bool virtual_host = !path_style && dns_label(bucket);
    int n = virtual_host ? snprintf(out->host, sizeof(out->host), "%s.%.*s", bucket, (int)auth_len, auth)
                         : snprintf(out->host, sizeof(out->host), "%.*s", (int)auth_len, auth);
    if (n < 0 || (size_t)n >= sizeof(out->host))
        return OTA_ERR_TOO_LARGE;
    n = virtual_host ? snprintf(out->path, sizeof(out->path), "/%s", key)
                     : snprintf(out->path, sizeof(out->path), "/%s/%s", bucket, key);
    if (n < 0 || (size_t)n >= sizeof(out->path))
        return OTA_ERR_TOO_LARGE;
    return OTA_OK;
}

/* ---- canonical request, string to sign, signature ---- */

ota_err_t ota__sigv4_string_to_sign(const char *amz_date, const char *region, const char *creq_sha256_hex, char *out,
                                    size_t cap)
{
    ota_text_t s = buf_text(out, cap);
    if (amz_date == NULL || strlen(amz_date) != OTA_SIGV4_DATE_LEN || !valid_region(region) ||
        creq_sha256_hex == NULL || strlen(creq_sha256_hex) != OTA_SIGV4_HEX_LEN)
        return OTA_ERR_INVALID;
    ota_text_puts(&s, ALGORITHM "\n");
    ota_text_puts(&s, amz_date);
    ota_text_put(&s, "\n", 1);
    ota_text_put(&s, amz_date, 8);
    ota_text_put(&s, "/", 1);
    ota_text_puts(&s, region);
    ota_text_puts(&s, SCOPE_TAIL "\n");
    ota_text_puts(&s, creq_sha256_hex);
    return s.err;
}

ota_err_t ota__sigv4_signature(const uint8_t key[OTA_SIGV4_KEY_LEN], const char *string_to_sign,
                               char out[OTA_SIGV4_HEX_LEN + 1])
{
    uint8_t mac[OTA_SIGV4_KEY_LEN];
    out[0] = '\0';
    if (!hmac(key, OTA_SIGV4_KEY_LEN, string_to_sign, strlen(string_to_sign), mac))
        return OTA_ERR_CRYPTO;
    ota_hex_encode(mac, sizeof(mac), out);
    return OTA_OK;
}

/* Everything a canonical request is made from, checked and resolved once. */
typedef struct job {
    const ota_sigv4_request_t *req;
    const char *scheme; /* NULL when verifying: either default port is left out */
    char amz_date[OTA_SIGV4_DATE_LEN + 1];
    char expires[12]; /* presign only */
    bool has_token;
} job_t;

typedef void (*emit_fn)(ota_text_t *s, const job_t *job);

/*
 * SHA-256 of the canonical request that `emit` writes. The request is written whole and hashed in one call: feeding
 * the digest its hundreds of small pieces one by one cost several times more. It fits the stack buffer unless a
 * session token is very long; then, its length counted by the first try, it is written again into a heap buffer
 * of that size.
 */
static bool hash_canonical(const job_t *job, emit_fn emit, uint8_t hash[32])
{
    char stack_buf[CANONICAL_BUF], *heap_buf = NULL;
    ota_text_t s = buf_text(stack_buf, sizeof stack_buf);
    emit(&s, job);
    if (s.err == OTA_ERR_TOO_LARGE) {
        if ((heap_buf = malloc(s.len + 1)) == NULL)
            return false;
        s = buf_text(heap_buf, s.len + 1);
        emit(&s, job);
    }
    bool ok = s.err == OTA_OK && ota__sha256(s.base, s.len, hash) == OTA_OK;
    free(heap_buf);
    return ok;
}

/* Hashes what `emit` writes, then signs the string to sign with the day's key. */
static ota_err_t sign_job(const job_t *job, emit_fn emit, char sig[OTA_SIGV4_HEX_LEN + 1])
{
    ota_err_t rc = OTA_ERR_CRYPTO;
    uint8_t hash[32], key_buf[OTA_SIGV4_KEY_LEN];
    const uint8_t *key;
    char hash_hex[OTA_SIGV4_HEX_LEN + 1];
    char sts[128 + OTA_SIGV4_REGION_MAX];

    if (!hash_canonical(job, emit, hash))
        goto Exit;
    ota_hex_encode(hash, sizeof(hash), hash_hex);
    if ((rc = ota__sigv4_string_to_sign(job->amz_date, job->req->signer->region, hash_hex, sts, sizeof(sts))) != OTA_OK)
        goto Exit;
    key = day_key(job->req->signer, job->req->key, job->amz_date, key_buf);
    rc = key != NULL ? ota__sigv4_signature(key, sts, sig) : OTA_ERR_CRYPTO;

Exit:
    OPENSSL_cleanse(key_buf, sizeof(key_buf));
    return rc;
}

static void put_scope(ota_text_t *s, const job_t *job, bool encoded)
{
    const ota_sigv4_signer_t *sg = job->req->signer;
    const char *slash = encoded ? "%2F" : "/";
    if (encoded)
        put_enc_str(s, sg->access_key, false);
    else
        ota_text_puts(s, sg->access_key);
    ota_text_puts(s, slash);
    ota_text_put(s, job->amz_date, 8);
    ota_text_puts(s, slash);
    ota_text_puts(s, sg->region);
    ota_text_puts(s, encoded ? "%2Fs3%2Faws4_request" : SCOPE_TAIL);
}

static void put_token_param(ota_text_t *s, const job_t *job)
{
    if (!job->has_token)
        return;
    ota_text_puts(s, "&X-Amz-Security-Token=");
    put_enc_str(s, job->req->signer->session_token, false);
}

/* The presign query: sorted when `canonical`, else in the order botocore prints (token after SignedHeaders). */
static void put_presign_query(ota_text_t *s, const job_t *job, bool canonical)
{
    ota_text_puts(s, "X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=");
    put_scope(s, job, true);
    ota_text_puts(s, "&X-Amz-Date=");
    ota_text_puts(s, job->amz_date);
    ota_text_puts(s, "&X-Amz-Expires=");
    ota_text_puts(s, job->expires);
    if (canonical)
        put_token_param(s, job);
    ota_text_puts(s, "&X-Amz-SignedHeaders=host");
    if (!canonical)
        put_token_param(s, job);
}

static void emit_presign(ota_text_t *s, const job_t *job)
{
    ota_text_puts(s, job->req->method);
    ota_text_put(s, "\n", 1);
    put_enc_str(s, job->req->path, true);
    ota_text_put(s, "\n", 1);
    put_presign_query(s, job, true);
    ota_text_puts(s, "\nhost:");
    put_signed_host(s, job->scheme, job->req->host);
    ota_text_puts(s, "\n\nhost\n" OTA_SIGV4_UNSIGNED_PAYLOAD);
}

/* ---- request checks ---- */

static bool method_in(const char *method, bool allow_post)
{
    static const char *const METHODS[] = {"GET", "PUT", "HEAD", "DELETE", "POST"};
    size_t n = sizeof(METHODS) / sizeof(METHODS[0]) - (allow_post ? 0 : 1);
    for (size_t i = 0; method != NULL && i < n; i++)
        if (strcmp(method, METHODS[i]) == 0)
            return true;
    return false;
}

/* Visible ASCII only: these strings end up in header values and in the credential scope. */
static bool visible(const char *s, size_t max, bool allow_slash)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || s[n] <= 0x20 || s[n] >= 0x7f || (!allow_slash && s[n] == '/'))
            return false;
    return n > 0;
}

static bool valid_signer(const ota_sigv4_signer_t *sg)
{
    return sg != NULL && sg->access_key != NULL && visible(sg->access_key, OTA_SIGV4_ACCESS_KEY_MAX, false) &&
           sg->secret_key != NULL && strlen(sg->secret_key) <= OTA_SIGV4_SECRET_MAX && sg->secret_key[0] != '\0' &&
           valid_region(sg->region) &&
           (sg->session_token == NULL || sg->session_token[0] == '\0' ||
            visible(sg->session_token, OTA_SIGV4_TOKEN_MAX - 1, true));
}

/* Checks what every signed request needs and resolves its time into `job`. */
static ota_err_t prepare(const ota_sigv4_request_t *req, bool allow_post, job_t *job)
{
    memset(job, 0, sizeof(*job));
    if (req == NULL)
        return OTA_ERR_INVALID;
    job->req = req;
    job->scheme = req->scheme;
    if (!valid_signer(req->signer) || !method_in(req->method, allow_post) || req->scheme == NULL ||
        (strcmp(req->scheme, "http") != 0 && strcmp(req->scheme, "https") != 0) || req->host == NULL ||
        !valid_host(req->host, strlen(req->host)) || req->path == NULL || req->path[0] != '/' ||
        strlen(req->path) >= OTA_SIGV4_PATH_MAX)
        return OTA_ERR_INVALID;
    job->has_token = req->signer->session_token != NULL && req->signer->session_token[0] != '\0';
    if (req->amz_date == NULL)
        return ota__sigv4_format_date(req->now, job->amz_date);
    time_t t;
    if (ota__sigv4_parse_date(req->amz_date, &t) != OTA_OK)
        return OTA_ERR_INVALID;
    memcpy(job->amz_date, req->amz_date, sizeof(job->amz_date));
    return OTA_OK;
}

/* ---- presigned URLs ---- */

ota_err_t ota__sigv4_presign(const ota_sigv4_request_t *req, long expires, char *out, size_t cap, size_t *out_len)
{
    job_t job;
    char sig[OTA_SIGV4_HEX_LEN + 1];
    ota_text_t s = buf_text(out, cap);
    ota_err_t rc = prepare(req, false, &job);

    if (rc != OTA_OK)
        goto Exit;
    rc = OTA_ERR_INVALID;
    if (expires < 1 || expires > OTA_SIGV4_EXPIRES_MAX || (req->query != NULL && req->query[0] != '\0') ||
        req->n_extra != 0)
        goto Exit;
    snprintf(job.expires, sizeof(job.expires), "%ld", expires);
    if ((rc = sign_job(&job, emit_presign, sig)) != OTA_OK)
        goto Exit;
    ota_text_puts(&s, req->scheme);
    ota_text_puts(&s, "://");
    ota_text_puts(&s, req->host);
    put_enc_str(&s, req->path, true);
    ota_text_put(&s, "?", 1);
    put_presign_query(&s, &job, false);
    ota_text_puts(&s, "&X-Amz-Signature=");
    ota_text_puts(&s, sig);
    rc = s.err;

Exit:
    if (rc != OTA_OK && cap > 0)
        out[0] = '\0';
    if (out_len != NULL)
        *out_len = rc == OTA_OK ? s.len : 0;
    return rc;
}

/* ---- header signing ---- */

typedef enum hdr_kind { HDR_PLAIN, HDR_TRIM, HDR_HOST } hdr_kind_t;

typedef struct hdr {
    const char *name;
    const char *value;
    hdr_kind_t kind;
} hdr_t;

#define HDR_MAX (4 + OTA_SIGV4_EXTRA_MAX)

static bool valid_extra(const ota_sigv4_header_t *h)
{
    static const char *const RESERVED[] = {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"};
    if (h->name == NULL || h->name[0] == '\0' || h->value == NULL || strpbrk(h->value, "\r\n") != NULL)
        return false;
    for (const char *p = h->name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return false;
    for (size_t i = 0; i < sizeof(RESERVED) / sizeof(RESERVED[0]); i++)
        if (strcmp(h->name, RESERVED[i]) == 0)
            return false;
    return true;
}

/* The headers to sign, sorted by name; 0 when an extra header is bad or repeated. */
static size_t collect_headers(const job_t *job, hdr_t out[HDR_MAX])
{
    const ota_sigv4_request_t *req = job->req;
    size_t n = 0;
    out[n++] = (hdr_t){"host", req->host, HDR_HOST};
    out[n++] = (hdr_t){"x-amz-content-sha256", req->payload_sha256, HDR_PLAIN};
    out[n++] = (hdr_t){"x-amz-date", job->amz_date, HDR_PLAIN};
    if (job->has_token)
        out[n++] = (hdr_t){"x-amz-security-token", req->signer->session_token, HDR_TRIM};
    for (size_t i = 0; i < req->n_extra; i++) {
        if (!valid_extra(&req->extra[i]))
            return 0;
        out[n++] = (hdr_t){req->extra[i].name, req->extra[i].value, HDR_TRIM};
    }
    for (size_t i = 1; i < n; i++) {
        hdr_t h = out[i];
        size_t j = i;
        for (; j > 0 && strcmp(out[j - 1].name, h.name) > 0; j--)
            out[j] = out[j - 1];
        out[j] = h;
        if (j > 0 && strcmp(out[j - 1].name, h.name) == 0)
            return 0;
    }
    return n;
}

/* A header value with leading and trailing blanks dropped and inner runs of blanks made one space. */
static void put_trimmed(ota_text_t *s, const char *v)
{
    bool pending_space = false, started = false;
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t') {
            pending_space = started;
            continue;
        }
        if (pending_space)
            ota_text_put(s, " ", 1);
        ota_text_put(s, v, 1);
        pending_space = false;
        started = true;
    }
}

static void put_signed_names(ota_text_t *s, const hdr_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ota_text_put(s, ";", 1);
        ota_text_puts(s, h[i].name);
    }
}

static void emit_headers_request(ota_text_t *s, const job_t *job)
{
    hdr_t h[HDR_MAX];
    size_t n = collect_headers(job, h);
    ota_text_puts(s, job->req->method);
    ota_text_put(s, "\n", 1);
    put_enc_str(s, job->req->path, true);
    ota_text_put(s, "\n", 1);
    if (job->req->query != NULL)
        ota_text_puts(s, job->req->query);
    ota_text_put(s, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        ota_text_puts(s, h[i].name);
        ota_text_put(s, ":", 1);
        if (h[i].kind == HDR_HOST)
            put_signed_host(s, job->scheme, h[i].value);
        else if (h[i].kind == HDR_TRIM)
            put_trimmed(s, h[i].value);
        else
            ota_text_puts(s, h[i].value);
        ota_text_put(s, "\n", 1);
    }
    ota_text_put(s, "\n", 1);
    put_signed_names(s, h, n);
    ota_text_put(s, "\n", 1);
    ota_text_puts(s, job->req->payload_sha256);
}

static bool valid_payload_hash(const char *p)
{
    if (p == NULL)
        return false;
    if (strcmp(p, OTA_SIGV4_UNSIGNED_PAYLOAD) == 0)
        return true;
    if (strlen(p) != OTA_SIGV4_HEX_LEN)
        return false;
    for (; *p != '\0'; p++)
        if (ota_hex_value(*p) < 0 || (*p >= 'A' && *p <= 'F'))
            return false;
    return true;
}

static bool valid_query(const char *q)
{
    for (; q != NULL && *q != '\0'; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f || *q == '#')
            return false;
    return true;
}

static ota_err_t prepare_headers(const ota_sigv4_request_t *req, job_t *job)
{
    ota_err_t rc = prepare(req, true, job);
    if (rc != OTA_OK)
        return rc;
    hdr_t h[HDR_MAX];
    if (!valid_payload_hash(req->payload_sha256) || !valid_query(req->query) || req->n_extra > OTA_SIGV4_EXTRA_MAX ||
        (req->n_extra > 0 && req->extra == NULL) || collect_headers(job, h) == 0)
        return OTA_ERR_INVALID;
    return OTA_OK;
}

ota_err_t ota__sigv4_canonical_request(const ota_sigv4_request_t *req, char *out, size_t cap)
{
    job_t job;
    ota_text_t s = buf_text(out, cap);
    ota_err_t rc = prepare_headers(req, &job);
    if (rc != OTA_OK)
        return rc;
    emit_headers_request(&s, &job);
    return s.err;
}

ota_err_t ota__sigv4_sign_headers(const ota_sigv4_request_t *req, ota_sigv4_signed_t *out)
{
    job_t job;
    hdr_t h[HDR_MAX];
    char sig[OTA_SIGV4_HEX_LEN + 1];
    ota_text_t s = buf_text(out->authorization, sizeof(out->authorization));
    ota_err_t rc;

    memset(out, 0, sizeof(*out));
    if ((rc = prepare_headers(req, &job)) != OTA_OK || (rc = sign_job(&job, emit_headers_request, sig)) != OTA_OK)
        goto Exit;
    ota_text_puts(&s, ALGORITHM " Credential=");
    put_scope(&s, &job, false);
    ota_text_puts(&s, ", SignedHeaders=");
    put_signed_names(&s, h, collect_headers(&job, h));
    ota_text_puts(&s, ", Signature=");
    ota_text_puts(&s, sig);
    if ((rc = s.err) != OTA_OK)
        goto Exit;
    memcpy(out->amz_date, job.amz_date, sizeof(out->amz_date));
    snprintf(out->content_sha256, sizeof(out->content_sha256), "%s", req->payload_sha256);
    out->security_token = job.has_token ? req->signer->session_token : NULL;

Exit:
    if (rc != OTA_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- verification ---- */

enum { P_ALGORITHM, P_CREDENTIAL, P_DATE, P_EXPIRES, P_SIGNED_HEADERS, P_TOKEN, P_SIGNATURE, P_COUNT };

static const char *const PARAM_NAMES[P_COUNT] = {
    "X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",      "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
};

typedef struct span {
    const char *p;
    size_t len;
    bool seen;
} span_t;

/* Splits the query into the seven known parameters; false on anything else or a repeat. */
static bool split_query(const char *q, size_t len, span_t params[P_COUNT])
{
    memset(params, 0, P_COUNT * sizeof(params[0]));
    if (len > 0 && q[len - 1] == '&')
        return false;
    for (size_t at = 0; at < len;) {
        const char *item = q + at;
        const char *amp = memchr(item, '&', len - at);
        size_t item_len = amp != NULL ? (size_t)(amp - item) : len - at;
        const char *eq = memchr(item, '=', item_len);
        if (eq == NULL)
            return false;
        size_t name_len = (size_t)(eq - item);
        size_t i = 0;
        while (i < P_COUNT && !(strlen(PARAM_NAMES[i]) == name_len && memcmp(PARAM_NAMES[i], item, name_len) == 0))
            i++;
        if (i == P_COUNT || params[i].seen)
            return false;
        params[i] = (span_t){eq + 1, item_len - name_len - 1, true};
        at += item_len + 1;
    }
    return true;
}

static bool decode_param(const span_t *sp, char *out, size_t cap)
{
    return sp->seen && ota__sigv4_uri_decode(sp->p, sp->len, out, cap, NULL) == OTA_OK;
}

/* X-Amz-Expires: 1..OTA_SIGV4_EXPIRES_MAX written as the presigner writes it (no sign, no leading zero). */
static bool parse_expires(const char *s, long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 6 || s[0] == '0' || !digits(s, n))
        return false;
    *out = num(s, n);
    return *out >= 1 && *out <= OTA_SIGV4_EXPIRES_MAX;
}

static bool lower_hex64(const char *s)
{
    if (strlen(s) != OTA_SIGV4_HEX_LEN)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

/* The decoded, checked parameters of a received presigned URL. */
typedef struct received_params {
    char date[OTA_SIGV4_DATE_LEN + 1];
    time_t date_t;
    long expires;
    char signature[OTA_SIGV4_HEX_LEN + 1];
    char token[OTA_SIGV4_TOKEN_MAX];
    bool has_token;
} received_params_t;

static bool check_credential(const ota_sigv4_signer_t *signer, const span_t *sp, const char *date)
{
    char got[OTA_SIGV4_ACCESS_KEY_MAX + OTA_SIGV4_REGION_MAX + 40];
    char want[sizeof(got)];
    ota_text_t s = buf_text(want, sizeof(want));
    job_t job = {.req = &(ota_sigv4_request_t){.signer = signer}};
    memcpy(job.amz_date, date, sizeof(job.amz_date));
    put_scope(&s, &job, false);
    return s.err == OTA_OK && decode_param(sp, got, sizeof(got)) && strcmp(got, want) == 0;
}

static bool read_params(const ota_sigv4_signer_t *signer, const ota_sigv4_received_t *rcv, received_params_t *rp)
{
    span_t sp[P_COUNT];
    char small[64];
    if (rcv->query_len >= 3 * OTA_SIGV4_TOKEN_MAX || !split_query(rcv->query, rcv->query_len, sp))
        return false;
    if (!decode_param(&sp[P_ALGORITHM], small, sizeof(small)) || strcmp(small, ALGORITHM) != 0 ||
        !decode_param(&sp[P_SIGNED_HEADERS], small, sizeof(small)) || strcmp(small, "host") != 0 ||
        !decode_param(&sp[P_EXPIRES], small, sizeof(small)) || !parse_expires(small, &rp->expires) ||
        !decode_param(&sp[P_DATE], rp->date, sizeof(rp->date)) ||
        ota__sigv4_parse_date(rp->date, &rp->date_t) != OTA_OK ||
        !decode_param(&sp[P_SIGNATURE], rp->signature, sizeof(rp->signature)) || !lower_hex64(rp->signature) ||
        !check_credential(signer, &sp[P_CREDENTIAL], rp->date))
        return false;
    rp->has_token = sp[P_TOKEN].seen;
    return !rp->has_token || decode_param(&sp[P_TOKEN], rp->token, sizeof(rp->token));
}

/* Copies a span into a NUL-terminated buffer; false when empty or too long. */
static bool copy_span(const char *p, size_t len, char *out, size_t cap)
{
    if (len == 0 || len >= cap || memchr(p, '\0', len) != NULL)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

static bool same_token(const ota_sigv4_signer_t *signer, const received_params_t *rp)
{
    const char *ours = signer->session_token;
    size_t ours_len = ours != NULL ? strlen(ours) : 0;
    return strlen(rp->token) == ours_len && CRYPTO_memcmp(rp->token, ours, ours_len) == 0;
}

static ota_sigv4_verdict_t check_signature(const ota_sigv4_signer_t *signer, const ota_sigv4_received_t *rcv,
                                           const received_params_t *rp, const ota_sigv4_key_t *key)
{
    char method[8], host[OTA_SIGV4_HOST_MAX], path[OTA_SIGV4_PATH_MAX], sig[OTA_SIGV4_HEX_LEN + 1];
    ota_sigv4_request_t req = {.signer = signer, .method = method, .host = host, .path = path, .key = key};
    job_t job = {.req = &req, .has_token = rp->has_token};

    if (!copy_span(rcv->method, rcv->method_len, method, sizeof(method)) || !method_in(method, false) ||
        !copy_span(rcv->host, rcv->host_len, host, sizeof(host)) || !valid_host(host, strlen(host)) ||
        ota__sigv4_uri_decode(rcv->path, rcv->path_len, path, sizeof(path), NULL) != OTA_OK || path[0] != '/')
        return OTA_SIGV4_MALFORMED;
    memcpy(job.amz_date, rp->date, sizeof(job.amz_date));
    snprintf(job.expires, sizeof(job.expires), "%ld", rp->expires);
    if (sign_job(&job, emit_presign, sig) != OTA_OK)
        return OTA_SIGV4_MALFORMED;
    bool ok = CRYPTO_memcmp(sig, rp->signature, OTA_SIGV4_HEX_LEN) == 0;
    return ok && (!rp->has_token || same_token(signer, rp)) ? OTA_SIGV4_VALID : OTA_SIGV4_MISMATCH;
}

ota_sigv4_verdict_t ota__sigv4_verify(const ota_sigv4_signer_t *signer, const ota_sigv4_received_t *rcv, time_t now,
                                      const ota_sigv4_key_t *key)
{
    received_params_t rp;
    ota_sigv4_verdict_t v = OTA_SIGV4_MALFORMED;
    bool signer_has_token = valid_signer(signer) && signer->session_token != NULL && signer->session_token[0] != '\0';

    if (!valid_signer(signer) || rcv == NULL || !read_params(signer, rcv, &rp) || rp.has_token != signer_has_token)
        goto Exit;
    if ((v = check_signature(signer, rcv, &rp, key)) != OTA_SIGV4_VALID)
        goto Exit;
    if (rp.date_t > now && rp.date_t - now > OTA_SIGV4_SKEW_MAX)
        v = OTA_SIGV4_NOT_YET_VALID;
    else if (now > rp.date_t && now - rp.date_t > rp.expires)
        v = OTA_SIGV4_EXPIRED;

Exit:
    OPENSSL_cleanse(&rp, sizeof(rp));
    return v;
}

const char *ota__sigv4_verdict_name(ota_sigv4_verdict_t v)
{
    switch (v) {
    case OTA_SIGV4_VALID:
        return "valid";
    case OTA_SIGV4_MALFORMED:
        return "malformed";
    case OTA_SIGV4_MISMATCH:
        return "signature mismatch";
    case OTA_SIGV4_EXPIRED:
        return "expired";
    case OTA_SIGV4_NOT_YET_VALID:
        return "not yet valid";
    }
    return "unknown";
}
