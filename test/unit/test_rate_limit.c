#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/rate_limit.h"

#define WINDOW_MS 10000

/* `n` requests of `key` at `now_ms`, each of which must be let through. */
static void take_ok(ota_rate_limit_t *rl, uint64_t key, uint64_t now_ms, int n)
{
    uint32_t retry = 0;
    for (int i = 0; i < n; i++)
        assert_true(ota__rate_limit_take(rl, key, now_ms, &retry));
}

static uint32_t take_refused(ota_rate_limit_t *rl, uint64_t key, uint64_t now_ms)
{
    uint32_t retry = 0;
    assert_false(ota__rate_limit_take(rl, key, now_ms, &retry));
    return retry;
}

static void test_eleventh_refused_until_the_window_ends(void **state)
{
    (void)state;
    ota_rate_limit_t *rl = ota__rate_limit_new(10, WINDOW_MS, 1024);
    take_ok(rl, 42, 1000, 1);
    take_ok(rl, 42, 5000, 9);                         /* ten within the window that began at 1000 */
    assert_int_equal(take_refused(rl, 42, 5000), 6);  /* it ends at 11000 */
    assert_int_equal(take_refused(rl, 42, 10001), 1); /* rounded up: never 0 */
    assert_int_equal(take_refused(rl, 42, 10999), 1);
    take_ok(rl, 42, 11000, 10); /* a new window */
    assert_int_equal(take_refused(rl, 42, 20999), 1);
    ota__rate_limit_free(rl);
}

static void test_keys_counted_apart(void **state)
{
    (void)state;
    ota_rate_limit_t *rl = ota__rate_limit_new(10, WINDOW_MS, 1024);
    take_ok(rl, 1, 0, 10);
    take_refused(rl, 1, 0);
    take_ok(rl, 2, 0, 10); /* another device is unaffected */
    take_refused(rl, 2, 0);
    /* Keys in the same set (the low bits choose it) are told apart by the whole key. */
    take_ok(rl, 3 + (1ull << 40), 0, 10);
    take_ok(rl, 3, 0, 10);
    take_refused(rl, 3, 0);
    ota__rate_limit_free(rl);
}

/* A flood of distinct keys does not grow the table; it evicts, which lets an evicted key through again. */
static void test_bounded_under_a_flood(void **state)
{
    (void)state;
    ota_rate_limit_t *rl = ota__rate_limit_new(10, WINDOW_MS, 16);
    take_ok(rl, 7, 0, 10);
    take_refused(rl, 7, 0);
    for (uint64_t k = 100; k < 100000; k++)
        take_ok(rl, k, 1, 1);
    take_ok(rl, 7, 2, 1); /* evicted by the flood: counted afresh */
    ota__rate_limit_free(rl);
}

/* A key whose window has ended is replaced before one still counting, and the oldest window goes first. */
static void test_eviction_order(void **state)
{
    (void)state;
    ota_rate_limit_t *rl = ota__rate_limit_new(2, WINDOW_MS, 4); /* one set of four */
    take_ok(rl, 1, 0, 2);                                        /* window ended by 10000 */
    take_ok(rl, 2, 9000, 2);                                     /* still counting at 10000 */
    take_ok(rl, 3, 9500, 2);
    take_ok(rl, 4, 9800, 2);
    take_ok(rl, 5, 10000, 1); /* takes key 1's slot */
    take_refused(rl, 2, 10000);
    take_refused(rl, 3, 10000);
    take_refused(rl, 4, 10000);
    take_ok(rl, 6, 10000, 1); /* takes key 2's slot: its window began first */
    take_refused(rl, 3, 10000);
    take_refused(rl, 4, 10000);
    take_ok(rl, 2, 10000, 1);
    ota__rate_limit_free(rl);
}

static void test_key_zero(void **state)
{
    (void)state;
    ota_rate_limit_t *rl = ota__rate_limit_new(1, WINDOW_MS, 64);
    take_ok(rl, 0, 0, 1);
    take_refused(rl, 0, 1);
    ota__rate_limit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eleventh_refused_until_the_window_ends),
        cmocka_unit_test(test_keys_counted_apart),
        cmocka_unit_test(test_bounded_under_a_flood),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_key_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
