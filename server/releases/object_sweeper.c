#include "releases/object_sweeper.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/log.h"

/* Instances look for their turn at least this often, whatever the interval. */
#define TICK_MAX_S 60
/* Keys asked about in one statement. */
#define CHECK_BATCH 500
/* How long stopping waits for a sweep under way. */
#define STOP_WAIT_MS 10000

static const char *const PREFIXES[] = {"releases/", "uploads/"};

struct ota_object_sweeper {
    ota_job_t job; /* first: the list and delete jobs */
    ota_worker_t *worker;
    h2o_timeout_t timeout; /* our own: the loop links it */
    h2o_timeout_entry_t entry;
    int busy;    /* a sweep is under way: a query or a job is out */
    int stopped; /* freed when the sweep under way ends */
    time_t cutoff;
    json_t *candidates; /* keys older than the grace period */
    size_t checked;     /* how many of them the database has judged */
    json_t *unused;     /* keys to delete */
    size_t removed, failed;
    char err[256];
};

static void finish(ota_object_sweeper_t *s)
{
    json_decref(s->candidates);
    json_decref(s->unused);
    s->candidates = s->unused = NULL;
    s->busy = 0;
    if (s->stopped)
        free(s);
}

/* --- deleting (job thread) --- */

static void delete_run(ota_job_t *job)
{
    ota_object_sweeper_t *s = (ota_object_sweeper_t *)job;
    size_t i;
    json_t *key;
    json_array_foreach(s->unused, i, key)
    {
        char err[256];
        if (ota__storage_delete(s->worker->storage, json_string_value(key), err, sizeof err) == OTA_OK) {
            s->removed++;
        } else {
            s->failed++;
            snprintf(s->err, sizeof s->err, "%s", err);
        }
    }
}

static void delete_done(ota_job_t *job)
{
    ota_object_sweeper_t *s = (ota_object_sweeper_t *)job;
    if (s->removed > 0 || s->failed > 0)
        ota_log_info("object sweep: %zu unused objects removed, %zu failed%s%s", s->removed, s->failed,
                     s->failed > 0 ? ": " : "", s->failed > 0 ? s->err : "");
    finish(s);
}

/* --- asking the database (loop) --- */

static void check_next(ota_object_sweeper_t *s);

static void on_unused(void *arg, const PGresult *res)
{
    ota_object_sweeper_t *s = arg;
    if (s->stopped || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (!s->stopped)
            ota_log_warn("object sweep: the database did not answer; the next sweep tries again");
        finish(s);
        return;
    }
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(s->unused, json_string(PQgetvalue(res, r, OTA_COL_ONLY)));
    check_next(s);
}

static void check_next(ota_object_sweeper_t *s)
{
    size_t total = json_array_size(s->candidates);
    if (s->checked >= total) {
        if (json_array_size(s->unused) == 0) {
            finish(s);
            return;
        }
        s->job.run = delete_run;
        s->job.done = delete_done;
        ota__jobs_submit(s->worker->jobs, &s->job, &s->worker->jobs_done);
        return;
    }
    json_t *batch = json_array();
    for (size_t i = s->checked; i < total && i < s->checked + CHECK_BATCH; i++)
        json_array_append(batch, json_array_get(s->candidates, i));
    s->checked += json_array_size(batch);
    char *text = json_dumps(batch, JSON_COMPACT);
    json_decref(batch);
    char grace[16];
    snprintf(grace, sizeof grace, "%d", s->worker->cfg->gc_grace);
    const char *params[] = {text, grace};
    ota_err_t rc =
        text != NULL ? ota__db_query(s->worker->side_db, OTA_STMT_OBJECTS_UNUSED, params, on_unused, s) : OTA_ERR_NOMEM;
    free(text);
    if (rc != OTA_OK)
        finish(s);
}

/* --- listing (job thread) --- */

static int on_object(const char *key, uint64_t size, time_t modified, void *arg)
{
    ota_object_sweeper_t *s = arg;
    (void)size;
    if (modified < s->cutoff)
        json_array_append_new(s->candidates, json_string(key));
    return 0;
}

static void list_run(ota_job_t *job)
{
    ota_object_sweeper_t *s = (ota_object_sweeper_t *)job;
    for (size_t i = 0; i < sizeof PREFIXES / sizeof PREFIXES[0]; i++) {
        if (ota__storage_list(s->worker->storage, PREFIXES[i], on_object, s, s->err, sizeof s->err) != OTA_OK) {
            json_array_clear(s->candidates); /* judge nothing on a partial listing */
            ota_log_warn("object sweep: cannot list %s: %s", PREFIXES[i], s->err);
            return;
        }
    }
}

static void list_done(ota_job_t *job)
{
    ota_object_sweeper_t *s = (ota_object_sweeper_t *)job;
    if (s->stopped) {
        finish(s);
        return;
    }
    check_next(s);
}

/* --- the turn (loop) --- */

static void on_taken(void *arg, const PGresult *res)
{
    ota_object_sweeper_t *s = arg;
    if (s->stopped || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        finish(s);
        return;
    }
    s->cutoff = time(NULL) - s->worker->cfg->gc_grace;
    s->candidates = json_array();
    s->unused = json_array();
    s->checked = s->removed = s->failed = 0;
    if (s->candidates == NULL || s->unused == NULL)
        h2o_fatal("out of memory");
    s->job.run = list_run;
    s->job.done = list_done;
    ota__jobs_submit(s->worker->jobs, &s->job, &s->worker->jobs_done);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ota_object_sweeper_t *s = H2O_STRUCT_FROM_MEMBER(ota_object_sweeper_t, entry, entry);
    const ota_config_t *cfg = s->worker->cfg;
    char interval[16], grace[16];
    snprintf(interval, sizeof interval, "%d", cfg->gc_interval);
    snprintf(grace, sizeof grace, "%d", cfg->gc_grace);
    const char *params[] = {interval, grace};
    if (!s->busy && ota__db_ready(s->worker->db) &&
        ota__db_query(s->worker->db, OTA_STMT_OBJECT_SWEEP_TAKE, params, on_taken, s) == OTA_OK)
        s->busy = 1;
    h2o_timeout_link(s->worker->loop, &s->timeout, &s->entry);
}

ota_object_sweeper_t *ota__object_sweeper_start(ota_worker_t *worker)
{
    if (worker->cfg->gc_interval == 0)
        return NULL;
    ota_object_sweeper_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        h2o_fatal("out of memory");
    s->worker = worker;
    s->entry.cb = on_tick;
    int tick = worker->cfg->gc_interval < TICK_MAX_S ? worker->cfg->gc_interval : TICK_MAX_S;
    h2o_timeout_init(worker->loop, &s->timeout, (uint64_t)tick * 1000);
    h2o_timeout_link(worker->loop, &s->timeout, &s->entry);
    return s;
}

void ota__object_sweeper_stop(ota_object_sweeper_t *s)
{
    if (s == NULL)
        return;
    h2o_timeout_unlink(&s->entry);
    for (int waited = 0; s->busy && waited < STOP_WAIT_MS; waited += 100)
        h2o_evloop_run(s->worker->loop, 100);
    h2o_timeout_dispose(s->worker->loop, &s->timeout);
    s->stopped = 1;
    if (!s->busy)
        free(s);
}
