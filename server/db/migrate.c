#include "db/migrate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "db/sync.h"
#include "core/log.h"
#include "ota/hex.h"

/* Any constant unique to this program: the advisory lock that serializes migrations. */
#define MIGRATION_LOCK_KEY "7305202611220001"

static const char CREATE_TABLES_SQL[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                        " version int PRIMARY KEY,"
                                        " name text NOT NULL,"
                                        " sha256 text NOT NULL,"
                                        " applied_at timestamptz NOT NULL DEFAULT now());"
                                        "CREATE TABLE IF NOT EXISTS schema_functions ("
                                        " name text PRIMARY KEY,"
                                        " sha256 text NOT NULL,"
                                        " applied_at timestamptz NOT NULL DEFAULT now())";

/* Every function of the name $1 in the current schema but trigger functions, as one DROP FUNCTION list (NULL: none). */
static const char OVERLOADS_SQL[] = "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p"
                                    " WHERE p.proname = $1 AND p.pronamespace = to_regnamespace(current_schema())"
                                    " AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype";

static const char CREATED_SQL[] = "SELECT 1 FROM pg_proc p"
                                  " WHERE p.proname = $1 AND p.pronamespace = to_regnamespace(current_schema())";

static const char RECORD_FUNCTION_SQL[] =
    "INSERT INTO schema_functions (name, sha256) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()";

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

/*
 * Ends the transaction of one file: COMMIT when `rc` is OTA_OK, else ROLLBACK, with the file named in `err`
 * (`prefix` `name` `suffix`). Returns how it ended.
 */
static ota_err_t end_transaction(PGconn *conn, ota_err_t rc, const char *prefix, const char *name,
                                 const char *suffix, char *err, size_t cap)
{
    if (rc == OTA_OK)
        rc = exec_ok(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc != OTA_OK) {
        char ignored[8];
        exec_ok(conn, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, ignored, sizeof(ignored));
        size_t used = strlen(err);
        snprintf(err + used, cap - used, " (in %s%s%s)", prefix, name, suffix);
    }
    return rc;
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
    return end_transaction(conn, rc, "migration ", m->name, "", err, cap);
}

static ota_err_t apply_pending(PGconn *conn, int *applied, char *err, size_t cap)
{
    ota_err_t rc = OTA_OK;
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

/* Sets *current to whether schema_functions records `f` with the checksum `sha`. */
static ota_err_t function_current(PGconn *conn, const ota_stored_function_t *f, const char *sha, bool *current,
                                  char *err, size_t cap)
{
    const char *params[] = {f->name};
    PGresult *res = ota__db_exec_sync(conn, "SELECT sha256 FROM schema_functions WHERE name = $1", 1, params,
                                      PGRES_TUPLES_OK, err, cap);
    if (res == NULL)
        return OTA_ERR_IO;
    *current = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), sha) == 0;
    PQclear(res);
    return OTA_OK;
}

/* Drops every function named `name` but trigger functions (see ota__migrate), so that its file may create it anew. */
static ota_err_t drop_overloads(PGconn *conn, const char *name, char *err, size_t cap)
{
    const char *params[] = {name};
    char *sql = NULL;
    ota_err_t rc = OTA_ERR_IO;
    PGresult *res = ota__db_exec_sync(conn, OVERLOADS_SQL, 1, params, PGRES_TUPLES_OK, err, cap);
    if (res == NULL)
        goto Exit;
    rc = OTA_OK;
    if (PQgetisnull(res, 0, 0))
        goto Exit;
    static const char DROP[] = "DROP FUNCTION ";
    size_t len = strlen(PQgetvalue(res, 0, 0));
    sql = malloc(sizeof DROP + len);
    if (sql == NULL) {
        snprintf(err, cap, "out of memory");
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    memcpy(sql, DROP, sizeof DROP - 1);
    memcpy(sql + sizeof DROP - 1, PQgetvalue(res, 0, 0), len + 1);
    rc = exec_ok(conn, sql, 0, NULL, PGRES_COMMAND_OK, err, cap);
Exit:
    free(sql);
    PQclear(res);
    return rc;
}

/* Fails unless the file just run created the function it is named after. */
static ota_err_t check_created(PGconn *conn, const ota_stored_function_t *f, char *err, size_t cap)
{
    const char *params[] = {f->name};
    PGresult *res = ota__db_exec_sync(conn, CREATED_SQL, 1, params, PGRES_TUPLES_OK, err, cap);
    if (res == NULL)
        return OTA_ERR_IO;
    bool created = PQntuples(res) > 0;
    PQclear(res);
    if (!created) {
        snprintf(err, cap, "the file does not create a function %s", f->name);
        return OTA_ERR_INVALID;
    }
    return OTA_OK;
}

static ota_err_t apply_function(PGconn *conn, const ota_stored_function_t *f, const char *sha, char *err, size_t cap)
{
    const char *params[] = {f->name, sha};
    ota_err_t rc = exec_ok(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc == OTA_OK)
        rc = drop_overloads(conn, f->name, err, cap);
    if (rc == OTA_OK)
        rc = exec_ok(conn, f->sql, 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc == OTA_OK)
        rc = check_created(conn, f, err, cap);
    if (rc == OTA_OK)
        rc = exec_ok(conn, RECORD_FUNCTION_SQL, 2, params, PGRES_COMMAND_OK, err, cap);
    return end_transaction(conn, rc, "migrations/functions/", f->name, ".sql", err, cap);
}

static ota_err_t apply_functions(PGconn *conn, int *applied, char *err, size_t cap)
{
    ota_err_t rc = OTA_OK;
    for (const ota_stored_function_t *f = ota__functions; rc == OTA_OK && f->name != NULL; f++) {
        char sha[65];
        bool current = false;
        sha256_hex(f->sql, sha);
        rc = function_current(conn, f, sha, &current, err, cap);
        if (rc != OTA_OK || current)
            continue;
        rc = apply_function(conn, f, sha, err, cap);
        if (rc == OTA_OK) {
            ota_log_info("applied function %s", f->name);
            (*applied)++;
        }
    }
    return rc;
}

ota_err_t ota__migrate(PGconn *conn, ota_migrate_counts_t *counts, char *err, size_t cap)
{
    counts->migrations = 0;
    counts->functions = 0;
    ota_err_t rc = exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", 0, NULL, PGRES_TUPLES_OK, err, cap);
    if (rc != OTA_OK)
        return rc;
    rc = exec_ok(conn, CREATE_TABLES_SQL, 0, NULL, PGRES_COMMAND_OK, err, cap);
    if (rc == OTA_OK)
        rc = apply_pending(conn, &counts->migrations, err, cap);
    if (rc == OTA_OK)
        rc = apply_functions(conn, &counts->functions, err, cap);
    char ignored[8];
    exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", 0, NULL, PGRES_TUPLES_OK, ignored,
            sizeof(ignored));
    return rc;
}
