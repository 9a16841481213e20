/*
 * Integration: /v1/models against the real ota-server on a throwaway
 * PostgreSQL cluster. Each test makes its own models (random ids).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

static h_pg_t g_pg;
static h_server_t g_srv;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n    ", __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            h_server_dump_log(&g_srv);                                                                                 \
            fail();                                                                                                    \
        }                                                                                                              \
    } while (0)

#define BODY(r) ((r)->body != NULL ? (r)->body : "(no body)")

#define EXPECT_STATUS(r, want)                                                                                         \
    CHECK((r)->status == (want), "expected HTTP %d, got %ld: %.2000s", (int)(want), (r)->status, BODY(r))

static bool error_shape_ok(const h_resp_t *r, const char *code)
{
    if (!json_is_object(r->json))
        return false;
    json_t *e = json_object_get(r->json, "error");
    if (!json_is_object(e))
        return false;
    json_t *c = json_object_get(e, "code"), *m = json_object_get(e, "message");
    if (!json_is_string(c) || !json_is_string(m))
        return false;
    return code == NULL || strcmp(json_string_value(c), code) == 0;
}

#define EXPECT_ERROR(r, want, code)                                                                                    \
    CHECK((r)->status == (want) && error_shape_ok((r), (code)),                                                        \
          "expected HTTP %d with error code \"%s\", got %ld: %.2000s", (int)(want), (code), (r)->status, BODY(r))

/* error.details.fields.<name> is present. */
static bool field_error(const h_resp_t *r, const char *name)
{
    json_t *fields = json_object_get(json_object_get(json_object_get(r->json, "error"), "details"), "fields");
    return json_is_object(fields) && json_object_get(fields, name) != NULL;
}

#define EXPECT_FIELD_ERROR(r, name)                                                                                    \
    do {                                                                                                               \
        EXPECT_ERROR((r), 422, "validation_failed");                                                                   \
        CHECK(field_error((r), (name)), "no details.fields.%s in %s", (name), BODY(r));                                \
    } while (0)

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* RFC 3339 UTC with a Z ("2026-11-21T10:00:00Z", optional fraction); the time it names goes to *out. */
static bool rfc3339_utc(const char *s, time_t *out)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (s == NULL || strlen(s) < sizeof shape)
        return false;
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    const char *p = s + sizeof shape - 1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0)
        return false;
    struct tm tm = {0};
    if (strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
        return false;
    *out = timegm(&tm);
    return true;
}

static void new_model_id(char *out, size_t cap)
{
    char hex[17];
    h_random_hex(hex, 16);
    snprintf(out, cap, "m-%s", hex);
}

/* Polls GET /readyz until 200 (at most 10 s): the server listens before its database connections are up. */
static bool wait_ready(h_server_t *srv)
{
    for (int i = 0; i < 200; i++) {
        h_resp_t r = {0};
        h_http(srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
        long status = r.status;
        h_resp_free(&r);
        if (status == 200)
            return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "GET /readyz did not answer 200 within 10 s of the server's start\n");
    h_server_dump_log(srv);
    return false;
}

static int group_setup(void **state)
{
    (void)state;
    h_pg_start(&g_pg);
    h_server_start(&g_srv, &g_pg, NULL);
    return wait_ready(&g_srv) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    h_server_stop(&g_srv);
    h_pg_destroy(&g_pg);
    return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_create_201(void **state)
{
    (void)state;
    char id[32];
    new_model_id(id, sizeof id);
    time_t before = time(NULL);
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "Bota Pin");
    EXPECT_STATUS(&r, 201);
    CHECK(strncasecmp(r.content_type, "application/json", 16) == 0, "content type %s", r.content_type);
    CHECK(json_is_object(r.json), "body %s", BODY(&r));
    CHECK(jstr(r.json, "id") != NULL && strcmp(jstr(r.json, "id"), id) == 0, "id in %s", BODY(&r));
    CHECK(jstr(r.json, "name") != NULL && strcmp(jstr(r.json, "name"), "Bota Pin") == 0, "name in %s", BODY(&r));
    time_t created;
    CHECK(rfc3339_utc(jstr(r.json, "created_at"), &created), "created_at not RFC 3339 UTC Z: %s", BODY(&r));
    CHECK(created >= before - 60 && created <= time(NULL) + 60, "created_at %s is not about now",
          jstr(r.json, "created_at"));
    h_resp_free(&r);
}

static void test_list_contains_created(void **state)
{
    (void)state;
    char id[32];
    new_model_id(id, sizeof id);
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "Listed");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    h_http(&g_srv, "GET", "/v1/models", g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items), "no items array: %.2000s", BODY(&r));
    int found = 0;
    size_t i;
    json_t *m;
    json_array_foreach(items, i, m)
    {
        CHECK(json_is_object(m) && jstr(m, "id") != NULL && jstr(m, "name") != NULL, "item %zu: %.2000s", i, BODY(&r));
        time_t t;
        CHECK(rfc3339_utc(jstr(m, "created_at"), &t), "item %zu created_at", i);
        if (strcmp(jstr(m, "id"), id) == 0) {
            found++;
            CHECK(strcmp(jstr(m, "name"), "Listed") == 0, "listed name %s", jstr(m, "name"));
        }
    }
    CHECK(found == 1, "model %s listed %d times in %.2000s", id, found, BODY(&r));
    h_resp_free(&r);
}

static void test_get_by_id(void **state)
{
    (void)state;
    char id[32], path[64];
    new_model_id(id, sizeof id);
    h_resp_t created = {0}, r = {0};
    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &created, "{s:s, s:s}", "id", id, "name", "Fetched");
    EXPECT_STATUS(&created, 201);

    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_http(&g_srv, "GET", path, g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_equal(r.json, created.json), "GET %s = %s, created %s", path, BODY(&r), BODY(&created));
    h_resp_free(&r);
    h_resp_free(&created);
}

static void test_duplicate_409(void **state)
{
    (void)state;
    char id[32];
    new_model_id(id, sizeof id);
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "First");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "Second");
    EXPECT_ERROR(&r, 409, "conflict");
    h_resp_free(&r);

    /* The first one is unchanged. */
    char path[64];
    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_http(&g_srv, "GET", path, g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(jstr(r.json, "name") != NULL && strcmp(jstr(r.json, "name"), "First") == 0, "after duplicate: %s", BODY(&r));
    h_resp_free(&r);
}

static void test_bad_slug_422(void **state)
{
    (void)state;
    char hex[65];
    h_random_hex(hex, 64);
    char upper[40], underscore[40], leading_dash[40], too_long[70], space[40];
    snprintf(upper, sizeof upper, "Bad-%.16s", hex);
    snprintf(underscore, sizeof underscore, "bad_%.16s", hex);
    snprintf(leading_dash, sizeof leading_dash, "-%.16s", hex);
    snprintf(too_long, sizeof too_long, "x%.63s", hex); /* 64 characters */
    snprintf(space, sizeof space, "bad %.16s", hex);
    const char *const bad[] = {upper, underscore, leading_dash, too_long, space, "", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_resp_t r = {0};
        h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", bad[i], "name", "Bad");
        CHECK(r.status == 422 && error_shape_ok(&r, "validation_failed") && field_error(&r, "id"),
              "id \"%s\": expected 422 validation_failed with details.fields.id, got %ld %s", bad[i], r.status,
              BODY(&r));
        h_resp_free(&r);
    }

    /* The longest legal slug, 63 characters, is fine. */
    char longest[70];
    snprintf(longest, sizeof longest, "z%.62s", hex);
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", longest, "name", "Longest");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

static void test_missing_fields_422(void **state)
{
    (void)state;
    char id[32];
    new_model_id(id, sizeof id);
    h_resp_t r = {0};

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s}", "id", id);
    EXPECT_FIELD_ERROR(&r, "name");
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s}", "name", "No id");
    EXPECT_FIELD_ERROR(&r, "id");
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{}");
    EXPECT_FIELD_ERROR(&r, "id");
    CHECK(field_error(&r, "name"), "both missing, but no details.fields.name: %s", BODY(&r));
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "");
    EXPECT_FIELD_ERROR(&r, "name");
    h_resp_free(&r);

    /* None of these made the model. */
    char path[64];
    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_http(&g_srv, "GET", path, g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
}

static void test_wrong_type_400(void **state)
{
    (void)state;
    char id[32];
    new_model_id(id, sizeof id);
    h_resp_t r = {0};

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:i, s:s}", "id", 5, "name", "Number id");
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:[s]}", "id", id, "name", "array");
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:b}", "id", id, "name", 1);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:{}}", "id", id, "name");
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:n}", "id", id, "name");
    CHECK((r.status == 400 && error_shape_ok(&r, "bad_request")) ||
              (r.status == 422 && error_shape_ok(&r, "validation_failed") && field_error(&r, "name")),
          "null name: expected 400 bad_request or 422 fields.name, got %ld %s", r.status, BODY(&r));
    h_resp_free(&r);
}

static void test_unknown_model_404(void **state)
{
    (void)state;
    char id[32], path[64];
    new_model_id(id, sizeof id);
    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_resp_t r = {0};
    h_http(&g_srv, "GET", path, g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);

    /* Something that could never be a model id is just as unknown. */
    h_http(&g_srv, "GET", "/v1/models/NOT_A_SLUG", g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_201),     cmocka_unit_test(test_list_contains_created),
        cmocka_unit_test(test_get_by_id),      cmocka_unit_test(test_duplicate_409),
        cmocka_unit_test(test_bad_slug_422),   cmocka_unit_test(test_missing_fields_422),
        cmocka_unit_test(test_wrong_type_400), cmocka_unit_test(test_unknown_model_404),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
