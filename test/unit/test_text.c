#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ota/text.h"

/* realloc, wrapped at link time (-Wl,--wrap=realloc): fails while `realloc_fails` is set. */
void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);

static int realloc_fails;

void *__wrap_realloc(void *p, size_t size)
{
    return realloc_fails ? NULL : __real_realloc(p, size);
}

static void test_fixed(void **state)
{
    char buf[64];
    ota_text_t t;
    (void)state;

    memset(buf, 'x', sizeof buf);
    ota_text_fixed(&t, buf, sizeof buf);
    assert_string_equal(buf, "");
    ota_text_puts(&t, "size=");
    ota_text_put_u64(&t, 0);
    ota_text_put(&t, ",", 1);
    ota_text_put_u64(&t, UINT64_MAX);
    ota_text_printf(&t, " %s:%d", "p", -7);
    ota_text_put(&t, "ignored", 0);
    assert_int_equal(t.err, OTA_OK);
    assert_string_equal(buf, "size=0,18446744073709551615 p:-7");
    assert_int_equal(t.len, strlen(buf));
    assert_ptr_equal(t.base, buf);
    ota_text_free(&t); /* the caller's: left alone */
    assert_ptr_equal(t.base, buf);
    assert_int_equal(t.len, 0);
}

/* A write that does not fit is not stored, nor is anything after it; the length still counts. */
static void test_fixed_cap_hit(void **state)
{
    char buf[8];
    ota_text_t t;
    (void)state;

    ota_text_fixed(&t, buf, sizeof buf);
    ota_text_puts(&t, "abcdefg"); /* 7 bytes and the NUL: exactly full */
    assert_int_equal(t.err, OTA_OK);
    assert_string_equal(buf, "abcdefg");

    ota_text_fixed(&t, buf, sizeof buf);
    ota_text_puts(&t, "abc");
    ota_text_puts(&t, "defgh"); /* one too many: not stored, not even in part */
    assert_int_equal(t.err, OTA_ERR_TOO_LARGE);
    assert_string_equal(buf, "abc");
    ota_text_put(&t, "x", 1); /* would fit, but comes after the failure */
    ota_text_put_u64(&t, 42);
    ota_text_printf(&t, "%s", "yz");
    assert_string_equal(buf, "abc");
    assert_int_equal(t.len, strlen("abcdefghx42yz"));

    ota_text_reset(&t);
    assert_int_equal(t.err, OTA_OK);
    assert_int_equal(t.len, 0);
    assert_string_equal(buf, "");
}

static void test_fixed_printf_boundary(void **state)
{
    char buf[6];
    ota_text_t t;
    (void)state;

    ota_text_fixed(&t, buf, sizeof buf);
    ota_text_printf(&t, "%05d", 42);
    assert_int_equal(t.err, OTA_OK);
    assert_string_equal(buf, "00042");

    ota_text_fixed(&t, buf, sizeof buf);
    ota_text_puts(&t, "ab");
    ota_text_printf(&t, "%d", 1234); /* 2 + 4 = 6: no room for the NUL */
    assert_int_equal(t.err, OTA_ERR_TOO_LARGE);
    assert_string_equal(buf, "ab"); /* vsnprintf's cut attempt is not kept */
    assert_int_equal(t.len, 6);
}

/* No room at all: measures, so that the caller can size a buffer. */
static void test_measure_only(void **state)
{
    ota_text_t t;
    (void)state;

    ota_text_fixed(&t, NULL, 0);
    assert_int_equal(t.err, OTA_ERR_TOO_LARGE);
    ota_text_puts(&t, "hello, ");
    ota_text_printf(&t, "%s #%d", "world", 12);
    ota_text_put_u64(&t, 1000);
    assert_int_equal(t.len, strlen("hello, world #121000"));
    assert_null(t.base);

    char *buf = malloc(t.len + 1);
    assert_non_null(buf);
    ota_text_fixed(&t, buf, strlen("hello, world #121000") + 1);
    ota_text_puts(&t, "hello, ");
    ota_text_printf(&t, "%s #%d", "world", 12);
    ota_text_put_u64(&t, 1000);
    assert_int_equal(t.err, OTA_OK);
    assert_string_equal(buf, "hello, world #121000");
    free(buf);
}

static void test_heap_grows(void **state)
{
    ota_text_t t;
    (void)state;

    ota_text_heap(&t, SIZE_MAX);
    assert_null(t.base);
    for (unsigned i = 0; i < 10000; i++) {
        ota_text_put_u64(&t, i % 10);
        ota_text_put(&t, ";", 1);
    }
    ota_text_printf(&t, "%0*d", 5000, 7); /* more than the room left: grows, then writes it whole */
    assert_int_equal(t.err, OTA_OK);
    assert_int_equal(t.len, 20000 + 5000);
    assert_int_equal(strlen(t.base), t.len);
    assert_memory_equal(t.base + 19980, "0;1;2;3;4;5;6;7;8;9;", 20);
    assert_int_equal(t.base[20000 + 4999], '7');
    for (unsigned i = 0; i < 10000; i += 997)
        assert_int_equal(t.base[2 * i], '0' + i % 10);
    ota_text_reset(&t);
    assert_int_equal(t.len, 0);
    assert_string_equal(t.base, "");
    ota_text_free(&t);
    assert_null(t.base);
    ota_text_puts(&t, "again"); /* still a heap text after the free */
    assert_string_equal(t.base, "again");
    ota_text_free(&t);
}

static void test_heap_max(void **state)
{
    ota_text_t t;
    char big[3000];
    (void)state;

    memset(big, 'a', sizeof big);
    ota_text_heap(&t, sizeof big);
    ota_text_put(&t, big, sizeof big); /* exactly the most */
    assert_int_equal(t.err, OTA_OK);
    assert_int_equal(strlen(t.base), sizeof big);
    ota_text_put(&t, "b", 1);
    assert_int_equal(t.err, OTA_ERR_TOO_LARGE);
    assert_int_equal(t.len, sizeof big + 1);
    assert_int_equal(strlen(t.base), sizeof big);
    ota_text_free(&t);

    ota_text_heap(&t, 10); /* a most below the first buffer's size */
    ota_text_printf(&t, "%s", "0123456789");
    assert_int_equal(t.err, OTA_OK);
    assert_true(t.cap <= 11);
    ota_text_printf(&t, "%d", 1);
    assert_int_equal(t.err, OTA_ERR_TOO_LARGE);
    assert_string_equal(t.base, "0123456789");
    ota_text_free(&t);
}

/* Out of memory is told apart from too large, keeps what was written, and aborts nothing. */
static void test_heap_out_of_memory(void **state)
{
    ota_text_t t;
    char big[5000];
    (void)state;

    ota_text_heap(&t, 1 << 20);
    realloc_fails = 1;
    ota_text_puts(&t, "x");
    realloc_fails = 0;
    assert_int_equal(t.err, OTA_ERR_NOMEM);
    assert_null(t.base);
    ota_text_free(&t);

    memset(big, 'b', sizeof big);
    ota_text_heap(&t, 1 << 20);
    ota_text_puts(&t, "kept");
    realloc_fails = 1;
    ota_text_put(&t, big, sizeof big);
    ota_text_printf(&t, "%d", 5);
    realloc_fails = 0;
    ota_text_puts(&t, "after"); /* memory is back, but the text failed already */
    assert_int_equal(t.err, OTA_ERR_NOMEM);
    assert_string_equal(t.base, "kept");
    assert_int_equal(t.len, 4 + sizeof big + 1 + 5);

    realloc_fails = 1;
    ota_text_reset(&t);
    ota_text_printf(&t, "%0*d", 4000, 1); /* printf's own growth fails as well */
    realloc_fails = 0;
    assert_int_equal(t.err, OTA_ERR_NOMEM);
    assert_string_equal(t.base, "");
    ota_text_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_fixed_cap_hit),
        cmocka_unit_test(test_fixed_printf_boundary),
        cmocka_unit_test(test_measure_only),
        cmocka_unit_test(test_heap_grows),
        cmocka_unit_test(test_heap_max),
        cmocka_unit_test(test_heap_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
