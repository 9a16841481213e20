/*
 * Integration: the server's commands (`migrate`, `apikey create`) and its
 * shutdown, on throwaway PostgreSQL clusters.
 *
 * `migrate` run by several processes at once on a fresh database must apply
 * each migration and each function file exactly once (the advisory lock), and
 * again later must do nothing. A function file whose checksum differs from
 * the recorded one is applied again, also when the function's result type or
 * arguments changed; a numbered migration whose text changed is refused. The
 * files expected are those in the source tree's migrations/ folder, found
 * from this file's own path (__FILE__ is absolute in a CMake build).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"

#define MAX_MIGRATIONS 512
#define MAX_FUNCTIONS 128

/* The source tree's migrations/ folder, or "" when __FILE__ does not say where it is. */
static void source_dir(char *out, size_t cap)
{
    const char *file = __FILE__;
    const char *marker = strstr(file, "test/integration/it_migrate.c");
    if (file[0] != '/' || marker == NULL)
        out[0] = '\0';
    else
        snprintf(out, cap, "%.*smigrations", (int)(marker - file), file);
}

/* The names of the function files (migrations/functions/NAME.sql) as a SQL array literal; how many, or -1. */
static int source_functions(char *array, size_t cap)
{
    char dir[512];
    source_dir(dir, sizeof dir);
    if (strlen(dir) + sizeof "/functions" > sizeof dir)
        return -1;
    memcpy(dir + strlen(dir), "/functions", sizeof "/functions");
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    size_t len = (size_t)snprintf(array, cap, "ARRAY[");
    struct dirent *e;
    while ((e = readdir(d)) != NULL && len < cap) {
        size_t nlen = strlen(e->d_name);
        if (nlen < 5 || strcmp(e->d_name + nlen - 4, ".sql") != 0 || n >= MAX_FUNCTIONS)
            continue;
        len += (size_t)snprintf(array + len, cap - len, "%s'%.*s'", n ? "," : "", (int)(nlen - 4), e->d_name);
        n++;
    }
    closedir(d);
    if (len < cap)
        len += (size_t)snprintf(array + len, cap - len, "]::text[]");
    return len < cap ? n : -1;
}

/* The text of migrations/functions/`name`.sql into `out` (0-terminated); false when it cannot be read whole. */
static bool read_function_file(const char *name, char *out, size_t cap)
{
    char path[640];
    source_dir(path, sizeof path);
    size_t used = strlen(path);
    snprintf(path + used, sizeof path - used, "/functions/%s.sql", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = fread(out, 1, cap - 1, f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    out[n] = '\0';
    return whole;
}

/* The versions of the migrations in the source tree (NNNN_name.sql), ascending; how many, or -1 when not found. */
static int source_migrations(int versions[MAX_MIGRATIONS], char *dir_out, size_t cap)
{
    source_dir(dir_out, cap);
    if (dir_out[0] == '\0')
        return -1;
    DIR *d = opendir(dir_out);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (end == e->d_name || v <= 0 || n >= MAX_MIGRATIONS)
            continue;
        versions[n++] = (int)v;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of files */
        for (int j = i; j > 0 && versions[j - 1] > versions[j]; j--) {
            int t = versions[j];
            versions[j] = versions[j - 1];
            versions[j - 1] = t;
        }
    return n;
}

/*
 * A DO block that raises unless schema_migrations holds exactly one row per source migration (same versions,
 * no duplicates, nothing else) and the schema's tables exist; psql's exit status (0: all good).
 */
static int check_schema_migrations(h_pg_t *pg, const int *versions, int n)
{
    char list[MAX_MIGRATIONS * 12 + 16];
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", i ? "," : "", versions[i]);
    char sql[8192 + sizeof list * 2];
    snprintf(sql, sizeof sql,
             "DO $$ DECLARE expected int[] := ARRAY[%s]::int[]; BEGIN"
             " IF (SELECT count(*) FROM schema_migrations) <> %d THEN"
             "   RAISE EXCEPTION 'schema_migrations has %% rows, want %d', (SELECT count(*) FROM schema_migrations);"
             " END IF;"
             " IF (SELECT count(DISTINCT version) FROM schema_migrations) <> (SELECT count(*) FROM schema_migrations)"
             " THEN RAISE EXCEPTION 'duplicate versions in schema_migrations'; END IF;"
             " IF EXISTS (SELECT 1 FROM unnest(expected) v WHERE v NOT IN (SELECT version FROM schema_migrations))"
             "   OR EXISTS (SELECT 1 FROM schema_migrations WHERE NOT (version = ANY (expected)))"
             " THEN RAISE EXCEPTION 'schema_migrations versions differ from the source tree''s'; END IF;"
             " PERFORM 'models'::regclass, 'devices'::regclass, 'api_keys'::regclass;"
             " END $$",
             list, n, n);
    return h_pg_sql(pg, sql);
}

/*
 * A DO block that raises unless schema_functions holds exactly one row per function file, each with a SHA-256,
 * and each file's function exists; psql's exit status (0: all good).
 */
static int check_schema_functions(h_pg_t *pg)
{
    char names[MAX_FUNCTIONS * 72];
    int n = source_functions(names, sizeof names);
    if (n <= 0)
        return -1;
    char sql[1024 + sizeof names * 2];
    snprintf(sql, sizeof sql,
             "DO $$ DECLARE expected text[] := %s; BEGIN"
             " IF (SELECT count(*) FROM schema_functions) <> %d"
             "   OR EXISTS (SELECT 1 FROM unnest(expected) f WHERE f NOT IN (SELECT name FROM schema_functions))"
             " THEN RAISE EXCEPTION 'schema_functions does not list the %d function files'; END IF;"
             " IF EXISTS (SELECT 1 FROM schema_functions WHERE sha256 !~ '^[0-9a-f]{64}$')"
             " THEN RAISE EXCEPTION 'a schema_functions row has no SHA-256'; END IF;"
             " IF EXISTS (SELECT 1 FROM unnest(expected) f WHERE NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = f))"
             " THEN RAISE EXCEPTION 'a function file''s function is missing'; END IF;"
             " END $$",
             names, n, n);
    return h_pg_sql(pg, sql);
}

/* `ota-server migrate` against `pg` (NULL: none) with the environment additions `env` (or NULL); its exit status. */
static int run_migrate(h_pg_t *pg, const char *const *env)
{
    char out[4096];
    const char *const args[] = {"migrate", NULL};
    return h_run_server_cmd(pg, args, env, out, sizeof out);
}

/* `ota-server migrate` against `pg` in `children` processes started together; how many failed. */
static int run_migrate_concurrently(h_pg_t *pg, int children)
{
    enum { MAX_CHILDREN = 16 };
    CHECK(children <= MAX_CHILDREN, "at most %d children", MAX_CHILDREN);
    /* Start all children together: each waits for the gate to open (the pipe's write end to close). */
    int gate[2];
    CHECK(pipe(gate) == 0, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pids[MAX_CHILDREN];
    for (int i = 0; i < children; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0, "fork: %s", strerror(errno));
        if (pids[i] == 0) {
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
            }
            int rc = run_migrate(pg, NULL);
            _exit(rc < 0 ? 99 : rc); /* never run the test program's exit handlers in a child */
        }
    }
    close(gate[0]);
    close(gate[1]);

    int failures = 0;
    for (int i = 0; i < children; i++) {
        int status = 0;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "concurrent migrate #%d: wait status %#x (exit %d)\n", i, (unsigned)status,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            failures++;
        }
    }
    return failures;
}

/* h_group_teardown, but the server stopped by SIGTERM must also exit 0. */
static int group_teardown(void **state)
{
    (void)state;
    int status = h_server_stop(&h_g_srv);
    h_pg_destroy(&h_g_pg);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the server stopped by SIGTERM ended with wait status %#x\n", (unsigned)status);
        return -1;
    }
    return 0;
}

/* ---- tests ---------------------------------------------------------------- */

/* Guards the checks below: a raising DO block must make h_pg_sql fail. */
static void test_sql_check_detects_failure(void **state)
{
    (void)state;
    CHECK(h_pg_sql(&h_g_pg, "DO $$ BEGIN RAISE EXCEPTION 'expected error: checking the check'; END $$") != 0,
          "h_pg_sql reported success for a statement that raised");
    CHECK(h_pg_sql(&h_g_pg, "DO $$ BEGIN PERFORM 1; END $$") == 0, "h_pg_sql failed on a harmless statement");
}

static void test_concurrent_migrate_fresh_database(void **state)
{
    (void)state;
    enum { CHILDREN = 4 };
    int versions[MAX_MIGRATIONS];
    char dir[512];
    int n = source_migrations(versions, dir, sizeof dir);
    CHECK(n > 0, "no migrations found from __FILE__ (%s)", __FILE__);

    h_pg_t fresh;
    h_pg_start(&fresh);

    /* Nothing there yet. */
    CHECK(h_pg_sql(&fresh, "DO $$ BEGIN IF to_regclass('schema_migrations') IS NOT NULL THEN"
                           " RAISE EXCEPTION 'not fresh'; END IF; END $$") == 0,
          "the new cluster already has schema_migrations");

    int failures = run_migrate_concurrently(&fresh, CHILDREN);
    CHECK(failures == 0, "%d of %d concurrent `ota-server migrate` runs failed", failures, CHILDREN);

    CHECK(check_schema_migrations(&fresh, versions, n) == 0,
          "after concurrent migrate: schema_migrations does not list each of the %d migrations in %s exactly once", n,
          dir);
    CHECK(check_schema_functions(&fresh) == 0,
          "after concurrent migrate: schema_functions does not list each function file exactly once");

    /* Idempotent: again, twice, nothing changes. */
    for (int i = 0; i < 2; i++) {
        int rc = run_migrate(&fresh, NULL);
        CHECK(rc == 0, "migrate run again exited %d", rc);
    }
    CHECK(check_schema_migrations(&fresh, versions, n) == 0,
          "after migrate again: schema_migrations does not list each migration exactly once");
    CHECK(check_schema_functions(&fresh) == 0,
          "after migrate again: schema_functions does not list each function file exactly once");

    /* Every function file changed since it was applied: two instances starting at once both succeed. */
    CHECK(h_pg_sql(&fresh, "UPDATE schema_functions SET sha256 = 'stale'") == 0, "marking the functions stale");
    failures = run_migrate_concurrently(&fresh, 2);
    CHECK(failures == 0, "%d of 2 concurrent `ota-server migrate` runs over changed function files failed", failures);
    CHECK(check_schema_functions(&fresh) == 0,
          "after concurrent migrate over changed function files: schema_functions is not up to date");

    /* The migrated database serves. */
    h_server_t srv;
    h_server_start(&srv, &fresh, NULL);
    CHECK(h_wait_ready(&srv), "the server on the fresh database never became ready");
    char hex[17];
    h_random_hex(hex, 16);
    h_resp_t r = {0};
    h_json(&srv, "POST", "/v1/models", srv.admin_key, &r, "{s:s, s:s}", "id", hex, "name", "Fresh");
    if (r.status != 201)
        h_server_dump_log(&srv);
    CHECK(r.status == 201, "model create on the concurrently migrated database: %ld %.2000s", r.status, BODY(&r));
    h_resp_free(&r);
    int status = h_server_stop(&srv);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server on the fresh database: wait status %#x",
          (unsigned)status);

    h_pg_destroy(&fresh);
}

static void test_migrate_idempotent(void **state)
{
    (void)state;
    int versions[MAX_MIGRATIONS];
    char dir[512];
    int n = source_migrations(versions, dir, sizeof dir);
    CHECK(n > 0, "no migrations found from __FILE__ (%s)", __FILE__);

    /* The server migrated at start; migrate finds nothing to do, every time. */
    for (int i = 0; i < 2; i++) {
        int rc = run_migrate(&h_g_pg, NULL);
        CHECK(rc == 0, "migrate on a migrated database exited %d", rc);
    }
    CHECK(check_schema_migrations(&h_g_pg, versions, n) == 0,
          "schema_migrations does not list each of the %d migrations in %s exactly once", n, dir);
    CHECK(check_schema_functions(&h_g_pg) == 0, "schema_functions does not list each function file exactly once");

    /* And the running server still serves. */
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/models", h_g_srv.admin_key, NULL, 0, NULL, &r);
    CHECK(r.status == 200, "GET /v1/models after migrate: %ld %.2000s", r.status, BODY(&r));
    h_resp_free(&r);
}

/* Saves each function file's record and its functions' pg_proc row versions under the name `probe`. */
static void functions_probe_save(const char *probe)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; DROP TABLE IF EXISTS %s; CREATE TABLE %s AS "
             "SELECT f.name, f.sha256, f.applied_at, (SELECT string_agg(p.xmin::text, ',' ORDER BY p.oid) "
             "FROM pg_proc p WHERE p.proname = f.name) AS xmins FROM schema_functions f",
             probe, probe);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
}

/* An unchanged function file is not applied again: neither its record nor its function is rewritten. */
static void test_unchanged_function_not_reapplied(void **state)
{
    (void)state;
    functions_probe_save("functions_before");
    CHECK(run_migrate(&h_g_pg, NULL) == 0, "migrate on a migrated database failed");
    CHECK(h_sql_holds("(SELECT count(*) FROM functions_before) > 0 AND NOT EXISTS ("
                      "SELECT name, sha256, applied_at, (SELECT string_agg(p.xmin::text, ',' ORDER BY p.oid) "
                      "FROM pg_proc p WHERE p.proname = f.name) FROM schema_functions f "
                      "EXCEPT SELECT name, sha256, applied_at, xmins FROM functions_before)"),
          "migrate applied an unchanged function file again (schema_functions or pg_proc rows were rewritten)");
}

/* A function file whose recorded checksum differs is applied again: the file's body replaces the database's, and
 * the record is updated. */
static void test_changed_function_reapplied(void **state)
{
    (void)state;
    /* An older ota_ts in the database, recorded with another checksum. */
    CHECK(h_pg_sql(&h_g_pg, "CREATE OR REPLACE FUNCTION ota_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE "
                            "AS $$ SELECT 'stale' $$; UPDATE schema_functions SET sha256 = 'stale', "
                            "applied_at = now() - interval '1 hour' WHERE name = 'ota_ts'") == 0,
          "making ota_ts stale");
    CHECK(h_sql_holds("ota_ts(now()) = 'stale'"), "the stale ota_ts is not in place");
    CHECK(run_migrate(&h_g_pg, NULL) == 0, "migrate over a changed function file failed");

    CHECK(h_sql_holds("ota_ts('2020-01-02 03:04:05.6+00') = '2020-01-02T03:04:05Z'"),
          "ota_ts was not applied again: it still answers %s", "stale");
    static char text[16384];
    CHECK(read_function_file("ota_ts", text, sizeof text), "cannot read migrations/functions/ota_ts.sql");
    CHECK(strstr(text, "$ota_file$") == NULL, "ota_ts.sql holds the test's quote");
    static char sql[sizeof text + 512]; /* h_sql_holds' own $$ quotes would end at the file's */
    snprintf(sql, sizeof sql,
             "DO $check$ BEGIN IF NOT coalesce((SELECT sha256 = encode(sha256(convert_to($ota_file$%s$ota_file$, "
             "'UTF8')), 'hex') AND applied_at > now() - interval '10 minutes' FROM schema_functions "
             "WHERE name = 'ota_ts'), false) THEN RAISE EXCEPTION 'does not hold'; END IF; END $check$",
             text);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0,
          "the schema_functions row of ota_ts does not hold the file's SHA-256 and a new time");
}

/* A changed function file may change the function's result type and arguments: the file's function replaces
 * every function of its name, whatever its signature, and the server's heartbeat works with it. */
static void test_changed_function_signature(void **state)
{
    (void)state;
    CHECK(h_pg_sql(&h_g_pg,
                   "DROP FUNCTION ota_heartbeat; DROP TYPE ota_heartbeat_result; "
                   "CREATE FUNCTION ota_heartbeat(p_device uuid, p_token_hash bytea, OUT outcome text) "
                   "LANGUAGE sql AS $$ SELECT 'stale' $$; "
                   "CREATE FUNCTION ota_heartbeat(p_device uuid) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$; "
                   "UPDATE schema_functions SET sha256 = 'stale' WHERE name = 'ota_heartbeat'") == 0,
          "putting an ota_heartbeat of another shape in place");
    CHECK(run_migrate(&h_g_pg, NULL) == 0, "migrate over an ota_heartbeat of another result type failed");
    CHECK(h_sql_holds("(SELECT count(*) = 1 AND bool_and(prorettype = 'ota_heartbeat_result'::regtype) "
                      "FROM pg_proc WHERE proname = 'ota_heartbeat')"),
          "after migrate, ota_heartbeat is not the file's one function returning ota_heartbeat_result");
    CHECK(h_sql_holds("(SELECT sha256 <> 'stale' FROM schema_functions WHERE name = 'ota_heartbeat')"),
          "the schema_functions row of ota_heartbeat was not updated");

    char model[32];
    h_device_t dev;
    h_make_model(model, sizeof model, "functions");
    h_make_device(model, "1.0.0", &dev);
    h_resp_t r = {0};
    h_heartbeat_ok(&h_g_srv, &dev, "{\"firmware_version\": \"1.0.0\"}", &r);
    h_resp_free(&r);
}

/* A numbered migration whose text differs from what was applied is refused, and nothing else is done. */
static void test_changed_migration_refused(void **state)
{
    (void)state;
    CHECK(h_pg_sql(&h_g_pg, "SET client_min_messages = warning; DROP TABLE IF EXISTS migration_sha; "
                            "CREATE TABLE migration_sha AS SELECT version, sha256 FROM schema_migrations; "
                            "UPDATE schema_migrations SET sha256 = 'changed' WHERE version = 1; "
                            "UPDATE schema_functions SET sha256 = 'stale' WHERE name = 'ota_ts_us'") == 0,
          "marking migration 1 changed");
    int rc = run_migrate(&h_g_pg, NULL);
    bool functions_untouched = h_sql_holds("(SELECT sha256 = 'stale' FROM schema_functions WHERE name = 'ota_ts_us')");
    CHECK(h_pg_sql(&h_g_pg, "UPDATE schema_migrations m SET sha256 = s.sha256 FROM migration_sha s "
                            "WHERE m.version = s.version") == 0,
          "restoring schema_migrations");
    CHECK(rc > 0, "migrate over a changed numbered migration exited %d (want a failure status)", rc);
    CHECK(functions_untouched, "migrate applied function files after refusing a changed migration");
    CHECK(run_migrate(&h_g_pg, NULL) == 0, "migrate after restoring the migration's checksum failed");
    CHECK(check_schema_functions(&h_g_pg) == 0, "schema_functions is not up to date after the restored migrate");
}

static void test_migrate_without_database_fails(void **state)
{
    (void)state;
    const char *const env[] = {"OTA_DATABASE_URL=host=/nonexistent-ota-socket-dir port=1 dbname=ota connect_timeout=2",
                               NULL};
    int rc = run_migrate(NULL, env);
    CHECK(rc > 0, "migrate against no database exited %d (want a failure status)", rc);
}

static void test_apikey_create_prints_key(void **state)
{
    (void)state;
    static const char *const roles[] = {"admin", "viewer"};
    for (size_t i = 0; i < 2; i++) {
        char name[40], hex[17], out[1024];
        h_random_hex(hex, 16);
        snprintf(name, sizeof name, "it-migrate-%s", hex);
        const char *const args[] = {"apikey", "create", "--name", name, "--role", roles[i], NULL};
        int rc = h_run_server_cmd(&h_g_pg, args, NULL, out, sizeof out);
        CHECK(rc == 0, "apikey create --role %s exited %d", roles[i], rc);

        /* One line, the key alone. */
        size_t len = strlen(out);
        CHECK(len > 5 && out[len - 1] == '\n', "output is not one line: \"%s\"", out);
        CHECK(memchr(out, '\n', len - 1) == NULL, "output has more than one line: \"%s\"", out);
        CHECK(strncmp(out, "ota_", 4) == 0, "output does not start with ota_: \"%s\"", out);
        out[len - 1] = '\0';
        if (len >= 2 && out[len - 2] == '\r')
            out[len - 2] = '\0';
        CHECK(strchr(out, ' ') == NULL && strchr(out, '\t') == NULL, "the line is not the key alone: \"%s\"", out);

        /* It is a working key of that role. */
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", "/v1/models", out, NULL, 0, NULL, &r);
        CHECK(r.status == 200, "GET with the new %s key: %ld %.2000s", roles[i], r.status, BODY(&r));
        h_resp_free(&r);
        h_json(&h_g_srv, "POST", "/v1/models", out, &r, "{s:s, s:s}", "id", name, "name", "by a new key");
        long want = i == 0 ? 201 : 403;
        CHECK(r.status == want, "POST with the new %s key: %ld, want %ld: %.2000s", roles[i], r.status, want, BODY(&r));
        h_resp_free(&r);
    }

    /* Two keys are never the same. */
    char a[256], b[256];
    const char *const args[] = {"apikey", "create", "--name", "twice", "--role", "viewer", NULL};
    CHECK(h_run_server_cmd(&h_g_pg, args, NULL, a, sizeof a) == 0, "apikey create: %s", a);
    CHECK(h_run_server_cmd(&h_g_pg, args, NULL, b, sizeof b) == 0, "apikey create: %s", b);
    CHECK(strcmp(a, b) != 0, "two apikey create runs printed the same key %s", a);
}

static void test_sigterm_exits_zero(void **state)
{
    (void)state;
    h_server_t srv;
    h_server_start(&srv, &h_g_pg, NULL);
    long ready = h_wait_ready(&srv) ? 200 : 503;
    h_resp_t r = {0};
    h_http(&srv, "GET", "/v1/models", srv.admin_key, NULL, 0, NULL, &r);
    long models = r.status;
    h_resp_free(&r);

    int status = h_server_stop(&srv);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        h_server_dump_log(&srv);
    CHECK(ready == 200 && models == 200, "second server: readyz %ld, models %ld", ready, models);
    CHECK(WIFEXITED(status), "SIGTERM: the server did not exit by itself (wait status %#x%s%s)", (unsigned)status,
          WIFSIGNALED(status) ? ", signal " : "", WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "");
    CHECK(WEXITSTATUS(status) == 0, "SIGTERM: exit status %d, want 0", WEXITSTATUS(status));

    /* The server that stays up is untouched by its sibling's shutdown. */
    h_http(&h_g_srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
    CHECK(r.status == 200, "the other server after the sibling's SIGTERM: %ld", r.status);
    h_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_check_detects_failure),  cmocka_unit_test(test_concurrent_migrate_fresh_database),
        cmocka_unit_test(test_migrate_idempotent),         cmocka_unit_test(test_unchanged_function_not_reapplied),
        cmocka_unit_test(test_changed_function_reapplied), cmocka_unit_test(test_changed_function_signature),
        cmocka_unit_test(test_changed_migration_refused),  cmocka_unit_test(test_migrate_without_database_fails),
        cmocka_unit_test(test_apikey_create_prints_key),   cmocka_unit_test(test_sigterm_exits_zero),
    };
    return cmocka_run_group_tests(tests, h_group_setup, group_teardown);
}
