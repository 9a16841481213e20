/*
 * Integration: credentials (API keys with roles, device tokens) against the
 * real ota-server on a throwaway PostgreSQL cluster, and how they are stored.
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
#include <curl/curl.h>

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

/* The same, naming the request in the message. */
#define EXPECT_ERROR_AT(r, want, code, method, path)                                                                   \
    CHECK((r)->status == (want) && error_shape_ok((r), (code)), "%s %s: expected %d %s, got %ld: %.2000s", (method),   \
          (path), (int)(want), (code), (r)->status, BODY(r))

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static void unique(char *out, size_t cap, const char *prefix)
{
    char hex[17];
    h_random_hex(hex, 16);
    snprintf(out, cap, "%s%s", prefix, hex);
}

static void random_uuid(char *out, size_t cap)
{
    char hex[33];
    h_random_hex(hex, 32);
    snprintf(out, cap, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15, hex + 18);
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

static void make_model(char *id)
{
    unique(id, 32, "m-");
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/models", g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", "Auth test model");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

/* Registers a device; its id and token are copied out. */
static void make_device(const char *model, char id[40], char token[128])
{
    char serial[40];
    unique(serial, sizeof serial, "SN-");
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/devices", g_srv.admin_key, &r, "{s:s, s:s}", "serial", serial, "model", model);
    EXPECT_STATUS(&r, 201);
    CHECK(jstr(r.json, "id") != NULL && jstr(r.json, "token") != NULL, "%s", BODY(&r));
    snprintf(id, 40, "%s", jstr(r.json, "id"));
    snprintf(token, 128, "%s", jstr(r.json, "token"));
    h_resp_free(&r);
}

/* `ota-server apikey create --role <role>`: the printed key, without its newline, into `key`. */
static void cli_api_key(const char *role, char key[128])
{
    char name[40], out[512];
    unique(name, sizeof name, "it-auth-");
    const char *const args[] = {"apikey", "create", "--name", name, "--role", role, NULL};
    int rc = h_run_server_cmd(&g_pg, args, NULL, out, sizeof out);
    CHECK(rc == 0, "apikey create --role %s exited %d; stdout: %s", role, rc, out);
    out[strcspn(out, "\r\n")] = '\0';
    CHECK(strncmp(out, "ota_", 4) == 0 && strlen(out) < 128, "apikey create printed \"%s\"", out);
    snprintf(key, 128, "%s", out);
}

/* GET `path` with exactly the Authorization header line `auth` (NULL: none), outside the harness's Bearer helper. */
static void get_with_auth_header(const char *path, const char *auth, h_resp_t *out)
{
    memset(out, 0, sizeof *out);
    char url[256];
    snprintf(url, sizeof url, "%s%s", g_srv.base_url, path);
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
    return h_pg_sql(&g_pg, sql);
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

static void test_no_header_401(void **state)
{
    (void)state;
    char uuid[40], dev_path[96];
    random_uuid(uuid, sizeof uuid);
    snprintf(dev_path, sizeof dev_path, "/v1/devices/%s", uuid);
    const struct {
        const char *method, *path, *body;
    } cases[] = {
        {"GET", "/v1/models", NULL},  {"POST", "/v1/models", "{\"id\":\"x\",\"name\":\"x\"}"},
        {"GET", "/v1/devices", NULL}, {"POST", "/v1/devices", "{\"serial\":\"x\",\"model\":\"x\"}"},
        {"GET", dev_path, NULL},      {"DELETE", dev_path, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp_t r = {0};
        const char *b = cases[i].body;
        h_http(&g_srv, cases[i].method, cases[i].path, NULL, b, b != NULL ? strlen(b) : 0, NULL, &r);
        EXPECT_ERROR_AT(&r, 401, "unauthorized", cases[i].method, cases[i].path);
        h_resp_free(&r);
    }

    /* The probes are public. */
    h_resp_t r = {0};
    h_http(&g_srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    h_http(&g_srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
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
        h_http(&g_srv, "GET", "/v1/models", keys[i], NULL, 0, NULL, &r);
        CHECK(r.status == 401 && error_shape_ok(&r, "unauthorized"), "key \"%.40s...\": got %ld %s", keys[i], r.status,
              BODY(&r));
        h_resp_free(&r);
    }

    /* A near miss of the real key is unknown too. */
    char near[128];
    snprintf(near, sizeof near, "%s", g_srv.admin_key);
    size_t n = strlen(near);
    near[n - 1] = near[n - 1] == 'a' ? 'b' : 'a';
    h_resp_t r = {0};
    h_http(&g_srv, "GET", "/v1/models", near, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

static void test_garbage_scheme_401(void **state)
{
    (void)state;
    char basic[256], token_scheme[256], bare[256], doubled[300];
    snprintf(basic, sizeof basic, "Authorization: Basic %s", "YWRtaW46YWRtaW4=");
    snprintf(token_scheme, sizeof token_scheme, "Authorization: Token %s", g_srv.admin_key);
    snprintf(bare, sizeof bare, "Authorization: %s", g_srv.admin_key);
    snprintf(doubled, sizeof doubled, "Authorization: BearerBearer %s", g_srv.admin_key);
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
        CHECK(r.status == 401 && error_shape_ok(&r, "unauthorized"), "<%s>: expected 401 unauthorized, got %ld %s",
              headers[i], r.status, BODY(&r));
        h_resp_free(&r);
    }

    /* The scheme name is case-insensitive (RFC 9110 section 11.1). */
    char lower[256];
    snprintf(lower, sizeof lower, "Authorization: bearer %s", g_srv.admin_key);
    h_resp_t r = {0};
    get_with_auth_header("/v1/models", lower, &r);
    CHECK(r.status == 200, "<%s>: got %ld %s", lower, r.status, BODY(&r));
    h_resp_free(&r);
}

static void test_viewer_reads_only(void **state)
{
    (void)state;
    char viewer[128], model[32], dev_id[40], dev_token[128], path[96], token_path[128];
    cli_api_key("viewer", viewer);
    make_model(model);
    make_device(model, dev_id, dev_token);
    snprintf(path, sizeof path, "/v1/devices/%s", dev_id);
    snprintf(token_path, sizeof token_path, "/v1/devices/%s/token", dev_id);
    char model_path[64];
    snprintf(model_path, sizeof model_path, "/v1/models/%s", model);

    const char *const reads[] = {"/v1/models", model_path, "/v1/devices", path};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        h_resp_t r = {0};
        h_http(&g_srv, "GET", reads[i], viewer, NULL, 0, NULL, &r);
        CHECK(r.status == 200, "viewer GET %s: got %ld %s", reads[i], r.status, BODY(&r));
        h_resp_free(&r);
    }

    char new_model[32], serial[40], model_body[128], device_body[160];
    unique(new_model, sizeof new_model, "m-");
    unique(serial, sizeof serial, "SN-");
    snprintf(model_body, sizeof model_body, "{\"id\":\"%s\",\"name\":\"viewer\"}", new_model);
    snprintf(device_body, sizeof device_body, "{\"serial\":\"%s\",\"model\":\"%s\"}", serial, model);
    const struct {
        const char *method, *path, *body;
    } writes[] = {
        {"POST", "/v1/models", model_body},
        {"POST", "/v1/devices", device_body},
        {"DELETE", path, NULL},
        {"POST", token_path, NULL},
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        h_resp_t r = {0};
        const char *b = writes[i].body;
        h_http(&g_srv, writes[i].method, writes[i].path, viewer, b, b != NULL ? strlen(b) : 0, NULL, &r);
        EXPECT_ERROR_AT(&r, 403, "forbidden", writes[i].method, writes[i].path);
        h_resp_free(&r);
    }

    /* Nothing was written: no model, the device is still there and its token still works. */
    h_resp_t r = {0};
    snprintf(model_path, sizeof model_path, "/v1/models/%s", new_model);
    h_http(&g_srv, "GET", model_path, g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&g_srv, "GET", path, dev_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

static void test_cli_admin_key_writes(void **state)
{
    (void)state;
    char admin[128], model[32];
    cli_api_key("admin", admin);
    unique(model, sizeof model, "m-");
    h_resp_t r = {0};
    h_json(&g_srv, "POST", "/v1/models", admin, &r, "{s:s, s:s}", "id", model, "name", "By a CLI key");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

static void test_apikey_create_bad_role(void **state)
{
    (void)state;
    char out[512];
    const char *const args[] = {"apikey", "create", "--name", "bad-role", "--role", "superuser", NULL};
    int rc = h_run_server_cmd(&g_pg, args, NULL, out, sizeof out);
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
    h_http(&g_srv, "GET", a_path, a_token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(jstr(r.json, "id") != NULL && strcmp(jstr(r.json, "id"), a_id) == 0, "%s", BODY(&r));
    h_resp_free(&r);

    /* Another device's path with a valid token: forbidden, both ways. */
    h_http(&g_srv, "GET", b_path, a_token, NULL, 0, NULL, &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "GET", b_path);
    h_resp_free(&r);
    h_http(&g_srv, "GET", a_path, b_token, NULL, 0, NULL, &r);
    EXPECT_ERROR_AT(&r, 403, "forbidden", "GET", a_path);
    h_resp_free(&r);

    /* API-key-only routes. */
    char model_body[128];
    snprintf(model_body, sizeof model_body, "{\"id\":\"%s-x\",\"name\":\"by a device\"}", model);
    const struct {
        const char *method, *path, *body;
    } api_only[] = {
        {"GET", "/v1/devices", NULL}, {"GET", "/v1/models", NULL},  {"POST", "/v1/models", model_body},
        {"DELETE", a_path, NULL},     {"POST", a_token_path, NULL},
    };
    for (size_t i = 0; i < sizeof api_only / sizeof api_only[0]; i++) {
        const char *b = api_only[i].body;
        h_http(&g_srv, api_only[i].method, api_only[i].path, a_token, b, b != NULL ? strlen(b) : 0, NULL, &r);
        EXPECT_ERROR_AT(&r, 403, "forbidden", api_only[i].method, api_only[i].path);
        h_resp_free(&r);
    }

    /* The device survived its own token's attempts. */
    h_http(&g_srv, "GET", a_path, a_token, NULL, 0, NULL, &r);
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
    h_http(&g_srv, "GET", path, unknown, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_http(&g_srv, "GET", "/v1/devices", unknown, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

static void test_api_key_stored_hashed(void **state)
{
    (void)state;
    char key[128];
    cli_api_key("admin", key);
    CHECK(sql_safe(key), "key \"%s\" has characters outside base64url", key);

    /* The check itself works: a key's name is kept in plain text, and it finds that. */
    char name[40], out[512];
    unique(name, sizeof name, "plainname-");
    const char *const args[] = {"apikey", "create", "--name", name, "--role", "viewer", NULL};
    CHECK(h_run_server_cmd(&g_pg, args, NULL, out, sizeof out) == 0, "apikey create: %s", out);
    CHECK(sql_find_plain("api_keys", "key_hash", name) != 0, "the plain-text check did not find a plain name");

    CHECK(sql_find_plain("api_keys", "key_hash", key) == 0, "the API key is stored in plain text");
    CHECK(sql_find_plain("api_keys", "key_hash", key + 4) == 0, "the API key's secret part is stored in plain text");
    CHECK(sql_find_plain("api_keys", "key_hash", g_srv.admin_key) == 0,
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
    h_http(&g_srv, "POST", path, g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    const char *rotated = jstr(r.json, "token");
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
        cmocka_unit_test(test_cli_admin_key_writes),
        cmocka_unit_test(test_apikey_create_bad_role),
        cmocka_unit_test(test_device_token_own_device_only),
        cmocka_unit_test(test_unknown_device_token_401),
        cmocka_unit_test(test_api_key_stored_hashed),
        cmocka_unit_test(test_device_token_stored_hashed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
