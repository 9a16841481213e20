#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "core/key_slots.h"

static void test_take_up_to_max(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        assert_true(ota__key_slots_take("a", 3));
    assert_false(ota__key_slots_take("a", 3));
    assert_int_equal(ota__key_slots_used("a"), 3);
    ota__key_slots_give("a");
    assert_true(ota__key_slots_take("a", 3));
    for (int i = 0; i < 3; i++)
        ota__key_slots_give("a");
    assert_int_equal(ota__key_slots_used("a"), 0);
}

static void test_keys_are_apart(void **state)
{
    (void)state;
    assert_true(ota__key_slots_take("b", 1));
    assert_false(ota__key_slots_take("b", 1));
    assert_true(ota__key_slots_take("c", 1));
    assert_int_equal(ota__key_slots_used("b"), 1);
    assert_int_equal(ota__key_slots_used("c"), 1);
    ota__key_slots_give("b");
    ota__key_slots_give("c");
    assert_int_equal(ota__key_slots_used("b"), 0);
}

/* Entries of keys that hold nothing are reused: many keys one after the other, each taken and given back. */
static void test_entries_reused(void **state)
{
    (void)state;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(ota__key_slots_take(key, 1));
        ota__key_slots_give(key);
    }
    assert_int_equal(ota__key_slots_used("k999"), 0);
    ota__key_slots_give("never-taken"); /* harmless */
    assert_int_equal(ota__key_slots_used("never-taken"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_up_to_max),
        cmocka_unit_test(test_keys_are_apart),
        cmocka_unit_test(test_entries_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
