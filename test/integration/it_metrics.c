/*
 * Integration: GET /metrics in Prometheus text format, counting what the
 * real server answered (by route and status), with latency histograms and
 * the fleet's assignments from the database.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "checks.h"
#include "harness.h"

static char *scrape(void)
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    CHECK(r.status == 200, "GET /metrics: %ld %s", r.status, BODY(&r));
    CHECK(strncmp(r.content_type, "text/plain", 10) == 0, "content type %s", r.content_type);
    char *text = strdup(r.body);
    h_resp_free(&r);
    return text;
}

static void get(const char *path, const char *token, long want)
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, token, NULL, 0, NULL, &r);
    CHECK(r.status == want, "GET %s: %ld, want %ld", path, r.status, want);
    h_resp_free(&r);
}

static void test_requests_counted_by_route_and_status(void **state)
{
    (void)state;
    const char *ok = "ota_http_requests_total{route=\"healthz\",status=\"200\"}";
    const char *unmatched = "ota_http_requests_total{route=\"unmatched\",status=\"404\"}";
    const char *unauthorized = "ota_http_requests_total{route=\"models.list\",status=\"401\"}";
    char *before = scrape();
    long long ok0 = h_metric_sample(before, ok), unmatched0 = h_metric_sample(before, unmatched),
              unauth0 = h_metric_sample(before, unauthorized);
    free(before);

    for (int i = 0; i < 5; i++)
        get("/healthz", NULL, 200);
    for (int i = 0; i < 3; i++)
        get("/no/such/route", NULL, 404);
    get("/v1/models", NULL, 401);
    get("/v1/models", h_g_srv.admin_key, 200);

    char *after = scrape();
    CHECK(h_metric_sample(after, ok) == (ok0 < 0 ? 0 : ok0) + 5, "healthz 200: %lld then %lld", ok0,
          h_metric_sample(after, ok));
    CHECK(h_metric_sample(after, unmatched) == (unmatched0 < 0 ? 0 : unmatched0) + 3, "unmatched 404: %lld then %lld",
          unmatched0, h_metric_sample(after, unmatched));
    CHECK(h_metric_sample(after, unauthorized) == (unauth0 < 0 ? 0 : unauth0) + 1, "models.list 401: %lld then %lld",
          unauth0, h_metric_sample(after, unauthorized));
    /* The histogram's +Inf bucket equals its count, and the count covers every healthz answer. */
    long long inf = h_metric_sample(after, "ota_http_request_duration_seconds_bucket{route=\"healthz\",le=\"+Inf\"}");
    long long count = h_metric_sample(after, "ota_http_request_duration_seconds_count{route=\"healthz\"}");
    CHECK(inf == count && count >= 5, "+Inf %lld, count %lld", inf, count);
    free(after);
}

static void test_database_and_fleet_series(void **state)
{
    (void)state;
    char *text = scrape();
    CHECK(strstr(text, "ota_db_up{thread=\"") != NULL, "no ota_db_up in:\n%s", text);
    CHECK(strstr(text, "# TYPE ota_assignments gauge") != NULL, "no ota_assignments in:\n%s", text);
    CHECK(strstr(text, "# TYPE ota_heartbeats_total counter") != NULL, "no heartbeats in:\n%s", text);
    CHECK(strstr(text, "# TYPE ota_http_request_duration_seconds histogram") != NULL, "no histogram in:\n%s", text);
    free(text);
}

/* Keeps the X-Request-Id response header. */
static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    char *out = arg;
    size_t len = size * n;
    if (len > 14 && strncasecmp(line, "x-request-id:", 13) == 0) {
        const char *v = line + 13;
        while (*v == ' ')
            v++;
        size_t vlen = (size_t)(line + len - v);
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
            vlen--;
        snprintf(out, 64, "%.*s", (int)vlen, v);
    }
    return len;
}

/* GET /healthz with an optional X-Request-Id; the answer's X-Request-Id goes to `got` (64 bytes). */
static void request_id_of(const char *sent, char *got)
{
    char url[128], header[128];
    struct curl_slist *headers = NULL;
    got[0] = '\0';
    snprintf(url, sizeof url, "%s/healthz", h_g_srv.base_url);
    if (sent != NULL) {
        snprintf(header, sizeof header, "X-Request-Id: %s", sent);
        headers = curl_slist_append(headers, header);
    }
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, got);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fwrite);
    FILE *sink = fopen("/dev/null", "w");
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    CHECK(curl_easy_perform(curl) == CURLE_OK, "GET /healthz failed");
    fclose(sink);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static void test_request_ids(void **state)
{
    (void)state;
    char a[64], b[64];
    request_id_of(NULL, a);
    request_id_of(NULL, b);
    CHECK(a[0] != '\0' && b[0] != '\0' && strcmp(a, b) != 0, "made ids: '%s' and '%s'", a, b);
    request_id_of("lb-7f3a.42", a);
    CHECK(strcmp(a, "lb-7f3a.42") == 0, "a proxy's id is kept: got '%s'", a);
    request_id_of("bad id with spaces", a);
    CHECK(a[0] != '\0' && strcmp(a, "bad id with spaces") != 0, "an unsafe id is replaced: got '%s'", a);
}

/* A re-delivery is kept in memory (ota_deferred_rows_pending) and then written (ota_deferred_rows_written_total). */
static void test_deferred_rows(void **state)
{
    (void)state;
    char model[32], aid[40];
    h_device_t dev;
    h_release_t rel;
    h_make_model(model, sizeof model, "metrics");
    h_make_device(model, "1.0.0", &dev);
    h_make_release(model, "1.1.0", 100, &rel);
    h_assign_ok(&dev, &rel, aid);
    char *text = scrape();
    long long written = h_metric_sample(text, "ota_deferred_rows_written_total");
    CHECK(written >= 0 && h_metric_sample(text, "ota_deferred_rows_pending") >= 0 &&
              h_metric_sample(text, "ota_deferred_rows_dropped_total") == 0,
          "no deferred-row series in:\n%s", text);
    free(text);
    for (int i = 0; i < 2; i++) { /* the first delivery, then a re-delivery: deferred */
        h_resp_t r = {0};
        h_heartbeat_ok(&h_g_srv, &dev, "{\"firmware_version\": \"1.0.0\"}", &r);
        h_resp_free(&r);
    }
    bool done = false;
    for (long waited = 0; !done && waited < H_DEFERRED_WRITE_WAIT_MS; waited += 100) {
        h_sleep_ms(100);
        text = scrape();
        done = h_metric_sample(text, "ota_deferred_rows_written_total") > written &&
               h_metric_sample(text, "ota_deferred_rows_pending") == 0;
        free(text);
    }
    CHECK(done, "the re-delivery was not written, or rows stayed pending");
    h_release_free(&rel);
}

/* ---- the fleet counts do not hold up heartbeats ------------------------------------------------- */

/* Holds assignment_events locked until a row named `name` is in metrics_test_signal (at most 20 s). */
static void *hold_events_lock(void *name)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "BEGIN; LOCK TABLE assignment_events IN ACCESS EXCLUSIVE MODE; "
             "DO $$ BEGIN FOR i IN 1..1000 LOOP "
             "EXIT WHEN EXISTS (SELECT FROM metrics_test_signal WHERE name = '%s'); PERFORM pg_sleep(0.02); "
             "END LOOP; END $$; COMMIT;",
             (const char *)name);
    h_pg_sql(&h_g_pg, sql);
    return NULL;
}

typedef struct bg_scrape {
    h_server_t *srv;
    h_resp_t resp;
    atomic_int done;
} bg_scrape_t;

static void *scrape_in_background(void *arg)
{
    bg_scrape_t *bg = arg;
    h_http(bg->srv, "GET", "/metrics", NULL, NULL, 0, NULL, &bg->resp);
    atomic_store(&bg->done, 1);
    return NULL;
}

/*
 * The counts scan whole tables: a scrape must not stall the heartbeats that
 * the same server thread has pipelined on its database connection. A server
 * with one thread; the scrape's query is made to wait on a lock, and
 * heartbeats must be answered while it waits.
 */
static void test_scrape_does_not_hold_up_heartbeats(void **state)
{
    (void)state;
    static const char *const one_thread[] = {"OTA_THREADS=1", NULL};
    char model[32], name[40];
    h_device_t dev;
    h_make_model(model, sizeof model, "scrape");
    h_make_device(model, "1.0.0", &dev);
    h_unique(name, sizeof name, "scrape-");
    CHECK(h_pg_sql(&h_g_pg, "CREATE TABLE IF NOT EXISTS metrics_test_signal (name text)") == 0, "signal table");
    h_server_t srv;
    h_server_start(&srv, &h_g_pg, one_thread);

    pthread_t holder, scraper;
    bg_scrape_t bg = {.srv = &srv};
    atomic_init(&bg.done, 0);
    pthread_create(&holder, NULL, hold_events_lock, name);
    /* The lock is taken before the scrape starts; then the scrape's query (nothing else here locks) waits. */
    CHECK(h_sql_eventually("EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = "
                           "'assignment_events' AND l.mode = 'AccessExclusiveLock' AND l.granted)"),
          "the lock on assignment_events was never taken");
    pthread_create(&scraper, NULL, scrape_in_background, &bg);
    bool waiting = h_sql_eventually("EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                    "pid <> pg_backend_pid())");

    long statuses[3] = {0};
    for (int i = 0; waiting && i < 3; i++) {
        h_resp_t r = {0};
        h_heartbeat_on(&srv, dev.id, dev.token, "{\"firmware_version\": \"1.0.0\"}", &r);
        statuses[i] = r.status;
        h_resp_free(&r);
    }
    int scrape_done_early = atomic_load(&bg.done);
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT INTO metrics_test_signal VALUES ('%s')", name);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "signal");
    pthread_join(holder, NULL);
    pthread_join(scraper, NULL);

    CHECK(waiting, "the scrape's query never waited for the lock");
    CHECK(statuses[0] == 200 && statuses[1] == 200 && statuses[2] == 200 && !scrape_done_early,
          "heartbeats while the scrape waited: %ld %ld %ld (scrape answered: %s)", statuses[0], statuses[1],
          statuses[2], scrape_done_early ? "yes" : "no");
    CHECK(bg.resp.status == 200 && strstr(bg.resp.body, "ota_assignments{status=") != NULL,
          "the scrape after the lock: %ld %s", bg.resp.status, BODY(&bg.resp));
    h_resp_free(&bg.resp);
    h_server_stop(&srv);
}

/* ---- the fleet-wide counts: at most one query per 10 s per instance --------------------------------- */

/* Scans of assignment_events so far (sequential and index), as PostgreSQL's statistics count them. */
#define EVENT_SCANS                                                                                                    \
    "(SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'assignment_events')"

/*
 * Keeps the scans so far under `name`, once PostgreSQL's statistics show more than under `after` (NULL: now). A
 * session reports its statistics when it ends (while it lives, only every 10 s), so the server is stopped first.
 */
static void mark_scans(const char *name, const char *after)
{
    char sql[512];
    if (after != NULL) {
        snprintf(sql, sizeof sql, EVENT_SCANS " > (SELECT n FROM metrics_scan_marks WHERE name = '%s')", after);
        CHECK(h_sql_eventually(sql), "the statistics never showed a scan of assignment_events after mark %s", after);
    }
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS metrics_scan_marks (name text PRIMARY KEY, n bigint); "
             "INSERT INTO metrics_scan_marks SELECT '%s', " EVENT_SCANS
             " ON CONFLICT (name) DO UPDATE SET n = excluded.n",
             name);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "marking the scans");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A scraper in a loop must not keep database backends scanning. Measured by PostgreSQL itself: the scans of
 * assignment_events (pg_stat_user_tables) that one scrape of a fresh server makes are one count; twenty scrapes of
 * another fresh server within 10 s, eight of them at once while its first count runs, make no more than that.
 */
static void test_counts_made_once_per_10s(void **state)
{
    (void)state;
    static const char *const two_threads[] = {"OTA_THREADS=2", NULL};
    enum { AT_ONCE = 8, IN_TURN = 12 };
    h_server_t one, many;

    /* One count, on a server whose first scrape it is. */
    mark_scans("before_one", NULL);
    h_server_start(&one, &h_g_pg, two_threads);
    h_resp_t r = {0};
    h_http(&one, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    CHECK(r.status == 200 && strstr(r.body, "ota_assignments{status=") != NULL, "GET /metrics: %ld", r.status);
    h_resp_free(&r);
    h_server_stop(&one); /* its sessions end, and so report their statistics at once */
    mark_scans("after_one", "before_one");

    h_server_start(&many, &h_g_pg, two_threads);
    double start = now_s();
    pthread_t threads[AT_ONCE];
    bg_scrape_t bg[AT_ONCE];
    for (int i = 0; i < AT_ONCE; i++) {
        bg[i] = (bg_scrape_t){.srv = &many};
        atomic_init(&bg[i].done, 0);
        pthread_create(&threads[i], NULL, scrape_in_background, &bg[i]);
    }
    for (int i = 0; i < AT_ONCE; i++) {
        pthread_join(threads[i], NULL);
        CHECK(bg[i].resp.status == 200 && strstr(bg[i].resp.body, "ota_assignments{status=") != NULL,
              "scrape %d at once: %ld %s", i, bg[i].resp.status, BODY(&bg[i].resp));
        h_resp_free(&bg[i].resp);
    }
    for (int i = 0; i < IN_TURN; i++) {
        h_http(&many, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
        CHECK(r.status == 200 && strstr(r.body, "ota_assignments{status=") != NULL, "scrape %d in turn: %ld", i,
              r.status);
        h_resp_free(&r);
    }
    int windows = 1 + (int)((now_s() - start) / 10.0); /* a very slow run may span two 10 s windows */
    h_server_stop(&many);
    mark_scans("after_many", "after_one");
    h_sleep_ms(1000); /* every session of the server has reported by now, not just the first */
    mark_scans("after_many", NULL);

    char expr[512];
    snprintf(expr, sizeof expr,
             "(SELECT a.n - b.n FROM metrics_scan_marks a, metrics_scan_marks b WHERE a.name = 'after_many' AND "
             "b.name = 'after_one') <= %d * (SELECT a.n - b.n FROM metrics_scan_marks a, metrics_scan_marks b "
             "WHERE a.name = 'after_one' AND b.name = 'before_one')",
             windows);
    CHECK(h_sql_holds(expr), "%d scrapes scanned assignment_events more often than %d count(s) do", AT_ONCE + IN_TURN,
          windows);
}

/* With OTA_METRICS_TOKEN set, /metrics needs exactly that bearer token. */
static void test_metrics_token(void **state)
{
    (void)state;
    static const char *const with_token[] = {"OTA_METRICS_TOKEN=metrics-token-for-the-test", NULL};
    h_server_t srv;
    h_server_start(&srv, &h_g_pg, with_token);
    const char *refused[] = {NULL, "metrics-token-for-the-tesT", "metrics-token-for-the-test-", "metrics-token",
                             srv.admin_key};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        h_resp_t r = {0};
        h_http(&srv, "GET", "/metrics", refused[i], NULL, 0, NULL, &r);
        EXPECT_ERROR(&r, 401, "unauthorized");
        h_resp_free(&r);
    }
    h_resp_t r = {0};
    h_http(&srv, "GET", "/metrics", "metrics-token-for-the-test", NULL, 0, NULL, &r);
    CHECK(r.status == 200 && strstr(r.body, "ota_http_requests_total{route=\"metrics\",status=\"401\"} 5") != NULL,
          "GET /metrics with the token: %ld %s", r.status, BODY(&r));
    h_resp_free(&r);
    h_server_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_counted_by_route_and_status),
        cmocka_unit_test(test_database_and_fleet_series),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_deferred_rows),
        cmocka_unit_test(test_scrape_does_not_hold_up_heartbeats),
        cmocka_unit_test(test_counts_made_once_per_10s),
        cmocka_unit_test(test_metrics_token),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
