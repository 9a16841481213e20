#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http/cursor.h"
#include "ota/base64.h"

#define TS "2026-11-21T10:00:00.123456Z"
#define ID "0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b11"

/* base64url of arbitrary plain text, to craft cursors the encoder would refuse to make. */
static void b64url(const char *plain, char *out)
{
    ota_base64url_encode(plain, strlen(plain), out);
}

static void expect_rejected_len(const char *s, size_t len)
{
    char ts[OTA_CURSOR_TS_MAX], id[37];
    memset(ts, 'T', sizeof ts);
    memset(id, 'I', sizeof id);
    assert_false(ota__cursor_decode(s, len, ts, id));
}

static void expect_rejected(const char *s)
{
    expect_rejected_len(s, strlen(s));
}

static void expect_plain_rejected(const char *plain)
{
    char enc[256];
    b64url(plain, enc);
    expect_rejected(enc);
}

static void test_round_trip(void **state)
{
    static const char *const pairs[][2] = {
        {TS, ID},
        {"1970-01-01T00:00:00.000000Z", "00000000-0000-0000-0000-000000000000"},
        {"9999-12-31T23:59:59.999999Z", "ffffffff-ffff-ffff-ffff-ffffffffffff"},
        /* A number key: a rollout target's wave. */
        {"1", ID},
        {"0", "00000000-0000-0000-0000-000000000000"},
        {"32767", ID},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char enc[OTA_CURSOR_MAX], ts[OTA_CURSOR_TS_MAX], id[37], expected[OTA_CURSOR_MAX + 8];
        char plain[80];

        memset(enc, 'x', sizeof enc);
        assert_true(ota__cursor_encode(pairs[i][0], pairs[i][1], enc));
        /* The documented form: base64url("<ts>,<uuid>"), opaque to clients but URL-safe. */
        snprintf(plain, sizeof plain, "%s,%s", pairs[i][0], pairs[i][1]);
        b64url(plain, expected);
        assert_string_equal(enc, expected);
        assert_true(strlen(enc) < OTA_CURSOR_MAX);
        assert_null(strpbrk(enc, "+/="));

        assert_true(ota__cursor_decode(enc, strlen(enc), ts, id));
        assert_string_equal(ts, pairs[i][0]);
        assert_string_equal(id, pairs[i][1]);
    }
}

static void test_decode_uses_len(void **state)
{
    char enc[OTA_CURSOR_MAX + 8], ts[OTA_CURSOR_TS_MAX], id[37];
    size_t n;
    (void)state;
    assert_true(ota__cursor_encode(TS, ID, enc));
    n = strlen(enc);
    enc[n] = 'A'; /* junk after the given length is not read */
    enc[n + 1] = '\0';
    assert_true(ota__cursor_decode(enc, n, ts, id));
    assert_string_equal(ts, TS);
    assert_string_equal(id, ID);
    /* But one character more or fewer is a different (bad) cursor. */
    expect_rejected_len(enc, n + 1);
    expect_rejected_len(enc, n - 1);
}

static void test_decode_rejects_junk(void **state)
{
    (void)state;
    expect_rejected("");
    expect_rejected_len("abc", 0);
    expect_rejected("garbage");
    expect_rejected("not a cursor");
    expect_rejected("A");
    expect_rejected("AAAA");
    expect_rejected("infinity");
}

static void test_decode_rejects_bad_chars(void **state)
{
    char enc[OTA_CURSOR_MAX];
    (void)state;
    assert_true(ota__cursor_encode(TS, ID, enc));
    size_t n = strlen(enc);
    static const char bad[] = {'+', '/', '=', ' ', '.', '%', '\n', '\0', '\x80'};
    for (size_t i = 0; i < sizeof bad; i++) {
        for (size_t pos = 0; pos < n; pos += 7) {
            char copy[OTA_CURSOR_MAX];
            memcpy(copy, enc, n);
            copy[pos] = bad[i];
            expect_rejected_len(copy, n);
        }
    }
}

static void test_decode_rejects_padding(void **state)
{
    char enc[OTA_CURSOR_MAX + 4];
    char plain[80];
    (void)state;
    /* Pick a length whose base64url is not a multiple of 4, so standard base64 would pad it. */
    snprintf(plain, sizeof plain, "%s,%s", TS, ID);
    assert_int_not_equal(ota_base64url_encoded_len(strlen(plain)) % 4, 0);
    b64url(plain, enc);
    size_t n = strlen(enc);
    while (n % 4 != 0)
        enc[n++] = '=';
    enc[n] = '\0';
    expect_rejected(enc);
}

static void test_decode_rejects_wrong_contents(void **state)
{
    (void)state;
    /* Sanity: the crafted route accepts the real thing. */
    {
        char enc[128], ts[OTA_CURSOR_TS_MAX], id[37];
        b64url(TS "," ID, enc);
        assert_true(ota__cursor_decode(enc, strlen(enc), ts, id));
    }
    /* No comma. */
    expect_plain_rejected(TS ID);
    expect_plain_rejected(TS ";" ID);
    expect_plain_rejected("hello world");
    /* Comma in the wrong place or twice. */
    expect_plain_rejected("," TS ID);
    expect_plain_rejected(TS ID ",");
    expect_plain_rejected(TS ",," ID);
    expect_plain_rejected(TS "," ID ",");
    /* Timestamp of another shape. */
    expect_plain_rejected("2026-11-21T10:00:00Z," ID);
    expect_plain_rejected("2026-11-21T10:00:00.123Z," ID);
    expect_plain_rejected("2026-11-21 10:00:00.123456Z," ID);
    expect_plain_rejected("2026-11-21T10:00:00.123456," ID);
    expect_plain_rejected("2026-11-21T10:00:00.123456+00," ID);
    expect_plain_rejected("2026-1-210T10:00:00.123456Z," ID);
    expect_plain_rejected("2026-11-21T10:00:0a.123456Z," ID);
    expect_plain_rejected("2026-11-21t10:00:00.123456z," ID);
    expect_plain_rejected("12026-11-21T10:00:00.123456Z," ID);
    expect_plain_rejected("infinity," ID);
    expect_plain_rejected("," ID);
    /* Number keys out of shape or range. */
    expect_plain_rejected("01," ID);
    expect_plain_rejected("-1," ID);
    expect_plain_rejected("1.5," ID);
    expect_plain_rejected("32768," ID);
    expect_plain_rejected("123456," ID);
    expect_plain_rejected(" 1," ID);
    /* Bad UUID. */
    expect_plain_rejected(TS ",");
    expect_plain_rejected(TS ",0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1");
    expect_plain_rejected(TS ",0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b111");
    expect_plain_rejected(TS ",0b7f5d3e3a514f0e9c3b2f1e0d7a9b11");
    expect_plain_rejected(TS ",0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9bg1");
    expect_plain_rejected(TS ",0b7f5d3e_3a51-4f0e-9c3b-2f1e0d7a9b11");
    expect_plain_rejected(TS ",{0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1}");
    /* Extra bytes. */
    expect_plain_rejected(TS "," ID "x");
    expect_plain_rejected(TS "," ID " ");
    expect_plain_rejected("x" TS "," ID);
    expect_plain_rejected(ID "," TS);
    {
        char enc[128];
        static const char with_nul[] = TS "," ID "\0";
        ota_base64url_encode(with_nul, sizeof with_nul, enc); /* includes the trailing NUL byte */
        expect_rejected(enc);
    }
}

static void test_decode_rejects_overlong(void **state)
{
    char buf[4 * OTA_CURSOR_MAX];
    (void)state;

    /* A valid cursor followed by base64url text that is valid too: too long is too long. */
    assert_true(ota__cursor_encode(TS, ID, buf));
    size_t n = strlen(buf);
    while (n < sizeof buf - 1)
        buf[n++] = 'A';
    buf[n] = '\0';
    expect_rejected(buf);
    expect_rejected_len(buf, OTA_CURSOR_MAX);
    expect_rejected_len(buf, OTA_CURSOR_MAX - 1);
    /* Much longer, all alphabet: must not overrun anything (run under ASan). */
    memset(buf, 'Q', sizeof buf - 1);
    expect_rejected_len(buf, sizeof buf - 1);
}

static void test_uuid_case_normalized(void **state)
{
    char enc[128], ts[OTA_CURSOR_TS_MAX], id[37];
    (void)state;
    b64url(TS ",0B7F5D3E-3A51-4F0E-9C3B-2F1E0D7A9B11", enc);
    assert_true(ota__cursor_decode(enc, strlen(enc), ts, id));
    assert_string_equal(ts, TS);
    assert_string_equal(id, ID);

    assert_true(ota__cursor_encode(TS, "0B7F5D3E-3a51-4F0E-9c3b-2F1E0D7A9B11", enc));
    assert_true(ota__cursor_decode(enc, strlen(enc), ts, id));
    assert_string_equal(id, ID);
}

static void test_encode_rejects_malformed(void **state)
{
    char out[OTA_CURSOR_MAX];
    (void)state;
    /* Timestamps. */
    assert_false(ota__cursor_encode("", ID, out));
    assert_false(ota__cursor_encode("infinity", ID, out));
    assert_false(ota__cursor_encode("2026-11-21T10:00:00Z", ID, out));
    assert_false(ota__cursor_encode("2026-11-21T10:00:00.123456", ID, out));
    assert_false(ota__cursor_encode("2026-11-21T10:00:00.1234567Z", ID, out));
    assert_false(ota__cursor_encode("2026-11-21 10:00:00.123456Z", ID, out));
    assert_false(ota__cursor_encode("2026-11-21T10:00:00,123456Z", ID, out));
    assert_false(ota__cursor_encode("2026-11-21T10:00:00.12345xZ", ID, out));
    assert_false(ota__cursor_encode("2026-11-21T10:00:00.123456Z2026-11-21T10:00:00.123456Z", ID, out));
    /* Ids of the wrong length. */
    assert_false(ota__cursor_encode(TS, "", out));
    assert_false(ota__cursor_encode(TS, "0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b1", out));
    assert_false(ota__cursor_encode(TS, ID "0", out));
    assert_false(ota__cursor_encode(TS, "0b7f5d3e3a514f0e9c3b2f1e0d7a9b11", out));
}

/* An id of the right length that is not a UUID: the encoder must refuse it, as its header says. */
static void test_encode_rejects_non_uuid_id(void **state)
{
    char out[OTA_CURSOR_MAX];
    (void)state;
    assert_false(ota__cursor_encode(TS, "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", out));
    assert_false(ota__cursor_encode(TS, "0b7f5d3e,3a51-4f0e-9c3b-2f1e0d7a9b11", out));
    assert_false(ota__cursor_encode(TS, "0b7f5d3e3a51-4f0e-9c3b-2f1e0d7a9b11-", out));
    assert_false(ota__cursor_encode(TS, "000000000000000000000000000000000000", out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_uses_len),
        cmocka_unit_test(test_decode_rejects_junk),
        cmocka_unit_test(test_decode_rejects_bad_chars),
        cmocka_unit_test(test_decode_rejects_padding),
        cmocka_unit_test(test_decode_rejects_wrong_contents),
        cmocka_unit_test(test_decode_rejects_overlong),
        cmocka_unit_test(test_uuid_case_normalized),
        cmocka_unit_test(test_encode_rejects_malformed),
        cmocka_unit_test(test_encode_rejects_non_uuid_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
