/* strcasestr() */
#define _GNU_SOURCE

/*
 * Slow and stalled connections: a large upload on a slow but steady link succeeds however long it takes, while a
 * connection that stops sending (before its request, or halfway through its body) is closed after
 * OTA_IDLE_TIMEOUT_MS. The server runs with a short idle limit so that the test stays quick; the upload takes
 * longer than h2o's own request timeout used to allow (10 s for the whole request).
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

/* A multipart release upload of `bin`, paced at BYTES_PER_SECOND: 201 and the right SHA-256, however long. */
static void test_slow_upload_succeeds(void **state)
{
    (void)state;
    char model[32], hex[25], boundary[64], head[1024], part[512], tail[96];
    h_make_model(model, sizeof model, "Slow");
    h_random_hex(hex, 24);
    snprintf(boundary, sizeof boundary, "----ota-slow-%s", hex);
    unsigned char *bin = h_random_bytes(UPLOAD_BYTES);
    int plen = snprintf(part, sizeof part,
                        "--%s\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1.0.0\r\n"
                        "--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n%s\r\n"
                        "--%s\r\nContent-Disposition: form-data; name=\"bin\"; filename=\"f.bin\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n",
                        boundary, boundary, model, boundary);
    int tlen = snprintf(tail, sizeof tail, "\r\n--%s--\r\n", boundary);
    size_t total = (size_t)plen + UPLOAD_BYTES + (size_t)tlen;
    int hlen = snprintf(head, sizeof head,
                        "POST /v1/releases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                        "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %zu\r\n\r\n",
                        h_g_srv.admin_key, boundary, total);
    char *body = malloc(total);
    CHECK(body != NULL, "out of memory");
    memcpy(body, part, (size_t)plen);
    memcpy(body + plen, bin, UPLOAD_BYTES);
    memcpy(body + plen + UPLOAD_BYTES, tail, (size_t)tlen);

    int fd = connect_to(&h_g_srv);
    double start = now_s();
    send_all(fd, head, (size_t)hlen);
    for (size_t sent = 0; sent < total;) {
        size_t n = total - sent < PIECE ? total - sent : PIECE;
        send_all(fd, body + sent, n);
        sent += n;
        double due = start + (double)sent / BYTES_PER_SECOND;
        while (now_s() < due)
            h_sleep_ms(5);
    }
    double took = now_s() - start;
    size_t len = 0;
    char *resp = read_response(fd, 60, &len);
    close(fd);
    CHECK(took > 10.5, "the upload took %.1f s: it should outlast h2o's old 10 s request timeout", took);
    CHECK(strncmp(resp, "HTTP/1.1 201", 12) == 0, "after %.1f s of upload: %.500s", took, resp);
    const char *json = strstr(resp, "\r\n\r\n");
    json_t *j = json_loads(json + 4, 0, NULL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char want[65];
    CHECK(EVP_Digest(bin, UPLOAD_BYTES, md, &n, EVP_sha256(), NULL) == 1 && n == 32, "SHA-256 failed");
    for (unsigned i = 0; i < n; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    const char *got = h_jstr(json_object_get(json_object_get(j, "artifacts"), "bin"), "sha256");
    CHECK(h_streq(got, want), "sha256 %s, want %s: %.500s", got != NULL ? got : "(none)", want, json + 4);
    json_decref(j);
    free(resp);
    free(body);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silent_connection_closed),
        cmocka_unit_test(test_half_body_closed),
        cmocka_unit_test(test_slow_upload_succeeds),
    };
    return cmocka_run_group_tests(tests, group_setup, h_group_teardown);
}
