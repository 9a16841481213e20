/*
 * Integration: the HTTP basics every route shares (health, routing, the
 * error shape, body limits and media types), against the real ota-server
 * on a throwaway PostgreSQL cluster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checks.h"

static bool starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* True when the comma-separated header value lists `method` as one of its tokens. */
static bool allow_lists(const char *allow, const char *method)
{
    size_t n = strlen(method);
    const char *p = allow;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ' ')
            end++;
        if ((size_t)(end - p) == n && strncasecmp(p, method, n) == 0)
            return true;
        p = end;
    }
    return false;
}

/* A JSON object `{"id": "<id>", "name": "<padding>"}` of exactly `len` bytes (malloc'ed). */
static char *padded_model_body(const char *id, size_t len)
{
    char head[128];
    int n = snprintf(head, sizeof head, "{\"id\":\"%s\",\"name\":\"", id);
    assert_true(n > 0 && (size_t)n + 2 <= len);
    char *body = malloc(len + 1);
    assert_non_null(body);
    memcpy(body, head, (size_t)n);
    memset(body + n, 'a', len - (size_t)n - 2);
    memcpy(body + len - 2, "\"}", 2);
    body[len] = '\0';
    return body;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_healthz(void **state)
{
    (void)state;
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(strncasecmp(r.content_type, "application/json", 16) == 0, "content type %s", r.content_type);
    CHECK(json_is_object(r.json), "body %s", BODY(&r));
    json_t *status = json_object_get(r.json, "status");
    CHECK(json_is_string(status) && strcmp(json_string_value(status), "ok") == 0, "body %s", BODY(&r));
    h_resp_free(&r);
}

static void test_readyz(void **state)
{
    (void)state;
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(strncasecmp(r.content_type, "application/json", 16) == 0, "content type %s", r.content_type);
    CHECK(json_is_object(r.json), "body %s", BODY(&r));
    CHECK(r.retry_after[0] == '\0', "Retry-After on a 200: %s", r.retry_after);
    h_resp_free(&r);
}

/*
 * Once the server answers /healthz, PostgreSQL has been up all along (the server migrated it at start), so
 * neither /readyz nor a database-backed route may answer 503 "unavailable": the contract keeps 503 for an
 * unreachable database. Uses servers of its own, to look at the first moments after a start whatever the
 * test order; the window is short, so it looks at several starts.
 */
static void test_ready_as_soon_as_healthy(void **state)
{
    (void)state;
    const char *wrapper = getenv("OTA_TEST_WRAPPER");
    const int starts = wrapper != NULL && *wrapper != '\0' ? 3 : 25; /* valgrind starts slowly */
    for (int i = 0; i < starts; i++) {
        h_server_t srv;
        h_server_start(&srv, &h_g_pg, NULL);
        h_resp_t ready = {0}, models = {0};
        h_http(&srv, "GET", "/readyz", NULL, NULL, 0, NULL, &ready);
        h_http(&srv, "GET", "/v1/models", srv.admin_key, NULL, 0, NULL, &models);
        bool ok = ready.status == 200 && models.status == 200;
        if (!ok) {
            fprintf(stderr,
                    "start %d of %d: right after GET /healthz answered 200, with PostgreSQL up:\n"
                    "  GET /readyz -> %ld %s\n  GET /v1/models -> %ld %s\n",
                    i + 1, starts, ready.status, BODY(&ready), models.status, BODY(&models));
            h_server_dump_log(&srv);
        }
        h_resp_free(&ready);
        h_resp_free(&models);
        h_server_stop(&srv);
        assert_true(ok);
    }
}

static void test_unknown_route_404(void **state)
{
    (void)state;
    static const char *const paths[] = {"/v1/nope", "/nope", "/v1/models/x/y/z", "/v2/models"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", paths[i], h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_STRICT_ERROR(&r, 404, "not_found");
        h_resp_free(&r);
    }
}

static void test_method_not_allowed_405(void **state)
{
    (void)state;
    h_resp_t r = {0};

    h_http(&h_g_srv, "DELETE", "/v1/models", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 405, "method_not_allowed");
    CHECK(allow_lists(r.allow, "GET") && allow_lists(r.allow, "POST"), "Allow: \"%s\"", r.allow);
    CHECK(!allow_lists(r.allow, "DELETE"), "Allow: \"%s\"", r.allow);
    h_resp_free(&r);

    h_http(&h_g_srv, "PUT", "/healthz", NULL, "{}", 2, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 405, "method_not_allowed");
    CHECK(allow_lists(r.allow, "GET"), "Allow: \"%s\"", r.allow);
    h_resp_free(&r);

    char uuid[40], path[128];
    h_random_uuid(uuid, sizeof uuid);
    snprintf(path, sizeof path, "/v1/devices/%s", uuid);
    h_http(&h_g_srv, "PUT", path, h_g_srv.admin_key, "{}", 2, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 405, "method_not_allowed");
    CHECK(allow_lists(r.allow, "GET") && allow_lists(r.allow, "PATCH") && allow_lists(r.allow, "DELETE"),
          "Allow: \"%s\"", r.allow);
    h_resp_free(&r);
}

/* POSTs each of the `n` `bodies` to /v1/models: every one is a 400 bad_request. */
static void expect_bad_request_bodies(const char *const *bodies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h_resp_t r = {0};
        h_request(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, bodies[i], &r);
        CHECK(r.status == 400 && h_error_shape_strict(&r, "bad_request"), "body <%s>: got %ld %s", bodies[i], r.status,
              BODY(&r));
        h_resp_free(&r);
    }
}

static void test_malformed_json_400(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{\"id\": ", "{id: 1}", "not json", "{\"id\":\"a\",\"name\":\"b\"} trailing",
                                         "{\"id\":\"a\",\"name\":\"b\",}",
                                         /* jansson's message quotes the text near the error, here the first byte of a
                                          * character: the answer once could not be built, and the server stopped. */
                                         "{\"\\\xc3\xa9\": 1}", "{\"id\": \xc3\xa9}"};
    expect_bad_request_bodies(bodies, sizeof bodies / sizeof bodies[0]);
}

static void test_body_not_object_400(void **state)
{
    (void)state;
    static const char *const bodies[] = {"[{\"id\":\"a\",\"name\":\"b\"}]", "[]", "\"string\"", "42", "null"};
    expect_bad_request_bodies(bodies, sizeof bodies / sizeof bodies[0]);
}

static void test_unsupported_media_type_415(void **state)
{
    (void)state;
    char hex[17], body[128];
    h_random_hex(hex, 16);
    snprintf(body, sizeof body, "{\"id\":\"m-%s\",\"name\":\"media\"}", hex);

    static const char *const types[] = {"text/plain", "application/x-www-form-urlencoded", "application/xml",
                                        "application/jsonx"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, body, strlen(body), types[i], &r);
        CHECK(r.status == 415 && h_error_shape_strict(&r, "unsupported_media_type"), "Content-Type %s: got %ld %s",
              types[i], r.status, BODY(&r));
        h_resp_free(&r);
    }

    /* Nothing was created by the refused requests. */
    char path[96];
    snprintf(path, sizeof path, "/v1/models/m-%s", hex);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);

    /* JSON with parameters, in any case, is JSON. */
    h_http(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, body, strlen(body), "Application/JSON; charset=utf-8",
           &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

/* A body without any Content-Type is taken as JSON. */
static void test_missing_content_type_is_json(void **state)
{
    (void)state;
    char hex[17], body[128];
    h_random_hex(hex, 16);
    snprintf(body, sizeof body, "{\"id\":\"n-%s\",\"name\":\"no type\"}", hex);
    h_resp_t r = {0};
    /* An empty value makes libcurl send no Content-Type header at all (not even its form default). */
    h_http(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, body, strlen(body), "", &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

static void test_payload_too_large_413(void **state)
{
    (void)state;
    char hex[17], id[32];
    h_random_hex(hex, 16);
    snprintf(id, sizeof id, "m-%s", hex);

    /* One byte over 64 KiB is refused, with the limit's own code. */
    char *big = padded_model_body(id, 64 * 1024 + 1);
    h_resp_t r = {0};
    h_request(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, big, &r);
    EXPECT_STRICT_ERROR(&r, 413, "payload_too_large");
    h_resp_free(&r);
    free(big);

    /* Exactly 64 KiB is read and judged on its content (a 65 000-character name is too long). */
    char *edge = padded_model_body(id, 64 * 1024);
    h_request(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, edge, &r);
    EXPECT_STRICT_ERROR(&r, 422, "validation_failed");
    h_resp_free(&r);
    free(edge);
}

static void test_payload_too_large_keeps_connection(void **state)
{
    (void)state;
    char hex[17], id[32], small[128];
    h_random_hex(hex, 16);
    snprintf(id, sizeof id, "m-%s", hex);
    snprintf(small, sizeof small, "{\"id\":\"%s\",\"name\":\"after 413\"}", id);
    char *big = padded_model_body(id, 70000);
    char *huge = padded_model_body(id, 1024 * 1024);

    const char *methods[] = {"POST", "GET", "POST", "POST", "GET"};
    const char *paths[] = {"/v1/models", "/healthz", "/v1/models", "/v1/models", "/v1/models"};
    const char *bodies[] = {big, NULL, huge, small, NULL};
    size_t lens[] = {strlen(big), 0, strlen(huge), strlen(small), 0};
    long statuses[5] = {0};
    long connections = h_http_same_connection(&h_g_srv, 5, methods, paths, bodies, lens, h_g_srv.admin_key, statuses);
    free(big);
    free(huge);

    CHECK(statuses[0] == 413 && statuses[1] == 200 && statuses[2] == 413 && statuses[3] == 201 && statuses[4] == 200,
          "statuses %ld %ld %ld %ld %ld, want 413 200 413 201 200", statuses[0], statuses[1], statuses[2], statuses[3],
          statuses[4]);
    CHECK(connections == 1, "curl opened %ld connections; the 413 must not close the connection", connections);
}

static void test_bad_uuid_in_path_400(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
    } cases[] = {
        {"GET", "/v1/devices/not-a-uuid"},
        {"GET", "/v1/devices/123"},
        {"GET", "/v1/devices/6f0e4b1c-0000-4000-8000-00000000000"},   /* one digit short */
        {"GET", "/v1/devices/6f0e4b1c-0000-4000-8000-0000000000000"}, /* one digit long */
        {"GET", "/v1/devices/6f0e4b1c-0000-4000-8000-00000000000g"},
        {"GET", "/v1/devices/6f0e4b1c00004000800000000000000a"},
        {"DELETE", "/v1/devices/not-a-uuid"},
        {"POST", "/v1/devices/not-a-uuid/token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, cases[i].method, cases[i].path, h_g_srv.admin_key, NULL, 0, NULL, &r);
        CHECK(r.status == 400 && h_error_shape_strict(&r, "bad_request"), "%s %s: got %ld %s", cases[i].method,
              cases[i].path, r.status, BODY(&r));
        h_resp_free(&r);
    }
}

/* Every kind of error this server gives today, each checked for the one error shape. */
static void test_every_error_has_code_and_message(void **state)
{
    (void)state;
    char hex[17], model_body[128], unknown_model[64], big_id[32];
    h_random_hex(hex, 16);
    snprintf(model_body, sizeof model_body, "{\"id\":\"e-%s\",\"name\":\"errors\"}", hex);
    snprintf(unknown_model, sizeof unknown_model, "/v1/models/u-%s", hex);
    snprintf(big_id, sizeof big_id, "b-%s", hex);
    char *big = padded_model_body(big_id, 100000);

    h_resp_t r = {0};
    h_request(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, model_body, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    const struct {
        const char *method, *path, *token, *body, *type;
        long status;
        const char *code;
    } cases[] = {
        {"GET", "/v1/models", NULL, NULL, NULL, 401, "unauthorized"},
        {"GET", "/v1/models", "ota_unknown", NULL, NULL, 401, "unauthorized"},
        {"GET", "/v1/nope", h_g_srv.admin_key, NULL, NULL, 404, "not_found"},
        {"GET", unknown_model, h_g_srv.admin_key, NULL, NULL, 404, "not_found"},
        {"PUT", "/v1/models", h_g_srv.admin_key, "{}", NULL, 405, "method_not_allowed"},
        {"POST", "/v1/models", h_g_srv.admin_key, "{", NULL, 400, "bad_request"},
        {"POST", "/v1/models", h_g_srv.admin_key, "[]", NULL, 400, "bad_request"},
        {"POST", "/v1/models", h_g_srv.admin_key, "{\"id\":1,\"name\":\"x\"}", NULL, 400, "bad_request"},
        {"GET", "/v1/devices?limit=0", h_g_srv.admin_key, NULL, NULL, 400, "bad_request"},
        {"GET", "/v1/devices/xyz", h_g_srv.admin_key, NULL, NULL, 400, "bad_request"},
        {"POST", "/v1/models", h_g_srv.admin_key, "{\"id\":\"x\"}", "text/plain", 415, "unsupported_media_type"},
        {"POST", "/v1/models", h_g_srv.admin_key, big, NULL, 413, "payload_too_large"},
        {"POST", "/v1/models", h_g_srv.admin_key, "{\"id\":\"x\"}", NULL, 422, "validation_failed"},
        {"POST", "/v1/models", h_g_srv.admin_key, model_body, NULL, 409, "conflict"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *b = cases[i].body;
        h_http(&h_g_srv, cases[i].method, cases[i].path, cases[i].token, b, b != NULL ? strlen(b) : 0, cases[i].type,
               &r);
        CHECK(r.status == cases[i].status && h_error_shape_strict(&r, cases[i].code),
              "%s %s: expected %ld %s, got %ld (%s): %.2000s", cases[i].method, cases[i].path, cases[i].status,
              cases[i].code, r.status, r.content_type, BODY(&r));
        h_resp_free(&r);
    }
    free(big);
}

static void test_help_lists_variables(void **state)
{
    (void)state;
    char out[16384];
    const char *const args[] = {"--help", NULL};
    int rc = h_run_server_cmd(&h_g_pg, args, NULL, out, sizeof out);
    CHECK(rc == 0, "ota-server --help exited %d", rc);
    CHECK(strstr(out, "OTA_DATABASE_URL") != NULL, "--help output lacks OTA_DATABASE_URL:\n%s", out);
    CHECK(strstr(out, "OTA_LISTEN") != NULL, "--help output lacks OTA_LISTEN:\n%s", out);
    CHECK(starts_with(out, "usage") || strstr(out, "usage") != NULL || strstr(out, "Usage") != NULL,
          "--help output has no usage line:\n%s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_readyz),
        cmocka_unit_test(test_ready_as_soon_as_healthy),
        cmocka_unit_test(test_unknown_route_404),
        cmocka_unit_test(test_method_not_allowed_405),
        cmocka_unit_test(test_malformed_json_400),
        cmocka_unit_test(test_body_not_object_400),
        cmocka_unit_test(test_unsupported_media_type_415),
        cmocka_unit_test(test_missing_content_type_is_json),
        cmocka_unit_test(test_payload_too_large_413),
        cmocka_unit_test(test_payload_too_large_keeps_connection),
        cmocka_unit_test(test_bad_uuid_in_path_400),
        cmocka_unit_test(test_every_error_has_code_and_message),
        cmocka_unit_test(test_help_lists_variables),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
