#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/digest.h"

#define MIB (1024 * 1024)

typedef struct vector {
    const char *data;
    uint64_t size;
    uint32_t crc32;
    const char *sha256;
    const char *md5;
} vector_t;

/* FIPS 180-2 and RFC 1321 examples; CRC-32 values as zlib computes them. */
static const vector_t vectors[] = {
    {"", 0, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "d41d8cd98f00b204e9800998ecf8427e"},
    {"abc", 3, 0x352441c2u, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
     "900150983cd24fb0d6963f7d28e17f72"},
    {"message digest", 14, 0x20159d7fu, "f7846f55cf23e14eebeab5b4e1550cad5b509e3348fbc4efa3a1413d393cb650",
     "f96b697d7cb7938d525a2f31aaf161d0"},
};

static void expect_digest(const ota_digest_t *d, const vector_t *v)
{
    assert_int_equal(d->size, v->size);
    assert_int_equal(d->crc32, v->crc32);
    assert_string_equal(d->sha256, v->sha256);
    assert_string_equal(d->md5, v->md5);
}

static void expect_same(const ota_digest_t *a, const ota_digest_t *b)
{
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->crc32, b->crc32);
    assert_string_equal(a->sha256, b->sha256);
    assert_string_equal(a->md5, b->md5);
}

static void test_vectors_one_shot(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        ota_digest_t d;
        assert_int_equal(ota__digest_buffer(vectors[i].data, vectors[i].size, &d), OTA_OK);
        expect_digest(&d, &vectors[i]);
    }
}

static void test_empty_null(void **state)
{
    ota_digest_t d;
    ota_digest_ctx_t ctx;
    (void)state;

    assert_int_equal(ota__digest_buffer(NULL, 0, &d), OTA_OK);
    expect_digest(&d, &vectors[0]);
    assert_int_equal(ota__digest_init(&ctx), OTA_OK);
    assert_int_equal(ota__digest_update(&ctx, NULL, 0), OTA_OK);
    assert_int_equal(ota__digest_final(&ctx, &d), OTA_OK);
    expect_digest(&d, &vectors[0]);
}

static void test_vectors_byte_by_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        ota_digest_ctx_t ctx;
        ota_digest_t d;
        assert_int_equal(ota__digest_init(&ctx), OTA_OK);
        for (size_t k = 0; k < vectors[i].size; k++)
            assert_int_equal(ota__digest_update(&ctx, vectors[i].data + k, 1), OTA_OK);
        assert_int_equal(ota__digest_final(&ctx, &d), OTA_OK);
        expect_digest(&d, &vectors[i]);
    }
}

static unsigned char *pattern(size_t len)
{
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    return buf;
}

/* 1 MiB of (i * 31 + 7) mod 256; expected values from Python's hashlib and zlib. */
static void test_mebibyte_pattern(void **state)
{
    static const vector_t expected = {NULL, MIB, 0xd424bdc1u,
                                      "06b7bbfb7824aa03382051691630eb26de85102d1b08a81e907ec0744cd8a286",
                                      "3f2c8bd9cfde6550fdff4b36617c3261"};
    unsigned char *buf = pattern(MIB);
    ota_digest_t one, inc;
    ota_digest_ctx_t ctx;
    (void)state;

    assert_int_equal(ota__digest_buffer(buf, MIB, &one), OTA_OK);
    expect_digest(&one, &expected);

    /* Odd chunk sizes, so chunks straddle every hash block boundary. */
    static const size_t chunks[] = {1, 63, 64, 65, 127, 4093, 7, 65537, 3};
    assert_int_equal(ota__digest_init(&ctx), OTA_OK);
    for (size_t off = 0, i = 0; off < MIB; i++) {
        size_t n = chunks[i % (sizeof(chunks) / sizeof(chunks[0]))];
        if (n > MIB - off)
            n = MIB - off;
        assert_int_equal(ota__digest_update(&ctx, buf + off, n), OTA_OK);
        off += n;
    }
    assert_int_equal(ota__digest_final(&ctx, &inc), OTA_OK);
    expect_same(&inc, &one);
    free(buf);
}

/* A million 'a': the long-message examples of FIPS 180-2 and of MD5 test suites. */
static void test_million_a(void **state)
{
    static const vector_t expected = {NULL, 1000000, 0xdc25bfbcu,
                                      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                                      "7707d6ae4e027c70eea2a935c2296f21"};
    char *buf = malloc(1000000);
    ota_digest_t d;
    (void)state;

    assert_non_null(buf);
    memset(buf, 'a', 1000000);
    assert_int_equal(ota__digest_buffer(buf, 1000000, &d), OTA_OK);
    expect_digest(&d, &expected);
    free(buf);
}

static void test_dispose_is_idempotent(void **state)
{
    ota_digest_ctx_t ctx;
    ota_digest_t d;
    (void)state;

    assert_int_equal(ota__digest_init(&ctx), OTA_OK);
    assert_int_equal(ota__digest_update(&ctx, "abc", 3), OTA_OK);
    ota__digest_dispose(&ctx);
    ota__digest_dispose(&ctx);

    assert_int_equal(ota__digest_init(&ctx), OTA_OK);
    assert_int_equal(ota__digest_final(&ctx, &d), OTA_OK);
    ota__digest_dispose(&ctx);
    expect_digest(&d, &vectors[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_one_shot),
        cmocka_unit_test(test_empty_null),
        cmocka_unit_test(test_vectors_byte_by_byte),
        cmocka_unit_test(test_mebibyte_pattern),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_dispose_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
