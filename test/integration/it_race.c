/*
 * Integration: races across instances. Three ota-server instances on ONE
 * PostgreSQL database (as behind a load balancer), hit at the same moment:
 *
 *   (a) 120 concurrent POST /v1/devices/{id}/assignments for one device,
 *       spread over the three: exactly one 201, every other answer a 409
 *       active_assignment_exists naming that one;
 *   (b) concurrent heartbeats of one device with a pending assignment:
 *       every answer 200, as many manifests as `deliveries` counts, one
 *       pending->delivered event; then a burst where half report the new
 *       version: applied exactly once, and rolled back at most once (a
 *       report of the old version handled after the apply is a fallback);
 *   (c) the apply timeout: heartbeats racing each other on timed-out
 *       deliveries, the three instances' sweepers racing each other, and
 *       heartbeats racing the sweepers around their first tick: every
 *       assignment ends failed with exactly one ->failed event (timeout);
 *   (d) cancels racing the device's heartbeats: no request fails.
 *
 * The requests of a burst go out together on one curl multi handle, each on
 * its own connection, round-robin over the instances.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "checks.h"
#include "ota/manifest.h"

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define INSTANCES 3

/* The three instances: h_g_srv and two more, all on h_g_pg. */
static h_server_t g_extra[INSTANCES - 1];
static h_server_t *g_srv[INSTANCES];
static long g_healthy_ms[INSTANCES]; /* when each first answered /healthz (CLOCK_MONOTONIC): it sweeps 30 s later */

/* Fails the test, showing every instance's log (CHECK shows h_g_srv's). */
#define CHECK_ALL(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            for (int i_ = 1; i_ < INSTANCES; i_++)                                                                     \
                h_server_dump_log(g_srv[i_]);                                                                          \
            CHECK(cond, __VA_ARGS__);                                                                                  \
        }                                                                                                              \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
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

/* ---- a burst of concurrent requests ------------------------------------------------------------ */

typedef struct job {
    /* in */
    h_server_t *srv;
    const char *method;
    char path[192];
    const char *token;
    char body[512]; /* "" : none */
    /* out */
    long status;
    char *resp;
    size_t len, cap;
    json_t *json;
    /* curl's */
    CURL *easy;
    struct curl_slist *headers;
    char url[256];
} job_t;

static size_t job_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    job_t *j = arg;
    size_t n = size * nmemb;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1024;
        while (cap < j->len + n + 1)
            cap *= 2;
        if (cap > (size_t)1 << 24)
            return 0;
        char *p = realloc(j->resp, cap);
        if (p == NULL)
            return 0;
        j->resp = p;
        j->cap = cap;
    }
    memcpy(j->resp + j->len, data, n);
    j->len += n;
    j->resp[j->len] = '\0';
    return n;
}

/* Sends every job at once (one connection each) and waits for all answers. */
static void run_jobs(job_t *jobs, size_t n)
{
    CURLM *multi = curl_multi_init();
    CHECK(multi != NULL, "curl_multi_init failed");
    for (size_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        j->status = 0;
        j->len = 0;
        j->easy = curl_easy_init();
        CHECK(j->easy != NULL, "curl_easy_init failed");
        snprintf(j->url, sizeof j->url, "%s%s", j->srv->base_url, j->path);
        char auth[300];
        j->headers = curl_slist_append(NULL, "Expect:");
        if (j->token != NULL) {
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", j->token);
            j->headers = curl_slist_append(j->headers, auth);
        }
        if (j->body[0] != '\0')
            j->headers = curl_slist_append(j->headers, "Content-Type: application/json");
        curl_easy_setopt(j->easy, CURLOPT_URL, j->url);
        curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(j->easy, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, job_on_body);
        curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
        if (j->body[0] != '\0') {
            curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
            curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
        }
        if (strcmp(j->method, j->body[0] != '\0' ? "POST" : "GET") != 0)
            curl_easy_setopt(j->easy, CURLOPT_CUSTOMREQUEST, j->method);
        curl_multi_add_handle(multi, j->easy);
    }
    int running = 1;
    while (running > 0) {
        CURLMcode mc = curl_multi_perform(multi, &running);
        CHECK(mc == CURLM_OK, "curl_multi_perform: %s", curl_multi_strerror(mc));
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 200, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        job_t *j = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        if (msg->data.result == CURLE_OK)
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &j->status);
        else
            fprintf(stderr, "%s %s: %s\n", j->method, j->url, curl_easy_strerror(msg->data.result));
    }
    for (size_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        curl_multi_remove_handle(multi, j->easy);
        curl_easy_cleanup(j->easy);
        curl_slist_free_all(j->headers);
        j->easy = NULL;
        j->headers = NULL;
        json_decref(j->json);
        j->json = j->len > 0 ? json_loadb(j->resp, j->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    }
    curl_multi_cleanup(multi);
}

static void jobs_free(job_t *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].resp);
        json_decref(jobs[i].json);
    }
    free(jobs);
}

static job_t *jobs_new(size_t n)
{
    job_t *jobs = calloc(n, sizeof *jobs);
    CHECK(jobs != NULL, "out of memory");
    return jobs;
}

#define JOB_BODY(j) ((j)->resp != NULL ? (j)->resp : "(no body)")

/* ---- fixtures (made through h_g_srv) ---------------------------------------------------------- */

typedef struct device {
    char id[40];
    char token[200];
} device_t;

static void make_release(const char *model, const char *version, char id[40])
{
    static const unsigned char bin[] = "race firmware image\x01\x02\x03";
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, bin, (int)sizeof bin);
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, &r, "{s:s, s:s, s:{s:s}}", "version", version, "model",
           model, "bin", "blob", b64);
    EXPECT_STATUS(&r, 201);
    snprintf(id, 40, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

static void make_device(const char *model, device_t *out)
{
    char serial[40];
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s, s:s}", "serial", serial, "model", model,
           "firmware_version", "1.0.0");
    EXPECT_STATUS(&r, 201);
    snprintf(out->id, sizeof out->id, "%s", h_jstr(r.json, "id"));
    snprintf(out->token, sizeof out->token, "%s", h_jstr(r.json, "token"));
    h_resp_free(&r);
}

static void assign_ok(const device_t *d, const char *release_id, char aid[40])
{
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", d->id);
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, &r, "{s:s}", "release_id", release_id);
    EXPECT_STATUS(&r, 201);
    snprintf(aid, 40, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

/* One heartbeat reporting 1.0.0 that must deliver. */
static void deliver_ok(const device_t *d, const char *aid)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/heartbeat", d->id);
    h_resp_t r = {0};
    h_request(&h_g_srv, "POST", path, d->token, "{\"firmware_version\": \"1.0.0\"}", &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(json_object_get(r.json, "ota"), "assignment_id"), aid), "no delivery: %s", BODY(&r));
    h_resp_free(&r);
}

static json_t *get_assignment(const char *aid)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/assignments/%s", aid);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *a = json_incref(r.json);
    h_resp_free(&r);
    return a;
}

/* The assignment once its deliveries count is `want`, or as it is after H_DEFERRED_WRITE_WAIT_MS: the servers write
 * re-delivery counts every OTA_DEFERRED_WRITE_MS (server/heartbeat/deferred_writes.h). */
static json_t *get_assignment_counted(const char *aid, size_t want)
{
    json_t *a = get_assignment(aid);
    for (long waited = 0; json_integer_value(json_object_get(a, "deliveries")) != (json_int_t)want &&
                          waited < H_DEFERRED_WRITE_WAIT_MS;
         waited += 100) {
        json_decref(a);
        h_sleep_ms(100);
        a = get_assignment(aid);
    }
    return a;
}

/* How many events of `a` go from `from` (NULL: null) to `to`, with `reason` (NULL: any). */
static int count_events(json_t *a, const char *from, const char *to, const char *reason)
{
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a, "events"), i, e)
    {
        json_t *f = json_object_get(e, "from");
        bool from_ok = from == NULL ? json_is_null(f) : h_streq(json_string_value(f), from);
        if (from_ok && h_streq(h_jstr(e, "to"), to) && (reason == NULL || h_streq(h_jstr(e, "reason"), reason)))
            n++;
    }
    return n;
}

static int count_events_to(json_t *a, const char *to)
{
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a, "events"), i, e) n += h_streq(h_jstr(e, "to"), to);
    return n;
}

static void signing_key(unsigned char pub[OTA_ED25519_PUBLIC_LEN])
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/signing-key", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    const char *b64 = h_jstr(r.json, "public_key");
    unsigned char raw[48];
    CHECK(b64 != NULL && strlen(b64) == 44 && EVP_DecodeBlock(raw, (const unsigned char *)b64, 44) == 33,
          "public_key: %s", BODY(&r));
    memcpy(pub, raw, OTA_ED25519_PUBLIC_LEN);
    h_resp_free(&r);
}

/* Pushes the delivery of each of the `n` assignments `aids` back by two days, in one statement. */
static void push_back(char (*aids)[40], size_t n)
{
    size_t cap = 128 + n * 48;
    char *sql = malloc(cap);
    if (sql == NULL)
        abort();
    size_t used = (size_t)snprintf(sql, cap, "UPDATE assignments SET delivered_at = now() - interval '2 days' WHERE id IN (");
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(sql + used, cap - used, "%s'%s'", i ? ", " : "", aids[i]);
    snprintf(sql + used, cap - used, ")");
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
    free(sql);
}

/* ---- (a) concurrent creation ---------------------------------------------------------------------- */

static void create_race_round(int round, size_t n)
{
    char model[32], rel[2][40];
    h_make_model(model, sizeof model, "Race create");
    make_release(model, "2.0.0", rel[0]);
    make_release(model, "2.1.0", rel[1]);
    device_t d;
    make_device(model, &d);

    job_t *jobs = jobs_new(n);
    for (size_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        j->srv = g_srv[i % INSTANCES];
        j->method = "POST";
        snprintf(j->path, sizeof j->path, "/v1/devices/%s/assignments", d.id);
        j->token = j->srv->admin_key;
        /* Round 1 names two releases of the model: still only one may become active. */
        snprintf(j->body, sizeof j->body, "{\"release_id\": \"%s\"}", rel[round == 1 ? i % 2 : 0]);
    }
    run_jobs(jobs, n);

    size_t created = 0, winner = n;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].status == 201) {
            created++;
            winner = i;
        }
    }
    CHECK_ALL(created == 1, "round %d: %zu of %zu concurrent creates answered 201, want exactly 1", round, created, n);
    const char *aid = h_jstr(jobs[winner].json, "id");
    CHECK_ALL(is_uuid(aid) && h_streq(h_jstr(jobs[winner].json, "status"), "pending"), "round %d: the 201: %s", round,
              JOB_BODY(&jobs[winner]));
    for (size_t i = 0; i < n; i++) {
        if (i == winner)
            continue;
        job_t *j = &jobs[i];
        json_t *err = json_object_get(j->json, "error");
        json_t *details = json_object_get(err, "details");
        CHECK_ALL(j->status == 409 && h_streq(h_jstr(err, "code"), "active_assignment_exists") &&
                      h_streq(h_jstr(details, "assignment_id"), aid),
                  "round %d, request %zu (instance %zu): want 409 active_assignment_exists naming %s, got %ld: %.1000s",
                  round, i, i % INSTANCES, aid, j->status, JOB_BODY(j));
    }

    /* The database holds exactly that one, with one event. */
    char q[128];
    snprintf(q, sizeof q, "/v1/devices/%s/assignments", d.id);
    h_resp_t r = {0};
    h_http(g_srv[2], "GET", q, g_srv[2]->admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK_ALL(json_array_size(items) == 1 && h_streq(h_jstr(json_array_get(items, 0), "id"), aid),
              "round %d: the device's assignments: %.3000s", round, BODY(&r));
    h_resp_free(&r);
    json_t *a = get_assignment(aid);
    CHECK_ALL(json_array_size(json_object_get(a, "events")) == 1 && count_events(a, NULL, "pending", NULL) == 1,
              "round %d: events: %s", round, json_dumps(a, 0));
    json_decref(a);
    jobs_free(jobs, n);
}

static void test_concurrent_create(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++)
        create_race_round(round, 120);
}

/* ---- (b) concurrent heartbeats ---------------------------------------------------------------------- */

static void heartbeat_jobs(job_t *jobs, size_t n, const device_t *d, const char *(*firmware)(size_t))
{
    for (size_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        j->srv = g_srv[i % INSTANCES];
        j->method = "POST";
        snprintf(j->path, sizeof j->path, "/v1/devices/%s/heartbeat", d->id);
        j->token = d->token;
        snprintf(j->body, sizeof j->body, "{\"firmware_version\": \"%s\", \"connectivity\": \"wifi\"}", firmware(i));
    }
}

static const char *fw_old(size_t i)
{
    (void)i;
    return "1.0.0";
}

static const char *fw_half_new(size_t i)
{
    return i % 2 == 0 ? "2.0.0" : "1.0.0";
}

/* Every job answered 200 with a heartbeat body; returns how many carried a (valid, signed) manifest for `aid`. */
static size_t count_manifests(job_t *jobs, size_t n, const char *aid, const unsigned char *pub, const char *what)
{
    size_t manifests = 0;
    for (size_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        CHECK_ALL(j->status == 200, "%s, heartbeat %zu (instance %zu, %s): want 200, got %ld: %.1000s", what, i,
                  i % INSTANCES, j->body, j->status, JOB_BODY(j));
        json_t *ota = json_object_get(j->json, "ota");
        CHECK_ALL(ota != NULL && json_object_get(j->json, "deferred") != NULL, "%s, heartbeat %zu: %.1000s", what, i,
                  JOB_BODY(j));
        if (json_is_null(ota))
            continue;
        ota_manifest_t m;
        CHECK_ALL(ota_manifest_decode_json(ota, &m) == OTA_OK && h_streq(m.assignment_id, aid) &&
                      ota_manifest_verify(&m, pub) == OTA_OK,
                  "%s, heartbeat %zu: a bad manifest: %.1000s", what, i, JOB_BODY(j));
        CHECK_ALL(json_is_null(json_object_get(j->json, "deferred")), "%s: a manifest with deferred: %.1000s", what,
                  JOB_BODY(j));
        manifests++;
    }
    return manifests;
}

static void test_concurrent_heartbeats(void **state)
{
    (void)state;
    enum { N = 60 };
    char model[32], rel[40], aid[40];
    h_make_model(model, sizeof model, "Race heartbeat");
    make_release(model, "2.0.0", rel);
    device_t d;
    make_device(model, &d);
    assign_ok(&d, rel, aid);
    unsigned char pub[OTA_ED25519_PUBLIC_LEN];
    signing_key(pub);

    /* Burst 1: all report the old version; every one may deliver, exactly one moves pending -> delivered. */
    job_t *jobs = jobs_new(N);
    heartbeat_jobs(jobs, N, &d, fw_old);
    run_jobs(jobs, N);
    size_t manifests = count_manifests(jobs, N, aid, pub, "burst 1");
    jobs_free(jobs, N);
    json_t *a = get_assignment_counted(aid, manifests);
    char *text = json_dumps(a, JSON_COMPACT);
    CHECK_ALL(h_streq(h_jstr(a, "status"), "delivered"), "after burst 1: %s", text);
    CHECK_ALL(json_integer_value(json_object_get(a, "deliveries")) == (json_int_t)manifests,
              "after burst 1: %zu manifests went out, deliveries says otherwise: %s", manifests, text);
    CHECK_ALL(manifests == N, "burst 1: %zu of %d heartbeats carried a manifest (nothing deferred them): %s",
              manifests, N, text);
    CHECK_ALL(count_events(a, "pending", "delivered", NULL) == 1 && json_array_size(json_object_get(a, "events")) == 2,
              "after burst 1: want events pending, pending->delivered: %s", text);
    free(text);
    json_decref(a);

    /*
     * Burst 2: half report the new version: applied exactly once; the others may still be handed a manifest. An
     * old version reported after the apply, within the verify window, is a fallback: rolled back, once at most.
     */
    jobs = jobs_new(N);
    heartbeat_jobs(jobs, N, &d, fw_half_new);
    run_jobs(jobs, N);
    size_t more = count_manifests(jobs, N, aid, pub, "burst 2");
    for (size_t i = 0; i < N; i += 2)
        CHECK_ALL(json_is_null(json_object_get(jobs[i].json, "ota")), "a heartbeat reporting 2.0.0 got a manifest: %s",
                  JOB_BODY(&jobs[i]));
    jobs_free(jobs, N);
    a = get_assignment_counted(aid, manifests + more);
    text = json_dumps(a, JSON_COMPACT);
    bool rolled_back = h_streq(h_jstr(a, "status"), "rolled_back");
    CHECK_ALL(rolled_back || h_streq(h_jstr(a, "status"), "applied"), "after burst 2: %s", text);
    CHECK_ALL(json_integer_value(json_object_get(a, "deliveries")) == (json_int_t)(manifests + more),
              "after burst 2: %zu manifests went out in all, deliveries says otherwise: %s", manifests + more, text);
    CHECK_ALL(count_events(a, "delivered", "applied", NULL) == 1 && count_events_to(a, "applied") == 1 &&
                  count_events(a, "applied", "rolled_back", "reported 1.0.0") == (rolled_back ? 1 : 0) &&
                  json_array_size(json_object_get(a, "events")) == (rolled_back ? 4u : 3u),
              "after burst 2: want events pending, delivered, applied once each (and rolled_back once): %s", text);
    free(text);
    json_decref(a);

    /* The device shows it. */
    char q[128];
    snprintf(q, sizeof q, "/v1/devices/%s", d.id);
    h_resp_t r = {0};
    h_http(g_srv[1], "GET", q, g_srv[1]->admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK_ALL(h_streq(h_jstr(r.json, "ota_status"), rolled_back ? "rolled_back" : "applied") &&
                  json_is_null(json_object_get(r.json, "active_assignment")),
              "device: %s", BODY(&r));
    h_resp_free(&r);
}

/* ---- (c) the apply timeout, racing ------------------------------------------------------------------ */

/* A device of `model` with a delivered assignment of `rel`. */
typedef struct delivered {
    device_t dev;
    char aid[40];
} delivered_t;

static void make_delivered(const char *model, const char *rel, delivered_t *out)
{
    make_device(model, &out->dev);
    assign_ok(&out->dev, rel, out->aid);
    deliver_ok(&out->dev, out->aid);
}

/* Every heartbeat of the burst answered 200 without a manifest (there is nothing left to deliver). */
static void expect_quiet(job_t *jobs, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        CHECK_ALL(j->status == 200 && json_is_null(json_object_get(j->json, "ota")) &&
                      json_is_null(json_object_get(j->json, "deferred")),
                  "%s, heartbeat %zu to %s: want 200 with ota null, got %ld: %.1000s", what, i, j->srv->base_url,
                  j->status, JOB_BODY(j));
    }
}

/* `per_device` concurrent heartbeats of each of the `n` devices, spread over the instances. */
static job_t *timeout_burst(delivered_t *devs, size_t n, size_t per_device)
{
    job_t *jobs = jobs_new(n * per_device);
    for (size_t k = 0; k < n * per_device; k++) {
        job_t *j = &jobs[k];
        const device_t *d = &devs[k % n].dev;
        j->srv = g_srv[(k / n) % INSTANCES];
        j->method = "POST";
        snprintf(j->path, sizeof j->path, "/v1/devices/%s/heartbeat", d->id);
        j->token = d->token;
        snprintf(j->body, sizeof j->body, "{\"firmware_version\": \"1.0.0\"}");
    }
    run_jobs(jobs, n * per_device);
    return jobs;
}

/* The assignment is failed (reason timeout) with exactly one ->failed event, and that one says timeout. */
static void expect_timed_out(const char *aid, const char *what)
{
    json_t *a = get_assignment(aid);
    char *text = json_dumps(a, JSON_COMPACT);
    CHECK_ALL(h_streq(h_jstr(a, "status"), "failed") && h_streq(h_jstr(a, "reason"), "timeout"), "%s: %s", what,
              text);
    CHECK_ALL(count_events_to(a, "failed") == 1 && count_events(a, "delivered", "failed", "timeout") == 1 &&
                  json_array_size(json_object_get(a, "events")) == 3,
              "%s: want exactly one delivered->failed (timeout) event: %s", what, text);
    free(text);
    json_decref(a);
}

/* How many sweeps, over all instances' logs, failed something ("apply timeout: N delivered assignments failed"). */
static int count_sweeps(void)
{
    int n = 0;
    for (int i = 0; i < INSTANCES; i++) {
        FILE *f = fopen(g_srv[i]->log_path, "r");
        if (f == NULL)
            continue;
        char line[1024];
        while (fgets(line, sizeof line, f) != NULL)
            n += strstr(line, "delivered assignments failed") != NULL;
        fclose(f);
    }
    return n;
}

/* How many lines of PostgreSQL's log contain `what`. */
static int pg_log_count(const char *what)
{
    char path[320];
    snprintf(path, sizeof path, "%s/pg.log", h_g_pg.dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    char line[2048];
    while (fgets(line, sizeof line, f) != NULL)
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

static void test_timeout_races(void **state)
{
    (void)state;
    enum { HB = 8, SWEPT = 10, CHURN = 200, BATCH = 8 };
    char model[32], rel[40];
    h_make_model(model, sizeof model, "Race timeout");
    make_release(model, "2.0.0", rel);
    delivered_t hb[HB], swept[SWEPT], churn[CHURN];
    char aids[SWEPT + HB + BATCH][40];

    /* Left to the sweepers: pushed back now, never heartbeated. */
    for (size_t i = 0; i < SWEPT; i++) {
        make_delivered(model, rel, &swept[i]);
        snprintf(aids[i], sizeof aids[i], "%s", swept[i].aid);
    }
    push_back(aids, SWEPT);

    /* Heartbeats racing each other: 6 at once per device, two per instance. */
    for (size_t i = 0; i < HB; i++) {
        make_delivered(model, rel, &hb[i]);
        snprintf(aids[i], sizeof aids[i], "%s", hb[i].aid);
    }
    for (size_t i = 0; i < CHURN; i++)
        make_delivered(model, rel, &churn[i]);
    push_back(aids, HB);
    job_t *jobs = timeout_burst(hb, HB, 6);
    expect_quiet(jobs, HB * 6, "heartbeats racing on timed-out deliveries");
    jobs_free(jobs, HB * 6);
    for (size_t i = 0; i < HB; i++)
        expect_timed_out(hb[i].aid, "heartbeat race");

    /*
     * Heartbeats racing the sweepers: each instance sweeps OTA_SWEEP_SECONDS (30 s) after it started. Around
     * then, again and again, a batch of deliveries times out, stays so for a random moment (for a sweep to find
     * it), and then all their devices heartbeat at once on all instances.
     */
    long period = 30000, k = 1;
    while (g_healthy_ms[0] + k * period - 500 < now_ms()) /* a slow start: the next sweep then */
        k++;
    long begin = g_healthy_ms[0] + k * period - 500, end = g_healthy_ms[INSTANCES - 1] + k * period + 700;
    sleep_ms(begin - now_ms());
    size_t used = 0;
    unsigned seed = (unsigned)time(NULL);
    while (used + BATCH <= CHURN && now_ms() < end) {
        for (size_t i = 0; i < BATCH; i++)
            snprintf(aids[i], sizeof aids[i], "%s", churn[used + i].aid);
        push_back(aids, BATCH);
        sleep_ms(rand_r(&seed) % 40);
        jobs = timeout_burst(churn + used, BATCH, 3);
        expect_quiet(jobs, BATCH * 3, "heartbeats around the sweep");
        jobs_free(jobs, BATCH * 3);
        used += BATCH;
    }
    CHECK_ALL(used >= 5 * BATCH, "only %zu churn deliveries were used around the sweep", used);
    for (size_t i = 0; i < used; i++)
        expect_timed_out(churn[i].aid, "heartbeat vs sweep");

    /* The sweepers' own: all failed by the first sweeps, each exactly once. */
    long deadline = g_healthy_ms[INSTANCES - 1] + k * period + 10000;
    for (size_t i = 0; i < SWEPT; i++) {
        for (;;) {
            json_t *a = get_assignment(swept[i].aid);
            bool done = !h_streq(h_jstr(a, "status"), "delivered");
            json_decref(a);
            if (done || now_ms() > deadline)
                break;
            sleep_ms(250);
        }
        expect_timed_out(swept[i].aid, "left to the sweepers");
    }
    int sweeps = count_sweeps();
    CHECK_ALL(sweeps >= 1, "no instance logged a sweep, yet the quiet deliveries failed");
    fprintf(stderr, "note: %d sweep(s) failed deliveries; %zu deliveries timed out around the sweeps\n", sweeps, used);

    /* Nothing deadlocked on the way (a deadlock kills a heartbeat or a sweep). */
    int deadlocks = pg_log_count("deadlock detected");
    CHECK_ALL(deadlocks == 0, "PostgreSQL detected %d deadlock(s) (see %s/pg.log)", deadlocks, h_g_pg.dir);
}

/* ---- (d) cancel racing heartbeats -------------------------------------------------------------------- */

/*
 * An operator cancels while the device heartbeats: each of the devices' delivered assignments is canceled
 * while its device heartbeats (still on the old version) on every instance at the same moment. Every request
 * succeeds (200), and each assignment ends canceled, with exactly one ->canceled event.
 */
static void test_cancel_races_heartbeats(void **state)
{
    (void)state;
    enum { DEVICES = 50, HEARTBEATS = 3, ROUNDS = 5 };
    char model[32], rel[40];
    h_make_model(model, sizeof model, "Race cancel");
    make_release(model, "2.0.0", rel);
    for (int round = 0; round < ROUNDS; round++) {
        delivered_t devs[DEVICES];
        for (size_t i = 0; i < DEVICES; i++)
            make_delivered(model, rel, &devs[i]);
        size_t per = 1 + HEARTBEATS, n = DEVICES * per;
        job_t *jobs = jobs_new(n);
        for (size_t i = 0; i < DEVICES; i++) {
            for (size_t k = 0; k < per; k++) {
                job_t *j = &jobs[i * per + k];
                j->srv = g_srv[(i + k) % INSTANCES];
                j->method = "POST";
                if (k == 0) {
                    snprintf(j->path, sizeof j->path, "/v1/assignments/%s/cancel", devs[i].aid);
                    j->token = j->srv->admin_key;
                } else {
                    snprintf(j->path, sizeof j->path, "/v1/devices/%s/heartbeat", devs[i].dev.id);
                    j->token = devs[i].dev.token;
                    snprintf(j->body, sizeof j->body, "{\"firmware_version\": \"1.0.0\"}");
                }
            }
        }
        run_jobs(jobs, n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].status != 200) {
                if (bad++ < 5)
                    fprintf(stderr, "round %d: POST %s on %s: %ld %.500s\n", round, jobs[i].path,
                            jobs[i].srv->base_url, jobs[i].status, JOB_BODY(&jobs[i]));
            }
        }
        jobs_free(jobs, n);
        CHECK_ALL(bad == 0, "round %d: %zu of %zu concurrent cancels and heartbeats did not answer 200", round, bad, n);
        for (size_t i = 0; i < DEVICES; i++) {
            json_t *a = get_assignment(devs[i].aid);
            char *text = json_dumps(a, JSON_COMPACT);
            CHECK_ALL(h_streq(h_jstr(a, "status"), "canceled") && count_events_to(a, "canceled") == 1 &&
                          json_array_size(json_object_get(a, "events")) == 3,
                      "round %d: want canceled with one ->canceled event: %s", round, text);
            free(text);
            json_decref(a);
        }
    }
    int deadlocks = pg_log_count("deadlock detected");
    CHECK_ALL(deadlocks == 0, "PostgreSQL detected %d deadlock(s) (see %s/pg.log)", deadlocks, h_g_pg.dir);
}

/* ---- the program ---------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    h_pg_start(&h_g_pg);
    g_srv[0] = &h_g_srv;
    for (int i = 1; i < INSTANCES; i++)
        g_srv[i] = &g_extra[i - 1];
    /* The instances start together (as after a deploy), so their sweepers tick together. */
    for (int i = 0; i < INSTANCES; i++) {
        h_server_start(g_srv[i], &h_g_pg, NULL);
        g_healthy_ms[i] = now_ms();
    }
    for (int i = 0; i < INSTANCES; i++)
        if (!h_wait_ready(g_srv[i]))
            return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = INSTANCES - 1; i >= 0; i--)
        h_server_stop(g_srv[i]);
    h_pg_destroy(&h_g_pg);
    return 0;
}

int main(void)
{
    /* The tests drive devices far harder than the 10 requests in 10 s a device may send (one device heartbeats from
       many threads at once, to race its own transitions); it_rate_limit tests the limit itself. */
    h_server_env_all = "OTA_DEVICE_RATE_LIMIT=1000000";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_create),
        cmocka_unit_test(test_concurrent_heartbeats),
        cmocka_unit_test(test_timeout_races),
        cmocka_unit_test(test_cancel_races_heartbeats),
    };
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
