/*
 * Integration: credentials (API keys with roles, device tokens) against the
 * real ota-server on a throwaway PostgreSQL cluster, and how they are stored.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "checks.h"

/* One request of a table: method, path and JSON body (NULL: none). */
typedef struct {
    const char *method, *path, *body;
} request_t;

/* Sends each of the `n` `reqs` with `token` (NULL: none): every one is an HTTP `want` error with code `code`. */
static void expect_error_each(const request_t *reqs, size_t n, const char *token, int want, const char *code)
{
    for (size_t i = 0; i < n; i++) {
        h_resp_t r = {0};
        h_request(&h_g_srv, reqs[i].method, reqs[i].path, token, reqs[i].body, &r);
        EXPECT_ERROR_AT(&r, want, code, reqs[i].method, reqs[i].path);
        h_resp_free(&r);
    }
}

/* Only characters that need no quoting inside an SQL string literal (base64url and the prefix). */
static bool sql_safe(const char *s)
{
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return false;
    return true;
}

/* Creates a fresh model; its id goes to `id` (32 bytes). */
static void make_model(char id[32])
{
    h_make_model(id, 32, "Auth test model");
}

/* Registers a device; its id and token are copied out. */
static void make_device(const char *model, char id[40], char token[128])
{
    char serial[40];
    h_unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s}", "serial", serial, "model", model);
    EXPECT_STATUS(&r, 201);
    CHECK(h_jstr(r.json, "id") != NULL && h_jstr(r.json, "token") != NULL, "%s", BODY(&r));
    snprintf(id, 40, "%s", h_jstr(r.json, "id"));
    snprintf(token, 128, "%s", h_jstr(r.json, "token"));
    h_resp_free(&r);
}

/* GET `path` with exactly the Authorization header line `auth` (NULL: none), outside the harness's Bearer helper. */
static void get_with_auth_header(const char *path, const char *auth, h_resp_t *out)
{
    memset(out, 0, sizeof *out);
    char url[256];
    snprintf(url, sizeof url, "%s%s", h_g_srv.base_url, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *headers = NULL;
    if (auth != NULL)
        headers = curl_slist_append(headers, auth);
    FILE *mem;
    char *buf = NULL;
    size_t len = 0;
    mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    CURLcode rc = curl_easy_perform(c);
    fclose(mem);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    else
        fprintf(stderr, "GET %s (%s): %s\n", path, auth != NULL ? auth : "no Authorization", curl_easy_strerror(rc));
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    out->body = buf;
    out->body_len = len;
    out->json = json_loadb(buf, len, 0, NULL);
}

/*
 * Runs a DO block that raises when some row of `table` holds `secret` in plain text (as text anywhere in the
 * row, or as the bytes of its hash column); returns psql's exit status (0: nowhere).
 */
static int sql_find_plain(const char *table, const char *hash_column, const char *secret)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN IF EXISTS (SELECT 1 FROM %s t WHERE strpos(t::text, '%s') > 0"
             " OR position(convert_to('%s', 'UTF8') in t.%s) > 0"
             " OR strpos(encode(t.%s, 'escape'), '%s') > 0)"
             " THEN RAISE EXCEPTION 'found in plain text in %s (an expected error when checking the check)'; END IF;"
             " END $$",
             table, secret, secret, hash_column, hash_column, secret, table);
    return h_pg_sql(&h_g_pg, sql);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_no_header_401(void **state)
{
    (void)state;
    char uuid[40], dev_path[96];
    h_random_uuid(uuid, sizeof uuid);
    snprintf(dev_path, sizeof dev_path, "/v1/devices/%s", uuid);
    const request_t cases[] = {
        {"GET", "/v1/models", NULL},  {"POST", "/v1/models", "{\"id\":\"x\",\"name\":\"x\"}"},
        {"GET", "/v1/devices", NULL}, {"POST", "/v1/devices", "{\"serial\":\"x\",\"model\":\"x\"}"},
        {"GET", dev_path, NULL},      {"DELETE", dev_path, NULL},
    };
    expect_error_each(cases, sizeof cases / sizeof cases[0], NULL, 401, "unauthorized");

    /* The probes are public. */
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

static void test_unknown_api_key_401(void **state)
{
    (void)state;
    char hex[44], unknown[64], long_key[400];
    h_random_hex(hex, 43);
    snprintf(unknown, sizeof unknown, "ota_%s", hex);
    memset(long_key, 'A', sizeof long_key - 1);
    memcpy(long_key, "ota_", 4);
    long_key[sizeof long_key - 1] = '\0';
    const char *const keys[] = {unknown, "garbage", "ota_", long_key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", "/v1/models", keys[i], NULL, 0, NULL, &r);
        CHECK(r.status == 401 && h_error_shape_ok(&r, "unauthorized"), "key \"%.40s...\": got %ld %s", keys[i],
              r.status, BODY(&r));
        h_resp_free(&r);
    }

    /* A near miss of the real key is unknown too. */
    char near[128];
    snprintf(near, sizeof near, "%s", h_g_srv.admin_key);
    size_t n = strlen(near);
    near[n - 1] = near[n - 1] == 'a' ? 'b' : 'a';
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/models", near, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

static void test_garbage_scheme_401(void **state)
{
    (void)state;
    char basic[256], token_scheme[256], bare[256], doubled[300];
    snprintf(basic, sizeof basic, "Authorization: Basic %s", "YWRtaW46YWRtaW4=");
    snprintf(token_scheme, sizeof token_scheme, "Authorization: Token %s", h_g_srv.admin_key);
    snprintf(bare, sizeof bare, "Authorization: %s", h_g_srv.admin_key);
    snprintf(doubled, sizeof doubled, "Authorization: BearerBearer %s", h_g_srv.admin_key);
    const char *const headers[] = {basic,
                                   token_scheme,
                                   bare,
                                   doubled,
                                   "Authorization: Bearer",
                                   "Authorization: Bearer  ",
                                   "Authorization: garbage"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        h_resp_t r = {0};
        get_with_auth_header("/v1/models", headers[i], &r);
        CHECK(r.status == 401 && h_error_shape_ok(&r, "unauthorized"), "<%s>: expected 401 unauthorized, got %ld %s",
              headers[i], r.status, BODY(&r));
        h_resp_free(&r);
    }

    /* The scheme name is case-insensitive (RFC 9110 section 11.1). */
    char lower[256];
    snprintf(lower, sizeof lower, "Authorization: bearer %s", h_g_srv.admin_key);
    h_resp_t r = {0};
    get_with_auth_header("/v1/models", lower, &r);
    CHECK(r.status == 200, "<%s>: got %ld %s", lower, r.status, BODY(&r));
    h_resp_free(&r);
}

static void test_viewer_reads_only(void **state)
{
    (void)state;
    char viewer[128], model[32], dev_id[40], dev_token[128], path[96], token_path[128];
    h_cli_api_key("viewer", viewer);
    make_model(model);
    make_device(model, dev_id, dev_token);
    snprintf(path, sizeof path, "/v1/devices/%s", dev_id);
    snprintf(token_path, sizeof token_path, "/v1/devices/%s/token", dev_id);
    char model_path[64];
    snprintf(model_path, sizeof model_path, "/v1/models/%s", model);

    const char *const reads[] = {"/v1/models", model_path, "/v1/devices", path};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", reads[i], viewer, NULL, 0, NULL, &r);
        CHECK(r.status == 200, "viewer GET %s: got %ld %s", reads[i], r.status, BODY(&r));
        h_resp_free(&r);
    }

    char new_model[32], serial[40], model_body[128], device_body[160];
    h_unique(new_model, sizeof new_model, "m-");
    h_unique(serial, sizeof serial, "SN-");
    snprintf(model_body, sizeof model_body, "{\"id\":\"%s\",\"name\":\"viewer\"}", new_model);
    snprintf(device_body, sizeof device_body, "{\"serial\":\"%s\",\"model\":\"%s\"}", serial, model);
    const request_t writes[] = {
        {"POST", "/v1/models", model_body},
        {"POST", "/v1/devices", device_body},
        {"DELETE", path, NULL},
        {"POST", token_path, NULL},
    };
    expect_error_each(writes, sizeof writes / sizeof writes[0], viewer, 403, "forbidden");

    /* Nothing was written: no model, the device is still there and its token still works. */
    h_resp_t r = {0};
    snprintf(model_path, sizeof model_path, "/v1/models/%s", new_model);
    h_http(&h_g_srv, "GET", model_path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", path, dev_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* GET /v1/whoami tells each API key its own role, and is no route for a device token or for no key. */
static void test_whoami_role(void **state)
{
    (void)state;
    char viewer[128], model[32], dev_id[40], dev_token[128];
    h_cli_api_key("viewer", viewer);
    make_model(model);
    make_device(model, dev_id, dev_token);
    const struct {
        const char *key, *role;
    } keys[] = {{h_g_srv.admin_key, "admin"}, {viewer, "viewer"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", "/v1/whoami", keys[i].key, NULL, 0, NULL, &r);
        EXPECT_STATUS(&r, 200);
        CHECK(h_streq(h_jstr(r.json, "role"), keys[i].role), "whoami: %s", BODY(&r));
        h_resp_free(&r);
    }
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/whoami", dev_token, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/v1/whoami", NULL, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

static void test_cli_admin_key_writes(void **state)
{
    (void)state;
    char admin[128], model[32];
    h_cli_api_key("admin", admin);
    h_unique(model, sizeof model, "m-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", admin, &r, "{s:s, s:s}", "id", model, "name", "By a CLI key");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

static void test_apikey_create_bad_role(void **state)
{
    (void)state;
    char out[512];
    const char *const args[] = {"apikey", "create", "--name", "bad-role", "--role", "superuser", NULL};
    int rc = h_run_server_cmd(&h_g_pg, args, NULL, out, sizeof out);
    CHECK(rc != 0, "apikey create --role superuser exited 0 and printed \"%s\"", out);
    CHECK(strstr(out, "ota_") == NULL, "a refused apikey create printed a key: \"%s\"", out);
}

static void test_device_token_own_device_only(void **state)
{
    (void)state;
    char model[32], a_id[40], a_token[128], b_id[40], b_token[128];
    make_model(model);
    make_device(model, a_id, a_token);
    make_device(model, b_id, b_token);
    char a_path[96], b_path[96], a_token_path[128];
    snprintf(a_path, sizeof a_path, "/v1/devices/%s", a_id);
    snprintf(b_path, sizeof b_path, "/v1/devices/%s", b_id);
    snprintf(a_token_path, sizeof a_token_path, "/v1/devices/%s/token", a_id);

    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", a_path, a_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "id"), a_id), "%s", BODY(&r));
    h_resp_free(&r);

    /* Another device's path with a valid token: forbidden, both ways. */
    h_http(&h_g_srv, "GET", b_path, a_token, NULL, 0, NULL, &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "GET", b_path);
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", a_path, b_token, NULL, 0, NULL, &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "GET", a_path);
    h_resp_free(&r);

    /* API-key-only routes. */
    char model_body[128];
    snprintf(model_body, sizeof model_body, "{\"id\":\"%s-x\",\"name\":\"by a device\"}", model);
    const request_t api_only[] = {
        {"GET", "/v1/devices", NULL}, {"GET", "/v1/models", NULL},  {"POST", "/v1/models", model_body},
        {"DELETE", a_path, NULL},     {"POST", a_token_path, NULL},
    };
    expect_error_each(api_only, sizeof api_only / sizeof api_only[0], a_token, 403, "forbidden");

    /* The device survived its own token's attempts. */
    h_http(&h_g_srv, "GET", a_path, a_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

static void test_unknown_device_token_401(void **state)
{
    (void)state;
    char model[32], id[40], token[128], path[96], hex[44], unknown[64];
    make_model(model);
    make_device(model, id, token);
    snprintf(path, sizeof path, "/v1/devices/%s", id);
    h_random_hex(hex, 43);
    snprintf(unknown, sizeof unknown, "otd_%s", hex);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, unknown, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/v1/devices", unknown, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

static void test_api_key_stored_hashed(void **state)
{
    (void)state;
    char key[128];
    h_cli_api_key("admin", key);
    CHECK(sql_safe(key), "key \"%s\" has characters outside base64url", key);

    /* The check itself works: a key's name is kept in plain text, and it finds that. */
    char name[40], out[512];
    h_unique(name, sizeof name, "plainname-");
    const char *const args[] = {"apikey", "create", "--name", name, "--role", "viewer", NULL};
    CHECK(h_run_server_cmd(&h_g_pg, args, NULL, out, sizeof out) == 0, "apikey create: %s", out);
    CHECK(sql_find_plain("api_keys", "key_hash", name) != 0, "the plain-text check did not find a plain name");

    CHECK(sql_find_plain("api_keys", "key_hash", key) == 0, "the API key is stored in plain text");
    CHECK(sql_find_plain("api_keys", "key_hash", key + 4) == 0, "the API key's secret part is stored in plain text");
    CHECK(sql_find_plain("api_keys", "key_hash", h_g_srv.admin_key) == 0,
          "the bootstrap API key is stored in plain text");
}

static void test_device_token_stored_hashed(void **state)
{
    (void)state;
    char model[32], id[40], token[128];
    make_model(model);
    make_device(model, id, token);
    CHECK(sql_safe(token), "token \"%s\" has characters outside base64url", token);

    /* The check itself works: the device's id is in its row in plain text. */
    CHECK(sql_find_plain("devices", "token_hash", id) != 0, "the plain-text check did not find the device id");

    CHECK(sql_find_plain("devices", "token_hash", token) == 0, "the device token is stored in plain text");
    CHECK(sql_find_plain("devices", "token_hash", token + 4) == 0,
          "the device token's secret part is stored in plain text");

    /* Rotation stores only the new token's hash, too. */
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/token", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    const char *rotated = h_jstr(r.json, "token");
    CHECK(rotated != NULL && sql_safe(rotated), "%s", BODY(&r));
    CHECK(sql_find_plain("devices", "token_hash", rotated) == 0, "the rotated token is stored in plain text");
    h_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_header_401),
        cmocka_unit_test(test_unknown_api_key_401),
        cmocka_unit_test(test_garbage_scheme_401),
        cmocka_unit_test(test_viewer_reads_only),
        cmocka_unit_test(test_whoami_role),
        cmocka_unit_test(test_cli_admin_key_writes),
        cmocka_unit_test(test_apikey_create_bad_role),
        cmocka_unit_test(test_device_token_own_device_only),
        cmocka_unit_test(test_unknown_device_token_401),
        cmocka_unit_test(test_api_key_stored_hashed),
        cmocka_unit_test(test_device_token_stored_hashed),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
