#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ota/utf8.h"

static bool valid(const char *s)
{
    return ota_utf8_valid(s, strlen(s));
}

static void test_sequence(void **state)
{
    (void)state;
    assert_int_equal(ota_utf8_sequence("a", 1), 1);
    assert_int_equal(ota_utf8_sequence("\xc3\xa9", 2), 2);
    assert_int_equal(ota_utf8_sequence("\xe2\x82\xac", 3), 3);
    assert_int_equal(ota_utf8_sequence("\xf0\x9f\x93\xa6", 4), 4);
    /* Cut short by the length, not only by the bytes. */
    assert_int_equal(ota_utf8_sequence("\xe2\x82\xac", 2), 0);
    assert_int_equal(ota_utf8_sequence("\xc3", 1), 0);
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(valid(""));
    assert_true(valid("plain ASCII"));
    assert_true(valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6"));
    assert_true(valid("\xed\x9f\xbf"));     /* U+D7FF, below the surrogates */
    assert_true(valid("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    assert_true(ota_utf8_valid("a\0b", 3)); /* U+0000 is a character */
    assert_false(valid("\xff"));
    assert_false(valid("\x80"));             /* a stray continuation byte */
    assert_false(valid("caf\xc3"));          /* cut short */
    assert_false(valid("\xc3\x28"));         /* not a continuation byte */
    assert_false(valid("\xc0\xaf"));         /* overlong '/' */
    assert_false(valid("\xe0\x80\xaf"));     /* overlong */
    assert_false(valid("\xf0\x80\x80\xaf")); /* overlong */
    assert_false(valid("\xed\xa0\x80"));     /* U+D800, a surrogate */
    assert_false(valid("\xf4\x90\x80\x80")); /* past U+10FFFF */
    assert_false(valid("\xf5\x80\x80\x80"));
}

static void test_scrub(void **state)
{
    char s[32];
    (void)state;
    strcpy(s, "caf\xc3\xa9");
    assert_int_equal(ota_utf8_scrub(s, strlen(s)), 0);
    assert_string_equal(s, "caf\xc3\xa9");
    /* What jansson once quoted: a backslash and the first byte of a character. */
    strcpy(s, "near '\"\\\xc3'");
    assert_int_equal(ota_utf8_scrub(s, strlen(s)), 1);
    assert_string_equal(s, "near '\"\\?'");
    /* Each byte that starts no sequence is replaced; what follows it is read afresh. */
    strcpy(s, "\xe2\x82x\xff\xc3\xa9\xed\xa0\x80");
    assert_int_equal(ota_utf8_scrub(s, strlen(s)), 6);
    assert_string_equal(s, "??x?\xc3\xa9???");
    assert_true(valid(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_scrub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
