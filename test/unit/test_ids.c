#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/ids.h"

#define ID "0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b11"

static void check_v4_shape(const char *u)
{
    assert_int_equal(strlen(u), OTA_UUID_LEN);
    for (size_t i = 0; i < OTA_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", u[i]));
    }
    assert_int_equal(u[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant: 10xx */
}

static void test_uuid_new_format(void **state)
{
    (void)state;
    for (int i = 0; i < 64; i++) {
        char u[OTA_UUID_LEN + 8];
        memset(u, 'Z', sizeof u);
        ota__uuid_new(u);
        check_v4_shape(u);
        assert_int_equal(u[OTA_UUID_LEN + 1], 'Z'); /* nothing past the NUL */
        char again[OTA_UUID_LEN + 1];
        assert_true(ota__uuid_parse(u, strlen(u), again));
        assert_string_equal(again, u);
    }
}

static void test_uuid_new_unique(void **state)
{
    char u[16][OTA_UUID_LEN + 1];
    (void)state;
    for (int i = 0; i < 16; i++)
        ota__uuid_new(u[i]);
    for (int i = 0; i < 16; i++)
        for (int j = i + 1; j < 16; j++)
            assert_string_not_equal(u[i], u[j]);
}

static void expect_parsed(const char *in, const char *lower)
{
    char out[OTA_UUID_LEN + 1];
    memset(out, 'Z', sizeof out);
    assert_true(ota__uuid_parse(in, strlen(in), out));
    assert_string_equal(out, lower);
}

static void expect_rejected_len(const char *in, size_t len)
{
    char out[OTA_UUID_LEN + 1];
    assert_false(ota__uuid_parse(in, len, out));
}

static void expect_rejected(const char *in)
{
    expect_rejected_len(in, strlen(in));
}

static void test_uuid_parse_accepts(void **state)
{
    (void)state;
    expect_parsed(ID, ID);
    expect_parsed("0B7F5D3E-3A51-4F0E-9C3B-2F1E0D7A9B11", ID);
    expect_parsed("0b7F5d3E-3a51-4F0e-9C3b-2f1E0d7A9b11", ID);
    expect_parsed("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000");
    expect_parsed("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "ffffffff-ffff-ffff-ffff-ffffffffffff");
    /* Not only v4: any hyphenated UUID. */
    expect_parsed("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    /* Only `len` bytes are read. */
    char out[OTA_UUID_LEN + 1];
    assert_true(ota__uuid_parse(ID "trailing", OTA_UUID_LEN, out));
    assert_string_equal(out, ID);
}

static void test_uuid_parse_rejects(void **state)
{
    (void)state;
    /* Lengths. */
    expect_rejected("");
    expect_rejected("0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1");
    expect_rejected(ID "0");
    expect_rejected(ID "-");
    expect_rejected_len(ID, OTA_UUID_LEN - 1);
    expect_rejected_len(ID "0", OTA_UUID_LEN + 1);
    /* Hyphens missing or moved. */
    expect_rejected("0b7f5d3e3a514f0e9c3b2f1e0d7a9b11");
    expect_rejected("0b7f5d3e03a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_rejected("0b7f5d3-e3a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_rejected("0b7f5d3e-3a514-f0e-9c3b-2f1e0d7a9b11");
    expect_rejected("0b7f5d3e-3a51-4f0e-9c3b2-f1e0d7a9b11");
    expect_rejected("0b7f5d3e_3a51_4f0e_9c3b_2f1e0d7a9b11");
    expect_rejected("-0b7f5d3e3a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_rejected("0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b-1");
    /* Non-hex. */
    expect_rejected("0b7f5d3g-3a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_rejected("zb7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_rejected("0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1G");
    expect_rejected("0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1 ");
    expect_rejected("0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1\xff");
    expect_rejected("{b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1}");
    expect_rejected("0x7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_rejected_len("0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1\0", OTA_UUID_LEN);
}

static void expect_slug(const char *s, bool ok)
{
    assert_int_equal(ota__slug_valid(s, strlen(s)), ok);
}

static void test_slug_valid(void **state)
{
    char s[80];
    (void)state;

    expect_slug("a", true);
    expect_slug("0", true);
    expect_slug("cam-v2", true);
    expect_slug("sensor-2026-rev-b", true);
    expect_slug("a-", true);
    expect_slug("a--b", true);
    expect_slug("9-9", true);

    expect_slug("", false);
    expect_slug("-", false);
    expect_slug("-a", false);
    expect_slug("Cam", false);
    expect_slug("caM", false);
    expect_slug("cam_v2", false);
    expect_slug("cam.v2", false);
    expect_slug("cam v2", false);
    expect_slug("cam/v2", false);
    expect_slug("caméra", false);
    expect_slug("{name}", false);

    /* 63 characters are the most. */
    memset(s, 'a', 63);
    s[63] = '\0';
    expect_slug(s, true);
    s[62] = '-';
    expect_slug(s, true);
    memset(s, 'a', 64);
    s[64] = '\0';
    expect_slug(s, false);
    s[0] = '1';
    expect_slug(s, false);

    /* Only `len` bytes are read; a NUL inside them is not a slug character. */
    assert_true(ota__slug_valid("abcDEF", 3));
    assert_false(ota__slug_valid("abcDEF", 4));
    assert_false(ota__slug_valid("ab\0c", 4));
    assert_false(ota__slug_valid("abc", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_new_format),    cmocka_unit_test(test_uuid_new_unique),
        cmocka_unit_test(test_uuid_parse_accepts), cmocka_unit_test(test_uuid_parse_rejects),
        cmocka_unit_test(test_slug_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
