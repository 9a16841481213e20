/*
 * zstd patch-from: the old image is the compressor's prefix (a raw-content
 * dictionary that the new image's matches may reach back into), so bytes the
 * two images share cost a match each, not their length.
 *
 * Why these parameters:
 *   - The window covers the prefix and the new image together, else matches
 *     into the start of a large old image would be out of reach. The device
 *     decompresses with the same prefix and must accept that window
 *     (ZSTD_d_windowLogMax): the window is capped at 1 GiB (WINDOW_LOG_CAP),
 *     the largest the device client accepts and zstd's own maximum on 32-bit
 *     builds; images larger together are refused.
 *   - Long-distance matching finds the long runs that moved by megabytes
 *     between builds (a function inserted early shifts everything after it),
 *     which the regular match finders, bounded by their hash and chain
 *     tables, miss in large images.
 *   - The content size is in the frame header, so the device knows the
 *     patched size before it writes a byte; the checksum lets it refuse a
 *     corrupt patch result before its own SHA-256 check.
 *
 * The level: see DELTA_LEVEL.
 */
#include "releases/delta_make.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <zstd.h>
#include <zstd_errors.h>

/*
 * Level 16, chosen by measuring CPU time (one core, CLOCK_PROCESS_CPUTIME_ID) against delta size with libzstd
 * 1.5.4 on two pairs:
 *
 *   two Release builds of ota-server from neighbouring commits (528 KiB; a few functions changed, so code and
 *   addresses shifted throughout, the realistic firmware case):
 *     level    1      3      6      9     12     15     16     17     18     19     22
 *     delta  23928  22322  22078  21484  21417  20713  17748  17854  17332  17335  17268 bytes
 *     CPU s  0.002  0.004  0.011  0.023  0.034  0.104  0.206  0.164  0.173  0.211  0.510
 *
 *   a 64 MiB image (system libraries end to end) and a copy with 50 inserts of 300 bytes:
 *     level    3      9     16     17     18     19
 *     delta  22807  22815  22711  22936  22147  22095 bytes
 *     CPU s   0.13   0.59   19.8   29.3   27.3   30.5
 *
 * Level 16 is the first with zstd's optimal parser (btopt): on the rebuild it makes the delta 17% smaller than
 * level 9 does and within 3% of level 22's. A delta is made once per pair and downloaded by every device that
 * runs the old image, over cellular links that pay per byte, so the bytes matter more than the CPU; past 16
 * the gain is under 3% for up to 2.5 times the time. The worst case, ~20 s of one core for a 64 MiB image, runs on
 * the delta pool's single thread (releases/delta_builder.c), well inside its time limit. The compressor's
 * tables for that image took ~40 MiB beside the two images (peak RSS 170 MiB).
 */
#define DELTA_LEVEL 16

/*
 * A probe at level 1 first, which costs about 1% of level 16: when its delta is still 90% of the new image or
 * more, the two images share next to nothing and the new one barely compresses (a compressed or encrypted image),
 * and level 16 would spend its time for a few percent: that probe is the answer (a valid delta, which the builder
 * then finds not worth offering). Measured: an 8 MiB random image took 0.035 s at level 1 and 2.8 s at level 16
 * for the same size (100.002%), a 64 MiB one 0.2 s and 31 s; on the two ota-server builds level 16 was 1.35
 * times smaller than level 1: a probe at 90% would need level 16 to do 1.5 times better to reach the builder's 60%.
 */
#define PROBE_LEVEL 1
#define PROBE_HOPELESS_PERCENT 90

/* The largest window a delta may declare: 1 GiB, what the device client accepts (device/delta.c). */
#define WINDOW_LOG_CAP 30

/* The smallest window log covering `total` bytes, or -1 when no window zstd and the devices allow does. */
static int window_log_for(size_t total)
{
    ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_windowLog);
    if (ZSTD_isError(b.error))
        return -1;
    int max = b.upperBound < WINDOW_LOG_CAP ? b.upperBound : WINDOW_LOG_CAP;
    int log = b.lowerBound;
    while (log < max && ((size_t)1 << log) < total)
        log++;
    return ((size_t)1 << log) >= total ? log : -1;
}

/* Sets one parameter; false with a reason in `err` when zstd refuses it. */
static bool set_param(ZSTD_CCtx *cctx, ZSTD_cParameter p, int value, char *err, size_t cap)
{
    size_t rc = ZSTD_CCtx_setParameter(cctx, p, value);
    if (ZSTD_isError(rc)) {
        snprintf(err, cap, "zstd refused a parameter: %s", ZSTD_getErrorName(rc));
        return false;
    }
    return true;
}

/* One frame at `level` into `buf` (`bound` bytes): its size, or a zstd error code (ZSTD_isError). */
static size_t compress_at(ZSTD_CCtx *cctx, int level, int window_log, const void *from, size_t from_len, const void *to,
                          size_t to_len, unsigned char *buf, size_t bound, char *err, size_t cap)
{
    /* The prefix is referenced for one frame only, and each frame starts from fresh parameters. */
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    if (!set_param(cctx, ZSTD_c_compressionLevel, level, err, cap) ||
        !set_param(cctx, ZSTD_c_windowLog, window_log, err, cap) ||
        !set_param(cctx, ZSTD_c_enableLongDistanceMatching, 1, err, cap) ||
        !set_param(cctx, ZSTD_c_contentSizeFlag, 1, err, cap) || !set_param(cctx, ZSTD_c_checksumFlag, 1, err, cap))
        return (size_t)-ZSTD_error_parameter_unsupported;
    /* An empty `from` is no prefix at all: the delta is then the new image compressed on its own. */
    size_t ref = from_len > 0 ? ZSTD_CCtx_refPrefix(cctx, from, from_len) : 0;
    size_t n = ZSTD_isError(ref) ? ref : ZSTD_compress2(cctx, buf, bound, to, to_len);
    if (ZSTD_isError(n))
        snprintf(err, cap, "zstd: %s", ZSTD_getErrorName(n));
    return n;
}

ota_err_t ota__delta_make(const void *from, size_t from_len, const void *to, size_t to_len, unsigned char **out,
                          size_t *out_len, char *err, size_t cap)
{
    ota_err_t rc = OTA_ERR_INVALID;
    unsigned char *buf = NULL;
    ZSTD_CCtx *cctx = NULL;
    *out = NULL;
    *out_len = 0;
    if (to_len == 0 || from_len > SIZE_MAX - to_len) {
        snprintf(err, cap, "the new image is empty, or the two images are too large together");
        goto Exit;
    }
    int window_log = window_log_for(from_len + to_len);
    if (window_log < 0) {
        snprintf(err, cap, "the two images (%zu bytes together) exceed the largest window, 1 GiB", from_len + to_len);
        goto Exit;
    }
    cctx = ZSTD_createCCtx();
    size_t bound = ZSTD_compressBound(to_len);
    buf = ZSTD_isError(bound) ? NULL : malloc(bound);
    if (cctx == NULL || buf == NULL) {
        rc = ZSTD_isError(bound) ? OTA_ERR_INVALID : OTA_ERR_NOMEM;
        snprintf(err, cap, "%s", rc == OTA_ERR_NOMEM ? "out of memory" : "the new image is too large for zstd");
        goto Exit;
    }
    size_t n = compress_at(cctx, PROBE_LEVEL, window_log, from, from_len, to, to_len, buf, bound, err, cap);
    if (!ZSTD_isError(n) && (unsigned long long)n * 100 < (unsigned long long)to_len * PROBE_HOPELESS_PERCENT)
        n = compress_at(cctx, DELTA_LEVEL, window_log, from, from_len, to, to_len, buf, bound, err, cap);
    if (ZSTD_isError(n)) {
        rc = ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ? OTA_ERR_NOMEM : OTA_ERR_INVALID;
        goto Exit;
    }
    *out = buf;
    *out_len = n;
    buf = NULL;
    rc = OTA_OK;

Exit:
    free(buf);
    ZSTD_freeCCtx(cctx);
    return rc;
}
