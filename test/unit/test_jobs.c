/* gettid() */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/jobs.h"

/* A queue bound no test here reaches. */
#define UNBOUNDED 1000

/* Guards against a hang only (each turn waits at most 10 ms): the tests assert no timing. */
#define MAX_LOOP_TURNS 100000

typedef struct {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    pthread_t loop_thread;
} fixture_t;

typedef struct test_job {
    ota_job_t job; /* first */
    int index;
    atomic_bool ran;
    atomic_bool ran_off_loop;
    bool done;
    bool done_on_loop;
    bool done_after_run;
} test_job_t;

static atomic_int runs;
static int dones; /* touched on the loop thread only */
static fixture_t *current;

/* The gate that holds the first job of a pool, so that others stay queued behind it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static bool gate_entered;

static void run_count(ota_job_t *job)
{
    test_job_t *t = (test_job_t *)job;
    atomic_store(&t->ran_off_loop, !pthread_equal(pthread_self(), current->loop_thread));
    atomic_store(&t->ran, true);
    atomic_fetch_add(&runs, 1);
}

static void run_gated(ota_job_t *job)
{
    pthread_mutex_lock(&gate_lock);
    gate_entered = true;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    run_count(job);
}

static void on_done(ota_job_t *job)
{
    test_job_t *t = (test_job_t *)job;
    t->done_on_loop = pthread_equal(pthread_self(), current->loop_thread);
    t->done_after_run = atomic_load(&t->ran);
    assert_false(t->done); /* once */
    t->done = true;
    dones++;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->loop_thread = pthread_self();
    f->loop = h2o_evloop_create();
    f->queue = h2o_multithread_create_queue(f->loop);
    ota__jobs_register(f->queue, &f->receiver);
    atomic_store(&runs, 0);
    dones = 0;
    gate_open = false;
    gate_entered = false;
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    h2o_evloop_run(f->loop, 0); /* after a failed test: h2o asserts that no message is left on unregistering */
    h2o_multithread_unregister_receiver(f->queue, &f->receiver);
    h2o_multithread_destroy_queue(f->queue);
    h2o_evloop_run(f->loop, 0); /* lets the queue's closed socket go */
    free(f->queue);             /* libh2o 2.2.5 (evloop) closes the queue's socket but never frees the queue */
    h2o_evloop_destroy(f->loop);
    current = NULL;
    free(f);
    return 0;
}

static void run_loop_until(fixture_t *f, int want_dones)
{
    for (int turn = 0; dones < want_dones && turn < MAX_LOOP_TURNS; turn++)
        h2o_evloop_run(f->loop, 10);
    assert_int_equal(dones, want_dones);
}

static test_job_t *make_jobs(int n)
{
    test_job_t *jobs = calloc((size_t)n, sizeof *jobs);
    assert_non_null(jobs);
    for (int i = 0; i < n; i++) {
        jobs[i].index = i;
        jobs[i].job.run = run_count;
        jobs[i].job.done = on_done;
    }
    return jobs;
}

static void check_all(const test_job_t *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        if (!atomic_load(&jobs[i].ran) || !jobs[i].done)
            fail_msg("job %d: ran %d, done %d", i, (int)atomic_load(&jobs[i].ran), (int)jobs[i].done);
        if (!atomic_load(&jobs[i].ran_off_loop))
            fail_msg("job %d ran on the loop thread", i);
        if (!jobs[i].done_on_loop)
            fail_msg("job %d: done ran off the loop thread", i);
        if (!jobs[i].done_after_run)
            fail_msg("job %d: done before run", i);
    }
}

static void test_hundred_jobs_four_threads(void **state)
{
    fixture_t *f = *state;
    const int n = 100;
    test_job_t *jobs = make_jobs(n);
    ota_jobs_t *pool = ota__jobs_create(4, UNBOUNDED);

    for (int i = 0; i < n; i++)
        ota__jobs_submit(pool, &jobs[i].job, &f->receiver);
    run_loop_until(f, n);
    assert_int_equal(atomic_load(&runs), n);
    check_all(jobs, n);

    /* The loop stays quiet afterwards: nothing comes back twice. */
    h2o_evloop_run(f->loop, 0);
    assert_int_equal(dones, n);

    ota__jobs_destroy(pool);
    assert_int_equal(atomic_load(&runs), n);
    assert_int_equal(dones, n);
    free(jobs);
}

/* Jobs submitted in several rounds to the same pool, with the loop run in between. */
static void test_rounds(void **state)
{
    fixture_t *f = *state;
    const int n = 30;
    test_job_t *jobs = make_jobs(n);
    ota_jobs_t *pool = ota__jobs_create(2, UNBOUNDED);

    for (int round = 0; round < 3; round++) {
        for (int i = round * 10; i < round * 10 + 10; i++)
            ota__jobs_submit(pool, &jobs[i].job, &f->receiver);
        run_loop_until(f, round * 10 + 10);
        assert_int_equal(atomic_load(&runs), round * 10 + 10);
    }
    check_all(jobs, n);
    ota__jobs_destroy(pool);
    free(jobs);
}

/* The scheduler state of thread `tid` of this process ('R', 'S', ...), from /proc. */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')');
    assert_non_null(end);
    return end[1] == ' ' ? end[2] : '?';
}

typedef struct {
    atomic_bool destroying;
    pid_t main_tid;
} opener_arg_t;

/*
 * Opens the gate once the main thread is inside ota__jobs_destroy and asleep there (joining the pool thread): by
 * then the pool is stopping and the queued jobs are still queued, so a destroy that dropped them would show.
 */
static void *open_gate_when_destroying(void *arg)
{
    opener_arg_t *a = arg;
    pthread_mutex_lock(&gate_lock);
    while (!gate_entered || !atomic_load(&a->destroying))
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    while (thread_state(a->main_tid) == 'R')
        sched_yield();
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    return NULL;
}

/*
 * One thread held by the first job while 50 more queue behind it; the pool is destroyed while they wait.
 * Destroy must run every queued job before it returns.
 */
static void test_destroy_finishes_queued_jobs(void **state)
{
    fixture_t *f = *state;
    const int n = 51;
    test_job_t *jobs = make_jobs(n);
    opener_arg_t arg = {.destroying = false, .main_tid = gettid()};
    pthread_t opener;
    ota_jobs_t *pool = ota__jobs_create(1, UNBOUNDED);

    jobs[0].job.run = run_gated;
    for (int i = 0; i < n; i++)
        ota__jobs_submit(pool, &jobs[i].job, &f->receiver);
    assert_int_equal(pthread_create(&opener, NULL, open_gate_when_destroying, &arg), 0);

    /* The pool thread is inside job 0, so jobs 1..50 are queued. */
    pthread_mutex_lock(&gate_lock);
    while (!gate_entered)
        pthread_cond_wait(&gate_cond, &gate_lock);
    int runs_before = atomic_load(&runs);
    atomic_store(&arg.destroying, true);
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    assert_int_equal(runs_before, 0);

    ota__jobs_destroy(pool);
    assert_int_equal(atomic_load(&runs), n);
    for (int i = 0; i < n; i++)
        assert_true(atomic_load(&jobs[i].ran));
    pthread_join(opener, NULL);

    /* Their results were sent to the loop: running it delivers every `done`, on the loop thread. */
    run_loop_until(f, n);
    check_all(jobs, n);
    free(jobs);
}

/* Waits until the pool thread is inside the gated job, so that it no longer counts as waiting. */
static void wait_gate_entered(void)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_entered)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/*
 * A pool of one thread held by a job, with room for 2 waiting: a third try is refused and never runs; plain submit
 * still queues; once the gate opens every accepted job runs and comes back, the refused one never.
 */
static void test_try_submit_bounded(void **state)
{
    fixture_t *f = *state;
    const int n = 5;
    test_job_t *jobs = make_jobs(n);
    ota_jobs_t *pool = ota__jobs_create(1, 2);

    jobs[0].job.run = run_gated;
    assert_true(ota__jobs_try_submit(pool, &jobs[0].job, &f->receiver));
    wait_gate_entered();
    assert_true(ota__jobs_try_submit(pool, &jobs[1].job, &f->receiver));
    assert_true(ota__jobs_try_submit(pool, &jobs[2].job, &f->receiver));
    assert_false(ota__jobs_try_submit(pool, &jobs[3].job, &f->receiver));
    ota__jobs_submit(pool, &jobs[4].job, &f->receiver); /* small work is never refused */
    open_gate();
    run_loop_until(f, 4);
    assert_int_equal(atomic_load(&runs), 4);
    assert_false(atomic_load(&jobs[3].ran));
    assert_false(jobs[3].done);

    /* The queue has drained: there is room again. */
    assert_true(ota__jobs_try_submit(pool, &jobs[3].job, &f->receiver));
    run_loop_until(f, 5);
    check_all(jobs, n);
    ota__jobs_destroy(pool);
    free(jobs);
}

static void test_destroy_idle_pool(void **state)
{
    fixture_t *f = *state;
    (void)f;
    ota_jobs_t *pool = ota__jobs_create(4, UNBOUNDED);
    ota__jobs_destroy(pool);
    pool = ota__jobs_create(1, UNBOUNDED);
    ota__jobs_destroy(pool);
    assert_int_equal(atomic_load(&runs), 0);
    h2o_evloop_run(f->loop, 0);
    assert_int_equal(dones, 0);
}

/* Two loops (two receivers): each job's `done` comes back to the loop it was submitted from. */
typedef struct {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    pthread_t thread;
    ota_jobs_t *pool;
    test_job_t *jobs;
    int n;
    int dones;
    bool wrong_thread;
} second_loop_t;

static second_loop_t *second;

static void on_done_second(ota_job_t *job)
{
    (void)job;
    if (!pthread_equal(pthread_self(), second->thread))
        second->wrong_thread = true;
    second->dones++;
}

static void *second_loop_main(void *arg)
{
    second_loop_t *s = arg;
    s->thread = pthread_self();
    s->loop = h2o_evloop_create();
    s->queue = h2o_multithread_create_queue(s->loop);
    ota__jobs_register(s->queue, &s->receiver);
    for (int i = 0; i < s->n; i++)
        ota__jobs_submit(s->pool, &s->jobs[i].job, &s->receiver);
    for (int turn = 0; s->dones < s->n && turn < MAX_LOOP_TURNS; turn++)
        h2o_evloop_run(s->loop, 10);
    h2o_multithread_unregister_receiver(s->queue, &s->receiver);
    h2o_multithread_destroy_queue(s->queue);
    h2o_evloop_run(s->loop, 0);
    free(s->queue); /* as in teardown() */
    h2o_evloop_destroy(s->loop);
    return NULL;
}

static void test_two_loops(void **state)
{
    fixture_t *f = *state;
    const int n = 40;
    test_job_t *mine = make_jobs(n), *theirs = make_jobs(n);
    second_loop_t s;
    memset(&s, 0, sizeof s);
    ota_jobs_t *pool = ota__jobs_create(3, UNBOUNDED);
    for (int i = 0; i < n; i++) {
        theirs[i].job.run = run_count;
        theirs[i].job.done = on_done_second;
    }
    s.pool = pool;
    s.jobs = theirs;
    s.n = n;
    second = &s;

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, second_loop_main, &s), 0);
    for (int i = 0; i < n; i++)
        ota__jobs_submit(pool, &mine[i].job, &f->receiver);
    run_loop_until(f, n);
    pthread_join(t, NULL);

    check_all(mine, n);
    assert_int_equal(s.dones, n);
    assert_false(s.wrong_thread);
    assert_int_equal(atomic_load(&runs), 2 * n);
    ota__jobs_destroy(pool);
    second = NULL;
    free(mine);
    free(theirs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hundred_jobs_four_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_finishes_queued_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_try_submit_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_idle_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_loops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
