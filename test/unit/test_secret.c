#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ota/base64.h"
#include "core/secret.h"

#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
/* base64url of 32 bytes, unpadded. */
#define RANDOM_CHARS 43

static void check_secret(const char *prefix, const char *s)
{
    size_t plen = strlen(prefix);
    unsigned char raw[64];
    size_t raw_len = 0;

    assert_int_equal(strlen(s), plen + RANDOM_CHARS);
    assert_true(strlen(s) < OTA_SECRET_MAX);
    assert_memory_equal(s, prefix, plen);
    assert_int_equal(strspn(s + plen, B64URL), RANDOM_CHARS);
    /* It is the canonical encoding of exactly 32 bytes. */
    assert_int_equal(ota_base64url_decode(s + plen, RANDOM_CHARS, raw, sizeof raw, &raw_len), OTA_OK);
    assert_int_equal(raw_len, OTA_SECRET_RANDOM_BYTES);
}

static void test_prefixes_and_shape(void **state)
{
    char s[OTA_SECRET_MAX];
    (void)state;

    assert_string_equal(OTA_API_KEY_PREFIX, "ota_");
    assert_string_equal(OTA_DEVICE_TOKEN_PREFIX, "otd_");

    memset(s, 'x', sizeof s);
    assert_int_equal(ota__secret_new(OTA_API_KEY_PREFIX, s), OTA_OK);
    check_secret("ota_", s);
    assert_int_equal(strlen(s), 47);

    memset(s, 'x', sizeof s);
    assert_int_equal(ota__secret_new(OTA_DEVICE_TOKEN_PREFIX, s), OTA_OK);
    check_secret("otd_", s);

    memset(s, 'x', sizeof s);
    assert_int_equal(ota__secret_new("", s), OTA_OK);
    check_secret("", s);
}

static void test_prefix_too_long(void **state)
{
    char s[OTA_SECRET_MAX];
    char prefix[OTA_SECRET_MAX];
    size_t room = OTA_SECRET_MAX - 1 - RANDOM_CHARS;
    (void)state;

    memset(prefix, 'p', room);
    prefix[room] = '\0';
    assert_int_equal(ota__secret_new(prefix, s), OTA_OK);
    check_secret(prefix, s);
    assert_int_equal(strlen(s), OTA_SECRET_MAX - 1);

    prefix[room] = 'p';
    prefix[room + 1] = '\0';
    assert_int_not_equal(ota__secret_new(prefix, s), OTA_OK);
}

static void test_secrets_differ(void **state)
{
    char s[8][OTA_SECRET_MAX];
    (void)state;
    for (int i = 0; i < 8; i++)
        assert_int_equal(ota__secret_new(OTA_API_KEY_PREFIX, s[i]), OTA_OK);
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            assert_string_not_equal(s[i], s[j]);
}

static void check_hash_shape(const char *h)
{
    assert_int_equal(strlen(h), OTA_SECRET_HASH_PG_LEN - 1);
    assert_int_equal(strlen(h), 66);
    assert_memory_equal(h, "\\x", 2);
    assert_int_equal(strspn(h + 2, "0123456789abcdef"), 64);
}

static void test_hash_format(void **state)
{
    char h[OTA_SECRET_HASH_PG_LEN + 4];
    char s[OTA_SECRET_MAX];
    (void)state;

    memset(h, 'z', sizeof h);
    assert_int_equal(ota__secret_new(OTA_DEVICE_TOKEN_PREFIX, s), OTA_OK);
    ota__secret_hash_pg(s, strlen(s), h);
    check_hash_shape(h);
    assert_int_equal(h[OTA_SECRET_HASH_PG_LEN], 'z'); /* nothing written past the buffer */
}

static void test_known_vectors(void **state)
{
    char h[OTA_SECRET_HASH_PG_LEN];
    (void)state;

    /* FIPS 180-2 examples. */
    ota__secret_hash_pg("abc", 3, h);
    assert_string_equal(h, "\\xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ota__secret_hash_pg("", 0, h);
    assert_string_equal(h, "\\xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ota__secret_hash_pg("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
    assert_string_equal(h, "\\x248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* Only `len` bytes are hashed. */
    ota__secret_hash_pg("abcdef", 3, h);
    assert_string_equal(h, "\\xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_hash_equal(void **state)
{
    char a[OTA_SECRET_HASH_PG_LEN], b[OTA_SECRET_HASH_PG_LEN], c[OTA_SECRET_HASH_PG_LEN];
    char longer[OTA_SECRET_HASH_PG_LEN + 1];
    (void)state;

    ota__secret_hash_pg("otd_one", 7, a);
    ota__secret_hash_pg("otd_one", 7, b);
    ota__secret_hash_pg("otd_two", 7, c);
    assert_true(ota__secret_hash_equal(a, b));
    assert_true(ota__secret_hash_equal(a, a));
    assert_false(ota__secret_hash_equal(a, c));
    assert_false(ota__secret_hash_equal(c, a));

    /* One digit off, at the start and at the end. */
    memcpy(b, a, sizeof b);
    b[2] = b[2] == '0' ? '1' : '0';
    assert_false(ota__secret_hash_equal(a, b));
    memcpy(b, a, sizeof b);
    b[OTA_SECRET_HASH_PG_LEN - 2] = b[OTA_SECRET_HASH_PG_LEN - 2] == '0' ? '1' : '0';
    assert_false(ota__secret_hash_equal(a, b));

    /* Different lengths: a prefix, or one character more. */
    memcpy(b, a, sizeof b);
    b[OTA_SECRET_HASH_PG_LEN - 2] = '\0';
    assert_false(ota__secret_hash_equal(a, b));
    assert_false(ota__secret_hash_equal(b, a));
    memcpy(longer, a, OTA_SECRET_HASH_PG_LEN - 1);
    longer[OTA_SECRET_HASH_PG_LEN - 1] = '0';
    longer[OTA_SECRET_HASH_PG_LEN] = '\0';
    assert_false(ota__secret_hash_equal(a, longer));
    assert_false(ota__secret_hash_equal(longer, longer));
    assert_false(ota__secret_hash_equal("", ""));
    assert_false(ota__secret_hash_equal("\\x", "\\x"));
    assert_false(ota__secret_hash_equal(a, NULL));
    assert_false(ota__secret_hash_equal(NULL, a));
    assert_false(ota__secret_hash_equal(NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefixes_and_shape), cmocka_unit_test(test_prefix_too_long),
        cmocka_unit_test(test_secrets_differ),     cmocka_unit_test(test_hash_format),
        cmocka_unit_test(test_known_vectors),      cmocka_unit_test(test_hash_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
