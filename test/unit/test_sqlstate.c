#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db/sqlstate.h"

static void test_transient_states_are_retryable(void **state)
{
    (void)state;
    static const char *const RETRY[] = {"40P01", /* deadlock detected */
                                        "40001", /* serialization failure */
                                        "57P03", /* cannot connect now */
                                        "25006", /* read-only SQL transaction */
                                        "57014", /* query canceled (statement timeout) */
                                        "57P01", /* admin shutdown */
                                        "57P02", /* crash shutdown */
                                        "08006", /* connection failure */
                                        "08000", NULL};
    for (const char *const *s = RETRY; *s != NULL; s++)
        assert_int_equal(ota__sqlstate_kind(*s), OTA_SQLSTATE_TRANSIENT);
}

static void test_request_errors(void **state)
{
    (void)state;
    assert_int_equal(ota__sqlstate_kind("23505"), OTA_SQLSTATE_DUPLICATE);
    assert_int_equal(ota__sqlstate_kind("23503"), OTA_SQLSTATE_INVALID);
    assert_int_equal(ota__sqlstate_kind("23514"), OTA_SQLSTATE_INVALID);
    assert_int_equal(ota__sqlstate_kind("22001"), OTA_SQLSTATE_INVALID);
}

static void test_everything_else_is_internal(void **state)
{
    (void)state;
    static const char *const OURS[] = {"42P01", /* undefined table: a bug */
                                       "40002", /* integrity violation at commit: not solved by retrying */
                                       "25P02", /* in failed transaction */
                                       "P0001", /* raise_exception */
                                       "08",    "4", "", NULL};
    for (const char *const *s = OURS; *s != NULL; s++)
        assert_int_equal(ota__sqlstate_kind(*s), OTA_SQLSTATE_INTERNAL);
    assert_int_equal(ota__sqlstate_kind(NULL), OTA_SQLSTATE_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient_states_are_retryable),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_everything_else_is_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
