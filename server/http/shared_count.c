#include "http/shared_count.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "core/jobs.h"
#include "core/log.h"
#include "http/worker.h"

struct ota_shared_value {
    atomic_int refs;
    void *value;
    void (*free_value)(void *value);
};

/* A request waiting for a value. */
struct ota_shared_waiter {
    ota_job_t job; /* first: how the end of a query reaches the request's own thread */
    h2o_multithread_receiver_t *reply_to;
    ota_call_t *call;
    void (*answer)(ota_call_t *call, const void *value);
    ota_shared_value_t *value; /* held; NULL when the query failed */
    ota_shared_waiter_t *next;
};

/* A query under way. */
typedef struct query {
    ota_shared_count_t *count;
    time_t as_of;
    uint64_t started_ms;
} query_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void hold(ota_shared_value_t *v)
{
    atomic_fetch_add(&v->refs, 1);
}

static void release(ota_shared_value_t *v)
{
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    v->free_value(v->value);
    free(v);
}

static void answer_and_free(ota_shared_waiter_t *w)
{
    if (ota__call_gone(w->call))
        ota__call_free(w->call);
    else
        w->answer(w->call, w->value != NULL ? w->value->value : NULL);
    release(w->value);
    free(w);
}

/* On the request's own thread, once the query it waited for has ended. */
static void on_counted(ota_job_t *job)
{
    answer_and_free((ota_shared_waiter_t *)job);
}

/* Keeps what was counted (`res` NULL or an error: nothing) and hands it to every request waiting for it. */
static void on_rows(void *arg, const PGresult *res)
{
    query_t *q = arg;
    ota_shared_count_t *count = q->count;
    ota_shared_value_t *made = NULL;
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        if ((made = malloc(sizeof *made)) == NULL)
            h2o_fatal("out of memory");
        atomic_init(&made->refs, 1);
        made->value = count->make(res, q->as_of);
        made->free_value = count->free_value;
    } else if (res != NULL) {
        ota_log_error("%s: %s", ota__stmt_def(count->stmt)->name, PQresultErrorMessage(res));
    }

    pthread_mutex_lock(&count->lock);
    if (made != NULL) {
        release(count->current);
        count->current = made;
        count->counted_at_ms = q->started_ms;
    }
    ota_shared_waiter_t *waiters = count->waiters;
    count->waiters = NULL;
    count->counting = false;
    /* Held under the lock: once it is released, the next query may replace (and release) `made`. */
    for (ota_shared_waiter_t *w = waiters; w != NULL && made != NULL; w = w->next) {
        hold(made);
        w->value = made;
    }
    pthread_mutex_unlock(&count->lock);

    while (waiters != NULL) {
        ota_shared_waiter_t *next = waiters->next;
        ota__jobs_reply(&waiters->job, waiters->reply_to); /* `waiters` is its thread's from here on */
        waiters = next;
    }
    free(q);
}

static void start_query(ota_shared_count_t *count, ota_worker_t *worker, uint64_t now)
{
    query_t *q = malloc(sizeof *q);
    if (q == NULL)
        h2o_fatal("out of memory");
    q->count = count;
    q->as_of = time(NULL);
    q->started_ms = now;
    if (ota__db_query(worker->side_db, count->stmt, NULL, on_rows, q) != OTA_OK)
        on_rows(q, NULL);
}

void ota__shared_count_get(ota_shared_count_t *count, ota_call_t *call, uint64_t max_age_ms,
                           void (*answer)(ota_call_t *call, const void *value))
{
    ota_shared_waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        h2o_fatal("out of memory");
    w->call = call;
    w->answer = answer;
    w->job.done = on_counted;
    w->reply_to = &call->worker->jobs_done;

    uint64_t now = now_ms();
    bool fresh, start = false;
    pthread_mutex_lock(&count->lock);
    fresh = count->current != NULL && now - count->counted_at_ms < max_age_ms;
    if (fresh) {
        hold(count->current);
        w->value = count->current;
    } else {
        w->next = count->waiters;
        count->waiters = w;
        start = !count->counting;
        count->counting = true;
    }
    pthread_mutex_unlock(&count->lock);
    /* A waiting request is the query's from here on: on_counted answers it. */
    if (fresh)
        answer_and_free(w);
    else if (start)
        start_query(count, call->worker, now);
}
