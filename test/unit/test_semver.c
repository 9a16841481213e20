#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ota/semver.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static ota_semver_t parse_ok(const char *s)
{
    ota_semver_t v;

    memset(&v, 0, sizeof(v));
    if (ota_semver_parse(s, strlen(s), &v) != OTA_OK)
        fail_msg("rejected: \"%s\"", s);
    return v;
}

static void expect_invalid(const char *s, size_t len)
{
    ota_semver_t v;

    memset(&v, 0x5a, sizeof(v));
    if (ota_semver_parse(s, len, &v) != OTA_ERR_INVALID)
        fail_msg("accepted: \"%.*s\"", (int)len, s);
    /* A failed parse leaves the output untouched. */
    assert_int_equal(v.text[0], 0x5a);
}

static int cmp(const char *a, const char *b)
{
    ota_semver_t va = parse_ok(a);
    ota_semver_t vb = parse_ok(b);
    return ota_semver_compare(&va, &vb);
}

static void expect_part(const ota_semver_t *v, size_t off, size_t len, const char *want)
{
    if (want == NULL) {
        assert_int_equal(len, 0);
        return;
    }
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v->text + off, want, len);
}

static void expect_parsed(const char *s, uint64_t major, uint64_t minor, uint64_t patch, const char *pre,
                          const char *build)
{
    ota_semver_t v = parse_ok(s);

    assert_int_equal(v.major, major);
    assert_int_equal(v.minor, minor);
    assert_int_equal(v.patch, patch);
    expect_part(&v, v.pre_off, v.pre_len, pre);
    expect_part(&v, v.build_off, v.build_len, build);
}

/* semver.org's list of valid versions (minus the one past 2^63-1). */
static const char *const valid[] = {
    "0.0.4",
    "1.2.3",
    "10.20.30",
    "1.1.2-prerelease+meta",
    "1.1.2+meta",
    "1.1.2+meta-valid",
    "1.0.0-alpha",
    "1.0.0-beta",
    "1.0.0-alpha.beta",
    "1.0.0-alpha.beta.1",
    "1.0.0-alpha.1",
    "1.0.0-alpha0.valid",
    "1.0.0-alpha.0valid",
    "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
    "1.0.0-rc.1+build.1",
    "2.0.0-rc.1+build.123",
    "1.2.3-beta",
    "10.2.3-DEV-SNAPSHOT",
    "1.2.3-SNAPSHOT-123",
    "1.0.0",
    "2.0.0",
    "1.1.7",
    "2.0.0+build.1848",
    "2.0.1-alpha.1227",
    "1.0.0-alpha+beta",
    "1.2.3----RC-SNAPSHOT.12.9.1--.12+788",
    "1.2.3----R-S.12.9.1--.12+meta",
    "1.2.3----RC-SNAPSHOT.12.9.1--.12",
    "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
    "1.0.0-0A.is.legal",
    "1.0.0-0",
    "1.0.0--",
    "1.0.0+01.007",
    "0.0.0",
};

/* semver.org's list of invalid versions, and a few more. */
static const char *const invalid[] = {
    "",
    "1",
    "1.2",
    "1.2.3-0123",
    "1.2.3-0123.0123",
    "1.1.2+.123",
    "+invalid",
    "-invalid",
    "-invalid+invalid",
    "-invalid.01",
    "alpha",
    "alpha.beta",
    "alpha.beta.1",
    "alpha.1",
    "alpha+beta",
    "alpha_beta",
    "alpha.",
    "alpha..",
    "beta",
    "1.0.0-alpha_beta",
    "-alpha.",
    "1.0.0-alpha..",
    "1.0.0-alpha..1",
    "1.0.0-alpha...1",
    "1.0.0-alpha....1",
    "1.0.0-alpha.....1",
    "1.0.0-alpha......1",
    "1.0.0-alpha.......1",
    "01.1.1",
    "1.01.1",
    "1.1.01",
    "1.2.3.DEV",
    "1.2-SNAPSHOT",
    "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788",
    "1.2-RC-SNAPSHOT",
    "-1.0.3-gamma+b7718",
    "+justmeta",
    "9.8.7+meta+meta",
    "9.8.7-whatever+meta+meta",
    ("99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1--------------------------"
     "------..12"), /* one string, on two lines */
    "1.0.0-",
    "1.0.0+",
    "1.0.0-+b",
    "1.0.0-a.",
    "1.0.0-.a",
    "1.0.0+a.",
    "1.0.0+a..b",
    "1.0.0+a_b",
    "1.0.0 ",
    " 1.0.0",
    "1.0.0\n",
    "1..0",
    "1.0.",
    ".1.0",
    "1.0.0.0",
    "1.0.0-a b",
    "1.0.0-\xc3\xa9",
    "+1.0.0",
    "1.+0.0",
    "1.-0.0",
    "1.0x1.0",
    "vv1.0.0",
    "v",
    "V",
    "v.1.0.0",
    "v 1.0.0",
    " v1.0.0",
    "1.0.0v",
    "=1.0.0",
};

static void test_valid_list(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(valid); i++) {
        ota_semver_t v = parse_ok(valid[i]);
        assert_string_equal(v.text, valid[i]);
        assert_true(ota_semver_compare(&v, &v) == 0);
    }
}

static void test_invalid_list(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(invalid); i++)
        expect_invalid(invalid[i], strlen(invalid[i]));
}

static void test_parts(void **state)
{
    (void)state;
    expect_parsed("0.0.4", 0, 0, 4, NULL, NULL);
    expect_parsed("10.20.30", 10, 20, 30, NULL, NULL);
    expect_parsed("1.1.2-prerelease+meta", 1, 1, 2, "prerelease", "meta");
    expect_parsed("1.1.2+meta-valid", 1, 1, 2, NULL, "meta-valid");
    expect_parsed("1.0.0-alpha-a.b-c+build.1-aef", 1, 0, 0, "alpha-a.b-c", "build.1-aef");
    expect_parsed("1.2.3----RC-SNAPSHOT.12.9.1--.12+788", 1, 2, 3, "---RC-SNAPSHOT.12.9.1--.12", "788");
    expect_parsed("1.0.0--", 1, 0, 0, "-", NULL);
    expect_parsed("v2.5.7-rc.3", 2, 5, 7, "rc.3", NULL);
}

static void test_leading_zeros(void **state)
{
    (void)state;
    expect_invalid("00.0.0", 6);
    expect_invalid("01.0.0", 6);
    expect_invalid("0.00.0", 6);
    expect_invalid("0.0.00", 6);
    expect_invalid("1.0.0-00", 8);
    expect_invalid("1.0.0-a.01", 10);
    expect_invalid("1.0.0-a.01.b", 12);
    /* Zeros are fine on their own, in alphanumeric identifiers and in build metadata. */
    expect_parsed("0.0.0-0.a.0", 0, 0, 0, "0.a.0", NULL);
    expect_parsed("1.0.0-01a.0a1", 1, 0, 0, "01a.0a1", NULL);
    expect_parsed("1.0.0+001", 1, 0, 0, NULL, "001");
}

static void test_overflow(void **state)
{
    (void)state;
    expect_parsed("9223372036854775807.9223372036854775807.9223372036854775807", INT64_MAX, INT64_MAX, INT64_MAX,
                  NULL, NULL);
    expect_invalid("9223372036854775808.0.0", 23);
    expect_invalid("0.9223372036854775808.0", 23);
    expect_invalid("0.0.9223372036854775808", 23);
    expect_invalid("9223372036854775810.0.0", 23);
    expect_invalid("18446744073709551615.0.0", 24);
    expect_invalid("18446744073709551616.0.0", 24);
    expect_invalid("18446744073709551617.0.0", 24);
    expect_invalid("99999999999999999999999.999999999999999999.99999999999999999", 61);
    /* Pre-release numbers have no limit: they are compared as digit strings. */
    expect_parsed("1.0.0-99999999999999999999999", 1, 0, 0, "99999999999999999999999", NULL);
}

static void test_v_prefix(void **state)
{
    ota_semver_t a = parse_ok("v1.2.3-rc.1+b.7");
    ota_semver_t b = parse_ok("V1.2.3-rc.1+b.7");

    (void)state;
    assert_string_equal(a.text, "1.2.3-rc.1+b.7");
    assert_string_equal(b.text, "1.2.3-rc.1+b.7");
    expect_parsed("v1.2.3-rc.1+b.7", 1, 2, 3, "rc.1", "b.7");
    assert_int_equal(cmp("v1.2.3", "1.2.3"), 0);
    assert_int_equal(cmp("V1.2.4", "v1.2.3"), 1);
}

static void test_length_limit(void **state)
{
    char s[OTA_SEMVER_MAX + 3];

    (void)state;
    memcpy(s, "1.0.0-", 6);
    memset(s + 6, 'a', sizeof(s) - 6);
    s[OTA_SEMVER_MAX] = '\0';
    ota_semver_t v = parse_ok(s);
    assert_int_equal(strlen(v.text), OTA_SEMVER_MAX);
    assert_int_equal(v.pre_len, OTA_SEMVER_MAX - 6);

    expect_invalid(s, OTA_SEMVER_MAX + 1);

    /* The dropped 'v' does not count. */
    s[0] = 'v';
    memcpy(s + 1, "1.0.0-", 6);
    s[OTA_SEMVER_MAX] = 'a'; /* was the terminator above */
    s[OTA_SEMVER_MAX + 1] = '\0';
    v = parse_ok(s);
    assert_int_equal(strlen(v.text), OTA_SEMVER_MAX);
    expect_invalid(s, OTA_SEMVER_MAX + 2);
}

static void test_len_is_honoured(void **state)
{
    ota_semver_t v;

    (void)state;
    assert_int_equal(ota_semver_parse("1.2.3-rc.1junk", 10, &v), OTA_OK);
    assert_string_equal(v.text, "1.2.3-rc.1");
    assert_int_equal(ota_semver_parse("1.2.34", 5, &v), OTA_OK);
    assert_int_equal(v.patch, 3);
    expect_invalid("1.2.3\0", 6);
    expect_invalid("1.2.3-a\0b", 9);
    expect_invalid("1.2.3", 4);
    expect_invalid("1.2.3", 0);
    assert_int_equal(ota_semver_parse(NULL, 0, &v), OTA_ERR_INVALID);
    assert_int_equal(ota_semver_parse("1.2.3", 5, NULL), OTA_ERR_INVALID);
}

/* Ascending by precedence; each entry ranks strictly above all before it. */
static const char *const ascending[] = {
    "0.0.0-0",
    "0.0.0",
    "0.0.1",
    "0.1.0",
    "0.9.0",
    "0.10.0",
    "1.0.0-0.3.7",
    "1.0.0-1",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0-99999999999999999999",
    "1.0.0-100000000000000000000",
    "1.0.0--",
    "1.0.0-0a",
    "1.0.0-A",
    "1.0.0-Z",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.1.0",
    "1.0.0-alpha.beta",
    "1.0.0-alpha0",
    "1.0.0-alpha0.valid",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-beta.a",
    "1.0.0-rc.1",
    "1.0.0-x.7.z.92",
    "1.0.0",
    "1.0.1",
    "1.0.9",
    "1.0.10",
    "2.0.0-rc.1",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
    "9223372036854775807.0.0",
};

static void test_precedence_order(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(ascending); i++) {
        for (size_t j = 0; j < COUNT(ascending); j++) {
            int want = (i > j) - (i < j);
            int got = cmp(ascending[i], ascending[j]);
            if (got != want)
                fail_msg("compare(\"%s\", \"%s\") = %d, want %d", ascending[i], ascending[j], got, want);
        }
    }
}

static void test_semver_org_example(void **state)
{
    (void)state;
    assert_int_equal(cmp("1.0.0-alpha", "1.0.0-alpha.1"), -1);
    assert_int_equal(cmp("1.0.0-alpha.1", "1.0.0-alpha.beta"), -1);
    assert_int_equal(cmp("1.0.0-alpha.beta", "1.0.0-beta"), -1);
    assert_int_equal(cmp("1.0.0-beta", "1.0.0-beta.2"), -1);
    assert_int_equal(cmp("1.0.0-beta.2", "1.0.0-beta.11"), -1);
    assert_int_equal(cmp("1.0.0-beta.11", "1.0.0-rc.1"), -1);
    assert_int_equal(cmp("1.0.0-rc.1", "1.0.0"), -1);
    assert_int_equal(cmp("1.0.0", "2.0.0"), -1);
    assert_int_equal(cmp("2.0.0", "2.1.0"), -1);
    assert_int_equal(cmp("2.1.0", "2.1.1"), -1);
    assert_int_equal(cmp("1.0.0", "1.0.0-rc.1"), 1);
}

static void test_build_ignored(void **state)
{
    (void)state;
    assert_int_equal(cmp("1.0.0+a", "1.0.0+b"), 0);
    assert_int_equal(cmp("1.0.0+a", "1.0.0"), 0);
    assert_int_equal(cmp("1.0.0-rc.1+build.1", "1.0.0-rc.1+build.2"), 0);
    assert_int_equal(cmp("1.0.0-rc.1+zzz", "1.0.0-rc.2+aaa"), -1);
    assert_int_equal(cmp("1.0.0+zzz", "1.0.1+aaa"), -1);
    assert_int_equal(cmp("1.0.0-rc.1+999", "1.0.0+0"), -1);
}

static void test_copy_by_value(void **state)
{
    ota_semver_t a = parse_ok("3.1.4-rc.2+exp.sha.5114f85");
    ota_semver_t copy = a;

    (void)state;
    memset(&a, 0, sizeof(a));
    expect_part(&copy, copy.pre_off, copy.pre_len, "rc.2");
    expect_part(&copy, copy.build_off, copy.build_len, "exp.sha.5114f85");
    assert_int_equal(cmp("3.1.4-rc.2", "3.1.4-rc.10"), -1);
    ota_semver_t b = parse_ok("3.1.4-rc.10");
    assert_int_equal(ota_semver_compare(&copy, &b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_list),
        cmocka_unit_test(test_invalid_list),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_leading_zeros),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_v_prefix),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_len_is_honoured),
        cmocka_unit_test(test_precedence_order),
        cmocka_unit_test(test_semver_org_example),
        cmocka_unit_test(test_build_ignored),
        cmocka_unit_test(test_copy_by_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
