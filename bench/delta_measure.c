/*
 * ota-delta-measure: what a delta between two images costs, made exactly as the server makes it
 * (ota__delta_make, server/releases/delta_make.c). For choosing the compression level and checking it on real
 * firmware pairs; not installed.
 *
 *   ota-delta-measure FROM TO
 *
 * Prints one JSON line: the two sizes, the delta's size, its ratio to TO (the server offers a delta only under
 * 0.6), and the CPU time the process spent making it (CLOCK_PROCESS_CPUTIME_ID, so the reading of the files
 * is not counted). Exits 1 when a file cannot be read or the delta cannot be made.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/file_io.h"
#include "releases/delta_make.h"

/* The largest image read: a delta's window (1 GiB) bounds both images together anyway. */
#define IMAGE_MAX ((size_t)1 << 30)

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
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

int main(int argc, char **argv)
{
    int rc = 1;
    unsigned char *from = NULL, *to = NULL, *delta = NULL;
    size_t from_len = 0, to_len = 0, delta_len = 0;
    char err[256];
    if (argc != 3) {
        fprintf(stderr, "usage: ota-delta-measure FROM TO\n");
        return 2;
    }
    if ((from = read_image(argv[1], &from_len)) == NULL || (to = read_image(argv[2], &to_len)) == NULL)
        goto Exit;
    double start = cpu_seconds();
    if (ota__delta_make(from, from_len, to, to_len, &delta, &delta_len, err, sizeof err) != OTA_OK) {
        fprintf(stderr, "ota-delta-measure: %s\n", err);
        goto Exit;
    }
    double cpu = cpu_seconds() - start;
    printf("{\"from_size\": %zu, \"to_size\": %zu, \"delta_size\": %zu, \"ratio\": %.6f, \"cpu_seconds\": %.3f}\n",
           from_len, to_len, delta_len, (double)delta_len / (double)to_len, cpu);
    rc = 0;

Exit:
    free(delta);
    free(to);
    free(from);
    return rc;
}
