/*
 * ota-delta-measure: what a delta between two images costs, made exactly as the server makes it
 * (ota__delta_make, server/releases/delta_make.c) and applied exactly as the device applies it (ota__delta_apply,
 * device/delta.c). For choosing the compression level and checking it on real firmware pairs; not installed.
 *
 *   ota-delta-measure FROM TO
 *
 * Prints one JSON line:
 *   from_size, to_size, delta_size, ratio  the delta's size and its ratio to TO (the server offers a delta only
 *                                          under 0.6);
 *   cpu_seconds        the CPU time the process spent making it (CLOCK_PROCESS_CPUTIME_ID, so the reading of the
 *                      files is not counted);
 *   apply_seconds      the wall time of ota__delta_apply in a forked child: base = FROM, the delta and the output
 *                      in a temporary folder ($TMPDIR, else /tmp), the output synced to disk as on the device;
 *   apply_hwm_kib      the child's peak RSS (VmHWM, read by the child after the call). It counts the pages of the
 *                      two mapped files (up to FROM's and TO's size), which are page cache, not the child's own;
 *   apply_anon_start_kib, apply_anon_peak_kib  the child's RssAnon at its start and the most the parent saw while
 *                      sampling /proc/PID/status every 200 us (apply_anon_samples times): the child's own memory.
 *                      A sample can miss a peak shorter than its period, so a run with few samples says little;
 *   equal              whether the image made is byte for byte TO.
 * The child starts after every buffer of the making is freed and trimmed, so what it inherits is only the
 * program's own baseline (apply_anon_start_kib). Exits 1 when a file cannot be read or written, the delta cannot
 * be made or applied, or the image made is not TO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/file_io.h"
#include "delta.h"
#include "releases/delta_make.h"

/* The largest image read: a delta's window (1 GiB) bounds both images together anyway. */
#define IMAGE_MAX ((size_t)1 << 30)
#define SAMPLE_NS 200000L /* the parent's sampling period of the child's RssAnon */

/* What the child reports through its pipe. */
typedef struct applied {
    int ok;
    double seconds;
    long hwm_kib, anon_start_kib;
    char why[256];
} applied_t;

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *read_image(const char *path, size_t *len)
{
    unsigned char *data = NULL;
    if (ota__read_file(path, IMAGE_MAX, &data, len) != OTA_OK) {
        fprintf(stderr, "ota-delta-measure: cannot read %s\n", path);
        return NULL;
    }
    return data;
}

static bool write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL && fwrite(data, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "ota-delta-measure: cannot write %s: %s\n", path, strerror(errno));
    return ok;
}

/* A "Name:  N kB" line of /proc/PID/status, in KiB; -1 when absent (a process that has exited has none). */
static long status_kib(const char *status_path, const char *name)
{
    char line[256];
    long kib = -1;
    size_t n = strlen(name);
    FILE *f = fopen(status_path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* The child: applies the delta as the device does and writes what it saw to `fd`. */
static void apply_child(int fd, const char *base, const char *delta, const char *out, uint64_t size)
{
    applied_t r = {0};
    r.anon_start_kib = status_kib("/proc/self/status", "RssAnon");
    double start = clock_seconds(CLOCK_MONOTONIC);
    r.ok = ota__delta_apply(base, delta, out, size, r.why, sizeof r.why) == OTA_OK;
    r.seconds = clock_seconds(CLOCK_MONOTONIC) - start;
    r.hwm_kib = status_kib("/proc/self/status", "VmHWM");
    _exit(write(fd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
}

/* Forks the child and samples its RssAnon until it exits. False when it could not run or report. */
static bool apply_measured(const char *base, const char *delta, const char *out, uint64_t size, applied_t *r,
                           long *anon_peak, long *samples)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        apply_child(fds[1], base, delta, out, size);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return false;
    }
    char status_path[64];
    snprintf(status_path, sizeof status_path, "/proc/%d/status", (int)pid);
    const struct timespec period = {0, SAMPLE_NS};
    int wstatus = 0;
    *anon_peak = *samples = 0;
    while (waitpid(pid, &wstatus, WNOHANG) == 0) {
        long kib = status_kib(status_path, "RssAnon");
        if (kib >= 0) {
            *samples += 1;
            if (kib > *anon_peak)
                *anon_peak = kib;
        }
        nanosleep(&period, NULL);
    }
    bool ok = read(fds[0], r, sizeof *r) == (ssize_t)sizeof *r && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    close(fds[0]);
    return ok;
}

/* Whether the files at a and b hold the same bytes. */
static bool same_bytes(const char *a, const char *b)
{
    size_t a_len = 0, b_len = 0;
    unsigned char *x = read_image(a, &a_len), *y = x != NULL ? read_image(b, &b_len) : NULL;
    bool same = y != NULL && a_len == b_len && memcmp(x, y, a_len) == 0;
    free(y);
    free(x);
    return same;
}

int main(int argc, char **argv)
{
    int rc = 1;
    unsigned char *from = NULL, *to = NULL, *delta = NULL;
    size_t from_len = 0, to_len = 0, delta_len = 0;
    char err[256], dir[4096] = "", delta_path[4200] = "", out_path[4200] = "";
    if (argc != 3) {
        fprintf(stderr, "usage: ota-delta-measure FROM TO\n");
        return 2;
    }
    if ((from = read_image(argv[1], &from_len)) == NULL || (to = read_image(argv[2], &to_len)) == NULL)
        goto Exit;
    double start = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    if (ota__delta_make(from, from_len, to, to_len, &delta, &delta_len, err, sizeof err) != OTA_OK) {
        fprintf(stderr, "ota-delta-measure: %s\n", err);
        goto Exit;
    }
    double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - start;

    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ota-delta-measure.XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "ota-delta-measure: cannot make a folder %s: %s\n", dir, strerror(errno));
        dir[0] = '\0';
        goto Exit;
    }
    snprintf(delta_path, sizeof delta_path, "%s/delta", dir);
    snprintf(out_path, sizeof out_path, "%s/image", dir);
    if (!write_file(delta_path, delta, delta_len))
        goto Exit;
    /* The child would count these buffers as its own (shared until written, but resident): gone before it. */
    free(delta), free(to), free(from);
    delta = to = from = NULL;
    malloc_trim(0);

    applied_t r;
    long anon_peak, samples;
    if (!apply_measured(argv[1], delta_path, out_path, to_len, &r, &anon_peak, &samples)) {
        fprintf(stderr, "ota-delta-measure: the applying child failed\n");
        goto Exit;
    }
    if (!r.ok) {
        fprintf(stderr, "ota-delta-measure: applying the delta: %s\n", r.why);
        goto Exit;
    }
    bool equal = same_bytes(out_path, argv[2]);
    printf("{\"from_size\": %zu, \"to_size\": %zu, \"delta_size\": %zu, \"ratio\": %.6f, \"cpu_seconds\": %.3f, "
           "\"apply_seconds\": %.6f, \"apply_hwm_kib\": %ld, \"apply_anon_start_kib\": %ld, "
           "\"apply_anon_peak_kib\": %ld, \"apply_anon_samples\": %ld, \"equal\": %s}\n",
           from_len, to_len, delta_len, (double)delta_len / (double)to_len, cpu, r.seconds, r.hwm_kib, r.anon_start_kib,
           anon_peak, samples, equal ? "true" : "false");
    if (!equal)
        fprintf(stderr, "ota-delta-measure: the image the delta made is not TO\n");
    rc = equal ? 0 : 1;

Exit:
    if (*delta_path != '\0')
        unlink(delta_path);
    if (*out_path != '\0')
        unlink(out_path);
    if (*dir != '\0')
        rmdir(dir);
    free(delta);
    free(to);
    free(from);
    return rc;
}
