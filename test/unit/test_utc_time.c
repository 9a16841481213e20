/* Unit tests: server/core/utc_time.c, against strftime on the same instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/utc_time.h"

/* What strftime writes for `t` in UTC: the reference. */
static void reference(time_t t, char out[OTA_UTC_TEXT_LEN + 1])
{
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    assert_int_equal(strftime(out, OTA_UTC_TEXT_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm), OTA_UTC_TEXT_LEN);
}

static void expect_text(time_t t, const char *text)
{
    char out[OTA_UTC_TEXT_LEN + 1];
    assert_true(ota__utc_text(t, out));
    assert_string_equal(out, text);
}

static void test_known_instants(void **state)
{
    (void)state;
    expect_text(0, "1970-01-01T00:00:00Z");
    expect_text(951782400, "2000-02-29T00:00:00Z");  /* a leap day of a year divisible by 400 */
    expect_text(1795379699, "2026-11-22T20:34:59Z"); /* every field two digits */
    expect_text(4107542399, "2100-02-28T23:59:59Z"); /* 2100 is not a leap year */
    expect_text(4107542400, "2100-03-01T00:00:00Z");
    expect_text(253402300799, "9999-12-31T23:59:59Z");
}

/* Every 7,777 s over 1970-2200 (~920,000 instants, every hour and day of the month): the same text as strftime. */
static void test_agrees_with_strftime(void **state)
{
    char got[OTA_UTC_TEXT_LEN + 1], want[OTA_UTC_TEXT_LEN + 1];
    (void)state;
    for (int64_t t = 0; t < 7258118400; t += 7777) {
        assert_true(ota__utc_text((time_t)t, got));
        reference((time_t)t, want);
        if (strcmp(got, want) != 0)
            fail_msg("%lld: %s, strftime: %s", (long long)t, got, want);
    }
}

static void test_years_out_of_range(void **state)
{
    char out[OTA_UTC_TEXT_LEN + 1] = "x";
    (void)state;
    assert_false(ota__utc_text(253402300800, out)); /* 10000-01-01 */
    assert_string_equal(out, "");
    assert_false(ota__utc_text(-62167219201, out)); /* the last second of year -1 */
    assert_string_equal(out, "");
    expect_text(-62167219200, "0000-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_instants),
        cmocka_unit_test(test_agrees_with_strftime),
        cmocka_unit_test(test_years_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
