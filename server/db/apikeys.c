#include "db/apikeys.h"

#include <string.h>
#include "db/statements.h"
#include "db/sync.h"
#include "core/ids.h"
#include "core/secret.h"

bool ota__apikey_role_valid(const char *role)
{
    return strcmp(role, "admin") == 0 || strcmp(role, "viewer") == 0;
}

bool ota__apikey_name_valid(const char *name)
{
    size_t len = strlen(name);
    return len >= 1 && len <= OTA_API_KEY_NAME_MAX;
}

/* Runs statement `stmt` with `params` (an audited one's actor included) and expects rows. */
static PGresult *run(PGconn *conn, ota_stmt_t stmt, const char *const *params, char *err, size_t errcap)
{
    const ota_stmt_def_t *def = ota__stmt_def(stmt);
    return ota__db_exec_sync(conn, def->sql, def->nparams, params, PGRES_TUPLES_OK, err, errcap);
}

ota_err_t ota__apikey_create(PGconn *conn, const char *name, const char *role, char *key, size_t cap, char *err,
                             size_t errcap)
{
    if (!ota__apikey_role_valid(role)) {
        snprintf(err, errcap, "role must be admin or viewer");
        return OTA_ERR_INVALID;
    }
    if (!ota__apikey_name_valid(name)) {
        snprintf(err, errcap, "name must be 1 to %d bytes", OTA_API_KEY_NAME_MAX);
        return OTA_ERR_INVALID;
    }
    char secret[OTA_SECRET_MAX], id[OTA_UUID_LEN + 1], hash[OTA_SECRET_HASH_PG_LEN];
    ota_err_t rc = ota__secret_new(OTA_API_KEY_PREFIX, secret);
    if (rc != OTA_OK)
        return rc;
    if (strlen(secret) + 1 > cap)
        return OTA_ERR_TOO_LARGE;
    ota__uuid_new(id);
    ota__secret_hash_pg(secret, strlen(secret), hash);
    const char *params[] = {id, name, role, hash, NULL, OTA_APIKEY_CLI_ACTOR};
    PGresult *res = run(conn, OTA_STMT_API_KEY_CREATE, params, err, errcap);
    if (res == NULL)
        return OTA_ERR_IO;
    PQclear(res);
    memcpy(key, secret, strlen(secret) + 1);
    return OTA_OK;
}

ota_err_t ota__apikey_list(PGconn *conn, FILE *out, char *err, size_t errcap)
{
    PGresult *res = run(conn, OTA_STMT_API_KEY_LIST, NULL, err, errcap);
    if (res == NULL)
        return OTA_ERR_IO;
    for (int row = 0; row < PQntuples(res); row++)
        fprintf(out, "%s\n", PQgetvalue(res, row, OTA_COL_ONLY));
    PQclear(res);
    return OTA_OK;
}

ota_err_t ota__apikey_revoke(PGconn *conn, const char *id, bool *found, bool *revoked, char *err, size_t errcap)
{
    const char *params[] = {id, NULL, OTA_APIKEY_CLI_ACTOR};
    PGresult *res = run(conn, OTA_STMT_API_KEY_REVOKE, params, err, errcap);
    if (res == NULL)
        return OTA_ERR_IO;
    *found = strcmp(PQgetvalue(res, 0, OTA_API_KEY_REVOKE_COL_FOUND), "0") != 0;
    *revoked = strcmp(PQgetvalue(res, 0, OTA_API_KEY_REVOKE_COL_REVOKED), "0") != 0;
    PQclear(res);
    return OTA_OK;
}

/*
 * Re-ensured at every start, so a revoked bootstrap key must not come back: an operator who revoked a leaked
 * OTA_BOOTSTRAP_API_KEY would otherwise see it work again after the next restart or deploy. The upsert leaves a
 * revoked row as it is and returns no row for it.
 */
ota_err_t ota__apikey_ensure_bootstrap(PGconn *conn, const char *key, bool *revoked, char *err, size_t errcap)
{
    char id[OTA_UUID_LEN + 1], hash[OTA_SECRET_HASH_PG_LEN];
    ota__uuid_new(id);
    ota__secret_hash_pg(key, strlen(key), hash);
    const char *params[] = {id, hash};
    PGresult *res = ota__db_exec_sync(conn,
                                      "INSERT INTO api_keys (id, name, role, key_hash) "
                                      "VALUES ($1::uuid, 'bootstrap', 'admin', $2::bytea) "
                                      "ON CONFLICT (key_hash) DO UPDATE SET role = 'admin' "
                                      "WHERE api_keys.revoked_at IS NULL RETURNING id",
                                      2, params, PGRES_TUPLES_OK, err, errcap);
    if (res == NULL)
        return OTA_ERR_IO;
    *revoked = PQntuples(res) == 0;
    PQclear(res);
    return OTA_OK;
}
