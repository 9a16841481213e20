/*
 * The integration programs' shared checks and helpers (see checks.h).
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "checks.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "ota/crc32.h"

h_pg_t h_g_pg;
h_server_t h_g_srv;

void h_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: check failed: %s\n    ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    h_server_dump_log(&h_g_srv);
}

bool h_error_shape_ok(const h_resp_t *r, const char *code)
{
    if (!json_is_object(r->json))
        return false;
    json_t *e = json_object_get(r->json, "error");
    if (!json_is_object(e))
        return false;
    json_t *c = json_object_get(e, "code"), *m = json_object_get(e, "message");
    if (!json_is_string(c) || !json_is_string(m))
        return false;
    return code == NULL || strcmp(json_string_value(c), code) == 0;
}

bool h_error_shape_strict(const h_resp_t *r, const char *code)
{
    if (strncasecmp(r->content_type, "application/json", 16) != 0 || !h_error_shape_ok(r, code))
        return false;
    json_t *e = json_object_get(r->json, "error");
    json_t *d = json_object_get(e, "details");
    return json_string_length(json_object_get(e, "message")) > 0 && (d == NULL || json_is_object(d));
}

bool h_field_error(const h_resp_t *r, const char *name)
{
    json_t *fields = json_object_get(json_object_get(json_object_get(r->json, "error"), "details"), "fields");
    return json_is_object(fields) && json_object_get(fields, name) != NULL;
}

const char *h_jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool h_streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

bool h_rfc3339_utc(const char *s, time_t *out)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (s == NULL || strlen(s) < sizeof shape)
        return false;
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    const char *p = s + sizeof shape - 1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0)
        return false;
    struct tm tm = {0};
    if (strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
        return false;
    *out = timegm(&tm);
    return true;
}

void h_unique(char *out, size_t cap, const char *prefix)
{
    char hex[17];
    h_random_hex(hex, 16);
    snprintf(out, cap, "%s%s", prefix, hex);
}

void h_random_uuid(char *out, size_t cap)
{
    char hex[33];
    h_random_hex(hex, 32);
    snprintf(out, cap, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15, hex + 18);
}

void h_request(h_server_t *srv, const char *method, const char *path, const char *token, const char *body,
               h_resp_t *out)
{
    h_http(srv, method, path, token, body, body != NULL ? strlen(body) : 0, NULL, out);
}

void h_make_model(char *id, size_t cap, const char *name)
{
    h_unique(id, cap, "m-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", name);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

void h_cli_api_key(const char *role, char key[128])
{
    char name[40], out[512];
    h_unique(name, sizeof name, "it-key-");
    const char *const args[] = {"apikey", "create", "--name", name, "--role", role, NULL};
    int rc = h_run_server_cmd(&h_g_pg, args, NULL, out, sizeof out);
    CHECK(rc == 0, "apikey create --role %s exited %d; stdout: %s", role, rc, out);
    out[strcspn(out, "\r\n")] = '\0';
    CHECK(strncmp(out, "ota_", 4) == 0 && strlen(out) < 128, "apikey create printed \"%s\"", out);
    memcpy(key, out, strlen(out) + 1); /* fits: checked above */
}

/* ---- small utilities ---------------------------------------------------------------------------- */

void h_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool h_is_uuid(const char *s)
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

unsigned char *h_random_bytes(size_t n)
{
    unsigned char *p = malloc(n > 0 ? n : 1);
    CHECK(p != NULL, "out of memory");
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(p + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        CHECK(k > 0, "getrandom: %s", strerror(errno));
        got += (size_t)k;
    }
    return p;
}

static void hex_encode(const unsigned char *in, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

bool h_jnull(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v != NULL && json_is_null(v);
}

json_int_t h_jint(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static size_t on_bytes(char *data, size_t size, size_t nmemb, void *arg)
{
    h_buf_t *b = arg;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

long h_download(const char *url, h_buf_t *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    CHECK(c != NULL, "curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* ---- fixtures ----------------------------------------------------------------------------------- */

void h_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    CHECK(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32, "SHA-256 failed");
    hex_encode(md, n, out);
}

/* `len` random bytes with their CRC-32 and SHA-256 (hex), and their base64 (malloc'ed) into *b64. */
static unsigned char *artifact_bytes(size_t len, uint32_t *crc32, char sha256[65], char **b64)
{
    unsigned char *bytes = h_random_bytes(len);
    *crc32 = ota_crc32_update(0, bytes, len);
    h_sha256_hex(bytes, len, sha256);
    *b64 = malloc(4 * ((len + 2) / 3) + 1);
    CHECK(*b64 != NULL, "out of memory");
    EVP_EncodeBlock((unsigned char *)*b64, bytes, (int)len);
    return bytes;
}

void h_make_release_ufw(const char *model, const char *version, size_t len, size_t ufw_len, h_release_t *out)
{
    char *bin_b64 = NULL, *ufw_b64 = NULL;
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", model);
    snprintf(out->version, sizeof out->version, "%s", version);
    out->bin = artifact_bytes(len, &out->crc32, out->sha256, &bin_b64);
    out->len = len;
    if (ufw_len > 0) {
        out->ufw = artifact_bytes(ufw_len, &out->ufw_crc32, out->ufw_sha256, &ufw_b64);
        out->ufw_len = ufw_len;
    }
    h_resp_t r = {0};
    if (ufw_b64 != NULL)
        h_json(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, &r, "{s:s, s:s, s:{s:s}, s:{s:s}}", "version",
               version, "model", model, "bin", "blob", bin_b64, "ufw", "blob", ufw_b64);
    else
        h_json(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, &r, "{s:s, s:s, s:{s:s}}", "version", version,
               "model", model, "bin", "blob", bin_b64);
    free(bin_b64);
    free(ufw_b64);
    EXPECT_STATUS(&r, 201);
    CHECK(h_is_uuid(h_jstr(r.json, "id")), "release id: %s", BODY(&r));
    snprintf(out->id, sizeof out->id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

void h_make_release(const char *model, const char *version, size_t len, h_release_t *out)
{
    h_make_release_ufw(model, version, len, 0, out);
}

void h_release_free(h_release_t *r)
{
    free(r->bin);
    free(r->ufw);
    r->bin = NULL;
    r->ufw = NULL;
}

void h_make_device(const char *model, const char *firmware, h_device_t *out)
{
    memset(out, 0, sizeof *out);
    h_unique(out->serial, sizeof out->serial, "SN-");
    h_resp_t r = {0};
    if (firmware != NULL)
        h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s, s:s}", "serial", out->serial,
               "model", model, "firmware_version", firmware);
    else
        h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s}", "serial", out->serial, "model",
               model);
    EXPECT_STATUS(&r, 201);
    CHECK(h_is_uuid(h_jstr(r.json, "id")) && h_jstr(r.json, "token") != NULL, "device: %s", BODY(&r));
    snprintf(out->id, sizeof out->id, "%s", h_jstr(r.json, "id"));
    snprintf(out->token, sizeof out->token, "%s", h_jstr(r.json, "token"));
    snprintf(out->model, sizeof out->model, "%s", model);
    h_resp_free(&r);
}

void h_assign(const char *device_id, const char *release_id, h_resp_t *out)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", device_id);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, out, "{s:s}", "release_id", release_id);
}

void h_assign_downgrade(const char *device_id, const char *release_id, h_resp_t *out)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", device_id);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, out, "{s:s, s:b}", "release_id", release_id, "allow_downgrade",
           1);
}

static void assign_ok(const h_device_t *d, const h_release_t *rel, bool allow_downgrade, char id[40])
{
    h_resp_t r = {0};
    if (allow_downgrade)
        h_assign_downgrade(d->id, rel->id, &r);
    else
        h_assign(d->id, rel->id, &r);
    EXPECT_STATUS(&r, 201);
    json_t *a = r.json;
    time_t t;
    CHECK(h_is_uuid(h_jstr(a, "id")), "id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(a, "device_id"), d->id), "device_id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(a, "release_id"), rel->id), "release_id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(a, "version"), rel->version), "version: %s", BODY(&r));
    CHECK(h_streq(h_jstr(a, "status"), "pending"), "status: %s", BODY(&r));
    CHECK(h_rfc3339_utc(h_jstr(a, "created_at"), &t) && labs((long)(t - time(NULL))) < 120, "created_at: %s", BODY(&r));
    CHECK(h_jnull(a, "delivered_at") && h_jnull(a, "finished_at") && h_jnull(a, "reason"), "nulls: %s", BODY(&r));
    CHECK(json_is_integer(json_object_get(a, "deliveries")) && h_jint(a, "deliveries") == 0, "deliveries: %s",
          BODY(&r));
    CHECK(h_jnull(a, "rollout_id") && h_jnull(a, "progress"), "rollout_id and progress: %s", BODY(&r));
    snprintf(id, 40, "%s", h_jstr(a, "id"));
    h_resp_free(&r);
}

void h_assign_ok(const h_device_t *d, const h_release_t *rel, char id[40])
{
    assign_ok(d, rel, false, id);
}

void h_assign_downgrade_ok(const h_device_t *d, const h_release_t *rel, char id[40])
{
    assign_ok(d, rel, true, id);
}

json_t *h_create_rollout(const char *release_id, const char *members, char id[40])
{
    char body[2048];
    h_resp_t r = {0};
    snprintf(body, sizeof body, "{\"release_id\": \"%s\"%s%s}", release_id, members[0] != '\0' ? ", " : "", members);
    h_request(&h_g_srv, "POST", "/v1/rollouts", h_g_srv.admin_key, body, &r);
    EXPECT_STATUS(&r, 201);
    CHECK(h_is_uuid(h_jstr(r.json, "id")), "rollout: %s", BODY(&r));
    snprintf(id, 40, "%s", h_jstr(r.json, "id"));
    json_t *rollout = json_incref(r.json);
    h_resp_free(&r);
    return rollout;
}

json_t *h_get_rollout(const char *id)
{
    char path[96];
    h_resp_t r = {0};
    snprintf(path, sizeof path, "/v1/rollouts/%s", id);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "id"), id), "id: %s", BODY(&r));
    json_t *rollout = json_incref(r.json);
    h_resp_free(&r);
    return rollout;
}

json_t *h_get_assignment(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/assignments/%s", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_is_array(json_object_get(r.json, "events")), "no events array: %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "id"), id), "id: %s", BODY(&r));
    json_t *a = json_incref(r.json);
    h_resp_free(&r);
    return a;
}

json_t *h_get_device(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *d = json_incref(r.json);
    h_resp_free(&r);
    return d;
}

void h_expect_events(json_t *a, const h_event_t *want, size_t n)
{
    char *text = json_dumps(a, JSON_COMPACT);
    json_t *events = json_object_get(a, "events");
    CHECK(json_array_size(events) == n, "%zu events, want %zu: %s", json_array_size(events), n, text);
    time_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(events, i);
        time_t at;
        CHECK(h_rfc3339_utc(h_jstr(e, "at"), &at) && at >= prev, "event %zu: bad or out-of-order at: %s", i, text);
        prev = at;
        CHECK(want[i].from == NULL ? h_jnull(e, "from") : h_streq(h_jstr(e, "from"), want[i].from),
              "event %zu: from, want %s: %s", i, want[i].from ? want[i].from : "null", text);
        CHECK(h_streq(h_jstr(e, "to"), want[i].to), "event %zu: to, want %s: %s", i, want[i].to, text);
        CHECK(want[i].reason == NULL ? h_jnull(e, "reason") : h_streq(h_jstr(e, "reason"), want[i].reason),
              "event %zu: reason, want %s: %s", i, want[i].reason ? want[i].reason : "null", text);
    }
    free(text);
}

json_t *h_expect_assignment(const char *id, const char *status, json_int_t deliveries, const char *reason)
{
    json_t *a = h_get_assignment(id);
    for (long waited = 0; h_jint(a, "deliveries") != deliveries && waited < H_DEFERRED_WRITE_WAIT_MS; waited += 100) {
        json_decref(a);
        h_sleep_ms(100);
        a = h_get_assignment(id);
    }
    char *text = json_dumps(a, JSON_COMPACT);
    CHECK(h_streq(h_jstr(a, "status"), status), "status, want %s: %s", status, text);
    CHECK(h_jint(a, "deliveries") == deliveries, "deliveries, want %lld: %s", (long long)deliveries, text);
    CHECK(reason == NULL ? h_jnull(a, "reason") : h_streq(h_jstr(a, "reason"), reason), "reason, want %s: %s",
          reason ? reason : "null", text);
    bool final = strcmp(status, "applied") == 0 || strcmp(status, "failed") == 0 || strcmp(status, "canceled") == 0 ||
                 strcmp(status, "rolled_back") == 0;
    time_t t;
    CHECK(final ? h_rfc3339_utc(h_jstr(a, "finished_at"), &t) : h_jnull(a, "finished_at"), "finished_at: %s", text);
    if (deliveries > 0)
        CHECK(h_rfc3339_utc(h_jstr(a, "delivered_at"), &t), "delivered_at: %s", text);
    else
        CHECK(h_jnull(a, "delivered_at"), "delivered_at: %s", text);
    free(text);
    return a;
}

void h_heartbeat_on(h_server_t *srv, const char *device_id, const char *token, const char *body, h_resp_t *out)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/heartbeat", device_id);
    h_request(srv, "POST", path, token, body, out);
}

void h_heartbeat_ok(h_server_t *srv, const h_device_t *d, const char *body, h_resp_t *out)
{
    h_heartbeat_on(srv, d->id, d->token, body, out);
    if (out->status != 200 && srv != &h_g_srv)
        h_server_dump_log(srv);
    CHECK(out->status == 200, "heartbeat %s: expected 200, got %ld: %.2000s", body, out->status, BODY(out));
    time_t t;
    CHECK(h_rfc3339_utc(h_jstr(out->json, "server_time"), &t) && labs((long)(t - time(NULL))) < 120, "server_time: %s",
          BODY(out));
    CHECK(h_jint(out->json, "heartbeat_interval_s") == 60, "heartbeat_interval_s: %s", BODY(out));
    json_t *ota = json_object_get(out->json, "ota"), *deferred = json_object_get(out->json, "deferred");
    CHECK(ota != NULL && (json_is_null(ota) || json_is_object(ota)), "ota: %s", BODY(out));
    CHECK(deferred != NULL && (json_is_null(deferred) || json_is_string(deferred)), "deferred: %s", BODY(out));
}

void h_heartbeat_fw(const h_device_t *d, const char *firmware, h_resp_t *out)
{
    char body[128];
    snprintf(body, sizeof body, "{\"firmware_version\": \"%s\"}", firmware);
    h_heartbeat_ok(&h_g_srv, d, body, out);
}

void h_expect_no_manifest(const h_resp_t *r, const char *deferred)
{
    CHECK(h_jnull(r->json, "ota"), "expected ota null: %s", BODY(r));
    CHECK(deferred == NULL ? h_jnull(r->json, "deferred") : h_streq(h_jstr(r->json, "deferred"), deferred),
          "expected deferred %s: %s", deferred ? deferred : "null", BODY(r));
}

bool h_wait_ready(h_server_t *srv)
{
    for (int i = 0; i < 200; i++) {
        h_resp_t r = {0};
        h_http(srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
        long status = r.status;
        h_resp_free(&r);
        if (status == 200)
            return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "GET /readyz did not answer 200 within 10 s of the server's start\n");
    h_server_dump_log(srv);
    return false;
}

bool h_sql_holds(const char *expr)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN IF NOT coalesce((%s), false) THEN RAISE EXCEPTION 'does not hold'; END IF; END $$", expr);
    return h_pg_sql(&h_g_pg, sql) == 0;
}

long long h_metric(const char *series)
{
    h_resp_t r = {0};
    h_request(&h_g_srv, "GET", "/metrics", NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    long long v = h_metric_sample(r.body, series);
    h_resp_free(&r);
    return v;
}

long long h_metric_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return atoll(line + n + 1);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

bool h_sql_eventually(const char *expr)
{
    for (long waited = 0;; waited += 100) {
        if (h_sql_holds(expr))
            return true;
        if (waited >= H_DEFERRED_WRITE_WAIT_MS)
            return false;
        h_sleep_ms(100);
    }
}

int h_group_setup(void **state)
{
    (void)state;
    h_pg_start(&h_g_pg);
    h_server_start(&h_g_srv, &h_g_pg, NULL);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

int h_group_teardown(void **state)
{
    (void)state;
    h_server_stop(&h_g_srv);
    h_pg_destroy(&h_g_pg);
    return 0;
}
