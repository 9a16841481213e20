#include "http/idle.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "core/log.h"

/* What the watcher last saw a connection do. */
enum phase { PHASE_NONE, PHASE_READING, PHASE_WRITING, PHASE_SHUT };

typedef struct watched {
    h2o_linklist_t link;
    ota_idle_t *idle; /* NULL once the watcher has stopped */
    h2o_socket_t *sock;
    enum phase phase;
    uint64_t since; /* loop time (ms) the phase was first seen */
} watched_t;

struct ota_idle {
    h2o_evloop_t *loop;
    uint64_t timeout_ms;
    h2o_timeout_t tick; /* our own, not in a request's pool: the loop links it */
    h2o_timeout_entry_t tick_entry;
    h2o_linklist_t conns;
};

static enum phase phase_of(h2o_socket_t *sock)
{
    if (h2o_socket_is_writing(sock))
        return PHASE_WRITING;
    return h2o_socket_is_reading(sock) ? PHASE_READING : PHASE_NONE;
}

/* Milliseconds since data last moved the way `phase` waits for, per the kernel; 0 when it cannot tell. */
static uint64_t quiet_ms(int fd, enum phase phase)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return 0;
    return phase == PHASE_READING ? info.tcpi_last_data_recv : info.tcpi_last_data_sent;
}

static void check(ota_idle_t *idle, watched_t *w, uint64_t now)
{
    enum phase phase = phase_of(w->sock);
    if (w->phase == PHASE_SHUT)
        return;
    if (phase != w->phase) {
        w->phase = phase;
        w->since = now;
        return;
    }
    if (phase == PHASE_NONE || now - w->since < idle->timeout_ms)
        return;
    int fd = h2o_socket_get_fd(w->sock);
    if (quiet_ms(fd, phase) < idle->timeout_ms)
        return;
    /* A connection quiet between requests is routine (keep-alive); one stuck halfway through is worth a line. h2o
     * keeps a request's bytes in the socket's input until it has answered it, so any there are a partial one. */
    if (phase == PHASE_WRITING || w->sock->input->size > 0)
        ota_log_info("closing a connection idle for %llu ms while %s", (unsigned long long)idle->timeout_ms,
                     phase == PHASE_READING ? "receiving a request" : "sending a response");
    /* h2o owns the socket: shutting it down makes its next read or write fail, and h2o closes it then. */
    shutdown(fd, SHUT_RDWR);
    w->phase = PHASE_SHUT;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ota_idle_t *idle = H2O_STRUCT_FROM_MEMBER(ota_idle_t, tick_entry, entry);
    uint64_t now = h2o_now(idle->loop);
    for (h2o_linklist_t *l = idle->conns.next; l != &idle->conns; l = l->next)
        check(idle, H2O_STRUCT_FROM_MEMBER(watched_t, link, l), now);
    h2o_timeout_link(idle->loop, &idle->tick, &idle->tick_entry);
}

static void on_close(void *data)
{
    watched_t *w = data;
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
    free(w);
}

ota_idle_t *ota__idle_start(h2o_evloop_t *loop, uint64_t timeout_ms)
{
    ota_idle_t *idle = calloc(1, sizeof *idle);
    if (idle == NULL)
        h2o_fatal("out of memory");
    uint64_t every = timeout_ms / 4;
    idle->loop = loop;
    idle->timeout_ms = timeout_ms;
    h2o_linklist_init_anchor(&idle->conns);
    idle->tick_entry.cb = on_tick;
    h2o_timeout_init(loop, &idle->tick, every < 25 ? 25 : every > 1000 ? 1000 : every);
    h2o_timeout_link(loop, &idle->tick, &idle->tick_entry);
    return idle;
}

void ota__idle_track(ota_idle_t *idle, h2o_socket_t *sock)
{
    watched_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        h2o_fatal("out of memory");
    w->idle = idle;
    w->sock = sock;
    w->phase = PHASE_NONE;
    w->since = h2o_now(idle->loop);
    h2o_linklist_insert(&idle->conns, &w->link);
    sock->on_close.cb = on_close;
    sock->on_close.data = w;
}

void ota__idle_stop(ota_idle_t *idle)
{
    h2o_timeout_unlink(&idle->tick_entry);
    h2o_timeout_dispose(idle->loop, &idle->tick);
    /* Connections outlive the watcher: they only leave its list, and free their record when they close. */
    while (!h2o_linklist_is_empty(&idle->conns)) {
        watched_t *w = H2O_STRUCT_FROM_MEMBER(watched_t, link, idle->conns.next);
        h2o_linklist_unlink(&w->link);
        w->idle = NULL;
    }
    free(idle);
}
