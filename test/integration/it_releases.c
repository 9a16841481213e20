/*
 * Integration: firmware releases (POST/GET/PATCH/DELETE /v1/releases, the
 * artifact redirect, presigned uploads, the presigned URLs themselves)
 * against the real ota-server on a throwaway PostgreSQL cluster.
 *
 * One source, two programs: it_releases_fs (the fs backend, the server
 * serves /blobs/ itself) and it_releases_s3 (OTA_IT_S3 defined: a real
 * s3rver started in the group setup). Each test makes its own model; the
 * artifacts are random bytes whose size, CRC-32, SHA-256 and MD5 are
 * computed here and compared with what the server says and serves.
 *
 * Objects are counted where each backend keeps them: the fs backend's
 * OTA_STORAGE_DIR (h_server_start puts it at <cluster dir>/blobs-<pg port>),
 * or s3rver's data folder (<s3 dir>/data/<bucket>/<key>._S3rver_object).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "checks.h"
#include "ota/crc32.h"

#ifdef OTA_IT_S3
static h_s3_t g_s3;
#define S3_BUCKET "ota-releases"
#endif

static char g_tmp[256];        /* /tmp/ota-rel-XXXXXX: import/ and outside/ */
static char g_import[300];     /* OTA_IMPORT_DIR */
static char g_outside[300];    /* a folder beside it */
static char g_import_env[340]; /* "OTA_IMPORT_DIR=..." */

/* A second server some tests start with other settings; stopped by the test's teardown, even after a failure. */
static h_server_t g_other;
static bool g_other_up;

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- small utilities -------------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return p;
}

/* Random bytes, with what a multipart parser could trip on ("\r\n--") sprinkled in. */
static unsigned char *random_bytes(size_t n)
{
    static const char tricky[] = "\r\n--\r\n\r\n--";
    unsigned char *p = xmalloc(n);
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(p + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        CHECK(k > 0, "getrandom: %s", strerror(errno));
        got += (size_t)k;
    }
    for (size_t at = 100; at + sizeof tricky < n; at += 4099)
        memcpy(p + at, tricky, sizeof tricky - 1);
    return p;
}

static bool is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s: %s", path, strerror(errno));
    CHECK(len == 0 || fwrite(data, 1, len, f) == len, "cannot write %s", path);
    CHECK(fclose(f) == 0, "cannot close %s", path);
}

/* Percent-encodes everything but the unreserved characters. */
static void url_encode(const char *in, char *out, size_t cap)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *in != '\0' && n + 4 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = digits[c >> 4];
            out[n++] = digits[c & 15];
        }
    }
    out[n] = '\0';
}

/* ---- digests ------------------------------------------------------------------ */

typedef struct digest {
    size_t size;
    uint32_t crc32;
    char sha256[65];
    char md5[33];
} digest_t;

static void hex_encode(const unsigned char *in, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static digest_t digest_of(const unsigned char *data, size_t len)
{
    digest_t d = {.size = len, .crc32 = ota_crc32_update(0, data, len)};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    CHECK(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32, "SHA-256 failed");
    hex_encode(md, n, d.sha256);
    CHECK(EVP_Digest(data, len, md, &n, EVP_md5(), NULL) == 1 && n == 16, "MD5 failed");
    hex_encode(md, n, d.md5);
    return d;
}

/* ---- plain libcurl, for presigned URLs and headers the harness does not keep ---- */

typedef struct raw {
    long status;
    unsigned char *body;
    size_t len, cap;
    char location[4096];
    char content_range[128];
    char retry_after[32];
} raw_t;

typedef struct put_cursor {
    const unsigned char *p;
    size_t left;
} put_cursor_t;

static size_t raw_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    raw_t *r = arg;
    size_t n = size * nmemb;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        unsigned char *p = realloc(r->body, cap);
        if (p == NULL)
            return 0;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void raw_header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, cap, "%.*s", (int)(end - v), v);
}

static size_t raw_on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    raw_t *r = arg;
    size_t len = size * nmemb;
    raw_header_value(line, len, "location", r->location, sizeof r->location);
    raw_header_value(line, len, "content-range", r->content_range, sizeof r->content_range);
    raw_header_value(line, len, "retry-after", r->retry_after, sizeof r->retry_after);
    return len;
}

static size_t raw_on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    put_cursor_t *c = arg;
    size_t n = size * nmemb < c->left ? size * nmemb : c->left;
    memcpy(buf, c->p, n);
    c->p += n;
    c->left -= n;
    return n;
}

/*
 * `method` on a whole `url` with no redirect following; `token` (a bearer key) and `range` (a Range header
 * value) may be NULL; a PUT sends `put_len` bytes of `put`. Status 0 on a transport failure.
 */
static void raw_request(const char *method, const char *url, const char *token, const char *range,
                        const unsigned char *put, size_t put_len, raw_t *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    CHECK(c != NULL, "curl_easy_init failed");
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    char line[300];
    if (token != NULL) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, line);
    }
    if (range != NULL) {
        snprintf(line, sizeof line, "Range: %s", range);
        headers = curl_slist_append(headers, line);
    }
    put_cursor_t cursor = {put, put_len};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, raw_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, raw_on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &cursor);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)put_len);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    else
        fprintf(stderr, "raw %s %s: %s\n", method, url, curl_easy_strerror(rc));
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
}

static void raw_free(raw_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

#define RAW_BODY(r) ((r)->body != NULL ? (const char *)(r)->body : "(no body)")

/* GET of a presigned `url` without credentials: 200 and exactly `len` bytes of `data`. */
static void expect_download(const char *url, const unsigned char *data, size_t len)
{
    raw_t r;
    raw_request("GET", url, NULL, NULL, NULL, 0, &r);
    CHECK(r.status == 200, "GET %s: expected 200, got %ld: %.500s", url, r.status, RAW_BODY(&r));
    CHECK(r.len == len && memcmp(r.body, data, len) == 0, "GET %s: %zu bytes that differ from the %zu uploaded", url,
          r.len, len);
    raw_free(&r);
}

/* ---- the server under test ------------------------------------------------------ */

/* The environment every server of this program gets (the S3 variables, the import folder), then `extra`. */
static void server_env(const char **env, size_t cap, bool with_import, const char *const *extra)
{
    size_t n = 0;
    env[n++] = "OTA_GC_INTERVAL_S=0"; /* no sweeps, unless a test asks: the sweep's turn is shared by all */
#ifdef OTA_IT_S3
    for (const char *const *p = h_s3_env(&g_s3); *p != NULL; p++)
        env[n++] = *p;
#endif
    if (with_import)
        env[n++] = g_import_env;
    for (; extra != NULL && *extra != NULL && n + 1 < cap; extra++)
        env[n++] = *extra;
    env[n] = NULL;
}

/* Starts g_other on the program's cluster (same database and blobs) with the usual environment and `extra`. */
static h_server_t *start_other(bool with_import, const char *const *extra)
{
    const char *env[24];
    server_env(env, ELEMS(env), with_import, extra);
    h_server_start(&g_other, &h_g_pg, env);
    g_other_up = true;
    CHECK(h_wait_ready(&g_other), "the second server did not become ready");
    return &g_other;
}

static int stop_other(void **state)
{
    (void)state;
    if (g_other_up) {
        h_server_stop(&g_other);
        g_other_up = false;
    }
    return 0;
}

/* A failed check about a request to `srv`: shows that server's log too when it is not h_g_srv. */
#define CHECK_AT(srv, cond, ...)                                                                                       \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            if ((srv) != &h_g_srv)                                                                                     \
                h_server_dump_log(srv);                                                                                \
            CHECK(cond, __VA_ARGS__);                                                                                  \
        }                                                                                                              \
    } while (0)

/* ---- building release requests ----------------------------------------------------- */

static json_t *blob_source(const unsigned char *data, size_t len)
{
    char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    json_t *j = json_pack("{s:s}", "blob", b64);
    free(b64);
    return j;
}

static json_t *file_source(const char *url)
{
    return json_pack("{s:s}", "file", url);
}

static json_t *upload_source(const char *id)
{
    return json_pack("{s:s}", "upload_id", id);
}

/*
 * POSTs a JSON release to `srv` as its admin: "version", "model", "notes" when not NULL, "bin" and "ufw"
 * when not NULL (both taken).
 */
static void post_json(h_server_t *srv, const char *model, const char *version, const char *notes, json_t *bin,
                      json_t *ufw, h_resp_t *out)
{
    json_t *body = json_object();
    if (version != NULL)
        json_object_set_new(body, "version", json_string(version));
    if (model != NULL)
        json_object_set_new(body, "model", json_string(model));
    if (notes != NULL)
        json_object_set_new(body, "notes", json_string(notes));
    if (bin != NULL)
        json_object_set_new(body, "bin", bin);
    if (ufw != NULL)
        json_object_set_new(body, "ufw", ufw);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    CHECK(text != NULL, "json_dumps failed");
    h_http(srv, "POST", "/v1/releases", srv->admin_key, text, strlen(text), NULL, out);
    free(text);
}

/* A multipart/form-data body. */
typedef struct mp {
    char *buf;
    size_t len, cap;
    char boundary[64];
    char content_type[128];
} mp_t;

static void mp_append(mp_t *m, const void *p, size_t n)
{
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n)
            cap *= 2;
        m->buf = realloc(m->buf, cap);
        CHECK(m->buf != NULL, "out of memory");
        m->cap = cap;
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
}

static void mp_text(mp_t *m, const char *s)
{
    mp_append(m, s, strlen(s));
}

static void mp_init(mp_t *m)
{
    char hex[25];
    memset(m, 0, sizeof *m);
    h_random_hex(hex, 24);
    snprintf(m->boundary, sizeof m->boundary, "----ota-it-%s", hex);
    snprintf(m->content_type, sizeof m->content_type, "multipart/form-data; boundary=%s", m->boundary);
}

static void mp_field(mp_t *m, const char *name, const char *value)
{
    char head[256];
    snprintf(head, sizeof head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", m->boundary, name);
    mp_text(m, head);
    mp_text(m, value);
    mp_text(m, "\r\n");
}

static void mp_file(mp_t *m, const char *name, const char *filename, const void *data, size_t len)
{
    char head[384];
    snprintf(head, sizeof head,
             "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n",
             m->boundary, name, filename);
    mp_text(m, head);
    mp_append(m, data, len);
    mp_text(m, "\r\n");
}

/* Ends the body, POSTs it to `srv` as its admin and frees it. */
static void mp_post(h_server_t *srv, mp_t *m, h_resp_t *out)
{
    char tail[96];
    snprintf(tail, sizeof tail, "--%s--\r\n", m->boundary);
    mp_text(m, tail);
    h_http(srv, "POST", "/v1/releases", srv->admin_key, m->buf, m->len, m->content_type, out);
    free(m->buf);
    m->buf = NULL;
}

/* ---- expectations ---------------------------------------------------------------- */

static void expect_artifact(json_t *a, const digest_t *d, const char *kind, const h_resp_t *r)
{
    CHECK(json_is_object(a), "artifacts.%s is not an object: %.2000s", kind, BODY(r));
    json_t *size = json_object_get(a, "size"), *crc = json_object_get(a, "crc32");
    CHECK(json_is_integer(size) && json_integer_value(size) == (json_int_t)d->size,
          "artifacts.%s.size: want %zu: %.2000s", kind, d->size, BODY(r));
    CHECK(json_is_integer(crc) && json_integer_value(crc) == (json_int_t)d->crc32,
          "artifacts.%s.crc32: want the number %u: %.2000s", kind, d->crc32, BODY(r));
    CHECK(h_streq(h_jstr(a, "sha256"), d->sha256), "artifacts.%s.sha256: want %s: %.2000s", kind, d->sha256, BODY(r));
    CHECK(h_streq(h_jstr(a, "md5"), d->md5), "artifacts.%s.md5: want %s: %.2000s", kind, d->md5, BODY(r));
}

/* The body is the release (model, version, notes, "released"), its artifacts with these digests (ufw NULL: null). */
static void expect_release(const h_resp_t *r, const char *model, const char *version, const char *notes,
                           const digest_t *bin, const digest_t *ufw)
{
    json_t *j = r->json;
    CHECK(json_is_object(j), "not a JSON object: %ld %.2000s", r->status, BODY(r));
    CHECK(is_uuid(h_jstr(j, "id")), "id: %.2000s", BODY(r));
    CHECK(h_streq(h_jstr(j, "model"), model), "model: want %s: %.2000s", model, BODY(r));
    CHECK(h_streq(h_jstr(j, "version"), version), "version: want %s: %.2000s", version, BODY(r));
    if (notes == NULL)
        CHECK(json_is_null(json_object_get(j, "notes")), "notes: want null: %.2000s", BODY(r));
    else
        CHECK(h_streq(h_jstr(j, "notes"), notes), "notes: want \"%s\": %.2000s", notes, BODY(r));
    CHECK(h_streq(h_jstr(j, "status"), "released"), "status: %.2000s", BODY(r));
    time_t created;
    CHECK(h_rfc3339_utc(h_jstr(j, "created_at"), &created), "created_at: %.2000s", BODY(r));
    CHECK(created >= time(NULL) - 300 && created <= time(NULL) + 300, "created_at is not about now: %.2000s", BODY(r));
    json_t *artifacts = json_object_get(j, "artifacts");
    CHECK(json_is_object(artifacts), "artifacts: %.2000s", BODY(r));
    expect_artifact(json_object_get(artifacts, "bin"), bin, "bin", r);
    if (ufw != NULL)
        expect_artifact(json_object_get(artifacts, "ufw"), ufw, "ufw", r);
    else
        CHECK(json_is_null(json_object_get(artifacts, "ufw")), "artifacts.ufw: want null: %.2000s", BODY(r));
}

/* 422 upload_failed with exactly `message`, and details.artifact = `artifact` (when not NULL). */
#define EXPECT_UPLOAD_FAILED(srv, r, message, artifact)                                                                \
    do {                                                                                                               \
        json_t *e_ = json_object_get((r)->json, "error");                                                              \
        CHECK_AT((srv), (r)->status == 422 && h_error_shape_strict((r), "upload_failed"),                              \
                 "expected 422 upload_failed \"%s\", got %ld: %.2000s", (message), (r)->status, BODY(r));              \
        CHECK_AT((srv), h_streq(h_jstr(e_, "message"), (message)), "expected the message \"%s\": %.2000s", (message),  \
                 BODY(r));                                                                                             \
        if ((artifact) != NULL)                                                                                        \
            CHECK_AT((srv), h_streq(h_jstr(json_object_get(e_, "details"), "artifact"), (artifact)),                   \
                     "expected details.artifact \"%s\": %.2000s", (const char *)(artifact), BODY(r));                  \
    } while (0)

/* GET /v1/releases?model=&limit=[&after=] on `srv`, expecting 200 with {items: [...], next}. */
static void list_page(h_server_t *srv, const char *model, int limit, const char *after, h_resp_t *r)
{
    char path[1024], enc[700] = "";
    if (after != NULL)
        url_encode(after, enc, sizeof enc);
    snprintf(path, sizeof path, "/v1/releases?model=%s&limit=%d%s%s", model, limit, after != NULL ? "&after=" : "",
             enc);
    h_http(srv, "GET", path, srv->admin_key, NULL, 0, NULL, r);
    EXPECT_STATUS(r, 200);
    CHECK(json_is_array(json_object_get(r->json, "items")), "no items: %.2000s", BODY(r));
    json_t *next = json_object_get(r->json, "next");
    CHECK(next != NULL && (json_is_null(next) || json_is_string(next)), "next: %.2000s", BODY(r));
}

/* How many releases the model has (one page of 500). */
static size_t release_count(const char *model)
{
    h_resp_t r = {0};
    list_page(&h_g_srv, model, 500, NULL, &r);
    size_t n = json_array_size(json_object_get(r.json, "items"));
    h_resp_free(&r);
    return n;
}

/* GET /v1/releases/{id}/artifacts/{kind} on `srv` as its admin: 302; its Location goes into `url`. */
static void artifact_url(h_server_t *srv, const char *id, const char *kind, char *url, size_t cap)
{
    char full[512];
    snprintf(full, sizeof full, "%s/v1/releases/%s/artifacts/%s", srv->base_url, id, kind);
    raw_t r;
    raw_request("GET", full, srv->admin_key, NULL, NULL, 0, &r);
    CHECK_AT(srv, r.status == 302 && r.location[0] != '\0', "GET %s: expected 302 with a Location, got %ld: %.1000s",
             full, r.status, RAW_BODY(&r));
    CHECK(strncmp(r.location, "http://", 7) == 0 || strncmp(r.location, "https://", 8) == 0, "Location %s", r.location);
    snprintf(url, cap, "%s", r.location);
    raw_free(&r);
}

/* POST /v1/uploads {artifact, size}: 201; the id and the URL go into `id` and `url`. */
static void create_upload(h_server_t *srv, const char *artifact, size_t size, char *id, size_t id_cap, char *url,
                          size_t url_cap)
{
    h_resp_t r = {0};
    h_json(srv, "POST", "/v1/uploads", srv->admin_key, &r, "{s:s, s:I}", "artifact", artifact, "size",
           (json_int_t)size);
    CHECK_AT(srv, r.status == 201, "POST /v1/uploads: expected 201, got %ld: %.2000s", r.status, BODY(&r));
    CHECK(is_uuid(h_jstr(r.json, "upload_id")), "upload_id: %.2000s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "method"), "PUT"), "method: %.2000s", BODY(&r));
    const char *u = h_jstr(r.json, "url");
    CHECK(u != NULL && strncmp(u, "http", 4) == 0, "url: %.2000s", BODY(&r));
    time_t expires;
    CHECK(h_rfc3339_utc(h_jstr(r.json, "expires_at"), &expires) && expires > time(NULL), "expires_at: %.2000s",
          BODY(&r));
    snprintf(id, id_cap, "%s", h_jstr(r.json, "upload_id"));
    snprintf(url, url_cap, "%s", u);
    h_resp_free(&r);
}

static void put_bytes(const char *url, const unsigned char *data, size_t len)
{
    raw_t r;
    raw_request("PUT", url, NULL, NULL, data, len, &r);
    CHECK(r.status == 200, "PUT %zu bytes to %s: expected 200, got %ld: %.1000s", len, url, r.status, RAW_BODY(&r));
    raw_free(&r);
}

/* ---- objects in storage ---------------------------------------------------------------- */

/* Where the backend keeps the object of key "" (the bucket or the blob folder). */
static void store_root(char *out, size_t cap)
{
#ifdef OTA_IT_S3
    int n = snprintf(out, cap, "%s/data/%s", g_s3.dir, g_s3.bucket);
#else
    int n = snprintf(out, cap, "%s/blobs-%d", h_g_pg.dir, h_g_pg.port);
#endif
    CHECK(n > 0 && (size_t)n < cap, "storage path too long");
}

#ifdef OTA_IT_S3
#define OBJECT_SUFFIX "._S3rver_object"
#else
#define OBJECT_SUFFIX ""
#endif

static bool object_exists(const char *key)
{
    char root[300], path[700];
    store_root(root, sizeof root);
    snprintf(path, sizeof path, "%s/%s%s", root, key, OBJECT_SUFFIX);
    return access(path, F_OK) == 0;
}

/* A set of object files under releases/. */
typedef struct files {
    char **paths;
    size_t n, cap;
} files_t;

static files_t *g_walk;

static bool is_object_file(const char *path)
{
    size_t n = strlen(path), s = strlen(OBJECT_SUFFIX);
    return n > s && strcmp(path + n - s, OBJECT_SUFFIX) == 0;
}

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    files_t *f = g_walk;
    if (type != FTW_F || !is_object_file(path))
        return 0;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->paths = realloc(f->paths, f->cap * sizeof *f->paths);
        if (f->paths == NULL)
            abort();
    }
    f->paths[f->n++] = strdup(path);
    return 0;
}

/* Every object file under releases/ (fs: every file, temporary ones included). */
static void list_objects(files_t *out)
{
    char root[300], dir[340];
    memset(out, 0, sizeof *out);
    store_root(root, sizeof root);
    snprintf(dir, sizeof dir, "%s/releases", root);
    g_walk = out;
    if (access(dir, F_OK) == 0)
        nftw(dir, walk_entry, 16, FTW_PHYS);
    g_walk = NULL;
}

static void files_free(files_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->paths[i]);
    free(f->paths);
    memset(f, 0, sizeof *f);
}

/* The files of `now` that are not in `before`, into `added` (borrowed strings) when not NULL; returns how many. */
static size_t added_objects(const files_t *before, const files_t *now, const char **added, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < now->n; i++) {
        bool old = false;
        for (size_t j = 0; j < before->n && !old; j++)
            old = strcmp(now->paths[i], before->paths[j]) == 0;
        if (!old) {
            if (added != NULL && n < cap)
                added[n] = now->paths[i];
            n++;
        }
    }
    return n;
}

/*
 * Deletion after a failed create is asynchronous: polls (up to 5 s) until exactly `want` object files under
 * releases/ are new since `before`; returns how many are new at the end, listing them into `now`.
 */
static size_t wait_added_objects(const files_t *before, size_t want, files_t *now)
{
    long deadline = now_ms() + 5000;
    for (;;) {
        list_objects(now);
        size_t n = added_objects(before, now, NULL, 0);
        if (n == want || now_ms() > deadline)
            return n;
        files_free(now);
        sleep_ms(50);
    }
}

static void expect_no_added_objects(const files_t *before, const char *what)
{
    files_t now;
    const char *added[4] = {0};
    size_t n = wait_added_objects(before, 0, &now);
    added_objects(before, &now, added, ELEMS(added));
    CHECK(n == 0, "%s: %zu object(s) left under releases/ 5 s later, e.g. %s", what, n, added[0]);
    files_free(&now);
}

/* Polls (up to 5 s) until the object at `key` is gone; returns whether it is. */
static bool wait_object_gone(const char *key)
{
    long deadline = now_ms() + 5000;
    while (object_exists(key)) {
        if (now_ms() > deadline)
            return false;
        sleep_ms(50);
    }
    return true;
}

/* ---- a tiny HTTP server for http:// release sources ---------------------------------- */

/*
 * Paths: /ok (200 with `data`), /empty (200, no bytes), /redirect (302 to /ok), /401, /403, /404, /500,
 * /hangup (closes without answering), /stall (the headers and 16 bytes of `data`, then `stall_ms` of
 * silence, then the rest). One thread per connection, so stalls overlap.
 */
#define SOURCE_MAX_CONNS 64

typedef struct source_server {
    int fd, port;
    pthread_t thread;
    atomic_bool stop;
    const unsigned char *data;
    size_t len;
    int stall_ms;
    atomic_int requests; /* requests read */
    atomic_int stalling; /* /stall answers that sent their first bytes */
    atomic_int stalled;  /* /stall answers sent whole */
    pthread_t conns[SOURCE_MAX_CONNS];
    int nconns;
} source_server_t;

typedef struct source_conn {
    source_server_t *s;
    int fd;
} source_conn_t;

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        c += k;
        n -= (size_t)k;
    }
}

static void send_head(int fd, int status, const char *extra, size_t length)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\nContent-Type: application/octet-stream\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, length, extra);
    send_all(fd, head, (size_t)n);
}

static void *source_conn_main(void *arg)
{
    source_conn_t c = *(source_conn_t *)arg;
    source_server_t *s = c.s;
    free(arg);
    char req[8192], path[256] = "";
    size_t got = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (got < sizeof req - 1) {
        ssize_t k = recv(c.fd, req + got, sizeof req - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    req[got] = '\0';
    if (sscanf(req, "%*s %255s", path) != 1)
        path[0] = '\0';
    atomic_fetch_add(&s->requests, 1);

    if (strcmp(path, "/ok") == 0) {
        send_head(c.fd, 200, "", s->len);
        send_all(c.fd, s->data, s->len);
    } else if (strcmp(path, "/empty") == 0) {
        send_head(c.fd, 200, "", 0);
    } else if (strcmp(path, "/redirect") == 0) {
        send_head(c.fd, 302, "Location: /ok\r\n", 0);
    } else if (strcmp(path, "/stall") == 0) {
        size_t first = s->len < 16 ? s->len : 16;
        send_head(c.fd, 200, "", s->len);
        send_all(c.fd, s->data, first);
        atomic_fetch_add(&s->stalling, 1);
        sleep_ms(s->stall_ms);
        send_all(c.fd, s->data + first, s->len - first);
        atomic_fetch_add(&s->stalled, 1);
    } else if (strcmp(path, "/hangup") == 0) {
        /* nothing */
    } else {
        int status = atoi(path[0] == '/' ? path + 1 : "404");
        static const char body[] = "<error>no</error>";
        send_head(c.fd, status >= 200 && status <= 599 ? status : 404, "", sizeof body - 1);
        send_all(c.fd, body, sizeof body - 1);
    }
    shutdown(c.fd, SHUT_WR);
    close(c.fd);
    return NULL;
}

static void *source_accept_main(void *arg)
{
    source_server_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        source_conn_t *c = malloc(sizeof *c);
        if (c == NULL || s->nconns == SOURCE_MAX_CONNS) {
            free(c);
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        if (pthread_create(&s->conns[s->nconns], NULL, source_conn_main, c) == 0) {
            s->nconns++;
        } else {
            free(c);
            close(fd);
        }
    }
    return NULL;
}

static void source_start(source_server_t *s, const unsigned char *data, size_t len, int stall_ms)
{
    memset(s, 0, sizeof *s);
    s->data = data;
    s->len = len;
    s->stall_ms = stall_ms;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s->fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    CHECK(bind(s->fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(s->fd, 64) == 0 &&
              getsockname(s->fd, (struct sockaddr *)&a, &alen) == 0,
          "source server: %s", strerror(errno));
    s->port = ntohs(a.sin_port);
    CHECK(pthread_create(&s->thread, NULL, source_accept_main, s) == 0, "pthread_create failed");
}

static void source_stop(source_server_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->nconns; i++)
        pthread_join(s->conns[i], NULL);
    close(s->fd);
}

static void source_url(const source_server_t *s, const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", s->port, path);
}

/* A port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &alen) == 0,
          "cannot find a closed port");
    close(fd);
    return ntohs(a.sin_port);
}

/* A POST /v1/releases run on a thread of its own. */
typedef struct bg_create {
    pthread_t thread;
    h_server_t *srv;
    char *body;
    h_resp_t resp;
    long elapsed_ms;
} bg_create_t;

static void *bg_create_main(void *arg)
{
    bg_create_t *b = arg;
    long t0 = now_ms();
    h_http(b->srv, "POST", "/v1/releases", b->srv->admin_key, b->body, strlen(b->body), NULL, &b->resp);
    b->elapsed_ms = now_ms() - t0;
    return NULL;
}

/* Starts POSTing {version, model, bin: {file: bin_url}, ufw: <ufw_json or absent>} in the background. */
static void bg_create_start(bg_create_t *b, h_server_t *srv, const char *model, const char *version,
                            const char *bin_url, json_t *ufw)
{
    memset(b, 0, sizeof *b);
    json_t *body = json_pack("{s:s, s:s, s:{s:s}}", "version", version, "model", model, "bin", "file", bin_url);
    if (ufw != NULL)
        json_object_set(body, "ufw", ufw);
    b->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    b->srv = srv;
    CHECK(pthread_create(&b->thread, NULL, bg_create_main, b) == 0, "pthread_create failed");
}

static void bg_create_join(bg_create_t *b)
{
    pthread_join(b->thread, NULL);
    free(b->body);
    b->body = NULL;
}

/* ---- 1. multipart, GET, list, download ------------------------------------------------- */

static void test_multipart_create_get_list_download(void **state)
{
    (void)state;
    char model[32], other[32];
    h_make_model(model, sizeof model, "Multipart");
    h_make_model(other, sizeof other, "Other");
    size_t bin_len = 150001, ufw_len = 40000;
    unsigned char *bin = random_bytes(bin_len), *ufw = random_bytes(ufw_len);
    digest_t db = digest_of(bin, bin_len), du = digest_of(ufw, ufw_len);

    mp_t m;
    mp_init(&m);
    mp_field(&m, "version", "1.0.0");
    mp_field(&m, "model", model);
    mp_field(&m, "notes", "First build\nwith two lines");
    mp_file(&m, "bin", "firmware.bin", bin, bin_len);
    mp_file(&m, "ufw", "firmware.ufw", ufw, ufw_len);
    h_resp_t created = {0}, r = {0};
    mp_post(&h_g_srv, &m, &created);
    EXPECT_STATUS(&created, 201);
    CHECK(strncasecmp(created.content_type, "application/json", 16) == 0, "content type %s", created.content_type);
    expect_release(&created, model, "1.0.0", "First build\nwith two lines", &db, &du);
    char id[40], path[128];
    snprintf(id, sizeof id, "%s", h_jstr(created.json, "id"));

    snprintf(path, sizeof path, "/v1/releases/%s", id);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_equal(r.json, created.json), "GET %s = %.2000s, created %.2000s", path, BODY(&r), BODY(&created));
    h_resp_free(&r);

    /* Two more releases of the model (JSON), one of another model. */
    unsigned char *b2 = random_bytes(3000), *b3 = random_bytes(5000);
    digest_t d2 = digest_of(b2, 3000), d3 = digest_of(b3, 5000);
    post_json(&h_g_srv, model, "1.1.0", NULL, blob_source(b2, 3000), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.1.0", NULL, &d2, NULL);
    h_resp_free(&r);
    post_json(&h_g_srv, model, "1.2.0", "third", blob_source(b3, 5000), blob_source(b2, 3000), &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.2.0", "third", &d3, &d2);
    h_resp_free(&r);
    post_json(&h_g_srv, other, "9.9.9", NULL, blob_source(b2, 3000), NULL, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    /* Pages of one, newest first, for this model only; next is null on the last. */
    static const char *const want[] = {"1.2.0", "1.1.0", "1.0.0"};
    char cursor[600] = "";
    for (size_t i = 0; i < ELEMS(want); i++) {
        list_page(&h_g_srv, model, 1, i > 0 ? cursor : NULL, &r);
        json_t *items = json_object_get(r.json, "items"), *next = json_object_get(r.json, "next");
        CHECK(json_array_size(items) == 1, "page %zu: %.2000s", i, BODY(&r));
        json_t *item = json_array_get(items, 0);
        CHECK(h_streq(h_jstr(item, "version"), want[i]) && h_streq(h_jstr(item, "model"), model),
              "page %zu: want version %s of %s: %.2000s", i, want[i], model, BODY(&r));
        if (i + 1 < ELEMS(want)) {
            CHECK(json_is_string(next) && json_string_length(next) > 0, "page %zu: no next: %.2000s", i, BODY(&r));
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        } else {
            CHECK(json_is_null(next), "last page: next is not null: %.2000s", BODY(&r));
            CHECK(json_equal(item, created.json), "listed %.2000s, created %.2000s", BODY(&r), BODY(&created));
        }
        h_resp_free(&r);
    }
    list_page(&h_g_srv, model, 500, NULL, &r);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 3 && json_is_null(json_object_get(r.json, "next")),
          "the whole list: %.2000s", BODY(&r));
    h_resp_free(&r);

    /* The artifacts, through the redirect, with no credentials. */
    char url[4096];
    artifact_url(&h_g_srv, id, "bin", url, sizeof url);
    expect_download(url, bin, bin_len);
    artifact_url(&h_g_srv, id, "ufw", url, sizeof url);
    expect_download(url, ufw, ufw_len);

    h_resp_free(&created);
    free(bin);
    free(ufw);
    free(b2);
    free(b3);
}

/* ---- 2. JSON sources: blob, file:// ------------------------------------------------------ */

static void expect_json_fails(h_server_t *srv, const char *model, const char *version, json_t *bin, json_t *ufw,
                              const char *message, const char *artifact)
{
    h_resp_t r = {0};
    post_json(srv, model, version, NULL, bin, ufw, &r);
    EXPECT_UPLOAD_FAILED(srv, &r, message, artifact);
    h_resp_free(&r);
}

static void test_json_blob_and_file_sources(void **state)
{
    (void)state;
    char model[32], url[700], path[600], hex[17];
    h_make_model(model, sizeof model, "Sources");
    h_random_hex(hex, 16);
    h_resp_t r = {0};

    /* blob */
    unsigned char *b = random_bytes(20000);
    digest_t db = digest_of(b, 20000);
    post_json(&h_g_srv, model, "2.0.0", NULL, blob_source(b, 20000), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "2.0.0", NULL, &db, NULL);
    char blob_id[40], dl[4096];
    snprintf(blob_id, sizeof blob_id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    artifact_url(&h_g_srv, blob_id, "bin", dl, sizeof dl);
    expect_download(dl, b, 20000);

    /* file:// inside the import folder, bin at its top, ufw in a subfolder */
    unsigned char *f = random_bytes(70000), *fu = random_bytes(1234);
    digest_t df = digest_of(f, 70000), dfu = digest_of(fu, 1234);
    snprintf(path, sizeof path, "%s/%s.bin", g_import, hex);
    write_file(path, f, 70000);
    char sub[600], ufw_path[700], ufw_url[800];
    snprintf(sub, sizeof sub, "%s/sub-%s", g_import, hex);
    CHECK(mkdir(sub, 0755) == 0, "mkdir %s: %s", sub, strerror(errno));
    snprintf(ufw_path, sizeof ufw_path, "%s/fw.ufw", sub);
    write_file(ufw_path, fu, 1234);
    snprintf(url, sizeof url, "file://%s", path);
    snprintf(ufw_url, sizeof ufw_url, "file://%s", ufw_path);
    post_json(&h_g_srv, model, "2.1.0", "from files", file_source(url), file_source(ufw_url), &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "2.1.0", "from files", &df, &dfu);
    char file_id[40];
    snprintf(file_id, sizeof file_id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    artifact_url(&h_g_srv, file_id, "bin", dl, sizeof dl);
    expect_download(dl, f, 70000);
    artifact_url(&h_g_srv, file_id, "ufw", dl, sizeof dl);
    expect_download(dl, fu, 1234);

    /* outside the import folder, existing or not, directly, through "..", or through a symbolic link */
    char outside[600], link[600];
    snprintf(outside, sizeof outside, "%s/%s.bin", g_outside, hex);
    write_file(outside, f, 70000);
    snprintf(url, sizeof url, "file://%s", outside);
    expect_json_fails(&h_g_srv, model, "3.0.1", file_source(url), NULL, "Access denied", "bin");
    snprintf(url, sizeof url, "file://%s/missing-%s.bin", g_outside, hex);
    expect_json_fails(&h_g_srv, model, "3.0.2", file_source(url), NULL, "Access denied", "bin");
    snprintf(url, sizeof url, "file://%s/../outside/%s.bin", g_import, hex);
    expect_json_fails(&h_g_srv, model, "3.0.3", file_source(url), NULL, "Access denied", "bin");
    snprintf(url, sizeof url, "file://%s/sub-%s/../../outside/%s.bin", g_import, hex, hex);
    expect_json_fails(&h_g_srv, model, "3.0.4", file_source(url), NULL, "Access denied", "bin");
    snprintf(url, sizeof url, "file://%s/../outside/missing-%s.bin", g_import, hex);
    expect_json_fails(&h_g_srv, model, "3.0.5", file_source(url), NULL, "Access denied", "bin");
    snprintf(link, sizeof link, "%s/link-%s.bin", g_import, hex);
    CHECK(symlink(outside, link) == 0, "symlink: %s", strerror(errno));
    snprintf(url, sizeof url, "file://%s", link);
    expect_json_fails(&h_g_srv, model, "3.0.6", file_source(url), NULL, "Access denied", "bin");
    expect_json_fails(&h_g_srv, model, "3.0.7", file_source("file:///etc/passwd"), NULL, "Access denied", "bin");

    /* missing inside */
    snprintf(url, sizeof url, "file://%s/missing-%s.bin", g_import, hex);
    expect_json_fails(&h_g_srv, model, "3.1.0", file_source(url), NULL, "File not found", "bin");
    snprintf(url, sizeof url, "file://%s/missing-%s.ufw", g_import, hex);
    expect_json_fails(&h_g_srv, model, "3.1.1", blob_source(b, 100), file_source(url), "File not found", "ufw");

    /* other schemes */
    expect_json_fails(&h_g_srv, model, "3.2.0", file_source("ftp://127.0.0.1/fw.bin"), NULL, "Scheme not supported",
                      "bin");
    expect_json_fails(&h_g_srv, model, "3.2.1", file_source("fw.bin"), NULL, "Scheme not supported", "bin");

    /* both, neither, all three */
    json_t *both = json_pack("{s:s, s:s}", "file", url, "blob", "AAAA");
    expect_json_fails(&h_g_srv, model, "3.3.0", both, NULL, "Invalid arguments", "bin");
    expect_json_fails(&h_g_srv, model, "3.3.1", json_object(), NULL, "Invalid arguments", "bin");
    json_t *three = json_pack("{s:s, s:s, s:s}", "file", url, "blob", "AAAA", "upload_id", blob_id);
    expect_json_fails(&h_g_srv, model, "3.3.2", blob_source(b, 10), three, "Invalid arguments", "ufw");

    /* bad base64, empty blob, empty file */
    expect_json_fails(&h_g_srv, model, "3.4.0", json_pack("{s:s}", "blob", "not base64!"), NULL,
                      "Invalid base64 string", "bin");
    expect_json_fails(&h_g_srv, model, "3.4.1", json_pack("{s:s}", "blob", ""), NULL, "Unsupported content", "bin");
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty-%s.bin", g_import, hex);
    write_file(empty, NULL, 0);
    snprintf(url, sizeof url, "file://%s", empty);
    expect_json_fails(&h_g_srv, model, "3.4.2", file_source(url), NULL, "Unsupported content", "bin");

    /* None of the failures made a release. */
    CHECK(release_count(model) == 2, "model %s has %zu releases, want the 2 made", model, release_count(model));
    free(b);
    free(f);
    free(fu);
}

static void test_import_dir_unset(void **state)
{
    (void)state;
    char model[32], path[600], url[700], hex[17];
    h_make_model(model, sizeof model, "No import");
    h_random_hex(hex, 16);
    unsigned char *f = random_bytes(5000);
    snprintf(path, sizeof path, "%s/%s.bin", g_import, hex);
    write_file(path, f, 5000);
    h_server_t *srv = start_other(false, NULL);

    snprintf(url, sizeof url, "file://%s", path);
    expect_json_fails(srv, model, "1.0.0", file_source(url), NULL, "Access denied", "bin");
    snprintf(url, sizeof url, "file://%s/missing-%s.bin", g_import, hex);
    expect_json_fails(srv, model, "1.0.1", file_source(url), NULL, "Access denied", "bin");
    expect_json_fails(srv, model, "1.0.2", file_source("file:///etc/passwd"), NULL, "Access denied", "bin");

    /* The other sources still work there. */
    h_resp_t r = {0};
    digest_t d = digest_of(f, 5000);
    post_json(srv, model, "1.1.0", NULL, blob_source(f, 5000), NULL, &r);
    CHECK_AT(srv, r.status == 201, "blob on the server without OTA_IMPORT_DIR: %ld %.2000s", r.status, BODY(&r));
    expect_release(&r, model, "1.1.0", NULL, &d, NULL);
    h_resp_free(&r);
    free(f);
}

/* OTA_MAX_BODY=100000 on a second server: artifacts over it are "Unsupported content", whatever their source. */
static void test_size_limit(void **state)
{
    (void)state;
    enum { MAX = 100000 };
    static const char *const extra[] = {"OTA_MAX_BODY=100000", NULL};
    char model[32], path[600], url[700], hex[17], id[40], put_url[4096];
    h_make_model(model, sizeof model, "Limits");
    h_random_hex(hex, 16);
    unsigned char *big = random_bytes(MAX + 1);
    digest_t d = digest_of(big, MAX);
    h_server_t *srv = start_other(true, extra);
    h_resp_t r = {0};

    post_json(srv, model, "1.0.0", NULL, blob_source(big, MAX), NULL, &r);
    CHECK_AT(srv, r.status == 201, "a blob of exactly OTA_MAX_BODY bytes: %ld %.2000s", r.status, BODY(&r));
    expect_release(&r, model, "1.0.0", NULL, &d, NULL);
    h_resp_free(&r);

    expect_json_fails(srv, model, "1.1.0", blob_source(big, MAX + 1), NULL, "Unsupported content", "bin");
    expect_json_fails(srv, model, "1.1.1", blob_source(big, 10), blob_source(big, MAX + 1), "Unsupported content",
                      "ufw");

    mp_t m;
    mp_init(&m);
    mp_field(&m, "version", "1.2.0");
    mp_field(&m, "model", model);
    mp_file(&m, "bin", "big.bin", big, MAX + 1);
    mp_post(srv, &m, &r);
    EXPECT_UPLOAD_FAILED(srv, &r, "Unsupported content", "bin");
    h_resp_free(&r);

    snprintf(path, sizeof path, "%s/big-%s.bin", g_import, hex);
    write_file(path, big, MAX + 1);
    snprintf(url, sizeof url, "file://%s", path);
    expect_json_fails(srv, model, "1.3.0", file_source(url), NULL, "Unsupported content", "bin");

    source_server_t src;
    source_start(&src, big, MAX + 1, 0);
    source_url(&src, "/ok", url, sizeof url);
    expect_json_fails(srv, model, "1.4.0", file_source(url), NULL, "Unsupported content", "bin");
    source_stop(&src);

    /* Presigned uploads: the announced size is capped, and so is what was PUT. */
    h_json(srv, "POST", "/v1/uploads", srv->admin_key, &r, "{s:s, s:i}", "artifact", "bin", "size", MAX + 1);
    CHECK_AT(srv, r.status == 422 && h_field_error(&r, "size"), "upload of OTA_MAX_BODY+1: %ld %.2000s", r.status,
             BODY(&r));
    h_resp_free(&r);
    create_upload(srv, "bin", MAX, id, sizeof id, put_url, sizeof put_url);
    put_bytes(put_url, big, MAX + 1);
    expect_json_fails(srv, model, "1.5.0", upload_source(id), NULL, "Unsupported content", "bin");

    CHECK(release_count(model) == 1, "model %s has %zu releases, want 1", model, release_count(model));

    /* A body past the HTTP limit (OTA_MAX_BODY*4/3 + 64 KiB) is refused as a whole, in the contract's shape. */
    size_t huge_len = 300000;
    unsigned char *huge = random_bytes(huge_len);
    mp_init(&m);
    mp_field(&m, "version", "1.6.0");
    mp_field(&m, "model", model);
    mp_file(&m, "bin", "huge.bin", huge, huge_len);
    mp_post(srv, &m, &r);
    free(huge);
    free(big);
    bool contract_413 = r.status == 413 && h_error_shape_strict(&r, "payload_too_large");
    char got[600];
    snprintf(got, sizeof got, "%ld (%s): %.200s", r.status, r.content_type, BODY(&r));
    h_resp_free(&r);
    CHECK_AT(srv, contract_413, "a %zu-byte body: expected 413 payload_too_large, got %s", huge_len, got);
}

/* ---- 3. http:// sources ------------------------------------------------------------------ */

static void test_http_source(void **state)
{
    (void)state;
    char model[32], url[300], dl[4096];
    h_make_model(model, sizeof model, "Remote");
    size_t len = 120000;
    unsigned char *data = random_bytes(len);
    digest_t d = digest_of(data, len);
    source_server_t src;
    source_start(&src, data, len, 0);
    h_resp_t r = {0};

    source_url(&src, "/ok", url, sizeof url);
    post_json(&h_g_srv, model, "1.0.0", NULL, file_source(url), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.0.0", NULL, &d, NULL);
    artifact_url(&h_g_srv, h_jstr(r.json, "id"), "bin", dl, sizeof dl);
    expect_download(dl, data, len);
    h_resp_free(&r);

    source_url(&src, "/redirect", url, sizeof url);
    post_json(&h_g_srv, model, "1.0.1", NULL, blob_source(data, 100), file_source(url), &r);
    EXPECT_STATUS(&r, 201);
    digest_t d100 = digest_of(data, 100);
    expect_release(&r, model, "1.0.1", NULL, &d100, &d);
    h_resp_free(&r);

    static const struct {
        const char *path, *message;
    } cases[] = {
        {"/404", "File not found"},     {"/410", "File not found"},        {"/403", "Access denied"},
        {"/401", "Access denied"},      {"/500", "Download failed"},       {"/503", "Download failed"},
        {"/hangup", "Download failed"}, {"/empty", "Unsupported content"},
    };
    for (size_t i = 0; i < ELEMS(cases); i++) {
        char version[16];
        snprintf(version, sizeof version, "2.0.%zu", i);
        source_url(&src, cases[i].path, url, sizeof url);
        post_json(&h_g_srv, model, version, NULL, file_source(url), NULL, &r);
        CHECK(r.status == 422 && h_error_shape_ok(&r, "upload_failed") &&
                  h_streq(h_jstr(json_object_get(r.json, "error"), "message"), cases[i].message),
              "source answering %s: expected 422 upload_failed \"%s\", got %ld %.2000s", cases[i].path,
              cases[i].message, r.status, BODY(&r));
        h_resp_free(&r);
    }
    source_url(&src, "/404", url, sizeof url);
    expect_json_fails(&h_g_srv, model, "2.1.0", blob_source(data, 100), file_source(url), "File not found", "ufw");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fw.bin", closed_port());
    expect_json_fails(&h_g_srv, model, "2.2.0", file_source(url), NULL, "Download failed", "bin");

    source_stop(&src);
    CHECK(release_count(model) == 2, "model %s has %zu releases, want 2", model, release_count(model));
    free(data);
}

/* ---- 4. presigned uploads ------------------------------------------------------------------- */

static void test_presigned_upload(void **state)
{
    (void)state;
    char model[32], id[40], put_url[4096], dl[4096], rel[40];
    h_make_model(model, sizeof model, "Uploads");
    size_t len = 90000;
    unsigned char *data = random_bytes(len), *ufw = random_bytes(777);
    digest_t d = digest_of(data, len), du = digest_of(ufw, 777);
    h_resp_t r = {0};

    create_upload(&h_g_srv, "bin", len, id, sizeof id, put_url, sizeof put_url);
    /* The PUT URL is for PUT only. */
    raw_t raw;
    raw_request("GET", put_url, NULL, NULL, NULL, 0, &raw);
    CHECK(raw.status == 403, "GET with a presigned PUT URL: expected 403, got %ld: %.500s", raw.status, RAW_BODY(&raw));
    raw_free(&raw);
    put_bytes(put_url, data, len);

    post_json(&h_g_srv, model, "1.0.0", NULL, upload_source(id), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.0.0", NULL, &d, NULL);
    snprintf(rel, sizeof rel, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    artifact_url(&h_g_srv, rel, "bin", dl, sizeof dl);
    expect_download(dl, data, len);

    /* A ufw upload beside a blob bin. */
    char uid[40], uurl[4096];
    create_upload(&h_g_srv, "ufw", 777, uid, sizeof uid, uurl, sizeof uurl);
    put_bytes(uurl, ufw, 777);
    post_json(&h_g_srv, model, "1.0.1", NULL, blob_source(data, 500), upload_source(uid), &r);
    EXPECT_STATUS(&r, 201);
    digest_t d500 = digest_of(data, 500);
    expect_release(&r, model, "1.0.1", NULL, &d500, &du);
    h_resp_free(&r);

    /* An upload serves one release only. (details.artifact is checked last, so that the rest runs first.) */
    post_json(&h_g_srv, model, "1.1.0", NULL, upload_source(id), NULL, &r);
    EXPECT_UPLOAD_FAILED(&h_g_srv, &r, "Invalid arguments", NULL);
    bool reuse_names_bin =
        h_streq(h_jstr(json_object_get(json_object_get(r.json, "error"), "details"), "artifact"), "bin");
    char reuse_body[600];
    snprintf(reuse_body, sizeof reuse_body, "%s", BODY(&r));
    h_resp_free(&r);

    /* Never PUT: not found; once PUT, usable. */
    char nid[40], nurl[4096];
    create_upload(&h_g_srv, "bin", 500, nid, sizeof nid, nurl, sizeof nurl);
    expect_json_fails(&h_g_srv, model, "1.2.0", upload_source(nid), NULL, "File not found", "bin");
    put_bytes(nurl, data, 500);
    post_json(&h_g_srv, model, "1.2.0", NULL, upload_source(nid), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.2.0", NULL, &d500, NULL);
    h_resp_free(&r);

    /* Fewer bytes than announced: refused; the right bytes PUT again: accepted. */
    char sid[40], surl[4096];
    create_upload(&h_g_srv, "bin", 1000, sid, sizeof sid, surl, sizeof surl);
    put_bytes(surl, data, 990);
    expect_json_fails(&h_g_srv, model, "1.3.0", upload_source(sid), NULL, "Unsupported content", "bin");
    put_bytes(surl, data, 1000);
    digest_t d1000 = digest_of(data, 1000);
    post_json(&h_g_srv, model, "1.3.0", NULL, upload_source(sid), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.3.0", NULL, &d1000, NULL);
    h_resp_free(&r);

    /* Unknown uploads. */
    char unknown[40];
    h_random_uuid(unknown, sizeof unknown);
    expect_json_fails(&h_g_srv, model, "1.4.0", upload_source(unknown), NULL, "File not found", "bin");
    expect_json_fails(&h_g_srv, model, "1.4.1", upload_source("not-an-upload"), NULL, "File not found", "bin");

    /* An upload made for ufw cannot be a bin. */
    char wid[40], wurl[4096];
    create_upload(&h_g_srv, "ufw", 100, wid, sizeof wid, wurl, sizeof wurl);
    put_bytes(wurl, data, 100);
    expect_json_fails(&h_g_srv, model, "1.5.0", upload_source(wid), NULL, "Invalid arguments", "bin");

    CHECK(release_count(model) == 4, "model %s has %zu releases, want 4", model, release_count(model));
    free(data);
    free(ufw);
    CHECK(reuse_names_bin, "reusing upload %s for a second release: want details.artifact \"bin\": %s", id, reuse_body);
}

/*
 * A release's bytes are immutable: the upload's presigned PUT URL stays valid after the release is made, and
 * whoever holds it may PUT other bytes. The release was copied to its own key and hashed there, so its download
 * still gives the original bytes, whose SHA-256 is the one stored.
 */
static void test_upload_put_again_after_release(void **state)
{
    (void)state;
    char model[32], id[40], put_url[4096], rel[40], dl[4096], key[100];
    h_make_model(model, sizeof model, "Immutable");
    size_t len = 30000;
    unsigned char *first = random_bytes(len), *second = random_bytes(len);
    digest_t d = digest_of(first, len);
    h_resp_t r = {0};

    create_upload(&h_g_srv, "bin", len, id, sizeof id, put_url, sizeof put_url);
    put_bytes(put_url, first, len);
    post_json(&h_g_srv, model, "1.0.0", NULL, upload_source(id), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.0.0", NULL, &d, NULL);
    snprintf(rel, sizeof rel, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    snprintf(key, sizeof key, "releases/%s/bin", rel);
    CHECK(object_exists(key), "the release's own object %s is missing", key);

    put_bytes(put_url, second, len); /* the URL still works: for the upload's object only */
    artifact_url(&h_g_srv, rel, "bin", dl, sizeof dl);
    expect_download(dl, first, len);
    char path[100];
    snprintf(path, sizeof path, "/v1/releases/%s", rel);
    h_request(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    expect_release(&r, model, "1.0.0", NULL, &d, NULL);
    h_resp_free(&r);
    free(first);
    free(second);
}

/* Below the import folder no link is followed, even one that stays inside; a FIFO is refused at once. */
static void test_import_links_and_fifo(void **state)
{
    (void)state;
    char model[32], hex[17], path[600], link[600], url[700];
    h_make_model(model, sizeof model, "Links");
    h_random_hex(hex, 16);
    unsigned char *f = random_bytes(1000);
    snprintf(path, sizeof path, "%s/real-%s.bin", g_import, hex);
    write_file(path, f, 1000);
    snprintf(link, sizeof link, "%s/alias-%s.bin", g_import, hex);
    CHECK(symlink(path, link) == 0, "symlink: %s", strerror(errno));
    snprintf(url, sizeof url, "file://%s", link);
    expect_json_fails(&h_g_srv, model, "1.0.0", file_source(url), NULL, "Access denied", "bin");
    snprintf(url, sizeof url, "file://%s/sub-%s/../real-%s.bin", g_import, hex, hex); /* ".." that stays inside */
    h_resp_t r = {0};
    post_json(&h_g_srv, model, "1.0.0", NULL, file_source(url), NULL, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    snprintf(path, sizeof path, "%s/pipe-%s.bin", g_import, hex);
    CHECK(mkfifo(path, 0644) == 0, "mkfifo: %s", strerror(errno));
    snprintf(url, sizeof url, "file://%s", path);
    long t0 = now_ms();
    expect_json_fails(&h_g_srv, model, "1.0.1", file_source(url), NULL, "Read failed", "bin");
    CHECK(now_ms() - t0 < 5000, "a FIFO took %ld ms to refuse", now_ms() - t0);
    free(f);
}

/* Writes `len` bytes as object `key` behind the server's back, as a create that died with its process leaves it. */
static void put_orphan(const char *key, const unsigned char *data, size_t len)
{
#ifdef OTA_IT_S3
    char url[4096];
    const char *args[] = {"presign", "--method", "PUT", "--key", key, NULL};
    int rc = h_run_server_cmd(&h_g_pg, args, h_s3_env(&g_s3), url, sizeof url);
    url[strcspn(url, "\n")] = '\0';
    CHECK(rc == 0 && url[0] != '\0', "ota-server presign --key %s: %d", key, rc);
    put_bytes(url, data, len);
#else
    char root[300], path[800], dir[800];
    store_root(root, sizeof root);
    snprintf(path, sizeof path, "%s/%s", root, key);
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
    write_file(path, data, len);
#endif
}

/* Polls (up to `ms`) until every key of `keys` is gone; returns the first still there, or NULL. */
static const char *wait_all_gone(const char *const *keys, size_t n, long ms)
{
    long deadline = now_ms() + ms;
    for (;;) {
        const char *left = NULL;
        for (size_t i = 0; i < n && left == NULL; i++)
            if (object_exists(keys[i]))
                left = keys[i];
        if (left == NULL || now_ms() > deadline)
            return left;
        sleep_ms(100);
    }
}

/*
 * The object sweeper, on a server that sweeps every second with a grace period of 3 s and URLs valid for 6 s:
 * an upload never used, an upload a release copied, an orphan under releases/ and (fs) a temporary file go once
 * they are older than the grace period (uploads: once their URL expired that long ago); the objects of live
 * releases stay, and so does an upload older than the grace period whose URL is still valid.
 */
static void test_object_sweeper(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_GC_INTERVAL_S=1", "OTA_GC_GRACE_S=3", "OTA_URL_TTL=6", NULL};
    h_server_t *srv = start_other(false, extra);
    char model[32], orphan[100], temp[120], unused_key[100], used_key[100], recent_key[100], r1_key[100],
        r2_key[100], uid1[40], uid2[40], uid3[40], url[4096], r1[40], r2[40], dl[4096], rid[40];
    h_make_model(model, sizeof model, "Sweep");
    size_t len = 4000;
    unsigned char *a = random_bytes(len), *b = random_bytes(len);
    h_resp_t r = {0};
    long t0 = now_ms();

    create_upload(srv, "bin", len, uid1, sizeof uid1, url, sizeof url); /* never used */
    put_bytes(url, a, len);
    snprintf(unused_key, sizeof unused_key, "uploads/%s/bin", uid1);
    create_upload(srv, "bin", len, uid2, sizeof uid2, url, sizeof url); /* copied by release 1.0.1 */
    put_bytes(url, b, len);
    snprintf(used_key, sizeof used_key, "uploads/%s/bin", uid2);
    post_json(srv, model, "1.0.0", NULL, blob_source(a, len), NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(r1, sizeof r1, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    post_json(srv, model, "1.0.1", NULL, upload_source(uid2), NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(r2, sizeof r2, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    snprintf(r1_key, sizeof r1_key, "releases/%s/bin", r1);
    snprintf(r2_key, sizeof r2_key, "releases/%s/bin", r2);
    h_random_uuid(rid, sizeof rid);
    snprintf(orphan, sizeof orphan, "releases/%s/bin", rid);
    put_orphan(orphan, a, len);
    snprintf(temp, sizeof temp, "releases/%s/bin.tmp-0b7e1f0a", rid);
#ifndef OTA_IT_S3
    put_orphan(temp, a, 10); /* only the fs backend writes temporary files */
#endif

    sleep_ms(4000);
    create_upload(srv, "bin", len, uid3, sizeof uid3, url, sizeof url); /* valid until t0 + 10 s */
    put_bytes(url, a, len);
    snprintf(recent_key, sizeof recent_key, "uploads/%s/bin", uid3);
    long t3 = now_ms();

    /* Uploads go at t0 + 6 + 3 s at the earliest; the orphans already at t0 + 3 s. */
    const char *gone[] = {unused_key, used_key, orphan, temp};
    const char *left = wait_all_gone(gone, ELEMS(gone), 20000);
    long took = now_ms();
    if (left != NULL)
        h_server_dump_log(srv);
    CHECK(left == NULL, "%s is still there %ld ms after it was made", left, now_ms() - t0);
    /* The recent upload is older than the grace period by now, but its URL expired less than that ago. */
    CHECK(took - t3 < 9000, "the sweep came too late (%ld ms) to judge the recent upload", took - t3);
    CHECK(object_exists(recent_key), "the upload made %ld ms ago, URL still valid or just expired, was removed",
          took - t3);
    CHECK(object_exists(r1_key) && object_exists(r2_key), "a live release's object was removed");
    artifact_url(srv, r1, "bin", dl, sizeof dl);
    expect_download(dl, a, len);
    artifact_url(srv, r2, "bin", dl, sizeof dl);
    expect_download(dl, b, len);
    /* The unused upload's row went with its object. */
    expect_json_fails(srv, model, "1.1.0", upload_source(uid1), NULL, "File not found", "bin");
    free(a);
    free(b);
}

/*
 * A creation whose objects were stored longer than half the sweeper's grace period ago is refused (503) rather
 * than committed: an object that old may already have been judged unused by a sweep. Its objects are deleted.
 */
static void test_create_slower_than_grace(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_GC_GRACE_S=2", NULL};
    char model[32], url[300];
    h_make_model(model, sizeof model, "Slow");
    size_t len = 20000;
    unsigned char *bin = random_bytes(len);
    h_server_t *srv = start_other(true, extra);
    source_server_t src;
    source_start(&src, bin, len, 2500);
    files_t before;
    list_objects(&before);
    h_resp_t r = {0};

    /* The bin is stored at once, then the ufw's source takes 2.5 s: more than half of 2 s. */
    source_url(&src, "/stall", url, sizeof url);
    post_json(srv, model, "1.0.0", NULL, blob_source(bin, len), file_source(url), &r);
    CHECK_AT(srv, r.status == 503 && h_error_shape_ok(&r, "unavailable"), "expected 503 unavailable, got %ld: %.2000s",
             r.status, BODY(&r));
    h_resp_free(&r);
    expect_no_added_objects(&before, "a creation refused for taking longer than the grace period allows");
    CHECK(release_count(model) == 0, "the refused release is listed");

    source_url(&src, "/ok", url, sizeof url);
    post_json(srv, model, "1.0.0", NULL, blob_source(bin, len), file_source(url), &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    source_stop(&src);
    files_free(&before);
    free(bin);
}

static void test_upload_bad_requests(void **state)
{
    (void)state;
    h_resp_t r = {0};
    static const struct {
        const char *body, *field; /* field NULL: 400 bad_request */
    } cases[] = {
        {"{\"artifact\": \"bin\", \"size\": 0}", "size"},
        {"{\"artifact\": \"bin\", \"size\": -1}", "size"},
        {"{\"artifact\": \"bin\", \"size\": 67108865}", "size"},
        {"{\"artifact\": \"bin\"}", "size"},
        {"{\"artifact\": \"exe\", \"size\": 10}", "artifact"},
        {"{\"size\": 10}", "artifact"},
        {"{\"artifact\": \"bin\", \"size\": \"x\"}", NULL},
        {"{\"artifact\": \"bin\", \"size\": 1.5}", NULL},
        {"{\"artifact\": 1, \"size\": 10}", NULL},
        {"{\"artifact\": \"bin\", \"size\": 10", NULL},
    };
    for (size_t i = 0; i < ELEMS(cases); i++) {
        h_request(&h_g_srv, "POST", "/v1/uploads", h_g_srv.admin_key, cases[i].body, &r);
        if (cases[i].field != NULL)
            CHECK(r.status == 422 && h_error_shape_ok(&r, "validation_failed") && h_field_error(&r, cases[i].field),
                  "%s: expected 422 with details.fields.%s, got %ld %.2000s", cases[i].body, cases[i].field, r.status,
                  BODY(&r));
        else
            CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"), "%s: expected 400, got %ld %.2000s",
                  cases[i].body, r.status, BODY(&r));
        h_resp_free(&r);
    }
}

/* ---- 5. validation -------------------------------------------------------------------------- */

static void test_validation(void **state)
{
    (void)state;
    char model[32], unknown[32];
    h_make_model(model, sizeof model, "Validation");
    h_unique(unknown, sizeof unknown, "m-");
    unsigned char *b = random_bytes(2048);
    digest_t d = digest_of(b, 2048);
    h_resp_t r = {0};

    post_json(&h_g_srv, unknown, "1.0.0", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_FIELD_ERROR(&r, "model");
    h_resp_free(&r);
    post_json(&h_g_srv, "Not A Slug!", "1.0.0", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_FIELD_ERROR(&r, "model");
    h_resp_free(&r);
    post_json(&h_g_srv, NULL, "1.0.0", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_FIELD_ERROR(&r, "model");
    h_resp_free(&r);
    static const char *const bad_versions[] = {"1.2", "latest", "1.2.3.4", "01.2.3", "", "v"};
    for (size_t i = 0; i < ELEMS(bad_versions); i++) {
        post_json(&h_g_srv, model, bad_versions[i], NULL, blob_source(b, 2048), NULL, &r);
        CHECK(r.status == 422 && h_error_shape_ok(&r, "validation_failed") && h_field_error(&r, "version"),
              "version \"%s\": expected 422 with details.fields.version, got %ld %.2000s", bad_versions[i], r.status,
              BODY(&r));
        h_resp_free(&r);
    }
    post_json(&h_g_srv, model, NULL, NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_FIELD_ERROR(&r, "version");
    h_resp_free(&r);
    post_json(&h_g_srv, model, "1.0.0", NULL, NULL, blob_source(b, 2048), &r);
    EXPECT_FIELD_ERROR(&r, "bin");
    h_resp_free(&r);
    post_json(&h_g_srv, model, "1.0.0", NULL, json_null(), NULL, &r);
    EXPECT_FIELD_ERROR(&r, "bin");
    h_resp_free(&r);

    mp_t m;
    mp_init(&m);
    mp_field(&m, "version", "1.0.0");
    mp_field(&m, "model", model);
    mp_file(&m, "ufw", "fw.ufw", b, 2048);
    mp_post(&h_g_srv, &m, &r);
    EXPECT_FIELD_ERROR(&r, "bin");
    h_resp_free(&r);
    mp_init(&m);
    mp_field(&m, "version", "one");
    mp_field(&m, "model", model);
    mp_file(&m, "bin", "fw.bin", b, 2048);
    mp_post(&h_g_srv, &m, &r);
    EXPECT_FIELD_ERROR(&r, "version");
    h_resp_free(&r);
    /* A multipart field is bytes; notes that are not UTF-8 text cannot be stored (they once gave a 500). */
    mp_init(&m);
    mp_field(&m, "version", "1.0.1");
    mp_field(&m, "model", model);
    mp_field(&m, "notes", "caf\xe9");
    mp_file(&m, "bin", "fw.bin", b, 2048);
    mp_post(&h_g_srv, &m, &r);
    EXPECT_FIELD_ERROR(&r, "notes");
    h_resp_free(&r);

    /* "v1.2.3" is 1.2.3; a duplicate is a conflict, written either way. */
    post_json(&h_g_srv, model, "v1.2.3", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.2.3", NULL, &d, NULL);
    h_resp_free(&r);
    post_json(&h_g_srv, model, "1.2.3", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_ERROR(&r, 409, "conflict");
    h_resp_free(&r);
    post_json(&h_g_srv, model, "v1.2.3", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_ERROR(&r, 409, "conflict");
    h_resp_free(&r);
    post_json(&h_g_srv, model, "1.2.3-rc.1+build.5", NULL, blob_source(b, 2048), NULL, &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "1.2.3-rc.1+build.5", NULL, &d, NULL);
    h_resp_free(&r);

    /* Content types: other than JSON or multipart is 415; none at all is JSON. */
    char *json_body = NULL;
    {
        json_t *j = json_pack("{s:s, s:s, s:o}", "version", "2.0.0", "model", model, "bin", blob_source(b, 2048));
        json_body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    static const char *const refused[] = {"text/plain", "application/xml", "application/x-www-form-urlencoded"};
    for (size_t i = 0; i < ELEMS(refused); i++) {
        h_http(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, json_body, strlen(json_body), refused[i], &r);
        CHECK(r.status == 415 && h_error_shape_ok(&r, "unsupported_media_type"), "Content-Type %s: got %ld %.2000s",
              refused[i], r.status, BODY(&r));
        h_resp_free(&r);
    }
    h_http(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, json_body, strlen(json_body), "", &r);
    EXPECT_STATUS(&r, 201);
    expect_release(&r, model, "2.0.0", NULL, &d, NULL);
    h_resp_free(&r);
    free(json_body);

    /* Malformed bodies and wrong types: 400. */
    static const char *const malformed[] = {
        "{",
        "[]",
        "\"release\"",
        "{\"version\": 3, \"model\": \"x\", \"bin\": {\"blob\": \"AAAA\"}}",
        "{\"version\": \"3.0.0\", \"model\": [\"x\"], \"bin\": {\"blob\": \"AAAA\"}}",
        "{\"version\": \"3.0.0\", \"model\": \"x\", \"bin\": \"AAAA\"}",
        "{\"version\": \"3.0.0\", \"model\": \"x\", \"bin\": {\"blob\": 5}}",
        "{\"version\": \"3.0.0\", \"model\": \"x\", \"notes\": {}, \"bin\": {\"blob\": \"AAAA\"}}",
    };
    for (size_t i = 0; i < ELEMS(malformed); i++) {
        h_request(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, malformed[i], &r);
        CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"), "%s: expected 400, got %ld %.2000s", malformed[i],
              r.status, BODY(&r));
        h_resp_free(&r);
    }
    static const char bad_multipart[] =
        "--x\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1.0.0\r\n--x--\r\n";
    h_http(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, bad_multipart, sizeof bad_multipart - 1,
           "multipart/form-data", &r);
    CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"), "multipart without a boundary: %ld %.2000s", r.status,
          BODY(&r));
    h_resp_free(&r);

    CHECK(release_count(model) == 3, "model %s has %zu releases, want 3", model, release_count(model));
    free(b);
}

/* ---- 6. presigned URLs ------------------------------------------------------------------------ */

static void expect_raw_status(const char *what, const char *method, const char *url, const char *range, long want)
{
    raw_t r;
    raw_request(method, url, NULL, range, method[0] == 'P' ? (const unsigned char *)"x" : NULL, 1, &r);
    CHECK(r.status == want, "%s (%s %s%s%s): expected %ld, got %ld: %.500s", what, method, url,
          range != NULL ? " Range: " : "", range != NULL ? range : "", want, r.status, RAW_BODY(&r));
    raw_free(&r);
}

static void test_presigned_url_security(void **state)
{
    (void)state;
    char model[32], id[40], bin_url[4096], ufw_url[4096], url[4200];
    h_make_model(model, sizeof model, "Presigned");
    size_t len = 4000;
    unsigned char *bin = random_bytes(len), *ufw = random_bytes(300);
    h_resp_t r = {0};
    post_json(&h_g_srv, model, "1.0.0", NULL, blob_source(bin, len), blob_source(ufw, 300), &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    artifact_url(&h_g_srv, id, "bin", bin_url, sizeof bin_url);
    artifact_url(&h_g_srv, id, "ufw", ufw_url, sizeof ufw_url);
    expect_download(bin_url, bin, len);
    CHECK(strstr(bin_url, "X-Amz-Signature=") != NULL && strstr(bin_url, "X-Amz-Expires=900") != NULL,
          "not a SigV4 presigned URL valid 900 s: %s", bin_url);

    /* A changed signature. */
    snprintf(url, sizeof url, "%s", bin_url);
    char *sig = strstr(url, "X-Amz-Signature=") + strlen("X-Amz-Signature=");
    sig[0] = sig[0] == '0' ? '1' : '0';
    expect_raw_status("tampered signature", "GET", url, NULL, 403);

    /* A longer lifetime than was signed. */
    snprintf(url, sizeof url, "%s", bin_url);
    char *exp = strstr(url, "X-Amz-Expires=900");
    memcpy(exp + strlen("X-Amz-Expires="), "901", 3);
    expect_raw_status("changed X-Amz-Expires", "GET", url, NULL, 403);

    /* The ufw's path with the bin's query. */
    char *q_bin = strchr(bin_url, '?'), *q_ufw = strchr(ufw_url, '?');
    CHECK(q_bin != NULL && q_ufw != NULL, "no query in %s or %s", bin_url, ufw_url);
    snprintf(url, sizeof url, "%.*s%s", (int)(q_ufw - ufw_url), ufw_url, q_bin);
    expect_raw_status("another object's path with this one's query", "GET", url, NULL, 403);

    /* Other methods than the one signed. */
    expect_raw_status("HEAD with a GET URL", "HEAD", bin_url, NULL, 403);
    expect_raw_status("PUT with a GET URL", "PUT", bin_url, NULL, 403);

#ifndef OTA_IT_S3
    /* No signature at all. (s3rver lets unsigned requests through, where S3 answers 403 for a private bucket.) */
    snprintf(url, sizeof url, "%.*s", (int)(q_bin - bin_url), bin_url);
    expect_raw_status("no signature", "GET", url, NULL, 403);
#endif

    /* Ranges. */
    raw_t raw;
    raw_request("GET", bin_url, NULL, "bytes=10-19", NULL, 0, &raw);
    char want_range[64];
    snprintf(want_range, sizeof want_range, "bytes 10-19/%zu", len);
    CHECK(raw.status == 206 && raw.len == 10 && memcmp(raw.body, bin + 10, 10) == 0 &&
              strcmp(raw.content_range, want_range) == 0,
          "Range bytes=10-19: got %ld, %zu bytes, Content-Range \"%s\" (want 206, bytes 10..19, \"%s\")", raw.status,
          raw.len, raw.content_range, want_range);
    raw_free(&raw);
    char range[64];
    snprintf(range, sizeof range, "bytes=%zu-", len - 5);
    raw_request("GET", bin_url, NULL, range, NULL, 0, &raw);
    CHECK(raw.status == 206 && raw.len == 5 && memcmp(raw.body, bin + len - 5, 5) == 0,
          "Range %s: got %ld with %zu bytes", range, raw.status, raw.len);
    raw_free(&raw);
    snprintf(range, sizeof range, "bytes=%zu-", len);
    expect_raw_status("a range starting at the size", "GET", bin_url, range, 416);
#ifndef OTA_IT_S3
    /* A suffix range. (s3rver 4 reads "bytes=-5" as 0-5, unlike S3, so only the fs backend is held to it.) */
    raw_request("GET", bin_url, NULL, "bytes=-5", NULL, 0, &raw);
    CHECK(raw.status == 206 && raw.len == 5 && memcmp(raw.body, bin + len - 5, 5) == 0,
          "Range bytes=-5: got %ld with %zu bytes", raw.status, raw.len);
    raw_free(&raw);
#endif
    free(bin);
    free(ufw);
}

static void test_presigned_url_expiry(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_URL_TTL=1", NULL};
    char model[32], id[40], url[4096];
    h_make_model(model, sizeof model, "Expiry");
    unsigned char *bin = random_bytes(1000);
    h_resp_t r = {0};
    post_json(&h_g_srv, model, "1.0.0", NULL, blob_source(bin, 1000), NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);

    h_server_t *srv = start_other(true, extra);
    artifact_url(srv, id, "bin", url, sizeof url);
    const char *expires = strstr(url, "X-Amz-Expires=");
    CHECK(expires != NULL && strtol(expires + strlen("X-Amz-Expires="), NULL, 10) == 1,
          "OTA_URL_TTL=1 but the URL says otherwise: %s", url);
    sleep_ms(2500);
    expect_raw_status("an expired URL", "GET", url, NULL, 403);
    free(bin);
}

/* ---- 7. nothing half-made -------------------------------------------------------------------- */

static void test_failed_create_leaves_nothing(void **state)
{
    (void)state;
    char model[32], hex[17], outside[600], url[700];
    h_make_model(model, sizeof model, "Half");
    h_random_hex(hex, 16);
    size_t len = 60000;
    unsigned char *bin = random_bytes(len);
    snprintf(outside, sizeof outside, "%s/half-%s.ufw", g_outside, hex);
    write_file(outside, bin, 100);
    source_server_t src;
    source_start(&src, bin, len, 0);
    h_resp_t r = {0};
    files_t before;
    list_objects(&before);

    /* The bin is good and stored first; then the ufw fails. */
    expect_json_fails(&h_g_srv, model, "1.0.0", blob_source(bin, len), json_pack("{s:s}", "blob", "@@@@"),
                      "Invalid base64 string", "ufw");
    expect_no_added_objects(&before, "ufw with bad base64");
    snprintf(url, sizeof url, "file://%s", outside);
    expect_json_fails(&h_g_srv, model, "1.0.0", blob_source(bin, len), file_source(url), "Access denied", "ufw");
    expect_no_added_objects(&before, "ufw outside the import folder");
    source_url(&src, "/500", url, sizeof url);
    expect_json_fails(&h_g_srv, model, "1.0.0", blob_source(bin, len), file_source(url), "Download failed", "ufw");
    expect_no_added_objects(&before, "ufw from a failing server");
    source_url(&src, "/ok", url, sizeof url);
    expect_json_fails(&h_g_srv, model, "1.0.0", file_source(url), blob_source(bin, 0), "Unsupported content", "ufw");
    expect_no_added_objects(&before, "an empty ufw after a remote bin");

    mp_t m;
    mp_init(&m);
    mp_field(&m, "version", "1.0.0");
    mp_field(&m, "model", model);
    mp_file(&m, "bin", "fw.bin", bin, len);
    mp_file(&m, "ufw", "fw.ufw", bin, 0);
    mp_post(&h_g_srv, &m, &r);
    EXPECT_UPLOAD_FAILED(&h_g_srv, &r, "Unsupported content", "ufw");
    h_resp_free(&r);
    expect_no_added_objects(&before, "an empty multipart ufw");

    list_page(&h_g_srv, model, 50, NULL, &r);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 0, "failed creates are listed: %.2000s", BODY(&r));
    h_resp_free(&r);

    /* After all that, the version is still free. */
    post_json(&h_g_srv, model, "1.0.0", NULL, blob_source(bin, len), NULL, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    source_stop(&src);
    files_free(&before);
    free(bin);
}

/*
 * A server with one job thread and room for one waiting upload: while one create fetches its bin slowly on the
 * thread, of the uploads that come meanwhile (two creates and, with the fs storage, a presigned PUT) one waits and
 * the others are refused with 503 and Retry-After (`unavailable`, or S3's `SlowDown` for the PUT); which one waits
 * depends on which reaches the queue first. The one that waited and the slow one both succeed afterwards.
 */
#ifndef OTA_IT_S3
/* A presigned PUT run on a thread of its own. */
typedef struct bg_put {
    pthread_t thread;
    const char *url;
    const unsigned char *data;
    size_t len;
    raw_t resp;
} bg_put_t;

static void *bg_put_main(void *arg)
{
    bg_put_t *b = arg;
    raw_request("PUT", b->url, NULL, NULL, b->data, b->len, &b->resp);
    return NULL;
}
#endif

static void test_job_queue_full(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_JOB_THREADS=1", "OTA_JOBS_QUEUE_MAX=1", NULL};
    h_server_t *srv = start_other(false, extra);
    char model[32], url[300];
    h_make_model(model, sizeof model, "Queue");
    size_t len = 20000;
    unsigned char *bin = random_bytes(len);
    source_server_t src;
    source_start(&src, bin, len, 4000);
    source_url(&src, "/stall", url, sizeof url);

    bg_create_t slow, second;
    bg_create_start(&slow, srv, model, "1.0.0", url, NULL);
    for (int i = 0; i < 200 && atomic_load(&src.stalling) == 0; i++)
        sleep_ms(20);
    CHECK_AT(srv, atomic_load(&src.stalling) == 1, "the first create never began fetching its bin");
    int waited = 0, refused = 0, contenders = 2;
#ifndef OTA_IT_S3
    char upload_id[40], put_url[4096];
    create_upload(srv, "bin", 1000, upload_id, sizeof upload_id, put_url, sizeof put_url);
    bg_put_t bg_put = {.url = put_url, .data = bin, .len = 1000};
    CHECK(pthread_create(&bg_put.thread, NULL, bg_put_main, &bg_put) == 0, "pthread_create failed");
#endif
    bg_create_start(&second, srv, model, "2.0.0", url, NULL);
    h_resp_t third = {0};
    post_json(srv, model, "3.0.0", NULL, blob_source(bin, 1000), NULL, &third);
#ifndef OTA_IT_S3
    pthread_join(bg_put.thread, NULL);
    raw_t put = bg_put.resp;
    contenders++;
    if (put.status == 503) {
        CHECK_AT(srv, strstr(RAW_BODY(&put), "<Code>SlowDown</Code>") != NULL && put.retry_after[0] != '\0',
                 "a PUT refused with the queue full: %.1000s (Retry-After \"%s\")", RAW_BODY(&put), put.retry_after);
        refused++;
    } else {
        CHECK_AT(srv, put.status == 200, "the PUT that waited: %ld %.1000s", put.status, RAW_BODY(&put));
        waited++;
    }
    raw_free(&put);
#endif
    bg_create_join(&slow);
    bg_create_join(&second);
    source_stop(&src);

    CHECK_AT(srv, slow.resp.status == 201, "the slow create: %ld %.1000s", slow.resp.status, BODY(&slow.resp));
    h_resp_t *creates[] = {&second.resp, &third};
    for (size_t i = 0; i < ELEMS(creates); i++) {
        h_resp_t *r = creates[i];
        if (r->status == 503) {
            CHECK_AT(srv, h_error_shape_ok(r, "unavailable") && r->retry_after[0] != '\0',
                     "a create refused with the queue full: %.1000s (Retry-After \"%s\")", BODY(r), r->retry_after);
            refused++;
        } else {
            CHECK_AT(srv, r->status == 201, "the create that waited: %ld %.1000s", r->status, BODY(r));
            waited++;
        }
    }
    CHECK_AT(srv, waited == 1 && refused == contenders - 1,
             "with room for one waiting upload, %d of %d waited and %d were refused", waited, contenders, refused);
    h_resp_free(&slow.resp);
    h_resp_free(&second.resp);
    h_resp_free(&third);
    free(bin);
}

/* Two creates of one (model, version) at once, both past the precheck while their bins download slowly. */
static void test_concurrent_duplicate_create(void **state)
{
    (void)state;
    char model[32], url[300];
    h_make_model(model, sizeof model, "Race");
    size_t len = 50000;
    unsigned char *bin = random_bytes(len), *ufw = random_bytes(3000);
    digest_t db = digest_of(bin, len), du = digest_of(ufw, 3000);
    source_server_t src;
    source_start(&src, bin, len, 1000);
    source_url(&src, "/stall", url, sizeof url);
    files_t before, after;
    list_objects(&before);

    bg_create_t a, b;
    json_t *ufw_src = blob_source(ufw, 3000);
    bg_create_start(&a, &h_g_srv, model, "1.0.0", url, ufw_src);
    bg_create_start(&b, &h_g_srv, model, "1.0.0", url, ufw_src);
    json_decref(ufw_src);
    bg_create_join(&a);
    bg_create_join(&b);
    int both_fetched = atomic_load(&src.stalled);
    source_stop(&src);

    h_resp_t *win = a.resp.status == 201 ? &a.resp : &b.resp, *lose = win == &a.resp ? &b.resp : &a.resp;
    CHECK(win->status == 201 && lose->status == 409 && h_error_shape_ok(lose, "conflict"),
          "two creates of one version: want one 201 and one 409 conflict, got %ld %.1000s and %ld %.1000s",
          a.resp.status, BODY(&a.resp), b.resp.status, BODY(&b.resp));
    expect_release(win, model, "1.0.0", NULL, &db, &du);
    CHECK(both_fetched == 2, "only %d of the two creates fetched their bin: the race was not at the insert",
          both_fetched);
    CHECK(release_count(model) == 1, "model %s has %zu releases, want 1", model, release_count(model));

    /* Exactly the winner's two objects are new: the loser's are deleted. */
    const char *added[8] = {0};
    size_t n = wait_added_objects(&before, 2, &after);
    added_objects(&before, &after, added, ELEMS(added));
    char mark[64];
    snprintf(mark, sizeof mark, "/releases/%s/", h_jstr(win->json, "id"));
    CHECK(n == 2, "%zu new objects under releases/ after the race (want the winner's 2), e.g. %s, %s, %s", n,
          added[0] ? added[0] : "-", added[1] ? added[1] : "-", added[2] ? added[2] : "-");
    CHECK(strstr(added[0], mark) != NULL && strstr(added[1], mark) != NULL, "new objects %s, %s are not under %s",
          added[0], added[1], mark);

    files_free(&before);
    files_free(&after);
    h_resp_free(&a.resp);
    h_resp_free(&b.resp);
    free(bin);
    free(ufw);
}

/* ---- 8. withdraw and delete ----------------------------------------------------------------- */

static void test_withdraw_and_delete(void **state)
{
    (void)state;
    char model[32], id[40], path[128], apath[160], bin_url[4096], key_bin[96], key_ufw[96];
    h_make_model(model, sizeof model, "Lifecycle");
    unsigned char *bin = random_bytes(8000), *ufw = random_bytes(900);
    h_resp_t r = {0};
    post_json(&h_g_srv, model, "1.0.0", "before", blob_source(bin, 8000), blob_source(ufw, 900), &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/releases/%s", id);
    snprintf(key_bin, sizeof key_bin, "releases/%s/bin", id);
    snprintf(key_ufw, sizeof key_ufw, "releases/%s/ufw", id);
    CHECK(object_exists(key_bin) && object_exists(key_ufw), "no objects at %s and %s", key_bin, key_ufw);

    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s, s:s}", "status", "withdrawn", "notes", "pulled");
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "withdrawn") && h_streq(h_jstr(r.json, "notes"), "pulled") &&
              h_streq(h_jstr(r.json, "id"), id) && h_streq(h_jstr(r.json, "version"), "1.0.0"),
          "after PATCH: %.2000s", BODY(&r));
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "withdrawn") && h_streq(h_jstr(r.json, "notes"), "pulled"),
          "GET after PATCH: %.2000s", BODY(&r));
    h_resp_free(&r);

    /* Only notes: the status stays; notes null clears them. */
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "notes", "again");
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "withdrawn") && h_streq(h_jstr(r.json, "notes"), "again"),
          "after a notes PATCH: %.2000s", BODY(&r));
    h_resp_free(&r);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:n}", "notes");
    EXPECT_STATUS(&r, 200);
    CHECK(json_is_null(json_object_get(r.json, "notes")), "notes null: %.2000s", BODY(&r));
    h_resp_free(&r);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "released");
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "released"), "back to released: %.2000s", BODY(&r));
    h_resp_free(&r);

    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "deleted");
    EXPECT_FIELD_ERROR(&r, "status");
    h_resp_free(&r);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:i}", "status", 1);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    char unknown[40], upath[128];
    h_random_uuid(unknown, sizeof unknown);
    snprintf(upath, sizeof upath, "/v1/releases/%s", unknown);
    h_json(&h_g_srv, "PATCH", upath, h_g_srv.admin_key, &r, "{s:s}", "status", "withdrawn");
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);

    artifact_url(&h_g_srv, id, "bin", bin_url, sizeof bin_url);
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    CHECK(r.body_len == 0, "204 with a body: %.2000s", BODY(&r));
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    static const char *const kinds[] = {"bin", "ufw"};
    for (size_t i = 0; i < ELEMS(kinds); i++) {
        snprintf(apath, sizeof apath, "%s/artifacts/%s", path, kinds[i]);
        h_http(&h_g_srv, "GET", apath, h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_ERROR(&r, 404, "not_found");
        h_resp_free(&r);
    }
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&h_g_srv, "DELETE", upath, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    CHECK(release_count(model) == 0, "deleted release still listed");

    CHECK(wait_object_gone(key_bin) && wait_object_gone(key_ufw), "objects %s / %s still there 5 s after DELETE",
          key_bin, key_ufw);
    expect_raw_status("the URL of a deleted object", "GET", bin_url, NULL, 404);

    /* The version is free again. */
    post_json(&h_g_srv, model, "1.0.0", NULL, blob_source(bin, 8000), NULL, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    free(bin);
    free(ufw);
}

/* ---- 9. a slow upload does not hold up the event loop ---------------------------------------- */

static void test_slow_source_does_not_block_loop(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_THREADS=1", NULL};
    char model[32], url[300], path[128];
    h_make_model(model, sizeof model, "Loop");
    size_t len = 30000;
    unsigned char *bin = random_bytes(len);
    digest_t d = digest_of(bin, len);
    h_server_t *srv = start_other(true, extra);
    source_server_t src;
    source_start(&src, bin, len, 3000);
    source_url(&src, "/stall", url, sizeof url);

    bg_create_t bg;
    bg_create_start(&bg, srv, model, "1.0.0", url, NULL);
    long deadline = now_ms() + 5000;
    while (atomic_load(&src.stalling) == 0 && now_ms() < deadline)
        sleep_ms(10);
    CHECK(atomic_load(&src.stalling) == 1, "the server never fetched %s", url);

    /* The one loop thread answers while a job thread waits on the source. */
    snprintf(path, sizeof path, "/v1/releases?model=%s", model);
    for (int i = 0; i < 5; i++) {
        h_resp_t r = {0};
        long t0 = now_ms();
        if (i == 2)
            h_http(srv, "GET", path, srv->admin_key, NULL, 0, NULL, &r);
        else
            h_http(srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
        long took = now_ms() - t0;
        CHECK_AT(srv, r.status == 200 && took < 500, "probe %d while the upload stalls: %ld after %ld ms", i, r.status,
                 took);
        h_resp_free(&r);
        sleep_ms(100);
    }
    CHECK(atomic_load(&src.stalled) == 0, "the stall ended before the probes did: they proved nothing");

    bg_create_join(&bg);
    source_stop(&src);
    CHECK_AT(srv, bg.resp.status == 201, "the stalled create: %ld %.2000s", bg.resp.status, BODY(&bg.resp));
    expect_release(&bg.resp, model, "1.0.0", NULL, &d, NULL);
    CHECK(bg.elapsed_ms >= 2500, "the create took %ld ms; the source stalled 3000", bg.elapsed_ms);
    h_resp_free(&bg.resp);
    free(bin);
}

/* ---- 10. viewer keys ------------------------------------------------------------------------- */

static void test_viewer_key(void **state)
{
    (void)state;
    char model[32], id[40], path[128], apath[160], name[40], key[256] = "";
    h_make_model(model, sizeof model, "Viewer");
    unsigned char *bin = random_bytes(500);
    h_resp_t r = {0};
    post_json(&h_g_srv, model, "1.0.0", NULL, blob_source(bin, 500), NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);

    h_unique(name, sizeof name, "viewer-");
    const char *const args[] = {"apikey", "create", "--name", name, "--role", "viewer", NULL};
    const char *env[24];
    server_env(env, ELEMS(env), true, NULL);
    int rc = h_run_server_cmd(&h_g_pg, args, env, key, sizeof key);
    key[strcspn(key, "\r\n")] = '\0';
    CHECK(rc == 0 && key[0] != '\0', "apikey create --role viewer: exit %d, output \"%s\"", rc, key);

    char *body = NULL;
    {
        json_t *j = json_pack("{s:s, s:s, s:o}", "version", "2.0.0", "model", model, "bin", blob_source(bin, 500));
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    snprintf(path, sizeof path, "/v1/releases/%s", id);
    h_request(&h_g_srv, "POST", "/v1/releases", key, body, &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "POST", "/v1/releases");
    h_resp_free(&r);
    h_request(&h_g_srv, "POST", "/v1/uploads", key, "{\"artifact\": \"bin\", \"size\": 10}", &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "POST", "/v1/uploads");
    h_resp_free(&r);
    h_request(&h_g_srv, "PATCH", path, key, "{\"status\": \"withdrawn\"}", &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "PATCH", path);
    h_resp_free(&r);
    h_request(&h_g_srv, "DELETE", path, key, NULL, &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "DELETE", path);
    h_resp_free(&r);
    free(body);

    /* Reading is allowed, and nothing changed. */
    h_request(&h_g_srv, "GET", path, key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "released"), "viewer's GET: %.2000s", BODY(&r));
    h_resp_free(&r);
    char list[128];
    snprintf(list, sizeof list, "/v1/releases?model=%s", model);
    h_request(&h_g_srv, "GET", list, key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 1, "viewer's list: %.2000s", BODY(&r));
    h_resp_free(&r);
    snprintf(apath, sizeof apath, "%s/v1/releases/%s/artifacts/bin", h_g_srv.base_url, id);
    raw_t raw;
    raw_request("GET", apath, key, NULL, NULL, 0, &raw);
    CHECK(raw.status == 302 && raw.location[0] != '\0', "viewer's artifact redirect: %ld %.500s", raw.status,
          RAW_BODY(&raw));
    expect_download(raw.location, bin, 500);
    raw_free(&raw);

    /* No key at all: 401. */
    h_request(&h_g_srv, "GET", path, NULL, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    free(bin);
}

/* ---- the program --------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ota-rel-XXXXXX");
    if (mkdtemp(g_tmp) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(g_import, sizeof g_import, "%s/import", g_tmp);
    snprintf(g_outside, sizeof g_outside, "%s/outside", g_tmp);
    snprintf(g_import_env, sizeof g_import_env, "OTA_IMPORT_DIR=%s", g_import);
    if (mkdir(g_import, 0755) != 0 || mkdir(g_outside, 0755) != 0) {
        perror("mkdir");
        return -1;
    }
    h_pg_start(&h_g_pg);
#ifdef OTA_IT_S3
    h_s3_start(&g_s3, S3_BUCKET);
#endif
    const char *env[24];
    server_env(env, ELEMS(env), true, NULL);
    h_server_start(&h_g_srv, &h_g_pg, env);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    h_server_stop(&h_g_srv);
#ifdef OTA_IT_S3
    h_s3_stop(&g_s3);
#endif
    h_pg_destroy(&h_g_pg);
    const char *keep = getenv("OTA_TEST_KEEP");
    if (strncmp(g_tmp, "/tmp/ota-rel-", 13) == 0 && (keep == NULL || *keep == '\0' || strcmp(keep, "0") == 0))
        nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multipart_create_get_list_download),
        cmocka_unit_test(test_json_blob_and_file_sources),
        cmocka_unit_test_teardown(test_import_dir_unset, stop_other),
        cmocka_unit_test_teardown(test_size_limit, stop_other),
        cmocka_unit_test(test_http_source),
        cmocka_unit_test(test_presigned_upload),
        cmocka_unit_test(test_upload_put_again_after_release),
        cmocka_unit_test(test_import_links_and_fifo),
        cmocka_unit_test_teardown(test_object_sweeper, stop_other),
        cmocka_unit_test_teardown(test_create_slower_than_grace, stop_other),
        cmocka_unit_test(test_upload_bad_requests),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_presigned_url_security),
        cmocka_unit_test_teardown(test_presigned_url_expiry, stop_other),
        cmocka_unit_test(test_failed_create_leaves_nothing),
        cmocka_unit_test(test_concurrent_duplicate_create),
        cmocka_unit_test_teardown(test_job_queue_full, stop_other),
        cmocka_unit_test(test_withdraw_and_delete),
        cmocka_unit_test_teardown(test_slow_source_does_not_block_loop, stop_other),
        cmocka_unit_test(test_viewer_key),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
