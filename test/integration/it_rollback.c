/*
 * Integration: rollback detection (migrations/functions/ota_rollback_check.sql), against the real ota-server on a
 * throwaway PostgreSQL cluster.
 *
 * An applied assignment whose device reports, within OTA_VERIFY_WINDOW seconds of being applied, firmware other
 * than the applied version becomes rolled_back with reason "reported <version>": the device's bootloader fell back
 * to the old slot, or someone flashed it. Only the device's newest assignment is looked at; after the window an
 * applied assignment is final. rolled_back itself is final, and the API shows it like every other status: the
 * assignment and its events, the device's ota_status, the status filters, /v1/events and /metrics.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "checks.h"
#include "ota/semver.h"

/* A device on 1.0.0 with a release 1.1.0 of its model, and the assignment of that release. */
typedef struct scene {
    char model[32];
    h_device_t dev;
    h_release_t rel;
    char aid[40];
} scene_t;

static const h_event_t APPLIED[] = {
    {NULL, "pending", NULL}, {"pending", "delivered", NULL}, {"delivered", "applied", NULL}};

/* A heartbeat on `srv` reporting only `firmware`, answered 200. */
static void beat_on(h_server_t *srv, const h_device_t *d, const char *firmware)
{
    char body[256];
    h_resp_t r = {0};
    snprintf(body, sizeof body, "{\"firmware_version\": \"%s\"}", firmware);
    h_heartbeat_ok(srv, d, body, &r);
    h_resp_free(&r);
}

static void beat(const h_device_t *d, const char *firmware)
{
    beat_on(&h_g_srv, d, firmware);
}

/* The scene on `srv`, its assignment applied: one heartbeat delivers the manifest, the next reports 1.1.0. */
static void scene_applied_on(h_server_t *srv, scene_t *s, const char *label)
{
    h_make_model(s->model, sizeof s->model, label);
    h_make_device(s->model, "1.0.0", &s->dev);
    h_make_release(s->model, "1.1.0", 500, &s->rel);
    h_assign_ok(&s->dev, &s->rel, s->aid);
    beat_on(srv, &s->dev, "1.0.0");
    beat_on(srv, &s->dev, "1.1.0");
    json_t *a = h_expect_assignment(s->aid, "applied", 1, NULL);
    h_expect_events(a, APPLIED, 3);
    json_decref(a);
}

static void scene_applied(scene_t *s, const char *label)
{
    scene_applied_on(&h_g_srv, s, label);
}

/* The assignment is rolled_back with `reason`, after the events of its application. */
static void expect_rolled_back(const char *aid, const char *reason)
{
    const h_event_t want[] = {{NULL, "pending", NULL},
                              {"pending", "delivered", NULL},
                              {"delivered", "applied", NULL},
                              {"applied", "rolled_back", reason}};
    json_t *a = h_expect_assignment(aid, "rolled_back", 1, reason);
    h_expect_events(a, want, 4);
    json_decref(a);
}

static void expect_applied(const char *aid)
{
    json_t *a = h_expect_assignment(aid, "applied", 1, NULL);
    h_expect_events(a, APPLIED, 3);
    json_decref(a);
}

/* GET `path` as the admin: 200 with a page whose items' ids are exactly `id` (NULL: none). */
static void expect_page_of(const char *path, const char *id)
{
    h_resp_t r = {0};
    h_request(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items) && json_array_size(items) == (id != NULL ? 1u : 0u) &&
              (id == NULL || h_streq(h_jstr(json_array_get(items, 0), "id"), id)),
          "GET %s: want %s: %s", path, id != NULL ? id : "no item", BODY(&r));
    h_resp_free(&r);
}

/* Moves the assignment's finished_at `ago` (an SQL interval) into the past, as if it was applied then. */
static void backdate(const char *aid, const char *ago)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE assignments SET finished_at = now() - interval '%s' WHERE id = '%s'", ago, aid);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
}

/*
 * Whether the database refuses to move assignment `aid` to `to` as an illegal transition (the transition trigger);
 * a move it allows is undone and answers false.
 */
static bool transition_refused(const char *aid, const char *to)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN UPDATE assignments SET status = '%s', finished_at = now() WHERE id = '%s'; "
             "RAISE EXCEPTION 'allowed'; EXCEPTION WHEN OTHERS THEN "
             "IF SQLERRM NOT LIKE 'illegal assignment transition%%' THEN RAISE; END IF; END $$",
             to, aid);
    return h_pg_sql(&h_g_pg, sql) == 0;
}

/* ---- tests ----------------------------------------------------------------------------------------------- */

/* Applied 1.1.0, then the old 1.0.0 reported: rolled_back, with the event, the device's status and the filters. */
static void test_fallback_rolls_back(void **state)
{
    (void)state;
    char path[200];
    scene_t s;
    scene_applied(&s, "fallback");
    beat(&s.dev, "1.1.0"); /* the same version again changes nothing */
    expect_applied(s.aid);

    beat(&s.dev, "1.0.0");
    expect_rolled_back(s.aid, "reported 1.0.0");
    json_t *d = h_get_device(s.dev.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "rolled_back") && h_streq(h_jstr(d, "firmware_version"), "1.0.0") &&
              h_jnull(d, "active_assignment"),
          "device: %s", json_dumps(d, JSON_COMPACT));
    json_decref(d);

    snprintf(path, sizeof path, "/v1/assignments?status=rolled_back&release_id=%s", s.rel.id);
    expect_page_of(path, s.aid);
    snprintf(path, sizeof path, "/v1/assignments?status=applied&release_id=%s", s.rel.id);
    expect_page_of(path, NULL);
    snprintf(path, sizeof path, "/v1/devices?ota_status=rolled_back&model=%s", s.model);
    expect_page_of(path, s.dev.id);

    /* rolled_back is final: the version coming back, or any other, changes nothing. */
    beat(&s.dev, "1.1.0");
    beat(&s.dev, "1.0.1");
    expect_rolled_back(s.aid, "reported 1.0.0");
    h_release_free(&s.rel);
}

/* Any other version counts, not only the one before (someone flashed the device), and the reason names it. */
static void test_other_firmware_rolls_back(void **state)
{
    (void)state;
    char version[OTA_SEMVER_MAX + 1], reason[OTA_SEMVER_MAX + 16];
    scene_t s;
    scene_applied(&s, "flashed");
    /* The longest version a heartbeat takes: the reason is "reported " and all of it. */
    snprintf(version, sizeof version, "2.0.0+%0*d", OTA_SEMVER_MAX - 6, 7);
    snprintf(reason, sizeof reason, "reported %s", version);
    beat(&s.dev, version);
    expect_rolled_back(s.aid, reason);
    h_release_free(&s.rel);
}

/* The window counts from when the assignment was applied: 3600 s by default. */
static void test_default_window(void **state)
{
    (void)state;
    scene_t inside, outside;
    scene_applied(&inside, "window-in");
    backdate(inside.aid, "3590 seconds");
    beat(&inside.dev, "1.0.0");
    expect_rolled_back(inside.aid, "reported 1.0.0");

    scene_applied(&outside, "window-out");
    backdate(outside.aid, "3610 seconds");
    beat(&outside.dev, "1.0.0");
    expect_applied(outside.aid);
    json_t *d = h_get_device(outside.dev.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "applied") && h_streq(h_jstr(d, "firmware_version"), "1.0.0"), "device: %s",
          json_dumps(d, JSON_COMPACT));
    json_decref(d);
    h_release_free(&inside.rel);
    h_release_free(&outside.rel);
}

/* OTA_VERIFY_WINDOW=2: three seconds after being applied, the old version reported changes nothing. */
static void test_configured_window(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_VERIFY_WINDOW=2", NULL};
    h_server_t srv;
    scene_t s;
    h_server_start(&srv, &h_g_pg, extra);
    CHECK(h_wait_ready(&srv), "the second server did not become ready");
    scene_applied_on(&srv, &s, "short-window");
    h_sleep_ms(3000);
    beat_on(&srv, &s.dev, "1.0.0");
    expect_applied(s.aid);
    h_server_stop(&srv);
    h_release_free(&s.rel);
}

/* An applied assignment that a later one superseded is never rolled back, whatever became of the later one. */
static void test_superseded_not_rolled_back(void **state)
{
    (void)state;
    char later[40];
    h_release_t v12;
    scene_t s;
    scene_applied(&s, "superseded");
    h_make_release(s.model, "1.2.0", 500, &v12);
    h_assign_ok(&s.dev, &v12, later);

    /* The later one is pending (this heartbeat delivers it): the device reporting 1.0.0 leaves the first alone. */
    beat(&s.dev, "1.0.0");
    expect_applied(s.aid);
    json_decref(h_expect_assignment(later, "delivered", 1, NULL));

    /* Canceled, it is still the newest. */
    h_resp_t r = {0};
    char path[120];
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", later);
    h_request(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    beat(&s.dev, "1.0.1");
    expect_applied(s.aid);
    json_decref(h_expect_assignment(later, "canceled", 1, "canceled"));
    h_release_free(&v12);
    h_release_free(&s.rel);
}

/* The phone app relays the device's report of its old version: detected as from the device itself. */
static void test_relay_detects(void **state)
{
    (void)state;
    char path[128];
    h_resp_t r = {0};
    scene_t s;
    scene_applied(&s, "relayed");
    snprintf(path, sizeof path, "/v1/devices/%s/relay", s.dev.id);
    h_request(&h_g_srv, "POST", path, s.dev.token, "{\"firmware_version\": \"1.0.0\"}", &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_jnull(r.json, "pending_assignment") && h_jnull(r.json, "ota"), "relay: %s", BODY(&r));
    h_resp_free(&r);
    expect_rolled_back(s.aid, "reported 1.0.0");
    h_release_free(&s.rel);
}

/* rolled_back is final, only applied may become rolled_back, and applied may become nothing else. */
static void test_transitions(void **state)
{
    (void)state;
    static const char *const ALL[] = {"pending", "delivered", "applied", "failed", "canceled", "rolled_back"};
    char path[120], pending[40], delivered[40];
    h_resp_t r = {0};
    h_device_t d2, d3;
    scene_t s;
    scene_applied(&s, "transitions");

    for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++)
        if (strcmp(ALL[i], "applied") != 0 && strcmp(ALL[i], "rolled_back") != 0)
            CHECK(transition_refused(s.aid, ALL[i]), "applied -> %s was allowed", ALL[i]);
    beat(&s.dev, "1.0.0");
    expect_rolled_back(s.aid, "reported 1.0.0");
    for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++)
        if (strcmp(ALL[i], "rolled_back") != 0)
            CHECK(transition_refused(s.aid, ALL[i]), "rolled_back -> %s was allowed", ALL[i]);

    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", s.aid);
    h_request(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 409, "invalid_transition");
    CHECK(h_streq(h_jstr(json_object_get(json_object_get(r.json, "error"), "details"), "status"), "rolled_back"),
          "cancel: %s", BODY(&r));
    h_resp_free(&r);
    expect_rolled_back(s.aid, "reported 1.0.0");

    /* Neither an active assignment nor a failed one can be rolled back. */
    h_make_device(s.model, "1.0.0", &d2);
    h_assign_ok(&d2, &s.rel, pending);
    CHECK(transition_refused(pending, "rolled_back"), "pending -> rolled_back was allowed");
    h_make_device(s.model, "1.0.0", &d3);
    h_assign_ok(&d3, &s.rel, delivered);
    beat(&d3, "1.0.0");
    CHECK(transition_refused(delivered, "rolled_back"), "delivered -> rolled_back was allowed");
    h_release_free(&s.rel);
}

typedef struct sink {
    char *data;
    size_t len;
} sink_t;

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    sink_t *s = arg;
    char *bigger = realloc(s->data, s->len + size * n + 1);
    if (bigger == NULL)
        return 0;
    memcpy(bigger + s->len, data, size * n);
    s->len += size * n;
    bigger[s->len] = '\0';
    s->data = bigger;
    return size * n;
}

/* /v1/events carries the rollback like any transition: read from the start for a moment (Last-Event-ID: 0). */
static void test_event_stream(void **state)
{
    (void)state;
    char url[128], auth[200], want[300];
    sink_t got = {0};
    scene_t s;
    scene_applied(&s, "stream");
    beat(&s.dev, "1.0.0");

    snprintf(url, sizeof url, "%s/v1/events", h_g_srv.base_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", h_g_srv.admin_key);
    struct curl_slist *headers = curl_slist_append(curl_slist_append(NULL, auth), "Last-Event-ID: 0");
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1500L); /* a stream never ends by itself */
    curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);

    snprintf(want, sizeof want,
             "\"assignment_id\" : \"%s\", \"device_id\" : \"%s\", \"from\" : \"applied\", "
             "\"to\" : \"rolled_back\", \"reason\" : \"reported 1.0.0\"",
             s.aid, s.dev.id);
    CHECK(got.data != NULL && strstr(got.data, want) != NULL, "no %s in the stream:\n%s", want,
          got.data != NULL ? got.data : "(nothing)");
    free(got.data);
    h_release_free(&s.rel);
}

/* /metrics: every status has its gauge and its transition counter, rolled_back included and counted. */
static void test_metrics(void **state)
{
    (void)state;
    static const char *const ALL[] = {"pending", "delivered", "applied", "failed", "canceled", "rolled_back"};
    char series[96];
    h_resp_t r = {0};
    scene_t s;
    scene_applied(&s, "metrics");
    beat(&s.dev, "1.0.0");
    h_http(&h_g_srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
        snprintf(series, sizeof series, "ota_assignments{status=\"%s\"}", ALL[i]);
        CHECK(h_metric_sample(r.body, series) >= 0, "no %s in:\n%s", series, r.body);
        snprintf(series, sizeof series, "ota_assignment_transitions_total{to=\"%s\"}", ALL[i]);
        CHECK(h_metric_sample(r.body, series) >= 0, "no %s in:\n%s", series, r.body);
    }
    CHECK(h_metric_sample(r.body, "ota_assignments{status=\"rolled_back\"}") >= 1 &&
              h_metric_sample(r.body, "ota_assignment_transitions_total{to=\"rolled_back\"}") >= 1,
          "rolled_back not counted:\n%s", r.body);
    h_resp_free(&r);
    h_release_free(&s.rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_rolls_back),
        cmocka_unit_test(test_other_firmware_rolls_back),
        cmocka_unit_test(test_default_window),
        cmocka_unit_test(test_configured_window),
        cmocka_unit_test(test_superseded_not_rolled_back),
        cmocka_unit_test(test_relay_detects),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_event_stream),
        cmocka_unit_test(test_metrics),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
