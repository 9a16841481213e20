/* Unit tests: how server/heartbeat/deferred_writes.c spreads the chunks of one write over the interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "heartbeat/deferred_writes.h"

/* When the last chunk of a write of `rows` rows (200 a chunk) is sent, in ms after the first, `periods` apart. */
static size_t last_chunk_ms(size_t rows, unsigned periods)
{
    size_t chunks = (rows + 199) / 200;
    return (chunks - 1) * periods * 10;
}

/* One chunk, or none, has nothing to wait for. */
static void test_single_chunk(void **state)
{
    (void)state;
    assert_int_equal(ota__deferred_writes_pace_periods(5000, 0), 1);
    assert_int_equal(ota__deferred_writes_pace_periods(5000, 1), 1);
    assert_int_equal(ota__deferred_writes_pace_periods(5000, 200), 1);
}

/* A large write is spread over most of the time its rows took to pile up: its last chunk goes within 3/4 of it. */
static void test_spread_over_the_interval(void **state)
{
    (void)state;
    /* 21,000 rows in 5 s: a million devices' presence for one thread of two, per interval; 105 chunks. */
    unsigned p = ota__deferred_writes_pace_periods(5000, 21000);
    assert_int_equal(p, 3); /* 3,750 ms / (104 gaps x 10 ms) */
    assert_in_range(last_chunk_ms(21000, p), 3000, 3750);
    /* 25,000 rows in 3.6 s (a write started early): 125 chunks within 2.7 s, faster than they came. */
    p = ota__deferred_writes_pace_periods(3600, 25000);
    assert_int_equal(p, 2);
    assert_in_range(last_chunk_ms(25000, p), 2000, 2700);
    /* Two chunks: the second 3.75 s after the first. */
    assert_int_equal(ota__deferred_writes_pace_periods(5000, 201), 375);
    /* 1,000 rows in the tests' 200 ms interval: 5 chunks, 30 ms apart. */
    assert_int_equal(ota__deferred_writes_pace_periods(200, 1000), 3);
    assert_in_range(last_chunk_ms(1000, 3), 100, 150);
}

/* More chunks than periods in the time: one period apart, the fastest the pace allows. */
static void test_never_below_one_period(void **state)
{
    (void)state;
    assert_int_equal(ota__deferred_writes_pace_periods(5000, 100000), 1);
    assert_int_equal(ota__deferred_writes_pace_periods(10, 1000), 1);
    assert_int_equal(ota__deferred_writes_pace_periods(0, 1000), 1);
    assert_int_equal(ota__deferred_writes_pace_periods(-5, 1000), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_chunk),
        cmocka_unit_test(test_spread_over_the_interval),
        cmocka_unit_test(test_never_below_one_period),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
