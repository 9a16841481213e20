#ifndef OTA_TEST_HARNESS_H
#define OTA_TEST_HARNESS_H

/*
 * Integration test harness: a throwaway PostgreSQL cluster (initdb into a
 * temporary directory, Unix socket only, a free port) and the real
 * ota-server binary (OTA_SERVER_BIN) started against it, driven over HTTP
 * with libcurl. No mock stands in for either.
 *
 * When run as root, PostgreSQL's programs run as the `postgres` user through
 * `runuser -u postgres --` (initdb and postgres refuse root).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

/** A throwaway PostgreSQL cluster. */
typedef struct h_pg {
    char dir[256];        /**< temporary directory holding data/ and the socket */
    char socket_dir[256]; /**< Unix socket directory */
    int port;
    char conninfo[512];   /**< "host=<socket_dir> port=<port> dbname=ota user=postgres" */
} h_pg_t;

/** Creates (initdb, trust auth), starts the cluster and creates database `ota`. Aborts the test program on failure. */
void h_pg_start(h_pg_t *pg);
/** Stops the cluster (pg_ctl stop -m fast), keeping its data. */
void h_pg_stop(h_pg_t *pg);
/** Starts a stopped cluster again on the same port and socket. */
void h_pg_restart(h_pg_t *pg);
/** Stops the cluster and removes its directory. */
void h_pg_destroy(h_pg_t *pg);
/** Runs one SQL statement with psql against the cluster; returns psql's exit status (0 = ok). */
int h_pg_sql(h_pg_t *pg, const char *sql);

/** A running ota-server child process. */
typedef struct h_server {
    pid_t pid;
    int port;
    char base_url[64];    /**< "http://127.0.0.1:<port>" */
    char admin_key[128];  /**< the OTA_BOOTSTRAP_API_KEY it was started with */
    char log_path[300];   /**< its stderr, kept for failure reports */
} h_server_t;

/**
 * One more "NAME=value" that every server this program starts gets (NULL: none), before each start's
 * `extra_env` (which wins). Set it in main(), before the group setup; e.g. a program whose tests drive
 * one device far harder than a real device would raises OTA_DEVICE_RATE_LIMIT.
 */
extern const char *h_server_env_all;

/**
 * Starts build/ota-server ("serve") with OTA_DATABASE_URL = pg->conninfo, a free
 * port on 127.0.0.1, a random OTA_BOOTSTRAP_API_KEY, and the extra environment
 * in `extra_env` (NULL-terminated "NAME=value" strings, or NULL). Waits until
 * GET /healthz answers 200 (at most 20 s); aborts the test program otherwise.
 */
void h_server_start(h_server_t *srv, h_pg_t *pg, const char *const *extra_env);
/** Sends SIGTERM and waits; returns the exit status as from waitpid (WEXITSTATUS etc.). */
int h_server_stop(h_server_t *srv);

/** Runs the server binary with `argv` (argv[0] is not included; NULL-terminated) and
 *  the given environment additions; captures stdout into `out` (cap bytes, NUL-terminated).
 *  Returns the exit status (WEXITSTATUS) or -1. */
int h_run_server_cmd(h_pg_t *pg, const char *const *args, const char *const *extra_env, char *out, size_t cap);

/** One HTTP response. */
typedef struct h_resp {
    long status;             /**< 0 when the request failed at the transport level */
    char *body;              /**< NUL-terminated, malloc'ed */
    size_t body_len;
    json_t *json;            /**< parsed body when it is JSON, else NULL */
    char content_type[128];
    char allow[128];         /**< the Allow header, if any */
    char retry_after[32];    /**< the Retry-After header, if any */
} h_resp_t;

/** Frees what a response holds (not the struct). */
void h_resp_free(h_resp_t *r);

/**
 * Sends `method` to srv->base_url + `path` with an optional bearer `token`
 * (NULL: no Authorization header) and optional `body` of `body_len` bytes
 * sent with `content_type` (NULL: "application/json"). Fills `out`.
 */
void h_http(h_server_t *srv, const char *method, const char *path, const char *token, const char *body,
            size_t body_len, const char *content_type, h_resp_t *out);

/** h_http with a JSON body built by json_pack-style `fmt` (NULL fmt: no body). */
void h_json(h_server_t *srv, const char *method, const char *path, const char *token, h_resp_t *out,
            const char *fmt, ...);

/** The error code of a contract error body ({"error": {"code": ...}}), or "" when absent. */
const char *h_error_code(const h_resp_t *r);

/**
 * Sends `count` requests on ONE reused connection (keep-alive), each
 * described by `methods[i]`, `paths[i]`, `bodies[i]` (may be NULL) and
 * `token`; stores each status in `statuses[i]`. Returns how many TCP connections
 * curl opened in total (1 when the connection survived every request).
 */
long h_http_same_connection(h_server_t *srv, int count, const char *const *methods, const char *const *paths,
                            const char *const *bodies, const size_t *body_lens, const char *token, long *statuses);

/**
 * Removes the directory tree `dir`, which must be one a test made under /tmp/ota-* or /dev/shm/ota-* (anything
 * else is left alone).
 */
void h_remove_tmp_dir(const char *dir);

/** Writes a fresh random lower-case hex string of `n` characters (+NUL) into `out`, for unique test data. */
void h_random_hex(char *out, size_t n);

/** Prints the server's log to stderr (call when a test fails to show why). */
void h_server_dump_log(h_server_t *srv);

/*
 * A throwaway S3-compatible server: @20minutes/s3rver 4.x (installed by
 * scripts/deps into <source>/.deps/) run with node on 127.0.0.1 and a port
 * it picks itself, its data in a temporary directory. It checks SigV4
 * signatures (header and presigned) and presigned-URL expiry, and serves
 * Range; it knows only the key pair S3RVER/S3RVER (H_S3_ACCESS_KEY,
 * H_S3_SECRET_KEY), and lets unsigned requests through.
 */

/** The only credentials s3rver 4.x accepts (hard-coded in it). */
#define H_S3_ACCESS_KEY "S3RVER"
#define H_S3_SECRET_KEY "S3RVER"
/** The region the OTA_S3_* environment names. */
#define H_S3_REGION "us-east-1"
/** How many strings h_s3_env returns (without the terminating NULL). */
#define H_S3_ENV_COUNT 7

/** A running s3rver child process. */
typedef struct h_s3 {
    pid_t pid;
    int port;
    char dir[256];      /**< temporary directory: data/ and s3rver.log */
    char log_path[300]; /**< its stdout and stderr */
    char endpoint[64];  /**< "http://127.0.0.1:<port>" */
    char bucket[64];
    char env_text[H_S3_ENV_COUNT][320]; /**< backing store of env */
    const char *env[H_S3_ENV_COUNT + 1];
} h_s3_t;

/**
 * Starts s3rver with bucket `bucket` (created at start; 3..63 of a-z 0-9 -)
 * and waits until it answers (at most 30 s). Aborts the test program when
 * node or s3rver 4.x is missing (the message says to run scripts/deps) or
 * the server does not come up (its log is printed). Stop with h_s3_stop;
 * whatever is still running at exit is killed and its directory removed
 * (kept when OTA_TEST_KEEP is set).
 */
void h_s3_start(h_s3_t *s3, const char *bucket);

/** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
void h_s3_stop(h_s3_t *s3);

/**
 * The environment that points ota-server at `s3`, NULL-terminated, for
 * h_server_start's extra_env: OTA_STORAGE=s3, OTA_S3_ENDPOINT, OTA_S3_REGION,
 * OTA_S3_BUCKET, OTA_S3_ACCESS_KEY, OTA_S3_SECRET_KEY, OTA_S3_PATH_STYLE=1
 * (H_S3_ENV_COUNT strings). Borrowed from `s3`: valid while it lives.
 */
const char *const *h_s3_env(h_s3_t *s3);

/** Prints the s3rver log to stderr (call when a test fails to show why). */
void h_s3_dump_log(const h_s3_t *s3);

#endif
