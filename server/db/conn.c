#include "db/conn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/log.h"

#define QUEUE_MAX 8192
#define TICK_MS 1000
#define CONNECT_TIMEOUT_MS 10000
/* A query unanswered this long past the statement timeout means the peer is gone. */
#define DEAD_PEER_MARGIN_MS 5000
#define NO_STATEMENT_TIMEOUT_LIMIT_MS 60000

typedef enum { DB_DOWN, DB_CONNECTING, DB_SETTING_UP, DB_READY } db_state_t;

/* One query sent and not yet answered. */
typedef struct waiter {
    ota_db_cb cb; /* NULL for the connection's own setup batch */
    void *arg;
    PGresult *res; /* the query's result; an error wins over others */
    uint64_t sent_at;
} waiter_t;

struct ota_db {
    h2o_loop_t *loop;
    const ota_config_t *cfg;
    PGconn *conn;
    h2o_socket_t *sock; /* wraps a dup() of PQsocket: h2o closes what it owns */
    db_state_t state;
    bool write_armed;
    bool outage_logged;
    uint64_t connect_started_at;
    waiter_t *ring;
    size_t cap, head, count;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    bool listen;                /* LISTEN ota_events from the setup on */
    int statement_timeout_ms;   /* this connection's statement_timeout (0: none) */
    ota_db_notify_cb notify_cb; /* NOTIFY on channel ota_events */
    void *notify_arg;
};

static void on_connect_io(h2o_socket_t *sock, const char *err);
static void on_readable(h2o_socket_t *sock, const char *err);

/* --- the FIFO of waiting queries --- */

static bool push_waiter(ota_db_t *db, ota_db_cb cb, void *arg)
{
    if (db->count == db->cap) {
        size_t cap = db->cap ? db->cap * 2 : 64;
        waiter_t *ring = malloc(cap * sizeof(*ring));
        if (ring == NULL)
            return false;
        for (size_t i = 0; i < db->count; i++)
            ring[i] = db->ring[(db->head + i) % db->cap];
        free(db->ring);
        db->ring = ring;
        db->cap = cap;
        db->head = 0;
    }
    waiter_t *w = &db->ring[(db->head + db->count) % db->cap];
    *w = (waiter_t){cb, arg, NULL, h2o_now(db->loop)};
    db->count++;
    return true;
}

static waiter_t pop_waiter(ota_db_t *db)
{
    waiter_t w = db->ring[db->head];
    db->head = (db->head + 1) % db->cap;
    db->count--;
    return w;
}

/* --- socket wrapper --- */

static void close_socket(ota_db_t *db)
{
    if (db->sock != NULL) {
        h2o_socket_close(db->sock);
        db->sock = NULL;
    }
    db->write_armed = false;
}

static bool wrap_socket(ota_db_t *db)
{
    close_socket(db);
    int fd = dup(PQsocket(db->conn));
    if (fd < 0)
        return false;
    db->sock = h2o_evloop_socket_create(db->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    db->sock->data = db;
    return true;
}

/* --- losing and regaining the connection --- */

static void connection_lost(ota_db_t *db, const char *why)
{
    if (!db->outage_logged)
        ota_log_warn("database connection lost: %s", why);
    db->outage_logged = true;
    close_socket(db);
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = NULL;
    db->state = DB_DOWN;
    while (db->count > 0) {
        waiter_t w = pop_waiter(db);
        PQclear(w.res);
        if (w.cb != NULL)
            w.cb(w.arg, NULL);
    }
}

static void lost_with_libpq_error(ota_db_t *db)
{
    char why[256];
    snprintf(why, sizeof(why), "%s", db->conn ? PQerrorMessage(db->conn) : "no connection");
    why[strcspn(why, "\n")] = '\0';
    connection_lost(db, why);
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    ota_log_debug("database notice: %s", message);
}

static void start_connect(ota_db_t *db)
{
    /* application_name first, so that one given in OTA_DATABASE_URL wins. */
    const char *keys[] = {"application_name", "dbname", NULL};
    const char *values[] = {"ota-server", db->cfg->database_url, NULL};
    db->conn = PQconnectStartParams(keys, values, 1);
    db->connect_started_at = h2o_now(db->loop);
    if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD) {
        lost_with_libpq_error(db);
        return;
    }
    PQsetNoticeProcessor(db->conn, on_notice, db);
    db->state = DB_CONNECTING;
    /* libpq's protocol: behave as if PQconnectPoll had said "writing" first. */
    if (!wrap_socket(db)) {
        connection_lost(db, "dup() failed");
        return;
    }
    db->write_armed = true;
    h2o_socket_notify_write(db->sock, on_connect_io);
}

static void send_setup(ota_db_t *db)
{
    char timeout[32], interval[32];
    snprintf(timeout, sizeof(timeout), "%d", db->statement_timeout_ms);
    snprintf(interval, sizeof(interval), "%d", db->cfg->heartbeat_interval);
    const char *params[] = {timeout, interval};
    bool ok = PQsendQueryParams(db->conn,
                                "SELECT set_config('statement_timeout', $1, false), "
                                "set_config('bytea_output', 'hex', false), "
                                "set_config('ota.heartbeat_interval', $2, false)",
                                2, NULL, params, NULL, NULL, 0);
    /* Assignment transitions from every instance (ota_assignment_transition() notifies), for GET /v1/events. */
    if (db->listen)
        ok = ok && PQsendQueryParams(db->conn, "LISTEN ota_events", 0, NULL, NULL, NULL, NULL, 0);
    for (int i = 0; ok && i < OTA_STMT_COUNT; i++) {
        const ota_stmt_def_t *def = ota__stmt_def((ota_stmt_t)i);
        ok = PQsendPrepare(db->conn, def->name, def->sql, def->nparams, NULL);
    }
    if (!ok || !PQpipelineSync(db->conn) || !push_waiter(db, NULL, NULL)) {
        lost_with_libpq_error(db);
        return;
    }
    db->state = DB_SETTING_UP;
}

static void on_connected(ota_db_t *db)
{
    if (PQsetnonblocking(db->conn, 1) != 0 || PQenterPipelineMode(db->conn) != 1 || !wrap_socket(db)) {
        lost_with_libpq_error(db);
        return;
    }
    h2o_socket_read_start(db->sock, on_readable);
    send_setup(db);
}

static void setup_done(ota_db_t *db, const PGresult *res)
{
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota_log_error("database session setup failed: %s", res ? PQresultErrorMessage(res) : "no result");
        connection_lost(db, "session setup failed");
        return;
    }
    db->state = DB_READY;
    db->outage_logged = false;
    ota_log_info("database connected");
}

static void poll_connect(ota_db_t *db)
{
    /* libpq may switch sockets while connecting (another host, SSL retry), so re-wrap every step. */
    switch (PQconnectPoll(db->conn)) {
    case PGRES_POLLING_READING:
        if (!wrap_socket(db))
            goto Failed;
        h2o_socket_read_start(db->sock, on_connect_io);
        return;
    case PGRES_POLLING_WRITING:
        if (!wrap_socket(db))
            goto Failed;
        db->write_armed = true;
        h2o_socket_notify_write(db->sock, on_connect_io);
        return;
    case PGRES_POLLING_OK:
        on_connected(db);
        return;
    default:
        break;
    }
Failed:
    lost_with_libpq_error(db);
}

static void on_connect_io(h2o_socket_t *sock, const char *err)
{
    ota_db_t *db = sock->data;
    db->write_armed = false;
    if (err != NULL) {
        lost_with_libpq_error(db);
        return;
    }
    poll_connect(db);
}

/* --- sending and receiving --- */

static bool flush(ota_db_t *db);

static void on_writable(h2o_socket_t *sock, const char *err)
{
    ota_db_t *db = sock->data;
    db->write_armed = false;
    if (err != NULL || !flush(db))
        lost_with_libpq_error(db);
}

/* Sends what libpq has buffered, as much as the socket takes now; false when the connection failed. */
static bool flush(ota_db_t *db)
{
    int rc = PQflush(db->conn);
    if (rc < 0)
        return false;
    if (rc == 1 && !db->write_armed) {
        db->write_armed = true;
        h2o_socket_notify_write(db->sock, on_writable);
    }
    return true;
}

static bool is_error(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || st == PGRES_BAD_RESPONSE;
}

static void keep_result(waiter_t *w, PGresult *res)
{
    if (w->res == NULL || (is_error(res) && !is_error(w->res))) {
        PQclear(w->res);
        w->res = res;
    } else {
        PQclear(res);
    }
}

static void complete_head(ota_db_t *db)
{
    waiter_t w = pop_waiter(db);
    if (w.cb != NULL)
        w.cb(w.arg, w.res);
    else
        setup_done(db, w.res);
    PQclear(w.res);
}

/*
 * Each query's answer is its results, a NULL, then the PIPELINE_SYNC of its
 * own sync point; the sync completes the waiter at the head of the FIFO.
 */
static void drain_results(ota_db_t *db)
{
    int nulls = 0;
    while (db->conn != NULL && db->count > 0 && nulls < 2 && !PQisBusy(db->conn)) {
        PGresult *res = PQgetResult(db->conn);
        if (res == NULL) {
            nulls++;
            continue;
        }
        nulls = 0;
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            complete_head(db);
        } else {
            keep_result(&db->ring[db->head], res);
        }
    }
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    ota_db_t *db = sock->data;
    if (err != NULL || !PQconsumeInput(db->conn)) {
        lost_with_libpq_error(db);
        return;
    }
    drain_results(db);
    if (db->conn == NULL)
        return;
    PGnotify *n;
    while ((n = PQnotifies(db->conn)) != NULL) {
        if (db->notify_cb != NULL)
            db->notify_cb(db->notify_arg, n->extra);
        PQfreemem(n);
    }
    if (PQstatus(db->conn) == CONNECTION_BAD) {
        lost_with_libpq_error(db);
        return;
    }
    if (db->write_armed == false && PQisnonblocking(db->conn) && !flush(db))
        lost_with_libpq_error(db);
}

ota_err_t ota__db_query(ota_db_t *db, ota_stmt_t stmt, const char *const *params, ota_db_cb cb, void *arg)
{
    const ota_stmt_def_t *def = ota__stmt_def(stmt);
    if (db->state != DB_READY || db->count >= QUEUE_MAX || def == NULL)
        return OTA_ERR_UNAVAILABLE;
    if (!PQsendQueryPrepared(db->conn, def->name, def->nparams, params, NULL, NULL, 0) ||
        !PQpipelineSync(db->conn) || !push_waiter(db, cb, arg)) {
        lost_with_libpq_error(db);
        return OTA_ERR_UNAVAILABLE;
    }
    if (!flush(db)) {
        /* The caller hears OTA_ERR_UNAVAILABLE now, never its callback: the waiter just pushed (the last) goes
           before the others are told the connection is lost. */
        db->count--;
        lost_with_libpq_error(db);
        return OTA_ERR_UNAVAILABLE;
    }
    return OTA_OK;
}

/* --- the one-second tick: reconnect, connect timeout, dead peer --- */

static uint64_t dead_peer_limit_ms(const ota_db_t *db)
{
    int t = db->statement_timeout_ms;
    return (uint64_t)(t > 0 ? t : NO_STATEMENT_TIMEOUT_LIMIT_MS) + DEAD_PEER_MARGIN_MS;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ota_db_t *db = H2O_STRUCT_FROM_MEMBER(ota_db_t, tick_entry, entry);
    uint64_t now = h2o_now(db->loop);
    if (db->state == DB_DOWN) {
        start_connect(db);
    } else if (db->state != DB_READY && now - db->connect_started_at > CONNECT_TIMEOUT_MS) {
        connection_lost(db, "connect timed out");
    } else if (db->count > 0 && now - db->ring[db->head].sent_at > dead_peer_limit_ms(db)) {
        connection_lost(db, "no answer within the statement timeout");
    }
    h2o_timeout_link(db->loop, &db->tick, &db->tick_entry);
}

/* --- life cycle --- */

ota_db_t *ota__db_create(h2o_loop_t *loop, const ota_config_t *cfg, bool listen, int statement_timeout_ms)
{
    ota_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return NULL;
    db->loop = loop;
    db->cfg = cfg;
    db->listen = listen;
    db->statement_timeout_ms = statement_timeout_ms;
    db->state = DB_DOWN;
    h2o_timeout_init(loop, &db->tick, TICK_MS);
    db->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &db->tick, &db->tick_entry);
    start_connect(db);
    return db;
}

void ota__db_destroy(ota_db_t *db)
{
    if (db == NULL)
        return;
    db->outage_logged = true; /* a deliberate close is not an outage */
    connection_lost(db, "closing");
    h2o_timeout_unlink(&db->tick_entry);
    h2o_timeout_dispose(db->loop, &db->tick);
    free(db->ring);
    free(db);
}

void ota__db_set_notify(ota_db_t *db, ota_db_notify_cb cb, void *arg)
{
    db->notify_cb = cb;
    db->notify_arg = arg;
}

bool ota__db_ready(const ota_db_t *db)
{
    return db->state == DB_READY;
}

size_t ota__db_in_flight(const ota_db_t *db)
{
    return db->count;
}
