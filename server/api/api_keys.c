#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "core/secret.h"
#include "db/apikeys.h"
#include "http/respond.h"
#include "http/validate.h"

/*
 * API keys (admin only): GET, POST /v1/api-keys and DELETE /v1/api-keys/{id}.
 *
 * A key is revoked, never deleted: the audit log names the key behind each
 * write, and a revoked key's hash stays known so that it is refused (401).
 * Revoking takes effect on every instance at once, since every request with
 * an API key is checked against the database (http/auth.c, no cache). A key
 * may revoke itself: that request completes, the next one is refused.
 * Revoking a revoked key answers 204 again and changes nothing.
 */

/* The plain key, shown once in the creation answer; only its hash is kept. */
typedef struct create_state {
    char key[OTA_SECRET_MAX];
} create_state_t;

static bool result_ok(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return true;
    ota__respond_db_error(call, res);
    return false;
}

static void on_created(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    json_t *key = ota__json_col_json(res, 0, OTA_COL_ONLY);
    json_object_set_new(key, "key", json_string(((create_state_t *)call->state)->key));
    ota__respond_json(call, 201, key);
}

void ota__api_api_keys_create(ota_call_t *call)
{
    ota_validate_t v;
    ota__validate_init(&v, call->body);
    const char *name = ota__validate_string(&v, "name", true);
    const char *role = ota__validate_string(&v, "role", true);
    if (name != NULL && !ota__apikey_name_valid(name))
        ota__validate_fail(&v, "name", "must be 1 to 200 bytes");
    if (role != NULL && !ota__apikey_role_valid(role))
        ota__validate_fail(&v, "role", "must be admin or viewer");
    if (!ota__validate_done(&v, call))
        return;
    create_state_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    call->state = st;
    call->state_free = free;
    char id[OTA_UUID_LEN + 1], hash[OTA_SECRET_HASH_PG_LEN];
    if (ota__secret_new(OTA_API_KEY_PREFIX, st->key) != OTA_OK) {
        ota__respond_error(call, 500, "internal", NULL, "cannot make a key");
        return;
    }
    ota__uuid_new(id);
    ota__secret_hash_pg(st->key, strlen(st->key), hash);
    const char *params[] = {id, name, role, hash};
    ota__call_query(call, OTA_STMT_API_KEY_CREATE, params, on_created);
}

/* Keys are few (people and services), so the list is not paged. */
static void on_list(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    json_t *items = ota__json_checked(json_array());
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(items, ota__json_col_json(res, row, OTA_COL_ONLY));
    ota__respond_json(call, 200, json_pack("{s:o}", "items", items));
}

void ota__api_api_keys_list(ota_call_t *call)
{
    ota__call_query(call, OTA_STMT_API_KEY_LIST, NULL, on_list);
}

static void on_revoked(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    if (strcmp(PQgetvalue(res, 0, OTA_API_KEY_REVOKE_COL_FOUND), "0") == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such API key");
        return;
    }
    ota__respond_empty(call, 204);
}

void ota__api_api_keys_revoke(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_API_KEY_REVOKE, params, on_revoked);
}
