#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"

extern char **environ;

/* Every variable ota__config_load reads. */
static const char *const VARS[] = {
    "OTA_DATABASE_URL",
    "OTA_LISTEN",
    "OTA_THREADS",
    "OTA_PUBLIC_URL",
    "OTA_BOOTSTRAP_API_KEY",
    "OTA_MAX_BODY",
    "OTA_HEARTBEAT_INTERVAL",
    "OTA_DB_STATEMENT_TIMEOUT_MS",
    "OTA_STORAGE",
    "OTA_STORAGE_DIR",
    "OTA_IMPORT_DIR",
    "OTA_S3_ENDPOINT",
    "OTA_S3_REGION",
    "OTA_S3_BUCKET",
    "OTA_S3_ACCESS_KEY",
    "OTA_S3_SECRET_KEY",
    "OTA_S3_SESSION_TOKEN",
    "OTA_S3_PATH_STYLE",
    "OTA_URL_TTL",
    "OTA_JOB_THREADS",
    "OTA_JOBS_QUEUE_MAX",
    "OTA_IDLE_TIMEOUT_MS",
    "OTA_EVENTS_KEEPALIVE_S",
    "OTA_REQUEST_TIMEOUT",
    "OTA_APPLY_TIMEOUT",
    "OTA_DEFERRED_WRITE_MS",
    "OTA_DELIVERY_COUNT_MS",
    "OTA_PRESENCE_INTERVAL",
    "OTA_VERIFY_WINDOW",
    "OTA_FLEET_CACHE_MS",
    "OTA_METRICS_TOKEN",
    "OTA_DEVICE_RATE_LIMIT",
};
#define NVARS (sizeof(VARS) / sizeof(VARS[0]))

/* A clean environment: no OTA_* variable at all, whatever the caller had. */
static int clean_env(void **state)
{
    char *names[256];
    size_t n = 0;
    (void)state;
    for (char **e = environ; *e != NULL && n < 256; e++) {
        if (strncmp(*e, "OTA_", 4) == 0) {
            const char *eq = strchr(*e, '=');
            names[n++] = strndup(*e, eq != NULL ? (size_t)(eq - *e) : strlen(*e));
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
    for (size_t i = 0; i < NVARS; i++)
        unsetenv(VARS[i]);
    return 0;
}

static long expected_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? cores : 1;
}

static void check_defaults(const ota_config_t *cfg)
{
    assert_non_null(cfg->database_url);
    assert_string_equal(cfg->database_url, "");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_int_equal(cfg->threads, expected_threads());
    assert_string_equal(cfg->public_url, "http://127.0.0.1:8080");
    assert_null(cfg->bootstrap_api_key);
    assert_int_equal(cfg->max_body, 64u * 1024 * 1024);
    assert_int_equal(cfg->heartbeat_interval, 60);
    assert_int_equal(cfg->db_statement_timeout_ms, 5000);
    assert_int_equal(cfg->apply_timeout, 86400);
    assert_int_equal(cfg->deferred_write_ms, 5000);
    assert_int_equal(cfg->delivery_count_ms, 30000);
    assert_int_equal(cfg->presence_interval, 120);
    assert_int_equal(cfg->verify_window, 3600);
    assert_string_equal(cfg->verify_window_text, "3600");
    assert_int_equal(cfg->fleet_cache_ms, 10000);
    assert_int_equal(cfg->idle_timeout_ms, 30000);
    assert_int_equal(cfg->request_timeout, 3600);
    assert_int_equal(cfg->jobs_queue_max, 16);
    assert_int_equal(cfg->device_rate_limit, 10);
}

static void test_defaults(void **state)
{
    ota_config_t cfg;
    char err[256] = "";
    (void)state;
    memset(&cfg, 0xa5, sizeof cfg);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    check_defaults(&cfg);
    ota__config_free(&cfg);
}

static void test_empty_means_default(void **state)
{
    ota_config_t cfg;
    char err[256] = "";
    (void)state;
    for (size_t i = 0; i < NVARS; i++)
        setenv(VARS[i], "", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    check_defaults(&cfg);
    ota__config_free(&cfg);
}

static void test_all_set(void **state)
{
    ota_config_t cfg;
    char err[256] = "";
    (void)state;
    setenv("OTA_DATABASE_URL", "postgresql:///ota?host=/tmp", 1);
    setenv("OTA_LISTEN", "0.0.0.0:9090", 1);
    setenv("OTA_THREADS", "3", 1);
    setenv("OTA_PUBLIC_URL", "https://ota.example.com", 1);
    setenv("OTA_BOOTSTRAP_API_KEY", "ota_bootstrap", 1);
    setenv("OTA_MAX_BODY", "1048576", 1);
    setenv("OTA_HEARTBEAT_INTERVAL", "30", 1);
    setenv("OTA_DB_STATEMENT_TIMEOUT_MS", "250", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_string_equal(cfg.database_url, "postgresql:///ota?host=/tmp");
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9090);
    assert_int_equal(cfg.threads, 3);
    assert_string_equal(cfg.public_url, "https://ota.example.com");
    assert_string_equal(cfg.bootstrap_api_key, "ota_bootstrap");
    assert_int_equal(cfg.max_body, 1048576);
    assert_int_equal(cfg.heartbeat_interval, 30);
    assert_int_equal(cfg.db_statement_timeout_ms, 250);
    ota__config_free(&cfg);
    assert_null(cfg.database_url);
    assert_null(cfg.listen_host);
    assert_null(cfg.public_url);
    assert_null(cfg.bootstrap_api_key);
}

/* The host must be something getaddrinfo takes as is, as the server hands it over. */
static void check_numeric_host(const char *host)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    assert_int_equal(getaddrinfo(host, "8080", &hints, &res), 0);
    freeaddrinfo(res);
}

static void expect_listen(const char *value, const char *host, int port, const char *public_url)
{
    ota_config_t cfg;
    char err[256] = "";
    setenv("OTA_LISTEN", value, 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_string_equal(cfg.listen_host, host);
    assert_int_equal(cfg.listen_port, port);
    assert_string_equal(cfg.public_url, public_url);
    ota__config_free(&cfg);
}

static void expect_invalid(const char *var, const char *value)
{
    ota_config_t cfg;
    char err[256] = "";
    memset(&cfg, 0xa5, sizeof cfg);
    setenv(var, value, 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
    if (strstr(err, var) == NULL)
        fail_msg("%s=\"%s\": error does not name the variable: \"%s\"", var, value, err);
    /* Nothing is left to free. */
    assert_null(cfg.database_url);
    assert_null(cfg.listen_host);
    assert_null(cfg.public_url);
    assert_null(cfg.bootstrap_api_key);
    unsetenv(var);
}

static void test_listen(void **state)
{
    (void)state;
    expect_listen("127.0.0.1:8080", "127.0.0.1", 8080, "http://127.0.0.1:8080");
    expect_listen("0.0.0.0:1", "0.0.0.0", 1, "http://0.0.0.0:1");
    expect_listen("localhost:65535", "localhost", 65535, "http://localhost:65535");
    expect_listen("ota.internal:443", "ota.internal", 443, "http://ota.internal:443");
    check_numeric_host("127.0.0.1");
}

static void test_listen_bad(void **state)
{
    (void)state;
    expect_invalid("OTA_LISTEN", "localhost");
    expect_invalid("OTA_LISTEN", "8080");
    expect_invalid("OTA_LISTEN", "localhost:");
    expect_invalid("OTA_LISTEN", "localhost:0");
    expect_invalid("OTA_LISTEN", "localhost:65536");
    expect_invalid("OTA_LISTEN", "localhost:99999999999999999999999");
    expect_invalid("OTA_LISTEN", "localhost:-1");
    expect_invalid("OTA_LISTEN", "localhost:+80");
    expect_invalid("OTA_LISTEN", "localhost: 80");
    expect_invalid("OTA_LISTEN", "localhost:80 ");
    expect_invalid("OTA_LISTEN", "localhost:80a");
    expect_invalid("OTA_LISTEN", "localhost:http");
    expect_invalid("OTA_LISTEN", "localhost:0x50");
    expect_invalid("OTA_LISTEN", "localhost:8080:");
}

/*
 * An IPv6 literal in brackets: either refused at load (named in the error), or
 * accepted with a host the resolver takes and a public URL that brackets it.
 * Keeping the brackets in the host makes getaddrinfo fail when the server starts.
 */
static void test_listen_ipv6(void **state)
{
    ota_config_t cfg;
    char err[256] = "";
    (void)state;
    setenv("OTA_LISTEN", "[::1]:8443", 1);
    ota_err_t rc = ota__config_load(&cfg, err, sizeof err);
    if (rc != OTA_OK) {
        assert_int_equal(rc, OTA_ERR_INVALID);
        assert_non_null(strstr(err, "OTA_LISTEN"));
        return;
    }
    /* Copied out and freed first, so a failing check leaks nothing under ASan. */
    char host[64], url[64];
    int port = cfg.listen_port;
    snprintf(host, sizeof host, "%s", cfg.listen_host);
    snprintf(url, sizeof url, "%s", cfg.public_url);
    ota__config_free(&cfg);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8443);
    assert_string_equal(url, "http://[::1]:8443");
    check_numeric_host(host);
}

typedef struct int_case {
    const char *var;
    long min, max;
    size_t field; /* offset in ota_config_t */
    int is_size;
} int_case_t;

static const int_case_t INTS[] = {
    {"OTA_THREADS", 1, 256, offsetof(ota_config_t, threads), 0},
    {"OTA_MAX_BODY", 1024, 4L * 1024 * 1024 * 1024, offsetof(ota_config_t, max_body), 1},
    {"OTA_HEARTBEAT_INTERVAL", 5, 86400, offsetof(ota_config_t, heartbeat_interval), 0},
    {"OTA_DB_STATEMENT_TIMEOUT_MS", 0, 3600 * 1000, offsetof(ota_config_t, db_statement_timeout_ms), 0},
    {"OTA_DB_BULK_TIMEOUT_MS", 0, 3600 * 1000, offsetof(ota_config_t, db_bulk_timeout_ms), 0},
    {"OTA_APPLY_TIMEOUT", 60, 30L * 86400, offsetof(ota_config_t, apply_timeout), 0},
    {"OTA_DEFERRED_WRITE_MS", 100, 60000, offsetof(ota_config_t, deferred_write_ms), 0},
    {"OTA_DELIVERY_COUNT_MS", 100, 60000, offsetof(ota_config_t, delivery_count_ms), 0},
    {"OTA_PRESENCE_INTERVAL", 0, 3600, offsetof(ota_config_t, presence_interval), 0},
    {"OTA_ROLLOUT_TICK_MS", 10, 60000, offsetof(ota_config_t, rollout_tick_ms), 0},
    {"OTA_VERIFY_WINDOW", 1, 30L * 86400, offsetof(ota_config_t, verify_window), 0},
    {"OTA_FLEET_CACHE_MS", 100, 10000, offsetof(ota_config_t, fleet_cache_ms), 0},
    {"OTA_IDLE_TIMEOUT_MS", 100, 3600 * 1000, offsetof(ota_config_t, idle_timeout_ms), 0},
    {"OTA_REQUEST_TIMEOUT", 1, 86400, offsetof(ota_config_t, request_timeout), 0},
    {"OTA_EVENTS_KEEPALIVE_S", 1, 300, offsetof(ota_config_t, events_keepalive_s), 0},
    {"OTA_JOBS_QUEUE_MAX", 1, 10000, offsetof(ota_config_t, jobs_queue_max), 0},
    {"OTA_DEVICE_RATE_LIMIT", 0, 1000000, offsetof(ota_config_t, device_rate_limit), 0},
};

static long field_of(const ota_config_t *cfg, const int_case_t *c)
{
    const char *p = (const char *)cfg + c->field;
    if (c->is_size) {
        size_t v;
        memcpy(&v, p, sizeof v);
        return (long)v;
    }
    int v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void expect_int(const int_case_t *c, long value)
{
    ota_config_t cfg;
    char err[256] = "", text[32];
    snprintf(text, sizeof text, "%ld", value);
    setenv(c->var, text, 1);
    if (ota__config_load(&cfg, err, sizeof err) != OTA_OK)
        fail_msg("%s=%s refused: %s", c->var, text, err);
    assert_int_equal(field_of(&cfg, c), value);
    ota__config_free(&cfg);
    unsetenv(c->var);
}

static void test_integers_in_range(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(INTS) / sizeof(INTS[0]); i++) {
        const int_case_t *c = &INTS[i];
        expect_int(c, c->min);
        expect_int(c, c->max);
        expect_int(c, c->min + 1);
        expect_int(c, (c->min + c->max) / 2);
    }
    /* Leading zeros are still decimal. */
    ota_config_t cfg;
    char err[256];
    setenv("OTA_HEARTBEAT_INTERVAL", "010", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_int_equal(cfg.heartbeat_interval, 10);
    ota__config_free(&cfg);
}

static void test_integers_out_of_range(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(INTS) / sizeof(INTS[0]); i++) {
        const int_case_t *c = &INTS[i];
        char text[32];
        if (c->min > 0) {
            snprintf(text, sizeof text, "%ld", c->min - 1);
            expect_invalid(c->var, text);
        }
        snprintf(text, sizeof text, "%ld", c->max + 1);
        expect_invalid(c->var, text);
        expect_invalid(c->var, "-1");
        expect_invalid(c->var, "99999999999999999999999999");
        expect_invalid(c->var, "9223372036854775808");
    }
}

static void test_integers_not_numeric(void **state)
{
    static const char *const bad[] = {"abc", "12abc", "1e3", "0x10", " 5", "5 ", "+5", "1.5", "ten", "-", "5\n"};
    (void)state;
    for (size_t i = 0; i < sizeof(INTS) / sizeof(INTS[0]); i++)
        for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
            expect_invalid(INTS[i].var, bad[j]);
}

/* The header promises one line: a value with a line break must not split it (nor forge a log line). */
static void test_error_is_one_line(void **state)
{
    static const char *const values[] = {"abc", "5\n", "5\nFATAL: forged", "\r\n"};
    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        for (size_t j = 0; j < sizeof(INTS) / sizeof(INTS[0]); j++) {
            ota_config_t cfg;
            char err[256] = "";
            setenv(INTS[j].var, values[i], 1);
            assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
            if (strpbrk(err, "\r\n") != NULL)
                fail_msg("%s: error is not one line: \"%s\"", INTS[j].var, err);
            unsetenv(INTS[j].var);
        }
        ota_config_t cfg;
        char err[256] = "";
        char listen[64];
        snprintf(listen, sizeof listen, "localhost:%s", values[i]);
        setenv("OTA_LISTEN", listen, 1);
        assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
        if (strpbrk(err, "\r\n") != NULL)
            fail_msg("OTA_LISTEN: error is not one line: \"%s\"", err);
        unsetenv("OTA_LISTEN");
    }
}

static void test_error_truncated_to_cap(void **state)
{
    ota_config_t cfg;
    char err[16];
    (void)state;
    memset(err, 'x', sizeof err);
    setenv("OTA_THREADS", "a-very-long-bad-value-for-the-thread-count", 1);
    assert_int_equal(ota__config_load(&cfg, err, 8), OTA_ERR_INVALID);
    assert_int_equal(strlen(err), 7);
    assert_memory_equal(err, "OTA_THR", 7);
    assert_int_equal(err[8], 'x');
}

static void expect_public_url(const char *value, const char *expected)
{
    ota_config_t cfg;
    char err[256] = "";
    setenv("OTA_PUBLIC_URL", value, 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_string_equal(cfg.public_url, expected);
    ota__config_free(&cfg);
}

static void test_public_url(void **state)
{
    (void)state;
    expect_public_url("https://ota.example.com", "https://ota.example.com");
    expect_public_url("https://ota.example.com/", "https://ota.example.com");
    expect_public_url("https://ota.example.com///", "https://ota.example.com");
    expect_public_url("https://example.com/ota/", "https://example.com/ota");
    expect_public_url("https://example.com/ota", "https://example.com/ota");
    /* The default follows OTA_LISTEN. */
    unsetenv("OTA_PUBLIC_URL");
    expect_listen("10.1.2.3:8000", "10.1.2.3", 8000, "http://10.1.2.3:8000");
}

static void test_bootstrap_key(void **state)
{
    ota_config_t cfg;
    char err[256] = "";
    (void)state;
    setenv("OTA_BOOTSTRAP_API_KEY", "ota_0123456789", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_string_equal(cfg.bootstrap_api_key, "ota_0123456789");
    ota__config_free(&cfg);
}

static void test_metrics_token(void **state)
{
    ota_config_t cfg;
    char err[256] = "";
    (void)state;
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_null(cfg.metrics_token); /* unset: /metrics is open */
    ota__config_free(&cfg);
    setenv("OTA_METRICS_TOKEN", "scrape-0123456789", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_string_equal(cfg.metrics_token, "scrape-0123456789");
    ota__config_free(&cfg);
    /* Tokens no Authorization header could carry, or too short to guess hard, are refused at start. */
    static const char *const BAD[] = {"short", "has a space 0123456789",
                                      "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        setenv("OTA_METRICS_TOKEN", BAD[i], 1);
        assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
        assert_non_null(strstr(err, "OTA_METRICS_TOKEN"));
    }
}

static void test_print_help(void **state)
{
    char *text = NULL;
    size_t len = 0;
    (void)state;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ota__config_print_help(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(text);
    for (size_t i = 0; i < NVARS; i++) {
        char line[64];
        /* Each variable starts a line of its own, not only mentioned in passing. */
        snprintf(line, sizeof line, "\n  %s ", VARS[i]);
        if (strstr(text, line) == NULL)
            fail_msg("--help does not list %s:\n%s", VARS[i], text);
    }
    /* And the defaults that have a fixed value. */
    assert_non_null(strstr(text, "127.0.0.1:8080"));
    assert_non_null(strstr(text, "67108864"));
    assert_non_null(strstr(text, "60"));
    assert_non_null(strstr(text, "5000"));
    free(text);
}

static void test_storage_defaults(void **state)
{
    ota_config_t cfg;
    char err[256];
    (void)state;
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_string_equal(cfg.storage, "fs");
    assert_string_equal(cfg.storage_dir, "data/blobs");
    assert_null(cfg.import_dir);
    assert_null(cfg.s3_endpoint);
    assert_string_equal(cfg.s3_region, "us-east-1");
    assert_int_equal(cfg.s3_path_style, 0);
    assert_int_equal(cfg.url_ttl, 900);
    assert_int_equal(cfg.job_threads, 4);
    ota__config_free(&cfg);
}

static void test_storage_s3(void **state)
{
    ota_config_t cfg;
    char err[256];
    (void)state;
    setenv("OTA_STORAGE", "s3", 1);
    /* s3 without bucket and keys is refused, naming what is missing */
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "OTA_S3_BUCKET"));
    setenv("OTA_S3_BUCKET", "fw", 1);
    setenv("OTA_S3_ACCESS_KEY", "AK", 1);
    setenv("OTA_S3_SECRET_KEY", "SK", 1);
    setenv("OTA_S3_ENDPOINT", "http://127.0.0.1:9000", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_int_equal(cfg.s3_path_style, 1); /* a custom endpoint defaults to path-style */
    assert_string_equal(cfg.s3_bucket, "fw");
    ota__config_free(&cfg);
    setenv("OTA_S3_PATH_STYLE", "0", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    assert_int_equal(cfg.s3_path_style, 0);
    ota__config_free(&cfg);
}

static void test_storage_bad(void **state)
{
    ota_config_t cfg;
    char err[256];
    (void)state;
    setenv("OTA_STORAGE", "ftp", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "OTA_STORAGE"));
    unsetenv("OTA_STORAGE");
    setenv("OTA_URL_TTL", "604801", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "OTA_URL_TTL"));
    setenv("OTA_URL_TTL", "604800", 1);
    setenv("OTA_S3_PATH_STYLE", "2", 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "OTA_S3_PATH_STYLE"));
}

static void test_bootstrap_key_must_be_usable(void **state)
{
    ota_config_t cfg;
    char err[256];
    (void)state;
    const char *bad[] = {"secret-key-1234", "ota_short", "ota_has space inside", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        setenv("OTA_BOOTSTRAP_API_KEY", bad[i], 1);
        assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
        assert_non_null(strstr(err, "OTA_BOOTSTRAP_API_KEY"));
    }
    char long_key[80];
    memset(long_key, 'a', sizeof long_key - 1);
    memcpy(long_key, "ota_", 4);
    long_key[64] = '\0'; /* 64 characters: one too many */
    setenv("OTA_BOOTSTRAP_API_KEY", long_key, 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_ERR_INVALID);
    long_key[63] = '\0';
    setenv("OTA_BOOTSTRAP_API_KEY", long_key, 1);
    assert_int_equal(ota__config_load(&cfg, err, sizeof err), OTA_OK);
    ota__config_free(&cfg);
}

#define T(fn) cmocka_unit_test_setup(fn, clean_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_empty_means_default),
        T(test_all_set),
        T(test_listen),
        T(test_listen_bad),
        T(test_listen_ipv6),
        T(test_integers_in_range),
        T(test_integers_out_of_range),
        T(test_integers_not_numeric),
        T(test_error_is_one_line),
        T(test_error_truncated_to_cap),
        T(test_public_url),
        T(test_bootstrap_key),
        T(test_metrics_token),
        T(test_print_help),
        T(test_storage_defaults),
        T(test_storage_s3),
        T(test_storage_bad),
        T(test_bootstrap_key_must_be_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
