#include "heartbeat/sweeper.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

struct ota_sweeper {
    ota_worker_t *worker;
    h2o_timeout_t timeout; /* our own, not in a request's pool: the loop links it, freeing it there crashes */
    h2o_timeout_entry_t entry;
    int in_flight; /* the sweeper is freed only once its query has answered */
    int stopped;
};

static void on_swept(void *arg, const PGresult *res)
{
    ota_sweeper_t *s = arg;
    s->in_flight = 0;
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *n = PQgetvalue(res, 0, OTA_COL_ONLY);
        if (n[0] != '0')
            ota_log_info("apply timeout: %s delivered assignments failed", n);
    }
    if (s->stopped)
        free(s);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ota_sweeper_t *s = H2O_STRUCT_FROM_MEMBER(ota_sweeper_t, entry, entry);
    const char *params[] = {s->worker->cfg->apply_timeout_text};
    if (!s->in_flight && ota__db_ready(s->worker->db) &&
        ota__db_query(s->worker->db, OTA_STMT_EXPIRE_DELIVERIES, params, on_swept, s) == OTA_OK)
        s->in_flight = 1;
    h2o_timeout_link(s->worker->loop, &s->timeout, &s->entry);
}

ota_sweeper_t *ota__sweeper_start(ota_worker_t *worker)
{
    ota_sweeper_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        h2o_fatal("out of memory");
    s->worker = worker;
    s->entry.cb = on_tick;
    h2o_timeout_init(worker->loop, &s->timeout, OTA_SWEEP_SECONDS * 1000);
    h2o_timeout_link(worker->loop, &s->timeout, &s->entry);
    return s;
}

void ota__sweeper_stop(ota_sweeper_t *s)
{
    h2o_timeout_unlink(&s->entry);
    h2o_timeout_dispose(s->worker->loop, &s->timeout);
    s->stopped = 1;
    if (!s->in_flight)
        free(s);
}
