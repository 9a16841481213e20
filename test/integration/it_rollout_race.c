/*
 * Integration: rollouts across three ota-server instances on one PostgreSQL
 * database (as behind a load balancer), every instance's engine ticking.
 *
 *   (a) pacing: with max_per_minute 5, devices heartbeating on the three
 *       instances at the same moment get exactly 5 first deliveries; the
 *       others are told "rollout_pacing", and re-deliveries are not paced;
 *       once the budget's minute has passed (the buckets moved back a minute
 *       in the database, rather than waiting one), 5 more go out;
 *   (b) 10,000 targets in three waves, heartbeats (applying, failing,
 *       retrying) racing each other and the three engines: every target gets
 *       at most one active assignment at a time and no more than its
 *       attempts allow, every wave opens once, the rollout completes, and its
 *       counts equal a count(*) over the targets and their assignments.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "checks.h"

#define INSTANCES 3
#define RACE_DEVICES 10000
#define RACE_THREADS 4

static h_server_t g_extra[INSTANCES - 1];
static h_server_t *g_srv[INSTANCES];

static int start_instances(void **state)
{
    if (h_group_setup(state) != 0)
        return -1;
    g_srv[0] = &h_g_srv;
    for (int i = 1; i < INSTANCES; i++) {
        h_server_start(&g_extra[i - 1], &h_g_pg, NULL);
        if (!h_wait_ready(&g_extra[i - 1]))
            return -1;
        g_srv[i] = &g_extra[i - 1];
    }
    return 0;
}

static int stop_instances(void **state)
{
    for (int i = 1; i < INSTANCES; i++)
        h_server_stop(&g_extra[i - 1]);
    return h_group_teardown(state);
}

static json_int_t count_of(json_t *rollout, const char *key)
{
    return h_jint(json_object_get(rollout, "counts"), key);
}

/* Polls until counts.<key> of rollout `id` is `want` (30 s at most). */
static void await_count(const char *id, const char *key, json_int_t want)
{
    for (int waited = 0;; waited += 100) {
        json_t *r = h_get_rollout(id);
        json_int_t have = count_of(r, key);
        json_decref(r);
        if (have == want)
            return;
        CHECK(waited < 30000, "counts.%s is %lld, never %lld", key, (long long)have, (long long)want);
        h_sleep_ms(100);
    }
}

/* ---- (a) pacing --------------------------------------------------------------------------------- */

typedef struct paced_beat {
    h_server_t *srv;
    const h_device_t *device;
    long status;
    bool manifest;
    char deferred[32];
} paced_beat_t;

static void *paced_beat_run(void *arg)
{
    paced_beat_t *b = arg;
    h_resp_t r = {0};
    h_heartbeat_on(b->srv, b->device->id, b->device->token, "{\"firmware_version\": \"1.0.0\"}", &r);
    b->status = r.status;
    b->manifest = json_is_object(json_object_get(r.json, "ota"));
    snprintf(b->deferred, sizeof b->deferred, "%s", h_jstr(r.json, "deferred") ? h_jstr(r.json, "deferred") : "");
    h_resp_free(&r);
    return NULL;
}

/* Every device heartbeats once, all at the same moment, round-robin over the instances; returns the manifests. */
static int heartbeat_all_at_once(const h_device_t *devices, int n, int *paced)
{
    paced_beat_t *beats = calloc((size_t)n, sizeof *beats);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    CHECK(beats != NULL && threads != NULL, "out of memory");
    for (int i = 0; i < n; i++) {
        beats[i] = (paced_beat_t){.srv = g_srv[i % INSTANCES], .device = &devices[i]};
        CHECK(pthread_create(&threads[i], NULL, paced_beat_run, &beats[i]) == 0, "pthread_create");
    }
    int manifests = 0;
    *paced = 0;
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < n; i++) {
        CHECK(beats[i].status == 200, "heartbeat answered %ld", beats[i].status);
        manifests += beats[i].manifest;
        *paced += strcmp(beats[i].deferred, "rollout_pacing") == 0;
    }
    free(beats);
    free(threads);
    return manifests;
}

static void test_pacing_across_instances(void **state)
{
    (void)state;
    enum { N = 24, BUDGET = 5 };
    char model[32], id[40], sql[512];
    h_release_t rel;
    h_device_t devices[N];
    h_make_model(model, sizeof model, "Paced");
    h_make_release(model, "1.1.0", 64, &rel);
    for (int i = 0; i < N; i++)
        h_make_device(model, "1.0.0", &devices[i]);
    json_decref(h_create_rollout(rel.id, "\"max_per_minute\": 5", id));
    await_count(id, "pending", N);

    int paced, manifests = heartbeat_all_at_once(devices, N, &paced);
    CHECK(manifests == BUDGET && paced == N - BUDGET, "%d manifests, %d paced: the budget is %d", manifests, paced,
          BUDGET);
    /* Again: the 5 delivered get their manifest again (a re-delivery is not paced); the others still wait. */
    manifests = heartbeat_all_at_once(devices, N, &paced);
    CHECK(manifests == BUDGET && paced == N - BUDGET, "second round: %d manifests, %d paced", manifests, paced);
    snprintf(sql, sizeof sql,
             "(SELECT count(*) FROM assignments WHERE rollout_id = '%s' AND delivered_at IS NOT NULL) = %d", id,
             BUDGET);
    CHECK(h_sql_holds(sql), "more first deliveries than the budget");

    /* A minute later (the buckets moved back 13 steps of 5 s) the budget is there again: 5 more. */
    snprintf(
        sql, sizeof sql,
        "UPDATE rollout_pacing SET buckets = ARRAY(SELECT b - 13 FROM unnest(buckets) AS b) WHERE rollout_id = '%s'",
        id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "moving the buckets back");
    manifests = heartbeat_all_at_once(devices, N, &paced);
    CHECK(manifests == 2 * BUDGET && paced == N - 2 * BUDGET, "after a minute: %d manifests, %d paced", manifests,
          paced);
    json_t *r = h_get_rollout(id);
    CHECK(count_of(r, "delivered") == 2 * BUDGET && count_of(r, "pending") == N - 2 * BUDGET, "counts: %s",
          json_dumps(r, 0));
    json_decref(r);
    h_release_free(&rel);
}

/* ---- (b) 10,000 targets, everything racing ---------------------------------------------------------- */

/* Device i of the race: its id is md5("race-<model>-i") read as a UUID, its token "race-<model>-i". */
static void race_device(const char *model, int i, h_device_t *d)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    snprintf(d->token, sizeof d->token, "race-%s-%d", model, i);
    EVP_Digest(d->token, strlen(d->token), md, &len, EVP_md5(), NULL);
    snprintf(d->id, sizeof d->id, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0], md[1],
             md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
    snprintf(d->model, sizeof d->model, "%s", model);
}

typedef struct racer {
    const char *model;
    int first, step; /* devices first, first + step, ... */
    atomic_bool *stop;
    long errors; /* answers other than 200 */
} racer_t;

/*
 * Heartbeats its devices over and over on the instances in turn: a device with a manifest applies it, except
 * every 7th device, which reports a failure first (a retry then succeeds); devices that have applied report
 * the new version.
 */
static void *racer_run(void *arg)
{
    racer_t *r = arg;
    int round = 0;
    unsigned char *failed_once = calloc(RACE_DEVICES, 1), *applied = calloc(RACE_DEVICES, 1);
    while (!*r->stop) {
        for (int i = r->first; i < RACE_DEVICES && !*r->stop; i += r->step) {
            h_device_t d;
            race_device(r->model, i, &d);
            char body[256];
            h_resp_t resp = {0};
            snprintf(body, sizeof body, "{\"firmware_version\": \"%s\"}", applied[i] ? "1.1.0" : "1.0.0");
            h_heartbeat_on(g_srv[(i + round) % INSTANCES], d.id, d.token, body, &resp);
            r->errors += resp.status != 200;
            json_t *m = json_object_get(resp.json, "ota");
            if (json_is_object(m)) {
                if (i % 7 == 0 && !failed_once[i]) {
                    failed_once[i] = 1;
                    h_resp_t f = {0};
                    snprintf(body, sizeof body,
                             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": "
                             "\"failed\", \"error\": \"flash write\"}}",
                             h_jstr(m, "assignment_id"));
                    h_heartbeat_on(g_srv[(i + round + 1) % INSTANCES], d.id, d.token, body, &f);
                    r->errors += f.status != 200;
                    h_resp_free(&f);
                } else {
                    applied[i] = 1;
                }
            }
            h_resp_free(&resp);
        }
        round++;
    }
    free(failed_once);
    free(applied);
    return NULL;
}

static void test_ten_thousand_targets_racing(void **state)
{
    (void)state;
    char model[32], id[40], sql[1024];
    h_release_t rel;
    h_make_model(model, sizeof model, "Race");
    h_make_release(model, "1.1.0", 64, &rel);
    /* The devices in one statement, with the ids and tokens race_device computes. */
    snprintf(sql, sizeof sql,
             "INSERT INTO devices (id, serial, model_id, token_hash, firmware_version) "
             "SELECT md5('race-%s-' || i)::uuid, 'race-%s-' || i, '%s', sha256(convert_to('race-%s-' || i, 'UTF8')), "
             "'1.0.0' FROM generate_series(0, %d) AS i",
             model, model, model, model, RACE_DEVICES - 1);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "inserting the devices");
    json_decref(h_create_rollout(rel.id,
                                 "\"waves\": [5, 30, 100], \"success\": {\"min_percent\": 80}, "
                                 "\"failure\": {\"max_percent\": 100}, \"retries\": {\"max\": 1, \"backoff_s\": 0}",
                                 id));

    atomic_bool stop = false;
    racer_t racers[RACE_THREADS];
    pthread_t threads[RACE_THREADS];
    for (int t = 0; t < RACE_THREADS; t++) {
        racers[t] = (racer_t){.model = model, .first = t, .step = RACE_THREADS, .stop = &stop};
        CHECK(pthread_create(&threads[t], NULL, racer_run, &racers[t]) == 0, "pthread_create");
    }
    json_t *r = NULL;
    for (int waited = 0; waited < 240000; waited += 500) {
        h_sleep_ms(500);
        json_decref(r);
        r = h_get_rollout(id);
        if (h_streq(h_jstr(r, "status"), "completed"))
            break;
    }
    stop = true;
    for (int t = 0; t < RACE_THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK(racers[t].errors == 0, "racer %d: %ld answers other than 200", t, racers[t].errors);
    }
    CHECK(h_streq(h_jstr(r, "status"), "completed"), "not completed: %s", json_dumps(r, 0));
    CHECK(count_of(r, "targets") == RACE_DEVICES && count_of(r, "applied") == RACE_DEVICES &&
              count_of(r, "failed") == 0 && count_of(r, "retries") == (RACE_DEVICES + 6) / 7,
          "counts: %s", json_dumps(r, 0));
    json_decref(r);

    /* Every wave opened once. */
    snprintf(sql, sizeof sql,
             "(SELECT count(*) FROM rollout_events WHERE rollout_id = '%s' AND event = 'wave_opened') = 2 AND "
             "(SELECT count(DISTINCT wave) FROM rollout_events WHERE rollout_id = '%s' AND event IN ('created', "
             "'wave_opened')) = 3",
             id, id);
    CHECK(h_sql_holds(sql), "a wave opened twice");
    /* At most one assignment per attempt, and never more attempts than 1 + retries.max. */
    snprintf(sql, sizeof sql,
             "NOT EXISTS (SELECT 1 FROM rollout_targets t WHERE t.rollout_id = '%s' AND (t.attempts > 2 OR "
             "t.attempts <> (SELECT count(*) FROM assignments a WHERE a.rollout_id = t.rollout_id "
             "AND a.device_id = t.device_id)))",
             id);
    CHECK(h_sql_holds(sql), "a target has more assignments than attempts");
    /* The counts equal a count(*) over the targets and agree with their assignments. */
    snprintf(
        sql, sizeof sql,
        "NOT EXISTS (SELECT wave, state, sum(n) FROM rollout_counts WHERE rollout_id = '%s' AND state <> 'retries' "
        "GROUP BY wave, state HAVING sum(n) <> 0 "
        "EXCEPT SELECT wave, state, count(*) FROM rollout_targets WHERE rollout_id = '%s' GROUP BY wave, state) "
        "AND (SELECT count(*) FROM assignments WHERE rollout_id = '%s' AND status = 'applied') = %d "
        "AND (SELECT sum(n) FROM rollout_counts WHERE rollout_id = '%s' AND state = 'retries') = "
        "(SELECT count(*) FROM assignments WHERE rollout_id = '%s') - %d",
        id, id, id, RACE_DEVICES, id, id, RACE_DEVICES);
    CHECK(h_sql_holds(sql), "the counts disagree with the targets");
    h_release_free(&rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pacing_across_instances),
        cmocka_unit_test(test_ten_thousand_targets_racing),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, start_instances, stop_instances);
}
