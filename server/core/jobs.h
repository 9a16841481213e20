#ifndef OTA_SERVER_JOBS_H
#define OTA_SERVER_JOBS_H

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

/** Starts `threads` pool threads. Aborts on failure (server policy). Free with ota__jobs_destroy. */
ota_jobs_t *ota__jobs_create(int threads);

/** Lets the queued jobs finish, then stops the threads and frees the pool. Their `done` may not run. */
void ota__jobs_destroy(ota_jobs_t *jobs);

/** Queues `job`; its `done` will run on the loop of `reply_to` (registered with ota__jobs_register). */
void ota__jobs_submit(ota_jobs_t *jobs, ota_job_t *job, h2o_multithread_receiver_t *reply_to);

/**
 * Sends `job` straight to the loop of `reply_to`, where its `done` runs; nothing runs on the pool (`run` may be
 * NULL). For work another thread finished on that loop's behalf: one database answer that several loops wait for.
 * Callable from any thread.
 */
void ota__jobs_reply(ota_job_t *job, h2o_multithread_receiver_t *reply_to);

/** Registers `receiver` on a loop's queue so that jobs submitted with it come back to that loop. */
void ota__jobs_register(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *receiver);

#endif
