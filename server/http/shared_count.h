#ifndef OTA_SERVER_HTTP_SHARED_COUNT_H
#define OTA_SERVER_HTTP_SHARED_COUNT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

#include "db/statements.h"
#include "http/call.h"

/*
 * A value made from one query that scans much of the database (the fleet's
 * numbers, the fleet-wide counts of GET /metrics), shared by the whole
 * process and made again at most every `max_age_ms`, so that no request,
 * however many come, makes the database count per request. The query runs
 * on the side connection of the thread whose request found the value too
 * old. Requests that come meanwhile, on any thread, wait for that query
 * instead of starting another; when it ends each is handed back to its own
 * thread (ota__jobs_reply) and answered there.
 *
 * A value never changes once made: any thread reads it while it holds it,
 * and it is freed when the last holder lets go.
 */

typedef struct ota_shared_value ota_shared_value_t;
typedef struct ota_shared_waiter ota_shared_waiter_t;

/** One shared count: what to run and how to keep its result. Define it static with OTA_SHARED_COUNT_INIT. */
typedef struct ota_shared_count {
    ota_stmt_t stmt;                                  /**< the query; it takes no parameter */
    void *(*make)(const PGresult *res, time_t as_of); /**< the value of the query's rows, counted at `as_of` */
    void (*free_value)(void *value);                  /**< frees what `make` made */
    /* The rest is the module's. */
    pthread_mutex_t lock;
    ota_shared_value_t *current; /**< NULL until the first query succeeds */
    uint64_t counted_at_ms;      /**< when the query of `current` started (monotonic clock) */
    bool counting;
    ota_shared_waiter_t *waiters; /**< requests waiting for the query under way */
} ota_shared_count_t;

/** A static initializer for a shared count of `stmt`, with `make` and `free_value`. */
#define OTA_SHARED_COUNT_INIT(stmt_, make_, free_value_)                                                               \
    {                                                                                                                  \
        .stmt = (stmt_), .make = (make_), .free_value = (free_value_), .lock = PTHREAD_MUTEX_INITIALIZER               \
    }

/**
 * Answers `call` from the value of `count` made at most `max_age_ms` ago: `answer(call, value)` runs on the call's
 * thread, now or when the query under way (started here if none is) ends; `value` is NULL when the query failed,
 * and is only borrowed for the time of `answer`, which must end the call. When the client has gone by then, the
 * call is freed and `answer` is not called.
 */
void ota__shared_count_get(ota_shared_count_t *count, ota_call_t *call, uint64_t max_age_ms,
                           void (*answer)(ota_call_t *call, const void *value));

#endif
