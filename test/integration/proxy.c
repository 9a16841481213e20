/*
 * The man in the middle (proxy.h). Plain sockets towards the device, so the
 * test controls every byte it gets (a Content-Length that lies, an answer cut
 * short, bytes trickled); libcurl towards the real server.
 */
#define _GNU_SOURCE
#include "proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>

struct h_proxy {
    int fd;
    char url[64];
    char upstream[128];
    h_proxy_hook hook;
    h_proxy_forward_fn forward;
    void *arg;
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
    CURL *curl;
};

/* A growing buffer with a cap. */
typedef struct buf {
    char *p;
    size_t len, cap, max;
    bool over;
} buf_t;

static bool buf_add(buf_t *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->max) {
        b->over = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the request ---------------------------------------------------------------------------- */

/* The value of header `name` in the request head `head` (NUL-terminated, lines end in \r\n), copied into `out`. */
static bool header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL && line[2] != '\0'; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, n) != 0 || l[n] != ':')
            continue;
        const char *v = l + n + 1;
        while (*v == ' ')
            v++;
        const char *end = strstr(v, "\r\n");
        size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
        if (len >= cap)
            return false;
        memcpy(out, v, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

/* Reads one request from `fd` into `req` (head and body); false when it is not one. */
static bool read_request(int fd, buf_t *req, size_t *head_len, size_t *body_len)
{
    char chunk[16384], value[32];
    char *end = NULL;
    while ((end = req->p != NULL ? strstr(req->p, "\r\n\r\n") : NULL) == NULL) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0 || !buf_add(req, chunk, (size_t)n))
            return false;
    }
    *head_len = (size_t)(end - req->p) + 4;
    char saved = req->p[*head_len];
    req->p[*head_len] = '\0';
    long long want = header_value(req->p, "Content-Length", value, sizeof value) ? atoll(value) : 0;
    req->p[*head_len] = saved;
    if (want < 0 || (size_t)want > req->max)
        return false;
    while (req->len - *head_len < (size_t)want) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0 || !buf_add(req, chunk, (size_t)n))
            return false;
    }
    *body_len = (size_t)want;
    return true;
}

/* ---- upstream -------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    return buf_add(arg, data, size * n) ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    h_proxy_exchange_t *x = arg;
    size_t len = size * n;
    char line[512];
    if (len >= sizeof line)
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "Content-Type:", 13) == 0)
        snprintf(x->content_type, sizeof x->content_type, "%s", line + 13 + strspn(line + 13, " "));
    else if (strncasecmp(line, "Content-Range:", 14) == 0)
        snprintf(x->content_range, sizeof x->content_range, "%s", line + 14 + strspn(line + 14, " "));
    return len;
}

/* Asks upstream; fills the answer of `x` (status 0 when it cannot be reached). */
static void ask_upstream(h_proxy_t *p, h_proxy_exchange_t *x)
{
    char url[8400], header[600];
    buf_t body = {.max = H_PROXY_ANSWER_MAX};
    struct curl_slist *headers = NULL;
    CURL *c = p->curl;
    snprintf(url, sizeof url, "%s%s", p->upstream, x->path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (x->auth != NULL) {
        snprintf(header, sizeof header, "Authorization: %s", x->auth);
        headers = curl_slist_append(headers, header);
    }
    if (x->range != NULL) {
        snprintf(header, sizeof header, "Range: %s", x->range);
        headers = curl_slist_append(headers, header);
    }
    if (x->req_len > 0 || strcmp(x->method, "POST") == 0) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->req_body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)x->req_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    x->status = (int)status;
    if (body.p == NULL)
        buf_add(&body, "", 0);
    x->body = body.p;
    x->len = body.len;
}

/* ---- the answer ------------------------------------------------------------------------------- */

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void send_answer(int fd, const h_proxy_exchange_t *x)
{
    char head[1024];
    long long declared = x->declared_len >= 0 ? x->declared_len : (long long)x->len;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %lld\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     x->status, x->content_type[0] != '\0' ? x->content_type : "application/octet-stream", declared,
                     x->content_range[0] != '\0' ? "Content-Range: " : "", x->content_range,
                     x->content_range[0] != '\0' ? "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof head || !send_all(fd, head, (size_t)n))
        return;
    if (strcmp(x->method, "HEAD") == 0)
        return;
    size_t total = x->len < x->send_max ? x->len : x->send_max;
    size_t chunk = x->trickle_ms > 0 && x->trickle_chunk > 0 ? x->trickle_chunk : total;
    for (size_t off = 0; off < total; off += chunk) {
        size_t k = total - off < chunk ? total - off : chunk;
        if (!send_all(fd, x->body + off, k))
            return;
        if (x->trickle_ms > 0 && off + k < total)
            sleep_ms(x->trickle_ms);
    }
}

/* ---- one connection ----------------------------------------------------------------------------- */

static void serve(h_proxy_t *p, int fd)
{
    buf_t req = {.max = H_PROXY_REQUEST_MAX};
    size_t head_len = 0, body_len = 0;
    char auth[1024], range[256];
    h_proxy_exchange_t x;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&x, 0, sizeof x);
    if (!read_request(fd, &req, &head_len, &body_len))
        goto Exit;
    char saved = req.p[head_len];
    req.p[head_len] = '\0';
    if (sscanf(req.p, "%15s %8191s", x.method, x.path) != 2)
        goto Exit;
    x.auth = header_value(req.p, "Authorization", auth, sizeof auth) ? auth : NULL;
    x.range = header_value(req.p, "Range", range, sizeof range) ? range : NULL;
    req.p[head_len] = saved;
    x.req_body = req.p + head_len;
    x.req_len = body_len;
    x.declared_len = -1;
    x.send_max = (size_t)-1;
    atomic_fetch_add(&p->requests, 1);
    if (p->forward == NULL || p->forward(p->arg, &x))
        ask_upstream(p, &x);
    else
        x.body = calloc(1, 1);
    if (p->hook != NULL)
        p->hook(p->arg, &x);
    if (x.status != 0)
        send_answer(fd, &x);
Exit:
    free(x.body);
    free(req.p);
}

static void *run(void *arg)
{
    h_proxy_t *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept(p->fd, NULL, NULL);
        if (fd < 0)
            continue;
        serve(p, fd);
        close(fd);
    }
    return NULL;
}

h_proxy_t *h_proxy_start(const char *upstream, h_proxy_hook hook, h_proxy_forward_fn forward, void *arg)
{
    h_proxy_t *p = calloc(1, sizeof *p);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (p == NULL || (p->curl = curl_easy_init()) == NULL)
        abort();
    snprintf(p->upstream, sizeof p->upstream, "%s", upstream);
    p->hook = hook;
    p->forward = forward;
    p->arg = arg;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0 || bind(p->fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(p->fd, 16) != 0 ||
        getsockname(p->fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "proxy: cannot listen: %s\n", strerror(errno));
        exit(1);
    }
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", ntohs(addr.sin_port));
    if (pthread_create(&p->thread, NULL, run, p) != 0)
        abort();
    return p;
}

const char *h_proxy_url(const h_proxy_t *p)
{
    return p->url;
}

int h_proxy_requests(h_proxy_t *p)
{
    return atomic_load(&p->requests);
}

void h_proxy_stop(h_proxy_t *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->fd);
    curl_easy_cleanup(p->curl);
    free(p);
}
