/*
 * Integration: /v1/models against the real ota-server on a throwaway
 * PostgreSQL cluster. Each test makes its own models (random ids).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "checks.h"

/* ---- tests ---------------------------------------------------------------- */

static void test_create_201(void **state)
{
    (void)state;
    char id[32];
    h_unique(id, sizeof id, "m-");
    time_t before = time(NULL);
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "Bota Pin");
    EXPECT_STATUS(&r, 201);
    CHECK(strncasecmp(r.content_type, "application/json", 16) == 0, "content type %s", r.content_type);
    CHECK(json_is_object(r.json), "body %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "id"), id), "id in %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "name"), "Bota Pin"), "name in %s", BODY(&r));
    time_t created;
    CHECK(h_rfc3339_utc(h_jstr(r.json, "created_at"), &created), "created_at not RFC 3339 UTC Z: %s", BODY(&r));
    CHECK(created >= before - 60 && created <= time(NULL) + 60, "created_at %s is not about now",
          h_jstr(r.json, "created_at"));
    h_resp_free(&r);
}

static void test_list_contains_created(void **state)
{
    (void)state;
    char id[32];
    h_make_model(id, sizeof id, "Listed");

    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/models", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items), "no items array: %.2000s", BODY(&r));
    int found = 0;
    size_t i;
    json_t *m;
    json_array_foreach(items, i, m)
    {
        CHECK(json_is_object(m) && h_jstr(m, "id") != NULL && h_jstr(m, "name") != NULL, "item %zu: %.2000s", i,
              BODY(&r));
        time_t t;
        CHECK(h_rfc3339_utc(h_jstr(m, "created_at"), &t), "item %zu created_at", i);
        if (strcmp(h_jstr(m, "id"), id) == 0) {
            found++;
            CHECK(strcmp(h_jstr(m, "name"), "Listed") == 0, "listed name %s", h_jstr(m, "name"));
        }
    }
    CHECK(found == 1, "model %s listed %d times in %.2000s", id, found, BODY(&r));
    h_resp_free(&r);
}

static void test_get_by_id(void **state)
{
    (void)state;
    char id[32], path[64];
    h_unique(id, sizeof id, "m-");
    h_resp_t created = {0}, r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &created, "{s:s, s:s}", "id", id, "name", "Fetched");
    EXPECT_STATUS(&created, 201);

    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_equal(r.json, created.json), "GET %s = %s, created %s", path, BODY(&r), BODY(&created));
    h_resp_free(&r);
    h_resp_free(&created);
}

static void test_duplicate_409(void **state)
{
    (void)state;
    char id[32];
    h_make_model(id, sizeof id, "First");

    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "Second");
    EXPECT_ERROR(&r, 409, "conflict");
    h_resp_free(&r);

    /* The first one is unchanged. */
    char path[64];
    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "name"), "First"), "after duplicate: %s", BODY(&r));
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
        h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", bad[i], "name", "Bad");
        CHECK(r.status == 422 && h_error_shape_ok(&r, "validation_failed") && h_field_error(&r, "id"),
              "id \"%s\": expected 422 validation_failed with details.fields.id, got %ld %s", bad[i], r.status,
              BODY(&r));
        h_resp_free(&r);
    }

    /* The longest legal slug, 63 characters, is fine. */
    char longest[70];
    snprintf(longest, sizeof longest, "z%.62s", hex);
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", longest, "name", "Longest");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

static void test_missing_fields_422(void **state)
{
    (void)state;
    char id[32];
    h_unique(id, sizeof id, "m-");
    h_resp_t r = {0};

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s}", "id", id);
    EXPECT_FIELD_ERROR(&r, "name");
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s}", "name", "No id");
    EXPECT_FIELD_ERROR(&r, "id");
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{}");
    EXPECT_FIELD_ERROR(&r, "id");
    CHECK(h_field_error(&r, "name"), "both missing, but no details.fields.name: %s", BODY(&r));
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "");
    EXPECT_FIELD_ERROR(&r, "name");
    h_resp_free(&r);

    /* None of these made the model. */
    char path[64];
    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
}

static void test_wrong_type_400(void **state)
{
    (void)state;
    char id[32];
    h_unique(id, sizeof id, "m-");
    h_resp_t r = {0};

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:i, s:s}", "id", 5, "name", "Number id");
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:[s]}", "id", id, "name", "array");
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:b}", "id", id, "name", 1);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:{}}", "id", id, "name");
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:n}", "id", id, "name");
    CHECK((r.status == 400 && h_error_shape_ok(&r, "bad_request")) ||
              (r.status == 422 && h_error_shape_ok(&r, "validation_failed") && h_field_error(&r, "name")),
          "null name: expected 400 bad_request or 422 fields.name, got %ld %s", r.status, BODY(&r));
    h_resp_free(&r);
}

static void test_unknown_model_404(void **state)
{
    (void)state;
    char id[32], path[64];
    h_unique(id, sizeof id, "m-");
    snprintf(path, sizeof path, "/v1/models/%s", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);

    /* Something that could never be a model id is just as unknown. */
    h_http(&h_g_srv, "GET", "/v1/models/NOT_A_SLUG", h_g_srv.admin_key, NULL, 0, NULL, &r);
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
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
