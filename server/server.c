/* pipe2() */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/rand.h>

#include "db/conn.h"
#include "api/dispatch.h"
#include "api/portal.h"
#include "http/device_limit.h"
#include "http/error_filter.h"
#include "http/idle.h"
#include "core/log.h"
#include "core/rate_limit.h"
#include "api/events.h"
#include "heartbeat/deferred_writes.h"
#include "heartbeat/presign_cache.h"
#include "heartbeat/sweeper.h"
#include "releases/delta_builder.h"
#include "releases/object_sweeper.h"
#include "rollouts/engine.h"
#include "http/worker.h"

/* One event-loop thread and what it owns. */
typedef struct thread {
    ota_worker_t worker;
    h2o_globalconf_t *globalconf;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    ota_idle_t *idle;    /* closes connections that stop moving bytes mid-exchange */
    int wake_fds[2];     /* the main thread writes here to ask the thread to stop */
    ota_sweeper_t *sweeper; /* thread 0 only */
    ota_object_sweeper_t *object_sweeper; /* thread 0 only; NULL when OTA_GC_INTERVAL_S is 0 */
    ota_rollout_engine_t *rollout_engine; /* thread 0 only */
    h2o_socket_t *waker;
    bool stopping;
    pthread_t tid;
} thread_t;

static void on_accept(h2o_socket_t *listener, const char *err)
{
    thread_t *t = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    ota__idle_track(t->idle, sock);
    h2o_accept(&t->accept_ctx, sock);
}

static void on_wake(h2o_socket_t *waker, const char *err)
{
    thread_t *t = waker->data;
    (void)err;
    t->stopping = true;
    h2o_buffer_consume(&waker->input, waker->input->size);
}

/* Makes the listening socket: SO_REUSEPORT lets every thread bind the same address and the kernel spread connections. */
static int listen_on(const ota_config_t *cfg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *addrs = NULL;
    char port[16];
    int fd = -1, on = 1;

    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host[0] != '\0' ? cfg->listen_host : NULL, port, &hints, &addrs);
    if (rc != 0) {
        ota_log_error("cannot resolve OTA_LISTEN host '%s': %s", cfg->listen_host, gai_strerror(rc));
        return -1;
    }
    fd = socket(addrs->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0 ||
        bind(fd, addrs->ai_addr, addrs->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        ota_log_error("cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(addrs);
    return fd;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* After a stop request: no new connections, then run until the requests in progress are answered. */
static void drain(thread_t *t)
{
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    h2o_context_request_shutdown(&t->worker.ctx);
    double deadline = now_seconds() + OTA_DRAIN_SECONDS;
    while (t->worker.calls_in_progress > 0 && now_seconds() < deadline)
        h2o_evloop_run(t->worker.loop, 100);
    if (t->worker.calls_in_progress > 0)
        ota_log_warn("thread %d stopped with %zu requests unanswered", t->worker.index,
                     t->worker.calls_in_progress);
}

/* Threads that read blob files for downloads with the fs storage (api/blobs.c). */
#define BLOB_READ_THREADS 2

/* Seconds a starting thread waits for its database connections before it accepts connections anyway. */
#define START_DB_WAIT_SECONDS 10

/*
 * Device tokens the rate limit tracks at once (24 bytes each: 3 MiB, touched as used). A device heartbeating
 * once a minute holds a slot for 10 s of it, so this covers an instance taking ~13,000 heartbeats a second from
 * distinct devices; past that, counts are evicted early (the limit lets a device through, never refuses one).
 */
#define DEVICE_LIMIT_SLOTS (1u << 17)

/*
 * The listening socket is already open, so clients that come early wait in its backlog instead of getting 503
 * because this thread's database connections are still being set up.
 */
static void wait_for_database(thread_t *t)
{
    double deadline = now_seconds() + START_DB_WAIT_SECONDS;
    /* Both connections: a request on the side one (creating a rollout, /metrics) that came before it was up
     * would get a 503 from an instance that had just said it was ready. */
    while (!(ota__db_ready(t->worker.db) && ota__db_ready(t->worker.side_db)) && !t->stopping &&
           now_seconds() < deadline)
        h2o_evloop_run(t->worker.loop, 100);
}

/*
 * The thread's loop, its h2o context and its database connection are made here, on the thread itself, never by
 * the main thread: libh2o 2.2.5 gives each socket the input buffers of the thread that created it, from a
 * per-thread recycling list without a lock (evloop's __thread h2o_socket_buffer_prototype). Made on the main
 * thread, the context's wake-up socket (ctx->queue, on which jobs come back) of every loop thread took buffers
 * from one shared list, and two loops finishing jobs at once corrupted it: a rare heap corruption that
 * ThreadSanitizer reports as a race in every release upload test.
 */
static void make_loop(thread_t *t)
{
    t->worker.loop = h2o_evloop_create();
    h2o_context_init(&t->worker.ctx, t->worker.loop, t->globalconf);
    t->worker.db = ota__db_create(t->worker.loop, t->worker.cfg, true, t->worker.cfg->db_statement_timeout_ms);
    t->worker.side_db = ota__db_create(t->worker.loop, t->worker.cfg, false, t->worker.cfg->db_bulk_timeout_ms);
    if (t->worker.db == NULL || t->worker.side_db == NULL)
        h2o_fatal("out of memory");
    ota__jobs_register(t->worker.ctx.queue, &t->worker.jobs_done);
    t->accept_ctx.ctx = &t->worker.ctx;
    t->accept_ctx.hosts = t->globalconf->hosts;
}

static void *thread_main(void *arg)
{
    thread_t *t = arg;
    make_loop(t);
    t->waker = h2o_evloop_socket_create(t->worker.loop, t->wake_fds[0], 0);
    t->waker->data = t;
    h2o_socket_read_start(t->waker, on_wake);
    t->worker.events = ota__events_start(&t->worker);
    wait_for_database(t);
    t->worker.deferred_writes = ota__deferred_writes_start(&t->worker);
    t->worker.presign_cache = calloc(1, sizeof *t->worker.presign_cache);
    t->worker.signer = ota_manifest_signer_new(t->worker.signing_key->seed);
    if (t->worker.presign_cache == NULL || t->worker.signer == NULL)
        h2o_fatal("out of memory");
    if (t->worker.index == 0) {
        t->sweeper = ota__sweeper_start(&t->worker);
        t->object_sweeper = ota__object_sweeper_start(&t->worker);
        t->rollout_engine = ota__rollout_engine_start(&t->worker);
    }
    t->idle = ota__idle_start(t->worker.loop, (uint64_t)t->worker.cfg->idle_timeout_ms);
    t->listener = h2o_evloop_socket_create(t->worker.loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);

    while (!t->stopping)
        h2o_evloop_run(t->worker.loop, INT32_MAX);
    drain(t);

    h2o_socket_read_stop(t->waker);
    h2o_socket_close(t->waker);
    ota__idle_stop(t->idle);
    t->idle = NULL;
    if (t->sweeper != NULL)
        ota__sweeper_stop(t->sweeper);
    ota__object_sweeper_stop(t->object_sweeper);
    if (t->rollout_engine != NULL)
        ota__rollout_engine_stop(t->rollout_engine);
    ota__deferred_writes_stop(t->worker.deferred_writes);
    t->worker.deferred_writes = NULL;
    free(t->worker.presign_cache);
    t->worker.presign_cache = NULL;
    ota_manifest_signer_free(t->worker.signer);
    t->worker.signer = NULL;
    ota__events_stop(t->worker.events);
    ota__db_destroy(t->worker.db);
    t->worker.db = NULL;
    ota__db_destroy(t->worker.side_db);
    t->worker.side_db = NULL;
    h2o_evloop_run(t->worker.loop, 0); /* lets the closed sockets go */
    /* The h2o context and loop stay: h2o 2.2.5 asserts when a context is disposed while a client still holds a
     * keep-alive connection, and offers no way to close those. The process exits right after. */
    return NULL;
}

static bool thread_init(thread_t *t, int index, h2o_globalconf_t *globalconf, const ota_config_t *cfg, ota_jobs_t *jobs,
                        ota_jobs_t *reads, ota_jobs_t *delta_jobs, ota_storage_t *storage, const ota_signing_key_t *key,
                        const char *instance_id)
{
    memset(t, 0, sizeof *t);
    t->listen_fd = -1;
    t->wake_fds[0] = t->wake_fds[1] = -1;
    if (pipe2(t->wake_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    t->listen_fd = listen_on(cfg);
    if (t->listen_fd < 0)
        return false;
    t->globalconf = globalconf;
    t->worker.cfg = cfg;
    t->worker.index = index;
    t->worker.jobs = jobs;
    t->worker.reads = reads;
    t->worker.delta_jobs = delta_jobs;
    t->worker.storage = storage;
    t->worker.signing_key = key;
    snprintf(t->worker.instance_id, sizeof t->worker.instance_id, "%s", instance_id);
    return true;
}

static void configure(h2o_globalconf_t *globalconf, const ota_config_t *cfg)
{
    h2o_config_init(globalconf);
    globalconf->server_name = h2o_iovec_init(H2O_STRLIT("ota-server"));
    /* The largest body any route takes; body.h holds each route to its own limit. */
    size_t upload = ota__max_upload_request(cfg);
    globalconf->max_request_entity_size = upload > OTA_MAX_BULK_JSON_BODY ? upload : OTA_MAX_BULK_JSON_BODY;
    globalconf->http1.upgrade_to_http2 = 0;
    /* h2o's request timer bounds a whole request, body included, and is never re-armed as bytes arrive: it is
     * only the outer bound; idle.h closes connections that stop moving bytes. */
    globalconf->http1.req_timeout = (uint64_t)cfg->request_timeout * 1000;
    h2o_hostconf_t *host = h2o_config_register_host(globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof *handler);
    handler->on_req = ota__dispatch;
    ota__error_filter_install(path);
    ota__error_filter_install(&host->fallback_path);
}

/* Blocks the stop signals in every thread, so that only the main thread's sigwait sees them. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void wait_for_stop_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    ota_log_info("received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* What outlives ota__server_run until the process exits; a global so leak checkers see it as still in use. */
static thread_t *volatile running; /* volatile: a store that is never read would be optimized away */
static h2o_globalconf_t shared_conf;
static ota_signing_key_t signing_key;

int ota__server_run(const ota_config_t *cfg)
{
    sigset_t stop_signals;
    int n = cfg->threads, started = 0, rc = 1;
    thread_t *threads = calloc((size_t)n, sizeof *threads);
    if (threads == NULL)
        return 1;

    block_signals(&stop_signals);
    char err[512];
    ota_storage_t *storage = ota__storage_open(cfg, err, sizeof err);
    if (storage == NULL) {
        ota_log_error("cannot open the %s storage: %s", cfg->storage, err);
        free(threads);
        return 1;
    }
    if (ota__signing_key_load(cfg->signing_key, &signing_key, err, sizeof err) != OTA_OK) {
        ota_log_error("cannot load OTA_SIGNING_KEY %s: %s", cfg->signing_key, err);
        ota__storage_close(storage);
        free(threads);
        return 1;
    }
    ota__portal_csp_init(storage);
    ota_jobs_t *jobs = ota__jobs_create(cfg->job_threads, (size_t)cfg->jobs_queue_max);
    /* Blob downloads read through ota__jobs_submit only: one read in flight per download bounds that queue. */
    ota_jobs_t *reads = ota__storage_is_fs(storage) ? ota__jobs_create(BLOB_READ_THREADS, 0) : NULL;
    /* One thread: one delta build at a time per process bounds its memory (releases/delta_builder.c). */
    ota_jobs_t *delta_jobs = ota__jobs_create(1, 0);
    char instance_id[9];
    unsigned char random[4];
    if (RAND_bytes(random, sizeof random) != 1)
        memset(random, 0, sizeof random);
    snprintf(instance_id, sizeof instance_id, "%02x%02x%02x%02x", random[0], random[1], random[2], random[3]);
    configure(&shared_conf, cfg);
    /* One for the process: SO_REUSEPORT spreads one device's connections over the threads (core/rate_limit.h). */
    ota_rate_limit_t *device_limit =
        cfg->device_rate_limit > 0
            ? ota__rate_limit_new((uint32_t)cfg->device_rate_limit, OTA_DEVICE_RATE_WINDOW_MS, DEVICE_LIMIT_SLOTS)
            : NULL;
    for (int i = 0; i < n; i++) {
        if (!thread_init(&threads[i], i, &shared_conf, cfg, jobs, reads, delta_jobs, storage, &signing_key,
                         instance_id))
            goto Exit;
        threads[i].worker.device_limit = device_limit;
    }
    for (; started < n; started++) {
        if (pthread_create(&threads[started].tid, NULL, thread_main, &threads[started]) != 0)
            goto Exit;
    }
    ota_log_info("listening on %s:%d with %d threads", cfg->listen_host, cfg->listen_port, n);
    wait_for_stop_signal(&stop_signals);
    rc = 0;

Exit:
    ota__delta_builder_stop(); /* queued builds would hold up the stop for seconds each */
    for (int i = 0; i < started; i++) {
        ssize_t w;
        do
            w = write(threads[i].wake_fds[1], "x", 1);
        while (w < 0 && errno == EINTR);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i].tid, NULL);
    for (int i = 0; i < n; i++) {
        if (threads[i].worker.db != NULL)
            ota__db_destroy(threads[i].worker.db);
        if (threads[i].worker.side_db != NULL)
            ota__db_destroy(threads[i].worker.side_db);
        if (i >= started && threads[i].listen_fd >= 0)
            close(threads[i].listen_fd);
        if (threads[i].wake_fds[1] >= 0)
            close(threads[i].wake_fds[1]);
        if (i >= started && threads[i].wake_fds[0] >= 0)
            close(threads[i].wake_fds[0]);
    }
    ota__jobs_destroy(delta_jobs);
    ota__jobs_destroy(jobs);
    if (reads != NULL)
        ota__jobs_destroy(reads);
    ota__rate_limit_free(device_limit);
    ota__storage_close(storage);
    /* `threads` and `shared_conf` are not freed: the h2o contexts in them live until exit (see thread_main). */
    running = threads;
    if (rc == 0)
        ota_log_info("stopped");
    return rc;
}
