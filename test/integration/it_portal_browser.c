/*
 * Integration: the portal in a real browser. Starts PostgreSQL and the real
 * ota-server (the harness), registers a few devices through the API, then
 * runs test/portal/portal.test.mjs with node: Debian's chromium, headless,
 * driven by puppeteer-core (scripts/deps installs both), signs in as an
 * operator does, reads the Fleet and Devices pages, and keeps screenshots in
 * <build>/portal-screenshots/.
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

/* More than a page (50): 56 made in SQL, one through the API whose serial is markup. */
#define DEVICES 57

static void test_sign_in_fleet_and_devices(void **state)
{
    (void)state;
    char model[32], command[1024], sql[512];
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
    /* The script's output goes to the test's, so a failure shows what the browser saw. */
    snprintf(command, sizeof command, "node '%s/test/portal/portal.test.mjs' '%s' '%s' '%s/portal-screenshots' %d 2>&1",
             OTA_SOURCE_DIR, h_g_srv.base_url, h_g_srv.admin_key, OTA_BUILD_DIR, DEVICES);
    int status = system(command);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the browser test failed (status %d)", status);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_in_fleet_and_devices),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
