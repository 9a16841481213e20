#ifndef OTA_SERVER_JOBS_H
#define OTA_SERVER_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>
#include <h2o/multithread.h>

/*
 * A small pool of threads for work that must block (reading an upload's
 * bytes, hashing megabytes, talking to S3 or a remote URL with libcurl), so
 * that no event loop ever waits on it.
 *
 * A job runs `run` on a pool thread, then `done` back on the event loop that
 * submitted it (through that loop's h2o multithread queue). The job struct
 * is the caller's; it is usually the first member of a larger struct.
 */
typedef struct ota_job ota_job_t;

struct ota_job {
    h2o_multithread_message_t message; /**< first: how the result travels back */
    void (*run)(ota_job_t *job);       /**< on a pool thread; may block */
    void (*done)(ota_job_t *job);      /**< on the submitting loop's thread, after run */
    h2o_multithread_receiver_t *reply_to;
    ota_job_t *next; /**< the pool's queue */
};

typedef struct ota_jobs ota_jobs_t;

/**
 * Starts `threads` pool threads whose queue takes at most `queue_max` waiting jobs from ota__jobs_try_submit.
 * Aborts on failure (server policy). Free with ota__jobs_destroy.
 */
ota_jobs_t *ota__jobs_create(int threads, size_t queue_max);

/** Lets the queued jobs finish, then stops the threads and frees the pool. Their `done` may not run. */
void ota__jobs_destroy(ota_jobs_t *jobs);

/**
 * Queues `job` whatever the queue holds; its `done` will run on the loop of `reply_to` (registered with
 * ota__jobs_register). For small work that must not be lost (deleting objects); work a request brings, which
 * may hold a large body, goes through ota__jobs_try_submit.
 */
void ota__jobs_submit(ota_jobs_t *jobs, ota_job_t *job, h2o_multithread_receiver_t *reply_to);

/**
 * Queues `job` as ota__jobs_submit does, unless `queue_max` jobs already wait (running ones do not count): then
 * returns false, and neither `run` nor `done` will be called; the job is still the caller's. A request refused so
 * is answered 503 `unavailable`, so that memory held by queued uploads stays bounded.
 */
bool ota__jobs_try_submit(ota_jobs_t *jobs, ota_job_t *job, h2o_multithread_receiver_t *reply_to);

/**
 * Sends `job` straight to the loop of `reply_to`, where its `done` runs; nothing runs on the pool (`run` may be
 * NULL). For work another thread finished on that loop's behalf: one database answer that several loops wait for.
 * Callable from any thread.
 */
void ota__jobs_reply(ota_job_t *job, h2o_multithread_receiver_t *reply_to);

/** Registers `receiver` on a loop's queue so that jobs submitted with it come back to that loop. */
void ota__jobs_register(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *receiver);

#endif
