/*
 * ota-server: the OTA backend's one program.
 *
 *   ota-server [serve]        migrate, ensure the bootstrap key, serve HTTP
 *   ota-server migrate        apply pending migrations and exit
 *   ota-server apikey create --name N --role admin|viewer
 *                             print a new API key alone on standard output
 *   ota-server apikey list    print every API key as a JSON line (never the key itself)
 *   ota-server apikey revoke ID
 *                             revoke an API key (refused on every instance at once)
 *   ota-server presign --method GET|PUT --key K [--time YYYYMMDDTHHMMSSZ] [--expires S]
 *                             print the presigned URL the configured storage would hand out
 *   ota-server --help         usage and the OTA_* variables
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/ids.h"
#include "db/apikeys.h"
#include "db/migrate.h"
#include "db/sync.h"
#include "core/log.h"
#include "server.h"
#include "storage/storage.h"

#include <curl/curl.h>

/* How long `serve` keeps trying to reach the database at start (a compose stack starts all at once). */
#define START_CONNECT_SECONDS 60

static void usage(FILE *out)
{
    fputs("usage: ota-server [serve]\n"
          "       ota-server migrate\n"
          "       ota-server apikey create --name NAME --role admin|viewer\n"
          "       ota-server apikey list\n"
          "       ota-server apikey revoke ID\n"
          "       ota-server presign --method GET|PUT --key KEY [--time YYYYMMDDTHHMMSSZ] [--expires SECONDS]\n"
          "       ota-server --help\n\n",
          out);
    ota__config_print_help(out);
}

static int migrate(PGconn *conn)
{
    char err[512];
    ota_migrate_counts_t applied;
    if (ota__migrate(conn, &applied, err, sizeof err) != OTA_OK) {
        ota_log_error("migration failed: %s", err);
        return 1;
    }
    ota_log_info("migrations: %d applied, functions: %d applied, schema up to date", applied.migrations,
                 applied.functions);
    return 0;
}

static int cmd_migrate(const ota_config_t *cfg)
{
    char err[512];
    PGconn *conn = ota__db_connect_sync(cfg->database_url, err, sizeof err);
    if (conn == NULL) {
        ota_log_error("cannot connect to the database: %s", err);
        return 1;
    }
    int rc = migrate(conn);
    PQfinish(conn);
    return rc;
}

static const char *option_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static const char APIKEY_USAGE[] = "usage: ota-server apikey create --name NAME --role admin|viewer\n"
                                   "       ota-server apikey list\n"
                                   "       ota-server apikey revoke ID\n";

/* Connects and migrates, as every apikey subcommand needs; NULL (logged) on failure. */
static PGconn *apikey_connect(const ota_config_t *cfg)
{
    char err[512];
    PGconn *conn = ota__db_connect_sync(cfg->database_url, err, sizeof err);
    if (conn == NULL) {
        ota_log_error("cannot connect to the database: %s", err);
        return NULL;
    }
    if (migrate(conn) != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static int apikey_create(PGconn *conn, const char *name, const char *role)
{
    char err[512], key[128];
    if (ota__apikey_create(conn, name, role, key, sizeof key, err, sizeof err) != OTA_OK) {
        ota_log_error("cannot create the key: %s", err);
        return 1;
    }
    printf("%s\n", key);
    return 0;
}

static int apikey_list(PGconn *conn)
{
    char err[512];
    if (ota__apikey_list(conn, stdout, err, sizeof err) != OTA_OK) {
        ota_log_error("cannot list the keys: %s", err);
        return 1;
    }
    return 0;
}

/* Exit 0 when the key is revoked (now or before), 1 when there is no such key. */
static int apikey_revoke(PGconn *conn, const char *id)
{
    char err[512];
    bool found = false, revoked = false;
    if (ota__apikey_revoke(conn, id, &found, &revoked, err, sizeof err) != OTA_OK) {
        ota_log_error("cannot revoke the key: %s", err);
        return 1;
    }
    if (!found) {
        ota_log_error("no API key %s", id);
        return 1;
    }
    if (!revoked)
        ota_log_info("API key %s was revoked already", id);
    return 0;
}

static int cmd_apikey(const ota_config_t *cfg, int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    const char *name = option_value(argc, argv, "--name");
    const char *role = option_value(argc, argv, "--role");
    char id[OTA_UUID_LEN + 1];
    bool create = strcmp(sub, "create") == 0 && name != NULL && role != NULL && ota__apikey_role_valid(role);
    bool list = strcmp(sub, "list") == 0 && argc == 1;
    bool revoke = strcmp(sub, "revoke") == 0 && argc == 2 && ota__uuid_parse(argv[1], strlen(argv[1]), id);
    if (!create && !list && !revoke) {
        fputs(APIKEY_USAGE, stderr);
        return 2;
    }
    PGconn *conn = apikey_connect(cfg);
    if (conn == NULL)
        return 1;
    int rc = create ? apikey_create(conn, name, role) : list ? apikey_list(conn) : apikey_revoke(conn, id);
    PQfinish(conn);
    return rc;
}

/* Prints what the storage would hand out, to compare a signature with other S3 tools. */
static int cmd_presign(const ota_config_t *cfg, int argc, char **argv)
{
    const char *method = option_value(argc, argv, "--method");
    const char *key = option_value(argc, argv, "--key");
    const char *at = option_value(argc, argv, "--time");
    const char *expires = option_value(argc, argv, "--expires");
    char err[512], url[8192], *end = NULL;
    time_t now = time(NULL);
    long ttl = expires != NULL ? strtol(expires, &end, 10) : cfg->url_ttl;

    if (method == NULL || key == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0) ||
        (expires != NULL && (*end != '\0' || ttl < 1 || ttl > 604800)) ||
        (at != NULL && ota__sigv4_parse_date(at, &now) != OTA_OK)) {
        fputs("usage: ota-server presign --method GET|PUT --key KEY [--time YYYYMMDDTHHMMSSZ] [--expires 1..604800]\n",
              stderr);
        return 2;
    }
    ota_storage_t *storage = ota__storage_open(cfg, err, sizeof err);
    if (storage == NULL) {
        fprintf(stderr, "ota-server: cannot open the %s storage: %s\n", cfg->storage, err);
        return 1;
    }
    ota_err_t rc = ota__storage_presign_any(storage, method, key, now, (int)ttl, url, sizeof url);
    ota__storage_close(storage);
    if (rc != OTA_OK) {
        fprintf(stderr, "ota-server: cannot presign: %s\n", ota_strerror(rc));
        return 1;
    }
    printf("%s\n", url);
    return 0;
}

/* Waits for the database at start, so a server started before it (compose, systemd) does not fail at once. */
static PGconn *connect_at_start(const ota_config_t *cfg)
{
    char err[512];
    time_t deadline = time(NULL) + START_CONNECT_SECONDS;
    for (;;) {
        PGconn *conn = ota__db_connect_sync(cfg->database_url, err, sizeof err);
        if (conn != NULL || time(NULL) >= deadline) {
            if (conn == NULL)
                ota_log_error("cannot connect to the database: %s", err);
            return conn;
        }
        ota_log_warn("database not reachable yet (%s); retrying", err);
        sleep(1);
    }
}

static int cmd_serve(const ota_config_t *cfg)
{
    char err[512];
    PGconn *conn = connect_at_start(cfg);
    if (conn == NULL)
        return 1;
    int rc = migrate(conn);
    bool revoked = false;
    if (rc == 0 && cfg->bootstrap_api_key != NULL &&
        ota__apikey_ensure_bootstrap(conn, cfg->bootstrap_api_key, &revoked, err, sizeof err) != OTA_OK) {
        ota_log_error("cannot store OTA_BOOTSTRAP_API_KEY: %s", err);
        rc = 1;
    }
    if (revoked)
        ota_log_warn("OTA_BOOTSTRAP_API_KEY names a revoked key: it stays revoked (set a new value to have one)");
    PQfinish(conn);
    return rc == 0 ? ota__server_run(cfg) : rc;
}

int main(int argc, char **argv)
{
    ota_config_t cfg;
    char err[512];
    const char *cmd = argc > 1 ? argv[1] : "serve";

    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (ota__config_load(&cfg, err, sizeof err) != OTA_OK) {
        fprintf(stderr, "ota-server: %s\n", err);
        return 2;
    }
    int rc;
    curl_global_init(CURL_GLOBAL_DEFAULT); /* once, before any thread: libcurl's global state is not thread-safe */
    if (strcmp(cmd, "serve") == 0) {
        rc = cmd_serve(&cfg);
    } else if (strcmp(cmd, "migrate") == 0) {
        rc = cmd_migrate(&cfg);
    } else if (strcmp(cmd, "presign") == 0) {
        rc = cmd_presign(&cfg, argc - 2, argv + 2);
    } else if (strcmp(cmd, "apikey") == 0) {
        rc = cmd_apikey(&cfg, argc - 2, argv + 2);
    } else {
        fprintf(stderr, "ota-server: unknown command '%s'\n\n", cmd);
        usage(stderr);
        rc = 2;
    }
    ota__config_free(&cfg);
    curl_global_cleanup();
    return rc;
}
