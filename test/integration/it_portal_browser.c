/*
 * Integration: the portal in a real browser. Starts PostgreSQL and the real
 * ota-server (the harness), registers a few devices through the API, then
 * runs test/portal/portal.test.mjs with node: Debian's chromium, headless,
 * driven by puppeteer-core (scripts/deps installs both), signs in as an
 * operator does and keeps screenshots in <build>/portal-screenshots/.
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

#define DEVICES 3

static void test_sign_in_and_fleet(void **state)
{
    (void)state;
    char model[32], command[1024];
    h_device_t d;
    h_make_model(model, sizeof model, "Browser");
    for (int i = 0; i < DEVICES; i++)
        h_make_device(model, "1.0.0", &d);
    /* The script's output goes to the test's, so a failure shows what the browser saw. */
    snprintf(command, sizeof command, "node '%s/test/portal/portal.test.mjs' '%s' '%s' '%s/portal-screenshots' %d 2>&1",
             OTA_SOURCE_DIR, h_g_srv.base_url, h_g_srv.admin_key, OTA_BUILD_DIR, DEVICES);
    int status = system(command);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the browser test failed (status %d)", status);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_in_and_fleet),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
