/*
 * Applying a zstd patch-from delta (device/delta.h).
 *
 * Why it is shaped like this: a device may have far less memory than its
 * image, so nothing here may grow with the image. zstd's streaming decoder
 * normally keeps a window buffer as large as the frame's window, and a
 * patch-from frame's window covers the old and the new image. Instead:
 *
 *   - the base image is mmap'd read-only and referenced as the frame's
 *     prefix (ZSTD_DCtx_refPrefix): matches into the old image read the
 *     file's pages, no copy;
 *   - the output file is sized first (posix_fallocate, so a full disk is an
 *     error here and never a SIGBUS in the middle of a write to the
 *     mapping), mmap'd shared, and handed to the decoder as a stable output
 *     buffer (ZSTD_d_stableOutBuffer, set through the stable
 *     ZSTD_DCtx_setParameter with its experimental enum value): the decoder
 *     then allocates no window at all and matches into the new image read
 *     the pages already written;
 *   - the delta is read in fixed chunks of CHUNK bytes.
 *
 * For an image of N bytes, whatever N is: about 320 KiB of heap (the
 * decoder's context, its input buffer of one compressed block, CHUNK), and
 * no other anonymous memory; plus file-backed pages of the two mappings, up
 * to N of base and N of output, which the kernel writes back and reclaims
 * as it needs (they are the files' page cache, not the process's own
 * memory). Measured with a sampler of mallinfo2() and /proc/self/status
 * during the call: for N = 2 MiB and for N = 64 MiB alike the heap peaked
 * 317 KiB over its level before (only the pages written count), RssAnon rose
 * by 35..150 KiB across runs (scripts/bench-deltas, BENCHMARKS.md), RssFile
 * by 4.3 MiB and 128 MiB (2N).
 *
 * WINDOW_LOG_MAX caps the frame's window (refused beyond it as malformed):
 * the window costs no memory here, but it bounds how far back the frame may
 * reach, and 2^30 bytes covers an old and a new image of 512 MiB each.
 *
 * Malformed input never reaches past the mappings: the stable output buffer
 * is exactly `size` bytes and zstd checks every match and literal against
 * it and against the prefix; the frame must declare `size` as its content
 * size; input after the frame (trailing bytes, a second frame) is refused,
 * and so is a delta that ends before its frame does.
 */
#define _GNU_SOURCE
#include "delta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>
#include <zstd_errors.h>

#define CHUNK (64 * 1024) /* bytes of the delta read at a time */
#define WINDOW_LOG_MAX 30 /* largest window a delta may declare: 1 GiB (ZSTD_WINDOWLOG_MAX_32) */
#define STABLE_OUT_BUFFER ZSTD_d_experimentalParam2 /* ZSTD_d_stableOutBuffer (zstd.h, experimental section) */

/* Everything one application holds, released in one place. */
typedef struct apply {
    int base_fd, delta_fd, out_fd;
    const void *base;
    size_t base_len;
    void *out;
    size_t out_len;
    unsigned char *chunk;
    ZSTD_DCtx *dctx;
} apply_t;

/* Fills buf with up to cap bytes (fewer only at the end of the file). -1 on an error. */
static ssize_t read_full(int fd, unsigned char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        n += (size_t)k;
    }
    return (ssize_t)n;
}

static ota_err_t map_base(apply_t *a, const char *path, char *why, size_t cap)
{
    struct stat st;
    if ((a->base_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(a->base_fd, &st) != 0) {
        snprintf(why, cap, "cannot read the base image: %s", strerror(errno));
        return OTA_ERR_IO;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        snprintf(why, cap, "the base image is too large for this device");
        return OTA_ERR_INVALID;
    }
    a->base_len = (size_t)st.st_size;
    if (a->base_len == 0)
        return OTA_OK; /* nothing to refer to: the delta is then a plain frame */
    void *p = mmap(NULL, a->base_len, PROT_READ, MAP_PRIVATE, a->base_fd, 0);
    if (p == MAP_FAILED) {
        snprintf(why, cap, "cannot map the base image: %s", strerror(errno));
        return errno == ENOMEM ? OTA_ERR_NOMEM : OTA_ERR_IO;
    }
    a->base = p;
    madvise(p, a->base_len, MADV_SEQUENTIAL);
    return OTA_OK;
}

static ota_err_t map_out(apply_t *a, const char *path, uint64_t size, char *why, size_t cap)
{
    if (size == 0 || size > SIZE_MAX || size > (uint64_t)INT64_MAX) {
        snprintf(why, cap, "bad image size %llu", (unsigned long long)size);
        return OTA_ERR_INVALID;
    }
    if ((a->out_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        snprintf(why, cap, "cannot create the image: %s", strerror(errno));
        return OTA_ERR_IO;
    }
    int e = posix_fallocate(a->out_fd, 0, (off_t)size);
    if (e != 0) {
        snprintf(why, cap, "cannot make room for the image (%llu bytes): %s", (unsigned long long)size, strerror(e));
        return OTA_ERR_IO;
    }
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, a->out_fd, 0);
    if (p == MAP_FAILED) {
        snprintf(why, cap, "cannot map the image: %s", strerror(errno));
        return errno == ENOMEM ? OTA_ERR_NOMEM : OTA_ERR_IO;
    }
    a->out = p;
    a->out_len = (size_t)size;
    return OTA_OK;
}

/* The decoder: the base as prefix, the window capped, writing straight into the output mapping. */
static ota_err_t make_dctx(apply_t *a, char *why, size_t cap)
{
    if ((a->dctx = ZSTD_createDCtx()) == NULL) {
        snprintf(why, cap, "out of memory");
        return OTA_ERR_NOMEM;
    }
    size_t r = ZSTD_DCtx_setParameter(a->dctx, ZSTD_d_windowLogMax, WINDOW_LOG_MAX);
    if (!ZSTD_isError(r))
        r = ZSTD_DCtx_setParameter(a->dctx, STABLE_OUT_BUFFER, 1);
    if (!ZSTD_isError(r) && a->base_len > 0)
        r = ZSTD_DCtx_refPrefix(a->dctx, a->base, a->base_len);
    if (ZSTD_isError(r)) {
        snprintf(why, cap, "libzstd refused a decoder setting: %s", ZSTD_getErrorName(r));
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? OTA_ERR_NOMEM : OTA_ERR_INVALID;
    }
    return OTA_OK;
}

/*
 * The window a zstd frame's header declares (RFC 8878, 3.1.1.1.2), for a header already known to be whole: the
 * content size for a single-segment frame, else what its window descriptor says. Checked here because zstd skips
 * its own check (ZSTD_d_windowLogMax) when a whole frame fits in one chunk and it decodes it in one pass.
 */
static uint64_t window_size(const unsigned char *p, uint64_t content_size)
{
    if (p[4] & 0x20)
        return content_size;
    unsigned exponent = p[5] >> 3, mantissa = p[5] & 7;
    uint64_t base = UINT64_C(1) << (10 + exponent);
    return base + base / 8 * mantissa;
}

/* The frame's header, at the start of the first chunk: a zstd frame that declares `size` bytes. */
static ota_err_t check_header(const unsigned char *p, size_t n, uint64_t size, char *why, size_t cap)
{
    unsigned long long declared = ZSTD_getFrameContentSize(p, n);
    if (declared == ZSTD_CONTENTSIZE_ERROR) {
        snprintf(why, cap, "delta invalid: not a zstd frame (or cut short)");
        return OTA_ERR_INVALID;
    }
    if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
        snprintf(why, cap, "delta invalid: the frame does not declare its content size");
        return OTA_ERR_INVALID;
    }
    if (declared != size) {
        snprintf(why, cap, "delta invalid: it makes %llu bytes, the image has %llu", declared,
                 (unsigned long long)size);
        return OTA_ERR_INVALID;
    }
    /* Past ZSTD_getFrameContentSize, a header of at least 6 bytes is here and it is not a skippable frame (whose
       content size reads as 0, never `size`). */
    if (window_size(p, declared) > (UINT64_C(1) << WINDOW_LOG_MAX)) {
        snprintf(why, cap, "delta invalid: its window is over %d MiB", (1 << WINDOW_LOG_MAX) >> 20);
        return OTA_ERR_INVALID;
    }
    return OTA_OK;
}

/* Streams the delta through the decoder; the frame must end exactly where the delta does. */
static ota_err_t decode(apply_t *a, uint64_t size, char *why, size_t cap)
{
    ZSTD_outBuffer out = {a->out, a->out_len, 0};
    ZSTD_inBuffer in = {a->chunk, 0, 0};
    bool first = true, done = false;
    for (;;) {
        if (in.pos == in.size) {
            ssize_t n = read_full(a->delta_fd, a->chunk, CHUNK);
            if (n < 0) {
                snprintf(why, cap, "cannot read the delta: %s", strerror(errno));
                return OTA_ERR_IO;
            }
            in.size = (size_t)n;
            in.pos = 0;
            if (first) {
                ota_err_t rc = check_header(a->chunk, in.size, size, why, cap);
                if (rc != OTA_OK)
                    return rc;
                first = false;
            }
            if (n == 0)
                break;
            if (done) {
                snprintf(why, cap, "delta invalid: bytes after its frame");
                return OTA_ERR_INVALID;
            }
        }
        if (done) {
            snprintf(why, cap, "delta invalid: bytes after its frame");
            return OTA_ERR_INVALID;
        }
        size_t r = ZSTD_decompressStream(a->dctx, &out, &in);
        if (ZSTD_isError(r)) {
            snprintf(why, cap, "delta invalid: %s", ZSTD_getErrorName(r));
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? OTA_ERR_NOMEM : OTA_ERR_INVALID;
        }
        done = r == 0;
    }
    if (!done) {
        snprintf(why, cap, "delta invalid: it ends before its frame does");
        return OTA_ERR_INVALID;
    }
    if (out.pos != a->out_len) {
        snprintf(why, cap, "delta invalid: it made %zu bytes of %zu", out.pos, a->out_len);
        return OTA_ERR_INVALID;
    }
    return OTA_OK;
}

ota_err_t ota__delta_apply(const char *base_path, const char *delta_path, const char *out_path, uint64_t size,
                           char *why, size_t cap)
{
    apply_t a = {.base_fd = -1, .delta_fd = -1, .out_fd = -1};
    ota_err_t rc;
    if ((rc = map_base(&a, base_path, why, cap)) != OTA_OK)
        goto Exit;
    if ((a.delta_fd = open(delta_path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(why, cap, "cannot read the delta: %s", strerror(errno));
        rc = OTA_ERR_IO;
        goto Exit;
    }
    if ((rc = map_out(&a, out_path, size, why, cap)) != OTA_OK)
        goto Exit;
    if ((a.chunk = malloc(CHUNK)) == NULL) {
        snprintf(why, cap, "out of memory");
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    if ((rc = make_dctx(&a, why, cap)) != OTA_OK || (rc = decode(&a, size, why, cap)) != OTA_OK)
        goto Exit;
    if (msync(a.out, a.out_len, MS_SYNC) != 0 || fsync(a.out_fd) != 0) {
        snprintf(why, cap, "cannot write the image: %s", strerror(errno));
        rc = OTA_ERR_IO;
    }
Exit:
    ZSTD_freeDCtx(a.dctx);
    free(a.chunk);
    if (a.out != NULL)
        munmap(a.out, a.out_len);
    if (a.base != NULL)
        munmap((void *)a.base, a.base_len);
    if (a.out_fd >= 0)
        close(a.out_fd);
    if (a.delta_fd >= 0)
        close(a.delta_fd);
    if (a.base_fd >= 0)
        close(a.base_fd);
    return rc;
}
