/*
 * The S3 backend's blocking client (see s3.h).
 *
 * Why it looks the way it does:
 * - One easy handle per call: calls run on several job threads at once and a
 *   handle must not be shared; artifact transfers are few and large, so the
 *   connection reuse a shared pool would buy is not worth its locking.
 * - A response body is routed by status as it arrives: a 2xx body goes to the
 *   caller's buffer, which never grows past `max` (a larger object aborts the
 *   transfer at once), an error body (S3's XML) to a small fixed buffer, so no
 *   response can make us hold more than we chose.
 * - The signing key is cached per client for the UTC day under a mutex held
 *   for a copy (and four HMACs once a day), so presigning on an event loop
 *   stays cheap.
 */
#include "storage/s3.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sigv4.h"
#include "ota/hex.h"

#define CONNECT_TIMEOUT_S 10L
#define LOW_SPEED_BYTES 1L   /* a transfer slower than this ... */
#define LOW_SPEED_TIME_S 30L /* ... for this long is abandoned */
#define ERROR_BODY_MAX 4096
#define ERROR_FIELD_MAX 256
#define ENDPOINT_MAX 512
#define FIRST_CHUNK (64 * 1024)
/* scheme "://" host, then the path with every byte possibly %XX */
#define URL_MAX (8 + OTA_SIGV4_HOST_MAX + 3 * OTA_SIGV4_PATH_MAX)

struct ota_s3 {
    char *endpoint;
    char *bucket;
    char *region;
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL when none */
    bool path_style;
    ota_sigv4_signer_t signer; /* borrows the strings above */
    ota_sigv4_key_cache_t key;
};

/* One request: what to send, where the answer goes. Heap-allocated (~22 KB). */
typedef struct call {
    ota_s3_t *s3;
    const char *method;
    const char *key;
    bool bucket_root;            /* the request is on the bucket itself (a listing), not on `key` */
    const char *query;           /* canonical query string, or NULL */
    ota_sigv4_header_t extra[1]; /* a further signed header (x-amz-copy-source) */
    size_t n_extra;
    CURL *curl;
    /* request body (PUT) */
    const unsigned char *body;
    size_t body_len;
    size_t body_off;
    /* 2xx response body (GET only) */
    bool keep_body;
    unsigned char *data;
    size_t len;
    size_t data_cap;
    size_t max;
    /* outcome */
    long status;
    curl_off_t content_length; /* -1 when unknown */
    bool too_large;
    bool nomem;
    bool error_cut; /* we ended the transfer of a long error body ourselves */
    char error_body[ERROR_BODY_MAX + 1];
    size_t error_len;
    char curl_error[CURL_ERROR_SIZE];
    /* the signed request */
    ota_sigv4_target_t target;
    ota_sigv4_signed_t sig;
    char url[URL_MAX];
} call_t;

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- opening ----------------------------------------------------------- */

typedef struct setting {
    const char *name;
    const char *value;
    size_t max;
    bool required;
} setting_t;

static ota_err_t check_settings(const ota_config_t *cfg, char *err, size_t cap)
{
    const setting_t settings[] = {
        {"OTA_S3_BUCKET", cfg->s3_bucket, 63, true},
        {"OTA_S3_REGION", cfg->s3_region, OTA_SIGV4_REGION_MAX, true},
        {"OTA_S3_ACCESS_KEY", cfg->s3_access_key, OTA_SIGV4_ACCESS_KEY_MAX, true},
        {"OTA_S3_SECRET_KEY", cfg->s3_secret_key, OTA_SIGV4_SECRET_MAX, true},
        {"OTA_S3_SESSION_TOKEN", cfg->s3_session_token, OTA_SIGV4_TOKEN_MAX - 1, false},
        {"OTA_S3_ENDPOINT", cfg->s3_endpoint, ENDPOINT_MAX - 1, false},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const setting_t *s = &settings[i];
        if (s->required && (s->value == NULL || s->value[0] == '\0')) {
            set_err(err, cap, "%s is required with OTA_STORAGE=s3", s->name);
            return OTA_ERR_INVALID;
        }
        if (s->value != NULL && strlen(s->value) > s->max) {
            set_err(err, cap, "%s is longer than %zu bytes", s->name, s->max);
            return OTA_ERR_INVALID;
        }
    }
    return OTA_OK;
}

static bool dup_into(char **dst, const char *src)
{
    if (src == NULL || src[0] == '\0')
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

static ota_err_t copy_settings(ota_s3_t *s3, const ota_config_t *cfg, char *err, size_t cap)
{
    char aws[ENDPOINT_MAX];
    const char *endpoint = cfg->s3_endpoint;
    if (endpoint == NULL || endpoint[0] == '\0') {
        snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com", cfg->s3_region);
        endpoint = aws;
    }
    bool ok = dup_into(&s3->endpoint, endpoint) && dup_into(&s3->bucket, cfg->s3_bucket) &&
              dup_into(&s3->region, cfg->s3_region) && dup_into(&s3->access_key, cfg->s3_access_key) &&
              dup_into(&s3->secret_key, cfg->s3_secret_key) && dup_into(&s3->session_token, cfg->s3_session_token);
    if (!ok) {
        set_err(err, cap, "out of memory");
        return OTA_ERR_NOMEM;
    }
    s3->path_style = cfg->s3_path_style != 0;
    s3->signer = (ota_sigv4_signer_t){s3->access_key, s3->secret_key, s3->session_token, s3->region};
    return OTA_OK;
}

/* Maps a sample key now, so a bad endpoint or bucket fails at start and not at the first upload. */
static ota_err_t check_target(const ota_s3_t *s3, char *err, size_t cap)
{
    ota_sigv4_target_t t;
    ota_err_t rc = ota__sigv4_s3_target(s3->endpoint, s3->bucket, "probe", s3->path_style, &t);
    if (rc != OTA_OK)
        set_err(err, cap,
                "OTA_S3_ENDPOINT \"%s\" with OTA_S3_BUCKET \"%s\": not a usable http(s)://host[:port] and bucket",
                s3->endpoint, s3->bucket);
    return rc;
}

ota_s3_t *ota__s3_open(const ota_config_t *cfg, char *err, size_t cap)
{
    bool ok = false;
    ota_s3_t *s3 = calloc(1, sizeof *s3);
    if (s3 == NULL) {
        set_err(err, cap, "out of memory");
        goto Exit;
    }
    ota__sigv4_key_cache_init(&s3->key);
    if (check_settings(cfg, err, cap) != OTA_OK || copy_settings(s3, cfg, err, cap) != OTA_OK ||
        check_target(s3, err, cap) != OTA_OK)
        goto Exit;
    ok = true;
Exit:
    if (!ok) {
        ota__s3_close(s3);
        s3 = NULL;
    }
    return s3;
}

void ota__s3_close(ota_s3_t *s3)
{
    if (s3 == NULL)
        return;
    ota__sigv4_key_cache_dispose(&s3->key);
    free(s3->endpoint);
    free(s3->bucket);
    free(s3->region);
    free(s3->access_key);
    if (s3->secret_key != NULL)
        OPENSSL_cleanse(s3->secret_key, strlen(s3->secret_key));
    free(s3->secret_key);
    free(s3->session_token);
    free(s3);
}

/* ---- signing ----------------------------------------------------------- */

static ota_err_t payload_sha256(const void *data, size_t len, char out[OTA_SIGV4_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data != NULL ? data : "", len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return OTA_ERR_CRYPTO;
    ota_hex_encode(md, md_len, out);
    return OTA_OK;
}

/* Target, URL and signed headers of `c`. */
static ota_err_t prepare(call_t *c, char *err, size_t cap)
{
    ota_s3_t *s3 = c->s3;
    char sha[OTA_SIGV4_HEX_LEN + 1];
    ota_sigv4_key_t key;
    ota_err_t rc =
        ota__sigv4_s3_target(s3->endpoint, s3->bucket, c->bucket_root ? "x" : c->key, s3->path_style, &c->target);
    if (rc != OTA_OK) {
        set_err(err, cap, "S3 %s: unusable key (%s)", c->method, ota_strerror(rc));
        return rc;
    }
    if (c->bucket_root) {
        /* "/bucket/x" becomes "/bucket" (path-style), "/x" becomes "/" (virtual-hosted) */
        size_t plen = strlen(c->target.path) - 1;
        c->target.path[plen > 1 ? plen - 1 : plen] = '\0';
    }
    int n = snprintf(c->url, sizeof c->url, "%s://%s", c->target.scheme, c->target.host);
    size_t used = 0;
    rc = ota__sigv4_uri_encode(c->target.path, strlen(c->target.path), true, c->url + n, sizeof c->url - (size_t)n,
                               &used);
    if (rc == OTA_OK && c->query != NULL &&
        snprintf(c->url + n + used, sizeof c->url - (size_t)n - used, "?%s", c->query) >=
            (int)(sizeof c->url - (size_t)n - used))
        rc = OTA_ERR_TOO_LARGE;
    if (rc == OTA_OK)
        rc = payload_sha256(c->body, c->body_len, sha);
    if (rc != OTA_OK) {
        set_err(err, cap, "S3 %s %s: cannot build the request (%s)", c->method, c->key, ota_strerror(rc));
        return rc;
    }
    time_t now = time(NULL);
    ota__sigv4_key_cache_get(&s3->key, &s3->signer, now, &key);
    ota_sigv4_request_t req = {.signer = &s3->signer,
                               .method = c->method,
                               .scheme = c->target.scheme,
                               .host = c->target.host,
                               .path = c->target.path,
                               .now = now,
                               .key = &key,
                               .payload_sha256 = sha,
                               .query = c->query,
                               .extra = c->n_extra > 0 ? c->extra : NULL,
                               .n_extra = c->n_extra};
    rc = ota__sigv4_sign_headers(&req, &c->sig);
    OPENSSL_cleanse(&key, sizeof key);
    if (rc != OTA_OK)
        set_err(err, cap, "S3 %s %s: cannot sign the request (%s)", c->method, c->key, ota_strerror(rc));
    return rc;
}

/* ---- the transfer ------------------------------------------------------ */

static bool add_line(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return false;
    *list = l;
    return true;
}

static bool add_header(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + 2 + strlen(value) + 1;
    char *line = malloc(n);
    if (line == NULL)
        return false;
    snprintf(line, n, "%s: %s", name, value);
    bool ok = add_line(list, line);
    free(line);
    return ok;
}

static struct curl_slist *make_headers(const call_t *c)
{
    struct curl_slist *h = NULL;
    bool ok = add_header(&h, "Authorization", c->sig.authorization) && add_header(&h, "x-amz-date", c->sig.amz_date) &&
              add_header(&h, "x-amz-content-sha256", c->sig.content_sha256) &&
              (c->sig.security_token == NULL || add_header(&h, "x-amz-security-token", c->sig.security_token));
    for (size_t i = 0; ok && i < c->n_extra; i++)
        ok = add_header(&h, c->extra[i].name, c->extra[i].value);
    /* "Expect:" with no value: send the body at once instead of waiting for a 100-continue. */
    if (ok && c->body != NULL)
        ok = add_header(&h, "Content-Type", "application/octet-stream") && add_line(&h, "Expect:");
    if (!ok) {
        curl_slist_free_all(h);
        return NULL;
    }
    return h;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
    call_t *c = arg;
    size_t n = c->body_len - c->body_off;
    if (n > size * nitems)
        n = size * nitems;
    memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    return n;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
    call_t *c = arg;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > c->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    c->body_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Sets the object buffer's size to `total` bytes, never past c->max. */
static bool grow(call_t *c, uint64_t total)
{
    if (total > c->max) {
        c->too_large = true;
        return false;
    }
    unsigned char *p = realloc(c->data, total != 0 ? (size_t)total : 1);
    if (p == NULL) {
        c->nomem = true;
        return false;
    }
    c->data = p;
    c->data_cap = (size_t)total;
    return true;
}

/* Makes room for `n` more bytes: doubling, capped at c->max. */
static bool reserve(call_t *c, size_t n)
{
    if (n > c->max - c->len) {
        c->too_large = true;
        return false;
    }
    if (n <= c->data_cap - c->len)
        return true;
    size_t want = c->data_cap > FIRST_CHUNK / 2 ? c->data_cap : FIRST_CHUNK / 2;
    want = want <= c->max / 2 ? want * 2 : c->max;
    if (want < c->len + n)
        want = c->len + n;
    return grow(c, want);
}

static size_t keep_data(call_t *c, const char *ptr, size_t n)
{
    if (!c->keep_body)
        return n;
    if (c->data == NULL) {
        /* Refuse an announced oversize object before keeping a byte of it; else size the buffer once. */
        curl_off_t announced = -1;
        curl_easy_getinfo(c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        if (announced > 0 && !grow(c, (uint64_t)announced))
            return 0;
    }
    if (!reserve(c, n))
        return 0;
    memcpy(c->data + c->len, ptr, n);
    c->len += n;
    return n;
}

static size_t keep_error(call_t *c, const char *ptr, size_t n)
{
    size_t room = ERROR_BODY_MAX - c->error_len;
    memcpy(c->error_body + c->error_len, ptr, n < room ? n : room);
    c->error_len += n < room ? n : room;
    c->error_body[c->error_len] = '\0';
    if (n < room)
        return n;
    c->error_cut = true; /* enough to find <Code> and <Message>; stop the rest */
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    call_t *c = arg;
    if (c->status == 0)
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    if (c->status >= 200 && c->status <= 299)
        return keep_data(c, ptr, size * nmemb);
    return keep_error(c, ptr, size * nmemb);
}

static void configure(call_t *c, struct curl_slist *headers)
{
    CURL *curl = c->curl;
    curl_easy_setopt(curl, CURLOPT_URL, c->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME_S);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
    if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, c);
        curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(curl, CURLOPT_SEEKDATA, c);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, c->method);
    }
}

/* ---- outcome ----------------------------------------------------------- */

/* Copies the text between `open` and `close` in `xml` into `out`, control characters blanked. */
static void xml_field(const char *xml, const char *open, const char *close, char *out, size_t cap)
{
    out[0] = '\0';
    const char *start = strstr(xml, open);
    if (start == NULL)
        return;
    start += strlen(open);
    const char *end = strstr(start, close);
    size_t n = end != NULL ? (size_t)(end - start) : strlen(start);
    if (n > cap - 1)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)start[i] < 0x20 ? ' ' : start[i];
    out[n] = '\0';
}

static ota_err_t status_error(long status, const char *code)
{
    if (status == 404)
        return OTA_ERR_NOT_FOUND;
    if (status == 401 || status == 403)
        return OTA_ERR_CRYPTO;
    if (status == 413 || strcmp(code, "EntityTooLarge") == 0)
        return OTA_ERR_TOO_LARGE;
    if (status == 408 || status == 429 || status >= 500)
        return OTA_ERR_UNAVAILABLE;
    return OTA_ERR_INVALID;
}

static ota_err_t http_error(const call_t *c, char *err, size_t cap)
{
    char code[ERROR_FIELD_MAX], message[ERROR_FIELD_MAX];
    xml_field(c->error_body, "<Code>", "</Code>", code, sizeof code);
    xml_field(c->error_body, "<Message>", "</Message>", message, sizeof message);
    /* S3 answers a DELETE of a missing key with 204; a store that says NoSuchKey means the same. */
    if (strcmp(c->method, "DELETE") == 0 && c->status == 404 && strcmp(code, "NoSuchKey") == 0)
        return OTA_OK;
    set_err(err, cap, "S3 %s %s: HTTP %ld%s%s%s%s", c->method, c->key, c->status, code[0] ? " " : "", code,
            message[0] ? ": " : "", message);
    return status_error(c->status, code);
}

static ota_err_t outcome(call_t *c, CURLcode cc, char *err, size_t cap)
{
    if (c->too_large) {
        set_err(err, cap, "S3 %s %s: object larger than %zu bytes", c->method, c->key, c->max);
        return OTA_ERR_TOO_LARGE;
    }
    if (c->nomem || cc == CURLE_OUT_OF_MEMORY) {
        set_err(err, cap, "S3 %s %s: out of memory", c->method, c->key);
        return OTA_ERR_NOMEM;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    if (cc != CURLE_OK && !(c->error_cut && cc == CURLE_WRITE_ERROR)) {
        set_err(err, cap, "S3 %s %s: %s", c->method, c->key,
                c->curl_error[0] != '\0' ? c->curl_error : curl_easy_strerror(cc));
        return OTA_ERR_UNAVAILABLE;
    }
    curl_easy_getinfo(c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &c->content_length);
    if (c->status >= 200 && c->status <= 299)
        return OTA_OK;
    return http_error(c, err, cap);
}

static ota_err_t run(call_t *c, char *err, size_t cap)
{
    struct curl_slist *headers = NULL;
    ota_err_t rc = prepare(c, err, cap);
    if (rc != OTA_OK)
        goto Exit;
    if ((headers = make_headers(c)) == NULL || (c->curl = curl_easy_init()) == NULL) {
        set_err(err, cap, "S3 %s %s: out of memory", c->method, c->key);
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    configure(c, headers);
    rc = outcome(c, curl_easy_perform(c->curl), err, cap);
Exit:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c->curl);
    c->curl = NULL;
    return rc;
}

static call_t *new_call(ota_s3_t *s3, const char *method, const char *key, char *err, size_t cap)
{
    call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_err(err, cap, "out of memory");
        return NULL;
    }
    c->s3 = s3;
    c->method = method;
    c->key = key;
    c->content_length = -1;
    return c;
}

/* ---- the operations ---------------------------------------------------- */

ota_err_t ota__s3_put(ota_s3_t *s3, const char *key, const void *data, size_t len, char *err, size_t cap)
{
    call_t *c = new_call(s3, "PUT", key, err, cap);
    if (c == NULL)
        return OTA_ERR_NOMEM;
    c->body = data != NULL ? data : (const unsigned char *)"";
    c->body_len = len;
    ota_err_t rc = run(c, err, cap);
    free(c);
    return rc;
}

ota_err_t ota__s3_get(ota_s3_t *s3, const char *key, size_t max, unsigned char **data, size_t *len, char *err,
                      size_t cap)
{
    *data = NULL;
    *len = 0;
    call_t *c = new_call(s3, "GET", key, err, cap);
    if (c == NULL)
        return OTA_ERR_NOMEM;
    c->keep_body = true;
    c->max = max;
    ota_err_t rc = run(c, err, cap);
    if (rc == OTA_OK && c->data == NULL && (c->data = malloc(1)) == NULL) {
        set_err(err, cap, "out of memory");
        rc = OTA_ERR_NOMEM;
    }
    if (rc == OTA_OK) {
        *data = c->data;
        *len = c->len;
        c->data = NULL;
    }
    free(c->data);
    free(c);
    return rc;
}

ota_err_t ota__s3_delete(ota_s3_t *s3, const char *key, char *err, size_t cap)
{
    call_t *c = new_call(s3, "DELETE", key, err, cap);
    if (c == NULL)
        return OTA_ERR_NOMEM;
    ota_err_t rc = run(c, err, cap);
    free(c);
    return rc;
}

ota_err_t ota__s3_head(ota_s3_t *s3, const char *key, uint64_t *size, char *err, size_t cap)
{
    *size = 0;
    call_t *c = new_call(s3, "HEAD", key, err, cap);
    if (c == NULL)
        return OTA_ERR_NOMEM;
    ota_err_t rc = run(c, err, cap);
    if (rc == OTA_OK && c->content_length < 0) {
        set_err(err, cap, "S3 HEAD %s: no Content-Length in the answer", key);
        rc = OTA_ERR_INVALID;
    }
    if (rc == OTA_OK)
        *size = (uint64_t)c->content_length;
    free(c);
    return rc;
}

ota_err_t ota__s3_presign(ota_s3_t *s3, const char *method, const char *key, time_t now, int ttl, char *url, size_t cap)
{
    ota_sigv4_target_t target;
    ota_sigv4_key_t signing_key;
    ota_err_t rc = ota__sigv4_s3_target(s3->endpoint, s3->bucket, key, s3->path_style, &target);
    if (rc != OTA_OK)
        return rc;
    ota__sigv4_key_cache_get(&s3->key, &s3->signer, now, &signing_key);
    ota_sigv4_request_t req = {.signer = &s3->signer,
                               .method = method,
                               .scheme = target.scheme,
                               .host = target.host,
                               .path = target.path,
                               .now = now,
                               .key = &signing_key};
    rc = ota__sigv4_presign(&req, ttl, url, cap, NULL);
    OPENSSL_cleanse(&signing_key, sizeof signing_key);
    return rc;
}

/* ---- copy and list ----------------------------------------------------- */

/* Room for a CopyObject answer or one ListObjectsV2 page (1000 keys of ours take about 300 KB). */
#define COPY_BODY_MAX (64 * 1024)
#define LIST_BODY_MAX (4 * 1024 * 1024)
#define LIST_FIELD_MAX 1024

ota_err_t ota__s3_copy(ota_s3_t *s3, const char *src, const char *dst, char *err, size_t cap)
{
    char source[3 * OTA_SIGV4_PATH_MAX + 2];
    size_t n = 0;
    source[0] = '/';
    if (snprintf(source + 1, sizeof source - 1, "%s/", s3->bucket) >= (int)sizeof source - 1 ||
        ota__sigv4_uri_encode(src, strlen(src), true, source + strlen(source), sizeof source - strlen(source), &n) !=
            OTA_OK) {
        set_err(err, cap, "S3 copy %s: key too long", src);
        return OTA_ERR_TOO_LARGE;
    }
    call_t *c = new_call(s3, "PUT", dst, err, cap);
    if (c == NULL)
        return OTA_ERR_NOMEM;
    c->body = (const unsigned char *)"";
    c->extra[0] = (ota_sigv4_header_t){"x-amz-copy-source", source};
    c->n_extra = 1;
    c->keep_body = true;
    c->max = COPY_BODY_MAX;
    ota_err_t rc = run(c, err, cap);
    if (rc == OTA_OK && c->data != NULL) {
        /* S3 may answer a copy that failed late with 200 and an <Error> body. */
        char body[ERROR_BODY_MAX + 1], code[ERROR_FIELD_MAX], message[ERROR_FIELD_MAX];
        size_t len = c->len < ERROR_BODY_MAX ? c->len : ERROR_BODY_MAX;
        memcpy(body, c->data, len);
        body[len] = '\0';
        if (strstr(body, "<Error>") != NULL) {
            xml_field(body, "<Code>", "</Code>", code, sizeof code);
            xml_field(body, "<Message>", "</Message>", message, sizeof message);
            set_err(err, cap, "S3 copy %s to %s: %s: %s", src, dst, code, message);
            rc = OTA_ERR_UNAVAILABLE;
        }
    }
    free(c->data);
    free(c);
    if (rc == OTA_ERR_NOT_FOUND)
        set_err(err, cap, "S3 copy %s to %s: no such object", src, dst);
    return rc;
}

/* "2026-12-06T16:20:00.000Z" as UTC seconds; 0 when it is not that. */
static time_t parse_modified(const char *s)
{
    struct tm tm = {0};
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

/* Calls `cb` for each <Contents> of a page; sets *stop when the callback asked to. */
static void list_page(const char *xml, ota_storage_list_cb cb, void *arg, bool *stop)
{
    char key[LIST_FIELD_MAX], modified[64], size[32];
    for (const char *p = strstr(xml, "<Contents>"); p != NULL && !*stop; p = strstr(p + 1, "<Contents>")) {
        const char *end = strstr(p, "</Contents>");
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[3 * LIST_FIELD_MAX];
        if (n >= sizeof item)
            continue;
        memcpy(item, p, n);
        item[n] = '\0';
        xml_field(item, "<Key>", "</Key>", key, sizeof key);
        xml_field(item, "<LastModified>", "</LastModified>", modified, sizeof modified);
        xml_field(item, "<Size>", "</Size>", size, sizeof size);
        /* Our keys have no character XML escapes; any other key is not ours to judge. */
        if (key[0] == '\0' || strchr(key, '&') != NULL)
            continue;
        if (cb(key, strtoull(size, NULL, 10), parse_modified(modified), arg) != 0)
            *stop = true;
    }
}

/* The canonical query of one page: parameters sorted, values encoded. */
static ota_err_t list_query(const char *prefix, const char *token, char *out, size_t cap)
{
    char enc_prefix[3 * 512 + 1], enc_token[3 * LIST_FIELD_MAX + 1];
    if (ota__sigv4_uri_encode(prefix, strlen(prefix), false, enc_prefix, sizeof enc_prefix, NULL) != OTA_OK ||
        ota__sigv4_uri_encode(token, strlen(token), false, enc_token, sizeof enc_token, NULL) != OTA_OK)
        return OTA_ERR_TOO_LARGE;
    int n = token[0] != '\0' ? snprintf(out, cap, "continuation-token=%s&list-type=2&prefix=%s", enc_token, enc_prefix)
                             : snprintf(out, cap, "list-type=2&prefix=%s", enc_prefix);
    return n < 0 || (size_t)n >= cap ? OTA_ERR_TOO_LARGE : OTA_OK;
}

ota_err_t ota__s3_list(ota_s3_t *s3, const char *prefix, ota_storage_list_cb cb, void *arg, char *err, size_t cap)
{
    char token[LIST_FIELD_MAX] = "", query[4 * LIST_FIELD_MAX + 1600];
    bool stop = false, more = true;
    ota_err_t rc = OTA_OK;
    while (rc == OTA_OK && more && !stop) {
        if ((rc = list_query(prefix, token, query, sizeof query)) != OTA_OK) {
            set_err(err, cap, "S3 list %s: prefix or continuation token too long", prefix);
            break;
        }
        call_t *c = new_call(s3, "GET", prefix, err, cap);
        if (c == NULL)
            return OTA_ERR_NOMEM;
        c->bucket_root = true;
        c->query = query;
        c->keep_body = true;
        c->max = LIST_BODY_MAX;
        rc = run(c, err, cap);
        unsigned char *z = rc == OTA_OK && c->data != NULL ? realloc(c->data, c->len + 1) : NULL;
        if (rc == OTA_OK && c->data != NULL && z == NULL) {
            set_err(err, cap, "out of memory");
            rc = OTA_ERR_NOMEM;
        }
        if (z != NULL) {
            c->data = z;
            c->data[c->len] = '\0';
            char truncated[16];
            list_page((const char *)c->data, cb, arg, &stop);
            xml_field((const char *)c->data, "<IsTruncated>", "</IsTruncated>", truncated, sizeof truncated);
            xml_field((const char *)c->data, "<NextContinuationToken>", "</NextContinuationToken>", token,
                      sizeof token);
            more = strcmp(truncated, "true") == 0 && token[0] != '\0' && strchr(token, '&') == NULL;
        } else {
            more = false;
        }
        free(c->data);
        free(c);
    }
    return rc;
}
