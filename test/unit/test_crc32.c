#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "ota/crc32.h"

#define BUF_MAX 4096
#define ROUNDS 200

/* A fixed-seed generator, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static void fill(unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)rnd();
}

/* The definition, one bit at a time. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t len)
{
    uint32_t c = 0xffffffffu;

    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(ota_crc32_update(0, "123456789", 9), 0xcbf43926u);
    assert_int_equal(ota_crc32_update(0, "The quick brown fox jumps over the lazy dog", 43), 0x414fa339u);
}

static void test_empty(void **state)
{
    (void)state;
    assert_int_equal(ota_crc32_update(0, NULL, 0), 0);
    assert_int_equal(ota_crc32_update(0, "", 0), 0);
    assert_int_equal(ota_crc32_update(0xcbf43926u, NULL, 0), 0xcbf43926u);
}

/* A single byte b goes through table entry b ^ 0xff, so this checks the whole table. */
static void test_every_table_entry(void **state)
{
    (void)state;
    for (unsigned b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        assert_int_equal(ota_crc32_update(0, &byte, 1), crc32_bitwise(&byte, 1));
    }
}

static void test_known_patterns(void **state)
{
    static unsigned char buf[BUF_MAX];
    (void)state;

    memset(buf, 0, 32);
    assert_int_equal(ota_crc32_update(0, buf, 32), 0x190a55adu);
    memset(buf, 0xff, 32);
    assert_int_equal(ota_crc32_update(0, buf, 32), 0xff6cab0bu);
}

static void test_incremental_equals_one_shot(void **state)
{
    static unsigned char buf[BUF_MAX];
    (void)state;

    for (int round = 0; round < ROUNDS; round++) {
        size_t len = rnd() % BUF_MAX;
        fill(buf, len);
        uint32_t whole = ota_crc32_update(0, buf, len);
        uint32_t crc = 0;
        for (size_t off = 0; off < len;) {
            size_t n = rnd() % (len - off + 1);
            crc = ota_crc32_update(crc, buf + off, n);
            off += n;
        }
        assert_int_equal(crc, whole);
    }
}

static void test_matches_zlib(void **state)
{
    static unsigned char buf[BUF_MAX];
    (void)state;

    for (int round = 0; round < ROUNDS; round++) {
        size_t len = rnd() % BUF_MAX;
        fill(buf, len);
        uint32_t ours = ota_crc32_update(0, buf, len);
        assert_int_equal(ours, (uint32_t)crc32(0, buf, (uInt)len));
        assert_int_equal(ours, crc32_bitwise(buf, len));
        /* Continuing from a previous value agrees with zlib too. */
        size_t cut = len / 3;
        uint32_t z = (uint32_t)crc32(crc32(0, buf, (uInt)cut), buf + cut, (uInt)(len - cut));
        assert_int_equal(ota_crc32_update(ota_crc32_update(0, buf, cut), buf + cut, len - cut), z);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_every_table_entry),
        cmocka_unit_test(test_known_patterns),
        cmocka_unit_test(test_incremental_equals_one_shot),
        cmocka_unit_test(test_matches_zlib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
