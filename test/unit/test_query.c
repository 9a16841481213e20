#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/query.h"

#define UNTOUCHED "untouched"

static ota_query_result_t get(const char *query, const char *name, char out[OTA_QUERY_VALUE_MAX])
{
    memset(out, 0, OTA_QUERY_VALUE_MAX);
    memcpy(out, UNTOUCHED, sizeof UNTOUCHED);
    return ota__query_get(query, strlen(query), name, out);
}

static void expect_found(const char *query, const char *name, const char *value)
{
    char out[OTA_QUERY_VALUE_MAX];
    assert_int_equal(get(query, name, out), OTA_QUERY_FOUND);
    assert_string_equal(out, value);
}

static void expect_absent(const char *query, const char *name)
{
    char out[OTA_QUERY_VALUE_MAX];
    assert_int_equal(get(query, name, out), OTA_QUERY_ABSENT);
    assert_string_equal(out, UNTOUCHED);
}

static void expect_invalid(const char *query, const char *name)
{
    char out[OTA_QUERY_VALUE_MAX];
    assert_int_equal(get(query, name, out), OTA_QUERY_INVALID);
}

static void test_absent(void **state)
{
    (void)state;
    expect_absent("", "limit");
    expect_absent("after=abc", "limit");
    expect_absent("a=1&b=2&c=3", "limit");
    expect_absent("&&&", "limit");
    expect_absent("=limit", "limit");
    expect_absent("x=limit", "limit");
    expect_absent("LIMIT=5", "limit");
    expect_absent("li%6dit=5", "limit"); /* names are compared as sent */
    expect_absent(" limit=5", "limit");
}

static void test_found(void **state)
{
    (void)state;
    expect_found("limit=5", "limit", "5");
    expect_found("a=1&limit=20&b=2", "limit", "20");
    expect_found("a=1&b=2&limit=500", "limit", "500");
    expect_found("limit=5&&after=x", "after", "x");
    expect_found("&limit=7&", "limit", "7");
    expect_found("a=x=y", "a", "x=y");
    expect_found("status=in_progress&model=cam-v2", "model", "cam-v2");
}

static void test_empty_and_bare(void **state)
{
    (void)state;
    expect_found("limit=", "limit", "");
    expect_found("limit=&after=x", "limit", "");
    expect_found("limit", "limit", "");
    expect_found("a=1&limit&b=2", "limit", "");
    expect_found("a=1&limit", "limit", "");
}

static void test_uses_len(void **state)
{
    const char *q = "limit=12345&after=x";
    char out[OTA_QUERY_VALUE_MAX];
    (void)state;
    /* Only `len` bytes are the query string. */
    assert_int_equal(ota__query_get(q, 8, "limit", out), OTA_QUERY_FOUND);
    assert_string_equal(out, "12");
    assert_int_equal(ota__query_get(q, 11, "after", out), OTA_QUERY_ABSENT);
    assert_int_equal(ota__query_get(q, 0, "limit", out), OTA_QUERY_ABSENT);
    assert_int_equal(ota__query_get(q, 3, "lim", out), OTA_QUERY_FOUND);
    assert_string_equal(out, "");
    /* A trailing escape cut by the length is incomplete. */
    assert_int_equal(ota__query_get("a=%41", 4, "a", out), OTA_QUERY_INVALID);
}

static void test_percent_decoding(void **state)
{
    (void)state;
    expect_found("q=%41", "q", "A");
    expect_found("q=%41%42c", "q", "ABc");
    expect_found("q=a%2fb%2Fc", "q", "a/b/c");
    expect_found("q=%26%3d%25", "q", "&=%");
    expect_found("q=%2B", "q", "+");
    expect_found("q=%20x", "q", " x");
    expect_found("q=%e2%82%AC", "q", "\xe2\x82\xac");
    expect_found("q=x%41", "q", "xA");
}

static void test_plus_is_space(void **state)
{
    (void)state;
    expect_found("q=a+b", "q", "a b");
    expect_found("q=+", "q", " ");
    expect_found("q=++%2B+", "q", "  + ");
}

static void test_bad_escapes(void **state)
{
    (void)state;
    expect_invalid("q=%", "q");
    expect_invalid("q=%4", "q");
    expect_invalid("q=%zz", "q");
    expect_invalid("q=%4z", "q");
    expect_invalid("q=%z4", "q");
    expect_invalid("q=%%41", "q");
    expect_invalid("q=abc%", "q");
    expect_invalid("q=abc%4", "q");
    expect_invalid("q=%&r=1", "q");
    expect_invalid("q=%4&r=1", "q");
    expect_invalid("q=% 41", "q");
    /* A bad escape in another parameter is not this one's problem. */
    expect_found("r=%zz&q=ok", "q", "ok");
}

static void test_nul_rejected(void **state)
{
    char out[OTA_QUERY_VALUE_MAX];
    (void)state;
    expect_invalid("q=%00", "q");
    expect_invalid("q=a%00b", "q");
    /* A raw NUL byte inside the given length, too. */
    assert_int_equal(ota__query_get("q=a\0b", 5, "q", out), OTA_QUERY_INVALID);
}

/* A value must be UTF-8: it goes into JSON answers (which jansson refuses to build otherwise) and text columns. */
static void test_utf8_only(void **state)
{
    char out[OTA_QUERY_VALUE_MAX];
    (void)state;
    expect_found("q=%C3%A9t%C3%A9", "q", "\xc3\xa9t\xc3\xa9");
    expect_found("q=%F0%9F%93%A6", "q", "\xf0\x9f\x93\xa6");
    expect_invalid("q=%ff", "q");
    expect_invalid("q=a%C3", "q");         /* cut short */
    expect_invalid("q=%C3%28", "q");       /* not a continuation byte */
    expect_invalid("q=%80", "q");          /* a stray continuation byte */
    expect_invalid("q=%C0%AF", "q");       /* overlong */
    expect_invalid("q=%E0%80%AF", "q");    /* overlong */
    expect_invalid("q=%ED%A0%80", "q");    /* a surrogate */
    expect_invalid("q=%F4%90%80%80", "q"); /* past U+10FFFF */
    /* Raw bytes as well as escapes. */
    static const char raw[] = "tag=t\xea"
                              "ag";
    assert_int_equal(ota__query_get(raw, sizeof raw - 1, "tag", out), OTA_QUERY_INVALID);
    /* Another parameter's bytes are not this one's problem. */
    expect_found("r=%ff&q=ok", "q", "ok");
}

static void test_duplicate(void **state)
{
    (void)state;
    expect_invalid("limit=1&limit=2", "limit");
    expect_invalid("limit=1&limit=1", "limit");
    expect_invalid("limit=1&a=2&limit", "limit");
    expect_invalid("limit&limit", "limit");
    expect_invalid("limit=&limit=", "limit");
    /* Other names repeated do not matter. */
    expect_found("a=1&a=2&limit=3", "limit", "3");
}

static void test_prefix_names(void **state)
{
    (void)state;
    expect_absent("limit=5", "lim");
    expect_absent("lim=5", "limit");
    expect_found("lim=1&limit=2", "limit", "2");
    expect_found("lim=1&limit=2", "lim", "1");
    expect_found("limit=2&lim=1", "lim", "1");
    expect_found("limitx=9&limit=2", "limit", "2");
    expect_found("xlimit=9&limit=2", "limit", "2");
    /* And not counted as duplicates of each other. */
    expect_found("limit=1&limits=2&lim=3", "limit", "1");
}

static void test_overlong(void **state)
{
    char query[8 + 3 * OTA_QUERY_VALUE_MAX + 8];
    char value[OTA_QUERY_VALUE_MAX + 8];
    (void)state;

    /* OTA_QUERY_VALUE_MAX - 1 bytes fit with the NUL. */
    memset(value, 'v', OTA_QUERY_VALUE_MAX - 1);
    value[OTA_QUERY_VALUE_MAX - 1] = '\0';
    memcpy(query, "q=", 2);
    memcpy(query + 2, value, OTA_QUERY_VALUE_MAX);
    expect_found(query, "q", value);

    /* OTA_QUERY_VALUE_MAX bytes and more do not. */
    memset(query + 2, 'v', OTA_QUERY_VALUE_MAX);
    query[2 + OTA_QUERY_VALUE_MAX] = '\0';
    expect_invalid(query, "q");
    memset(query + 2, 'v', OTA_QUERY_VALUE_MAX + 50);
    query[2 + OTA_QUERY_VALUE_MAX + 50] = '\0';
    expect_invalid(query, "q");

    /* The cap is on the decoded value: 255 escapes decode to 255 bytes and fit, 256 do not. */
    size_t n = 2;
    for (int i = 0; i < OTA_QUERY_VALUE_MAX - 1; i++) {
        memcpy(query + n, "%41", 3);
        n += 3;
    }
    query[n] = '\0';
    memset(value, 'A', OTA_QUERY_VALUE_MAX - 1);
    value[OTA_QUERY_VALUE_MAX - 1] = '\0';
    expect_found(query, "q", value);
    memcpy(query + n, "%41", 4);
    expect_invalid(query, "q");
}

/* Every value of `name` in `query`, in order, joined with '|' into `out`; the last result goes to *last. */
static void collect(const char *query, const char *name, char *out, size_t cap, ota_query_result_t *last)
{
    char value[OTA_QUERY_VALUE_MAX];
    size_t pos = 0, used = 0;
    out[0] = '\0';
    while ((*last = ota__query_next(query, strlen(query), name, &pos, value)) == OTA_QUERY_FOUND) {
        int n = snprintf(out + used, cap - used, "%s%s", used > 0 ? "|" : "", value);
        assert_true(n > 0 && (size_t)n < cap - used);
        used += (size_t)n;
    }
}

static void expect_all(const char *query, const char *name, const char *joined)
{
    char out[512];
    ota_query_result_t last;
    collect(query, name, out, sizeof out, &last);
    assert_int_equal(last, OTA_QUERY_ABSENT);
    assert_string_equal(out, joined);
}

static void test_repeated(void **state)
{
    (void)state;
    expect_all("", "tag", "");
    expect_all("a=1", "tag", "");
    expect_all("tag=eu", "tag", "eu");
    expect_all("tag=eu&tag=beta", "tag", "eu|beta");
    expect_all("tag=eu&a=1&tag=site%3Alyon&tags=x&tag", "tag", "eu|site:lyon|");
    expect_all("tag=eu&&tag=beta&", "tag", "eu|beta");
    expect_all("xtag=1&tag=2&tag_any=3&tag=4", "tag", "2|4");
    expect_all("tag_any=a&tag=b&tag_any=c", "tag_any", "a|c");
    expect_all("tag=%41&tag=+", "tag", "A| ");

    /* A bad one stops the walk, with what came before it already read. */
    char out[512];
    ota_query_result_t last;
    collect("tag=a&tag=%zz&tag=c", "tag", out, sizeof out, &last);
    assert_int_equal(last, OTA_QUERY_INVALID);
    assert_string_equal(out, "a");

    /* Past the end, it stays absent. */
    char value[OTA_QUERY_VALUE_MAX];
    size_t pos = 0;
    assert_int_equal(ota__query_next("tag=a", 5, "tag", &pos, value), OTA_QUERY_FOUND);
    assert_int_equal(ota__query_next("tag=a", 5, "tag", &pos, value), OTA_QUERY_ABSENT);
    assert_int_equal(ota__query_next("tag=a", 5, "tag", &pos, value), OTA_QUERY_ABSENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent),           cmocka_unit_test(test_found),
        cmocka_unit_test(test_empty_and_bare),   cmocka_unit_test(test_uses_len),
        cmocka_unit_test(test_percent_decoding), cmocka_unit_test(test_plus_is_space),
        cmocka_unit_test(test_bad_escapes),      cmocka_unit_test(test_nul_rejected),
        cmocka_unit_test(test_utf8_only),        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_prefix_names),     cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_repeated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
