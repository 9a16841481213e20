#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "ota/base64.h"

#define BIG 1024

typedef ota_err_t (*decode_fn)(const char *, size_t, void *, size_t, size_t *);

typedef struct vector {
    const char *raw;
    const char *std;
    const char *url;
} vector_t;

/* RFC 4648 section 10, and section 9's bytes for the two alphabets. */
static const vector_t vectors[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    {"\x14\xfb\x9c\x03\xd9\x7e", "FPucA9l+", "FPucA9l-"},
    {"\x14\xfb\x9c\x03\xd9", "FPucA9k=", "FPucA9k"},
    {"\x14\xfb\x9c\x03", "FPucAw==", "FPucAw"},
    {"\xfb\xff", "+/8=", "-_8"},
    {"\xff\xff\xff", "////", "____"},
};

static void expect_decoded(decode_fn fn, const char *enc, const void *raw, size_t raw_len)
{
    unsigned char out[BIG];
    size_t out_len = 12345;

    assert_int_equal(fn(enc, strlen(enc), out, sizeof(out), &out_len), OTA_OK);
    assert_int_equal(out_len, raw_len);
    assert_memory_equal(out, raw, raw_len);
}

static void expect_rejected(decode_fn fn, const char *enc, size_t len)
{
    unsigned char out[BIG];
    size_t out_len = 12345;

    assert_int_equal(fn(enc, len, out, sizeof(out), &out_len), OTA_ERR_INVALID);
    assert_int_equal(out_len, 12345);
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector_t *v = &vectors[i];
        size_t n = strlen(v->raw);
        char enc[64];

        assert_int_equal(ota_base64_encoded_len(n), strlen(v->std));
        memset(enc, 'x', sizeof(enc));
        ota_base64_encode(v->raw, n, enc);
        assert_string_equal(enc, v->std);
        expect_decoded(ota_base64_decode, v->std, v->raw, n);

        assert_int_equal(ota_base64url_encoded_len(n), strlen(v->url));
        memset(enc, 'x', sizeof(enc));
        ota_base64url_encode(v->raw, n, enc);
        assert_string_equal(enc, v->url);
        expect_decoded(ota_base64url_decode, v->url, v->raw, n);
    }
}

static void test_encoded_len(void **state)
{
    static const size_t std_len[] = {0, 4, 4, 4, 8, 8, 8, 12};
    static const size_t url_len[] = {0, 2, 3, 4, 6, 7, 8, 10};

    (void)state;
    for (size_t n = 0; n < 8; n++) {
        assert_int_equal(ota_base64_encoded_len(n), std_len[n]);
        assert_int_equal(ota_base64url_encoded_len(n), url_len[n]);
    }
}

/* A fixed-seed xorshift, so a failure can be replayed. */
static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned char next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned char)(rng >> 32);
}

/* OpenSSL's encoder is the reference; base64url is derived from its output. */
static void reference_encode(const unsigned char *raw, size_t n, char *std, char *url)
{
    int len = EVP_EncodeBlock((unsigned char *)std, raw, (int)n);
    size_t j = 0;

    for (int i = 0; i < len; i++) {
        char c = std[i];
        if (c == '=')
            break;
        url[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    url[j] = '\0';
}

static void round_trip(const unsigned char *raw, size_t n)
{
    char std[BIG * 2], url[BIG * 2], ref_std[BIG * 2], ref_url[BIG * 2];
    unsigned char out[BIG];
    size_t out_len = 0;

    reference_encode(raw, n, ref_std, ref_url);
    ota_base64_encode(raw, n, std);
    ota_base64url_encode(raw, n, url);
    assert_string_equal(std, ref_std);
    assert_string_equal(url, ref_url);
    assert_int_equal(strlen(std), ota_base64_encoded_len(n));
    assert_int_equal(strlen(url), ota_base64url_encoded_len(n));

    assert_int_equal(ota_base64_decode(std, strlen(std), out, n, &out_len), OTA_OK);
    assert_int_equal(out_len, n);
    assert_memory_equal(out, raw, n);
    out_len = 0;
    assert_int_equal(ota_base64url_decode(url, strlen(url), out, n, &out_len), OTA_OK);
    assert_int_equal(out_len, n);
    assert_memory_equal(out, raw, n);
}

static void test_round_trip_random(void **state)
{
    unsigned char raw[BIG];

    (void)state;
    for (size_t n = 0; n <= 300; n++) {
        for (int k = 0; k < 20; k++) {
            for (size_t i = 0; i < n; i++)
                raw[i] = next_byte();
            round_trip(raw, n);
        }
    }
    for (size_t i = 0; i < BIG; i++)
        raw[i] = next_byte();
    round_trip(raw, BIG);
}

static void test_round_trip_all_bytes(void **state)
{
    unsigned char raw[256];

    (void)state;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)i;
    for (size_t start = 0; start < 3; start++)
        round_trip(raw + start, sizeof(raw) - start);
}

static void test_std_rejects_bad_chars(void **state)
{
    (void)state;
    expect_rejected(ota_base64_decode, "Zm9-", 4);
    expect_rejected(ota_base64_decode, "Zm9_", 4);
    expect_rejected(ota_base64_decode, "Zm 9", 4);
    expect_rejected(ota_base64_decode, "Zm9v\nYmFy", 9);
    expect_rejected(ota_base64_decode, "Zm9vYmF\n", 8);
    expect_rejected(ota_base64_decode, "Zm\0v", 4);
    expect_rejected(ota_base64_decode, "Zm9\x80", 4);
    expect_rejected(ota_base64_decode, "Zm9\xff", 4);
}

static void test_url_rejects_bad_chars(void **state)
{
    (void)state;
    expect_rejected(ota_base64url_decode, "Zm9+", 4);
    expect_rejected(ota_base64url_decode, "Zm9/", 4);
    expect_rejected(ota_base64url_decode, "Zm 9", 4);
    expect_rejected(ota_base64url_decode, "Zm\0v", 4);
    expect_rejected(ota_base64url_decode, "Zm9\xff", 4);
}

/* Each of the 256 byte values in each position of "AAAA": only the alphabet (and a final '=') passes. */
static void check_every_byte(decode_fn fn, const char *alphabet, size_t padded_pos)
{
    for (size_t pos = 0; pos < 4; pos++) {
        size_t accepted = 0;
        for (int b = 0; b < 256; b++) {
            char enc[4] = {'A', 'A', 'A', 'A'};
            unsigned char out[3];
            size_t out_len;
            enc[pos] = (char)b;
            ota_err_t err = fn(enc, 4, out, sizeof(out), &out_len);
            int expected = (b != 0 && strchr(alphabet, b) != NULL) || (pos == padded_pos && b == '=');
            assert_int_equal(err, expected ? OTA_OK : OTA_ERR_INVALID);
            accepted += err == OTA_OK;
        }
        assert_int_equal(accepted, pos == padded_pos ? 65 : 64);
    }
}

static void test_every_byte_value(void **state)
{
    (void)state;
    check_every_byte(ota_base64_decode, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 3);
    check_every_byte(ota_base64url_decode, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 4);
}

static void test_std_rejects_bad_padding(void **state)
{
    (void)state;
    expect_rejected(ota_base64_decode, "Zg", 2);
    expect_rejected(ota_base64_decode, "Zg=", 3);
    expect_rejected(ota_base64_decode, "Zm8", 3);
    expect_rejected(ota_base64_decode, "Zm9vY", 5);
    expect_rejected(ota_base64_decode, "Zg===", 5);
    expect_rejected(ota_base64_decode, "Zm8==", 5);
    expect_rejected(ota_base64_decode, "Z===", 4);
    expect_rejected(ota_base64_decode, "====", 4);
    expect_rejected(ota_base64_decode, "=Zm8", 4);
    expect_rejected(ota_base64_decode, "Zg=A", 4);
    expect_rejected(ota_base64_decode, "Z=g=", 4);
    expect_rejected(ota_base64_decode, "Zg==Zm9v", 8);
    expect_rejected(ota_base64_decode, "Zm8=Zm9v", 8);
    expect_rejected(ota_base64_decode, "Zm9vYg==\0\0\0\0", 12);
}

static void test_url_rejects_padding_and_length(void **state)
{
    (void)state;
    expect_rejected(ota_base64url_decode, "Zg==", 4);
    expect_rejected(ota_base64url_decode, "Zm8=", 4);
    expect_rejected(ota_base64url_decode, "Zg=", 3);
    expect_rejected(ota_base64url_decode, "Z", 1);
    expect_rejected(ota_base64url_decode, "Zm9vY", 5);
    expect_rejected(ota_base64url_decode, "Zm9vYmFyZ", 9);
}

static void test_rejects_nonzero_trailing_bits(void **state)
{
    (void)state;
    /* "Zg" is 011001 100000: the four low bits of 'g' are spare, so "Zh".."Zv" are the same byte. */
    expect_decoded(ota_base64_decode, "Zg==", "f", 1);
    expect_rejected(ota_base64_decode, "Zh==", 4);
    expect_rejected(ota_base64_decode, "Zv==", 4);
    expect_rejected(ota_base64_decode, "Zm9=", 4);
    expect_rejected(ota_base64_decode, "Zm9vYmF=", 8);
    expect_decoded(ota_base64url_decode, "Zg", "f", 1);
    expect_rejected(ota_base64url_decode, "Zh", 2);
    expect_rejected(ota_base64url_decode, "Zm9", 3);
    expect_rejected(ota_base64url_decode, "AB", 2);
    expect_rejected(ota_base64url_decode, "AAB", 3);
    expect_rejected(ota_base64url_decode, "Zm9vYmF", 7);
}

/* Decodes every candidate; an accepted one must re-encode to itself. Returns how many were accepted. */
static size_t count_canonical(decode_fn fn, int url, const char *prefix, const char *suffix, const char *syms)
{
    size_t accepted = 0, nsyms = strlen(syms);

    for (size_t i = 0; i < nsyms; i++) {
        for (size_t j = 0; j < nsyms; j++) {
            char enc[8], again[8];
            unsigned char out[4];
            size_t out_len, p = strlen(prefix);
            memcpy(enc, prefix, p);
            enc[p] = syms[i];
            enc[p + 1] = syms[j];
            memcpy(enc + p + 2, suffix, strlen(suffix) + 1);
            if (fn(enc, strlen(enc), out, sizeof(out), &out_len) != OTA_OK)
                continue;
            accepted++;
            if (url)
                ota_base64url_encode(out, out_len, again);
            else
                ota_base64_encode(out, out_len, again);
            assert_string_equal(again, enc);
        }
    }
    return accepted;
}

static void test_one_encoding_per_value(void **state)
{
    const char *std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.";
    const char *url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.";

    (void)state;
    assert_int_equal(count_canonical(ota_base64_decode, 0, "", "==", std), 256);
    /* "Qxy=" has 64 * 16 canonical forms, plus the 4 of "Qx==" when y is '='. */
    assert_int_equal(count_canonical(ota_base64_decode, 0, "Q", "=", std), 64 * 16 + 4);
    assert_int_equal(count_canonical(ota_base64url_decode, 1, "", "", url), 256);
    assert_int_equal(count_canonical(ota_base64url_decode, 1, "Q", "", url), 64 * 16);
}

static void test_cap_too_small(void **state)
{
    unsigned char out[8];
    size_t out_len = 99;

    (void)state;
    memset(out, 0xa5, sizeof(out));
    assert_int_equal(ota_base64_decode("Zm9vYmFy", 8, out, 5, &out_len), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota_base64_decode("Zm9vYmE=", 8, out, 4, &out_len), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota_base64_decode("Zg==", 4, out, 0, &out_len), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota_base64url_decode("Zm9vYmFy", 8, out, 5, &out_len), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota_base64url_decode("Zm9vYmE", 7, out, 4, &out_len), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota_base64url_decode("Zg", 2, out, 0, &out_len), OTA_ERR_TOO_LARGE);
    assert_int_equal(out_len, 99);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0xa5);

    /* Exactly enough room: nothing is written past it. */
    assert_int_equal(ota_base64_decode("Zm9vYmE=", 8, out, 5, &out_len), OTA_OK);
    assert_int_equal(out_len, 5);
    assert_memory_equal(out, "fooba", 5);
    assert_int_equal(out[5], 0xa5);
    memset(out, 0xa5, sizeof(out));
    assert_int_equal(ota_base64url_decode("Zm9vYg", 6, out, 4, &out_len), OTA_OK);
    assert_int_equal(out_len, 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(out[4], 0xa5);
    assert_int_equal(ota_base64_decode("", 0, NULL, 0, &out_len), OTA_OK);
    assert_int_equal(out_len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_encoded_len),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_round_trip_all_bytes),
        cmocka_unit_test(test_std_rejects_bad_chars),
        cmocka_unit_test(test_url_rejects_bad_chars),
        cmocka_unit_test(test_every_byte_value),
        cmocka_unit_test(test_std_rejects_bad_padding),
        cmocka_unit_test(test_url_rejects_padding_and_length),
        cmocka_unit_test(test_rejects_nonzero_trailing_bits),
        cmocka_unit_test(test_one_encoding_per_value),
        cmocka_unit_test(test_cap_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
