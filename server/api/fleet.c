#include "api/api.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/fleet_snapshot.h"
#include "core/jobs.h"
#include "core/log.h"
#include "http/query.h"
#include "http/respond.h"

/*
 * GET /v1/fleet: the fleet's numbers for dashboards, answered from one
 * snapshot that the whole process shares (api/fleet_snapshot.h) and makes
 * again at most every OTA_FLEET_CACHE_MS (10 s by default), so no request
 * ever counts the fleet itself. The count (one grouped scan of the devices,
 * about 0.3 s at a million) runs on the side connection of the thread whose
 * request found the snapshot too old. Requests that come meanwhile, on any
 * thread, wait for that count instead of starting another; when it ends each
 * is handed back to its own thread (ota__jobs_reply) and answered there.
 */

/* A request waiting for a snapshot; the call's state. */
typedef struct waiter {
    ota_job_t job; /* first: how the end of a count reaches the request's own thread */
    h2o_multithread_receiver_t *reply_to;
    ota_call_t *call;
    char model[OTA_QUERY_VALUE_MAX];
    bool has_model;
    ota_fleet_snapshot_t *snapshot; /* what the request is answered from; NULL when the count failed */
    struct waiter *next;
} waiter_t;

static struct {
    pthread_mutex_t lock;
    ota_fleet_snapshot_t *current; /* NULL until the first count */
    uint64_t counted_at_ms;        /* when the count of `current` started */
    bool counting;
    waiter_t *waiters; /* requests waiting for the count under way */
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A count under way. */
typedef struct count {
    time_t as_of;
    uint64_t started_ms;
} count_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void waiter_free(void *p)
{
    waiter_t *w = p;
    ota__fleet_snapshot_release(w->snapshot);
    free(w);
}

static void answer(waiter_t *w)
{
    char *text = ota__fleet_snapshot_answer(w->snapshot, w->has_model ? w->model : NULL);
    ota__respond_json_text(w->call, 200, text, strlen(text));
    free(text);
}

/* On the request's own thread, once the count it waited for has ended. */
static void on_counted(ota_job_t *job)
{
    waiter_t *w = (waiter_t *)job;
    if (ota__call_gone(w->call))
        ota__call_free(w->call);
    else if (w->snapshot == NULL)
        ota__respond_unavailable(w->call, "the fleet could not be counted");
    else
        answer(w);
}

/* Keeps what was counted (`res` NULL or an error: nothing) and hands it to every request waiting for it. */
static void on_counts(void *arg, const PGresult *res)
{
    count_t *c = arg;
    ota_fleet_snapshot_t *made = NULL;
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
        made = ota__fleet_snapshot_new(res, c->as_of);
    else if (res != NULL)
        ota_log_error("fleet counts: %s", PQresultErrorMessage(res));

    pthread_mutex_lock(&cache.lock);
    if (made != NULL) {
        ota__fleet_snapshot_release(cache.current);
        cache.current = made;
        cache.counted_at_ms = c->started_ms;
    }
    waiter_t *waiters = cache.waiters;
    cache.waiters = NULL;
    cache.counting = false;
    /* Held under the lock: once it is released, the next count may replace (and release) `made`. */
    for (waiter_t *w = waiters; w != NULL && made != NULL; w = w->next) {
        ota__fleet_snapshot_hold(made);
        w->snapshot = made;
    }
    pthread_mutex_unlock(&cache.lock);

    while (waiters != NULL) {
        waiter_t *next = waiters->next;
        ota__jobs_reply(&waiters->job, waiters->reply_to); /* `waiters` is its thread's from here on */
        waiters = next;
    }
    free(c);
}

static void start_count(ota_worker_t *worker, uint64_t now)
{
    count_t *c = malloc(sizeof *c);
    if (c == NULL)
        h2o_fatal("out of memory");
    c->as_of = time(NULL);
    c->started_ms = now;
    if (ota__db_query(worker->side_db, OTA_STMT_FLEET_COUNTS, NULL, on_counts, c) != OTA_OK)
        on_counts(c, NULL);
}

void ota__api_fleet(ota_call_t *call)
{
    ota_worker_t *worker = call->worker;
    waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        h2o_fatal("out of memory");
    w->call = call;
    w->job.done = on_counted;
    w->reply_to = &worker->jobs_done;
    call->state = w;
    call->state_free = waiter_free;
    if (!ota__query_param(call, "model", w->model, &w->has_model))
        return;

    uint64_t now = now_ms();
    bool fresh, start = false;
    pthread_mutex_lock(&cache.lock);
    fresh = cache.current != NULL && now - cache.counted_at_ms < (uint64_t)worker->cfg->fleet_cache_ms;
    if (fresh) {
        ota__fleet_snapshot_hold(cache.current);
        w->snapshot = cache.current;
    } else {
        w->next = cache.waiters;
        cache.waiters = w;
        start = !cache.counting;
        cache.counting = true;
    }
    pthread_mutex_unlock(&cache.lock);
    /* A waiting request is the count's from here on: on_counted answers it. */
    if (fresh)
        answer(w);
    else if (start)
        start_count(worker, now);
}
