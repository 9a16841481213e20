/*
 * Integration: API keys (GET, POST /v1/api-keys, DELETE /v1/api-keys/{id}, `ota-server apikey
 * create|list|revoke`) against two ota-server instances on one throwaway PostgreSQL: a key revoked through one
 * instance is refused by the other within 5 s; its last use is noted at most once a minute; the bootstrap key
 * stays revoked across a restart.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

/* How soon a revoked key must be refused everywhere (the contract). */
#define REVOKE_DEADLINE_MS 5000

static h_server_t second; /* instance B, on h_g_pg like h_g_srv (instance A) */

/* A key made through the API: its id and the plain key. */
typedef struct key {
    char id[40];
    char key[128];
} api_key_t;

/* POST /v1/api-keys on `srv` as its admin; checks the 201 and the contract's shape. */
static void create_key(h_server_t *srv, const char *name, const char *role, api_key_t *out)
{
    h_resp_t r = {0};
    h_json(srv, "POST", "/v1/api-keys", srv->admin_key, &r, "{s:s, s:s}", "name", name, "role", role);
    EXPECT_STATUS(&r, 201);
    time_t t;
    CHECK(h_is_uuid(h_jstr(r.json, "id")) && h_streq(h_jstr(r.json, "name"), name) &&
              h_streq(h_jstr(r.json, "role"), role) && h_rfc3339_utc(h_jstr(r.json, "created_at"), &t) &&
              h_jnull(r.json, "last_used_at") && h_jnull(r.json, "revoked_at"),
          "POST /v1/api-keys: %s", BODY(&r));
    const char *key = h_jstr(r.json, "key");
    CHECK(key != NULL && strncmp(key, "ota_", 4) == 0 && strlen(key) < sizeof out->key, "key: %s", BODY(&r));
    snprintf(out->id, sizeof out->id, "%s", h_jstr(r.json, "id"));
    snprintf(out->key, sizeof out->key, "%s", key);
    h_resp_free(&r);
}

/* GET /v1/whoami on `srv` with `key`: the status. */
static long whoami_status(h_server_t *srv, const char *key)
{
    h_resp_t r = {0};
    h_http(srv, "GET", "/v1/whoami", key, NULL, 0, NULL, &r);
    long status = r.status;
    h_resp_free(&r);
    return status;
}

/* The key `id` as GET /v1/api-keys shows it (caller decrefs), or NULL when it is not listed. */
static json_t *listed_key(const char *id)
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/api-keys", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items"), *found = NULL, *item;
    CHECK(json_is_array(items), "%s", BODY(&r));
    size_t i;
    json_array_foreach(items, i, item)
    {
        CHECK(json_object_get(item, "key") == NULL, "the list shows a plain key: %s", BODY(&r));
        if (h_streq(h_jstr(item, "id"), id))
            found = json_incref(item);
    }
    h_resp_free(&r);
    return found;
}

static void test_create_list_revoke_on_two_instances(void **state)
{
    (void)state;
    char name[40];
    api_key_t k;
    h_unique(name, sizeof name, "ops-");
    create_key(&h_g_srv, name, "admin", &k);
    CHECK(whoami_status(&second, k.key) == 200, "a new key is refused by instance B");

    json_t *item = listed_key(k.id);
    CHECK(item != NULL && h_streq(h_jstr(item, "name"), name) && h_streq(h_jstr(item, "role"), "admin") &&
              h_jnull(item, "revoked_at"),
          "the new key is not listed as made");
    json_decref(item);

    /* Revoked through A; B refuses it within 5 s (there is no cache: at once). */
    char path[96];
    snprintf(path, sizeof path, "/v1/api-keys/%s", k.id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    long waited = 0;
    while (whoami_status(&second, k.key) != 401) {
        CHECK(waited < REVOKE_DEADLINE_MS, "instance B still takes the key %d ms after it was revoked on A",
              REVOKE_DEADLINE_MS);
        h_sleep_ms(50);
        waited += 50;
    }
    fprintf(stderr, "revoked key refused by the other instance after %ld ms of polling\n", waited);
    h_http(&h_g_srv, "GET", "/v1/models", k.key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_http(&second, "POST", "/v1/models", k.key, "{}", 2, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);

    item = listed_key(k.id);
    CHECK(item != NULL, "a revoked key is no longer listed");
    char revoked_at[40];
    time_t t;
    CHECK(h_rfc3339_utc(h_jstr(item, "revoked_at"), &t), "revoked_at: %s", json_dumps(item, 0));
    snprintf(revoked_at, sizeof revoked_at, "%s", h_jstr(item, "revoked_at"));
    json_decref(item);

    /* Revoking again: 204, and its revocation time stays the first one. */
    h_sleep_ms(1100);
    h_http(&second, "DELETE", path, second.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    item = listed_key(k.id);
    CHECK(h_streq(h_jstr(item, "revoked_at"), revoked_at), "a second revoke moved revoked_at");
    json_decref(item);
}

static void test_revoke_unknown_or_malformed(void **state)
{
    (void)state;
    char id[40], path[96];
    h_random_uuid(id, sizeof id);
    snprintf(path, sizeof path, "/v1/api-keys/%s", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&h_g_srv, "DELETE", "/v1/api-keys/not-a-uuid", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
}

static void test_key_may_revoke_itself(void **state)
{
    (void)state;
    api_key_t k;
    create_key(&h_g_srv, "self-revoking", "admin", &k);
    char path[96];
    snprintf(path, sizeof path, "/v1/api-keys/%s", k.id);
    h_resp_t r = {0};
    h_http(&second, "DELETE", path, k.key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    CHECK(whoami_status(&h_g_srv, k.key) == 401 && whoami_status(&second, k.key) == 401,
          "a key that revoked itself still works");
}

static void test_viewer_and_anonymous_refused(void **state)
{
    (void)state;
    api_key_t viewer;
    create_key(&h_g_srv, "a viewer", "viewer", &viewer);
    char path[96];
    snprintf(path, sizeof path, "/v1/api-keys/%s", viewer.id);
    static const struct {
        const char *method, *body;
        int path_kind; /* 0: /v1/api-keys, 1: one key, 2: /v1/audit */
    } REQS[] = {
        {"GET", NULL, 0}, {"POST", "{\"name\": \"x\", \"role\": \"admin\"}", 0}, {"DELETE", NULL, 1}, {"GET", NULL, 2}};
    for (size_t i = 0; i < sizeof REQS / sizeof REQS[0]; i++) {
        const char *p = REQS[i].path_kind == 0 ? "/v1/api-keys" : REQS[i].path_kind == 1 ? path : "/v1/audit";
        h_resp_t r = {0};
        h_request(&h_g_srv, REQS[i].method, p, viewer.key, REQS[i].body, &r);
        EXPECT_ERROR_AT(&r, 403, "forbidden", REQS[i].method, p);
        h_resp_free(&r);
        h_request(&h_g_srv, REQS[i].method, p, NULL, REQS[i].body, &r);
        EXPECT_ERROR_AT(&r, 401, "unauthorized", REQS[i].method, p);
        h_resp_free(&r);
    }
    CHECK(whoami_status(&h_g_srv, viewer.key) == 200, "the viewer's 403s revoked it");
}

static void test_create_validation(void **state)
{
    (void)state;
    char long_name[202];
    memset(long_name, 'n', 201);
    long_name[201] = '\0';
    h_resp_t r = {0};
    h_request(&h_g_srv, "POST", "/v1/api-keys", h_g_srv.admin_key, "{}", &r);
    EXPECT_FIELD_ERROR(&r, "name");
    CHECK(h_field_error(&r, "role"), "no details.fields.role: %s", BODY(&r));
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", "/v1/api-keys", h_g_srv.admin_key, &r, "{s:s, s:s}", "name", "x", "role", "root");
    EXPECT_FIELD_ERROR(&r, "role");
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", "/v1/api-keys", h_g_srv.admin_key, &r, "{s:s, s:s}", "name", long_name, "role", "viewer");
    EXPECT_FIELD_ERROR(&r, "name");
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", "/v1/api-keys", h_g_srv.admin_key, &r, "{s:s, s:s}", "name", "", "role", "viewer");
    EXPECT_FIELD_ERROR(&r, "name");
    h_resp_free(&r);
    h_request(&h_g_srv, "POST", "/v1/api-keys", h_g_srv.admin_key, "{\"name\": 7, \"role\": \"viewer\"}", &r);
    EXPECT_STRICT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
}

/* last_used_at: set by the first use, then left alone for a minute, however many requests come. */
static void test_last_used_written_once_a_minute(void **state)
{
    (void)state;
    api_key_t k;
    create_key(&h_g_srv, "last-use", "viewer", &k);
    CHECK(whoami_status(&h_g_srv, k.key) == 200, "the new key is refused");
    /* Written just after the key's check, beside the request. */
    char sql[200];
    snprintf(sql, sizeof sql, "(SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = '%s')", k.id);
    CHECK(h_sql_eventually(sql), "the first use of a key did not write last_used_at");
    json_t *item = listed_key(k.id);
    char first[40];
    time_t t;
    CHECK(h_rfc3339_utc(h_jstr(item, "last_used_at"), &t), "last_used_at after a use: %s", json_dumps(item, 0));
    snprintf(first, sizeof first, "%s", h_jstr(item, "last_used_at"));
    json_decref(item);
    h_sleep_ms(1100); /* timestamps have whole seconds: a write now would show */
    for (int i = 0; i < 5; i++)
        CHECK(whoami_status(i % 2 ? &second : &h_g_srv, k.key) == 200, "the key is refused");
    h_sleep_ms(500); /* time for a write, were one sent beside these requests */
    item = listed_key(k.id);
    CHECK(h_streq(h_jstr(item, "last_used_at"), first), "last_used_at was written again within the minute: %s",
          json_dumps(item, 0));
    json_decref(item);
    /* A minute later (made so in the database), the next use writes it again. */
    snprintf(sql, sizeof sql, "UPDATE api_keys SET last_used_at = now() - interval '61 s' WHERE id = '%s'", k.id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "cannot age last_used_at");
    CHECK(whoami_status(&second, k.key) == 200, "the key is refused");
    snprintf(sql, sizeof sql, "(SELECT last_used_at > now() - interval '10 s' FROM api_keys WHERE id = '%s')", k.id);
    CHECK(h_sql_eventually(sql), "a use a minute after the last one did not write last_used_at");
}

/* One line of `apikey list` output for key `id`, parsed (caller decrefs), or NULL. */
static json_t *cli_listed(const char *out, const char *id)
{
    for (const char *line = out; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        json_t *j = json_loadb(line, len, 0, NULL);
        CHECK(json_is_object(j), "apikey list printed a line that is not a JSON object: %.*s", (int)len, line);
        if (h_streq(h_jstr(j, "id"), id))
            return j;
        json_decref(j);
        line = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

static void test_cli_create_list_revoke(void **state)
{
    (void)state;
    char key[128], out[65536], name[40];
    h_unique(name, sizeof name, "cli-");
    const char *const create[] = {"apikey", "create", "--name", name, "--role", "admin", NULL};
    CHECK(h_run_server_cmd(&h_g_pg, create, NULL, out, sizeof out) == 0, "apikey create: %s", out);
    out[strcspn(out, "\r\n")] = '\0';
    CHECK(strncmp(out, "ota_", 4) == 0 && strlen(out) < sizeof key, "apikey create printed \"%.200s\"", out);
    memcpy(key, out, strlen(out) + 1);

    /* Its id, as the key itself tells. */
    h_resp_t r = {0};
    h_http(&second, "GET", "/v1/whoami", key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "name"), name) && h_is_uuid(h_jstr(r.json, "api_key_id")), "%s", BODY(&r));
    char id[40];
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "api_key_id"));
    h_resp_free(&r);

    const char *const list[] = {"apikey", "list", NULL};
    CHECK(h_run_server_cmd(&h_g_pg, list, NULL, out, sizeof out) == 0, "apikey list: %s", out);
    CHECK(strstr(out, key) == NULL && strstr(out, key + 4) == NULL, "apikey list prints the plain key");
    json_t *line = cli_listed(out, id);
    CHECK(line != NULL && h_streq(h_jstr(line, "name"), name) && h_streq(h_jstr(line, "role"), "admin") &&
              h_jnull(line, "revoked_at"),
          "apikey list does not show the new key: %s", out);
    json_decref(line);

    const char *const revoke[] = {"apikey", "revoke", id, NULL};
    CHECK(h_run_server_cmd(&h_g_pg, revoke, NULL, out, sizeof out) == 0, "apikey revoke: %s", out);
    CHECK(whoami_status(&h_g_srv, key) == 401 && whoami_status(&second, key) == 401,
          "a key revoked by the command line still works");
    CHECK(h_run_server_cmd(&h_g_pg, revoke, NULL, out, sizeof out) == 0, "apikey revoke of a revoked key failed");
    CHECK(h_run_server_cmd(&h_g_pg, list, NULL, out, sizeof out) == 0, "apikey list: %s", out);
    line = cli_listed(out, id);
    time_t t;
    CHECK(line != NULL && h_rfc3339_utc(h_jstr(line, "revoked_at"), &t), "apikey list after revoke: %s", out);
    json_decref(line);

    char unknown[40];
    h_random_uuid(unknown, sizeof unknown);
    const char *const revoke_unknown[] = {"apikey", "revoke", unknown, NULL};
    CHECK(h_run_server_cmd(&h_g_pg, revoke_unknown, NULL, out, sizeof out) == 1, "apikey revoke of no key");
    const char *const revoke_bad[] = {"apikey", "revoke", "not-a-uuid", NULL};
    CHECK(h_run_server_cmd(&h_g_pg, revoke_bad, NULL, out, sizeof out) == 2, "apikey revoke not-a-uuid");
}

/* OTA_BOOTSTRAP_API_KEY is ensured at every start, but a revoked one is not brought back. */
static void test_revoked_bootstrap_key_stays_revoked(void **state)
{
    (void)state;
    h_server_t third;
    char env_key[200], hex[40];
    h_random_hex(hex, 32);
    snprintf(env_key, sizeof env_key, "OTA_BOOTSTRAP_API_KEY=ota_%s", hex);
    const char *env[] = {env_key, NULL};
    h_server_start(&third, &h_g_pg, env);
    CHECK(h_wait_ready(&third), "the third instance never became ready");
    h_resp_t r = {0};
    h_http(&third, "GET", "/v1/whoami", third.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    char id[40], path[96];
    snprintf(id, sizeof id, "%s", h_jstr(r.json, "api_key_id") ? h_jstr(r.json, "api_key_id") : "");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/api-keys/%s", id);
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    h_server_stop(&third);

    h_server_start(&third, &h_g_pg, env);
    bool ready = h_wait_ready(&third);
    long status = whoami_status(&third, third.admin_key);
    char log[400];
    snprintf(log, sizeof log, "grep -q 'OTA_BOOTSTRAP_API_KEY names a revoked key' '%s'", third.log_path);
    bool warned = system(log) == 0;
    h_server_stop(&third);
    CHECK(ready, "the restarted instance never became ready");
    CHECK(status == 401, "a revoked bootstrap key works again after a restart (%ld)", status);
    CHECK(warned, "the restart did not say that the bootstrap key is revoked");
}

static int setup(void **state)
{
    int rc = h_group_setup(state);
    if (rc == 0) {
        h_server_start(&second, &h_g_pg, NULL);
        rc = h_wait_ready(&second) ? 0 : -1;
    }
    return rc;
}

static int teardown(void **state)
{
    h_server_stop(&second);
    return h_group_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_list_revoke_on_two_instances),
        cmocka_unit_test(test_revoke_unknown_or_malformed),
        cmocka_unit_test(test_key_may_revoke_itself),
        cmocka_unit_test(test_viewer_and_anonymous_refused),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_last_used_written_once_a_minute),
        cmocka_unit_test(test_cli_create_list_revoke),
        cmocka_unit_test(test_revoked_bootstrap_key_stays_revoked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
