/*
 * Making a delta (releases/delta_make.h): what a device does with it (ZSTD_DCtx_refPrefix on its running image)
 * gives back the new image, a small change makes a small delta, and an empty old image still works.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>

#include "releases/delta_make.h"

#define IMAGE_LEN (256 * 1024)

/* Bytes shaped like code: short records that repeat with variations, not random and not one repeated byte. */
static unsigned char *image(size_t len, uint32_t seed)
{
    unsigned char *b = malloc(len);
    assert_non_null(b);
    uint32_t x = seed;
    for (size_t i = 0; i < len; i++) {
        if (i % 64 == 0)
            x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)((i % 64 < 48) ? (i * 7 + (x >> 16) % 5) : (x >> (i % 24)));
    }
    return b;
}

/* Applies `delta` to `from` as a device does, and checks that it gives `to`. */
static void expect_patches(const unsigned char *from, size_t from_len, const unsigned char *to, size_t to_len,
                           const unsigned char *delta, size_t delta_len)
{
    assert_int_equal(ZSTD_getFrameContentSize(delta, delta_len), to_len);
    unsigned char *out = malloc(to_len);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    assert_non_null(out);
    assert_non_null(dctx);
    assert_false(ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, 31)));
    if (from_len > 0)
        assert_false(ZSTD_isError(ZSTD_DCtx_refPrefix(dctx, from, from_len)));
    size_t n = ZSTD_decompressDCtx(dctx, out, to_len, delta, delta_len);
    assert_false(ZSTD_isError(n));
    assert_int_equal(n, to_len);
    assert_memory_equal(out, to, to_len);
    ZSTD_freeDCtx(dctx);
    free(out);
}

static void test_small_change_round_trip(void **state)
{
    (void)state;
    unsigned char *from = image(IMAGE_LEN, 1), *to = image(IMAGE_LEN + 100, 1);
    memcpy(to + 1000, "a new string in the data section", 32);
    memmove(to + 100100, to + 100000, IMAGE_LEN - 100000); /* 100 bytes inserted: everything after shifts */
    memset(to + 100000, 0x90, 100);
    unsigned char *delta = NULL;
    size_t delta_len = 0;
    char err[256];
    assert_int_equal(ota__delta_make(from, IMAGE_LEN, to, IMAGE_LEN + 100, &delta, &delta_len, err, sizeof err),
                     OTA_OK);
    assert_true(delta_len < 2048); /* the change, not the image */
    expect_patches(from, IMAGE_LEN, to, IMAGE_LEN + 100, delta, delta_len);
    free(delta);
    free(from);
    free(to);
}

static void test_unrelated_images_round_trip(void **state)
{
    (void)state;
    unsigned char *from = image(IMAGE_LEN, 1), *to = image(IMAGE_LEN / 2, 99);
    unsigned char *delta = NULL;
    size_t delta_len = 0;
    char err[256];
    assert_int_equal(ota__delta_make(from, IMAGE_LEN, to, IMAGE_LEN / 2, &delta, &delta_len, err, sizeof err), OTA_OK);
    expect_patches(from, IMAGE_LEN, to, IMAGE_LEN / 2, delta, delta_len);
    free(delta);
    free(from);
    free(to);
}

/* Bytes that do not compress (a compressed or encrypted image): the delta is the cheap probe's, and patches too. */
static void test_incompressible_round_trip(void **state)
{
    (void)state;
    unsigned char *from = image(IMAGE_LEN, 1), *to = malloc(IMAGE_LEN);
    assert_non_null(to);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < IMAGE_LEN; i++) { /* xorshift64: no structure zstd can use */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        to[i] = (unsigned char)(x >> 32);
    }
    unsigned char *delta = NULL;
    size_t delta_len = 0;
    char err[256];
    assert_int_equal(ota__delta_make(from, IMAGE_LEN, to, IMAGE_LEN, &delta, &delta_len, err, sizeof err), OTA_OK);
    assert_true(delta_len >= IMAGE_LEN * 9 / 10);
    expect_patches(from, IMAGE_LEN, to, IMAGE_LEN, delta, delta_len);
    free(delta);
    free(from);
    free(to);
}

static void test_empty_from(void **state)
{
    (void)state;
    unsigned char *to = image(IMAGE_LEN, 5);
    unsigned char *delta = NULL;
    size_t delta_len = 0;
    char err[256];
    assert_int_equal(ota__delta_make("", 0, to, IMAGE_LEN, &delta, &delta_len, err, sizeof err), OTA_OK);
    assert_true(delta_len < IMAGE_LEN);
    expect_patches(NULL, 0, to, IMAGE_LEN, delta, delta_len);
    free(delta);
    free(to);
}

static void test_empty_to_is_refused(void **state)
{
    (void)state;
    unsigned char *delta = (unsigned char *)"not touched";
    size_t delta_len = 7;
    char err[256] = "";
    assert_int_equal(ota__delta_make("abc", 3, "", 0, &delta, &delta_len, err, sizeof err), OTA_ERR_INVALID);
    assert_null(delta);
    assert_int_equal(delta_len, 0);
    assert_true(strlen(err) > 0);
}

/* Images larger together than the 1 GiB window devices accept are refused before a byte is read. */
static void test_window_over_1_gib_is_refused(void **state)
{
    (void)state;
    static const unsigned char from[1]; /* never read: the declared length alone is refused */
    unsigned char *delta = NULL;
    size_t delta_len = 0;
    char err[256] = "";
    assert_int_equal(ota__delta_make(from, (size_t)1 << 30, "x", 1, &delta, &delta_len, err, sizeof err),
                     OTA_ERR_INVALID);
    assert_null(delta);
    assert_non_null(strstr(err, "window"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_change_round_trip),   cmocka_unit_test(test_unrelated_images_round_trip),
        cmocka_unit_test(test_incompressible_round_trip), cmocka_unit_test(test_empty_from),
        cmocka_unit_test(test_empty_to_is_refused),       cmocka_unit_test(test_window_over_1_gib_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
