#define _GNU_SOURCE
#include "test_device_stub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUEUE_MAX 16

struct stub {
    int listen_fd;
    int port;
    char url[64];
    pthread_t thread;
    pthread_mutex_t lock;
    bool stopping;
    unsigned char *image, *delta;
    size_t image_len, delta_len;
    int delta_requests;
    stub_faults_t faults;
    char *queue[QUEUE_MAX];
    int queued, queue_head;
    long ranges[STUB_MAX_RECORDS];
    int image_requests;
    char *beats[STUB_MAX_RECORDS];
    int heartbeats;
};

static void die(const char *what)
{
    fprintf(stderr, "stub: %s: %s\n", what, strerror(errno));
    abort();
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

static void send_simple(int fd, int status, const char *type, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     type, strlen(body));
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

/* Reads one request: head into `head` (NUL-terminated), body (Content-Length) malloc'ed into *body. */
static bool read_request(int fd, char *head, size_t cap, char **body)
{
    size_t n = 0;
    char *end = NULL;
    *body = NULL;
    while (end == NULL) {
        if (n + 1 >= cap)
            return false;
        ssize_t k = recv(fd, head + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        n += (size_t)k;
        head[n] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - head) + 4, have = n - head_len, want = 0;
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    if (cl != NULL && cl < end)
        want = strtoul(cl + 17, NULL, 10);
    *body = calloc(1, want + 1);
    if (*body == NULL)
        return false;
    memcpy(*body, head + head_len, have < want ? have : want);
    while (have < want) {
        ssize_t k = recv(fd, *body + have, want - have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        have += (size_t)k;
    }
    head[head_len] = '\0';
    return true;
}

/* Serves the image (/img...) or the delta (/delta...), with the faults (which strike either). */
static void serve_image(stub_t *s, int fd, const char *path, const char *head)
{
    long start = -1;
    bool delta = strncmp(path, "/delta", 6) == 0;
    const char *range = strcasestr(head, "\r\nRange: bytes=");
    if (range != NULL)
        start = strtol(range + 15, NULL, 10);
    pthread_mutex_lock(&s->lock);
    if (delta) {
        s->delta_requests++;
    } else {
        if (s->image_requests < STUB_MAX_RECORDS)
            s->ranges[s->image_requests] = start;
        s->image_requests++;
    }
    const unsigned char *blob = delta ? s->delta : s->image;
    size_t blob_len = delta ? s->delta_len : s->image_len;
    stub_faults_t *f = &s->faults;
    int status = 0;
    if (f->status_count > 0) {
        status = f->status_next;
        f->status_count--;
    } else if (f->refuse_path_old && strstr(path, "old") != NULL) {
        status = 403;
    }
    long drop = f->drop_after;
    f->drop_after = -1;
    bool ignore_range = f->ignore_range;
    size_t extra = f->extra;
    size_t len = blob_len + extra;
    unsigned char *data = calloc(1, len ? len : 1);
    if (data == NULL)
        die("calloc");
    if (blob_len > 0)
        memcpy(data, blob, blob_len);
    pthread_mutex_unlock(&s->lock);

    char hdr[512];
    int n;
    if (status == 403) {
        send_simple(
            fd, 403, "application/xml",
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>");
    } else if (status != 0) {
        send_simple(fd, status, "text/plain", "no");
    } else if (start >= 0 && (size_t)start >= len && !ignore_range) {
        send_simple(fd, 416, "text/plain", "range");
    } else {
        size_t from = start >= 0 && !ignore_range ? (size_t)start : 0;
        if (from > 0)
            n = snprintf(hdr, sizeof hdr,
                         "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n",
                         from, len - 1, len, len - from);
        else
            n = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", len);
        send_all(fd, hdr, (size_t)n);
        size_t count = len - from;
        if (drop >= 0 && (size_t)drop < count)
            count = (size_t)drop; /* then the connection closes early */
        send_all(fd, data + from, count);
    }
    free(data);
}

static void serve_heartbeat(stub_t *s, int fd, char *body)
{
    char *answer = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->heartbeats < STUB_MAX_RECORDS) {
        s->beats[s->heartbeats] = body;
        body = NULL;
    }
    s->heartbeats++;
    if (s->queued > 0) {
        answer = s->queue[s->queue_head];
        s->queue_head = (s->queue_head + 1) % QUEUE_MAX;
        s->queued--;
    }
    pthread_mutex_unlock(&s->lock);
    send_simple(fd, 200, "application/json",
                answer != NULL ? answer
                               : "{\"server_time\":\"2026-11-21T10:00:00Z\",\"heartbeat_interval_s\":60,\"ota\":null,"
                                 "\"deferred\":null}");
    free(answer);
    free(body);
}

static void *server_main(void *arg)
{
    stub_t *s = arg;
    for (;;) {
        struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
        int r = poll(&p, 1, 50);
        pthread_mutex_lock(&s->lock);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            return NULL;
        if (r <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        char head[16384], method[16] = "", path[512] = "";
        char *body = NULL;
        if (read_request(fd, head, sizeof head, &body) && sscanf(head, "%15s %511s", method, path) == 2) {
            if (strcmp(method, "GET") == 0 && (strncmp(path, "/img", 4) == 0 || strncmp(path, "/delta", 6) == 0))
                serve_image(s, fd, path, head);
            else if (strcmp(method, "POST") == 0 && strstr(path, "/heartbeat") != NULL) {
                serve_heartbeat(s, fd, body);
                body = NULL;
            } else
                send_simple(fd, 404, "application/json", "{\"error\":{\"code\":\"not_found\",\"message\":\"no\"}}");
        }
        free(body);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
}

stub_t *stub_start(void)
{
    stub_t *s = calloc(1, sizeof *s);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (s == NULL)
        die("calloc");
    s->faults = stub_faults_none();
    pthread_mutex_init(&s->lock, NULL);
    if ((s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->listen_fd, 16) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &alen) != 0)
        die("listen");
    s->port = ntohs(a.sin_port);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0)
        die("pthread_create");
    return s;
}

void stub_stop(stub_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    for (int i = 0; i < s->heartbeats && i < STUB_MAX_RECORDS; i++)
        free(s->beats[i]);
    while (s->queued > 0) {
        free(s->queue[s->queue_head]);
        s->queue_head = (s->queue_head + 1) % QUEUE_MAX;
        s->queued--;
    }
    free(s->image);
    free(s->delta);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *stub_url(const stub_t *s)
{
    return s->url;
}

/* Replaces *blob with a copy of `len` bytes at `data`. */
static void set_blob(stub_t *s, unsigned char **blob, size_t *blob_len, const unsigned char *data, size_t len)
{
    pthread_mutex_lock(&s->lock);
    free(*blob);
    *blob = malloc(len ? len : 1);
    if (*blob == NULL)
        die("malloc");
    if (len > 0)
        memcpy(*blob, data, len);
    *blob_len = len;
    pthread_mutex_unlock(&s->lock);
}

void stub_set_image(stub_t *s, const unsigned char *data, size_t len)
{
    set_blob(s, &s->image, &s->image_len, data, len);
}

void stub_set_delta(stub_t *s, const unsigned char *data, size_t len)
{
    set_blob(s, &s->delta, &s->delta_len, data, len);
}

int stub_delta_requests(stub_t *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->delta_requests;
    pthread_mutex_unlock(&s->lock);
    return n;
}

stub_faults_t stub_faults_none(void)
{
    stub_faults_t f = {.drop_after = -1};
    return f;
}

void stub_set_faults(stub_t *s, const stub_faults_t *f)
{
    pthread_mutex_lock(&s->lock);
    s->faults = *f;
    pthread_mutex_unlock(&s->lock);
}

void stub_queue_answer(stub_t *s, const char *json)
{
    pthread_mutex_lock(&s->lock);
    if (s->queued < QUEUE_MAX) {
        s->queue[(s->queue_head + s->queued) % QUEUE_MAX] = strdup(json);
        s->queued++;
    }
    pthread_mutex_unlock(&s->lock);
}

void stub_clear_answers(stub_t *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->queued > 0) {
        free(s->queue[s->queue_head]);
        s->queue_head = (s->queue_head + 1) % QUEUE_MAX;
        s->queued--;
    }
    pthread_mutex_unlock(&s->lock);
}

int stub_image_requests(stub_t *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->image_requests;
    pthread_mutex_unlock(&s->lock);
    return n;
}

long stub_range_start(stub_t *s, int i)
{
    pthread_mutex_lock(&s->lock);
    long v = i >= 0 && i < s->image_requests && i < STUB_MAX_RECORDS ? s->ranges[i] : -2;
    pthread_mutex_unlock(&s->lock);
    return v;
}

int stub_heartbeats(stub_t *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->heartbeats;
    pthread_mutex_unlock(&s->lock);
    return n;
}

const char *stub_heartbeat_body(stub_t *s, int i)
{
    pthread_mutex_lock(&s->lock);
    const char *b = i >= 0 && i < s->heartbeats && i < STUB_MAX_RECORDS ? s->beats[i] : NULL;
    pthread_mutex_unlock(&s->lock);
    return b;
}
