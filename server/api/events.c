#include "api/events.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/respond.h"
#include "core/log.h"
#include "ota/text.h"

/* Most events sent to one stream per database read. */
#define BATCH 500

typedef struct stream stream_t;

struct ota_events {
    ota_worker_t *worker;
    h2o_linklist_t streams;
    h2o_timeout_t keepalive;
    h2o_timeout_entry_t keepalive_entry;
};

/*
 * One open stream. It lives in malloc'ed memory because a database read may
 * still be on its way when the client leaves; `gone` and `reading` together
 * decide who frees it.
 */
struct stream {
    h2o_generator_t super;
    h2o_linklist_t link;
    ota_events_t *hub;
    h2o_req_t *req;   /* NULL once the client has gone */
    int64_t cursor;   /* the last event id sent */
    bool reading;     /* a database read is in flight */
    bool again;       /* a notification came during the read: read once more */
    bool sending;     /* h2o has a chunk of ours and has not asked for more */
    ota_text_t pending, inflight;
};

typedef struct stream_guard {
    stream_t *s;
} stream_guard_t;

static void stream_free_if_done(stream_t *s)
{
    if (s->req != NULL || s->reading)
        return;
    ota_text_free(&s->pending);
    ota_text_free(&s->inflight);
    free(s);
}

static void flush(stream_t *s)
{
    if (s->req == NULL || s->sending || s->pending.len == 0)
        return;
    /* Swap the buffers: h2o reads `inflight` until it calls proceed. */
    ota_text_t t = s->inflight;
    s->inflight = s->pending;
    s->pending = t;
    ota_text_reset(&s->pending);
    s->sending = true;
    h2o_iovec_t chunk = h2o_iovec_init(s->inflight.base, s->inflight.len);
    h2o_send(s->req, &chunk, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, super, self);
    (void)req;
    s->sending = false;
    ota_text_reset(&s->inflight);
    flush(s);
}

/* Appends to the text the stream sends next. The server's policy: no bound is set, so memory is the only failure. */
static void pend(stream_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pend(stream_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ota_text_vprintf(&s->pending, fmt, ap);
    va_end(ap);
    if (s->pending.err != OTA_OK)
        h2o_fatal("out of memory");
}

static void on_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req;
}

/* The request's memory goes: the stream leaves the hub and is freed once no read is pending. */
static void on_guard_dispose(void *p)
{
    stream_guard_t *g = p;
    stream_t *s = g->s;
    if (h2o_linklist_is_linked(&s->link))
        h2o_linklist_unlink(&s->link);
    s->req = NULL;
    stream_free_if_done(s);
}

static void read_events(stream_t *s);

static void on_events(void *arg, const PGresult *res)
{
    stream_t *s = arg;
    s->reading = false;
    if (s->req == NULL) {
        stream_free_if_done(s);
        return;
    }
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return; /* the database is away: the next notification or keep-alive tick reads again */
    for (int row = 0; row < PQntuples(res); row++) {
        s->cursor = strtoll(PQgetvalue(res, row, OTA_EVENT_COL_ID), NULL, 10);
        pend(s, "id: %" PRId64 "\nevent: %s\ndata: %s\n\n", s->cursor, PQgetvalue(res, row, OTA_EVENT_COL_KIND),
             PQgetvalue(res, row, OTA_EVENT_COL_JSON));
    }
    flush(s);
    if (s->again || PQntuples(res) == BATCH) {
        s->again = false;
        read_events(s);
    }
}

static void read_events(stream_t *s)
{
    char after[24], limit[16];
    if (s->reading) {
        s->again = true;
        return;
    }
    snprintf(after, sizeof after, "%" PRId64, s->cursor);
    snprintf(limit, sizeof limit, "%d", BATCH);
    const char *params[] = {after, limit};
    if (ota__db_query(s->hub->worker->db, OTA_STMT_EVENTS_SINCE, params, on_events, s) == OTA_OK)
        s->reading = true;
}

static void on_notify(void *arg, const char *payload)
{
    ota_events_t *hub = arg;
    (void)payload;
    for (h2o_linklist_t *l = hub->streams.next; l != &hub->streams; l = l->next)
        read_events(H2O_STRUCT_FROM_MEMBER(stream_t, link, l));
}

/* Keeps proxies from closing idle streams, and catches up any stream a lost notification left behind. */
static void on_keepalive(h2o_timeout_entry_t *entry)
{
    ota_events_t *hub = H2O_STRUCT_FROM_MEMBER(ota_events_t, keepalive_entry, entry);
    for (h2o_linklist_t *l = hub->streams.next; l != &hub->streams; l = l->next) {
        stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, link, l);
        pend(s, ": keep-alive\n\n");
        flush(s);
        read_events(s);
    }
    h2o_timeout_link(hub->worker->loop, &hub->keepalive, &hub->keepalive_entry);
}

ota_events_t *ota__events_start(ota_worker_t *worker)
{
    ota_events_t *hub = calloc(1, sizeof *hub);
    if (hub == NULL)
        h2o_fatal("out of memory");
    hub->worker = worker;
    h2o_linklist_init_anchor(&hub->streams);
    hub->keepalive_entry.cb = on_keepalive;
    h2o_timeout_init(worker->loop, &hub->keepalive, OTA_EVENTS_KEEPALIVE_SECONDS * 1000);
    h2o_timeout_link(worker->loop, &hub->keepalive, &hub->keepalive_entry);
    ota__db_set_notify(worker->db, on_notify, hub);
    return hub;
}

void ota__events_stop(ota_events_t *hub)
{
    ota__db_set_notify(hub->worker->db, NULL, NULL);
    h2o_timeout_unlink(&hub->keepalive_entry);
    h2o_timeout_dispose(hub->worker->loop, &hub->keepalive);
    /* The hub itself stays (the worker keeps it): streams still open refer to it until the process exits. */
}

/* Last-Event-ID: a decimal event id to resume after, or -1 when absent or malformed. */
static int64_t last_event_id(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (i < 0)
        return -1;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    int64_t id = 0;
    if (v->len == 0 || v->len > 18)
        return -1;
    for (size_t k = 0; k < v->len; k++) {
        if (v->base[k] < '0' || v->base[k] > '9')
            return -1;
        id = id * 10 + (v->base[k] - '0');
    }
    return id;
}

static void start_stream(ota_call_t *call, int64_t cursor)
{
    h2o_req_t *req = call->req;
    ota_worker_t *worker = call->worker;
    stream_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        h2o_fatal("out of memory");
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    s->hub = worker->events;
    s->req = req;
    s->cursor = cursor;
    ota_text_heap(&s->pending, SIZE_MAX);
    ota_text_heap(&s->inflight, SIZE_MAX);
    stream_guard_t *g = h2o_mem_alloc_shared(&req->pool, sizeof *g, on_guard_dispose);
    g->s = s;
    h2o_linklist_insert(&s->hub->streams, &s->link);
    ota__call_free(call); /* the stream is not an API call: it is not waited for at shutdown */

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL, H2O_STRLIT("no"));
    h2o_start_response(req, &s->super);
    pend(s, "retry: 2000\n: connected\n\n");
    flush(s);
    read_events(s);
}

static void on_last_id(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    start_stream(call, strtoll(PQgetvalue(res, 0, OTA_EVENTS_LAST_COL_ID), NULL, 10));
}

void ota__events_subscribe(ota_call_t *call)
{
    int64_t resume = last_event_id(call->req);
    if (resume >= 0) {
        start_stream(call, resume);
        return;
    }
    /* A new stream starts at what happens from now on. */
    ota__call_query(call, OTA_STMT_EVENTS_LAST, NULL, on_last_id);
}
