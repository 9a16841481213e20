/*
 * Integration: device tags (POST and PATCH /v1/devices), the fleet filter on GET /v1/devices, bulk tagging
 * (POST /v1/devices/tags) and the fleet's numbers (GET /v1/fleet), against the real ota-server on a throwaway
 * PostgreSQL cluster. Every test makes its own model and devices, so none depends on another; the filters name
 * the test's model (or its serials) whenever what the rest of the fleet holds would change the answer.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

/* The server's fleet cache lives this long here, so that its expiry can be waited for. */
#define FLEET_CACHE_MS 1500

/* ---- helpers --------------------------------------------------------------------------------------------------- */

/* A device made by make_device. */
typedef struct dev {
    char id[40];
    char serial[64];
} tdev_t;

/* POST /v1/devices with `serial`, `model`, `firmware` (NULL: none) and `tags` (JSON text, NULL: none). */
static void post_device(const char *serial, const char *model, const char *firmware, const char *tags, h_resp_t *out)
{
    json_t *body = json_pack("{s:s, s:s}", "serial", serial, "model", model);
    if (firmware != NULL)
        json_object_set_new(body, "firmware_version", json_string(firmware));
    if (tags != NULL) {
        json_t *t = json_loads(tags, JSON_DECODE_ANY, NULL);
        CHECK(t != NULL, "test bug: tags %s", tags);
        json_object_set_new(body, "tags", t);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    h_request(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, text, out);
    free(text);
    json_decref(body);
}

/* Registers a device whose serial is `serial_prefix` and fresh hex digits (checks the 201). */
static void make_device(const char *model, const char *serial_prefix, const char *firmware, const char *tags,
                        tdev_t *out)
{
    h_resp_t r = {0};
    h_unique(out->serial, sizeof out->serial, serial_prefix);
    post_device(out->serial, model, firmware, tags, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(out->id, sizeof out->id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

/* The device's tags as compact JSON text equal `want` (e.g. ["a","b"]). */
static void expect_tags_json(json_t *device, const char *want, const char *context)
{
    char *got = json_dumps(json_object_get(device, "tags"), JSON_COMPACT | JSON_ENCODE_ANY);
    CHECK(got != NULL && strcmp(got, want) == 0, "%s: tags %s, want %s", context, got ? got : "(none)", want);
    free(got);
}

static void expect_device_tags(const char *id, const char *want)
{
    json_t *d = h_get_device(id);
    expect_tags_json(d, want, id);
    json_decref(d);
}

/* GET /v1/devices?<query> must list exactly `want` (device indexes into `devs`, newest first), on one page. */
static void expect_list(const char *query, const tdev_t *devs, const int *want, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "/v1/devices?limit=500&%s", query);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items) && json_array_size(items) == n, "%s: %zu items, want %zu: %.3000s", query,
          json_array_size(items), n, BODY(&r));
    for (size_t i = 0; i < n; i++)
        CHECK(h_streq(h_jstr(json_array_get(items, i), "id"), devs[want[i]].id),
              "%s: item %zu is %s, want device %d (%s)", query, i, h_jstr(json_array_get(items, i), "id"), want[i],
              devs[want[i]].id);
    CHECK(h_jnull(r.json, "next"), "%s: next is not null: %.500s", query, BODY(&r));
    h_resp_free(&r);
}

#define EXPECT_LIST(query, devs, ...)                                                                                  \
    do {                                                                                                               \
        const int want_[] = {__VA_ARGS__};                                                                             \
        expect_list((query), (devs), want_, sizeof want_ / sizeof want_[0]);                                           \
    } while (0)

/* GET /v1/devices?<query> lists nothing. */
static void expect_list_empty(const char *query)
{
    expect_list(query, NULL, NULL, 0);
}

static void device_path(char *out, size_t cap, const char *id)
{
    snprintf(out, cap, "/v1/devices/%s", id);
}

/* POST /v1/devices/tags with the JSON text `body`, as `key`. */
static void post_tags(const char *key, const char *body, h_resp_t *out)
{
    h_request(&h_g_srv, "POST", "/v1/devices/tags", key, body, out);
}

/* POST /v1/devices/tags must answer 200 {"matched": want}. */
static void expect_matched(const char *body, json_int_t want)
{
    h_resp_t r = {0};
    post_tags(h_g_srv.admin_key, body, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_jint(r.json, "matched") == want && json_object_size(r.json) == 1, "%s: %s, want matched %lld", body,
          BODY(&r), (long long)want);
    h_resp_free(&r);
}

/* ---- tags on registration -------------------------------------------------------------------------------------- */

static void test_create_with_tags(void **state)
{
    (void)state;
    char model[32], serial[40], path[96];
    h_make_model(model, sizeof model, "Tags");
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    post_device(serial, model, NULL, "[\"site:lyon\", \"eu\", \"beta\", \"eu\"]", &r);
    EXPECT_STATUS(&r, 201);
    /* Distinct, in byte order. */
    expect_tags_json(r.json, "[\"beta\",\"eu\",\"site:lyon\"]", "create");
    device_path(path, sizeof path, h_jstr(r.json, "id"));
    h_resp_t g = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &g);
    EXPECT_STATUS(&g, 200);
    expect_tags_json(g.json, "[\"beta\",\"eu\",\"site:lyon\"]", "get");
    h_resp_free(&g);
    h_resp_free(&r);

    /* Without tags: an empty list, in every answer. */
    tdev_t d;
    make_device(model, "SN-", NULL, NULL, &d);
    expect_device_tags(d.id, "[]");
    char query[128];
    snprintf(query, sizeof query, "/v1/devices?model=%s&limit=1", model);
    h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &g);
    EXPECT_STATUS(&g, 200);
    expect_tags_json(json_array_get(json_object_get(g.json, "items"), 0), "[]", "list");
    h_resp_free(&g);
}

/* `n` distinct tags t00, t01, ... as a JSON array text into `out`. */
static void many_tags(int n, char *out, size_t cap)
{
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s\"t%02d\"", i > 0 ? "," : "", i);
    snprintf(out + used, cap - used, "]");
}

static void test_create_bad_tags(void **state)
{
    (void)state;
    char model[32], serial[40], tags[1024];
    h_make_model(model, sizeof model, "Tags");
    static const char *const bad[] = {
        "[\"EU\"]",  "[\"\"]",     "[\"-eu\"]",
        "[\"e u\"]", "[\"eu/x\"]", "[\"a23456789012345678901234567890123456789012345678901234567890123x5\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_resp_t r = {0};
        h_unique(serial, sizeof serial, "SN-");
        post_device(serial, model, NULL, bad[i], &r);
        CHECK(r.status == 422 && h_field_error(&r, "tags"), "tags %s: %ld %s", bad[i], r.status, BODY(&r));
        h_resp_free(&r);
    }
    static const char *const wrong_type[] = {"\"eu\"", "[1]", "{}", "[[\"eu\"]]"};
    for (size_t i = 0; i < sizeof wrong_type / sizeof wrong_type[0]; i++) {
        h_resp_t r = {0};
        h_unique(serial, sizeof serial, "SN-");
        post_device(serial, model, NULL, wrong_type[i], &r);
        CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"), "tags %s: %ld %s", wrong_type[i], r.status,
              BODY(&r));
        h_resp_free(&r);
    }
    /* 64 characters is the longest tag; 32 distinct tags the most. */
    tdev_t d;
    make_device(model, "SN-", NULL, "[\"a234567890123456789012345678901234567890123456789012345678901234\"]", &d);
    many_tags(32, tags, sizeof tags);
    make_device(model, "SN-", NULL, tags, &d);
    many_tags(33, tags, sizeof tags);
    h_resp_t r = {0};
    h_unique(serial, sizeof serial, "SN-");
    post_device(serial, model, NULL, tags, &r);
    EXPECT_FIELD_ERROR(&r, "tags");
    h_resp_free(&r);
}

/* ---- PATCH /v1/devices/{id} ------------------------------------------------------------------------------------ */

static void patch(const char *id, const char *key, const char *body, h_resp_t *out)
{
    char path[96];
    device_path(path, sizeof path, id);
    h_request(&h_g_srv, "PATCH", path, key, body, out);
}

/* PATCH the device with `body`: 200 with the device, whose name is `name` (NULL: null) and tags `tags`. */
static void expect_patch(const char *id, const char *body, const char *name, const char *tags)
{
    h_resp_t r = {0};
    patch(id, h_g_srv.admin_key, body, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(name == NULL ? h_jnull(r.json, "name") : h_streq(h_jstr(r.json, "name"), name), "%s: name in %s", body,
          BODY(&r));
    expect_tags_json(r.json, tags, body);
    /* The answer is the device as a GET shows it. */
    json_t *d = h_get_device(id);
    CHECK(json_equal(d, r.json), "%s: PATCH answered %s, GET says %s", body, BODY(&r), json_dumps(d, JSON_COMPACT));
    json_decref(d);
    h_resp_free(&r);
}

static void test_patch(void **state)
{
    (void)state;
    char model[32], serial[40];
    h_make_model(model, sizeof model, "Patch");
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s, s:s, s:[s]}", "serial", serial, "model",
           model, "name", "Kitchen", "tags", "eu");
    EXPECT_STATUS(&r, 201);
    char id[40];
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);

    expect_patch(id, "{\"name\": \"Hall\"}", "Hall", "[\"eu\"]");
    expect_patch(id, "{\"tags\": [\"site:lyon\", \"beta\", \"beta\"]}", "Hall", "[\"beta\",\"site:lyon\"]");
    expect_patch(id, "{}", "Hall", "[\"beta\",\"site:lyon\"]");
    expect_patch(id, "{\"name\": \"Attic\", \"tags\": [\"eu\"]}", "Attic", "[\"eu\"]");
    /* null clears; [] too. */
    expect_patch(id, "{\"name\": null}", NULL, "[\"eu\"]");
    expect_patch(id, "{\"tags\": []}", NULL, "[]");
    expect_patch(id, "{\"tags\": [\"x\"], \"name\": \"Back\"}", "Back", "[\"x\"]");
    expect_patch(id, "{\"tags\": null}", "Back", "[]");
    /* No body at all changes nothing either. */
    patch(id, h_g_srv.admin_key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "name"), "Back"), "%s", BODY(&r));
    h_resp_free(&r);
}

static void test_patch_refused(void **state)
{
    (void)state;
    char model[32], uuid[40], tags[1024], long_name[260];
    h_make_model(model, sizeof model, "Patch");
    tdev_t d;
    make_device(model, "SN-", NULL, "[\"keep\"]", &d);
    h_resp_t r = {0};

    h_random_uuid(uuid, sizeof uuid);
    patch(uuid, h_g_srv.admin_key, "{\"name\": \"x\"}", &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_request(&h_g_srv, "PATCH", "/v1/devices/not-a-uuid", h_g_srv.admin_key, "{}", &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    many_tags(33, tags, sizeof tags);
    char body[1200];
    snprintf(body, sizeof body, "{\"tags\": %s}", tags);
    memset(long_name, 'n', 201);
    long_name[201] = '\0';
    char name_body[300];
    snprintf(name_body, sizeof name_body, "{\"name\": \"%s\"}", long_name);
    const struct {
        const char *body;
        int status;
        const char *field; /* NULL: a 400 */
    } cases[] = {
        {"{\"tags\": [\"Bad\"]}", 422, "tags"},
        {body, 422, "tags"},
        {name_body, 422, "name"},
        {"{\"tags\": \"eu\"}", 400, NULL},
        {"{\"tags\": [1]}", 400, NULL},
        {"{\"name\": 5}", 400, NULL},
        {"{\"name\": ", 400, NULL},
        {"[]", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        patch(d.id, h_g_srv.admin_key, cases[i].body, &r);
        CHECK(r.status == cases[i].status &&
                  h_error_shape_ok(&r, cases[i].status == 400 ? "bad_request" : "validation_failed") &&
                  (cases[i].field == NULL || h_field_error(&r, cases[i].field)),
              "PATCH %.80s: %ld %s", cases[i].body, r.status, BODY(&r));
        h_resp_free(&r);
    }
    expect_device_tags(d.id, "[\"keep\"]");

    /* Writes are the admin's. */
    char viewer[128];
    h_cli_api_key("viewer", viewer);
    patch(d.id, viewer, "{\"name\": \"x\"}", &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    patch(d.id, NULL, "{\"name\": \"x\"}", &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

/* ---- the fleet filter on GET /v1/devices ----------------------------------------------------------------------- */

static void test_list_filter_members(void **state)
{
    (void)state;
    char model[32], unique[24], prefix[40], query[512];
    h_make_model(model, sizeof model, "Filter");
    h_unique(unique, sizeof unique, "F");
    enum { N = 7 };
    tdev_t d[N];
    static const struct {
        const char *serial, *firmware, *tags;
    } spec[N] = {
        {"-a0-", "1.0.0", "[\"eu\", \"beta\"]"},
        {"-a1-", "1.1.0", "[\"eu\"]"},
        {"-b2-", "1.2.0-rc.1", "[\"us\", \"beta\"]"},
        {"-b3-", "1.2.0", "[]"},
        {"_x4-", NULL, "[\"site:lyon\"]"},
        {"Qx5-", "2.0.0+build.7", "[\"us\"]"},
        {"%z6-", "2.0.0", NULL},
    };
    for (int i = 0; i < N; i++) {
        snprintf(prefix, sizeof prefix, "%s%s", unique, spec[i].serial);
        make_device(model, prefix, spec[i].firmware, spec[i].tags, &d[i]);
    }

/* The query of this test's model and `fmt`; QS with one string argument for `fmt`. */
#define Q(fmt) (snprintf(query, sizeof query, "model=%s&" fmt, model), query)
#define QS(fmt, arg) (snprintf(query, sizeof query, "model=%s&" fmt, model, arg), query)
    EXPECT_LIST(Q("x=1"), d, 6, 5, 4, 3, 2, 1, 0);
    EXPECT_LIST(Q("tag=eu"), d, 1, 0);
    EXPECT_LIST(Q("tag=eu&tag=beta"), d, 0);
    EXPECT_LIST(Q("tag=beta&tag=eu&tag=beta"), d, 0);
    EXPECT_LIST(Q("tag_any=us&tag_any=site%%3Alyon"), d, 5, 4, 2);
    EXPECT_LIST(Q("tag=beta&tag_any=us"), d, 2);
    expect_list_empty(Q("tag=nobody-has-it"));
    /* Versions by precedence: 1.2.0-rc.1 is below 1.2.0, build metadata does not count. */
    EXPECT_LIST(Q("version=%%3C1.2.0"), d, 2, 1, 0);
    EXPECT_LIST(Q("version=%%3E%%3D1.1.0+%%3C1.2.0"), d, 2, 1);
    EXPECT_LIST(Q("version=%%3D1.2.0"), d, 3);
    EXPECT_LIST(Q("version=1.2.0"), d, 3);
    EXPECT_LIST(Q("version=v1.0.0"), d, 0);
    EXPECT_LIST(Q("version=%%3E1.2.0-rc.1"), d, 6, 5, 3);
    EXPECT_LIST(Q("version=%%3D2.0.0"), d, 6, 5);
    EXPECT_LIST(Q("version=%%3C%%3D1.1.0+%%3E%%3D1.1.0"), d, 1);
    expect_list_empty(Q("version=%%3E2.0.0"));
    expect_list_empty(Q("version=%%3C1.0.0+%%3E1.0.0"));
    /* Serial prefixes are literal: _ and %% are no wildcards. */
    EXPECT_LIST(QS("serial_prefix=%s-a", unique), d, 1, 0);
    EXPECT_LIST(QS("serial_prefix=%s-", unique), d, 3, 2, 1, 0);
    EXPECT_LIST(QS("serial_prefix=%s_", unique), d, 4);
    EXPECT_LIST(QS("serial_prefix=%s%%25", unique), d, 6);
    EXPECT_LIST(QS("serial_prefix=%s", d[5].serial), d, 5);
    expect_list_empty(QS("serial_prefix=%s-c", unique));
    /* Everything at once. */
    EXPECT_LIST(QS("tag_any=beta&tag_any=us&version=%%3C2.0.0&serial_prefix=%s-&ota_status=none", unique), d, 2, 0);
    expect_list_empty(Q("tag=eu&ota_status=pending"));
#undef Q
#undef QS
    /* Without the model: the serials alone are this test's. */
    snprintf(query, sizeof query, "serial_prefix=%s&tag=us", unique);
    EXPECT_LIST(query, d, 5, 2);
}

static void test_list_prerelease_order(void **state)
{
    (void)state;
    char model[32], query[256];
    h_make_model(model, sizeof model, "Prerelease");
    /* semver.org's own example of precedence, lowest first, and a build of the last. */
    static const char *const versions[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                           "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                           "1.0.0-rc.1",  "1.0.0",         "1.0.0+b.1"};
    enum { N = sizeof versions / sizeof versions[0] };
    tdev_t d[N];
    for (int i = 0; i < N; i++)
        make_device(model, "SN-", versions[i], NULL, &d[i]);
#define Q(range) (snprintf(query, sizeof query, "model=%s&version=%s", model, range), query)
    EXPECT_LIST(Q("%3E1.0.0-beta.2+%3C1.0.0"), d, 6, 5);
    EXPECT_LIST(Q("%3C1.0.0-alpha.beta"), d, 1, 0);
    EXPECT_LIST(Q("%3E%3D1.0.0-alpha.1+%3C%3D1.0.0-beta"), d, 3, 2, 1);
    EXPECT_LIST(Q("%3C1.0.0"), d, 6, 5, 4, 3, 2, 1, 0);
    EXPECT_LIST(Q("%3D1.0.0"), d, 8, 7);
    EXPECT_LIST(Q("%3E%3D1.0.0-rc.1"), d, 8, 7, 6);
    EXPECT_LIST(Q("1.0.0-beta.11"), d, 5);
#undef Q
}

static void test_list_filter_paging(void **state)
{
    (void)state;
    char model[32], query[512];
    h_make_model(model, sizeof model, "Paging");
    enum { N = 7 };
    tdev_t d[N];
    for (int i = 0; i < N; i++)
        make_device(model, "SN-", "1.0.0", (i % 3 == 2) ? "[\"other\"]" : "[\"page\", \"other\"]", &d[i]);
    /* Tagged "page": 0, 1, 3, 4 and 6; newest first, two a page (-1: none). */
    static const int want[][2] = {{6, 4}, {3, 1}, {0, -1}};
    char *cursor = NULL;
    for (size_t p = 0; p < 3; p++) {
        if (p == 0)
            snprintf(query, sizeof query, "/v1/devices?model=%s&tag=page&version=1.0.0&limit=2", model);
        else
            snprintf(query, sizeof query, "/v1/devices?model=%s&tag=page&version=1.0.0&limit=2&after=%s", model,
                     cursor);
        free(cursor);
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_STATUS(&r, 200);
        json_t *items = json_object_get(r.json, "items");
        size_t n = want[p][1] < 0 ? 1 : 2;
        CHECK(json_array_size(items) == n, "page %zu: %s", p + 1, BODY(&r));
        for (size_t i = 0; i < n; i++)
            CHECK(h_streq(h_jstr(json_array_get(items, i), "id"), d[want[p][i]].id), "page %zu item %zu: %s", p + 1, i,
                  BODY(&r));
        json_t *next = json_object_get(r.json, "next");
        CHECK(p < 2 ? json_is_string(next) : json_is_null(next), "page %zu: next in %s", p + 1, BODY(&r));
        cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        h_resp_free(&r);
    }
}

static void test_list_bad_params_400(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "tag=EU",
        "tag=",
        "tag=eu&tag=a%20b",
        "tag=%zz",
        "tag_any=-x",
        "tag_any=",
        "version=~1.2.0",
        "version=",
        "version=1.2",
        "version=%3E%3D+1.0.0",
        "version=1.0.0&version=2.0.0",
        "serial_prefix=",
        "serial_prefix=a&serial_prefix=b",
        "model=a&model=b",
        "ota_status=bogus",
        "ota_status=none&ota_status=none",
        /* Not UTF-8: these once stopped the server, building the filter's JSON. */
        "tag=t%EAag",
        "tag_any=%FF",
        "model=%FF",
        "serial_prefix=SN%C3",
        "after=not-a-cursor",
        "tag=t00&tag=t01&tag=t02&tag=t03&tag=t04&tag=t05&tag=t06&tag=t07&tag=t08&tag=t09&tag=t10&tag=t11&tag=t12&"
        "tag=t13&tag=t14&tag=t15&tag=t16&tag=t17&tag=t18&tag=t19&tag=t20&tag=t21&tag=t22&tag=t23&tag=t24&tag=t25&"
        "tag=t26&tag=t27&tag=t28&tag=t29&tag=t30&tag=t31&tag=t32",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "/v1/devices?%s", bad[i]);
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
        CHECK(r.status == 400 && h_error_shape_strict(&r, "bad_request"), "%s: %ld %s", path, r.status, BODY(&r));
        h_resp_free(&r);
    }
    /* 32 distinct tags are fine (no device has them all). */
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET",
           "/v1/devices?tag=t00&tag=t01&tag=t02&tag=t03&tag=t04&tag=t05&tag=t06&tag=t07&tag=t08&tag=t09&tag=t10&"
           "tag=t11&tag=t12&tag=t13&tag=t14&tag=t15&tag=t16&tag=t17&tag=t18&tag=t19&tag=t20&tag=t21&tag=t22&tag=t23&"
           "tag=t24&tag=t25&tag=t26&tag=t27&tag=t28&tag=t29&tag=t30&tag=t31&tag=t31",
           h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* ---- POST /v1/devices/tags ------------------------------------------------------------------------------------- */

static void test_bulk_tag(void **state)
{
    (void)state;
    char model[32], other[32], body[1024];
    h_make_model(model, sizeof model, "Bulk");
    h_make_model(other, sizeof other, "Bulk other");
    tdev_t a, b, c, o;
    make_device(model, "SN-", "1.0.0", "[\"x\"]", &a);
    make_device(model, "SN-", "1.1.0", "[\"x\", \"y\"]", &b);
    make_device(model, "SN-", "2.0.0", NULL, &c);
    make_device(other, "SN-", "1.0.0", "[\"x\"]", &o);

    snprintf(body, sizeof body,
             "{\"filter\": {\"model\": \"%s\", \"tags_all\": [\"x\"]}, \"add\": [\"z\", \"z\"], \"remove\": [\"y\"]}",
             model);
    expect_matched(body, 2);
    expect_device_tags(a.id, "[\"x\",\"z\"]");
    expect_device_tags(b.id, "[\"x\",\"z\"]");
    expect_device_tags(c.id, "[]");
    expect_device_tags(o.id, "[\"x\"]");
    /* Again: nothing changes, and the same devices match. */
    expect_matched(body, 2);
    expect_device_tags(b.id, "[\"x\",\"z\"]");

    /* Added tags merge into what a device has, in byte order. */
    snprintf(body, sizeof body, "{\"filter\": {\"model\": \"%s\", \"version\": \">=1.1.0\"}, \"add\": [\"a\"]}", model);
    expect_matched(body, 2);
    expect_device_tags(b.id, "[\"a\",\"x\",\"z\"]");
    expect_device_tags(c.id, "[\"a\"]");
    expect_device_tags(a.id, "[\"x\",\"z\"]");

    /* By ids, across models; an unknown id matches nothing. */
    char unknown[40];
    h_random_uuid(unknown, sizeof unknown);
    snprintf(body, sizeof body, "{\"filter\": {\"ids\": [\"%s\", \"%s\", \"%s\"]}, \"remove\": [\"x\"]}", a.id, o.id,
             unknown);
    expect_matched(body, 2);
    expect_device_tags(a.id, "[\"z\"]");
    expect_device_tags(o.id, "[]");
    expect_device_tags(b.id, "[\"a\",\"x\",\"z\"]");

    /* By serial prefix and tags_any. */
    snprintf(body, sizeof body,
             "{\"filter\": {\"serial_prefix\": \"%s\", \"tags_any\": [\"z\", \"q\"]}, \"add\": [\"solo\"]}", b.serial);
    expect_matched(body, 1);
    expect_device_tags(b.id, "[\"a\",\"solo\",\"x\",\"z\"]");

    /* Nothing matched is 200 with 0. */
    snprintf(body, sizeof body, "{\"filter\": {\"model\": \"%s\", \"tags_all\": [\"none\"]}, \"add\": [\"q\"]}", model);
    expect_matched(body, 0);
}

static void test_bulk_tag_whole_fleet(void **state)
{
    (void)state;
    char model[32], tag[40], body[256], expr[256];
    h_make_model(model, sizeof model, "Whole fleet");
    tdev_t d;
    make_device(model, "SN-", NULL, NULL, &d);
    h_unique(tag, sizeof tag, "nobody-");
    /* {} is every device: removing a tag nobody has matches them all and changes none. */
    snprintf(body, sizeof body, "{\"filter\": {}, \"remove\": [\"%s\"]}", tag);
    h_resp_t r = {0};
    post_tags(h_g_srv.admin_key, body, &r);
    EXPECT_STATUS(&r, 200);
    snprintf(expr, sizeof expr, "(SELECT count(*) FROM devices) = %lld", (long long)h_jint(r.json, "matched"));
    CHECK(h_jint(r.json, "matched") > 0 && h_sql_holds(expr), "%s: %s", expr, BODY(&r));
    h_resp_free(&r);
}

/* Five and six times U+00E9 in UTF-8. */
#define E5 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define E6 E5 "\xc3\xa9"

static void test_bulk_tag_refused(void **state)
{
    (void)state;
    char model[32], body[1400], tags[1024];
    h_make_model(model, sizeof model, "Bulk refused");
    tdev_t full, small;
    many_tags(31, tags, sizeof tags);
    make_device(model, "SN-", NULL, tags, &full);
    make_device(model, "SN-", NULL, "[\"t00\"]", &small);

    /* One device would have 33 tags: nothing changes, not even the other one. */
    snprintf(body, sizeof body, "{\"filter\": {\"model\": \"%s\"}, \"add\": [\"n1\", \"n2\"]}", model);
    h_resp_t r = {0};
    post_tags(h_g_srv.admin_key, body, &r);
    EXPECT_FIELD_ERROR(&r, "add");
    h_resp_free(&r);
    expect_device_tags(small.id, "[\"t00\"]");
    json_t *d = h_get_device(full.id);
    CHECK(json_array_size(json_object_get(d, "tags")) == 31, "%s", json_dumps(d, JSON_COMPACT));
    json_decref(d);
    /* 32 is still fine. */
    snprintf(body, sizeof body, "{\"filter\": {\"model\": \"%s\"}, \"add\": [\"n1\"]}", model);
    expect_matched(body, 2);

    const struct {
        const char *body;
        int status;
        const char *field; /* NULL: a 400 */
    } cases[] = {
        {"{\"add\": [\"x\"]}", 422, "filter"},
        {"{\"filter\": null, \"add\": [\"x\"]}", 422, "filter"},
        {"{\"filter\": {\"tag_all\": [\"x\"]}, \"add\": [\"x\"]}", 422, "filter.tag_all"},
        {"{\"filter\": {\"tags_all\": [\"X\"]}, \"add\": [\"x\"]}", 422, "filter.tags_all"},
        {"{\"filter\": {\"tags_any\": []}, \"add\": [\"x\"]}", 422, "filter.tags_any"},
        {"{\"filter\": {\"version\": \"~1\"}, \"add\": [\"x\"]}", 422, "filter.version"},
        {"{\"filter\": {\"ids\": [\"nope\"]}, \"add\": [\"x\"]}", 422, "filter.ids"},
        {"{\"filter\": {\"ids\": []}, \"add\": [\"x\"]}", 422, "filter.ids"},
        {"{\"filter\": {\"serial_prefix\": \"\"}, \"add\": [\"x\"]}", 422, "filter.serial_prefix"},
        {"{\"filter\": {\"model\": \"Not A Model\"}, \"add\": [\"x\"]}", 422, "filter.model"},
        /* An unknown member named by 60 bytes at most, cut between characters: a name cut inside one once lost the
         * problem, and the filter read as absent stopped the server. */
        {"{\"filter\": {\"a" E6 E6 E6 E6 E6 "\xc3\xa9\": 1}, \"add\": [\"x\"]}", 422, "filter.a" E6 E6 E6 E6 E5},
        {"{\"filter\": {}}", 422, "add"},
        {"{\"filter\": {}, \"add\": [], \"remove\": []}", 422, "add"},
        {"{\"filter\": {}, \"add\": [\"x\", \"y\"], \"remove\": [\"y\"]}", 422, "remove"},
        {"{\"filter\": {}, \"add\": [\"Bad\"]}", 422, "add"},
        {"{\"filter\": {}, \"remove\": [\"\"]}", 422, "remove"},
        {"{\"filter\": \"all\", \"add\": [\"x\"]}", 400, NULL},
        {"{\"filter\": {\"model\": 7}, \"add\": [\"x\"]}", 400, NULL},
        {"{\"filter\": {\"ids\": \"x\"}, \"add\": [\"x\"]}", 400, NULL},
        {"{\"filter\": {}, \"add\": \"x\"}", 400, NULL},
        {"{\"filter\": {}, \"remove\": [1]}", 400, NULL},
        {"{\"filter\": {}", 400, NULL},
        {"", 422, "filter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        post_tags(h_g_srv.admin_key, cases[i].body[0] != '\0' ? cases[i].body : NULL, &r);
        CHECK(r.status == cases[i].status &&
                  h_error_shape_strict(&r, cases[i].status == 400 ? "bad_request" : "validation_failed") &&
                  (cases[i].field == NULL || h_field_error(&r, cases[i].field)),
              "POST /v1/devices/tags %s: %ld %s", cases[i].body, r.status, BODY(&r));
        h_resp_free(&r);
    }

    char viewer[128];
    h_cli_api_key("viewer", viewer);
    post_tags(viewer, "{\"filter\": {}, \"add\": [\"x\"]}", &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    expect_device_tags(small.id, "[\"n1\",\"t00\"]");
}

/* A body whose filter names `real` (n_real ids) and random ids up to `total`; malloc'ed. */
static char *ids_body(const tdev_t *real, size_t n_real, size_t total)
{
    size_t cap = 128 + total * 40;
    char *body = malloc(cap);
    CHECK(body != NULL, "out of memory");
    size_t used = (size_t)snprintf(body, cap, "{\"add\": [\"many\"], \"filter\": {\"ids\": [");
    for (size_t i = 0; i < total; i++) {
        char uuid[40];
        h_random_uuid(uuid, sizeof uuid);
        used += (size_t)snprintf(body + used, cap - used, "%s\"%s\"", i > 0 ? "," : "", i < n_real ? real[i].id : uuid);
    }
    snprintf(body + used, cap - used, "]}}");
    return body;
}

static void test_bulk_tag_ten_thousand_ids(void **state)
{
    (void)state;
    char model[32];
    h_make_model(model, sizeof model, "Ids");
    tdev_t d[2];
    make_device(model, "SN-", NULL, NULL, &d[0]);
    make_device(model, "SN-", NULL, NULL, &d[1]);
    /* About 390 KB: more than an ordinary JSON body may be. */
    char *body = ids_body(d, 2, 10000);
    expect_matched(body, 2);
    free(body);
    expect_device_tags(d[0].id, "[\"many\"]");
    body = ids_body(d, 2, 10001);
    h_resp_t r = {0};
    post_tags(h_g_srv.admin_key, body, &r);
    EXPECT_FIELD_ERROR(&r, "filter.ids");
    h_resp_free(&r);
    free(body);

    /* Past 1 MiB, this route too answers 413. */
    size_t len = 1024 * 1024 + 1;
    body = malloc(len + 1);
    CHECK(body != NULL, "out of memory");
    memset(body, ' ', len);
    memcpy(body, "{\"filter\": {}, \"add\": [\"x\"]}", 28);
    body[len] = '\0';
    post_tags(h_g_srv.admin_key, body, &r);
    EXPECT_ERROR(&r, 413, "payload_too_large");
    h_resp_free(&r);
    free(body);
}

/* ---- GET /v1/fleet ---------------------------------------------------------------------------------------------- */

/* GET /v1/fleet?<query> as `key`: 200, with the contract's shape; the answer goes to `out`. */
static void get_fleet(const char *query, const char *key, h_resp_t *out)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/fleet%s%s", query[0] != '\0' ? "?" : "", query);
    h_http(&h_g_srv, "GET", path, key, NULL, 0, NULL, out);
    EXPECT_STATUS(out, 200);
    time_t as_of;
    CHECK(h_rfc3339_utc(h_jstr(out->json, "as_of"), &as_of) && as_of <= time(NULL) + 1 && as_of > time(NULL) - 30,
          "%s: as_of in %s", path, BODY(out));
    CHECK(h_jint(out->json, "devices") >= 0 && h_jint(out->json, "seen_last_24h") >= 0 &&
              json_is_array(json_object_get(out->json, "by_version")),
          "%s: %s", path, BODY(out));
    static const char *const statuses[] = {"none",   "pending",  "delivered",  "applied",
                                           "failed", "canceled", "rolled_back"};
    json_t *by_status = json_object_get(out->json, "by_ota_status");
    json_int_t sum = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        CHECK(json_is_integer(json_object_get(by_status, statuses[i])), "%s: by_ota_status.%s in %s", path, statuses[i],
              BODY(out));
        sum += h_jint(by_status, statuses[i]);
    }
    CHECK(json_object_size(by_status) == 7 && sum == h_jint(out->json, "devices"), "%s: by_ota_status in %s", path,
          BODY(out));
}

/* get_fleet once the snapshot the server holds is too old to be used: a count made now. */
static void get_fleet_fresh(const char *query, h_resp_t *out)
{
    h_sleep_ms(FLEET_CACHE_MS + 100);
    get_fleet(query, h_g_srv.admin_key, out);
}

/* Entry `i` of by_version is {model, version (NULL: null), devices}. */
static void expect_version(const h_resp_t *r, size_t i, const char *model, const char *version, json_int_t devices)
{
    json_t *e = json_array_get(json_object_get(r->json, "by_version"), i);
    CHECK(h_streq(h_jstr(e, "model"), model) &&
              (version == NULL ? h_jnull(e, "version") : h_streq(h_jstr(e, "version"), version)) &&
              h_jint(e, "devices") == devices && json_object_size(e) == 3,
          "by_version[%zu] should be %s %s %lld: %s", i, model, version ? version : "null", (long long)devices,
          BODY(r));
}

static void test_fleet_numbers(void **state)
{
    (void)state;
    char model[32], query[64], sql[256], assignment[40];
    h_make_model(model, sizeof model, "Fleet");
    tdev_t d[5];
    make_device(model, "SN-", "1.0.0", NULL, &d[0]);
    make_device(model, "SN-", "1.1.0", "[\"eu\"]", &d[1]);
    make_device(model, "SN-", "1.1.0", NULL, &d[2]);
    make_device(model, "SN-", "1.1.0-rc.1", NULL, &d[3]);
    make_device(model, "SN-", NULL, NULL, &d[4]);
    /* Seen: d0 just now, d1 two days ago, the others never. */
    snprintf(sql, sizeof sql, "UPDATE devices SET last_seen_at = now() WHERE id = '%s'", d[0].id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "%s", sql);
    snprintf(sql, sizeof sql, "UPDATE devices SET last_seen_at = now() - interval '2 days' WHERE id = '%s'", d[1].id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "%s", sql);
    /* One assignment: d3 is pending. */
    h_release_t rel;
    h_make_release(model, "2.0.0", 1000, &rel);
    h_device_t hd = {0};
    snprintf(hd.id, sizeof hd.id, "%s", d[3].id);
    snprintf(hd.model, sizeof hd.model, "%s", model);
    h_assign_ok(&hd, &rel, assignment);
    h_release_free(&rel);

    h_resp_t r = {0};
    snprintf(query, sizeof query, "model=%s", model);
    get_fleet_fresh(query, &r);
    CHECK(h_jint(r.json, "devices") == 5 && h_jint(r.json, "seen_last_24h") == 1, "%s", BODY(&r));
    json_t *by_status = json_object_get(r.json, "by_ota_status");
    CHECK(h_jint(by_status, "none") == 4 && h_jint(by_status, "pending") == 1, "%s", BODY(&r));
    /* Newest first by precedence (1.1.0-rc.1 is below 1.1.0), devices without a version last. */
    CHECK(json_array_size(json_object_get(r.json, "by_version")) == 4, "%s", BODY(&r));
    expect_version(&r, 0, model, "1.1.0", 2);
    expect_version(&r, 1, model, "1.1.0-rc.1", 1);
    expect_version(&r, 2, model, "1.0.0", 1);
    expect_version(&r, 3, model, NULL, 1);
    h_resp_free(&r);
}

static void test_fleet_cached(void **state)
{
    (void)state;
    char model[32], query[64];
    h_make_model(model, sizeof model, "Fleet cache");
    tdev_t d;
    make_device(model, "SN-", "1.0.0", NULL, &d);
    snprintf(query, sizeof query, "model=%s", model);
    h_resp_t first = {0}, again = {0}, later = {0};
    get_fleet_fresh(query, &first);
    CHECK(h_jint(first.json, "devices") == 1, "%s", BODY(&first));

    /* A device made now is not counted until the snapshot has aged out: the same answer, to the byte. */
    make_device(model, "SN-", "1.0.0", NULL, &d);
    get_fleet(query, h_g_srv.admin_key, &again);
    CHECK(strcmp(first.body, again.body) == 0, "cached %s, then %s", BODY(&first), BODY(&again));

    get_fleet_fresh(query, &later);
    CHECK(h_jint(later.json, "devices") == 2, "%s", BODY(&later));
    expect_version(&later, 0, model, "1.0.0", 2);
    CHECK(strcmp(h_jstr(later.json, "as_of"), h_jstr(first.json, "as_of")) >= 0, "as_of went back: %s then %s",
          BODY(&first), BODY(&later));
    h_resp_free(&first);
    h_resp_free(&again);
    h_resp_free(&later);
}

static void test_fleet_whole_and_unknown(void **state)
{
    (void)state;
    char model[32], query[64], expr[128];
    h_make_model(model, sizeof model, "Fleet whole");
    tdev_t d;
    make_device(model, "SN-", "9.9.9", NULL, &d);

    /* No model: every device, each version under its model. */
    h_resp_t r = {0};
    get_fleet_fresh("", &r);
    snprintf(expr, sizeof expr, "(SELECT count(*) FROM devices) = %lld", (long long)h_jint(r.json, "devices"));
    CHECK(h_sql_holds(expr), "%s: %s", expr, BODY(&r));
    json_int_t sum = 0, ours = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.json, "by_version"), i, e)
    {
        sum += h_jint(e, "devices");
        if (h_streq(h_jstr(e, "model"), model))
            ours++, expect_version(&r, i, model, "9.9.9", 1);
    }
    CHECK(sum == h_jint(r.json, "devices") && ours == 1, "by_version in %s", BODY(&r));
    h_resp_free(&r);

    /* A model without devices, or none of that name: zeros, every status there. */
    h_unique(model, sizeof model, "nomodel-");
    snprintf(query, sizeof query, "model=%s", model);
    get_fleet(query, h_g_srv.admin_key, &r);
    CHECK(h_jint(r.json, "devices") == 0 && h_jint(r.json, "seen_last_24h") == 0 &&
              json_array_size(json_object_get(r.json, "by_version")) == 0,
          "%s", BODY(&r));
    h_resp_free(&r);
}

static void test_fleet_access_and_params(void **state)
{
    (void)state;
    char viewer[128];
    h_cli_api_key("viewer", viewer);
    h_resp_t r = {0};
    get_fleet("", viewer, &r);
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/v1/fleet", NULL, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    static const char *const bad[] = {"/v1/fleet?model=a&model=b", "/v1/fleet?model=%zz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_http(&h_g_srv, "GET", bad[i], h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_ERROR(&r, 400, "bad_request");
        h_resp_free(&r);
    }
    h_http(&h_g_srv, "POST", "/v1/fleet", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 405, "method_not_allowed");
    h_resp_free(&r);
}

/* One GET /v1/fleet from a thread of its own; the answer goes to `arg` (a h_resp_t). */
static void *get_fleet_thread(void *arg)
{
    h_http(&h_g_srv, "GET", "/v1/fleet", h_g_srv.admin_key, NULL, 0, NULL, arg);
    return NULL;
}

/* Holds the devices table locked for a second, so that a count started meanwhile waits. */
static void *lock_devices_thread(void *arg)
{
    (void)arg;
    h_pg_sql(&h_g_pg, "BEGIN; LOCK TABLE devices IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1); COMMIT");
    return NULL;
}

static void test_fleet_requests_wait_for_one_count(void **state)
{
    (void)state;
    enum { N = 8 };
    pthread_t locker, threads[N];
    h_resp_t r[N];
    memset(r, 0, sizeof r);
    /* The snapshot has aged out and the count that the first request starts is held up: every other request,
       on either server thread, waits for that count and is answered from it. */
    h_sleep_ms(FLEET_CACHE_MS + 100);
    CHECK(pthread_create(&locker, NULL, lock_devices_thread, NULL) == 0, "pthread_create");
    h_sleep_ms(300);
    for (int i = 0; i < N; i++)
        CHECK(pthread_create(&threads[i], NULL, get_fleet_thread, &r[i]) == 0, "pthread_create");
    for (int i = 0; i < N; i++)
        pthread_join(threads[i], NULL);
    pthread_join(locker, NULL);
    for (int i = 0; i < N; i++) {
        EXPECT_STATUS(&r[i], 200);
        CHECK(strcmp(r[i].body, r[0].body) == 0, "answers differ:\n%s\n%s", BODY(&r[0]), BODY(&r[i]));
    }
    for (int i = 0; i < N; i++)
        h_resp_free(&r[i]);
}

/* ---- at scale -------------------------------------------------------------------------------------------------- */

/* The plan of one device page with `filter` (JSON text) uses an index, never a scan of the whole table. */
static void expect_indexed(const char *filter)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "DO $$ DECLARE line text; plan text := ''; BEGIN "
             "FOR line IN EXECUTE 'EXPLAIN ' || format('SELECT d.* FROM devices d WHERE %%s AND (d.created_at, d.id) "
             "< (''infinity'', ''ffffffff-ffff-ffff-ffff-ffffffffffff'') ORDER BY d.created_at DESC, d.id DESC "
             "LIMIT 51', ota_fleet_where('%s')) LOOP plan := plan || line || E'\\n'; END LOOP; "
             "IF plan LIKE '%%Seq Scan%%' OR plan NOT LIKE '%%Index%%' THEN "
             "RAISE EXCEPTION 'not indexed: %%', plan; END IF; END $$",
             filter);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "the plan for %s scans the table (psql printed it above)", filter);
}

static void test_filters_indexed_at_scale(void **state)
{
    (void)state;
    char model[32], sql[1024], filter[256];
    h_make_model(model, sizeof model, "Scale");
    /* 100,000 devices: common and rare tags, ten versions, serials by number. */
    snprintf(sql, sizeof sql,
             "INSERT INTO devices (id, serial, model_id, token_hash, firmware_version, tags) "
             "SELECT gen_random_uuid(), '%s-' || lpad(i::text, 6, '0'), '%s', sha256(('%s' || i)::bytea), "
             "'3.' || (i %% 10) || '.0', CASE WHEN i %% 1000 = 0 THEN '{scale-rare,scale-common}'::text[] "
             "ELSE '{scale-common}' END FROM generate_series(1, 100000) AS i",
             model, model, model);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "loading the fleet failed");
    CHECK(h_pg_sql(&h_g_pg, "ANALYZE devices") == 0, "ANALYZE failed");

    expect_indexed("{}");
    expect_indexed("{\"tags_all\": [\"scale-rare\"]}");
    expect_indexed("{\"tags_all\": [\"scale-common\"]}");
    expect_indexed("{\"tags_any\": [\"scale-rare\", \"nobody\"]}");
    expect_indexed("{\"version\": \"=3.4.0\"}");
    expect_indexed("{\"version\": \">=3.1.0 <3.3.0\", \"tags_all\": [\"scale-rare\"]}");
    snprintf(filter, sizeof filter, "{\"serial_prefix\": \"%s-0012\"}", model);
    expect_indexed(filter);
    snprintf(filter, sizeof filter, "{\"model\": \"%s\", \"ota_status\": \"pending\"}", model);
    expect_indexed(filter);
    expect_indexed("{\"ids\": [\"00000000-0000-4000-8000-000000000001\"]}");

    /* And through the API, the answer is what the filter says. */
    char query[256];
    snprintf(query, sizeof query, "/v1/devices?model=%s&tag=scale-rare&version=%%3E%%3D3.0.0&limit=500", model);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 100, "%.300s", BODY(&r));
    h_resp_free(&r);
}

/* h_group_setup, with a fleet cache short enough to wait out. */
static int setup(void **state)
{
    (void)state;
    char cache[64];
    snprintf(cache, sizeof cache, "OTA_FLEET_CACHE_MS=%d", FLEET_CACHE_MS);
    const char *const env[] = {cache, NULL};
    h_pg_start(&h_g_pg);
    h_server_start(&h_g_srv, &h_g_pg, env);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_with_tags),
        cmocka_unit_test(test_create_bad_tags),
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_patch_refused),
        cmocka_unit_test(test_list_filter_members),
        cmocka_unit_test(test_list_prerelease_order),
        cmocka_unit_test(test_list_filter_paging),
        cmocka_unit_test(test_list_bad_params_400),
        cmocka_unit_test(test_bulk_tag),
        cmocka_unit_test(test_bulk_tag_whole_fleet),
        cmocka_unit_test(test_bulk_tag_refused),
        cmocka_unit_test(test_bulk_tag_ten_thousand_ids),
        cmocka_unit_test(test_fleet_numbers),
        cmocka_unit_test(test_fleet_cached),
        cmocka_unit_test(test_fleet_whole_and_unknown),
        cmocka_unit_test(test_fleet_access_and_params),
        cmocka_unit_test(test_fleet_requests_wait_for_one_count),
        /* Last: it loads 100,000 devices into the shared database. */
        cmocka_unit_test(test_filters_indexed_at_scale),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
