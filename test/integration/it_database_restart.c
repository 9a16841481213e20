/*
 * Integration: the server outlives its database. With PostgreSQL stopped,
 * /readyz and every database-backed route answer 503 `unavailable` with
 * Retry-After (promptly: no hang, no 500, no dropped connection) while
 * /healthz stays 200; once PostgreSQL is back, the server reconnects by
 * itself and serves again. Transient errors of a running database
 * (deadlock, serialization failure, "cannot connect now", a read-only
 * database) are 503 `unavailable` with Retry-After too, never 500.
 *
 * This program stops and restarts its own cluster, so it has its own
 * cluster and server; each test leaves the database running.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

static bool g_pg_down;

/* Under a wrapper (OTA_TEST_WRAPPER, e.g. valgrind) the server is slower; the harness allows 6 times as long. */
static double slowdown(void)
{
    const char *w = getenv("OTA_TEST_WRAPPER");
    return w != NULL && *w != '\0' ? 6.0 : 1.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A 503 as the contract has it: code `unavailable` and a Retry-After header. */
static bool is_unavailable(const h_resp_t *r)
{
    return r->status == 503 && h_error_shape_ok(r, "unavailable") && r->retry_after[0] != '\0';
}

/* A request answered while the database is down: a proper 503, and promptly. */
#define EXPECT_UNAVAILABLE(r, method, path, elapsed)                                                                   \
    CHECK(is_unavailable(r) && (elapsed) < 8.0 * slowdown(),                                                           \
          "%s %s with the database down: expected 503 unavailable with Retry-After within 8 s; got %ld "               \
          "(Retry-After \"%s\") after %.1f s: %.2000s",                                                                \
          (method), (path), (r)->status, (r)->retry_after, (elapsed), BODY(r))

static void db_stop(void)
{
    h_pg_stop(&h_g_pg);
    g_pg_down = true;
}

static void db_start(void)
{
    h_pg_restart(&h_g_pg);
    g_pg_down = false;
}

/* Each test leaves the database up, even when it fails halfway. */
static int test_teardown(void **state)
{
    (void)state;
    if (g_pg_down)
        db_start();
    return 0;
}

/* Polls GET /readyz every 100 ms until it answers `want`; the seconds it took, or -1 after `limit_s`. */
static double wait_readyz(long want, double limit_s, h_resp_t *last)
{
    double start = now_s();
    for (;;) {
        h_resp_free(last);
        h_http(&h_g_srv, "GET", "/readyz", NULL, NULL, 0, NULL, last);
        if (last->status == want)
            return now_s() - start;
        if (now_s() - start > limit_s * slowdown())
            return -1;
        nap_ms(100);
    }
}

/* POST /v1/models named `name`; the answer in `r`. */
static void post_model(const char *name, h_resp_t *r)
{
    char id[32];
    h_unique(id, sizeof id, "m-");
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, r, "{s:s, s:s}", "id", id, "name", name);
}

static void post_new_model(h_resp_t *r)
{
    post_model("Again", r);
}

static void get_models(h_resp_t *r)
{
    h_http(&h_g_srv, "GET", "/v1/models", h_g_srv.admin_key, NULL, 0, NULL, r);
}

/* Sends a request (`send`) every 200 ms until it answers `want`; until then only 503 unavailable, for 15 s at most. */
static void until_answered(long want, const char *what, void (*send)(h_resp_t *r))
{
    h_resp_t r = {0};
    double start = now_s();
    for (;;) {
        send(&r);
        if (r.status == want)
            break;
        CHECK(is_unavailable(&r) && now_s() - start < 15.0 * slowdown(), "%s: got %ld: %.2000s", what, r.status,
              BODY(&r));
        h_resp_free(&r);
        nap_ms(200);
    }
    h_resp_free(&r);
}

static void test_survives_database_restart(void **state)
{
    (void)state;
    char model[32], hex[17], device_path[96], device_token[128];
    h_resp_t r = {0};

    /* Before: ready, and a device to read later. */
    h_http(&h_g_srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    h_random_hex(hex, 16);
    snprintf(model, sizeof model, "m-%s", hex);
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", model, "name", "Before");
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s}", "serial", hex, "model", model);
    EXPECT_STATUS(&r, 201);
    snprintf(device_path, sizeof device_path, "/v1/devices/%s", h_jstr(r.json, "id"));
    snprintf(device_token, sizeof device_token, "%s", h_jstr(r.json, "token"));
    h_resp_free(&r);

    db_stop();

    /* readyz notices within 10 s. */
    double took = wait_readyz(503, 10.0, &r);
    CHECK(took >= 0, "GET /readyz did not become 503 within 10 s of stopping PostgreSQL; last %ld: %.2000s", r.status,
          BODY(&r));
    CHECK(is_unavailable(&r), "readyz 503 without the contract's shape or Retry-After (\"%s\"): %.2000s", r.retry_after,
          BODY(&r));
    h_resp_free(&r);

    /* Database-backed routes answer 503 too, promptly, whatever the credential. */
    const struct {
        const char *method, *path, *token, *body;
    } cases[] = {
        {"GET", "/v1/models", h_g_srv.admin_key, NULL},
        {"POST", "/v1/models", h_g_srv.admin_key, "{\"id\":\"down-model\",\"name\":\"x\"}"},
        {"GET", "/v1/devices", h_g_srv.admin_key, NULL},
        {"GET", device_path, device_token, NULL},
        {"GET", "/readyz", NULL, NULL},
    };
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            double t0 = now_s();
            h_request(&h_g_srv, cases[i].method, cases[i].path, cases[i].token, cases[i].body, &r);
            double elapsed = now_s() - t0;
            EXPECT_UNAVAILABLE(&r, cases[i].method, cases[i].path, elapsed);
            h_resp_free(&r);
        }
    }

    /* The liveness probe needs no database. */
    h_http(&h_g_srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    /* Several requests on one connection: each 503, and the connection survives them. */
    const char *methods[] = {"GET", "GET", "GET", "GET"};
    const char *paths[] = {"/v1/models", "/healthz", "/v1/devices", "/readyz"};
    long statuses[4] = {0};
    long conns = h_http_same_connection(&h_g_srv, 4, methods, paths, NULL, NULL, h_g_srv.admin_key, statuses);
    CHECK(statuses[0] == 503 && statuses[1] == 200 && statuses[2] == 503 && statuses[3] == 503,
          "on one connection with the database down: %ld %ld %ld %ld, want 503 200 503 503", statuses[0], statuses[1],
          statuses[2], statuses[3]);
    CHECK(conns == 1, "a 503 closed the connection (%ld connections for 4 requests)", conns);

    db_start();

    /* Within 15 s: ready again, and writes work. */
    double start = now_s();
    took = wait_readyz(200, 15.0, &r);
    CHECK(took >= 0, "GET /readyz not 200 within 15 s of restarting PostgreSQL; last %ld: %.2000s", r.status, BODY(&r));
    h_resp_free(&r);

    char model2[32];
    h_random_hex(hex, 16);
    snprintf(model2, sizeof model2, "m-%s", hex);
    for (;;) {
        h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", model2, "name", "After");
        if (r.status == 201)
            break;
        /* Another event-loop thread may still be reconnecting: only a proper 503 is acceptable meanwhile. */
        CHECK(is_unavailable(&r) && now_s() - start < 15.0 * slowdown(),
              "POST /v1/models after the restart: got %ld after %.1f s: %.2000s", r.status, now_s() - start, BODY(&r));
        h_resp_free(&r);
        nap_ms(200);
    }
    h_resp_free(&r);

    /* After a further reconnect interval, every connection is back: reads through all threads work. */
    nap_ms((long)(2500 * slowdown()));
    for (int i = 0; i < 20; i++) {
        h_http(&h_g_srv, "GET", device_path, device_token, NULL, 0, NULL, &r);
        CHECK(r.status == 200, "GET %s #%d after recovery: %ld %.2000s", device_path, i, r.status, BODY(&r));
        h_resp_free(&r);
        char path[64];
        snprintf(path, sizeof path, "/v1/models/%s", i % 2 ? model : model2);
        h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
        CHECK(r.status == 200, "GET %s #%d after recovery: %ld %.2000s", path, i, r.status, BODY(&r));
        h_resp_free(&r);
    }
}

/* A second outage: recovery is not a one-off. */
static void test_survives_second_restart(void **state)
{
    (void)state;
    h_resp_t r = {0};
    double took = wait_readyz(200, 15.0, &r);
    CHECK(took >= 0, "not ready at the start: %ld %.2000s", r.status, BODY(&r));
    h_resp_free(&r);

    db_stop();
    took = wait_readyz(503, 10.0, &r);
    CHECK(took >= 0, "GET /readyz did not become 503 within 10 s; last %ld: %.2000s", r.status, BODY(&r));
    h_resp_free(&r);
    /* Stay down across several reconnect attempts. */
    nap_ms(3000);
    h_http(&h_g_srv, "GET", "/v1/models", h_g_srv.admin_key, NULL, 0, NULL, &r);
    CHECK(is_unavailable(&r), "GET /v1/models 3 s into the outage: %ld %.2000s", r.status, BODY(&r));
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    db_start();
    took = wait_readyz(200, 15.0, &r);
    CHECK(took >= 0, "GET /readyz not 200 within 15 s of the second restart; last %ld: %.2000s", r.status, BODY(&r));
    h_resp_free(&r);

    until_answered(201, "POST /v1/models", post_new_model);
}

/* ---- transient errors of a running database ------------------------------------------------------ */

static bool log_mentions(const char *what)
{
    FILE *f = fopen(h_g_srv.log_path, "r");
    char line[4096];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

/*
 * Each SQLSTATE raised for real by PostgreSQL inside the route's own statement: a trigger on models raises the
 * code that the model's name carries, as a deadlock or a serialization failure would abort that statement.
 */
static void test_transient_sqlstates_are_unavailable(void **state)
{
    (void)state;
    static const char *const CODES[] = {"40P01", "40001", "57P03", "25006", NULL};
    CHECK(h_pg_sql(&h_g_pg, "CREATE OR REPLACE FUNCTION it_raise_sqlstate() RETURNS trigger LANGUAGE plpgsql AS $$ "
                            "BEGIN IF NEW.name LIKE 'raise %' THEN "
                            "RAISE EXCEPTION 'raised by the test' USING ERRCODE = substr(NEW.name, 7, 5); END IF; "
                            "RETURN NEW; END $$; "
                            "CREATE OR REPLACE TRIGGER it_raise_sqlstate BEFORE INSERT ON models "
                            "FOR EACH ROW EXECUTE FUNCTION it_raise_sqlstate()") == 0,
          "the trigger");
    for (const char *const *code = CODES; *code != NULL; code++) {
        char name[32];
        h_resp_t r = {0};
        snprintf(name, sizeof name, "raise %s", *code);
        post_model(name, &r);
        CHECK(is_unavailable(&r), "SQLSTATE %s: expected 503 unavailable with Retry-After, got %ld: %.2000s", *code,
              r.status, BODY(&r));
        h_resp_free(&r);
    }
    /* The same route without the trigger's condition still works: the 503s came from the codes alone. */
    h_resp_t ok = {0};
    post_model("a plain model", &ok);
    EXPECT_STATUS(&ok, 201);
    h_resp_free(&ok);
    CHECK(h_pg_sql(&h_g_pg, "DROP TRIGGER it_raise_sqlstate ON models; DROP FUNCTION it_raise_sqlstate()") == 0,
          "dropping the trigger");
}

/* Makes the database read-write again, from a session that starts read-only under the database's default. */
static int reset_read_only(void)
{
    /* Allowed before the transaction's first query: the default applies to new transactions only. */
    return h_pg_sql(&h_g_pg, "SET transaction_read_only = off; ALTER DATABASE ota RESET default_transaction_read_only");
}

/* Ends the server's database sessions; it reconnects, and the new sessions take the database's defaults. */
static void reconnect_server(void)
{
    CHECK(h_pg_sql(&h_g_pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'ota' AND "
                            "backend_type = 'client backend' AND pid <> pg_backend_pid()") == 0,
          "terminating the server's sessions");
}

static int read_only_teardown(void **state)
{
    (void)state;
    reset_read_only();
    reconnect_server();
    return 0;
}

/* A database that turned read-only (a primary demoted in a failover) makes every write 25006: 503, not 500. */
static void test_read_only_database_is_unavailable(void **state)
{
    (void)state;
    h_resp_t r = {0};
    CHECK(h_pg_sql(&h_g_pg, "ALTER DATABASE ota SET default_transaction_read_only = on") == 0, "read-only");
    reconnect_server();
    double start = now_s();
    for (;;) { /* the request that meets a terminated session is 503 too; wait for the read-only one */
        post_model("read-only", &r);
        CHECK(is_unavailable(&r), "a write to a read-only database: expected 503 unavailable, got %ld: %.2000s",
              r.status, BODY(&r));
        if (log_mentions("25006: cannot execute")) /* PostgreSQL's own error, not the trigger test's */
            break;
        CHECK(now_s() - start < 15.0 * slowdown(), "no write met the read-only database (SQLSTATE 25006)");
        h_resp_free(&r);
        nap_ms(200);
    }
    h_resp_free(&r);
    until_answered(200, "GET /v1/models", get_models); /* reads still work, once every thread has reconnected */

    CHECK(reset_read_only() == 0, "read-write again");
    reconnect_server();
    until_answered(201, "POST /v1/models", post_new_model);
}

int main(void)
{
    /* Recovery is checked by reading one device with its token twenty times through every thread, more than the
       10 requests in 10 s a device may send; it_rate_limit tests the limit itself. */
    h_server_env_all = "OTA_DEVICE_RATE_LIMIT=1000000";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_survives_database_restart, test_teardown),
        cmocka_unit_test_teardown(test_survives_second_restart, test_teardown),
        cmocka_unit_test(test_transient_sqlstates_are_unavailable),
        cmocka_unit_test_teardown(test_read_only_database_is_unavailable, read_only_teardown),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
