/*
 * Integration: GET /v1/events (Server-Sent Events) with two server
 * instances on one database: transitions made through instance A reach a
 * stream opened on instance B, in order, and Last-Event-ID resumes a stream
 * from the events table.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "checks.h"
#include "harness.h"

static h_server_t second; /* instance B, on h_g_pg like h_g_srv (instance A) */

/* One stream read for a while in a thread. */
typedef struct stream {
    char url[128];
    char auth[200];
    char last_event_id[40]; /* "" for none */
    long duration_ms;
    pthread_mutex_t lock;
    struct {
        char *data; /* NUL-terminated */
        size_t len;
    } text;
    long status;
    pthread_t thread;
} stream_t;

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    stream_t *s = arg;
    size_t add = size * n;
    pthread_mutex_lock(&s->lock);
    char *bigger = realloc(s->text.data, s->text.len + add + 1);
    if (bigger != NULL) {
        memcpy(bigger + s->text.len, data, add);
        s->text.len += add;
        bigger[s->text.len] = '\0';
        s->text.data = bigger;
    }
    pthread_mutex_unlock(&s->lock);
    return bigger != NULL ? add : 0;
}

static void *read_stream(void *arg)
{
    stream_t *s = arg;
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, s->auth);
    char resume[80];
    if (s->last_event_id[0] != '\0') {
        snprintf(resume, sizeof resume, "Last-Event-ID: %s", s->last_event_id);
        headers = curl_slist_append(headers, resume);
    }
    curl_easy_setopt(curl, CURLOPT_URL, s->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, s->duration_ms); /* a stream never ends by itself */
    curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &s->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return NULL;
}

static void stream_open(stream_t *s, h_server_t *srv, const char *last_event_id, long duration_ms)
{
    memset(s, 0, sizeof *s);
    snprintf(s->url, sizeof s->url, "%s/v1/events", srv->base_url);
    snprintf(s->auth, sizeof s->auth, "Authorization: Bearer %s", srv->admin_key);
    snprintf(s->last_event_id, sizeof s->last_event_id, "%s", last_event_id != NULL ? last_event_id : "");
    s->duration_ms = duration_ms;
    pthread_mutex_init(&s->lock, NULL);
    pthread_create(&s->thread, NULL, read_stream, s);
}

/* Waits until the stream holds `needle` (at most 10 s). */
static bool stream_wait_for(stream_t *s, const char *needle)
{
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&s->lock);
        bool found = s->text.data != NULL && strstr(s->text.data, needle) != NULL;
        pthread_mutex_unlock(&s->lock);
        if (found)
            return true;
        h_sleep_ms(50);
    }
    return false;
}

static void stream_close(stream_t *s)
{
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
}

static int setup(void **state)
{
    int rc = h_group_setup(state);
    if (rc == 0) {
        const char *env[] = {NULL};
        h_server_start(&second, &h_g_pg, env);
        rc = h_wait_ready(&second) ? 0 : -1;
    }
    return rc;
}

static int teardown(void **state)
{
    h_server_stop(&second);
    return h_group_teardown(state);
}

/* The data line of the event about `assignment` moving `to`, e.g. "\"to\" : \"canceled\"". */
static bool has_transition(stream_t *s, const char *assignment, const char *to)
{
    char a[80], t[40];
    snprintf(a, sizeof a, "\"assignment_id\" : \"%s\"", assignment);
    snprintf(t, sizeof t, "\"to\" : \"%s\"", to);
    pthread_mutex_lock(&s->lock);
    bool found = false;
    for (const char *p = s->text.data; p != NULL && (p = strstr(p, a)) != NULL; p++) {
        const char *end = strstr(p, "\n");
        const char *hit = strstr(p, t);
        if (hit != NULL && (end == NULL || hit < end)) {
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

static void test_transitions_cross_instances(void **state)
{
    (void)state;
    char model[64], aid[40];
    h_release_t rel;
    h_device_t dev;
    stream_t s;
    h_make_model(model, sizeof model, "events");
    h_make_release(model, "2.0.0", 1000, &rel);
    h_make_device(model, "1.0.0", &dev);

    stream_open(&s, &second, NULL, 6000);
    CHECK(stream_wait_for(&s, ": connected"), "the stream on instance B did not open");

    h_assign_ok(&dev, &rel, aid);      /* through instance A */
    h_resp_t r = {0};
    char path[120];
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", aid);
    h_http(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    CHECK(r.status == 200, "cancel: %ld %s", r.status, BODY(&r));
    h_resp_free(&r);

    CHECK(stream_wait_for(&s, "\"to\" : \"canceled\""), "no canceled event on B's stream");
    CHECK(has_transition(&s, aid, "pending"), "no pending event for %s", aid);
    CHECK(has_transition(&s, aid, "canceled"), "no canceled event for %s", aid);
    /* In order: pending before canceled. */
    pthread_mutex_lock(&s.lock);
    const char *text = s.text.data;
    const char *p1 = strstr(text, "\"to\" : \"pending\""), *p2 = strstr(text, "\"to\" : \"canceled\"");
    pthread_mutex_unlock(&s.lock);
    CHECK(p1 != NULL && p2 != NULL && p1 < p2, "events out of order:\n%s", text);
    stream_close(&s);
    CHECK(s.status == 200, "stream status %ld", s.status);
    free(s.text.data);
    h_release_free(&rel);
}

static void test_last_event_id_resumes(void **state)
{
    (void)state;
    char model[64], aid[40];
    h_release_t rel;
    h_device_t dev;
    h_make_model(model, sizeof model, "resume");
    h_make_release(model, "3.0.0", 1000, &rel);
    h_make_device(model, "1.0.0", &dev);
    h_assign_ok(&dev, &rel, aid);

    /* The id of this assignment's first event, from its history. */
    json_t *a = h_get_assignment(aid);
    CHECK(json_array_size(json_object_get(a, "events")) == 1, "events: %s", json_dumps(a, 0));
    json_decref(a);

    /* Resuming from event 0 replays everything the table holds, this assignment included, on instance A. */
    stream_t s;
    stream_open(&s, &h_g_srv, "0", 3000);
    CHECK(stream_wait_for(&s, aid), "the resumed stream did not replay %s", aid);
    CHECK(has_transition(&s, aid, "pending"), "no pending event for %s", aid);
    CHECK(stream_wait_for(&s, "id: 1\n"), "the replay does not start at the first event");
    stream_close(&s);
    free(s.text.data);
    h_release_free(&rel);
}

/* Where in the stream the rollout event `event` of rollout `id` is (its data line), or -1; waits up to 10 s. */
static long rollout_event_at(stream_t *s, const char *id, const char *event)
{
    char r[80], e[40];
    snprintf(r, sizeof r, "\"rollout_id\" : \"%s\"", id);
    snprintf(e, sizeof e, "\"event\" : \"%s\"", event);
    for (int i = 0; i < 200; i++) {
        long at = -1;
        pthread_mutex_lock(&s->lock);
        for (const char *p = s->text.data; p != NULL && (p = strstr(p, r)) != NULL; p++) {
            const char *end = strstr(p, "\n"), *hit = strstr(p, e);
            if (hit != NULL && (end == NULL || hit < end)) {
                at = p - s->text.data;
                break;
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (at >= 0)
            return at;
        h_sleep_ms(50);
    }
    return -1;
}

/* A rollout's changes reach a stream on the other instance as `event: rollout`, in order, with the transitions of
 * its assignments among them. */
static void test_rollout_events(void **state)
{
    (void)state;
    char model[64], body[256], id[40];
    h_release_t rel;
    h_device_t dev;
    h_make_model(model, sizeof model, "rollout-events");
    h_make_release(model, "2.0.0", 1000, &rel);
    h_make_device(model, "1.0.0", &dev);

    stream_t s;
    stream_open(&s, &second, NULL, 10000);
    h_sleep_ms(300); /* the stream is open before anything happens */
    h_resp_t r = {0};
    snprintf(body, sizeof body, "{\"release_id\": \"%s\"}", rel.id);
    h_request(&h_g_srv, "POST", "/v1/rollouts", h_g_srv.admin_key, body, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
    long created = rollout_event_at(&s, id, "created");
    CHECK(created >= 0, "no created event of %s", id);
    /* The engine admits the device: its assignment's pending transition is on the stream too. */
    CHECK(stream_wait_for(&s, "\"to\" : \"pending\""), "no transition of the rollout's assignment");
    snprintf(body, sizeof body, "/v1/rollouts/%s/cancel", id);
    h_http(&h_g_srv, "POST", body, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    long canceled = rollout_event_at(&s, id, "canceled");
    CHECK(canceled > created, "no canceled event after the created one (%ld, %ld)", created, canceled);
    CHECK(stream_wait_for(&s, "\"reason\" : \"rollout_canceled\""), "no transition canceling its assignment");
    pthread_mutex_lock(&s.lock);
    bool named = strstr(s.text.data, "event: rollout\ndata: ") != NULL;
    pthread_mutex_unlock(&s.lock);
    CHECK(named, "rollout events are not named rollout: %s", s.text.data);
    stream_close(&s);
    free(s.text.data);
    h_release_free(&rel);
}

static void test_requires_api_key(void **state)
{
    (void)state;
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/events", NULL, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_events),
        cmocka_unit_test(test_requires_api_key),
        cmocka_unit_test(test_transitions_cross_instances),
        cmocka_unit_test(test_last_event_id_resumes),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
