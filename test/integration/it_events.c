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
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <libpq-fe.h>

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

    h_assign_ok(&dev, &rel, aid); /* through instance A */
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
    /* The first event sent is event 1, with its transaction's id before it: "id: <xid>-1". */
    pthread_mutex_lock(&s.lock);
    const char *first = strstr(s.text.data, "id: "), *dash = first != NULL ? strchr(first, '-') : NULL;
    bool starts_at_1 = dash != NULL && strncmp(dash, "-1\n", 3) == 0;
    pthread_mutex_unlock(&s.lock);
    stream_close(&s);
    CHECK(starts_at_1, "the replay does not start at the first event: %.200s", s.text.data);
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

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* ---- raw streams: a socket we read (or do not read) ourselves ---------------------------------------- */

/* Opens GET /v1/events on `srv` with `key` (NULL: the admin key), resuming after `last_event_id` (NULL: none);
 * `rcvbuf` > 0 shrinks the socket's receive buffer first, so the server meets a slow reader at once. */
static int raw_open(h_server_t *srv, const char *key, const char *last_event_id, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char req[512], resume[96] = "";
    if (last_event_id != NULL)
        snprintf(resume, sizeof resume, "Last-Event-ID: %s\r\n", last_event_id);
    int n =
        snprintf(req, sizeof req, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n%s\r\n",
                 key != NULL ? key : srv->admin_key, resume);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads into `buf` (NUL-terminated, at most cap - 1 bytes) until it holds `needle`, the peer closes or `ms` pass;
 * returns the bytes held, -1 once the peer closed or reset the connection. */
static long raw_read(int fd, char *buf, size_t cap, size_t *len, const char *needle, long ms)
{
    double until = now_ms() + ms;
    while (now_ms() <= until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) == 1) {
            size_t before = *len;
            ssize_t n = recv(fd, buf + *len, cap - 1 - *len, 0);
            if (n <= 0)
                return -1;
            *len += (size_t)n;
            buf[*len] = '\0';
            /* Only the new bytes (and a needle's length before them) can hold a new match. */
            size_t from = needle != NULL && before > strlen(needle) ? before - strlen(needle) : 0;
            if (needle != NULL && strstr(buf + from, needle) != NULL)
                return (long)*len;
        }
        if (*len + 1 >= cap)
            break;
    }
    return (long)*len;
}

/* ---- committed out of id order ---------------------------------------------------------------------- */

static PGconn *pg_connect(void)
{
    PGconn *c = PQconnectdb(h_g_pg.conninfo);
    CHECK(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

static void pg_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
          PQerrorMessage(c));
    PQclear(r);
}

/*
 * Connection 1 takes an event id and keeps its transaction open; connection 2 takes a later id and commits; the reader
 * reads meanwhile; then connection 1 commits. The stream gets both events: the one with the smaller id is not left
 * behind a cursor that already passed the larger.
 */
static void test_commit_order_differs_from_ids(void **state)
{
    (void)state;
    char model[64], first[40], second_aid[40], sql[256];
    h_release_t rel;
    h_device_t d1, d2;
    h_make_model(model, sizeof model, "commit-order");
    h_make_release(model, "2.0.0", 1000, &rel);
    h_make_device(model, "1.0.0", &d1);
    h_make_device(model, "1.0.0", &d2);
    h_assign_ok(&d1, &rel, first);
    h_assign_ok(&d2, &rel, second_aid);

    stream_t s;
    stream_open(&s, &second, NULL, 6000);
    CHECK(stream_wait_for(&s, ": connected"), "the stream did not open");

    PGconn *c1 = pg_connect(), *c2 = pg_connect();
    pg_ok(c1, "BEGIN");
    snprintf(sql, sizeof sql, "UPDATE assignments SET status = 'canceled', reason = 'first' WHERE id = '%s'", first);
    pg_ok(c1, sql); /* takes the smaller event id; not committed */
    snprintf(sql, sizeof sql, "UPDATE assignments SET status = 'canceled', reason = 'second' WHERE id = '%s'",
             second_aid);
    pg_ok(c2, sql);   /* the larger id, committed at once */
    h_sleep_ms(1000); /* the reader is woken and reads while connection 1 is still open */
    bool early = has_transition(&s, second_aid, "canceled");
    pg_ok(c1, "COMMIT");
    double t0 = now_ms();
    bool later_came = stream_wait_for(&s, "\"reason\" : \"second\"");
    print_message("both events %.0f ms after the older transaction committed\n", now_ms() - t0);
    bool first_came = has_transition(&s, first, "canceled");
    pthread_mutex_lock(&s.lock);
    const char *p1 = strstr(s.text.data, "\"reason\" : \"first\""),
               *p2 = strstr(s.text.data, "\"reason\" : \"second\"");
    bool in_order = p1 != NULL && p2 != NULL && p1 < p2;
    pthread_mutex_unlock(&s.lock);
    PQfinish(c1);
    PQfinish(c2);
    stream_close(&s); /* before any check can end the test: the thread writes into `s` */
    CHECK(later_came, "the committed later event never came");
    CHECK(first_came, "the event committed last, with the smaller id, was skipped:\n%s", s.text.data);
    CHECK(!early, "an event was handed out while an older transaction could still add one before it");
    CHECK(in_order, "not in transaction order:\n%s", s.text.data);
    free(s.text.data);
    h_release_free(&rel);
}

/* ---- streams per API key ---------------------------------------------------------------------------- */

#define STREAMS_PER_KEY 8

/* A key holds at most STREAMS_PER_KEY streams on one instance; the next gets 429, and closing one frees its slot. */
static void test_streams_per_key(void **state)
{
    (void)state;
    char key[128], buf[4096];
    int fds[STREAMS_PER_KEY];
    h_cli_api_key("viewer", key);
    for (int i = 0; i < STREAMS_PER_KEY; i++) {
        size_t len = 0;
        fds[i] = raw_open(&h_g_srv, key, NULL, 0);
        CHECK(fds[i] >= 0, "connect");
        raw_read(fds[i], buf, sizeof buf, &len, ": connected", 5000);
        CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, ": connected") != NULL, "stream %d: %s", i, buf);
    }
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/events", key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 429, "rate_limited");
    CHECK(atoi(r.retry_after) > 0, "no Retry-After: '%s'", r.retry_after);
    h_resp_free(&r);
    /* Another key is not affected. */
    int other = raw_open(&h_g_srv, NULL, NULL, 0);
    size_t len = 0;
    raw_read(other, buf, sizeof buf, &len, ": connected", 5000);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0, "another key's stream: %s", buf);
    close(other);

    close(fds[0]);
    bool reopened = false;
    for (int i = 0; i < 50 && !reopened; i++) {
        h_sleep_ms(100);
        len = 0;
        buf[0] = '\0';
        int fd = raw_open(&h_g_srv, key, NULL, 0);
        raw_read(fd, buf, sizeof buf, &len, "\r\n\r\n", 5000);
        reopened = strncmp(buf, "HTTP/1.1 200", 12) == 0;
        if (reopened)
            fds[0] = fd;
        else
            close(fd);
    }
    CHECK(reopened, "closing a stream did not free its slot: %s", buf);
    for (int i = 0; i < STREAMS_PER_KEY; i++)
        close(fds[i]);
}

/* A stream whose API key is revoked (through the other instance) ends within 5 s, and its key is refused after. */
static void test_revoked_key_ends_stream(void **state)
{
    (void)state;
    char key[128], buf[4096], path[96];
    size_t len = 0;
    h_cli_api_key("viewer", key);
    int fd = raw_open(&h_g_srv, key, NULL, 0);
    CHECK(fd >= 0, "connect");
    raw_read(fd, buf, sizeof buf, &len, ": connected", 5000);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, ": connected") != NULL, "stream: %s", buf);

    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/whoami", key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    snprintf(path, sizeof path, "/v1/api-keys/%s", h_jstr(r.json, "api_key_id"));
    h_resp_free(&r);
    double revoked = now_ms();
    h_http(&second, "DELETE", path, second.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    long rc = raw_read(fd, buf, sizeof buf, &len, NULL, 5000);
    close(fd);
    CHECK(rc == -1, "the stream of a revoked key is still open 5 s later");
    fprintf(stderr, "the revoked key's stream ended %.0f ms after the revocation\n", now_ms() - revoked);
    h_http(&h_g_srv, "GET", "/v1/events", key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

/* ---- a slow reader ---------------------------------------------------------------------------------- */

/* The servers' keep-alive interval (OTA_EVENTS_KEEPALIVE_S, set in main). */
#define KEEPALIVE_MS 2000

#define HISTORY_EVENTS 12000 /* ~1150 bytes each: ~14 MB, 50 times the 256 KiB a stream may hold */

/* The server's resident memory in KiB, from /proc. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f != NULL)
        fclose(f);
    return kib;
}

/* Appends to `ids` (space-separated) the id of every complete event in `text`; the last goes to `last` too. */
static void complete_ids(const char *text, char **ids, size_t *len, size_t *cap, char last[64])
{
    for (const char *p = text; (p = strstr(p, "\nid: ")) != NULL; p++) {
        const char *id = p + 5, *eol = strchr(id, '\n');
        if (eol == NULL || strstr(eol, "\n\n") == NULL || eol - id >= 63)
            break; /* cut off where the connection ended */
        size_t n = (size_t)(eol - id);
        if (*len + n + 2 > *cap) {
            *cap = (*cap + n + 2) * 2;
            *ids = realloc(*ids, *cap);
            CHECK(*ids != NULL, "out of memory");
        }
        memcpy(*ids + *len, id, n);
        *len += n;
        (*ids)[(*len)++] = ' ';
        (*ids)[*len] = '\0';
        memcpy(last, id, n);
        last[n] = '\0';
    }
}

/*
 * A reader that takes nothing, on a history much larger than a stream may hold: the server's memory stays flat,
 * the stream is dropped, and resuming with the last id received continues with no gap and no duplicate.
 */
static void test_slow_reader(void **state)
{
    (void)state;
    char model[64], aid[40], sql[512], last[64] = "";
    h_release_t rel;
    h_device_t dev;
    h_make_model(model, sizeof model, "slow-reader");
    h_make_release(model, "2.0.0", 1000, &rel);
    h_make_device(model, "1.0.0", &dev);
    h_assign_ok(&dev, &rel, aid);
    PGconn *c = pg_connect();
    snprintf(sql, sizeof sql,
             "INSERT INTO assignment_events (assignment_id, device_id, from_status, to_status, reason) "
             "SELECT '%s', '%s', 'pending', 'pending', repeat('x', 1000) FROM generate_series(1, %d)",
             aid, dev.id, HISTORY_EVENTS);
    pg_ok(c, sql);

    long before = rss_kib(h_g_srv.pid);
    double opened = now_ms();
    int fd = raw_open(&h_g_srv, NULL, "0", 4096);
    CHECK(fd >= 0, "connect");
    h_sleep_ms(3000);
    long during = rss_kib(h_g_srv.pid);
    print_message("server RSS %ld KiB before, %ld KiB with the slow reader\n", before, during);
    /* The old stream buffered the whole history (+22 MB); 8 MB leaves room for AddressSanitizer's bookkeeping. */
    CHECK(during - before < 8 * 1024, "the server buffers for a reader that reads nothing: %ld -> %ld KiB", before,
          during);

    /* Not reading for two keep-alive intervals: the server drops the stream. */
    h_sleep_ms((long)(2 * KEEPALIVE_MS + 1000 - (now_ms() - opened)));
    size_t cap1 = 8u << 20, len1 = 0;
    char *text1 = malloc(cap1);
    text1[0] = '\0';
    long got = raw_read(fd, text1, cap1, &len1, NULL, 10000);
    close(fd);
    CHECK(got < 0, "the stalled stream was not closed (%zu bytes read)", len1);

    size_t ids_len = 0, ids_cap = 0;
    char *ids = NULL;
    complete_ids(text1, &ids, &ids_len, &ids_cap, last);
    CHECK(last[0] != '\0', "no complete event before the stream was dropped: %.300s", text1);

    /* The whole history as the server orders it, and its last id. */
    PGresult *r = PQexec(c, "SELECT string_agg(xid::text || '-' || id, ' ' ORDER BY xid, id) || ' ', "
                            "(array_agg(xid::text || '-' || id ORDER BY xid DESC, id DESC))[1] FROM "
                            "(SELECT xid, id FROM assignment_events UNION ALL SELECT xid, id FROM rollout_events) e");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    char final_line[96];
    snprintf(final_line, sizeof final_line, "id: %s\n", PQgetvalue(r, 0, 1));

    size_t cap2 = 64u << 20, len2 = 0;
    char *text2 = malloc(cap2);
    text2[0] = '\0';
    fd = raw_open(&h_g_srv, NULL, last, 0);
    raw_read(fd, text2, cap2, &len2, final_line, 30000);
    close(fd);
    CHECK(strstr(text2, final_line) != NULL, "the resumed stream did not reach %s", final_line);
    complete_ids(text2, &ids, &ids_len, &ids_cap, last);
    print_message("%zu bytes before the drop, %zu after resuming\n", len1, len2);
    CHECK(strcmp(ids, PQgetvalue(r, 0, 0)) == 0, "the two streams together are not the history, once each, in order");
    PQclear(r);
    PQfinish(c);
    free(ids);
    free(text1);
    free(text2);
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
    /* A reader that takes nothing is dropped after one or two keep-alive intervals: KEEPALIVE_MS here, not 15 s. */
    h_server_env_all = "OTA_EVENTS_KEEPALIVE_S=2";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_events),
        cmocka_unit_test(test_requires_api_key),
        cmocka_unit_test(test_transitions_cross_instances),
        cmocka_unit_test(test_last_event_id_resumes),
        cmocka_unit_test(test_commit_order_differs_from_ids),
        cmocka_unit_test(test_streams_per_key),
        cmocka_unit_test(test_revoked_key_ends_stream),
        cmocka_unit_test(test_slow_reader), /* last: it leaves a large history behind */
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
