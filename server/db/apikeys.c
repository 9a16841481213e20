#include "db/apikeys.h"

#include <stdio.h>
#include <string.h>
#include "db/sync.h"
#include "core/ids.h"
#include "core/secret.h"

static ota_err_t insert_key(PGconn *conn, const char *name, const char *role, const char *key, const char *sql,
                            char *err, size_t errcap)
{
    char id[OTA_UUID_LEN + 1], hash[OTA_SECRET_HASH_PG_LEN];
    ota__uuid_new(id);
    ota__secret_hash_pg(key, strlen(key), hash);
    const char *params[] = {id, name, role, hash};
    PGresult *res = ota__db_exec_sync(conn, sql, 4, params, PGRES_COMMAND_OK, err, errcap);
    if (res == NULL)
        return OTA_ERR_IO;
    PQclear(res);
    return OTA_OK;
}

ota_err_t ota__apikey_create(PGconn *conn, const char *name, const char *role, char *key, size_t cap, char *err,
                             size_t errcap)
{
    if (strcmp(role, "admin") != 0 && strcmp(role, "viewer") != 0) {
        snprintf(err, errcap, "role must be admin or viewer");
        return OTA_ERR_INVALID;
    }
    if (name[0] == '\0' || strlen(name) > 200) {
        snprintf(err, errcap, "name must be 1 to 200 bytes");
        return OTA_ERR_INVALID;
    }
    char secret[OTA_SECRET_MAX];
    ota_err_t rc = ota__secret_new(OTA_API_KEY_PREFIX, secret);
    if (rc != OTA_OK)
        return rc;
    if (strlen(secret) + 1 > cap)
        return OTA_ERR_TOO_LARGE;
    rc = insert_key(conn, name, role, secret,
                    "INSERT INTO api_keys (id, name, role, key_hash) VALUES ($1::uuid, $2, $3, $4::bytea)", err,
                    errcap);
    if (rc == OTA_OK)
        memcpy(key, secret, strlen(secret) + 1);
    return rc;
}

ota_err_t ota__apikey_ensure_bootstrap(PGconn *conn, const char *key, char *err, size_t errcap)
{
    return insert_key(conn, "bootstrap", "admin", key,
                      "INSERT INTO api_keys (id, name, role, key_hash) VALUES ($1::uuid, $2, $3, $4::bytea) "
                      "ON CONFLICT (key_hash) DO UPDATE SET role = 'admin'",
                      err, errcap);
}
