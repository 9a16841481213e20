/* Unit tests: server/heartbeat/presign_cache.c, with a presign function that counts its calls and numbers its URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heartbeat/presign_cache.h"

typedef struct fake {
    int calls;
    ota_err_t fail_with; /* OTA_OK: succeed */
} fake_t;

/* "https://s/<key>?t=<now>&ttl=<ttl>&n=<call number>": a URL that tells which call made it. */
static ota_err_t fake_presign(void *arg, const char *key, time_t now, int ttl, char *url, size_t cap)
{
    fake_t *f = arg;
    f->calls++;
    if (f->fail_with != OTA_OK)
        return f->fail_with;
    int n = snprintf(url, cap, "https://s/%s?t=%lld&ttl=%d&n=%d", key, (long long)now, ttl, f->calls);
    return n > 0 && (size_t)n < cap ? OTA_OK : OTA_ERR_TOO_LARGE;
}

static ota_presign_cache_t *new_cache(void)
{
    ota_presign_cache_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    return c;
}

/* The same key, second and ttl: the first URL again, without presigning. */
static void test_same_second_reuses(void **state)
{
    (void)state;
    ota_presign_cache_t *c = new_cache();
    fake_t f = {0};
    char a[256], b[256];
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "m/1.0.bin", 1000, 900, a, sizeof a), OTA_OK);
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "m/1.0.bin", 1000, 900, b, sizeof b), OTA_OK);
    assert_int_equal(f.calls, 1);
    assert_string_equal(a, "https://s/m/1.0.bin?t=1000&ttl=900&n=1");
    assert_string_equal(b, a);
    free(c);
}

/* Another second, another ttl or another key: a new URL each time. */
static void test_anything_else_presigns(void **state)
{
    (void)state;
    ota_presign_cache_t *c = new_cache();
    fake_t f = {0};
    char u[256];
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k", 1000, 900, u, sizeof u), OTA_OK);
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k", 1001, 900, u, sizeof u), OTA_OK);
    assert_string_equal(u, "https://s/k?t=1001&ttl=900&n=2");
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k", 1001, 60, u, sizeof u), OTA_OK);
    assert_string_equal(u, "https://s/k?t=1001&ttl=60&n=3");
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k2", 1001, 60, u, sizeof u), OTA_OK);
    assert_string_equal(u, "https://s/k2?t=1001&ttl=60&n=4");
    assert_int_equal(f.calls, 4);
    free(c);
}

/* Many keys in one second: each gets its own URL, whatever slot it shares. */
static void test_many_keys(void **state)
{
    (void)state;
    ota_presign_cache_t *c = new_cache();
    fake_t f = {0};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3 * OTA_PRESIGN_CACHE_SLOTS; i++) {
            char key[32], u[256], prefix[64];
            snprintf(key, sizeof key, "model/%d.bin", i);
            assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, key, 5, 900, u, sizeof u), OTA_OK);
            snprintf(prefix, sizeof prefix, "https://s/%s?t=5&ttl=900&n=", key);
            assert_memory_equal(u, prefix, strlen(prefix));
        }
    }
    free(c);
}

/* A failed presign is passed on and nothing is kept; a URL that does not fit the caller's buffer is refused. */
static void test_errors(void **state)
{
    (void)state;
    ota_presign_cache_t *c = new_cache();
    fake_t f = {.fail_with = OTA_ERR_CRYPTO};
    char u[256], small[8];
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k", 7, 900, u, sizeof u), OTA_ERR_CRYPTO);
    f.fail_with = OTA_OK;
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k", 7, 900, u, sizeof u), OTA_OK);
    assert_int_equal(f.calls, 2);
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, "k", 7, 900, small, sizeof small), OTA_ERR_TOO_LARGE);
    assert_int_equal(f.calls, 2);
    free(c);
}

/* Keys longer than the cache keeps are presigned every time. */
static void test_long_key_not_cached(void **state)
{
    (void)state;
    ota_presign_cache_t *c = new_cache();
    fake_t f = {0};
    char key[OTA_PRESIGN_CACHE_KEY_MAX + 2], u[OTA_MANIFEST_URL_MAX + 1];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, key, 9, 900, u, sizeof u), OTA_OK);
    assert_int_equal(ota__presign_cache_get(c, fake_presign, &f, key, 9, 900, u, sizeof u), OTA_OK);
    assert_int_equal(f.calls, 2);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_second_reuses), cmocka_unit_test(test_anything_else_presigns),
        cmocka_unit_test(test_many_keys),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_key_not_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
