#include "core/jobs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct ota_jobs {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    ota_job_t *head, *tail;
    size_t queued, queue_max; /* waiting jobs, and how many ota__jobs_try_submit lets wait */
    bool stopping;
    int nthreads;
    pthread_t *threads;
};

static ota_job_t *take(ota_jobs_t *jobs)
{
    pthread_mutex_lock(&jobs->lock);
    while (jobs->head == NULL && !jobs->stopping)
        pthread_cond_wait(&jobs->wake, &jobs->lock);
    ota_job_t *job = jobs->head;
    if (job != NULL) {
        jobs->head = job->next;
        if (jobs->head == NULL)
            jobs->tail = NULL;
        jobs->queued--;
    }
    pthread_mutex_unlock(&jobs->lock);
    return job;
}

static void *pool_thread(void *arg)
{
    ota_jobs_t *jobs = arg;
    ota_job_t *job;
    while ((job = take(jobs)) != NULL) {
        job->run(job);
        h2o_multithread_send_message(job->reply_to, &job->message);
    }
    return NULL;
}

ota_jobs_t *ota__jobs_create(int threads, size_t queue_max)
{
    ota_jobs_t *jobs = calloc(1, sizeof *jobs);
    if (jobs == NULL || (jobs->threads = calloc((size_t)threads, sizeof *jobs->threads)) == NULL)
        h2o_fatal("out of memory");
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->wake, NULL);
    jobs->nthreads = threads;
    jobs->queue_max = queue_max;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&jobs->threads[i], NULL, pool_thread, jobs) != 0)
            h2o_fatal("cannot start a job thread");
    }
    return jobs;
}

void ota__jobs_destroy(ota_jobs_t *jobs)
{
    pthread_mutex_lock(&jobs->lock);
    jobs->stopping = true;
    pthread_cond_broadcast(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
    for (int i = 0; i < jobs->nthreads; i++)
        pthread_join(jobs->threads[i], NULL);
    pthread_cond_destroy(&jobs->wake);
    pthread_mutex_destroy(&jobs->lock);
    free(jobs->threads);
    free(jobs);
}

static void address(ota_job_t *job, h2o_multithread_receiver_t *reply_to)
{
    job->reply_to = reply_to;
    job->next = NULL;
    job->message = (h2o_multithread_message_t){{NULL, NULL}};
}

/* Queues `job` unless `bounded` and the queue is full; under the lock. */
static bool enqueue(ota_jobs_t *jobs, ota_job_t *job, h2o_multithread_receiver_t *reply_to, bool bounded)
{
    bool queued = false;
    pthread_mutex_lock(&jobs->lock);
    if (!bounded || jobs->queued < jobs->queue_max) {
        address(job, reply_to);
        if (jobs->tail != NULL)
            jobs->tail->next = job;
        else
            jobs->head = job;
        jobs->tail = job;
        jobs->queued++;
        queued = true;
        pthread_cond_signal(&jobs->wake);
    }
    pthread_mutex_unlock(&jobs->lock);
    return queued;
}

void ota__jobs_submit(ota_jobs_t *jobs, ota_job_t *job, h2o_multithread_receiver_t *reply_to)
{
    enqueue(jobs, job, reply_to, false);
}

bool ota__jobs_try_submit(ota_jobs_t *jobs, ota_job_t *job, h2o_multithread_receiver_t *reply_to)
{
    return enqueue(jobs, job, reply_to, true);
}

void ota__jobs_reply(ota_job_t *job, h2o_multithread_receiver_t *reply_to)
{
    address(job, reply_to);
    h2o_multithread_send_message(reply_to, &job->message);
}

/* On the loop: every job that came back runs its `done`. */
static void on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        ota_job_t *job = H2O_STRUCT_FROM_MEMBER(ota_job_t, message.link, messages->next);
        h2o_linklist_unlink(&job->message.link);
        job->done(job);
    }
}

void ota__jobs_register(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *receiver)
{
    h2o_multithread_register_receiver(queue, receiver, on_jobs_done);
}
