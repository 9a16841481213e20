/*
 * Integration: the portal in a real browser. Starts PostgreSQL and the real
 * ota-server, then runs the scripts of test/portal/ with node: Debian's
 * chromium, headless, driven by puppeteer-core (scripts/deps installs both),
 * each doing what an operator does. Screenshots of every page at 1280 and
 * 390 px wide are kept in <build>/portal-screenshots/.
 *
 * The server tells devices to heartbeat every 5 s (the shortest allowed), so
 * a device's download reports its progress while the browser watches.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "checks.h"

#ifndef OTA_BUILD_DIR
#error "OTA_BUILD_DIR must name the build folder (the screenshots go there)"
#endif
#ifndef OTA_DEVICE_BIN
#error "OTA_DEVICE_BIN must be defined to the path of the ota-device binary"
#endif

/* More than a page (50): 56 made in SQL, one through the API whose serial is markup. */
#define DEVICES 57

/* Runs test/portal/<script> with node; its output goes to the test's, so a failure shows what the browser saw. */
static void run_script(const char *script)
{
    char command[1024], work[sizeof h_g_pg.dir + 16];
    snprintf(work, sizeof work, "%s/portal-work", h_g_pg.dir);
    setenv("PORTAL_BASE", h_g_srv.base_url, 1);
    setenv("PORTAL_ADMIN_KEY", h_g_srv.admin_key, 1);
    setenv("PORTAL_SHOTS", OTA_BUILD_DIR "/portal-screenshots", 1);
    setenv("PORTAL_DEVICE_BIN", OTA_DEVICE_BIN, 1);
    setenv("PORTAL_WORK", work, 1);
    snprintf(command, sizeof command, "node '%s/test/portal/%s' 2>&1", OTA_SOURCE_DIR, script);
    int status = system(command);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed (status %d)", script, status);
}

static void test_sign_in_fleet_and_devices(void **state)
{
    (void)state;
    char model[32], sql[512], count[16];
    h_resp_t r = {0};
    h_make_model(model, sizeof model, "Browser");
    snprintf(sql, sizeof sql,
             "INSERT INTO devices (id, serial, model_id, token_hash, firmware_version) SELECT gen_random_uuid(), "
             "'BULK-' || i, '%s', sha256(convert_to('browser-' || i, 'UTF8')), '1.0.0' FROM generate_series(1, %d) i",
             model, DEVICES - 1);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "inserting the devices");
    h_json(&h_g_srv, "POST", "/v1/devices", h_g_srv.admin_key, &r, "{s:s, s:s}", "serial",
           "<img src=x onerror=alert(1)>", "model", model);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    snprintf(count, sizeof count, "%d", DEVICES);
    setenv("PORTAL_DEVICES", count, 1);
    run_script("sign_in.test.mjs");
}

/* The Bota flow, from a new model to an applied update, with ota-device beside the browser. */
static void test_bota_flow(void **state)
{
    (void)state;
    run_script("bota.test.mjs");
}

/* A rollout made from its preview, paused and resumed, its progress live. */
static void test_rollout(void **state)
{
    (void)state;
    run_script("rollout.test.mjs");
}

/* Keys and audit: a key made, found in the audit log, revoked. */
static void test_keys(void **state)
{
    (void)state;
    run_script("keys.test.mjs");
}

/* A viewer key: every page, no write control. */
static void test_viewer(void **state)
{
    (void)state;
    char viewer[128];
    h_cli_api_key("viewer", viewer);
    setenv("PORTAL_VIEWER_KEY", viewer, 1);
    run_script("viewer.test.mjs");
}

static int setup(void **state)
{
    (void)state;
    static const char *const env[] = {"OTA_HEARTBEAT_INTERVAL=5", NULL};
    h_pg_start(&h_g_pg);
    h_server_start(&h_g_srv, &h_g_pg, env);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_in_fleet_and_devices),
        cmocka_unit_test(test_bota_flow),
        cmocka_unit_test(test_rollout),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_viewer),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
