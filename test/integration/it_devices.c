/*
 * Integration: /v1/devices (registration, reads, paging, deletion, token
 * rotation) against the real ota-server on a throwaway PostgreSQL cluster.
 * Every test makes its own model and devices, so none depends on another.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checks.h"

/* A lower-case hyphenated UUID. */
static bool uuid_ok(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* Creates a fresh model; its id goes to `id` (32 bytes). */
static void make_model(char id[32])
{
    h_make_model(id, 32, "Device test model");
}

/* POST /v1/devices with `serial`, `model` and `firmware_version`; a NULL one is left out of the body. */
static void post_device(const char *serial, const char *model, const char *firmware_version, h_resp_t *out)
{
    json_t *body = json_object();
    if (serial != NULL)
        json_object_set_new(body, "serial", json_string(serial));
    if (model != NULL)
        json_object_set_new(body, "model", json_string(model));
    if (firmware_version != NULL)
        json_object_set_new(body, "firmware_version", json_string(firmware_version));
    char *text = json_dumps(body, JSON_COMPACT);
    assert_non_null(text);
    h_request(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, text, out);
    free(text);
    json_decref(body);
}

/* POST /v1/devices with a fresh serial, `model` and `firmware_version` (NULL: none). */
static void post_new_device(const char *model, const char *firmware_version, h_resp_t *out)
{
    char serial[40];
    h_unique(serial, sizeof serial, "SN-");
    post_device(serial, model, firmware_version, out);
}

/* Registers a device of `model` with a fresh serial; the answer goes to `out` (201 checked). */
static void make_device(const char *model, h_resp_t *out)
{
    post_new_device(model, NULL, out);
    EXPECT_STATUS(out, 201);
    CHECK(uuid_ok(h_jstr(out->json, "id")), "device id in %s", BODY(out));
    CHECK(h_jstr(out->json, "token") != NULL, "no token in %s", BODY(out));
}

static void device_path(char *out, size_t cap, const char *id, const char *suffix)
{
    snprintf(out, cap, "/v1/devices/%s%s", id, suffix);
}

/* ---- registration ---------------------------------------------------------- */

static void test_create_201_shape(void **state)
{
    (void)state;
    char model[32], serial[40];
    make_model(model);
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s, s:s, s:s}", "serial", serial, "model",
           model, "name", "Kitchen", "firmware_version", "v1.2.3");
    EXPECT_STATUS(&r, 201);
    CHECK(strncasecmp(r.content_type, "application/json", 16) == 0, "content type %s", r.content_type);
    CHECK(json_is_object(r.json), "body %s", BODY(&r));

    /* Every field of the contract's device shape is there. */
    static const char *const fields[] = {
        "id",           "serial",    "model",   "name",          "firmware_version",  "last_seen_at",
        "connectivity", "recording", "battery", "ble_connected", "active_assignment", "tags"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        CHECK(json_object_get(r.json, fields[i]) != NULL, "field %s missing from %s", fields[i], BODY(&r));

    CHECK(uuid_ok(h_jstr(r.json, "id")), "id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "serial"), serial), "serial: %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "model"), model), "model: %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "name"), "Kitchen"), "name: %s", BODY(&r));
    CHECK(h_streq(h_jstr(r.json, "firmware_version"), "1.2.3"), "firmware_version not normalized: %s", BODY(&r));
    CHECK(json_is_null(json_object_get(r.json, "last_seen_at")), "a new device was never seen: %s", BODY(&r));
    CHECK(json_is_boolean(json_object_get(r.json, "recording")), "recording: %s", BODY(&r));
    CHECK(json_is_boolean(json_object_get(r.json, "ble_connected")), "ble_connected: %s", BODY(&r));
    CHECK(json_is_null(json_object_get(r.json, "active_assignment")), "active_assignment: %s", BODY(&r));

    const char *token = h_jstr(r.json, "token");
    CHECK(token != NULL && strncmp(token, "otd_", 4) == 0 && strlen(token) > 20, "token: %s", BODY(&r));

    /* The token is shown once: a later GET does not carry it. */
    char path[96];
    device_path(path, sizeof path, h_jstr(r.json, "id"), "");
    h_resp_t g = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &g);
    EXPECT_STATUS(&g, 200);
    CHECK(json_object_get(g.json, "token") == NULL, "GET shows the token: %s", BODY(&g));
    h_resp_free(&g);
    h_resp_free(&r);
}

static void test_create_minimal(void **state)
{
    (void)state;
    char model[32];
    make_model(model);
    h_resp_t r = {0};
    post_new_device(model, NULL, &r);
    EXPECT_STATUS(&r, 201);
    CHECK(json_is_null(json_object_get(r.json, "name")), "name without one given: %s", BODY(&r));
    CHECK(json_is_null(json_object_get(r.json, "firmware_version")), "firmware_version without one given: %s",
          BODY(&r));
    h_resp_free(&r);
}

static void test_firmware_version_normalized(void **state)
{
    (void)state;
    char model[32];
    make_model(model);
    static const struct {
        const char *in, *out;
    } cases[] = {{"1.2.3", "1.2.3"}, {"v1.2.3", "1.2.3"}, {"v2.0.0-rc.1+build.5", "2.0.0-rc.1+build.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp_t r = {0};
        post_new_device(model, cases[i].in, &r);
        EXPECT_STATUS(&r, 201);
        CHECK(h_streq(h_jstr(r.json, "firmware_version"), cases[i].out), "\"%s\" gave %s, want %s", cases[i].in,
              BODY(&r), cases[i].out);
        h_resp_free(&r);
    }
}

static void test_bad_semver_422(void **state)
{
    (void)state;
    char model[32];
    make_model(model);
    static const char *const bad[] = {"1.2", "banana", "", "1.2.3.4", "v", "01.2.3", "1.2.3-", "V 1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_resp_t r = {0};
        post_new_device(model, bad[i], &r);
        CHECK(r.status == 422 && h_error_shape_ok(&r, "validation_failed") && h_field_error(&r, "firmware_version"),
              "firmware_version \"%s\": expected 422 with details.fields.firmware_version, got %ld %s", bad[i],
              r.status, BODY(&r));
        h_resp_free(&r);
    }
}

static void test_duplicate_serial_409(void **state)
{
    (void)state;
    char model[32], serial[40];
    make_model(model);
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    post_device(serial, model, NULL, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    post_device(serial, model, NULL, &r);
    EXPECT_ERROR(&r, 409, "conflict");
    h_resp_free(&r);
}

static void test_unknown_model_422(void **state)
{
    (void)state;
    char model[32], serial[40];
    h_unique(model, sizeof model, "nomodel-");
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    post_device(serial, model, NULL, &r);
    EXPECT_FIELD_ERROR(&r, "model");
    h_resp_free(&r);

    /* Not a slug at all: just as unknown. */
    post_device(serial, "No Such", NULL, &r);
    EXPECT_FIELD_ERROR(&r, "model");
    h_resp_free(&r);
}

static void test_missing_fields_422(void **state)
{
    (void)state;
    char model[32], serial[40];
    make_model(model);
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    post_device(NULL, model, NULL, &r);
    EXPECT_FIELD_ERROR(&r, "serial");
    h_resp_free(&r);

    post_device(serial, NULL, NULL, &r);
    EXPECT_FIELD_ERROR(&r, "model");
    h_resp_free(&r);

    post_device("", model, NULL, &r);
    EXPECT_FIELD_ERROR(&r, "serial");
    h_resp_free(&r);
}

static void test_wrong_types_400(void **state)
{
    (void)state;
    char model[32], serial[40];
    make_model(model);
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:i, s:s}", "serial", 12345, "model", model);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s, s:i}", "serial", serial, "model", model,
           "firmware_version", 1);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
}

/* ---- reads ----------------------------------------------------------------- */

static void test_get(void **state)
{
    (void)state;
    char model[32], path[96];
    make_model(model);
    h_resp_t created = {0}, r = {0};
    make_device(model, &created);
    device_path(path, sizeof path, h_jstr(created.json, "id"), "");
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);

    /* The same device as registered, less the token. */
    json_t *expect = json_deep_copy(created.json);
    json_object_del(expect, "token");
    CHECK(json_equal(expect, r.json), "GET %s = %s\nregistered as %s", path, BODY(&r), BODY(&created));
    json_decref(expect);
    h_resp_free(&r);
    h_resp_free(&created);
}

static void test_get_unknown_404(void **state)
{
    (void)state;
    char uuid[40], path[96];
    h_random_uuid(uuid, sizeof uuid);
    device_path(path, sizeof path, uuid, "");
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
}

/* One page of GET `query`; appends the item ids to ids[*n]; returns the next cursor (malloc'ed) or NULL. */
static char *fetch_page(const char *query, size_t want_items, char ids[][40], size_t *n, size_t max)
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    json_t *next = json_object_get(r.json, "next");
    CHECK(json_is_array(items), "%s: no items: %.2000s", query, BODY(&r));
    CHECK(next != NULL && (json_is_null(next) || json_is_string(next)), "%s: next must be a string or null: %.2000s",
          query, BODY(&r));
    CHECK(json_array_size(items) == want_items, "%s: %zu items, want %zu: %.2000s", query, json_array_size(items),
          want_items, BODY(&r));
    size_t i;
    json_t *d;
    json_array_foreach(items, i, d)
    {
        CHECK(*n < max && h_jstr(d, "id") != NULL, "%s: item %zu", query, i);
        snprintf(ids[(*n)++], 40, "%s", h_jstr(d, "id"));
    }
    char *cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
    h_resp_free(&r);
    return cursor;
}

static void test_list_paging(void **state)
{
    (void)state;
    enum { N = 5 };
    char model[32], created[N][40];
    make_model(model);
    for (int i = 0; i < N; i++) {
        h_resp_t r = {0};
        make_device(model, &r);
        snprintf(created[i], sizeof created[i], "%s", h_jstr(r.json, "id"));
        h_resp_free(&r);
    }

    char seen[N + 4][40];
    size_t n = 0;
    char query[512];
    static const size_t page_sizes[] = {2, 2, 1};
    char *cursor = NULL;
    for (size_t p = 0; p < 3; p++) {
        if (cursor == NULL)
            snprintf(query, sizeof query, "/v1/devices?model=%s&limit=2", model);
        else
            snprintf(query, sizeof query, "/v1/devices?model=%s&limit=2&after=%s", model, cursor);
        if (p > 0)
            CHECK(cursor != NULL, "page %zu: the previous page had next = null", p + 1);
        free(cursor);
        cursor = fetch_page(query, page_sizes[p], seen, &n, N + 4);
        if (p < 2)
            CHECK(cursor != NULL, "page %zu of 3 has next = null", p + 1);
    }
    CHECK(cursor == NULL, "last page has next = \"%s\", want null", cursor);

    /* Newest first: exactly the creation order reversed, so no duplicates and nothing missing. */
    CHECK(n == N, "%zu devices over all pages, want %d", n, N);
    for (int i = 0; i < N; i++)
        CHECK(strcmp(seen[i], created[N - 1 - i]) == 0, "position %d: %s, want %s (newest first)", i, seen[i],
              created[N - 1 - i]);

    /* A page exactly as large as what is left ends the list. */
    n = 0;
    snprintf(query, sizeof query, "/v1/devices?model=%s&limit=%d", model, N);
    cursor = fetch_page(query, N, seen, &n, N + 4);
    CHECK(cursor == NULL, "limit=%d over %d devices: next = \"%s\", want null", N, N, cursor);

    /* The default limit (50) covers them all. */
    n = 0;
    snprintf(query, sizeof query, "/v1/devices?model=%s", model);
    cursor = fetch_page(query, N, seen, &n, N + 4);
    CHECK(cursor == NULL, "default limit: next = \"%s\", want null", cursor);
}

static void test_list_without_filter(void **state)
{
    (void)state;
    char model[32];
    make_model(model);
    h_resp_t dev = {0}, r = {0};
    make_device(model, &dev);
    /* The newest device overall (unless another test registered one meanwhile; they run one at a time). */
    h_http(&h_g_srv, "GET", "/v1/devices?limit=500", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items) && json_array_size(items) >= 1 && json_array_size(items) <= 500, "%.2000s", BODY(&r));
    CHECK(h_streq(h_jstr(json_array_get(items, 0), "id"), h_jstr(dev.json, "id")),
          "first item is not the newest: %.500s", BODY(&r));
    h_resp_free(&r);
    h_resp_free(&dev);

    h_http(&h_g_srv, "GET", "/v1/devices?limit=1", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 1, "limit=1: %.2000s", BODY(&r));
    h_resp_free(&r);
}

static void test_list_ota_status_filter(void **state)
{
    (void)state;
    char model[32], query[256];
    make_model(model);
    h_resp_t dev = {0}, r = {0};
    make_device(model, &dev);

    snprintf(query, sizeof query, "/v1/devices?model=%s&ota_status=none", model);
    h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items) && json_array_size(items) == 1, "%s: %.2000s", query, BODY(&r));
    CHECK(h_streq(h_jstr(json_array_get(items, 0), "id"), h_jstr(dev.json, "id")), "%s: %.2000s", query, BODY(&r));
    h_resp_free(&r);

    /* Without the model filter the new device is among the ota_status=none devices too. */
    h_http(&h_g_srv, "GET", "/v1/devices?ota_status=none&limit=500", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    items = json_object_get(r.json, "items");
    CHECK(json_is_array(items) && json_array_size(items) >= 1, "%.2000s", BODY(&r));
    CHECK(h_streq(h_jstr(json_array_get(items, 0), "id"), h_jstr(dev.json, "id")), "ota_status=none: %.500s", BODY(&r));
    h_resp_free(&r);

    static const char *const others[] = {"pending", "delivered", "applied", "failed", "canceled"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        snprintf(query, sizeof query, "/v1/devices?model=%s&ota_status=%s", model, others[i]);
        h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_STATUS(&r, 200);
        items = json_object_get(r.json, "items");
        CHECK(json_is_array(items) && json_array_size(items) == 0, "%s: %.2000s", query, BODY(&r));
        CHECK(json_is_null(json_object_get(r.json, "next")), "%s: %.2000s", query, BODY(&r));
        h_resp_free(&r);
    }

    h_http(&h_g_srv, "GET", "/v1/devices?ota_status=bogus", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    h_resp_free(&dev);
}

static void test_list_unknown_model_empty(void **state)
{
    (void)state;
    char model[32], query[128];
    h_unique(model, sizeof model, "nomodel-");
    snprintf(query, sizeof query, "/v1/devices?model=%s", model);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 0, "%.2000s", BODY(&r));
    CHECK(json_is_null(json_object_get(r.json, "next")), "%.2000s", BODY(&r));
    h_resp_free(&r);
}

/* GET /v1/devices?<param>=<value> for each of the `n` `values`: every one is a 400 bad_request. */
static void expect_bad_list_param(const char *param, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char query[256];
        snprintf(query, sizeof query, "/v1/devices?%s=%s", param, values[i]);
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
        CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"), "%s: expected 400 bad_request, got %ld %s", query,
              r.status, BODY(&r));
        h_resp_free(&r);
    }
}

static void test_list_bad_limit_400(void **state)
{
    (void)state;
    static const char *const bad[] = {"0", "501", "x", "-1", "2x", "1.5", "99999999999999999999"};
    expect_bad_list_param("limit", bad, sizeof bad / sizeof bad[0]);
    /* The bounds themselves are fine. */
    static const char *const good[] = {"1", "500"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char query[128];
        snprintf(query, sizeof query, "/v1/devices?limit=%s", good[i]);
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
        CHECK(r.status == 200, "%s: got %ld %s", query, r.status, BODY(&r));
        h_resp_free(&r);
    }
}

static void test_list_bad_cursor_400(void **state)
{
    (void)state;
    /* Garbage; base64url of "foo,bar"; base64url of "2026-01-01T00:00:00.000000Z,nope". */
    static const char *const bad[] = {"garbage!!", "Zm9vLGJhcg", "MjAyNi0wMS0wMVQwMDowMDowMC4wMDAwMDBaLG5vcGU", "%00",
                                      "AAAA"};
    expect_bad_list_param("after", bad, sizeof bad / sizeof bad[0]);
}

/* ---- deletion and tokens ------------------------------------------------------ */

static void test_delete(void **state)
{
    (void)state;
    char model[32], path[96];
    make_model(model);
    h_resp_t dev = {0}, r = {0};
    make_device(model, &dev);
    const char *token = h_jstr(dev.json, "token");
    device_path(path, sizeof path, h_jstr(dev.json, "id"), "");

    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    CHECK(r.body_len == 0, "204 with a body: %s", BODY(&r));
    h_resp_free(&r);

    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);

    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);

    /* The deleted device's token is nobody's now. */
    h_http(&h_g_srv, "GET", path, token, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);

    /* Its serial is free again. */
    post_device(h_jstr(dev.json, "serial"), model, NULL, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    h_resp_free(&dev);
}

static void test_token_rotation(void **state)
{
    (void)state;
    char model[32], path[96], token_path[128];
    make_model(model);
    h_resp_t dev = {0}, r = {0};
    make_device(model, &dev);
    const char *old_token = h_jstr(dev.json, "token");
    device_path(path, sizeof path, h_jstr(dev.json, "id"), "");
    device_path(token_path, sizeof token_path, h_jstr(dev.json, "id"), "/token");

    h_http(&h_g_srv, "GET", path, old_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    h_http(&h_g_srv, "POST", token_path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    char new_token[128];
    const char *t = h_jstr(r.json, "token");
    CHECK(t != NULL && strncmp(t, "otd_", 4) == 0, "rotation answer %s", BODY(&r));
    CHECK(strcmp(t, old_token) != 0, "rotation gave the same token");
    snprintf(new_token, sizeof new_token, "%s", t);
    h_resp_free(&r);

    h_http(&h_g_srv, "GET", path, old_token, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);

    h_http(&h_g_srv, "GET", path, new_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "id"), h_jstr(dev.json, "id")), "%s", BODY(&r));
    h_resp_free(&r);

    /* Rotating an unknown device is a 404. */
    char uuid[40], unknown[128];
    h_random_uuid(uuid, sizeof uuid);
    device_path(unknown, sizeof unknown, uuid, "/token");
    h_http(&h_g_srv, "POST", unknown, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_resp_free(&dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_201_shape),
        cmocka_unit_test(test_create_minimal),
        cmocka_unit_test(test_firmware_version_normalized),
        cmocka_unit_test(test_bad_semver_422),
        cmocka_unit_test(test_duplicate_serial_409),
        cmocka_unit_test(test_unknown_model_422),
        cmocka_unit_test(test_missing_fields_422),
        cmocka_unit_test(test_wrong_types_400),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_get_unknown_404),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_list_without_filter),
        cmocka_unit_test(test_list_ota_status_filter),
        cmocka_unit_test(test_list_unknown_model_empty),
        cmocka_unit_test(test_list_bad_limit_400),
        cmocka_unit_test(test_list_bad_cursor_400),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_token_rotation),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
