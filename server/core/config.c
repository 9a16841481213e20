#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct var_doc {
    const char *name;
    const char *def;
    const char *meaning;
} var_doc_t;

static const var_doc_t VARS[] = {
    {"OTA_DATABASE_URL", "(libpq defaults: PGHOST, PGDATABASE, ...)", "libpq connection string or URI"},
    {"OTA_LISTEN", "127.0.0.1:8080", "host:port to listen on"},
    {"OTA_THREADS", "core count", "event-loop threads"},
    {"OTA_PUBLIC_URL", "http://<OTA_LISTEN>", "the base URL devices reach this server at"},
    {"OTA_BOOTSTRAP_API_KEY", "(none)", "an admin API key ensured at start (once revoked, it stays revoked)"},
    {"OTA_MAX_BODY", "67108864 (64 MiB)", "largest upload body in bytes; other bodies stop at 64 KiB"},
    {"OTA_HEARTBEAT_INTERVAL", "60", "seconds between heartbeats, told to devices"},
    {"OTA_DB_STATEMENT_TIMEOUT_MS", "5000", "a database statement running longer is canceled"},
    {"OTA_DB_BULK_TIMEOUT_MS", "120000", "the same for statements over many rows (creating a rollout, /metrics)"},
    {"OTA_IDLE_TIMEOUT_MS", "30000",
     "a connection that sends no request byte while one is awaited, or reads no response byte while one is "
     "being sent, for this many milliseconds is closed"},
    {"OTA_REQUEST_TIMEOUT", "3600", "seconds a request's headers and body may take to arrive in all"},
    {"OTA_EVENTS_KEEPALIVE_S", "15",
     "seconds between keep-alive comments of an event stream; a reader that takes nothing for that long while "
     "events wait for it is disconnected (it resumes with Last-Event-ID)"},
    {"OTA_ACCESS_LOG", "1", "1: one JSON line per request (request id, route, status, ms) on stderr; 0: none"},
    {"OTA_STORAGE", "fs", "object storage backend: fs or s3"},
    {"OTA_STORAGE_DIR", "data/blobs", "where the fs backend keeps blobs"},
    {"OTA_IMPORT_DIR", "(none: no file:// source allowed)", "the only folder file:// release sources may name"},
    {"OTA_S3_ENDPOINT", "(AWS: https://s3.<region>.amazonaws.com)", "S3 endpoint, http(s)://host[:port]"},
    {"OTA_S3_REGION", "us-east-1", "S3 region"},
    {"OTA_S3_BUCKET", "(required with OTA_STORAGE=s3)", "S3 bucket"},
    {"OTA_S3_ACCESS_KEY", "(required with OTA_STORAGE=s3)", "S3 access key id"},
    {"OTA_S3_SECRET_KEY", "(required with OTA_STORAGE=s3)", "S3 secret access key"},
    {"OTA_S3_SESSION_TOKEN", "(none)", "S3 session token (temporary credentials)"},
    {"OTA_S3_PATH_STYLE", "1 with OTA_S3_ENDPOINT, else 0", "1: path-style URLs (MinIO), 0: virtual-hosted"},
    {"OTA_URL_TTL", "900", "lifetime of a presigned URL in seconds (1..604800)"},
    {"OTA_JOB_THREADS", "4", "threads for blocking work: uploads, hashing, S3"},
    {"OTA_GC_GRACE_S", "86400", "age before an unused object or temporary file is removed (1..2592000)"},
    {"OTA_GC_INTERVAL_S", "3600", "seconds between object sweeps, shared by all instances (0: never)"},
    {"OTA_JOBS_QUEUE_MAX", "16", "uploads that may wait for a job thread, each holding its body; more get 503"},
    {"OTA_SIGNING_KEY", "data/signing-key.pem", "Ed25519 PEM key that signs manifests (made at first start)"},
    {"OTA_APPLY_TIMEOUT", "86400", "seconds a delivered assignment may take to be applied, then it fails"},
    {"OTA_VERIFY_WINDOW", "3600", "seconds after being applied in which reporting other firmware rolls it back"},
    {"OTA_DEFERRED_WRITE_MS", "5000", "milliseconds between writes of the presence and signatures kept in memory"},
    {"OTA_DELIVERY_COUNT_MS", "30000", "milliseconds between writes of the re-delivery counts kept in memory"},
    {"OTA_PRESENCE_INTERVAL", "120", "last_seen_at is rewritten only once older than this many seconds (0 = always)"},
    {"OTA_BLOCKED_BATTERY", "low,dead", "battery states that defer delivery (comma-separated; \"\" for none)"},
    {"OTA_ROLLOUT_TICK_MS", "1000", "milliseconds between the rollout engine's ticks when it has nothing to do"},
    {"OTA_FLEET_CACHE_MS", "10000", "how old, in milliseconds, GET /v1/fleet's numbers may be (100..10000)"},
    {"OTA_DEVICE_RATE_LIMIT", "10", "requests a device token may send in 10 s, per instance (0 = no limit)"},
    {"OTA_METRICS_TOKEN", "(none: /metrics is open)", "GET /metrics needs Authorization: Bearer <this token>"},
};

void ota__config_print_help(FILE *out)
{
    fprintf(out, "Environment variables:\n");
    for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++)
        fprintf(out, "  %-28s %s\n  %-28s   default: %s\n", VARS[i].name, VARS[i].meaning, "", VARS[i].def);
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : def;
}

/* Parses a whole decimal string into [min, max]; anything else is an error. */
static int parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A value quoted in an error message: control characters become '?', so the message stays one line. */
static const char *printable(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *s != '\0' && n + 1 < cap; s++)
        buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    buf[n] = '\0';
    return buf;
}

static ota_err_t int_var(const char *name, long def, long min, long max, long *out, char *err, size_t cap)
{
    const char *s = getenv(name);
    if (s == NULL || s[0] == '\0') {
        *out = def;
        return OTA_OK;
    }
    if (parse_long(s, min, max, out) != 0) {
        char quoted[64];
        snprintf(err, cap, "%s: expected an integer in [%ld, %ld], got \"%s\"", name, min, max,
                 printable(s, quoted, sizeof quoted));
        return OTA_ERR_INVALID;
    }
    return OTA_OK;
}

static ota_err_t parse_listen(ota_config_t *cfg, char *err, size_t cap)
{
    const char *s = env_or("OTA_LISTEN", "127.0.0.1:8080");
    const char *colon = strrchr(s, ':');
    const char *host = s;
    size_t host_len = colon != NULL ? (size_t)(colon - s) : 0;
    long port;
    /* An IPv6 address is written in brackets ("[::1]:8080"); the brackets are not part of the host. */
    if (host_len >= 2 && s[0] == '[' && s[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    if (colon == NULL || host_len == 0 || parse_long(colon + 1, 1, 65535, &port) != 0 ||
        memchr(host, '[', host_len) != NULL || memchr(host, ']', host_len) != NULL) {
        char quoted[64];
        snprintf(err, cap, "OTA_LISTEN: expected host:port, got \"%s\"", printable(s, quoted, sizeof quoted));
        return OTA_ERR_INVALID;
    }
    cfg->listen_host = strndup(host, host_len);
    cfg->listen_port = (int)port;
    return OTA_OK;
}

static char *public_url_from(const ota_config_t *cfg)
{
    const char *s = getenv("OTA_PUBLIC_URL");
    if (s != NULL && s[0] != '\0') {
        size_t len = strlen(s);
        while (len > 0 && s[len - 1] == '/')
            len--;
        return strndup(s, len);
    }
    char buf[300];
    bool ipv6 = strchr(cfg->listen_host, ':') != NULL;
    snprintf(buf, sizeof(buf), "http://%s%s%s:%d", ipv6 ? "[" : "", cfg->listen_host, ipv6 ? "]" : "",
             cfg->listen_port);
    return strdup(buf);
}

static char *string_or_null(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? strdup(v) : NULL;
}

static ota_err_t storage_vars(ota_config_t *cfg, char *err, size_t cap)
{
    ota_err_t rc;
    long v;
    cfg->storage = strdup(env_or("OTA_STORAGE", "fs"));
    if (strcmp(cfg->storage, "fs") != 0 && strcmp(cfg->storage, "s3") != 0) {
        snprintf(err, cap, "OTA_STORAGE: expected fs or s3");
        return OTA_ERR_INVALID;
    }
    cfg->storage_dir = strdup(env_or("OTA_STORAGE_DIR", "data/blobs"));
    cfg->import_dir = string_or_null("OTA_IMPORT_DIR");
    cfg->s3_endpoint = string_or_null("OTA_S3_ENDPOINT");
    cfg->s3_region = strdup(env_or("OTA_S3_REGION", "us-east-1"));
    cfg->s3_bucket = string_or_null("OTA_S3_BUCKET");
    cfg->s3_access_key = string_or_null("OTA_S3_ACCESS_KEY");
    cfg->s3_secret_key = string_or_null("OTA_S3_SECRET_KEY");
    cfg->s3_session_token = string_or_null("OTA_S3_SESSION_TOKEN");
    if ((rc = int_var("OTA_S3_PATH_STYLE", cfg->s3_endpoint != NULL, 0, 1, &v, err, cap)) != OTA_OK)
        return rc;
    cfg->s3_path_style = (int)v;
    if ((rc = int_var("OTA_URL_TTL", 900, 1, 604800, &v, err, cap)) != OTA_OK)
        return rc;
    cfg->url_ttl = (int)v;
    if ((rc = int_var("OTA_JOB_THREADS", 4, 1, 64, &v, err, cap)) != OTA_OK)
        return rc;
    cfg->job_threads = (int)v;
    if ((rc = int_var("OTA_GC_GRACE_S", 86400, 1, 30L * 86400, &v, err, cap)) != OTA_OK)
        return rc;
    cfg->gc_grace = (int)v;
    if ((rc = int_var("OTA_GC_INTERVAL_S", 3600, 0, 30L * 86400, &v, err, cap)) != OTA_OK)
        return rc;
    cfg->gc_interval = (int)v;
    if ((rc = int_var("OTA_JOBS_QUEUE_MAX", 16, 1, 10000, &v, err, cap)) != OTA_OK)
        return rc;
    cfg->jobs_queue_max = (int)v;
    if (strcmp(cfg->storage, "s3") == 0 &&
        (cfg->s3_bucket == NULL || cfg->s3_access_key == NULL || cfg->s3_secret_key == NULL)) {
        snprintf(err, cap, "OTA_STORAGE=s3 needs OTA_S3_BUCKET, OTA_S3_ACCESS_KEY and OTA_S3_SECRET_KEY");
        return OTA_ERR_INVALID;
    }
    return OTA_OK;
}

/* "low,dead" → "{low,dead}": each state must be one the heartbeat knows. */
static ota_err_t battery_var(ota_config_t *cfg, char *err, size_t cap)
{
    static const char *const STATES[] = {"usb", "high", "normal", "low", "dead"};
    const char *v = getenv("OTA_BLOCKED_BATTERY");
    char list[64];
    size_t used = 0;
    if (v == NULL)
        v = "low,dead";
    list[used++] = '{';
    for (const char *p = v; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        bool known = false;
        for (size_t i = 0; i < sizeof STATES / sizeof STATES[0]; i++)
            known = known || (strlen(STATES[i]) == n && strncmp(STATES[i], p, n) == 0);
        if (!known || used + n + 3 > sizeof list) {
            snprintf(err, cap, "OTA_BLOCKED_BATTERY: expected states among usb,high,normal,low,dead");
            return OTA_ERR_INVALID;
        }
        if (used > 1)
            list[used++] = ',';
        memcpy(list + used, p, n);
        used += n;
        p += n + (comma != NULL);
    }
    list[used++] = '}';
    list[used] = '\0';
    cfg->blocked_battery = strdup(list);
    return OTA_OK;
}

ota_err_t ota__config_load(ota_config_t *cfg, char *err, size_t cap)
{
    memset(cfg, 0, sizeof(*cfg));
    ota_err_t rc;
    long v;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    cfg->database_url = strdup(env_or("OTA_DATABASE_URL", ""));
    if ((rc = parse_listen(cfg, err, cap)) != OTA_OK)
        goto Exit;
    cfg->public_url = public_url_from(cfg);
    const char *key = getenv("OTA_BOOTSTRAP_API_KEY");
    cfg->bootstrap_api_key = (key != NULL && key[0] != '\0') ? strdup(key) : NULL;
    /* A key the authentication would never accept must not be stored (it would look valid and never work). */
    if (cfg->bootstrap_api_key != NULL &&
        (strncmp(key, "ota_", 4) != 0 || strlen(key) < 12 || strlen(key) > 63 || strpbrk(key, " \t\r\n") != NULL)) {
        snprintf(err, cap, "OTA_BOOTSTRAP_API_KEY: must start with ota_ and be 12 to 63 characters, no spaces");
        rc = OTA_ERR_INVALID;
        goto Exit;
    }
    const char *metrics_token = getenv("OTA_METRICS_TOKEN");
    cfg->metrics_token = (metrics_token != NULL && metrics_token[0] != '\0') ? strdup(metrics_token) : NULL;
    /* A token no Authorization header can carry (too long for the bearer cap, or with blanks) would lock /metrics. */
    if (cfg->metrics_token != NULL &&
        (strlen(metrics_token) < 16 || strlen(metrics_token) > 63 || strpbrk(metrics_token, " \t\r\n") != NULL)) {
        snprintf(err, cap, "OTA_METRICS_TOKEN: must be 16 to 63 characters, no spaces");
        rc = OTA_ERR_INVALID;
        goto Exit;
    }

    if ((rc = int_var("OTA_THREADS", cores > 0 ? cores : 1, 1, 256, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->threads = (int)v;
    if ((rc = int_var("OTA_MAX_BODY", 64L * 1024 * 1024, 1024, 4L * 1024 * 1024 * 1024, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->max_body = (size_t)v;
    if ((rc = int_var("OTA_HEARTBEAT_INTERVAL", 60, 5, 86400, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->heartbeat_interval = (int)v;
    if ((rc = int_var("OTA_DB_STATEMENT_TIMEOUT_MS", 5000, 0, 3600 * 1000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->db_statement_timeout_ms = (int)v;
    if ((rc = int_var("OTA_DB_BULK_TIMEOUT_MS", 120000, 0, 3600 * 1000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->db_bulk_timeout_ms = (int)v;
    if ((rc = int_var("OTA_IDLE_TIMEOUT_MS", 30000, 100, 3600 * 1000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->idle_timeout_ms = (int)v;
    if ((rc = int_var("OTA_REQUEST_TIMEOUT", 3600, 1, 86400, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->request_timeout = (int)v;
    if ((rc = int_var("OTA_EVENTS_KEEPALIVE_S", 15, 1, 300, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->events_keepalive_s = (int)v;
    if ((rc = int_var("OTA_ACCESS_LOG", 1, 0, 1, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->access_log = (int)v;
    if ((rc = storage_vars(cfg, err, cap)) != OTA_OK)
        goto Exit;
    cfg->signing_key = strdup(env_or("OTA_SIGNING_KEY", "data/signing-key.pem"));
    if ((rc = int_var("OTA_APPLY_TIMEOUT", 86400, 60, 30L * 86400, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->apply_timeout = (int)v;
    if ((rc = int_var("OTA_VERIFY_WINDOW", 3600, 1, 30L * 86400, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->verify_window = (int)v;
    if ((rc = int_var("OTA_DEFERRED_WRITE_MS", 5000, 100, 60000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->deferred_write_ms = (int)v;
    if ((rc = int_var("OTA_DELIVERY_COUNT_MS", 30000, 100, 60000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->delivery_count_ms = (int)v;
    if ((rc = int_var("OTA_PRESENCE_INTERVAL", 120, 0, 3600, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->presence_interval = (int)v;
    if ((rc = int_var("OTA_ROLLOUT_TICK_MS", 1000, 10, 60000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->rollout_tick_ms = (int)v;
    if ((rc = int_var("OTA_FLEET_CACHE_MS", 10000, 100, 10000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->fleet_cache_ms = (int)v;
    if ((rc = int_var("OTA_DEVICE_RATE_LIMIT", 10, 0, 1000000, &v, err, cap)) != OTA_OK)
        goto Exit;
    cfg->device_rate_limit = (int)v;
    snprintf(cfg->heartbeat_interval_text, sizeof cfg->heartbeat_interval_text, "%d", cfg->heartbeat_interval);
    snprintf(cfg->apply_timeout_text, sizeof cfg->apply_timeout_text, "%d", cfg->apply_timeout);
    snprintf(cfg->presence_interval_text, sizeof cfg->presence_interval_text, "%d", cfg->presence_interval);
    snprintf(cfg->verify_window_text, sizeof cfg->verify_window_text, "%d", cfg->verify_window);
    if ((rc = battery_var(cfg, err, cap)) != OTA_OK)
        goto Exit;

Exit:
    if (rc != OTA_OK)
        ota__config_free(cfg);
    return rc;
}

void ota__config_free(ota_config_t *cfg)
{
    free(cfg->database_url);
    free(cfg->listen_host);
    free(cfg->public_url);
    free(cfg->bootstrap_api_key);
    free(cfg->metrics_token);
    free(cfg->storage);
    free(cfg->storage_dir);
    free(cfg->import_dir);
    free(cfg->s3_endpoint);
    free(cfg->s3_region);
    free(cfg->s3_bucket);
    free(cfg->s3_access_key);
    free(cfg->s3_secret_key);
    free(cfg->s3_session_token);
    free(cfg->signing_key);
    free(cfg->blocked_battery);
    memset(cfg, 0, sizeof(*cfg));
}
