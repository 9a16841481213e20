#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/router.h"

/* A table of our own: handlers are never called by the matcher. */
static const ota_route_t routes[] = {
    {"GET", "/v1/health", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, NULL, "health"},
    {"GET", "/v1/devices", OTA_ACCESS_API, OTA_BODY_NONE, NULL, "devices.list"},
    {"POST", "/v1/devices", OTA_ACCESS_ADMIN, OTA_BODY_JSON, NULL, "devices.create"},
    {"GET", "/v1/devices/{uuid}", OTA_ACCESS_API, OTA_BODY_NONE, NULL, "devices.get"},
    {"DELETE", "/v1/devices/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_NONE, NULL, "devices.delete"},
    {"POST", "/v1/devices/{uuid}/token", OTA_ACCESS_ADMIN, OTA_BODY_NONE, NULL, "devices.token"},
    {"PUT", "/v1/models/{name}", OTA_ACCESS_ADMIN, OTA_BODY_JSON, NULL, "models.put"},
    {"GET", "/v1/models/{name}", OTA_ACCESS_API, OTA_BODY_NONE, NULL, "models.get"},
    {"POST", "/v1/models/{name}/releases/{name}", OTA_ACCESS_ADMIN, OTA_BODY_UPLOAD, NULL, "releases.upload"},
    /* Two patterns that match the same paths: the allow list names each method once. */
    {"GET", "/v1/things/{uuid}", OTA_ACCESS_API, OTA_BODY_NONE, NULL, "things.get.uuid"},
    {"PATCH", "/v1/things/{name}", OTA_ACCESS_ADMIN, OTA_BODY_JSON, NULL, "things.patch"},
    {"GET", "/v1/things/{name}", OTA_ACCESS_API, OTA_BODY_NONE, NULL, "things.get.name"},
    {"DELETE", "/v1/things/{name}", OTA_ACCESS_ADMIN, OTA_BODY_NONE, NULL, "things.delete"},
    {"PATCH", "/v1/things/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_JSON, NULL, "things.patch.uuid"},
    {"GET", "/p/{name}/{name}/{name}/{name}", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, NULL, "four"},
    {"GET", "/q/{name}/{name}/{name}/{name}/{name}", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, NULL, "five"},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static ota_route_result_t match(const char *method, const char *path, ota_route_match_t *m)
{
    memset(m, 0xa5, sizeof(*m)); /* the matcher must not rely on a clean struct */
    return ota__route_match(routes, NROUTES, method, strlen(method), path, strlen(path), m);
}

static void expect_found(const char *method, const char *path, const char *name, int nparams, ota_route_match_t *m)
{
    assert_int_equal(match(method, path, m), OTA_ROUTE_FOUND);
    assert_non_null(m->route);
    assert_string_equal(m->route->name, name);
    assert_int_equal(m->nparams, nparams);
}

static void expect_not_found(const char *method, const char *path)
{
    ota_route_match_t m;
    assert_int_equal(match(method, path, &m), OTA_ROUTE_NOT_FOUND);
    assert_null(m.route);
}

static void expect_405(const char *method, const char *path, const char *allow)
{
    ota_route_match_t m;
    assert_int_equal(match(method, path, &m), OTA_ROUTE_METHOD_NOT_ALLOWED);
    assert_null(m.route);
    assert_string_equal(m.allow, allow);
}

static void expect_param(const ota_route_param_t *p, const char *text, bool is_uuid)
{
    assert_int_equal(p->len, strlen(text));
    assert_memory_equal(p->base, text, p->len);
    assert_int_equal(p->is_uuid, is_uuid);
}

static void test_literal(void **state)
{
    ota_route_match_t m;
    (void)state;
    expect_found("GET", "/v1/health", "health", 0, &m);
    assert_ptr_equal(m.route, &routes[0]);
    expect_found("GET", "/v1/devices", "devices.list", 0, &m);
    assert_ptr_equal(m.route, &routes[1]);
    expect_found("POST", "/v1/devices", "devices.create", 0, &m);
    assert_ptr_equal(m.route, &routes[2]);
}

static void test_uuid_param(void **state)
{
    const char *path = "/v1/devices/0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b11/token";
    ota_route_match_t m;
    (void)state;

    expect_found("POST", path, "devices.token", 1, &m);
    expect_param(&m.params[0], "0b7f5d3e-3a51-4f0e-9c3b-2f1e0d7a9b11", true);
    /* The parameter points into the path given, not a copy. */
    assert_ptr_equal(m.params[0].base, path + strlen("/v1/devices/"));

    expect_found("DELETE", "/v1/devices/abc", "devices.delete", 1, &m);
    /* Any non-empty segment matches {uuid}: the dispatcher checks its shape. */
    expect_param(&m.params[0], "abc", true);
}

static void test_name_params(void **state)
{
    ota_route_match_t m;
    (void)state;

    expect_found("GET", "/v1/models/sensor-v2", "models.get", 1, &m);
    expect_param(&m.params[0], "sensor-v2", false);

    expect_found("POST", "/v1/models/cam/releases/1.2.3", "releases.upload", 2, &m);
    expect_param(&m.params[0], "cam", false);
    expect_param(&m.params[1], "1.2.3", false);

    expect_found("GET", "/p/a/bb/ccc/dddd", "four", 4, &m);
    expect_param(&m.params[0], "a", false);
    expect_param(&m.params[1], "bb", false);
    expect_param(&m.params[2], "ccc", false);
    expect_param(&m.params[3], "dddd", false);
}

static void test_lengths_not_nul(void **state)
{
    /* Neither the method nor the path is NUL-terminated where its length ends. */
    const char *path = "/v1/models/camXYZ";
    ota_route_match_t m;
    (void)state;

    memset(&m, 0, sizeof m);
    assert_int_equal(ota__route_match(routes, NROUTES, "GETTING", 3, path, strlen(path) - 3, &m), OTA_ROUTE_FOUND);
    assert_string_equal(m.route->name, "models.get");
    assert_int_equal(m.nparams, 1);
    expect_param(&m.params[0], "cam", false);

    assert_int_equal(ota__route_match(routes, NROUTES, "GET", 3, "/v1/healthz", 10, &m), OTA_ROUTE_FOUND);
    assert_string_equal(m.route->name, "health");
    assert_int_equal(ota__route_match(routes, NROUTES, "GET", 3, "/v1/health", 9, &m), OTA_ROUTE_NOT_FOUND);
    assert_int_equal(ota__route_match(routes, NROUTES, "GET", 2, "/v1/health", 10, &m), OTA_ROUTE_METHOD_NOT_ALLOWED);
}

static void test_no_match_shapes(void **state)
{
    (void)state;
    /* Trailing slash. */
    expect_not_found("GET", "/v1/health/");
    expect_not_found("GET", "/v1/devices/");
    expect_not_found("GET", "/v1/models/cam/");
    /* Extra segment. */
    expect_not_found("GET", "/v1/health/x");
    expect_not_found("GET", "/v1/models/cam/extra");
    expect_not_found("POST", "/v1/devices/abc/token/more");
    /* Empty segment where a parameter is. */
    expect_not_found("GET", "/v1/models/");
    expect_not_found("POST", "/v1/devices//token");
    expect_not_found("POST", "/v1/models//releases/1");
    expect_not_found("POST", "/v1/models/cam/releases/");
    /* Empty and doubled slashes in literal parts. */
    expect_not_found("GET", "");
    expect_not_found("GET", "/");
    expect_not_found("GET", "//v1/health");
    expect_not_found("GET", "/v1//health");
    /* Path a prefix of a pattern, pattern a prefix of the path. */
    expect_not_found("GET", "/v1/heal");
    expect_not_found("GET", "/v1");
    expect_not_found("GET", "/v1/healthy");
    expect_not_found("POST", "/v1/devices/abc/tok");
    expect_not_found("POST", "/v1/models/cam/releases");
    expect_not_found("GET", "/p/a/b/c");
    /* Case matters in paths. */
    expect_not_found("GET", "/V1/health");
}

static void test_too_many_params(void **state)
{
    (void)state;
    /* The pattern has OTA_ROUTE_MAX_PARAMS + 1 parameters: it never matches. */
    assert_int_equal(OTA_ROUTE_MAX_PARAMS, 4);
    expect_not_found("GET", "/q/a/b/c/d/e");
    expect_not_found("HEAD", "/q/a/b/c/d/e");
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    expect_405("POST", "/v1/health", "GET");
    expect_405("DELETE", "/v1/devices", "GET, POST");
    expect_405("PUT", "/v1/devices/abc", "GET, DELETE");
    expect_405("GET", "/v1/devices/abc/token", "POST");
    expect_405("POST", "/v1/models/cam", "PUT, GET");
    /* Table order, each method once even when several patterns match. */
    expect_405("POST", "/v1/things/abc", "GET, PATCH, DELETE");
}

static void test_not_found_has_empty_allow(void **state)
{
    ota_route_match_t m;
    (void)state;
    assert_int_equal(match("GET", "/nowhere", &m), OTA_ROUTE_NOT_FOUND);
    assert_null(m.route);
    assert_int_equal(m.nparams, 0);
    assert_string_equal(m.allow, "");
}

static void test_first_match_wins(void **state)
{
    ota_route_match_t m;
    (void)state;
    expect_found("GET", "/v1/things/abc", "things.get.uuid", 1, &m);
    expect_param(&m.params[0], "abc", true);
    expect_found("PATCH", "/v1/things/abc", "things.patch", 1, &m);
    expect_param(&m.params[0], "abc", false);
    expect_found("DELETE", "/v1/things/abc", "things.delete", 1, &m);
}

static void test_head_as_get(void **state)
{
    ota_route_match_t m;
    (void)state;
    expect_found("HEAD", "/v1/health", "health", 0, &m);
    expect_found("HEAD", "/v1/models/cam", "models.get", 1, &m);
    expect_param(&m.params[0], "cam", false);
    expect_405("HEAD", "/v1/devices/abc/token", "POST");
    expect_not_found("HEAD", "/v1/nothing");
}

static void test_method_case_sensitive(void **state)
{
    (void)state;
    expect_405("get", "/v1/health", "GET");
    expect_405("Get", "/v1/health", "GET");
    expect_405("head", "/v1/health", "GET");
    expect_405("post", "/v1/devices", "GET, POST");
    expect_405("", "/v1/health", "GET");
    expect_405("GETX", "/v1/health", "GET");
    expect_405("GE", "/v1/health", "GET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_uuid_param),
        cmocka_unit_test(test_name_params),
        cmocka_unit_test(test_lengths_not_nul),
        cmocka_unit_test(test_no_match_shapes),
        cmocka_unit_test(test_too_many_params),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_not_found_has_empty_allow),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_head_as_get),
        cmocka_unit_test(test_method_case_sensitive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
