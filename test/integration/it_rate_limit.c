/*
 * Integration: the device tokens' rate limit. A device token that sends
 * more than 10 requests in 10 s (OTA_DEVICE_RATE_LIMIT's default, as the
 * contract has it) gets 429 `rate_limited` with Retry-After on every route
 * it is sent to, before any database work (a refused Bluetooth transfer
 * report adds no row); another device is unaffected, requests with a wrong
 * token do not count against the device, and the limit resets when the
 * window ends.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checks.h"
#include "harness.h"

/* `method` /v1/devices/{id}/`tail` with `token` and an optional JSON `body`. */
static void device_request(const char *method, const char *id, const char *tail, const char *token, const char *body,
                           h_resp_t *r)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/devices/%s%s%s", id, tail[0] != '\0' ? "/" : "", tail);
    h_request(&h_g_srv, method, path, token, body, r);
}

/* The device's requests on every route a device token opens, each answered `want`; `*n` counts them. */
static void use_every_route(const h_device_t *d, const char *transfer, long want, int *n)
{
    static const char *const HEARTBEAT = "{\"firmware_version\": \"1.0.0\"}";
    const struct {
        const char *method, *tail, *body;
        long ok;
    } requests[] = {
        {"POST", "heartbeat", HEARTBEAT, 200},    {"GET", "update", NULL, 200}, {"POST", "relay", HEARTBEAT, 200},
        {"POST", "ble-transfers", transfer, 201}, {"GET", "", NULL, 200},
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        h_resp_t r = {0};
        device_request(requests[i].method, d->id, requests[i].tail, d->token, requests[i].body, &r);
        long expected = want != 0 ? want : requests[i].ok;
        CHECK(r.status == expected, "request %d, %s %s: expected %ld, got %ld: %.2000s", *n + 1, requests[i].method,
              requests[i].tail, expected, r.status, BODY(&r));
        if (want == 429) {
            CHECK(h_error_shape_strict(&r, "rate_limited"), "429 not in the error shape: %s", BODY(&r));
            long retry = strtol(r.retry_after, NULL, 10);
            CHECK(retry >= 1 && retry <= 10, "Retry-After \"%s\"", r.retry_after);
        }
        h_resp_free(&r);
        (*n)++;
    }
}

static long ble_rows(const h_device_t *d)
{
    char expr[200];
    for (long n = 0; n < 20; n++) {
        snprintf(expr, sizeof expr, "(SELECT count(*) FROM ble_transfers WHERE device_id = '%s') = %ld", d->id, n);
        if (h_sql_holds(expr))
            return n;
    }
    return -1;
}

static void test_eleventh_request_refused(void **state)
{
    (void)state;
    char model[32], transfer[160];
    h_device_t d, other;
    h_release_t rel;
    h_make_model(model, sizeof model, "limits");
    h_make_device(model, "1.0.0", &d);
    h_make_device(model, "1.0.0", &other);
    h_make_release(model, "1.1.0", 100, &rel);
    snprintf(transfer, sizeof transfer, "{\"release_id\": \"%s\", \"state\": \"started\"}", rel.id);

    /* A wrong token on the device's path is someone else's count: 401, however many. */
    for (int i = 0; i < 15; i++) {
        h_resp_t r = {0};
        device_request("POST", d.id, "heartbeat", "otd_not-this-devices-token", "{\"firmware_version\": \"1.0.0\"}",
                       &r);
        CHECK(r.status == 401 || r.status == 429, "a wrong token: %ld %s", r.status, BODY(&r));
        h_resp_free(&r);
    }

    int sent = 0;
    use_every_route(&d, transfer, 0, &sent); /* 5 */
    use_every_route(&d, transfer, 0, &sent); /* 10: the limit */
    CHECK(ble_rows(&d) == 2, "two transfers reported, %ld rows", ble_rows(&d));
    use_every_route(&d, transfer, 429, &sent); /* the 11th and after, whatever the route */
    CHECK(ble_rows(&d) == 2, "a refused transfer report added a row: %ld rows", ble_rows(&d));

    int other_sent = 0;
    use_every_route(&other, transfer, 0, &other_sent); /* another device is unaffected */

    /* When the window ends, the device is let through again. */
    h_resp_t r = {0};
    device_request("POST", d.id, "heartbeat", d.token, "{\"firmware_version\": \"1.0.0\"}", &r);
    EXPECT_ERROR(&r, 429, "rate_limited");
    long retry = strtol(r.retry_after, NULL, 10);
    h_resp_free(&r);
    h_sleep_ms(retry * 1000 + 100);
    use_every_route(&d, transfer, 0, &sent);
    CHECK(ble_rows(&d) == 3, "the transfer after the window: %ld rows", ble_rows(&d));
    h_release_free(&rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eleventh_request_refused),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
