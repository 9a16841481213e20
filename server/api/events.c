#include "api/events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/key_slots.h"
#include "core/secret.h"
#include "http/auth.h"
#include "http/respond.h"
#include "ota/text.h"

/*
 * Why events go out in (xid, id) order, and why no committed event is skipped.
 *
 * Event ids come from a sequence, taken when the row is inserted, long before
 * the transaction commits. Two transactions may commit in the other order
 * than their ids: T1 takes id 10, T2 takes id 11 and commits, a reader hands
 * out 11 and moves its cursor past it, then T1 commits 10 behind the cursor.
 * Resuming by id alone loses event 10 for good.
 *
 * The ways out: (1) number events at commit through one locked row: every
 * transition would queue on that row, in the heartbeat's transaction; (2)
 * hold back the ids after a gap until the gap's transaction is known to have
 * ended: PostgreSQL does not say which transaction holds an invisible id,
 * and a snapshot's xmax does not bound the ids of transactions still running;
 * (3) record each event's transaction id (xid8, `pg_current_xact_id()`) and
 * hand out only events of transactions older than the oldest one still
 * running, `pg_snapshot_xmin(pg_current_snapshot())`, in (xid, id) order.
 *
 * This is (3). Every transaction not finished when the reader's snapshot is
 * taken has an xid at or past that snapshot's xmin (or gets one later, which
 * is larger still), so every event that commits later sorts after all the
 * events handed out so far: the cursor (xid, id) never passes an event that
 * can still appear. The hot path pays nothing new but the column's default,
 * which reads the xid the transition's own write already took, and 8 more
 * bytes in the primary key, now (xid, id) instead of id (still appended near
 * the right edge, and still two indexes per event): no lock, no extra round
 * trip, no extra index (migrations/0003_event_xid.sql).
 *
 * The price is latency while an older transaction runs: an event waits until
 * every transaction that started writing before it has ended. The reader
 * then knows committed events are waiting (`held`) and reads again every
 * OTA_EVENTS_HOLD_RETRY_MS, since the older transaction may write no event
 * and so send no notification when it ends.
 */

typedef struct stream stream_t;

struct ota_events {
    ota_worker_t *worker;
    h2o_linklist_t streams;
    h2o_timeout_t keepalive;
    h2o_timeout_entry_t keepalive_entry;
    h2o_timeout_t hold; /* reads again the streams whose events wait behind a running transaction */
    h2o_timeout_entry_t hold_entry;
    h2o_timeout_t probe; /* looks for readers that have gone */
    h2o_timeout_entry_t probe_entry;
};

/*
 * One open stream. It lives in malloc'ed memory because a database read may
 * still be on its way when the client leaves; `req` and `reading` together
 * decide who frees it. The API key's slot is given back as soon as the
 * request goes.
 */
struct stream {
    h2o_generator_t super;
    h2o_linklist_t link;
    ota_events_t *hub;
    h2o_req_t *req; /* NULL once the client has gone */
    char key[OTA_SECRET_HASH_PG_LEN];
    uint64_t xid; /* the cursor: the last event sent, (xid, id) */
    int64_t id;
    bool reading;   /* a database read is in flight */
    bool sending;   /* h2o has `out` and has not asked for more */
    bool wanted;    /* there may be events to read: read when neither reading nor sending */
    bool held;      /* committed events wait behind an older transaction: read again soon */
    bool stalled;   /* was sending at the last keep-alive tick already */
    bool closing;   /* ended (the reader left or stopped reading): nothing more goes out */
    ota_text_t out; /* the text h2o is writing, or the next to write; at most OTA_EVENTS_BUFFER_MAX but for one event */
};

typedef struct stream_guard {
    stream_t *s;
} stream_guard_t;

/* The slot an API key holds while its subscription is on its way to becoming a stream. */
typedef struct pending_slot {
    char key[OTA_SECRET_HASH_PG_LEN];
} pending_slot_t;

static void stream_free_if_done(stream_t *s)
{
    if (s->req != NULL || s->reading)
        return;
    ota_text_free(&s->out);
    free(s);
}

static void read_events(stream_t *s);

/* Reads when there may be something to read and the last batch is out of our hands. */
static void pump(stream_t *s)
{
    if (s->req == NULL || s->closing || s->reading || s->sending || !s->wanted)
        return;
    s->wanted = false;
    read_events(s);
}

static void send_out(stream_t *s)
{
    if (s->out.err != OTA_OK)
        h2o_fatal("out of memory");
    if (s->out.len == 0)
        return;
    s->sending = true;
    s->stalled = false;
    h2o_iovec_t chunk = h2o_iovec_init(s->out.base, s->out.len);
    h2o_send(s->req, &chunk, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, super, self);
    (void)req;
    s->sending = false;
    s->stalled = false;
    ota_text_reset(&s->out);
    pump(s);
}

static void on_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req;
}

static h2o_socket_t *socket_of(stream_t *s)
{
    h2o_conn_t *conn = s->req->conn;
    return conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
}

/*
 * Ends a stream whose reader has left or stopped reading. h2o 2.2.5 has no
 * call to abort a response in the middle, so the socket is shut down under
 * it and h2o is made to write: the write fails, and h2o closes the
 * connection and frees the request (and with it the stream) its own way.
 * Linger 0 drops what the kernel still holds for the reader, too. Only
 * HTTP/1.1 is served, so the socket is this stream's alone. The stream may be
 * freed before this returns.
 */
static void end_stream(stream_t *s)
{
    h2o_socket_t *sock = socket_of(s);
    s->closing = true;
    if (sock == NULL)
        return;
    int fd = h2o_socket_get_fd(sock);
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    shutdown(fd, SHUT_RDWR);
    if (!s->sending) {
        ota_text_puts(&s->out, ": closed\n\n");
        send_out(s);
    }
}

/* True when the client has closed its side: h2o does not read the socket while a response streams, so a reader
 * that leaves is otherwise noticed only at the next write. */
static bool reader_left(stream_t *s)
{
    h2o_socket_t *sock = socket_of(s);
    char c;
    if (sock == NULL)
        return false;
    ssize_t n = recv(h2o_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The request's memory goes: the stream leaves the hub, gives back its key's slot, and is freed once no read is
 * pending. */
static void on_guard_dispose(void *p)
{
    stream_guard_t *g = p;
    stream_t *s = g->s;
    if (h2o_linklist_is_linked(&s->link))
        h2o_linklist_unlink(&s->link);
    ota__key_slots_give(s->key);
    s->req = NULL;
    stream_free_if_done(s);
}

static void hold_arm(ota_events_t *hub)
{
    if (!h2o_timeout_is_linked(&hub->hold_entry))
        h2o_timeout_link(hub->worker->loop, &hub->hold, &hub->hold_entry);
}

/* Appends one event unless the batch would pass the cap (a first event always goes); false when it did not fit. */
static bool append_event(stream_t *s, const PGresult *res, int row)
{
    size_t len = sizeof "id: -\nevent: \ndata: \n\n" - 1 + (size_t)PQgetlength(res, row, OTA_EVENT_COL_XID) +
                 (size_t)PQgetlength(res, row, OTA_EVENT_COL_ID) + (size_t)PQgetlength(res, row, OTA_EVENT_COL_KIND) +
                 (size_t)PQgetlength(res, row, OTA_EVENT_COL_JSON);
    if (s->out.len > 0 && s->out.len + len > OTA_EVENTS_BUFFER_MAX)
        return false;
    s->xid = strtoull(PQgetvalue(res, row, OTA_EVENT_COL_XID), NULL, 10);
    s->id = strtoll(PQgetvalue(res, row, OTA_EVENT_COL_ID), NULL, 10);
    ota_text_printf(&s->out, "id: %" PRIu64 "-%" PRId64 "\nevent: %s\ndata: %s\n\n", s->xid, s->id,
                    PQgetvalue(res, row, OTA_EVENT_COL_KIND), PQgetvalue(res, row, OTA_EVENT_COL_JSON));
    return true;
}

static void on_events(void *arg, const PGresult *res)
{
    stream_t *s = arg;
    s->reading = false;
    if (s->req == NULL) {
        stream_free_if_done(s);
        return;
    }
    if (s->closing)
        return;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
        s->wanted = true; /* the database is away: the next notification or keep-alive tick reads again */
        return;
    }
    if (PQgetvalue(res, 0, OTA_EVENT_COL_REVOKED)[0] == 't') {
        end_stream(s); /* its reader comes back with the same key and is refused (401) */
        return;
    }
    int rows = PQgetisnull(res, 0, OTA_EVENT_COL_XID) ? 0 : PQntuples(res), sent = 0;
    while (sent < rows && append_event(s, res, sent))
        sent++;
    if (sent < rows || rows == OTA_EVENTS_BATCH)
        s->wanted = true; /* more are there: read them once this batch is written */
    else if (PQgetvalue(res, 0, OTA_EVENT_COL_HELD)[0] == 't') {
        s->held = true;
        hold_arm(s->hub);
    }
    if (s->out.len > 0)
        send_out(s);
    else
        pump(s);
}

static void read_events(stream_t *s)
{
    char xid[24], id[24], limit[16];
    snprintf(xid, sizeof xid, "%" PRIu64, s->xid);
    snprintf(id, sizeof id, "%" PRId64, s->id);
    snprintf(limit, sizeof limit, "%d", OTA_EVENTS_BATCH);
    const char *params[] = {xid, id, limit, s->key};
    if (ota__db_query(s->hub->worker->db, OTA_STMT_EVENTS_SINCE, params, on_events, s) == OTA_OK)
        s->reading = true;
    else
        s->wanted = true; /* the connection is down: the keep-alive tick tries again */
}

/* Calls `fn` on every stream of the hub; `fn` may end (and free) the stream it is given. */
static void for_each_stream(ota_events_t *hub, void (*fn)(stream_t *s))
{
    for (h2o_linklist_t *l = hub->streams.next, *next; l != &hub->streams; l = next) {
        next = l->next;
        fn(H2O_STRUCT_FROM_MEMBER(stream_t, link, l));
    }
}

static void wake(stream_t *s)
{
    s->wanted = true;
    pump(s);
}

static void on_notify(void *arg, const char *payload)
{
    (void)payload;
    for_each_stream(arg, wake);
}

static void wake_if_held(stream_t *s)
{
    if (s->held) {
        s->held = false;
        wake(s);
    }
}

static void on_hold(h2o_timeout_entry_t *entry)
{
    for_each_stream(H2O_STRUCT_FROM_MEMBER(ota_events_t, hold_entry, entry), wake_if_held);
}

static void end_if_left(stream_t *s)
{
    if (!s->closing && reader_left(s))
        end_stream(s);
}

/* Frees the streams (and API key slots) of readers that have gone, within a second. */
static void on_probe(h2o_timeout_entry_t *entry)
{
    ota_events_t *hub = H2O_STRUCT_FROM_MEMBER(ota_events_t, probe_entry, entry);
    for_each_stream(hub, end_if_left);
    h2o_timeout_link(hub->worker->loop, &hub->probe, &hub->probe_entry);
}

/*
 * Keeps a proxy from closing an idle stream, catches it up in case a
 * notification was lost, and drops its reader when it took nothing since the
 * last tick while a batch waited for it.
 */
static void keep_alive(stream_t *s)
{
    s->wanted = true;
    if (s->closing || s->reading)
        return;
    if (s->sending) {
        if (s->stalled)
            end_stream(s);
        else
            s->stalled = true;
        return;
    }
    ota_text_puts(&s->out, ": keep-alive\n\n");
    send_out(s); /* the catch-up read follows once it is written */
}

static void on_keepalive(h2o_timeout_entry_t *entry)
{
    ota_events_t *hub = H2O_STRUCT_FROM_MEMBER(ota_events_t, keepalive_entry, entry);
    for_each_stream(hub, keep_alive);
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
    h2o_timeout_init(worker->loop, &hub->keepalive, (uint64_t)worker->cfg->events_keepalive_s * 1000);
    h2o_timeout_link(worker->loop, &hub->keepalive, &hub->keepalive_entry);
    hub->hold_entry.cb = on_hold;
    h2o_timeout_init(worker->loop, &hub->hold, OTA_EVENTS_HOLD_RETRY_MS);
    hub->probe_entry.cb = on_probe;
    h2o_timeout_init(worker->loop, &hub->probe, 1000);
    h2o_timeout_link(worker->loop, &hub->probe, &hub->probe_entry);
    ota__db_set_notify(worker->db, on_notify, hub);
    return hub;
}

void ota__events_stop(ota_events_t *hub)
{
    ota__db_set_notify(hub->worker->db, NULL, NULL);
    h2o_timeout_unlink(&hub->keepalive_entry);
    h2o_timeout_dispose(hub->worker->loop, &hub->keepalive);
    if (h2o_timeout_is_linked(&hub->hold_entry))
        h2o_timeout_unlink(&hub->hold_entry);
    h2o_timeout_dispose(hub->worker->loop, &hub->hold);
    h2o_timeout_unlink(&hub->probe_entry);
    h2o_timeout_dispose(hub->worker->loop, &hub->probe);
    /* The hub itself stays (the worker keeps it): streams still open refer to it until the process exits. */
}

/* Reads the decimal at [*p, end) up to `stop` (or the end) into *out; false when empty, too long or not a number. */
static bool parse_u64(const char **p, const char *end, char stop, uint64_t *out)
{
    uint64_t v = 0;
    const char *q = *p;
    for (; q < end && *q != stop; q++) {
        if (*q < '0' || *q > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    if (q == *p)
        return false;
    *p = q;
    *out = v;
    return true;
}

/* Last-Event-ID: "<xid>-<event id>" as sent, or "0" for the first event; false when absent or malformed. */
static bool last_event_id(h2o_req_t *req, uint64_t *xid, int64_t *id)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (i < 0)
        return false;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    const char *p = v->base, *end = v->base + v->len;
    uint64_t x, n;
    if (!parse_u64(&p, end, '-', &x))
        return false;
    if (p == end && x == 0) {
        *xid = 0;
        *id = 0;
        return true;
    }
    if (p == end || *p++ != '-' || !parse_u64(&p, end, '\0', &n) || n > INT64_MAX)
        return false;
    *xid = x;
    *id = (int64_t)n;
    return true;
}

static void give_pending_slot(void *state)
{
    pending_slot_t *slot = state;
    ota__key_slots_give(slot->key);
    free(slot);
}

static void start_stream(ota_call_t *call, uint64_t xid, int64_t id)
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
    s->xid = xid;
    s->id = id;
    s->wanted = true;
    ota_text_heap(&s->out, SIZE_MAX);
    pending_slot_t *slot = call->state;
    memcpy(s->key, slot->key, sizeof s->key);
    call->state_free = free; /* the slot is the stream's now; the guard gives it back */
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
    ota_text_puts(&s->out, "retry: 2000\n: connected\n\n");
    send_out(s); /* the first read follows once it is written */
}

static void on_last_id(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    /* From the oldest running transaction on: (xmin, 0) sorts before every event of it and of later ones. */
    start_stream(call, strtoull(PQgetvalue(res, 0, OTA_EVENTS_LAST_COL_XID), NULL, 10), 0);
}

void ota__events_subscribe(ota_call_t *call)
{
    char secret[OTA_SECRET_MAX];
    pending_slot_t *slot = calloc(1, sizeof *slot);
    if (slot == NULL)
        h2o_fatal("out of memory");
    if (ota__auth_bearer(call->req, secret)) /* authenticated: always there */
        ota__secret_hash_pg(secret, strlen(secret), slot->key);
    if (!ota__key_slots_take(slot->key, OTA_EVENTS_STREAMS_PER_KEY)) {
        free(slot);
        char *retry = h2o_mem_alloc_pool(&call->req->pool, 12);
        int len = snprintf(retry, 12, "%d", call->worker->cfg->events_keepalive_s);
        h2o_add_header(&call->req->pool, &call->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, retry, (size_t)len);
        ota__respond_error(call, 429, "rate_limited", NULL, "this API key has %d event streams open here already",
                           OTA_EVENTS_STREAMS_PER_KEY);
        return;
    }
    call->state = slot;
    call->state_free = give_pending_slot;
    uint64_t xid;
    int64_t id;
    if (last_event_id(call->req, &xid, &id)) {
        start_stream(call, xid, id);
        return;
    }
    /* A new stream starts at what happens from now on. */
    ota__call_query(call, OTA_STMT_EVENTS_LAST, NULL, on_last_id);
}
