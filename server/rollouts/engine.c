#include "rollouts/engine.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

struct ota_rollout_engine {
    ota_worker_t *worker;
    ota_db_t *db; /* the engine's own connection */
    h2o_timeout_t idle;
    h2o_timeout_entry_t entry;
    h2o_timeout_t now; /* zero delay: the next tick at once, from the loop rather than from a callback */
    h2o_timeout_entry_t now_entry;
    int in_flight;
    int stopped;
};

static void tick(ota_rollout_engine_t *e);

static void destroy(ota_rollout_engine_t *e)
{
    ota__db_destroy(e->db);
    free(e);
}

static void on_ticked(void *arg, const PGresult *res)
{
    ota_rollout_engine_t *e = arg;
    long done = 0;
    e->in_flight = 0;
    if (e->stopped) {
        return; /* ota__rollout_engine_stop frees it once the connection has let go */
    }
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        done = strtol(PQgetvalue(res, 0, OTA_COL_ONLY), NULL, 10);
    else if (res != NULL)
        ota_log_warn("rollout engine: %s", PQresultErrorMessage(res));
    if (done > 0)
        h2o_timeout_link(e->worker->loop, &e->now, &e->now_entry);
    else
        h2o_timeout_link(e->worker->loop, &e->idle, &e->entry);
}

static void tick(ota_rollout_engine_t *e)
{
    const char *params[] = {OTA_ROLLOUT_BATCH};
    if (!e->in_flight && ota__db_ready(e->db) &&
        ota__db_query(e->db, OTA_STMT_ROLLOUT_TICK, params, on_ticked, e) == OTA_OK) {
        e->in_flight = 1;
        return;
    }
    h2o_timeout_link(e->worker->loop, &e->idle, &e->entry); /* not connected (yet): try again later */
}

static void on_idle_over(h2o_timeout_entry_t *entry)
{
    tick(H2O_STRUCT_FROM_MEMBER(ota_rollout_engine_t, entry, entry));
}

static void on_now(h2o_timeout_entry_t *entry)
{
    tick(H2O_STRUCT_FROM_MEMBER(ota_rollout_engine_t, now_entry, entry));
}

ota_rollout_engine_t *ota__rollout_engine_start(ota_worker_t *worker)
{
    ota_rollout_engine_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        h2o_fatal("out of memory");
    e->worker = worker;
    e->db = ota__db_create(worker->loop, worker->cfg, false, worker->cfg->db_statement_timeout_ms);
    if (e->db == NULL)
        h2o_fatal("out of memory");
    e->entry.cb = on_idle_over;
    e->now_entry.cb = on_now;
    h2o_timeout_init(worker->loop, &e->idle, (uint64_t)worker->cfg->rollout_tick_ms);
    h2o_timeout_init(worker->loop, &e->now, 0);
    h2o_timeout_link(worker->loop, &e->idle, &e->entry);
    return e;
}

void ota__rollout_engine_stop(ota_rollout_engine_t *e)
{
    if (h2o_timeout_is_linked(&e->entry))
        h2o_timeout_unlink(&e->entry);
    if (h2o_timeout_is_linked(&e->now_entry))
        h2o_timeout_unlink(&e->now_entry);
    h2o_timeout_dispose(e->worker->loop, &e->idle);
    h2o_timeout_dispose(e->worker->loop, &e->now);
    e->stopped = 1;
    /* Destroying the connection calls a tick in flight back with NULL, which sees `stopped`. */
    destroy(e);
}
