/*
 * Applying a delta (device/delta.c): real zstd patch-from frames made here
 * with libzstd as the server makes them (the old image as prefix,
 * long-distance matching, a window over both images, content size and
 * checksum in the frame), and what a broken, cut, foreign or hostile delta
 * does: it fails cleanly, or (applied to the wrong base) makes bytes that
 * are not the image, which the caller's SHA-256 check then refuses.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "delta.h"
#include "test_delta_maker.h"
#include "util.h"

#define BASE_LEN 300000
#define IMAGE_LEN 310000

typedef struct fixture {
    char dir[64];
    char base[128], delta[128], out[128], other[128];
    unsigned char *old_image, *new_image;
    size_t old_len, new_len;
    unsigned char *patch;
    size_t patch_len;
} fixture_t;

/* Deterministic bytes that compress poorly, so the delta has to refer to the base to be small. */
static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len > 0)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The file at `path` holds exactly `len` bytes of `data`. */
static bool file_is(const char *path, const void *data, size_t len)
{
    char *text = NULL;
    size_t n = 0;
    if (ota__read_file(path, len + 1, &text, &n) != OTA_OK)
        return false;
    bool same = n == len && memcmp(text, data, len) == 0;
    free(text);
    return same;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ota-delta-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->base, sizeof f->base, "%s/base", f->dir);
    snprintf(f->delta, sizeof f->delta, "%s/delta", f->dir);
    snprintf(f->out, sizeof f->out, "%s/out", f->dir);
    snprintf(f->other, sizeof f->other, "%s/other", f->dir);
    f->old_len = BASE_LEN;
    f->new_len = IMAGE_LEN;
    f->old_image = malloc(f->old_len);
    f->new_image = malloc(f->new_len);
    assert_non_null(f->old_image);
    assert_non_null(f->new_image);
    fill(f->old_image, f->old_len, 1);
    /* The new image: the old one with a changed stretch, a stretch moved, and more at the end. */
    memcpy(f->new_image, f->old_image, f->old_len);
    fill(f->new_image + 1000, 3000, 2);
    memcpy(f->new_image + 100000, f->old_image + 200000, 50000);
    fill(f->new_image + f->old_len, f->new_len - f->old_len, 3);
    test_make_delta(f->old_image, f->old_len, f->new_image, f->new_len, 1, &f->patch, &f->patch_len);
    write_file(f->base, f->old_image, f->old_len);
    write_file(f->delta, f->patch, f->patch_len);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->base);
    unlink(f->delta);
    unlink(f->out);
    unlink(f->other);
    rmdir(f->dir);
    free(f->old_image);
    free(f->new_image);
    free(f->patch);
    free(f);
    return 0;
}

static ota_err_t apply(fixture_t *f, uint64_t size, char *why, size_t cap)
{
    why[0] = '\0';
    return ota__delta_apply(f->base, f->delta, f->out, size, why, cap);
}

static void round_trip(void **state)
{
    fixture_t *f = *state;
    char why[256];
    /* The delta refers to the base: far smaller than the image. */
    assert_true(f->patch_len < f->new_len / 5);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_OK);
    assert_true(file_is(f->out, f->new_image, f->new_len));
    struct stat st;
    assert_int_equal(stat(f->out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void round_trip_without_checksum(void **state)
{
    fixture_t *f = *state;
    char why[256];
    unsigned char *patch = NULL;
    size_t len = 0;
    test_make_delta(f->old_image, f->old_len, f->new_image, f->new_len, 0, &patch, &len);
    write_file(f->delta, patch, len);
    free(patch);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_OK);
    assert_true(file_is(f->out, f->new_image, f->new_len));
}

/* A smaller image than the base, and a base that is empty (a plain frame). */
static void shrinking_and_empty_base(void **state)
{
    fixture_t *f = *state;
    char why[256];
    unsigned char *patch = NULL;
    size_t len = 0;
    test_make_delta(f->old_image, f->old_len, f->old_image + 5000, 100000, 1, &patch, &len);
    write_file(f->delta, patch, len);
    free(patch);
    assert_int_equal(apply(f, 100000, why, sizeof why), OTA_OK);
    assert_true(file_is(f->out, f->old_image + 5000, 100000));

    test_make_delta(NULL, 0, f->new_image, 4096, 1, &patch, &len);
    write_file(f->delta, patch, len);
    free(patch);
    write_file(f->base, "", 0);
    assert_int_equal(apply(f, 4096, why, sizeof why), OTA_OK);
    assert_true(file_is(f->out, f->new_image, 4096));
}

/* Every cut of a small delta fails cleanly (never OTA_OK, never a crash). */
static void every_truncation_fails(void **state)
{
    fixture_t *f = *state;
    char why[256];
    unsigned char *patch = NULL;
    size_t len = 0;
    /* A small pair, so that trying every length stays quick. */
    test_make_delta(f->old_image, 20000, f->new_image, 22000, 1, &patch, &len);
    write_file(f->base, f->old_image, 20000);
    assert_true(len > 20);
    for (size_t cut = 0; cut < len; cut++) {
        write_file(f->delta, patch, cut);
        ota_err_t rc = apply(f, 22000, why, sizeof why);
        if (rc != OTA_ERR_INVALID)
            fail_msg("cut at %zu of %zu: %d (%s)", cut, len, rc, why);
        assert_non_null(strstr(why, "delta invalid"));
    }
    write_file(f->delta, patch, len);
    assert_int_equal(apply(f, 22000, why, sizeof why), OTA_OK);
    free(patch);
}

static void random_bytes_fail(void **state)
{
    fixture_t *f = *state;
    char why[256];
    unsigned char junk[4096];
    for (uint32_t seed = 1; seed <= 50; seed++) {
        size_t n = 1 + seed * 80;
        fill(junk, n, seed + 100);
        write_file(f->delta, junk, n);
        assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_ERR_INVALID);
    }
    /* Random bytes behind a valid header, declaring the right size. */
    memcpy(junk, f->patch, 16);
    fill(junk + 16, sizeof junk - 16, 7);
    write_file(f->delta, junk, sizeof junk);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_ERR_INVALID);
}

/* The delta of another base: refused, or bytes that are not the image (the caller's SHA-256 check refuses those). */
static void wrong_base_never_yields_the_image(void **state)
{
    fixture_t *f = *state;
    char why[256];
    unsigned char *other = malloc(f->old_len);
    assert_non_null(other);
    fill(other, f->old_len, 9);
    write_file(f->base, other, f->old_len);
    ota_err_t rc = apply(f, f->new_len, why, sizeof why);
    if (rc == OTA_OK)
        assert_false(file_is(f->out, f->new_image, f->new_len));
    else
        assert_int_equal(rc, OTA_ERR_INVALID);
    /* A shorter base: the frame's references past its end are refused. */
    write_file(f->base, other, 1000);
    rc = apply(f, f->new_len, why, sizeof why);
    if (rc == OTA_OK)
        assert_false(file_is(f->out, f->new_image, f->new_len));
    else
        assert_int_equal(rc, OTA_ERR_INVALID);
    free(other);
}

static void declared_size_must_be_the_images(void **state)
{
    fixture_t *f = *state;
    char why[256];
    assert_int_equal(apply(f, f->new_len - 1, why, sizeof why), OTA_ERR_INVALID);
    assert_non_null(strstr(why, "makes 310000 bytes"));
    assert_int_equal(apply(f, f->new_len + 1, why, sizeof why), OTA_ERR_INVALID);
    assert_int_equal(apply(f, 0, why, sizeof why), OTA_ERR_INVALID);
}

/* A frame without its content size (as a streaming compressor writes it) is refused. */
static void frame_without_content_size_fails(void **state)
{
    fixture_t *f = *state;
    char why[256];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    size_t cap = ZSTD_compressBound(f->new_len);
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)));
    assert_false(ZSTD_isError(ZSTD_CCtx_refPrefix(c, f->old_image, f->old_len)));
    size_t n = ZSTD_compress2(c, buf, cap, f->new_image, f->new_len);
    assert_false(ZSTD_isError(n));
    ZSTD_freeCCtx(c);
    write_file(f->delta, buf, n);
    free(buf);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_ERR_INVALID);
    assert_non_null(strstr(why, "content size"));
}

static void trailing_bytes_and_second_frame_fail(void **state)
{
    fixture_t *f = *state;
    char why[256];
    unsigned char *two = malloc(f->patch_len * 2);
    assert_non_null(two);
    memcpy(two, f->patch, f->patch_len);
    memcpy(two + f->patch_len, f->patch, f->patch_len);
    write_file(f->delta, two, f->patch_len * 2);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_ERR_INVALID);
    assert_non_null(strstr(why, "after its frame"));
    two[f->patch_len] = 0;
    write_file(f->delta, two, f->patch_len + 1);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_ERR_INVALID);
    free(two);
}

/* The frame with its header rewritten to declare a window of 2^`wlog` bytes (the blocks stay as they are). */
static void write_with_window(fixture_t *f, unsigned wlog)
{
    unsigned char *p = malloc(f->patch_len + 1);
    size_t len = f->patch_len;
    assert_non_null(p);
    memcpy(p, f->patch, f->patch_len);
    if (f->patch[4] & 0x20) { /* single segment (the window is the content): a window descriptor instead */
        p[4] = (unsigned char)(f->patch[4] & ~0x20);
        memcpy(p + 6, f->patch + 5, f->patch_len - 5);
        len++;
    }
    p[5] = (unsigned char)((wlog - 10) << 3);
    write_file(f->delta, p, len);
    free(p);
}

/* A window up to the cap (2^30 bytes) is taken; one over it is refused, whatever the content. */
static void window_over_the_cap_fails(void **state)
{
    fixture_t *f = *state;
    char why[256];
    write_with_window(f, 30);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_OK);
    assert_true(file_is(f->out, f->new_image, f->new_len));
    write_with_window(f, 31);
    assert_int_equal(apply(f, f->new_len, why, sizeof why), OTA_ERR_INVALID);
    assert_non_null(strstr(why, "delta invalid"));
}

static void missing_files_are_io_errors(void **state)
{
    fixture_t *f = *state;
    char why[256], nowhere[160];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/out", f->dir);
    assert_int_equal(ota__delta_apply(f->other, f->delta, f->out, f->new_len, why, sizeof why), OTA_ERR_IO);
    assert_int_equal(ota__delta_apply(f->base, f->other, f->out, f->new_len, why, sizeof why), OTA_ERR_IO);
    assert_int_equal(ota__delta_apply(f->base, f->delta, nowhere, f->new_len, why, sizeof why), OTA_ERR_IO);
    /* A directory is not a delta. */
    assert_int_equal(ota__delta_apply(f->base, f->dir, f->out, f->new_len, why, sizeof why), OTA_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(round_trip_without_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(shrinking_and_empty_base, setup, teardown),
        cmocka_unit_test_setup_teardown(every_truncation_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(random_bytes_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_base_never_yields_the_image, setup, teardown),
        cmocka_unit_test_setup_teardown(declared_size_must_be_the_images, setup, teardown),
        cmocka_unit_test_setup_teardown(frame_without_content_size_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(trailing_bytes_and_second_frame_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(window_over_the_cap_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_files_are_io_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
