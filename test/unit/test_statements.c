/*
 * The statement table's audit contract (db/statements.h): an audited statement inserts into audit_log and takes
 * its actor as its last two parameters ($n-1 the key id as uuid, $n the name as text), which http/call.c appends;
 * a statement that is not audited writes no audit entry. A statement that broke this would record the wrong
 * actor, or none, without any error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "db/statements.h"

/* Whether `sql` names parameter $n with the cast `cast` ("::uuid"). */
static bool has_param(const char *sql, int n, const char *cast)
{
    char want[32];
    snprintf(want, sizeof want, "$%d%s", n, cast);
    return strstr(sql, want) != NULL;
}

static void test_audited_statements_take_the_actor_last(void **state)
{
    (void)state;
    int audited = 0;
    for (int i = 0; i < OTA_STMT_COUNT; i++) {
        const ota_stmt_def_t *def = ota__stmt_def((ota_stmt_t)i);
        assert_non_null(def);
        assert_true(def->nparams <= OTA_STMT_PARAMS_MAX);
        bool inserts = strstr(def->sql, "INSERT INTO audit_log") != NULL;
        if (!def->audited) {
            if (inserts)
                fail_msg("%s inserts into audit_log but is not marked audited", def->name);
            continue;
        }
        audited++;
        if (!inserts || def->nparams < 2 || !has_param(def->sql, def->nparams - 1, "::uuid") ||
            !has_param(def->sql, def->nparams, "::text") || has_param(def->sql, def->nparams + 1, ""))
            fail_msg("%s: audited, but not with its actor as $%d::uuid, $%d::text", def->name, def->nparams - 1,
                     def->nparams);
    }
    /* Every write an API key can make: models, devices (create, update, tags, token, delete), releases (create,
       update, delete), uploads, assignments (create, cancel), rollouts (create, act), keys (create, revoke). */
    assert_int_equal(audited, 16);
}

static void test_device_paths_are_not_audited(void **state)
{
    (void)state;
    static const ota_stmt_t DEVICE[] = {OTA_STMT_HEARTBEAT,    OTA_STMT_BLE_TRANSFER,      OTA_STMT_WRITE_DEFERRED,
                                        OTA_STMT_ROLLOUT_TICK, OTA_STMT_EXPIRE_DELIVERIES, OTA_STMT_API_KEY_AUTH};
    for (size_t i = 0; i < sizeof DEVICE / sizeof DEVICE[0]; i++)
        assert_false(ota__stmt_def(DEVICE[i])->audited);
}

/* The server's own writes (deltas: releases/delta_builder.c) have no API key to record. */
static void test_server_writes_are_not_audited(void **state)
{
    (void)state;
    static const ota_stmt_t SERVER[] = {OTA_STMT_DELTA_CLAIM, OTA_STMT_DELTA_FINISH, OTA_STMT_OBJECT_SWEEP_TAKE};
    for (size_t i = 0; i < sizeof SERVER / sizeof SERVER[0]; i++)
        assert_false(ota__stmt_def(SERVER[i])->audited);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audited_statements_take_the_actor_last),
        cmocka_unit_test(test_device_paths_are_not_audited),
        cmocka_unit_test(test_server_writes_are_not_audited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
