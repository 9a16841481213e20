/*
 * Integration: a heartbeat that changes nothing writes nothing
 * (migrations/functions/ota_heartbeat.sql, ota_write_deferred.sql), against
 * the real ota-server on a throwaway PostgreSQL cluster.
 *
 * "Wrote" is observed in the database itself: a row's xmin (the transaction
 * that wrote its current version) changes with every UPDATE, even one that
 * sets the same values. Each test saves the xmin of the rows it watches into
 * a probe table before a heartbeat and compares after.
 *
 * What must be written at once: a first heartbeat, any changed reported
 * field, a relay, every assignment transition. What the server keeps in
 * memory and writes in bulk every OTA_DEFERRED_WRITE_MS (200 ms in these
 * tests, 5 s by default) and when it stops (server/heartbeat/deferred_writes.h):
 * presence once last_seen_at is older than OTA_PRESENCE_INTERVAL (default
 * 120 s; 0 = every heartbeat), and re-delivery counts (`deliveries`).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"

static const char PLAIN[] = "{\"firmware_version\": \"1.0.0\"}";

/* A model with one device on firmware 1.0.0, and a release 1.1.0 of it. */
typedef struct scene {
    char model[32];
    h_device_t dev;
    h_release_t rel;
} scene_t;

static void scene_make(scene_t *s)
{
    h_make_model(s->model, sizeof s->model, "presence");
    h_make_device(s->model, "1.0.0", &s->dev);
    h_make_release(s->model, "1.1.0", 500, &s->rel);
}

/* Saves the current xmin of the device row (and of its assignments) under the name `probe`. */
static void probe_save(const scene_t *s, const char *probe)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; DROP TABLE IF EXISTS %s; CREATE TABLE %s AS SELECT 'device' AS what, xmin::text AS x FROM devices "
             "WHERE id = '%s' UNION ALL SELECT id::text, xmin::text FROM assignments WHERE device_id = '%s'",
             probe, probe, s->dev.id, s->dev.id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
}

/* Whether the device row is the version saved under `probe`. */
static bool device_unwritten(const scene_t *s, const char *probe)
{
    char expr[512];
    snprintf(expr, sizeof expr,
             "(SELECT x FROM %s WHERE what = 'device') = (SELECT xmin::text FROM devices WHERE id = '%s')", probe,
             s->dev.id);
    return h_sql_holds(expr);
}

/* Whether the assignment `aid` is the version saved under `probe`. */
static bool assignment_unwritten(const char *aid, const char *probe)
{
    char expr[512];
    snprintf(expr, sizeof expr, "(SELECT x FROM %s WHERE what = '%s') = (SELECT xmin::text FROM assignments WHERE id = '%s')",
             probe, aid, aid);
    return h_sql_holds(expr);
}

/* Moves the device's last_seen_at `ago` (an SQL interval) into the past. */
static void push_back_presence(const scene_t *s, const char *ago)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE devices SET last_seen_at = now() - interval '%s' WHERE id = '%s'", ago,
             s->dev.id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
}

/* The SQL condition "the device's last_seen_at is within 5 seconds of now". */
static void seen_just_now_expr(const scene_t *s, char *expr, size_t cap)
{
    snprintf(expr, cap, "(SELECT last_seen_at > now() - interval '5 seconds' FROM devices WHERE id = '%s')", s->dev.id);
}

/* Whether the device's last_seen_at is within 5 seconds of now. */
static bool seen_just_now(const scene_t *s)
{
    char expr[256];
    seen_just_now_expr(s, expr, sizeof expr);
    return h_sql_holds(expr);
}

/* Whether the device's last_seen_at comes within 5 seconds of now before H_DEFERRED_WRITE_WAIT_MS has passed. */
static bool seen_just_now_soon(const scene_t *s)
{
    char expr[256];
    seen_just_now_expr(s, expr, sizeof expr);
    return h_sql_eventually(expr);
}

/* A second server whose deferred writes wait a minute: what it keeps stays in memory until it stops. */
static void start_holding_server(h_server_t *srv)
{
    static const char *const extra[] = {"OTA_DEFERRED_WRITE_MS=60000", NULL};
    h_server_start(srv, &h_g_pg, extra);
    CHECK(h_wait_ready(srv), "the second server did not become ready");
}

static void heartbeat(h_server_t *srv, const scene_t *s, const char *body)
{
    h_resp_t r = {0};
    h_heartbeat_ok(srv, &s->dev, body, &r);
    h_resp_free(&r);
}

/* A heartbeat that must carry the manifest of assignment `aid`. */
static void heartbeat_delivers(const scene_t *s, const char *aid)
{
    h_resp_t r = {0};
    h_heartbeat_ok(&h_g_srv, &s->dev, PLAIN, &r);
    json_t *ota = json_object_get(r.json, "ota");
    CHECK(json_is_object(ota) && h_streq(h_jstr(ota, "assignment_id"), aid), "expected the manifest of %s: %s",
          aid, BODY(&r));
    h_resp_free(&r);
}

/* ---- tests ----------------------------------------------------------------------------------------------- */

/* The first heartbeat writes; the same report again, moments later, writes nothing. */
static void test_unchanged_heartbeat_is_a_read(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s);
    heartbeat(&h_g_srv, &s, PLAIN);
    CHECK(seen_just_now(&s), "the first heartbeat did not record presence");
    probe_save(&s, "probe_unchanged");
    for (int i = 0; i < 3; i++)
        heartbeat(&h_g_srv, &s, PLAIN);
    CHECK(device_unwritten(&s, "probe_unchanged"), "an unchanged heartbeat wrote the device row");
    h_release_free(&s.rel);
}

/* Every reported field that changes is written by the heartbeat that reports it, presence with it. */
static void test_changes_are_written_at_once(void **state)
{
    (void)state;
    static const struct {
        const char *body, *holds;
    } steps[] = {
        {"{\"firmware_version\": \"1.0.0\", \"connectivity\": \"wifi\", \"recording\": false, "
         "\"battery\": {\"state\": \"normal\", \"percent\": 80}}",
         "connectivity = 'wifi' AND NOT recording AND battery_state = 'normal' AND battery_percent = 80"},
        {"{\"firmware_version\": \"1.0.0\", \"connectivity\": \"cellular\"}", "connectivity = 'cellular'"},
        {"{\"firmware_version\": \"1.0.0\", \"recording\": true}", "recording"},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 79}}", "battery_percent = 79"},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"state\": \"usb\"}}", "battery_state = 'usb'"},
        {"{\"firmware_version\": \"1.0.1\"}", "firmware_version = '1.0.1'"},
    };
    scene_t s;
    scene_make(&s);
    heartbeat(&h_g_srv, &s, PLAIN);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char expr[512];
        push_back_presence(&s, "30 seconds");
        probe_save(&s, "probe_changes");
        heartbeat(&h_g_srv, &s, steps[i].body);
        CHECK(!device_unwritten(&s, "probe_changes"), "step %zu: a change was not written: %s", i, steps[i].body);
        snprintf(expr, sizeof expr, "(SELECT %s FROM devices WHERE id = '%s')", steps[i].holds, s.dev.id);
        CHECK(h_sql_holds(expr), "step %zu: after %s, not %s", i, steps[i].body, steps[i].holds);
        CHECK(seen_just_now(&s), "step %zu: presence not written with the change", i);
        /* The same report once more is a read; omitted fields keep their values and change nothing. */
        probe_save(&s, "probe_changes");
        heartbeat(&h_g_srv, &s, steps[i].body);
        CHECK(device_unwritten(&s, "probe_changes"), "step %zu: the repeated report wrote: %s", i, steps[i].body);
    }
    h_release_free(&s.rel);
}

/* Presence older than OTA_PRESENCE_INTERVAL (default 120 s) is rewritten; younger is not. */
static void test_presence_interval(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s);
    heartbeat(&h_g_srv, &s, PLAIN);
    push_back_presence(&s, "110 seconds");
    probe_save(&s, "probe_interval");
    heartbeat(&h_g_srv, &s, PLAIN);
    h_sleep_ms(1000); /* five deferred-write intervals */
    CHECK(device_unwritten(&s, "probe_interval") && !seen_just_now(&s), "presence 110 s old was rewritten");
    push_back_presence(&s, "121 seconds");
    heartbeat(&h_g_srv, &s, PLAIN);
    CHECK(seen_just_now_soon(&s), "presence 121 s old was not rewritten");
    h_release_free(&s.rel);
}

/*
 * Stale presence is not written by the heartbeat but kept by the server, and written when it stops, as the time
 * of the heartbeat (not of the write); a write never moves last_seen_at back.
 */
static void test_presence_written_later(void **state)
{
    (void)state;
    h_server_t other;
    start_holding_server(&other);
    scene_t s;
    scene_make(&s);
    heartbeat(&other, &s, PLAIN); /* the first heartbeat: written at once */
    CHECK(seen_just_now(&s), "the first heartbeat did not record presence");
    push_back_presence(&s, "200 seconds");
    probe_save(&s, "probe_later");
    heartbeat(&other, &s, PLAIN);
    CHECK(device_unwritten(&s, "probe_later"), "the heartbeat wrote stale presence itself");
    h_sleep_ms(1500);
    CHECK(h_server_stop(&other) == 0, "the second server did not stop cleanly");
    char expr[256];
    snprintf(expr, sizeof expr,
             "(SELECT last_seen_at BETWEEN now() - interval '20 seconds' AND now() - interval '1 second' "
             "FROM devices WHERE id = '%s')",
             s.dev.id);
    CHECK(h_sql_holds(expr), "presence kept in memory was not written at stop as the heartbeat's time");

    /* Kept again, then overtaken by a newer last_seen_at before the write: the newer one stays. */
    start_holding_server(&other);
    push_back_presence(&s, "200 seconds");
    heartbeat(&other, &s, PLAIN);
    push_back_presence(&s, "-1 hour"); /* an hour ahead of now */
    CHECK(h_server_stop(&other) == 0, "the second server did not stop cleanly");
    snprintf(expr, sizeof expr, "(SELECT last_seen_at > now() + interval '50 minutes' FROM devices WHERE id = '%s')",
             s.dev.id);
    CHECK(h_sql_holds(expr), "a deferred presence write moved last_seen_at back");
    h_release_free(&s.rel);
}

/* OTA_PRESENCE_INTERVAL=0: every heartbeat's presence is written. */
static void test_presence_interval_zero(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_PRESENCE_INTERVAL=0", NULL};
    h_server_t other;
    h_server_start(&other, &h_g_pg, extra);
    CHECK(h_wait_ready(&other), "the second server did not become ready");
    scene_t s;
    scene_make(&s);
    heartbeat(&other, &s, PLAIN);
    for (int i = 0; i < 3; i++) {
        push_back_presence(&s, "30 seconds");
        heartbeat(&other, &s, PLAIN);
        CHECK(seen_just_now_soon(&s), "heartbeat %d's presence was not written", i);
    }
    h_server_stop(&other);
    h_release_free(&s.rel);
}

/* Transitions are written even when presence is recent: delivery, re-delivery (counted on the assignment only),
 * apply. A relay always writes (it marks the device Bluetooth-connected). */
static void test_transitions_write(void **state)
{
    (void)state;
    scene_t s;
    char aid[40];
    scene_make(&s);
    heartbeat(&h_g_srv, &s, PLAIN);
    h_assign_ok(&s.dev, &s.rel, aid);

    probe_save(&s, "probe_transitions");
    heartbeat_delivers(&s, aid);
    CHECK(!assignment_unwritten(aid, "probe_transitions"), "the first delivery was not written");
    json_decref(h_expect_assignment(aid, "delivered", 1, NULL));

    probe_save(&s, "probe_transitions");
    heartbeat_delivers(&s, aid);
    CHECK(device_unwritten(&s, "probe_transitions"), "a re-delivery wrote the device row");
    json_decref(h_expect_assignment(aid, "delivered", 2, NULL));

    probe_save(&s, "probe_transitions");
    h_resp_t r = {0};
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/relay", s.dev.id);
    h_request(&h_g_srv, "POST", path, s.dev.token, PLAIN, &r);
    CHECK(r.status == 200, "relay: %ld %s", r.status, BODY(&r));
    h_resp_free(&r);
    CHECK(!device_unwritten(&s, "probe_transitions"), "a relay was not written");
    CHECK(assignment_unwritten(aid, "probe_transitions"), "a relay wrote the assignment");

    heartbeat(&h_g_srv, &s, "{\"firmware_version\": \"1.1.0\"}");
    json_decref(h_expect_assignment(aid, "applied", 2, NULL));
    h_release_free(&s.rel);
}

/* Re-deliveries on two instances add up exactly; the second, at the default intervals (5 s, 30 s), is stopped well
 * within them, so its counts are in memory until the stop writes them. */
static void test_redelivery_counts(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_DEFERRED_WRITE_MS=5000", "OTA_DELIVERY_COUNT_MS=30000", NULL};
    h_server_t other;
    h_server_start(&other, &h_g_pg, extra);
    CHECK(h_wait_ready(&other), "the second server did not become ready");
    scene_t s;
    char aid[40];
    scene_make(&s);
    h_assign_ok(&s.dev, &s.rel, aid);
    heartbeat_delivers(&s, aid); /* the first delivery: counted by the heartbeat itself */
    for (int i = 0; i < 5; i++) {
        heartbeat_delivers(&s, aid);
        h_resp_t r = {0};
        h_heartbeat_ok(&other, &s.dev, PLAIN, &r);
        CHECK(json_is_object(json_object_get(r.json, "ota")), "no manifest from the second server: %s", BODY(&r));
        h_resp_free(&r);
    }
    CHECK(h_server_stop(&other) == 0, "the second server did not stop cleanly");
    json_decref(h_expect_assignment(aid, "delivered", 11, NULL));
    h_release_free(&s.rel);
}

/* Re-delivery counts wait for their own interval, while the signature of the first delivery goes with the next
 * write of presence and signatures. */
static void test_counts_wait_for_their_interval(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_DEFERRED_WRITE_MS=200", "OTA_DELIVERY_COUNT_MS=6000", NULL};
    h_server_t other;
    h_server_start(&other, &h_g_pg, extra);
    CHECK(h_wait_ready(&other), "the second server did not become ready");
    scene_t s;
    char aid[40], expr[300];
    scene_make(&s);
    h_assign_ok(&s.dev, &s.rel, aid);
    for (int i = 0; i < 4; i++) {
        h_resp_t r = {0};
        h_heartbeat_ok(&other, &s.dev, PLAIN, &r);
        CHECK(json_is_object(json_object_get(r.json, "ota")), "no manifest: %s", BODY(&r));
        h_resp_free(&r);
    }
    snprintf(expr, sizeof expr, "(SELECT length(signature) = 88 FROM assignments WHERE id = '%s')", aid);
    CHECK(h_sql_eventually(expr), "the first delivery's signature was not written with the next write");
    snprintf(expr, sizeof expr, "(SELECT deliveries = 1 FROM assignments WHERE id = '%s')", aid);
    CHECK(h_sql_holds(expr), "re-delivery counts were written before their interval");
    snprintf(expr, sizeof expr, "(SELECT deliveries = 4 FROM assignments WHERE id = '%s')", aid);
    bool written = false;
    for (int waited_ms = 0; !written && waited_ms < 12000; waited_ms += 100) {
        written = h_sql_holds(expr);
        if (!written)
            usleep(100 * 1000);
    }
    CHECK(written, "re-delivery counts were not written once their interval had passed");
    CHECK(h_server_stop(&other) == 0, "the second server did not stop cleanly");
    h_release_free(&s.rel);
}

/* More delivered assignments than one write statement takes (server/heartbeat/deferred_writes.c writes 200 rows at a time): every
 * re-delivery of every one is counted, and the signature each one's first delivery made is stored. The fleet is made
 * in SQL (devices with known tokens, assignments delivered with their release's fields copied as ota_assign copies
 * them, no signatures yet). */
static void test_redelivery_counts_many(void **state)
{
    (void)state;
    enum { DEVICES = 450, ROUNDS = 2 };
    scene_t s;
    scene_make(&s); /* its model and release; its own device stays out of this */
    /* Device i: id <prefix>-0000-4000-8000-<i, 12 digits>, token otd_<prefix>_<i>; its assignment's id has 9000. */
    char prefix[9], sql[2000];
    h_random_hex(prefix, 8);
    snprintf(sql, sizeof sql,
             "INSERT INTO devices (id, serial, model_id, token_hash, firmware_version, last_seen_at) "
             "SELECT ('%s-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '%s-' || i, '%s', "
             "sha256(convert_to('otd_%s_' || i, 'UTF8')), '1.0.0', now() FROM generate_series(1, %d) AS i; "
             "INSERT INTO assignments (id, device_id, release_id, version, status, deliveries, delivered_at, "
             "model, object_key, size, crc32, sha256) "
             "SELECT ('%s-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, "
             "('%s-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, r.id, r.version, 'delivered', 1, now(), "
             "r.model_id, x.object_key, x.size, x.crc32, x.sha256 FROM generate_series(1, %d) AS i, releases r "
             "JOIN artifacts x ON x.release_id = r.id AND x.kind = 'bin' WHERE r.id = '%s'",
             prefix, prefix, s.model, prefix, DEVICES, prefix, prefix, DEVICES, s.rel.id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 1; i <= DEVICES; i++) {
            char id[40], token[64];
            snprintf(id, sizeof id, "%s-0000-4000-8000-%012d", prefix, i);
            snprintf(token, sizeof token, "otd_%s_%d", prefix, i);
            h_resp_t r = {0};
            h_heartbeat_on(&h_g_srv, id, token, PLAIN, &r);
            json_t *m = json_object_get(r.json, "ota");
            CHECK(r.status == 200 && json_is_object(m), "device %d: %ld %s", i, r.status, BODY(&r));
            /* The manifest describes the release, from the fields copied onto the assignment. */
            const char *sha256 = json_string_value(json_object_get(m, "sha256"));
            const char *model = json_string_value(json_object_get(m, "model"));
            CHECK(sha256 != NULL && strcmp(sha256, s.rel.sha256) == 0 && model != NULL &&
                      strcmp(model, s.rel.model) == 0 &&
                      json_integer_value(json_object_get(m, "size")) == (json_int_t)s.rel.len &&
                      json_integer_value(json_object_get(m, "crc32")) == (json_int_t)s.rel.crc32,
                  "device %d: the manifest does not describe the release: %s", i, BODY(&r));
            h_resp_free(&r);
        }
    }
    char expr[300];
    snprintf(expr, sizeof expr,
             "(SELECT count(*) FILTER (WHERE deliveries = %d AND length(signature) = 88 AND signature_key IS NOT NULL) "
             "= %d FROM assignments WHERE release_id = '%s')",
             1 + ROUNDS, DEVICES, s.rel.id);
    CHECK(h_sql_eventually(expr), "not every re-delivery was counted or signature stored: %s", expr);
    h_release_free(&s.rel);
}

int main(void)
{
    /* The tests drive devices far harder than the 10 requests in 10 s a device may send (one device heartbeats many
       times a second, to see each write (or its absence)); it_rate_limit tests the limit itself. */
    h_server_env_all = "OTA_DEVICE_RATE_LIMIT=1000000";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unchanged_heartbeat_is_a_read),
        cmocka_unit_test(test_changes_are_written_at_once),
        cmocka_unit_test(test_presence_interval),
        cmocka_unit_test(test_presence_written_later),
        cmocka_unit_test(test_presence_interval_zero),
        cmocka_unit_test(test_transitions_write),
        cmocka_unit_test(test_redelivery_counts),
        cmocka_unit_test(test_counts_wait_for_their_interval),
        cmocka_unit_test(test_redelivery_counts_many),
    };
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
