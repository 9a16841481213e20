/*
 * openloop: an open-loop HTTP/1.1 load generator for scripts/bench.
 *
 * wrk is a closed loop: each connection sends its next request when the
 * last answer arrives, so with C connections always busy the mean latency
 * is C / throughput by construction, and a server that stalls is simply
 * asked less. A fleet does not wait for the server: devices heartbeat on
 * their own clocks. This program sends requests at a fixed rate, on a
 * schedule fixed in advance (request k is due at start + k / rate, on
 * connection k mod C), and measures each latency from the moment the
 * request was due, not from when it could be sent. A request due while its
 * connection still waits for an answer is sent as soon as the answer comes,
 * and the wait counts in its latency. (This is how wrk2 avoids "coordinated
 * omission".) One thread and epoll are enough for the rates of a 2-core
 * machine and leave the cores to the server.
 *
 *   openloop HOST PORT RATE CONNECTIONS SECONDS WARMUP_SECONDS PATH
 *   openloop HOST PORT RATE CONNECTIONS SECONDS WARMUP_SECONDS heartbeat IDS_FILE plain|deliver EVERY
 *
 * The first form GETs PATH. The second POSTs heartbeats of the bench fleet
 * (bench/heartbeat.lua describes it): line i of IDS_FILE is device i, its
 * token otd_bench_<i>; `plain` takes the devices with i % EVERY != 0 and
 * `deliver` those with i % EVERY == 0, in turn. Requests due in the first
 * WARMUP_SECONDS are sent but not measured. Prints a line for each second of the run, then the summary:
 *   SECOND s requests p99_us max_us
 *   BENCH requests=... duration_us=... rps=... p50_us=... p99_us=... p999_us=... max_us=... non2xx=... errors=...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 20000
#define RESPONSE_MAX 65536

typedef struct conn {
    int fd;
    bool busy;             /* a request sent, its answer not complete yet */
    uint64_t *due;         /* ring of due times (ns) of requests waiting for this connection */
    size_t due_cap, due_head, due_count;
    uint64_t sent_due;     /* due time of the request in flight */
    char in[RESPONSE_MAX]; /* the answer so far */
    size_t in_len;
} conn_t;

typedef struct run {
    const char *host;
    int port;
    double rate;
    int nconn;
    double seconds, warmup;
    const char *path; /* GET PATH, or NULL for heartbeats */
    char **ids;       /* heartbeats: the fleet's ids, ids[i - 1] is device i */
    int *devices;     /* heartbeats: the device numbers to cycle through */
    size_t ndevices, next_device;
    conn_t *conns;
    uint32_t *latencies_us; /* measured requests */
    uint32_t *seconds_due;  /* the second of the run each measured request was due in (0 = the first) */
    size_t measured, measured_cap;
    uint64_t outstanding; /* requests scheduled and not yet answered (or failed) */
    uint64_t non2xx, errors;
} run_t;

static void die(const char *what)
{
    fprintf(stderr, "openloop: %s: %s\n", what, errno != 0 ? strerror(errno) : "failed");
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* --- the fleet ---------------------------------------------------------------------------------------- */

static void load_fleet(run_t *r, const char *file, const char *mode, int every)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        die(file);
    size_t cap = 1024, n = 0;
    r->ids = xcalloc(cap, sizeof *r->ids);
    char line[128];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (n == cap) {
            cap *= 2;
            r->ids = realloc(r->ids, cap * sizeof *r->ids);
            if (r->ids == NULL)
                die("out of memory");
        }
        r->ids[n++] = strdup(line);
    }
    fclose(f);
    bool deliver = strcmp(mode, "deliver") == 0;
    r->devices = xcalloc(n + 1, sizeof *r->devices);
    for (size_t i = 1; i <= n; i++)
        if (((int)(i % (size_t)every) == 0) == deliver)
            r->devices[r->ndevices++] = (int)i;
    if (r->ndevices == 0) {
        errno = 0;
        die("no devices for this mode");
    }
}

/* Writes the next request into `buf`; returns its length. */
static size_t next_request(run_t *r, char *buf, size_t cap)
{
    int n;
    if (r->path != NULL) {
        n = snprintf(buf, cap, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", r->path, r->host);
    } else {
        static const char body[] = "{\"firmware_version\":\"1.0.0\"}";
        int i = r->devices[r->next_device];
        r->next_device = (r->next_device + 1) % r->ndevices;
        n = snprintf(buf, cap,
                     "POST /v1/devices/%s/heartbeat HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer otd_bench_%d\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     r->ids[i - 1], r->host, i, sizeof body - 1, body);
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* --- connections ---------------------------------------------------------------------------------------- */

static int connect_to(const char *host, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        errno = 0;
        die("HOST must be an IPv4 address");
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) /* blocking: all connect before the clock starts */
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void queue_due(conn_t *c, uint64_t due)
{
    if (c->due_count == c->due_cap) {
        size_t cap = c->due_cap != 0 ? c->due_cap * 2 : 8;
        uint64_t *ring = xcalloc(cap, sizeof *ring);
        for (size_t i = 0; i < c->due_count; i++)
            ring[i] = c->due[(c->due_head + i) % c->due_cap];
        free(c->due);
        c->due = ring;
        c->due_cap = cap;
        c->due_head = 0;
    }
    c->due[(c->due_head + c->due_count++) % c->due_cap] = due;
}

/* Sends the request due at `due` on `c`, which is idle. A failed send counts as an error. */
static void send_request(run_t *r, conn_t *c, uint64_t due)
{
    char buf[512];
    size_t len = next_request(r, buf, sizeof buf);
    ssize_t w = len > 0 ? send(c->fd, buf, len, MSG_NOSIGNAL) : -1;
    if (w != (ssize_t)len) { /* a request this small fits an empty socket buffer whole, or the peer is gone */
        r->errors++;
        r->outstanding--;
        return;
    }
    c->busy = true;
    c->sent_due = due;
    c->in_len = 0;
}

static void record(run_t *r, uint64_t due, uint64_t start, uint64_t now)
{
    if (due < start)
        return; /* due during the warm-up */
    if (r->measured == r->measured_cap) {
        r->measured_cap = r->measured_cap != 0 ? r->measured_cap * 2 : 65536;
        r->latencies_us = realloc(r->latencies_us, r->measured_cap * sizeof *r->latencies_us);
        r->seconds_due = realloc(r->seconds_due, r->measured_cap * sizeof *r->seconds_due);
        if (r->latencies_us == NULL || r->seconds_due == NULL)
            die("out of memory");
    }
    uint64_t us = (now - due) / 1000u;
    r->seconds_due[r->measured] = (uint32_t)((due - start) / 1000000000u);
    r->latencies_us[r->measured++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* The length of a complete answer at the start of `c->in` (headers and Content-Length body), or 0. */
static size_t complete_answer(conn_t *c, int *status)
{
    c->in[c->in_len < RESPONSE_MAX ? c->in_len : RESPONSE_MAX - 1] = '\0';
    const char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL)
        return 0;
    size_t header_len = (size_t)(end - c->in) + 4, body_len = 0;
    *status = atoi(c->in + 9); /* "HTTP/1.1 200 ..." */
    for (const char *p = strstr(c->in, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, "content-length:", 15) == 0)
            body_len = strtoul(p + 17, NULL, 10);
    return c->in_len >= header_len + body_len ? header_len + body_len : 0;
}

/* Reads what `c` has; when its answer is complete, records it and sends the next request waiting, if any. */
static void on_readable(run_t *r, conn_t *c, uint64_t start)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, RESPONSE_MAX - 1 - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        errno = 0;
        die("a connection was closed by the server"); /* keep-alive is expected throughout */
    }
    int status = 0;
    size_t len = complete_answer(c, &status);
    if (!c->busy || len == 0)
        return;
    if (len != c->in_len) {
        errno = 0;
        die("an answer came with more bytes than it announced");
    }
    uint64_t now = now_ns();
    record(r, c->sent_due, start, now);
    r->outstanding--;
    if (status < 200 || status > 299)
        r->non2xx++;
    c->busy = false;
    if (c->due_count > 0) {
        uint64_t due = c->due[c->due_head];
        c->due_head = (c->due_head + 1) % c->due_cap;
        c->due_count--;
        send_request(r, c, due);
    }
}

/* --- the run ---------------------------------------------------------------------------------------- */

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile of `n` sorted latencies. */
static uint32_t percentile_of(const uint32_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return sorted[i < n ? i : n - 1];
}

static uint32_t percentile(const run_t *r, double p)
{
    return percentile_of(r->latencies_us, r->measured, p);
}

/*
 * One line per second of the run: "SECOND s requests p99_us max_us", the requests due in that second. A p99 made
 * by a few stalls shows here as the seconds they fell in.
 */
static void print_seconds(const run_t *r)
{
    size_t nsec = (size_t)r->seconds + 1;
    for (size_t s = 0; s < nsec; s++) {
        size_t n = 0;
        for (size_t i = 0; i < r->measured; i++)
            n += r->seconds_due[i] == s;
        if (n == 0)
            continue;
        uint32_t *lat = xcalloc(n, sizeof *lat);
        for (size_t i = 0, j = 0; i < r->measured; i++)
            if (r->seconds_due[i] == s)
                lat[j++] = r->latencies_us[i];
        qsort(lat, n, sizeof *lat, compare_u32);
        printf("SECOND %zu %zu %u %u\n", s, n, percentile_of(lat, n, 99), lat[n - 1]);
        free(lat);
    }
}

static void run(run_t *r)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    r->conns = xcalloc((size_t)r->nconn, sizeof *r->conns);
    for (int i = 0; i < r->nconn; i++) {
        r->conns[i].fd = connect_to(r->host, r->port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r->conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, r->conns[i].fd, &ev) != 0)
            die("epoll_ctl");
    }
    double interval_ns = 1e9 / r->rate;
    uint64_t t0 = now_ns(), start = t0 + (uint64_t)(r->warmup * 1e9), end = start + (uint64_t)(r->seconds * 1e9);
    uint64_t k = 0; /* the next request to schedule */
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        for (uint64_t due = t0 + (uint64_t)((double)k * interval_ns); due <= now && due < end;
             due = t0 + (uint64_t)((double)++k * interval_ns)) {
            conn_t *c = &r->conns[k % (uint64_t)r->nconn];
            r->outstanding++;
            if (c->busy)
                queue_due(c, due);
            else
                send_request(r, c, due);
        }
        uint64_t next_due = t0 + (uint64_t)((double)k * interval_ns);
        if (next_due >= end && r->outstanding == 0)
            break;
        if (now > end + 10000000000ull) { /* 10 s after the end: what is left is lost */
            r->errors += r->outstanding;
            break;
        }
        /* Sleep until the next request is due, to the nanosecond (epoll_wait's milliseconds are too coarse at
           thousands of requests a second, and waking early would spin). */
        uint64_t wait_ns = next_due >= end ? 100000000u : next_due > now ? next_due - now : 0;
        struct timespec timeout = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
        int n = epoll_pwait2(ep, events, 256, &timeout, NULL);
        for (int i = 0; i < n; i++)
            on_readable(r, events[i].data.ptr, start);
    }
    print_seconds(r);
    qsort(r->latencies_us, r->measured, sizeof *r->latencies_us, compare_u32);
    printf("BENCH requests=%zu duration_us=%.0f rps=%.1f p50_us=%u p99_us=%u p999_us=%u max_us=%u non2xx=%llu "
           "errors=%llu\n",
           r->measured, r->seconds * 1e6, (double)r->measured / r->seconds, percentile(r, 50), percentile(r, 99),
           percentile(r, 99.9), r->measured > 0 ? r->latencies_us[r->measured - 1] : 0,
           (unsigned long long)r->non2xx, (unsigned long long)r->errors);
}

int main(int argc, char **argv)
{
    if (argc != 8 && argc != 11) {
        fprintf(stderr, "usage: openloop HOST PORT RATE CONNECTIONS SECONDS WARMUP_SECONDS PATH\n"
                        "       openloop HOST PORT RATE CONNECTIONS SECONDS WARMUP_SECONDS heartbeat IDS_FILE "
                        "plain|deliver EVERY\n");
        return 2;
    }
    run_t r = {.host = argv[1], .port = atoi(argv[2]), .rate = atof(argv[3]), .nconn = atoi(argv[4]),
               .seconds = atof(argv[5]), .warmup = atof(argv[6])};
    if (r.port <= 0 || r.rate <= 0 || r.nconn <= 0 || r.nconn > MAX_CONNECTIONS || r.seconds <= 0 || r.warmup < 0) {
        fprintf(stderr, "openloop: PORT, RATE, CONNECTIONS (1..%d) and SECONDS must be positive\n", MAX_CONNECTIONS);
        return 2;
    }
    if (argc == 8) {
        r.path = argv[7];
    } else {
        int every = atoi(argv[10]);
        if (strcmp(argv[7], "heartbeat") != 0 || every < 1 ||
            (strcmp(argv[9], "plain") != 0 && strcmp(argv[9], "deliver") != 0)) {
            fprintf(stderr, "openloop: expected heartbeat IDS_FILE plain|deliver EVERY\n");
            return 2;
        }
        load_fleet(&r, argv[8], argv[9], every);
    }
    run(&r);
    return 0;
}
