/*
 * The fleet filter's readers (http/fleet_filter.h), tags (http/tags.h) and version ranges
 * (core/version_range.h): what they accept, the normalized form they make, and how each problem is reported
 * (a 400 type error or a 422 field, named "filter.<member>").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/version_range.h"
#include "http/fleet_filter.h"

/* ---- tags ------------------------------------------------------------------------------------------------------ */

static void test_tag_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "eu",        "beta", "site:lyon",
        "a",         "0",    "v1.2",
        "a-b_c.d:e", "null", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
    static const char *const bad[] = {
        "",    "EU",   "-eu", ".eu",  ":eu", "_eu",
        "e u", "eu/x", "é",   "eu\n", "a,b", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ota__tag_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ota__tag_valid(bad[i]));
}

/* Reads `json` (a JSON value, or NULL: absent) as the tags of field "tags". */
static json_t *tags_of(const char *json, ota_validate_t *v)
{
    json_t *value = json != NULL ? json_loads(json, JSON_DECODE_ANY, NULL) : NULL;
    ota__validate_init(v, NULL);
    json_t *tags = ota__tags_read(v, value, "tags");
    json_decref(value);
    return tags;
}

static void release(ota_validate_t *v)
{
    json_decref(v->fields);
    v->fields = NULL;
}

/* The JSON text of `value` (compact, keys sorted), for comparisons; frees `value`. */
static char *dump(json_t *value)
{
    assert_non_null(value);
    char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(value);
    return text;
}

static void expect_tags(const char *json, const char *want)
{
    ota_validate_t v;
    char *got = dump(tags_of(json, &v));
    assert_string_equal(got, want);
    assert_int_equal(json_object_size(v.fields), 0);
    assert_string_equal(v.type_error, "");
    free(got);
    release(&v);
}

/* Reading `json` as tags fails: with a 400 type error (`type_error`) or with a 422 on field "tags". */
static void expect_tags_refused(const char *json, bool type_error)
{
    ota_validate_t v;
    assert_null(tags_of(json, &v));
    assert_int_equal(v.type_error[0] != '\0', type_error);
    assert_int_equal(json_object_get(v.fields, "tags") != NULL, !type_error);
    release(&v);
}

static void test_tags_read(void **state)
{
    (void)state;
    expect_tags("[]", "[]");
    expect_tags("[\"eu\"]", "[\"eu\"]");
    /* Distinct, in byte order ('.' < '0' < ':' < 'a'). */
    expect_tags("[\"site:lyon\", \"eu\", \"beta\", \"eu\", \"eu\"]", "[\"beta\",\"eu\",\"site:lyon\"]");
    expect_tags("[\"a:b\", \"a.b\", \"a0\", \"a-b\", \"ab\"]", "[\"a-b\",\"a.b\",\"a0\",\"a:b\",\"ab\"]");

    ota_validate_t v;
    assert_null(tags_of(NULL, &v));
    assert_int_equal(json_object_size(v.fields), 0);
    release(&v);
    assert_null(tags_of("null", &v));
    assert_string_equal(v.type_error, "");
    release(&v);

    expect_tags_refused("\"eu\"", true);
    expect_tags_refused("{}", true);
    expect_tags_refused("[\"eu\", 1]", true);
    expect_tags_refused("[null]", true);
    expect_tags_refused("[\"EU\"]", false);
    expect_tags_refused("[\"eu\", \"\"]", false);
}

static void test_tags_at_most_32_distinct(void **state)
{
    (void)state;
    char json[1024];
    size_t used = 0;
    used += (size_t)snprintf(json + used, sizeof json - used, "[");
    for (int i = 0; i < 32; i++)
        used += (size_t)snprintf(json + used, sizeof json - used, "%s\"t%02d\"", i > 0 ? "," : "", i);
    /* 32 distinct, with repeats beyond them, are fine. */
    snprintf(json + used, sizeof json - used, ",\"t00\",\"t31\"]");
    ota_validate_t v;
    json_t *tags = tags_of(json, &v);
    assert_int_equal(json_array_size(tags), 32);
    json_decref(tags);
    release(&v);
    /* A 33rd distinct one is not. */
    snprintf(json + used, sizeof json - used, ",\"t32\"]");
    expect_tags_refused(json, false);
}

/* ---- version ranges -------------------------------------------------------------------------------------------- */

static void expect_range(const char *in, const char *want)
{
    char out[OTA_VERSION_RANGE_MAX];
    assert_true(ota__version_range_normalize(in, out));
    assert_string_equal(out, want);
}

static void test_version_range(void **state)
{
    (void)state;
    expect_range("<1.2.0", "<1.2.0");
    expect_range(">=1.0.0 <1.2.0", ">=1.0.0 <1.2.0");
    expect_range("=1.1.0", "=1.1.0");
    expect_range("1.1.0", "=1.1.0");
    expect_range("v1.1.0", "=1.1.0");
    expect_range(">v1.0.0-rc.1", ">1.0.0-rc.1");
    expect_range("<=2.0.0+build.7", "<=2.0.0+build.7");
    expect_range("  >=1.0.0    <V2.0.0  ", ">=1.0.0 <2.0.0");
    expect_range(">1.0.0 >1.0.0", ">1.0.0 >1.0.0");
    expect_range("=1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0",
                 "=1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0");

    static const char *const bad[] = {"",
                                      " ",
                                      "<",
                                      ">= 1.0.0",
                                      "=>1.0.0",
                                      "==1.0.0",
                                      "1.2",
                                      "banana",
                                      "<1.2.0,>1",
                                      "~1.2.0",
                                      "^1.2.0",
                                      "1.2.x",
                                      "<01.2.0",
                                      "1.0.0\t2.0.0",
                                      "!=1.0.0",
                                      "<1.0.0 <<2.0.0",
                                      "=1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0 =1.0.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[OTA_VERSION_RANGE_MAX] = "untouched";
        assert_false(ota__version_range_normalize(bad[i], out));
        assert_string_equal(out, "");
    }
}

/* ---- a body's filter ------------------------------------------------------------------------------------------- */

/* Reads member "filter" of the body `json`; the checker goes to `v` (release it). */
static json_t *read_body(const char *json, ota_validate_t *v, json_t **body)
{
    *body = json_loads(json, 0, NULL);
    assert_non_null(*body);
    ota__validate_init(v, *body);
    return ota__fleet_filter_read(v, "filter");
}

static void expect_filter(const char *json, const char *want)
{
    ota_validate_t v;
    json_t *body;
    json_t *filter = read_body(json, &v, &body);
    if (filter == NULL)
        fail_msg("%s refused: %s %s", json, v.type_error, json_dumps(v.fields, JSON_COMPACT));
    char *got = dump(filter);
    assert_string_equal(got, want);
    assert_int_equal(json_object_size(v.fields), 0);
    assert_string_equal(v.type_error, "");
    free(got);
    release(&v);
    json_decref(body);
}

/* The filter of `json` is refused with a 422 naming `field`. */
static void expect_field(const char *json, const char *field)
{
    ota_validate_t v;
    json_t *body;
    assert_null(read_body(json, &v, &body));
    if (json_object_get(v.fields, field) == NULL)
        fail_msg("%s: no problem for %s in %s (type error \"%s\")", json, field, json_dumps(v.fields, JSON_COMPACT),
                 v.type_error);
    assert_string_equal(v.type_error, "");
    release(&v);
    json_decref(body);
}

/* The filter of `json` is refused with a 400 naming `field`. */
static void expect_type_error(const char *json, const char *field)
{
    ota_validate_t v;
    json_t *body;
    assert_null(read_body(json, &v, &body));
    if (strstr(v.type_error, field) == NULL)
        fail_msg("%s: type error \"%s\" does not name %s", json, v.type_error, field);
    release(&v);
    json_decref(body);
}

static void test_body_normalized(void **state)
{
    (void)state;
    expect_filter("{\"filter\": {}}", "{}");
    expect_filter("{\"filter\": {\"model\": \"bota-pin\"}}", "{\"model\":\"bota-pin\"}");
    expect_filter("{\"filter\": {\"tags_all\": [\"eu\", \"beta\", \"eu\"], \"tags_any\": [\"x\"]}}",
                  "{\"tags_all\":[\"beta\",\"eu\"],\"tags_any\":[\"x\"]}");
    expect_filter("{\"filter\": {\"version\": \" >=v1.0.0  <1.2.0-rc.1\"}}", "{\"version\":\">=1.0.0 <1.2.0-rc.1\"}");
    expect_filter("{\"filter\": {\"version\": \"1.1.0\"}}", "{\"version\":\"=1.1.0\"}");
    expect_filter("{\"filter\": {\"serial_prefix\": \"SN_%\\\\\"}}", "{\"serial_prefix\":\"SN_%\\\\\"}");
    expect_filter("{\"filter\": {\"ids\": [\"B6A1B0D2-0000-4000-8000-00000000000A\", "
                  "\"00000000-0000-4000-8000-000000000001\", \"b6a1b0d2-0000-4000-8000-00000000000a\"]}}",
                  "{\"ids\":[\"00000000-0000-4000-8000-000000000001\",\"b6a1b0d2-0000-4000-8000-00000000000a\"]}");
    /* An empty tags_all asks for nothing; null members are absent. */
    expect_filter("{\"filter\": {\"tags_all\": [], \"model\": null, \"version\": null, \"ids\": null}}", "{}");
}

static void test_body_absent(void **state)
{
    (void)state;
    ota_validate_t v;
    json_t *body;
    assert_null(read_body("{\"other\": 1}", &v, &body));
    assert_int_equal(json_object_size(v.fields), 0);
    assert_string_equal(v.type_error, "");
    release(&v);
    json_decref(body);
    assert_null(read_body("{\"filter\": null}", &v, &body));
    assert_string_equal(v.type_error, "");
    release(&v);
    json_decref(body);
    /* No body at all. */
    ota__validate_init(&v, NULL);
    assert_null(ota__fleet_filter_read(&v, "filter"));
    release(&v);
}

static void test_body_refused(void **state)
{
    (void)state;
    expect_field("{\"filter\": {\"tag_all\": [\"eu\"]}}", "filter.tag_all");
    expect_field("{\"filter\": {\"ota_status\": \"none\"}}", "filter.ota_status");
    expect_field("{\"filter\": {\"model\": \"No Such\"}}", "filter.model");
    expect_field("{\"filter\": {\"model\": \"\"}}", "filter.model");
    expect_field("{\"filter\": {\"tags_all\": [\"EU\"]}}", "filter.tags_all");
    expect_field("{\"filter\": {\"tags_any\": []}}", "filter.tags_any");
    expect_field("{\"filter\": {\"tags_any\": [\"a b\"]}}", "filter.tags_any");
    expect_field("{\"filter\": {\"version\": \"~1.2\"}}", "filter.version");
    expect_field("{\"filter\": {\"version\": \"\"}}", "filter.version");
    expect_field("{\"filter\": {\"serial_prefix\": \"\"}}", "filter.serial_prefix");
    expect_field("{\"filter\": {\"ids\": []}}", "filter.ids");
    expect_field("{\"filter\": {\"ids\": [\"not-a-uuid\"]}}", "filter.ids");
    expect_field("{\"filter\": {\"ids\": [\"00000000-0000-4000-8000-000000000001\", \"x\"]}}", "filter.ids");

    expect_type_error("{\"filter\": []}", "filter");
    expect_type_error("{\"filter\": \"model=x\"}", "filter");
    expect_type_error("{\"filter\": {\"model\": 1}}", "filter.model");
    expect_type_error("{\"filter\": {\"tags_all\": \"eu\"}}", "filter.tags_all");
    expect_type_error("{\"filter\": {\"tags_any\": [1]}}", "filter.tags_any");
    expect_type_error("{\"filter\": {\"version\": 1.2}}", "filter.version");
    expect_type_error("{\"filter\": {\"serial_prefix\": [\"SN\"]}}", "filter.serial_prefix");
    expect_type_error("{\"filter\": {\"ids\": \"00000000-0000-4000-8000-000000000001\"}}", "filter.ids");
}

/* A long unknown member is named by its first 60 bytes at most, cut between characters: a name cut inside one is
 * not UTF-8, jansson refuses it as a key of the details, and the problem was lost (the filter taken as absent). */
static void test_body_long_member(void **state)
{
    static const char e_acute[] = "\xc3\xa9";
    char json[128], field[128];
    size_t j = 0, f = 0;
    (void)state;
    /* "a" and 31 times U+00E9: 63 bytes, named by "a" and 29 of them, 59 bytes. */
    j += (size_t)snprintf(json, sizeof json, "{\"filter\": {\"a");
    f += (size_t)snprintf(field, sizeof field, "filter.a");
    for (int i = 0; i < 31; i++) {
        j += (size_t)snprintf(json + j, sizeof json - j, "%s", e_acute);
        if (i < 29)
            f += (size_t)snprintf(field + f, sizeof field - f, "%s", e_acute);
    }
    snprintf(json + j, sizeof json - j, "\": 1}}");
    expect_field(json, field);
}

static void test_body_every_problem(void **state)
{
    (void)state;
    ota_validate_t v;
    json_t *body;
    assert_null(read_body("{\"filter\": {\"model\": \"X\", \"version\": \"x\", \"tags_all\": [\"A\"], \"nope\": 1}}",
                          &v, &body));
    assert_int_equal(json_object_size(v.fields), 4);
    release(&v);
    json_decref(body);
}

static void test_body_ids_bound(void **state)
{
    (void)state;
    size_t cap = 64 + (OTA_FLEET_IDS_MAX + 1) * 40;
    char *json = malloc(cap);
    assert_non_null(json);
    size_t used = (size_t)snprintf(json, cap, "{\"filter\": {\"ids\": [");
    for (int i = 0; i < OTA_FLEET_IDS_MAX; i++)
        used += (size_t)snprintf(json + used, cap - used, "%s\"00000000-0000-4000-8000-%012d\"", i > 0 ? "," : "", i);
    snprintf(json + used, cap - used, "]}}");
    ota_validate_t v;
    json_t *body;
    json_t *filter = read_body(json, &v, &body);
    assert_non_null(filter);
    assert_int_equal(json_array_size(json_object_get(filter, "ids")), OTA_FLEET_IDS_MAX);
    json_decref(filter);
    release(&v);
    json_decref(body);

    snprintf(json + used, cap - used, ",\"00000000-0000-4000-8000-999999999999\"]}}");
    expect_field(json, "filter.ids");
    free(json);
}

/* ---- a list's query -------------------------------------------------------------------------------------------- */

static void expect_query(const char *query, const char *want)
{
    char err[256] = "";
    json_t *filter = ota__fleet_filter_from_query(query, strlen(query), err, sizeof err);
    if (filter == NULL)
        fail_msg("%s refused: %s", query, err);
    char *got = dump(filter);
    assert_string_equal(got, want);
    free(got);
}

/* The query is refused, with a message naming parameter `name`. */
static void expect_query_refused(const char *query, const char *name)
{
    char err[256] = "", quoted[64];
    assert_null(ota__fleet_filter_from_query(query, strlen(query), err, sizeof err));
    snprintf(quoted, sizeof quoted, "'%s'", name);
    if (strstr(err, quoted) == NULL)
        fail_msg("%s: \"%s\" does not name %s", query, err, name);
}

static void test_query_normalized(void **state)
{
    (void)state;
    expect_query("", "{}");
    expect_query("limit=5&after=x", "{}");
    expect_query("model=bota-pin&ota_status=pending", "{\"model\":\"bota-pin\",\"ota_status\":\"pending\"}");
    expect_query("tag=eu&tag=beta&tag=eu", "{\"tags_all\":[\"beta\",\"eu\"]}");
    expect_query("tag_any=site%3Alyon&tag_any=eu", "{\"tags_any\":[\"eu\",\"site:lyon\"]}");
    expect_query("version=%3E%3Dv1.0.0+%3C1.2.0", "{\"version\":\">=1.0.0 <1.2.0\"}");
    expect_query("version=1.1.0", "{\"version\":\"=1.1.0\"}");
    expect_query("serial_prefix=SN-00", "{\"serial_prefix\":\"SN-00\"}");
    expect_query("tag=eu&tag_any=a&tag_any=b&version=%3C2.0.0&model=m&serial_prefix=X",
                 "{\"model\":\"m\",\"serial_prefix\":\"X\",\"tags_all\":[\"eu\"],\"tags_any\":[\"a\",\"b\"],"
                 "\"version\":\"<2.0.0\"}");
}

static void test_query_refused(void **state)
{
    (void)state;
    expect_query_refused("tag=EU", "tag");
    expect_query_refused("tag=eu&tag=", "tag");
    expect_query_refused("tag=%zz", "tag");
    expect_query_refused("tag_any=a+b", "tag_any");
    expect_query_refused("version=~1.2", "version");
    expect_query_refused("version=", "version");
    expect_query_refused("version=1.0.0&version=2.0.0", "version");
    expect_query_refused("serial_prefix=", "serial_prefix");
    expect_query_refused("model=a&model=b", "model");
    expect_query_refused("ota_status=bogus", "ota_status");
    /* Not UTF-8: refused, not a fatal error when the filter is built. */
    expect_query_refused("tag=t%EAag", "tag");
    expect_query_refused("tag_any=%FF", "tag_any");
    expect_query_refused("model=%FF", "model");
    expect_query_refused("serial_prefix=SN%C3", "serial_prefix");

    char query[40 * 34] = "";
    size_t used = 0;
    for (int i = 0; i < 33; i++)
        used += (size_t)snprintf(query + used, sizeof query - used, "%stag=t%02d", i > 0 ? "&" : "", i);
    expect_query_refused(query, "tag");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_valid),
        cmocka_unit_test(test_tags_read),
        cmocka_unit_test(test_tags_at_most_32_distinct),
        cmocka_unit_test(test_version_range),
        cmocka_unit_test(test_body_normalized),
        cmocka_unit_test(test_body_absent),
        cmocka_unit_test(test_body_refused),
        cmocka_unit_test(test_body_long_member),
        cmocka_unit_test(test_body_every_problem),
        cmocka_unit_test(test_body_ids_bound),
        cmocka_unit_test(test_query_normalized),
        cmocka_unit_test(test_query_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
