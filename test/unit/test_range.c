#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/range.h"

#define SENTINEL 0xdeadbeefULL

/*
 * Parses `value` from a heap copy of exactly its length (no NUL), so that a read past `len` is caught by
 * AddressSanitizer.
 */
static ota_range_result_t parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last)
{
    size_t len = strlen(value);
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, value, len);
    *first = *last = SENTINEL;
    ota_range_result_t r = ota__range_parse(copy, len, size, first, last);
    free(copy);
    return r;
}

static void expect_partial(const char *value, uint64_t size, uint64_t want_first, uint64_t want_last)
{
    uint64_t first, last;
    ota_range_result_t r = parse(value, size, &first, &last);
    if (r != OTA_RANGE_PARTIAL)
        fail_msg("\"%s\" on %llu bytes: result %d, expected PARTIAL", value, (unsigned long long)size, (int)r);
    if (first != want_first || last != want_last)
        fail_msg("\"%s\" on %llu bytes: %llu-%llu, expected %llu-%llu", value, (unsigned long long)size,
                 (unsigned long long)first, (unsigned long long)last, (unsigned long long)want_first,
                 (unsigned long long)want_last);
}

static void expect_result(const char *value, uint64_t size, ota_range_result_t want)
{
    uint64_t first, last;
    ota_range_result_t r = parse(value, size, &first, &last);
    if (r != want)
        fail_msg("\"%s\" on %llu bytes: result %d, expected %d", value, (unsigned long long)size, (int)r, (int)want);
}

static void test_first_last(void **state)
{
    (void)state;
    expect_partial("bytes=0-499", 1000, 0, 499);
    expect_partial("bytes=500-999", 1000, 500, 999);
    expect_partial("bytes=0-0", 1000, 0, 0);
    expect_partial("bytes=999-999", 1000, 999, 999);
    expect_partial("bytes=10-20", 1000, 10, 20);
    expect_partial("bytes=007-010", 1000, 7, 10);
    expect_partial("bytes=0-0", 1, 0, 0);
}

static void test_open_ended(void **state)
{
    (void)state;
    expect_partial("bytes=0-", 1000, 0, 999);
    expect_partial("bytes=500-", 1000, 500, 999);
    expect_partial("bytes=999-", 1000, 999, 999);
    expect_partial("bytes=0-", 1, 0, 0);
}

static void test_suffix(void **state)
{
    (void)state;
    expect_partial("bytes=-100", 1000, 900, 999);
    expect_partial("bytes=-1", 1000, 999, 999);
    expect_partial("bytes=-999", 1000, 1, 999);
    expect_partial("bytes=-1000", 1000, 0, 999);
    expect_partial("bytes=-5000", 1000, 0, 999);
    expect_partial("bytes=-1", 1, 0, 0);
}

static void test_clipped_past_end(void **state)
{
    (void)state;
    expect_partial("bytes=0-1000", 1000, 0, 999);
    expect_partial("bytes=0-5000", 1000, 0, 999);
    expect_partial("bytes=998-1000000", 1000, 998, 999);
    expect_partial("bytes=0-999999999999999999", 1000, 0, 999);
}

static void test_unsatisfiable(void **state)
{
    (void)state;
    expect_result("bytes=1000-", 1000, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=1000-1000", 1000, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=1000-2000", 1000, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=5000-", 1000, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=1-", 1, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=-0", 1000, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=-000", 1000, OTA_RANGE_UNSATISFIABLE);
}

static void test_empty_object(void **state)
{
    (void)state;
    expect_result("bytes=0-", 0, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=0-0", 0, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=0-10", 0, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=-1", 0, OTA_RANGE_UNSATISFIABLE);
    expect_result("bytes=-0", 0, OTA_RANGE_UNSATISFIABLE);
    /* Malformed stays ignored whatever the size. */
    expect_result("bytes=abc", 0, OTA_RANGE_NONE);
}

static void test_last_before_first_ignored(void **state)
{
    (void)state;
    expect_result("bytes=500-100", 1000, OTA_RANGE_NONE);
    expect_result("bytes=1-0", 1000, OTA_RANGE_NONE);
    /* Ignored even when the first byte is past the end: the range is malformed, not unsatisfiable. */
    expect_result("bytes=5000-10", 1000, OTA_RANGE_NONE);
}

static void test_multi_range_ignored(void **state)
{
    (void)state;
    expect_result("bytes=0-1,5-6", 1000, OTA_RANGE_NONE);
    expect_result("bytes=0-1, 5-6", 1000, OTA_RANGE_NONE);
    expect_result("bytes=-1,-2", 1000, OTA_RANGE_NONE);
    expect_result("bytes=0-,", 1000, OTA_RANGE_NONE);
    expect_result("bytes=5000-6000,0-1", 1000, OTA_RANGE_NONE);
}

static void test_garbage_ignored(void **state)
{
    static const char *const values[] = {
        "",
        "b",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=--1",
        "bytes=0--1",
        "bytes=1-2-3",
        "bytes=abc",
        "bytes=a-b",
        "bytes=1",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=-+5",
        "bytes=0x10-20",
        "bytes=1.5-2",
        "bytes:0-1",
        "byte=0-1",
        "items=0-1",
        "items=-5",
        "=0-1",
        "0-1",
        ("bytes=\x01" /* one string: the split ends the \x escape */
         "0-1"),
    };
    (void)state;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        expect_result(values[i], 1000, OTA_RANGE_NONE);
}

static void test_spaces_ignored(void **state)
{
    static const char *const values[] = {
        " bytes=0-1", "bytes =0-1", "bytes= 0-1", "bytes=0 -1", "bytes=0- 1",
        "bytes=0-1 ", "bytes=- 1",  "bytes=-1 ",  "bytes=0-\t", "bytes=\t0-1",
    };
    (void)state;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        expect_result(values[i], 1000, OTA_RANGE_NONE);
}

/* A number too big for 64 bits must never wrap into a small, wrong range. */
static void test_overflow(void **state)
{
    static const char *const first_huge[] = {
        "bytes=18446744073709551616-", /* 2^64: wraps to 0 */
        "bytes=18446744073709551617-", /* wraps to 1 */
        "bytes=99999999999999999999-", /* wraps to a value below 2^64 */
        "bytes=18446744073709551616-18446744073709551617",
        "bytes=1000000000000000000000000000000-",
    };
    static const char *const suffix_huge[] = {
        "bytes=-18446744073709551617",                                /* wraps to 1: would give 999-999 */
        "bytes=-18446744073709552616",                                /* wraps to 1000 */
        "bytes=-99999999999999999999", "bytes=-18446744073709551616", /* wraps to 0: would be unsatisfiable */
    };
    static const char *const last_huge[] = {
        "bytes=0-18446744073709551616", /* wraps to 0: would give 0-0 */
        "bytes=0-18446744073709551617",
        "bytes=0-99999999999999999999",
    };
    uint64_t first, last;
    (void)state;

    for (size_t i = 0; i < sizeof first_huge / sizeof first_huge[0]; i++) {
        ota_range_result_t r = parse(first_huge[i], 1000, &first, &last);
        if (r == OTA_RANGE_PARTIAL)
            fail_msg("\"%s\": PARTIAL %llu-%llu, expected NONE or UNSATISFIABLE", first_huge[i],
                     (unsigned long long)first, (unsigned long long)last);
    }
    /* A suffix longer than the object is the whole object; ignoring it is also the whole object. */
    for (size_t i = 0; i < sizeof suffix_huge / sizeof suffix_huge[0]; i++) {
        ota_range_result_t r = parse(suffix_huge[i], 1000, &first, &last);
        if (r == OTA_RANGE_PARTIAL)
            assert_true(first == 0 && last == 999);
        else if (r != OTA_RANGE_NONE)
            fail_msg("\"%s\": result %d, expected NONE or PARTIAL 0-999", suffix_huge[i], (int)r);
    }
    for (size_t i = 0; i < sizeof last_huge / sizeof last_huge[0]; i++) {
        ota_range_result_t r = parse(last_huge[i], 1000, &first, &last);
        if (r == OTA_RANGE_PARTIAL)
            assert_true(first == 0 && last == 999);
        else if (r != OTA_RANGE_NONE)
            fail_msg("\"%s\": result %d, expected NONE or PARTIAL 0-999", last_huge[i], (int)r);
    }
}

/* Positions up to 2^63 - 1 are real numbers (the header's "over 2^63" limit): a last byte there is clipped. */
static void test_large_numbers_below_2_63(void **state)
{
    (void)state;
    expect_partial("bytes=0-999999999999999999", 1000, 0, 999);  /* 18 digits */
    expect_partial("bytes=0-1000000000000000000", 1000, 0, 999); /* 10^18, 19 digits */
    expect_partial("bytes=0-9223372036854775807", 1000, 0, 999); /* 2^63 - 1 */
    expect_partial("bytes=-9223372036854775807", 1000, 0, 999);
    expect_result("bytes=9223372036854775807-", 1000, OTA_RANGE_UNSATISFIABLE);
}

/* Objects and positions past 32 bits. */
static void test_big_objects(void **state)
{
    (void)state;
    expect_partial("bytes=4294967296-4294967300", 4294967301ULL, 4294967296ULL, 4294967300ULL);
    expect_partial("bytes=4294967296-", 1ULL << 40, 4294967296ULL, (1ULL << 40) - 1);
    expect_partial("bytes=-1", 1ULL << 40, (1ULL << 40) - 1, (1ULL << 40) - 1);
    expect_partial("bytes=-4294967296", 1ULL << 40, (1ULL << 40) - 4294967296ULL, (1ULL << 40) - 1);
    expect_result("bytes=1099511627776-", 1ULL << 40, OTA_RANGE_UNSATISFIABLE);
}

/* Only `len` bytes count: what follows in memory is not part of the header. */
static void test_only_len_bytes(void **state)
{
    const char *value = "bytes=0-1999";
    uint64_t first = SENTINEL, last = SENTINEL;
    (void)state;

    assert_int_equal(ota__range_parse(value, strlen("bytes=0-1"), 1000, &first, &last), OTA_RANGE_PARTIAL);
    assert_int_equal(first, 0);
    assert_int_equal(last, 1);

    assert_int_equal(ota__range_parse("bytes=5-,0-1", strlen("bytes=5-"), 1000, &first, &last), OTA_RANGE_PARTIAL);
    assert_int_equal(first, 5);
    assert_int_equal(last, 999);

    assert_int_equal(ota__range_parse("bytes=-100x", strlen("bytes=-100"), 1000, &first, &last), OTA_RANGE_PARTIAL);
    assert_int_equal(first, 900);
    assert_int_equal(last, 999);

    /* A NUL inside the span is a byte like any other, not the end. */
    assert_int_equal(ota__range_parse("bytes=0-1\0"
                                      "5",
                                      11, 1000, &first, &last),
                     OTA_RANGE_NONE);

    assert_int_equal(ota__range_parse("bytes=0-1", 0, 1000, &first, &last), OTA_RANGE_NONE);
    assert_int_equal(ota__range_parse("bytes=0-1", 6, 1000, &first, &last), OTA_RANGE_NONE);
    assert_int_equal(ota__range_parse("bytes=0-1", 7, 1000, &first, &last), OTA_RANGE_NONE);    /* "bytes=0" */
    assert_int_equal(ota__range_parse("bytes=0-1", 8, 1000, &first, &last), OTA_RANGE_PARTIAL); /* "bytes=0-" */
    assert_int_equal(first, 0);
    assert_int_equal(last, 999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_last),
        cmocka_unit_test(test_open_ended),
        cmocka_unit_test(test_suffix),
        cmocka_unit_test(test_clipped_past_end),
        cmocka_unit_test(test_unsatisfiable),
        cmocka_unit_test(test_empty_object),
        cmocka_unit_test(test_last_before_first_ignored),
        cmocka_unit_test(test_multi_range_ignored),
        cmocka_unit_test(test_garbage_ignored),
        cmocka_unit_test(test_spaces_ignored),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_large_numbers_below_2_63),
        cmocka_unit_test(test_big_objects),
        cmocka_unit_test(test_only_len_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
