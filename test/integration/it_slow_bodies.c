/* strcasestr() */
#define _GNU_SOURCE

/*
 * Slow and stalled connections: a large upload on a slow but steady link succeeds however long it takes, while a
 * connection that stops sending (before its request, or halfway through its body) or stops reading (a download
 * of the fs storage) is closed after OTA_IDLE_TIMEOUT_MS. The server runs with a short idle limit so that the test
 * stays quick; the upload takes longer than h2o's own request timeout used to allow (10 s for the whole request).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "checks.h"
#include "harness.h"

#define IDLE_MS 1000
/* The slow upload: 12 MiB at 1 MiB/s, in pieces of 64 KiB. */
#define UPLOAD_BYTES (12 * 1024 * 1024)
#define PIECE (64 * 1024)
#define BYTES_PER_SECOND (1024 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(const h_server_t *srv)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        CHECK(k > 0, "send: %s", strerror(errno));
        c += k;
        n -= (size_t)k;
    }
}

/* Seconds until the server closes `fd` (reads and drops whatever arrives), or -1 after `limit` seconds. */
static double seconds_until_closed(int fd, double limit)
{
    double start = now_s();
    char buf[4096];
    while (now_s() - start < limit) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
            return now_s() - start;
    }
    return -1;
}

/* Reads one whole response (headers and a Content-Length body) within `limit` seconds; returns it, malloc'ed. */
static char *read_response(int fd, double limit, size_t *len)
{
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    double start = now_s();
    CHECK(buf != NULL, "out of memory");
    while (now_s() - start < limit) {
        char *end = got > 0 ? strstr(buf, "\r\n\r\n") : NULL;
        if (end != NULL) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            size_t want = (size_t)(end + 4 - buf) + (cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
            if (got >= want)
                break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (got + 1 >= cap)
            CHECK((buf = realloc(buf, cap *= 2)) != NULL, "out of memory");
        ssize_t k = recv(fd, buf + got, cap - got - 1, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = '\0';
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static int group_setup(void **state)
{
    (void)state;
    static const char *const env[] = {"OTA_IDLE_TIMEOUT_MS=1000", NULL};
    h_pg_start(&h_g_pg);
    h_server_start(&h_g_srv, &h_g_pg, env);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

/*
 * POSTs a multipart release (version 1.0.0 of `model`) with `len` bytes of `bin`, paced at `bytes_per_second`
 * (0: as fast as it goes), on a raw connection: no client timeout cuts a slow upload or a slow (sanitized) server
 * short. Returns the whole response (malloc'ed); `took` is how long the sending took, in seconds.
 */
static char *post_release(const char *model, const unsigned char *bin, size_t len, double bytes_per_second,
                          double *took)
{
    char hex[25], boundary[64], head[1024], part[512], tail[96];
    h_random_hex(hex, 24);
    snprintf(boundary, sizeof boundary, "----ota-slow-%s", hex);
    int plen = snprintf(part, sizeof part,
                        "--%s\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1.0.0\r\n"
                        "--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n%s\r\n"
                        "--%s\r\nContent-Disposition: form-data; name=\"bin\"; filename=\"f.bin\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n",
                        boundary, boundary, model, boundary);
    int tlen = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", boundary);
    size_t total = (size_t)plen + len + (size_t)tlen;
    int hlen = snprintf(head, sizeof head,
                        "POST /v1/releases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                        "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %zu\r\n\r\n",
                        h_g_srv.admin_key, boundary, total);
    char *body = malloc(total);
    CHECK(body != NULL, "out of memory");
    memcpy(body, part, (size_t)plen);
    memcpy(body + plen, bin, len);
    memcpy(body + plen + len, tail, (size_t)tlen);

    int fd = connect_to(&h_g_srv);
    double start = now_s();
    send_all(fd, head, (size_t)hlen);
    for (size_t sent = 0; sent < total;) {
        size_t n = total - sent < PIECE ? total - sent : PIECE;
        send_all(fd, body + sent, n);
        sent += n;
        double due = bytes_per_second > 0 ? start + (double)sent / bytes_per_second : 0;
        while (now_s() < due)
            h_sleep_ms(5);
    }
    *took = now_s() - start;
    size_t got = 0;
    char *resp = read_response(fd, 120, &got);
    close(fd);
    free(body);
    return resp;
}

/* The release in a 201 response: its JSON, checked to have a bin of `len` bytes with the SHA-256 of `bin`. */
static json_t *created_release(const char *resp, const unsigned char *bin, size_t len)
{
    const char *json = strstr(resp, "\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 201", 12) == 0 && json != NULL, "want 201: %.500s", resp);
    json_t *j = json_loads(json + 4, 0, NULL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char want[65];
    CHECK(EVP_Digest(bin, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32, "SHA-256 failed");
    for (unsigned i = 0; i < n; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    const char *got = h_jstr(json_object_get(json_object_get(j, "artifacts"), "bin"), "sha256");
    CHECK(h_streq(got, want), "sha256 %s, want %s: %.500s", got != NULL ? got : "(none)", want, json + 4);
    return j;
}

/* A multipart release upload paced at BYTES_PER_SECOND: 201 and the right SHA-256, however long it takes. */
static void test_slow_upload_succeeds(void **state)
{
    (void)state;
    char model[32];
    double took = 0;
    h_make_model(model, sizeof model, "Slow");
    unsigned char *bin = h_random_bytes(UPLOAD_BYTES);
    char *resp = post_release(model, bin, UPLOAD_BYTES, BYTES_PER_SECOND, &took);
    CHECK(took > 10.5, "the upload took %.1f s: it should outlast h2o's old 10 s request timeout", took);
    json_decref(created_release(resp, bin, UPLOAD_BYTES));
    free(resp);
    free(bin);
}

/* A connection that sends nothing is closed after the idle limit, not h2o's old 10 s. */
static void test_silent_connection_closed(void **state)
{
    (void)state;
    int fd = connect_to(&h_g_srv);
    double t = seconds_until_closed(fd, 8);
    close(fd);
    CHECK(t >= IDLE_MS / 1000.0 * 0.9 && t < IDLE_MS / 1000.0 + 3, "a silent connection closed after %.2f s", t);
}

/* Headers and half a body, then nothing: closed after the idle limit; the server still answers others. */
static void test_half_body_closed(void **state)
{
    (void)state;
    char head[512];
    int hlen = snprintf(head, sizeof head,
                        "POST /v1/releases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                        "Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n",
                        h_g_srv.admin_key);
    char *half = calloc(1, 100000);
    CHECK(half != NULL, "out of memory");
    memset(half, ' ', 100000);
    int fd = connect_to(&h_g_srv);
    send_all(fd, head, (size_t)hlen);
    send_all(fd, half, 100000);
    double t = seconds_until_closed(fd, 8);
    close(fd);
    free(half);
    CHECK(t >= IDLE_MS / 1000.0 * 0.9 && t < IDLE_MS / 1000.0 + 3, "a stalled body's connection closed after %.2f s",
          t);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* The presigned URL of release `id`'s bin: the Location of GET /v1/releases/{id}/artifacts/bin. */
static void artifact_location(const char *id, char *url, size_t cap)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /v1/releases/%s/artifacts/bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n",
                     id, h_g_srv.admin_key);
    int fd = connect_to(&h_g_srv);
    send_all(fd, req, (size_t)n);
    size_t len = 0;
    char *resp = read_response(fd, 10, &len);
    close(fd);
    const char *loc = strcasestr(resp, "\r\nlocation: ");
    CHECK(strncmp(resp, "HTTP/1.1 302", 12) == 0 && loc != NULL, "artifact: %.500s", resp);
    loc += 12;
    size_t k = strcspn(loc, "\r\n");
    CHECK(k < cap, "Location too long");
    memcpy(url, loc, k);
    url[k] = '\0';
    free(resp);
}

/*
 * A download whose client stops reading is disconnected after the idle limit: it gets only part of the blob,
 * then the end of the connection. Meanwhile another download of the same blob completes, byte for byte.
 */
static void test_stalled_download_closed(void **state)
{
    (void)state;
    char model[32], url[2048], req[2400];
    h_make_model(model, sizeof model, "Stall");
    size_t len = 8 * 1024 * 1024;
    double took = 0;
    unsigned char *bin = h_random_bytes(len);
    char *resp = post_release(model, bin, len, 0, &took);
    json_t *rel = created_release(resp, bin, len);
    artifact_location(h_jstr(rel, "id"), url, sizeof url);
    json_decref(rel);
    free(resp);
    CHECK(strncmp(url, h_g_srv.base_url, strlen(h_g_srv.base_url)) == 0, "not an fs blob URL: %s", url);

    /* A small receive buffer, so that the server's writes block soon. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h_g_srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0 &&
              connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
          "connect: %s", strerror(errno));
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", url + strlen(h_g_srv.base_url),
                     h_g_srv.port);
    send_all(fd, req, (size_t)n);

    h_buf_t other = {0};
    long status = h_download(url, &other);
    CHECK(status == 200 && other.len == len && memcmp(other.p, bin, len) == 0,
          "a download beside the stalled one: %ld, %zu bytes of %zu", status, other.len, len);
    free(other.p);

    h_sleep_ms(IDLE_MS * 3);
    struct timeval wait = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    size_t got = 0;
    char buf[65536];
    double start = now_s();
    for (;;) {
        CHECK(now_s() - start < 20, "the stalled download was not closed (%zu bytes read)", got);
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        CHECK(k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK),
              "the stalled download was not closed: nothing more came for 5 s (%zu bytes read)", got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    CHECK(got > 0 && got < len, "the stalled download got %zu bytes of %zu: want part, then the end", got, len);
    free(bin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silent_connection_closed),
        cmocka_unit_test(test_half_body_closed),
        cmocka_unit_test(test_slow_upload_succeeds),
        cmocka_unit_test(test_stalled_download_closed),
    };
    return cmocka_run_group_tests(tests, group_setup, h_group_teardown);
}
