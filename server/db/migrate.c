#include "db/migrate.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include "db/sync.h"
#include "core/log.h"
#include "ota/hex.h"

/* Any constant unique to this program: the advisory lock that serializes migrations. */
#define MIGRATION_LOCK_KEY "7305202611220001"

static const char CREATE_TABLE_SQL[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version int PRIMARY KEY,"
                                       " name text NOT NULL,"
                                       " sha256 text NOT NULL,"
                                       " applied_at timestamptz NOT NULL DEFAULT now())";

static void sha256_hex(const char *text, char out[65])
{
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_Digest(text, strlen(text), digest, &len, EVP_sha256(), NULL);
    ota_hex_encode(digest, sizeof digest, out);
}

static ota_err_t exec_ok(PGconn *conn, const char *sql, int n, const char *const *params, ExecStatusType expect,
                         char *err, size_t cap)
{
    PGresult *res = ota__db_exec_sync(conn, sql, n, params, expect, err, cap);
    if (res == NULL)
        return OTA_ERR_IO;
    PQclear(res);
    return OTA_OK;
}

/* Sets *recorded to whether `m` is already applied; fails when its text changed since. */
static ota_err_t check_recorded(PGconn *conn, const ota_migration_t *m, const char *sha, bool *recorded, char *err,
                                size_t cap)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version};
    PGresult *res = ota__db_exec_sync(conn, "SELECT sha256 FROM schema_migrations WHERE version = $1::int", 1,
                                      params, PGRES_TUPLES_OK, err, cap);
    if (res == NULL)
        return OTA_ERR_IO;
    *recorded = PQntuples(res) == 1;
    bool changed = *recorded && strcmp(PQgetvalue(res, 0, 0), sha) != 0;
    PQclear(res);
    if (changed) {
        snprintf(err, cap, "migration %s was changed after it was applied (migrations are forward-only)", m->name);
        return OTA_ERR_INVALID;
    }
    return OTA_OK;
}

static ota_err_t apply_one(PGconn *conn, const ota_migration_t *m, const char *sha, char *err, size_t cap)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name, sha};
    ota_err_t rc = exec_ok(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc == OTA_OK)
        rc = exec_ok(conn, m->sql, 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc == OTA_OK)
        rc = exec_ok(conn, "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1::int, $2, $3)", 3,
                     params, PGRES_COMMAND_OK, err, cap);
    if (rc == OTA_OK)
        rc = exec_ok(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc != OTA_OK) {
        char ignored[8];
        exec_ok(conn, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, ignored, sizeof(ignored));
        size_t used = strlen(err);
        snprintf(err + used, cap - used, " (in migration %s)", m->name);
    }
    return rc;
}

static ota_err_t apply_pending(PGconn *conn, int *applied, char *err, size_t cap)
{
    ota_err_t rc = exec_ok(conn, CREATE_TABLE_SQL, 0, NULL, PGRES_COMMAND_OK, err, cap);
    for (const ota_migration_t *m = ota__migrations; rc == OTA_OK && m->name != NULL; m++) {
        char sha[65];
        bool recorded = false;
        sha256_hex(m->sql, sha);
        rc = check_recorded(conn, m, sha, &recorded, err, cap);
        if (rc != OTA_OK || recorded)
            continue;
        rc = apply_one(conn, m, sha, err, cap);
        if (rc == OTA_OK) {
            ota_log_info("applied migration %s", m->name);
            (*applied)++;
        }
    }
    return rc;
}

ota_err_t ota__migrate(PGconn *conn, int *applied, char *err, size_t cap)
{
    *applied = 0;
    ota_err_t rc = exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", 0, NULL, PGRES_TUPLES_OK, err, cap);
    if (rc != OTA_OK)
        return rc;
    rc = apply_pending(conn, applied, err, cap);
    char ignored[8];
    exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", 0, NULL, PGRES_TUPLES_OK, ignored,
            sizeof(ignored));
    return rc;
}
