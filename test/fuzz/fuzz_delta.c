/*
 * libFuzzer driver for applying a delta (device/delta.c): the input is the
 * delta, applied to a fixed base of BASE_LEN bytes. The image size asked
 * for is the content size the input's frame declares when that is at most
 * OUT_MAX (so that the fuzzer gets past the header into the blocks), else
 * OUT_MAX. Whatever the bytes, the call must return (no crash, no read or
 * write past the mappings, which ASan sees), with OTA_OK or OTA_ERR_INVALID
 * only (the files are all there), and the output file must have the size
 * asked for when it says OTA_OK. The corpus (corpus/fuzz_delta/) holds real
 * deltas from this base, made with `zstd --patch-from` (the base is what
 * make_base writes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "delta.h"

#define BASE_LEN 65536
#define OUT_MAX (1u << 20)

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_delta.c:%d: check failed\n", line);
        abort();
    }
}

static char g_dir[64], g_base[128], g_delta[128], g_out[128];

/* The base: lines of text that change slowly, as firmware strings and tables might. */
static void make_base(const char *path)
{
    FILE *f = fopen(path, "wb");
    check(f != NULL);
    for (unsigned i = 0; i < BASE_LEN / 16; i++)
        check(fprintf(f, "block %04x %04x\n", i, (i * 7919u) & 0xffffu) == 16);
    check(fclose(f) == 0);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    check(f != NULL);
    check(len == 0 || fwrite(data, 1, len, f) == len);
    check(fclose(f) == 0);
}

static void cleanup(void)
{
    unlink(g_base);
    unlink(g_delta);
    unlink(g_out);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz-delta-XXXXXX");
    check(mkdtemp(g_dir) != NULL);
    snprintf(g_base, sizeof g_base, "%s/base", g_dir);
    snprintf(g_delta, sizeof g_delta, "%s/delta", g_dir);
    snprintf(g_out, sizeof g_out, "%s/out", g_dir);
    make_base(g_base);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    char why[256] = "";
    struct stat st;
    unsigned long long declared = ZSTD_getFrameContentSize(data, len);
    uint64_t size = declared >= 1 && declared <= OUT_MAX ? declared : OUT_MAX;
    write_file(g_delta, data, len);
    ota_err_t rc = ota__delta_apply(g_base, g_delta, g_out, size, why, sizeof why);
    check(rc == OTA_OK || rc == OTA_ERR_INVALID);
    check(why[0] != '\0' || rc == OTA_OK);
    if (rc == OTA_OK)
        check(stat(g_out, &st) == 0 && (uint64_t)st.st_size == size);
    return 0;
}
