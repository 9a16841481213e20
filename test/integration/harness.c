/*
 * Integration test harness (see harness.h).
 *
 * Why it looks the way it does:
 * - Every child is started with fork + execvpe and an explicit argv, never
 *   through a shell, so paths and SQL need no quoting.
 * - Children get the caller's environment minus every OTA_* and PG*
 *   variable, so a developer's exported settings cannot leak into a test.
 * - Everything started is recorded in static tables (copies, not pointers to
 *   the caller's structs, which may live on a stack that is gone by then).
 *   An atexit handler kills leftover servers, stops leftover clusters and
 *   removes the temporary directories (kept when OTA_TEST_KEEP is set); a
 *   handler for SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGABRT does the async-signal-safe
 *   part (SIGKILL the servers, SIGQUIT the postmasters). Servers also get
 *   PR_SET_PDEATHSIG so they die with the test even on SIGKILL.
 * - The fs blob directory and the manifest signing key live in the cluster's
 *   directory, not the server's, so a server restarted on the same cluster
 *   (or a second instance) sees the same state, as in a real deployment.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef OTA_SERVER_BIN
#error "OTA_SERVER_BIN must be defined to the path of the ota-server binary"
#endif

extern char **environ;

#define BODY_CAP (16u * 1024 * 1024)
#define REQUEST_TIMEOUT_MS 10000L
#define SERVER_START_MS 20000L
#define SERVER_STOP_MS 15000L
#define COMMAND_TIMEOUT_MS 120000L
#define WRAPPER_SLOWDOWN 6 /* valgrind and friends start slowly */
#define MAX_CLUSTERS 16
#define MAX_SERVERS 64
#define MAX_WRAPPER_WORDS 16

typedef struct cluster_slot {
    bool used;
    bool running;
    char dir[256];
    char pidfile[300]; /* precomputed: read from a signal handler */
} cluster_slot_t;

typedef struct server_slot {
    bool used;
    pid_t pid; /* 0 once reaped */
    char dir[256];
} server_slot_t;

static cluster_slot_t clusters[MAX_CLUSTERS];
static server_slot_t servers[MAX_SERVERS];
static pid_t owner_pid;
static char wrapper_buf[512];
static const char *wrapper_words[MAX_WRAPPER_WORDS];
static int wrapper_count;
static volatile sig_atomic_t in_fatal_signal;

/* ---- small utilities ---------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("harness: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(EXIT_FAILURE);
}

/** snprintf that dies instead of truncating. */
__attribute__((format(printf, 3, 4))) static void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, cap, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        die("internal: string too long for its buffer (%zu bytes)", cap);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool is_root(void)
{
    return geteuid() == 0;
}

static bool keep_files(void)
{
    const char *k = getenv("OTA_TEST_KEEP");
    return k != NULL && *k != '\0' && strcmp(k, "0") != 0;
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    return fd;
}

/** Copies the last `tail` bytes of a file to stderr between banners. */
static void dump_file(const char *title, const char *path, long tail)
{
    FILE *f = fopen(path, "r");
    fprintf(stderr, "----- %s (%s) -----\n", title, path);
    if (f == NULL) {
        fprintf(stderr, "(cannot open: %s)\n", strerror(errno));
    } else {
        if (fseek(f, 0, SEEK_END) == 0) {
            long size = ftell(f);
            if (size > tail) {
                fseek(f, size - tail, SEEK_SET);
                fputs("[...]\n", stderr);
            } else {
                fseek(f, 0, SEEK_SET);
            }
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
    }
    fprintf(stderr, "----- end of %s -----\n", title);
    fflush(stderr);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "harness: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir[0] == '\0' || strncmp(dir, "/tmp/ota-", 9) != 0)
        return; /* only ever what this file created */
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

void h_random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned char buf[64];
        size_t want = (n - i + 1) / 2;
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t got = getrandom(buf, want, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            die("getrandom: %s", strerror(errno));
        }
        for (ssize_t j = 0; j < got && i < n; j++) {
            out[i++] = digits[buf[j] >> 4];
            if (i < n)
                out[i++] = digits[buf[j] & 15];
        }
    }
    out[n] = '\0';
}

