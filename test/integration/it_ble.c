/*
 * Integration: the Bluetooth path of the phone app (openapi.yaml: "Bluetooth path
 * (mobile app)", with what it shares with "Heartbeat (device)" and
 * "Assignments") against the real ota-server on a throwaway PostgreSQL
 * cluster, with the fs storage backend.
 *
 * GET /v1/devices/{id}/update (the offer: the active assignment's release,
 * else the newest released release of the model newer than the firmware by
 * semver precedence, with a ufw link that serves the ufw bytes), POST
 * /v1/devices/{id}/relay (a relayed heartbeat: the same bookkeeping, never a
 * manifest, the pending assignment with its ufw link, and the device counts
 * as Bluetooth-connected), POST /v1/devices/{id}/ble-transfers (bookkeeping
 * only; refused while recording), and an update finished over Bluetooth
 * being applied when the device reports the new version. Each test makes its
 * own model, releases and devices, so none depends on another's order.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "checks.h"

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- requests ----------------------------------------------------------------------------------- */

/* "/v1/devices/{device_id}/{what}" into `out` (128 bytes). */
static void device_path(char out[128], const char *device_id, const char *what)
{
    snprintf(out, 128, "/v1/devices/%s/%s", device_id, what);
}

/* GET /v1/devices/{device_id}/update with `token` (NULL: none). */
static void update_on(const char *device_id, const char *token, h_resp_t *out)
{
    char path[128];
    device_path(path, device_id, "update");
    h_http(&h_g_srv, "GET", path, token, NULL, 0, NULL, out);
}

/* POST /v1/devices/{device_id}/relay with `token` (NULL: none) and the JSON text `body`. */
static void relay_on(const char *device_id, const char *token, const char *body, h_resp_t *out)
{
    char path[128];
    device_path(path, device_id, "relay");
    h_request(&h_g_srv, "POST", path, token, body, out);
}

/* POST /v1/devices/{device_id}/ble-transfers with `token` (NULL: none) and the JSON text `body`. */
static void transfer_on(const char *device_id, const char *token, const char *body, h_resp_t *out)
{
    char path[128];
    device_path(path, device_id, "ble-transfers");
    h_request(&h_g_srv, "POST", path, token, body, out);
}

/* ---- expectations ------------------------------------------------------------------------------- */

/* `link` is the ufw link of `rel`: its size, crc32 and sha256, a fresh url_expires_at (default OTA_URL_TTL 900),
 * and a url that serves exactly the ufw bytes. `what` names the answer in messages. */
static void expect_ufw_link(json_t *link, const h_release_t *rel, const char *what)
{
    char *text = json_dumps(link, JSON_COMPACT);
    CHECK(rel->ufw != NULL, "%s: the release has no ufw, yet there is a link: %s", what, text);
    CHECK(json_is_object(link), "%s: ufw is no object: %s", what, text);
    CHECK(json_is_integer(json_object_get(link, "size")) && h_jint(link, "size") == (json_int_t)rel->ufw_len,
          "%s: ufw.size, want %zu: %s", what, rel->ufw_len, text);
    CHECK(json_is_integer(json_object_get(link, "crc32")) && h_jint(link, "crc32") == (json_int_t)rel->ufw_crc32,
          "%s: ufw.crc32, want %u: %s", what, (unsigned)rel->ufw_crc32, text);
    CHECK(h_streq(h_jstr(link, "sha256"), rel->ufw_sha256), "%s: ufw.sha256, want %s: %s", what, rel->ufw_sha256, text);
    time_t expires;
    CHECK(h_rfc3339_utc(h_jstr(link, "url_expires_at"), &expires) && expires > time(NULL) &&
              expires <= time(NULL) + 1000,
          "%s: ufw.url_expires_at: %s", what, text);
    const char *url = h_jstr(link, "url");
    CHECK(url != NULL && strncmp(url, "http", 4) == 0, "%s: ufw.url: %s", what, text);
    h_buf_t b;
    long status = h_download(url, &b);
    CHECK(status == 200, "%s: GET %s: %ld", what, url, status);
    CHECK(b.len == rel->ufw_len && memcmp(b.p, rel->ufw, rel->ufw_len) == 0,
          "%s: GET %s: %zu bytes that differ from the %zu of the ufw", what, url, b.len, rel->ufw_len);
    free(b.p);
    free(text);
}

/* GET /v1/releases/{id} as the admin (caller decrefs). */
static json_t *get_release(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/releases/%s", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *rel = json_incref(r.json);
    h_resp_free(&r);
    return rel;
}

/* GET /v1/devices/{id}/update with the device's token: 200 with the contract's shape (into `out`). */
static void update_ok(const h_device_t *d, h_resp_t *out)
{
    update_on(d->id, d->token, out);
    EXPECT_STATUS(out, 200);
    CHECK(strncasecmp(out->content_type, "application/json", 16) == 0, "content type %s", out->content_type);
    json_t *j = out->json;
    CHECK(json_is_boolean(json_object_get(j, "update_available")), "update_available: %s", BODY(out));
    json_t *aid = json_object_get(j, "assignment_id"), *rel = json_object_get(j, "release"),
           *ufw = json_object_get(j, "ufw");
    CHECK(aid != NULL && (json_is_null(aid) || h_is_uuid(json_string_value(aid))), "assignment_id: %s", BODY(out));
    CHECK(rel != NULL && (json_is_null(rel) || json_is_object(rel)), "release: %s", BODY(out));
    CHECK(ufw != NULL && (json_is_null(ufw) || json_is_object(ufw)), "ufw: %s", BODY(out));
}

/* The device is offered nothing: update_available false and nulls. */
static void expect_no_update(const h_device_t *d, const char *why)
{
    h_resp_t r = {0};
    update_ok(d, &r);
    CHECK(json_is_false(json_object_get(r.json, "update_available")) && h_jnull(r.json, "assignment_id") &&
              h_jnull(r.json, "release") && h_jnull(r.json, "ufw"),
          "%s: expected no update, got %s", why, BODY(&r));
    h_resp_free(&r);
}

/* The device is offered `rel` (as GET /v1/releases/{id} shows it), through assignment `aid` (NULL: as the newest
 * release, assignment_id null), with rel's ufw link or ufw null. */
static void expect_update(const h_device_t *d, const h_release_t *rel, const char *aid, const char *why)
{
    h_resp_t r = {0};
    update_ok(d, &r);
    CHECK(json_is_true(json_object_get(r.json, "update_available")), "%s: expected an update to %s, got %s", why,
          rel->version, BODY(&r));
    json_t *offered = json_object_get(r.json, "release");
    CHECK(h_streq(h_jstr(offered, "id"), rel->id) && h_streq(h_jstr(offered, "version"), rel->version),
          "%s: expected release %s (%s) offered, got %s", why, rel->version, rel->id, BODY(&r));
    json_t *want = get_release(rel->id);
    char *want_text = json_dumps(want, JSON_COMPACT);
    CHECK(json_equal(offered, want), "%s: the offered release differs from GET /v1/releases/{id} %s: %s", why,
          want_text, BODY(&r));
    free(want_text);
    json_decref(want);
    if (aid != NULL)
        CHECK(h_streq(h_jstr(r.json, "assignment_id"), aid), "%s: assignment_id, want %s: %s", why, aid, BODY(&r));
    else
        CHECK(h_jnull(r.json, "assignment_id"), "%s: assignment_id, want null: %s", why, BODY(&r));
    if (rel->ufw != NULL)
        expect_ufw_link(json_object_get(r.json, "ufw"), rel, why);
    else
        CHECK(h_jnull(r.json, "ufw"), "%s: the release has no ufw, want ufw null: %s", why, BODY(&r));
    h_resp_free(&r);
}

/* A relay of `d` with `body` that must be answered 200 with the relay's shape: the heartbeat's fields, never a
 * manifest, deferred null, and a pending_assignment (null or an object). */
static void relay_ok(const h_device_t *d, const char *body, h_resp_t *out)
{
    relay_on(d->id, d->token, body, out);
    CHECK(out->status == 200, "relay %s: expected 200, got %ld: %.2000s", body, out->status, BODY(out));
    time_t t;
    CHECK(h_rfc3339_utc(h_jstr(out->json, "server_time"), &t) && labs((long)(t - time(NULL))) < 120,
          "relay: server_time: %s", BODY(out));
    CHECK(h_jint(out->json, "heartbeat_interval_s") == 60, "relay: heartbeat_interval_s: %s", BODY(out));
    CHECK(h_jnull(out->json, "ota"), "relay %s: ota must always be null (no manifest): %s", body, BODY(out));
    CHECK(h_jnull(out->json, "deferred"), "relay %s: deferred must be null: %s", body, BODY(out));
    json_t *p = json_object_get(out->json, "pending_assignment");
    CHECK(p != NULL && (json_is_null(p) || json_is_object(p)), "relay: pending_assignment: %s", BODY(out));
}

/* A relay reporting only `firmware`. */
static void relay_fw(const h_device_t *d, const char *firmware, h_resp_t *out)
{
    char body[128];
    snprintf(body, sizeof body, "{\"firmware_version\": \"%s\"}", firmware);
    relay_ok(d, body, out);
}

/* The relay answer's pending_assignment is assignment `aid` exactly as GET /v1/assignments/{id} shows it without
 * events, plus the ufw link of `rel` (or ufw null). */
static void expect_pending(const h_resp_t *r, const char *aid, const h_release_t *rel)
{
    json_t *p = json_object_get(r->json, "pending_assignment");
    CHECK(json_is_object(p), "expected pending_assignment %s: %s", aid, BODY(r));
    CHECK(json_object_get(p, "ufw") != NULL, "pending_assignment without ufw: %s", BODY(r));
    CHECK(json_object_get(p, "events") == NULL, "pending_assignment carries events: %s", BODY(r));
    json_t *a = h_get_assignment(aid);
    json_object_del(a, "events");
    json_t *plain = json_deep_copy(p);
    json_object_del(plain, "ufw");
    char *want = json_dumps(a, JSON_COMPACT);
    CHECK(json_equal(plain, a), "pending_assignment differs from GET /v1/assignments/{id} %s: %s", want, BODY(r));
    free(want);
    json_decref(plain);
    json_decref(a);
    if (rel->ufw != NULL)
        expect_ufw_link(json_object_get(p, "ufw"), rel, "relay pending_assignment");
    else
        CHECK(h_jnull(p, "ufw"), "pending_assignment.ufw, want null (no ufw artifact): %s", BODY(r));
}

/* GET /v1/devices/{id}'s ble_connected is `want`. */
static void expect_ble_connected(const h_device_t *d, bool want)
{
    json_t *dev = h_get_device(d->id);
    char *text = json_dumps(dev, JSON_COMPACT);
    CHECK(json_is_boolean(json_object_get(dev, "ble_connected")) &&
              json_is_true(json_object_get(dev, "ble_connected")) == want,
          "ble_connected, want %s: %s", want ? "true" : "false", text);
    free(text);
    json_decref(dev);
}

/* POST ble-transfers {"release_id", "state", "error"?} with the device's token: 201 with the contract's shape. The
 * new transfer's id goes to `id` (40 bytes, or NULL). */
static void transfer_ok(const h_device_t *d, const char *release_id, const char *state, const char *error, char *id)
{
    json_t *body = json_pack("{s:s, s:s}", "release_id", release_id, "state", state);
    if (error != NULL)
        json_object_set_new(body, "error", json_string(error));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    h_resp_t r = {0};
    transfer_on(d->id, d->token, text, &r);
    CHECK(r.status == 201, "ble-transfers %s: expected 201, got %ld: %.2000s", text, r.status, BODY(&r));
    json_t *t = r.json;
    time_t at;
    CHECK(h_is_uuid(h_jstr(t, "id")), "id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(t, "device_id"), d->id), "device_id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(t, "release_id"), release_id), "release_id: %s", BODY(&r));
    CHECK(h_streq(h_jstr(t, "state"), state), "state: %s", BODY(&r));
    CHECK(error != NULL ? h_streq(h_jstr(t, "error"), error) : h_jnull(t, "error"), "error: %s", BODY(&r));
    CHECK(h_rfc3339_utc(h_jstr(t, "created_at"), &at) && labs((long)(at - time(NULL))) < 120, "created_at: %s",
          BODY(&r));
    if (id != NULL)
        snprintf(id, 40, "%s", h_jstr(t, "id"));
    h_resp_free(&r);
    free(text);
}

/* PATCH /v1/releases/{id} {"status": "withdrawn"}. */
static void withdraw(const h_release_t *rel)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/releases/%s", rel->id);
    h_resp_t r = {0};
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "withdrawn");
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* ---- GET /v1/devices/{id}/update ---------------------------------------------------------------- */

static void test_update_credentials(void **state)
{
    (void)state;
    char model[32], unknown[40], path[128];
    h_make_model(model, sizeof model, "BLE credentials");
    h_release_t rel;
    h_make_release_ufw(model, "2.0.0", 600, 300, &rel);
    h_device_t d, other;
    h_make_device(model, "1.0.0", &d);
    h_make_device(model, "1.0.0", &other);
    h_random_uuid(unknown, sizeof unknown);
    h_resp_t r = {0};

    update_on(d.id, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    update_on(d.id, "otd_0000000000000000000000000000000000000000000", &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    /* Valid credentials that are not this device's: an API key, another device's token. */
    update_on(d.id, h_g_srv.admin_key, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    update_on(d.id, other.token, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    update_on(unknown, other.token, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/v1/devices/not-a-uuid/update", d.token, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    device_path(path, d.id, "update");
    h_http(&h_g_srv, "DELETE", path, d.token, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 405, "method_not_allowed");
    h_resp_free(&r);

    /* The device's own token: the offer. Asking is no heartbeat: nothing is recorded. */
    expect_update(&d, &rel, NULL, "own token");
    json_t *dev = h_get_device(d.id);
    CHECK(h_jnull(dev, "last_seen_at") && json_is_false(json_object_get(dev, "ble_connected")),
          "GET update recorded presence: %s", json_dumps(dev, JSON_COMPACT));
    json_decref(dev);
    h_release_free(&rel);
}

static void test_update_nothing_newer(void **state)
{
    (void)state;
    char model[32], empty_model[32];
    h_make_model(model, sizeof model, "BLE nothing newer");
    h_make_model(empty_model, sizeof empty_model, "BLE no releases");
    h_release_t old, same;
    h_make_release_ufw(model, "0.9.0", 400, 200, &old);
    h_make_release_ufw(model, "1.0.0", 400, 200, &same);
    h_device_t d, lone;
    h_make_device(model, "1.0.0", &d);
    h_make_device(empty_model, "1.0.0", &lone);

    expect_no_update(&d, "only older and equal releases");
    expect_no_update(&lone, "a model without releases");
    /* A pre-release of the running version is older than it. */
    h_release_t rc;
    h_make_release(model, "1.0.0-rc.2", 400, &rc);
    expect_no_update(&d, "1.0.0-rc.2 < 1.0.0");
    h_release_free(&old);
    h_release_free(&same);
    h_release_free(&rc);
}

static void test_update_semver_precedence(void **state)
{
    (void)state;
    char model[32], other_model[32];
    h_make_model(model, sizeof model, "BLE semver");
    h_make_model(other_model, sizeof other_model, "BLE semver, other model");
    h_device_t d, rc_dev, current;
    h_make_device(model, "1.2.0", &d);

    /* Made in an order where neither creation time nor text order picks the right one. */
    h_release_t r1_10, r1_9, r2, r2rc, r3, foreign;
    h_make_release_ufw(model, "1.10.0", 900, 700, &r1_10);
    h_make_release_ufw(model, "1.9.0", 900, 701, &r1_9);
    expect_update(&d, &r1_10, NULL, "1.10.0 beats 1.9.0");

    h_make_release_ufw(model, "2.0.0", 900, 702, &r2);
    h_make_release_ufw(model, "2.0.0-rc.1", 900, 703, &r2rc);
    expect_update(&d, &r2, NULL, "2.0.0 beats 2.0.0-rc.1 and 1.10.0");

    /* Withdrawn releases and other models' releases are never offered. */
    h_make_release_ufw(model, "3.0.0", 900, 704, &r3);
    expect_update(&d, &r3, NULL, "3.0.0 while released");
    withdraw(&r3);
    h_make_release_ufw(other_model, "9.0.0", 900, 705, &foreign);
    expect_update(&d, &r2, NULL, "3.0.0 withdrawn, 9.0.0 of another model");

    /* A device on the pre-release is offered the release; one on 2.0.0 nothing. */
    h_make_device(model, "2.0.0-rc.1", &rc_dev);
    expect_update(&rc_dev, &r2, NULL, "2.0.0-rc.1 -> 2.0.0");
    h_make_device(model, "2.0.0", &current);
    expect_no_update(&current, "on 2.0.0 (3.0.0 withdrawn)");

    /* The offer follows the firmware the device last reported. */
    h_resp_t r = {0};
    h_heartbeat_fw(&d, "2.0.0", &r);
    h_resp_free(&r);
    expect_no_update(&d, "after reporting 2.0.0");
    h_heartbeat_fw(&d, "1.9.5", &r);
    h_resp_free(&r);
    expect_update(&d, &r2, NULL, "after reporting 1.9.5");

    h_release_free(&r1_10);
    h_release_free(&r1_9);
    h_release_free(&r2);
    h_release_free(&r2rc);
    h_release_free(&r3);
    h_release_free(&foreign);
}

static void test_update_without_ufw(void **state)
{
    (void)state;
    char model[32];
    h_make_model(model, sizeof model, "BLE no ufw");
    h_release_t rel;
    h_make_release(model, "1.1.0", 800, &rel);
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    expect_update(&d, &rel, NULL, "a release without ufw");
    h_release_free(&rel);
}

static void test_update_active_assignment(void **state)
{
    (void)state;
    char model[32], aid[40];
    h_make_model(model, sizeof model, "BLE assignment offer");
    h_release_t older, assigned, newest;
    h_make_release_ufw(model, "0.9.0", 500, 250, &older);
    h_make_release_ufw(model, "1.5.0", 500, 251, &assigned);
    h_make_release(model, "2.0.0", 500, &newest);
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    expect_update(&d, &newest, NULL, "no assignment: the newest");

    /* The active assignment's release wins over the newest, also when it is pending or delivered. */
    h_assign_ok(&d, &assigned, aid);
    expect_update(&d, &assigned, aid, "a pending assignment");
    json_decref(h_expect_assignment(aid, "pending", 0, NULL)); /* asking changes nothing */
    h_resp_t r = {0};
    h_heartbeat_fw(&d, "1.0.0", &r);
    CHECK(json_is_object(json_object_get(r.json, "ota")), "no delivery: %s", BODY(&r));
    h_resp_free(&r);
    json_decref(h_expect_assignment(aid, "delivered", 1, NULL));
    expect_update(&d, &assigned, aid, "a delivered assignment");
    json_decref(h_expect_assignment(aid, "delivered", 1, NULL));

    /* Canceled: back to the newest. */
    char path[128];
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", aid);
    h_http(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    expect_update(&d, &newest, NULL, "after the cancel");

    /* Even a downgrade is offered when it is the assignment's. */
    h_assign_downgrade_ok(&d, &older, aid);
    expect_update(&d, &older, aid, "an assigned downgrade");
    h_release_free(&older);
    h_release_free(&assigned);
    h_release_free(&newest);
}

/* ---- POST /v1/devices/{id}/relay ---------------------------------------------------------------- */

static void test_relay_credentials_and_bodies(void **state)
{
    (void)state;
    char model[32], unknown[40];
    h_make_model(model, sizeof model, "BLE relay credentials");
    h_device_t d, other;
    h_make_device(model, "1.0.0", &d);
    h_make_device(model, "1.0.0", &other);
    h_random_uuid(unknown, sizeof unknown);
    const char *body = "{\"firmware_version\": \"1.0.0\"}";
    h_resp_t r = {0};

    relay_on(d.id, NULL, body, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    relay_on(d.id, "otd_0000000000000000000000000000000000000000000", body, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    relay_on(d.id, "garbage", body, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    relay_on(d.id, other.token, body, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    relay_on(unknown, other.token, body, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    /* An API key is valid credentials, not allowed here (403): the relay takes the device's token. */
    relay_on(d.id, h_g_srv.admin_key, body, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    h_request(&h_g_srv, "POST", "/v1/devices/not-a-uuid/relay", d.token, body, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    /* Bodies are checked as a heartbeat's. */
    static const struct {
        const char *body;
        long status;
        const char *field; /* for 422: the details.fields member, or NULL for any */
    } cases[] = {
        {"{}", 422, "firmware_version"},
        {"{\"firmware_version\": \"banana\"}", 422, "firmware_version"},
        {"{\"firmware_version\": \"1.0.0\", \"connectivity\": \"bluetooth\"}", 422, "connectivity"},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 101, \"state\": \"high\"}}", 422, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"state\": \"exploded\"}}", 422, NULL},
        {"{\"firmware_version\": 1}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"recording\": \"yes\"}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": \"low\"}", 400, NULL},
        {"[\"1.0.0\"]", 400, NULL},
        {"{\"firmware_version\": ", 400, NULL},
    };
    for (size_t i = 0; i < ELEMS(cases); i++) {
        relay_on(d.id, d.token, cases[i].body, &r);
        if (cases[i].status == 422) {
            CHECK(r.status == 422 && h_error_shape_ok(&r, "validation_failed") &&
                      (cases[i].field == NULL || h_field_error(&r, cases[i].field)),
                  "relay %s: expected 422 validation_failed (%s), got %ld: %s", cases[i].body,
                  cases[i].field ? cases[i].field : "any field", r.status, BODY(&r));
        } else {
            CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"),
                  "relay %s: expected 400 bad_request, got %ld: %s", cases[i].body, r.status, BODY(&r));
        }
        h_resp_free(&r);
    }

    /* None of that was a relay: never seen, not Bluetooth-connected. */
    json_t *dev = h_get_device(d.id);
    CHECK(h_jnull(dev, "last_seen_at") && json_is_false(json_object_get(dev, "ble_connected")),
          "a refused relay was recorded: %s", json_dumps(dev, JSON_COMPACT));
    json_decref(dev);
}

static void test_relay_bookkeeping(void **state)
{
    (void)state;
    char model[32];
    h_make_model(model, sizeof model, "BLE relay bookkeeping");
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    expect_ble_connected(&d, false);
    h_resp_t r = {0};

    /* No assignment: pending_assignment null. Presence and every reported value are recorded. */
    relay_ok(&d,
             "{\"firmware_version\": \"v1.0.1\", \"connectivity\": \"cellular\", \"recording\": false, "
             "\"battery\": {\"percent\": 55, \"state\": \"normal\"}}",
             &r);
    CHECK(h_jnull(r.json, "pending_assignment"), "pending_assignment without an assignment: %s", BODY(&r));
    h_resp_free(&r);
    json_t *dev = h_get_device(d.id);
    char *text = json_dumps(dev, JSON_COMPACT);
    time_t t;
    CHECK(h_rfc3339_utc(h_jstr(dev, "last_seen_at"), &t) && labs((long)(t - time(NULL))) < 120, "last_seen_at: %s",
          text);
    CHECK(h_streq(h_jstr(dev, "firmware_version"), "1.0.1"), "firmware_version: %s", text);
    CHECK(h_streq(h_jstr(dev, "connectivity"), "cellular"), "connectivity: %s", text);
    CHECK(json_is_false(json_object_get(dev, "recording")), "recording: %s", text);
    json_t *battery = json_object_get(dev, "battery");
    CHECK(h_jint(battery, "percent") == 55 && h_streq(h_jstr(battery, "state"), "normal"), "battery: %s", text);
    CHECK(json_is_true(json_object_get(dev, "ble_connected")), "ble_connected after a relay: %s", text);
    free(text);
    json_decref(dev);

    /* A later relay reporting less keeps the rest, and recording: true is recorded. */
    relay_ok(&d, "{\"firmware_version\": \"1.0.1\", \"recording\": true}", &r);
    h_resp_free(&r);
    dev = h_get_device(d.id);
    text = json_dumps(dev, JSON_COMPACT);
    CHECK(json_is_true(json_object_get(dev, "recording")), "recording: %s", text);
    CHECK(h_streq(h_jstr(dev, "connectivity"), "cellular") && h_jint(json_object_get(dev, "battery"), "percent") == 55,
          "connectivity and battery kept: %s", text);
    free(text);
    json_decref(dev);

    /* Older than 2 heartbeat intervals (2 x 60 s): no longer Bluetooth-connected. */
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE devices SET ble_seen_at = now() - interval '121 seconds' WHERE id = '%s'", d.id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
    expect_ble_connected(&d, false);
    relay_fw(&d, "1.0.1", &r);
    h_resp_free(&r);
    expect_ble_connected(&d, true);
}

static void test_relay_pending_assignment(void **state)
{
    (void)state;
    char model[32], aid[40];
    h_make_model(model, sizeof model, "BLE relay pending");
    h_release_t rel;
    h_make_release_ufw(model, "2.0.0", 3000, 1500, &rel);
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, aid);
    h_resp_t r = {0};

    /* Relays offer the pending assignment with its ufw link, and never deliver it. */
    for (int i = 0; i < 3; i++) {
        relay_fw(&d, "1.0.0", &r);
        expect_pending(&r, aid, &rel);
        h_resp_free(&r);
    }
    json_t *a = h_expect_assignment(aid, "pending", 0, NULL);
    const h_event_t created[] = {{NULL, "pending", NULL}};
    h_expect_events(a, created, 1);
    json_decref(a);
    expect_ble_connected(&d, true);

    /* Bluetooth-connected: an HTTP heartbeat is deferred, nothing is delivered. */
    h_heartbeat_fw(&d, "1.0.0", &r);
    h_expect_no_manifest(&r, "ble_connected");
    h_resp_free(&r);
    a = h_expect_assignment(aid, "pending", 0, NULL);
    h_expect_events(a, created, 1);
    json_decref(a);

    /* Progress reported through the relay changes nothing either. */
    char body[512];
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"installing\", "
             "\"bytes\": 700, \"total\": 1500}}",
             aid);
    relay_ok(&d, body, &r);
    expect_pending(&r, aid, &rel);
    h_resp_free(&r);
    json_decref(h_expect_assignment(aid, "pending", 0, NULL));
    h_release_free(&rel);
}

static void test_relay_delivered_and_no_ufw(void **state)
{
    (void)state;
    char model[32], aid[40];
    h_make_model(model, sizeof model, "BLE relay delivered");
    h_release_t rel;
    h_make_release(model, "1.1.0", 2000, &rel); /* no ufw */
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, aid);
    h_resp_t r = {0};

    /* Delivered over HTTP first; a relay then still shows it, without a manifest and without counting. */
    h_heartbeat_fw(&d, "1.0.0", &r);
    CHECK(json_is_object(json_object_get(r.json, "ota")), "expected a delivery: %s", BODY(&r));
    h_resp_free(&r);
    json_decref(h_expect_assignment(aid, "delivered", 1, NULL));
    relay_fw(&d, "1.0.0", &r);
    expect_pending(&r, aid, &rel); /* ufw null: the release has none */
    CHECK(h_streq(h_jstr(json_object_get(r.json, "pending_assignment"), "status"), "delivered"),
          "pending_assignment status: %s", BODY(&r));
    h_resp_free(&r);
    json_decref(h_expect_assignment(aid, "delivered", 1, NULL));

    /* Now Bluetooth-connected: no re-delivery over HTTP. */
    h_heartbeat_fw(&d, "1.0.0", &r);
    h_expect_no_manifest(&r, "ble_connected");
    h_resp_free(&r);
    json_decref(h_expect_assignment(aid, "delivered", 1, NULL));
    h_release_free(&rel);
}

static void test_relay_fails_assignment(void **state)
{
    (void)state;
    char model[32], aid[40], body[512];
    h_make_model(model, sizeof model, "BLE relay failed");
    h_release_t rel;
    h_make_release_ufw(model, "2.0.0", 1000, 900, &rel);
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, aid);
    h_resp_t r = {0};

    relay_fw(&d, "1.0.0", &r);
    expect_pending(&r, aid, &rel);
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"failed\", "
             "\"error\": \"ufw signature rejected\"}}",
             aid);
    relay_ok(&d, body, &r);
    CHECK(h_jnull(r.json, "pending_assignment"), "pending_assignment after the failure: %s", BODY(&r));
    h_resp_free(&r);
    json_t *a = h_expect_assignment(aid, "failed", 0, "ufw signature rejected");
    const h_event_t failed[] = {{NULL, "pending", NULL}, {"pending", "failed", "ufw signature rejected"}};
    h_expect_events(a, failed, 2);
    json_decref(a);
    json_t *dev = h_get_device(d.id);
    CHECK(h_jnull(dev, "active_assignment"), "active_assignment after the failure: %s", json_dumps(dev, 0));
    json_decref(dev);
    h_release_free(&rel);
}

/* ---- POST /v1/devices/{id}/ble-transfers ------------------------------------------------------------ */

static void test_transfers(void **state)
{
    (void)state;
    char model[32], aid[40], tid[3][40], expr[512];
    h_make_model(model, sizeof model, "BLE transfers");
    h_release_t rel;
    h_make_release_ufw(model, "2.0.0", 1200, 800, &rel);
    h_device_t d, other;
    h_make_device(model, "1.0.0", &d);
    h_make_device(model, "1.0.0", &other);
    h_assign_ok(&d, &rel, aid);
    json_t *before = h_get_assignment(aid);

    /* started, completed (bookkeeping only: the assignment does not move), and a failure with its error. */
    transfer_ok(&d, rel.id, "started", NULL, tid[0]);
    transfer_ok(&d, rel.id, "completed", NULL, tid[1]);
    transfer_ok(&d, rel.id, "failed", "link lost at 512 bytes", tid[2]);
    CHECK(strcmp(tid[0], tid[1]) != 0 && strcmp(tid[1], tid[2]) != 0 && strcmp(tid[0], tid[2]) != 0,
          "transfer ids repeat: %s %s %s", tid[0], tid[1], tid[2]);
    json_t *after = h_get_assignment(aid);
    char *want = json_dumps(before, JSON_COMPACT), *got = json_dumps(after, JSON_COMPACT);
    CHECK(json_equal(before, after), "transfers moved the pending assignment: %s -> %s", want, got);
    free(want);
    free(got);
    json_decref(before);
    json_decref(after);
    snprintf(expr, sizeof expr,
             "(SELECT count(*) FROM ble_transfers WHERE device_id = '%s') = 3 AND (SELECT error FROM ble_transfers "
             "WHERE id = '%s') = 'link lost at 512 bytes'",
             d.id, tid[2]);
    CHECK(h_sql_holds(expr), "the transfers are not stored: %s", expr);

    /* A failed transfer of a delivered assignment leaves it delivered, deliveries and events as they were. */
    h_resp_t r = {0};
    h_heartbeat_fw(&d, "1.0.0", &r);
    CHECK(json_is_object(json_object_get(r.json, "ota")), "expected a delivery: %s", BODY(&r));
    h_resp_free(&r);
    before = h_expect_assignment(aid, "delivered", 1, NULL);
    transfer_ok(&d, rel.id, "started", NULL, NULL);
    transfer_ok(&d, rel.id, "failed", "phone went away", NULL);
    after = h_get_assignment(aid);
    want = json_dumps(before, JSON_COMPACT);
    got = json_dumps(after, JSON_COMPACT);
    CHECK(json_equal(before, after), "a failed transfer moved the delivered assignment: %s -> %s", want, got);
    free(want);
    free(got);
    json_decref(before);
    json_decref(after);

    /* Credentials: the device's own token only. */
    char body[256];
    snprintf(body, sizeof body, "{\"release_id\": \"%s\", \"state\": \"started\"}", rel.id);
    transfer_on(d.id, NULL, body, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    transfer_on(d.id, "otd_0000000000000000000000000000000000000000000", body, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    transfer_on(d.id, h_g_srv.admin_key, body, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    transfer_on(d.id, other.token, body, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    snprintf(expr, sizeof expr, "(SELECT count(*) FROM ble_transfers WHERE device_id = '%s') = 5", d.id);
    CHECK(h_sql_holds(expr), "refused transfers were stored: %s", expr);
    h_release_free(&rel);
}

static void test_transfer_bodies(void **state)
{
    (void)state;
    char model[32], unknown[40];
    h_make_model(model, sizeof model, "BLE transfer bodies");
    h_release_t rel;
    h_make_release_ufw(model, "1.1.0", 300, 300, &rel);
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    h_random_uuid(unknown, sizeof unknown);

    char bodies[16][256];
    size_t n = 0;
    const char *fields[16];
    long statuses[16];
#define CASE(status_, field_, ...)                                                                                     \
    do {                                                                                                               \
        snprintf(bodies[n], sizeof bodies[n], __VA_ARGS__);                                                            \
        statuses[n] = (status_);                                                                                       \
        fields[n++] = (field_);                                                                                        \
    } while (0)
    CASE(422, "release_id", "{\"release_id\": \"%s\", \"state\": \"started\"}", unknown); /* no such release */
    CASE(422, "release_id", "{\"release_id\": \"not-a-uuid\", \"state\": \"started\"}");
    CASE(422, "release_id", "{\"state\": \"started\"}");
    CASE(422, "state", "{\"release_id\": \"%s\", \"state\": \"paused\"}", rel.id);
    CASE(422, "state", "{\"release_id\": \"%s\", \"state\": \"\"}", rel.id);
    CASE(422, "state", "{\"release_id\": \"%s\"}", rel.id);
    CASE(400, NULL, "{\"release_id\": 5, \"state\": \"started\"}");
    CASE(400, NULL, "{\"release_id\": \"%s\", \"state\": true}", rel.id);
    CASE(400, NULL, "{\"release_id\": \"%s\", \"state\": \"failed\", \"error\": 7}", rel.id);
    CASE(400, NULL, "{\"release_id\": [\"%s\"], \"state\": \"started\"}", rel.id);
    CASE(400, NULL, "[\"%s\", \"started\"]", rel.id);
    CASE(400, NULL, "{\"release_id\": \"%s\", ", rel.id);
#undef CASE
    h_resp_t r = {0};
    for (size_t i = 0; i < n; i++) {
        transfer_on(d.id, d.token, bodies[i], &r);
        if (statuses[i] == 422)
            CHECK(r.status == 422 && h_error_shape_strict(&r, "validation_failed") && h_field_error(&r, fields[i]),
                  "ble-transfers %s: expected 422 validation_failed with details.fields.%s, got %ld: %s", bodies[i],
                  fields[i], r.status, BODY(&r));
        else
            CHECK(r.status == 400 && h_error_shape_ok(&r, "bad_request"),
                  "ble-transfers %s: expected 400 bad_request, got %ld: %s", bodies[i], r.status, BODY(&r));
        h_resp_free(&r);
    }
    char expr[256];
    snprintf(expr, sizeof expr, "NOT EXISTS (SELECT 1 FROM ble_transfers WHERE device_id = '%s')", d.id);
    CHECK(h_sql_holds(expr), "a refused transfer was stored: %s", expr);
    /* An error is optional with any state. */
    transfer_ok(&d, rel.id, "failed", NULL, NULL);
    h_release_free(&rel);
}

static void test_transfer_while_recording(void **state)
{
    (void)state;
    char model[32], aid[40], body[256];
    h_make_model(model, sizeof model, "BLE recording");
    h_release_t rel;
    h_make_release_ufw(model, "2.0.0", 700, 600, &rel);
    h_device_t d;
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, aid);
    snprintf(body, sizeof body, "{\"release_id\": \"%s\", \"state\": \"started\"}", rel.id);
    h_resp_t r = {0};

    /* Recording reported by an HTTP heartbeat: every transfer state is refused. */
    h_heartbeat_ok(&h_g_srv, &d, "{\"firmware_version\": \"1.0.0\", \"recording\": true}", &r);
    h_expect_no_manifest(&r, "recording");
    h_resp_free(&r);
    static const char *const states[] = {"started", "completed", "failed"};
    for (size_t i = 0; i < ELEMS(states); i++) {
        char b[256];
        snprintf(b, sizeof b, "{\"release_id\": \"%s\", \"state\": \"%s\"}", rel.id, states[i]);
        transfer_on(d.id, d.token, b, &r);
        EXPECT_STRICT_ERROR(&r, 409, "recording_in_progress");
        h_resp_free(&r);
    }

    /* The recording ends, reported through a relay: allowed again. */
    relay_ok(&d, "{\"firmware_version\": \"1.0.0\", \"recording\": false}", &r);
    h_resp_free(&r);
    transfer_ok(&d, rel.id, "started", NULL, NULL);

    /* Recording reported through a relay: refused; a heartbeat ends it: allowed. */
    relay_ok(&d, "{\"firmware_version\": \"1.0.0\", \"recording\": true}", &r);
    expect_pending(&r, aid, &rel);
    h_resp_free(&r);
    transfer_on(d.id, d.token, body, &r);
    EXPECT_STRICT_ERROR(&r, 409, "recording_in_progress");
    h_resp_free(&r);
    h_heartbeat_ok(&h_g_srv, &d, "{\"firmware_version\": \"1.0.0\", \"recording\": false}", &r);
    h_resp_free(&r);
    transfer_ok(&d, rel.id, "completed", NULL, NULL);

    char expr[256];
    snprintf(expr, sizeof expr, "(SELECT count(*) FROM ble_transfers WHERE device_id = '%s') = 2", d.id);
    CHECK(h_sql_holds(expr), "refused transfers were stored: %s", expr);
    json_decref(h_expect_assignment(aid, "pending", 0, NULL));
    h_release_free(&rel);
}

/* ---- a whole update over Bluetooth ------------------------------------------------------------ */

/* The app offers the update, transfers the ufw, and the device reports the new version: through a relay (`via_relay`)
 * or through its own HTTP heartbeat. The pending assignment becomes applied directly. */
static void bluetooth_update(bool via_relay)
{
    char model[32], aid[40];
    h_make_model(model, sizeof model, via_relay ? "BLE update, relay" : "BLE update, heartbeat");
    h_release_t rel;
    h_make_release_ufw(model, "1.4.0", 4000, 2500, &rel);
    h_device_t d;
    h_make_device(model, "1.3.2", &d);
    h_assign_ok(&d, &rel, aid);
    h_resp_t r = {0};

    relay_ok(&d, "{\"firmware_version\": \"1.3.2\", \"battery\": {\"percent\": 90, \"state\": \"high\"}}", &r);
    expect_pending(&r, aid, &rel); /* the ufw link serves the ufw bytes */
    h_resp_free(&r);
    expect_update(&d, &rel, aid, "while Bluetooth-connected");
    transfer_ok(&d, rel.id, "started", NULL, NULL);
    transfer_ok(&d, rel.id, "failed", "timeout", NULL);
    json_decref(h_expect_assignment(aid, "pending", 0, NULL));
    transfer_ok(&d, rel.id, "started", NULL, NULL);
    transfer_ok(&d, rel.id, "completed", NULL, NULL);
    json_decref(h_expect_assignment(aid, "pending", 0, NULL)); /* the app's word alone applies nothing */

    if (via_relay) {
        relay_fw(&d, "1.4.0", &r);
        CHECK(h_jnull(r.json, "pending_assignment"), "pending_assignment once applied: %s", BODY(&r));
    } else {
        h_heartbeat_fw(&d, "1.4.0", &r); /* Bluetooth-connected, yet applied rather than deferred */
        h_expect_no_manifest(&r, NULL);
    }
    h_resp_free(&r);
    json_t *a = h_expect_assignment(aid, "applied", 0, NULL);
    const h_event_t applied[] = {{NULL, "pending", NULL}, {"pending", "applied", NULL}};
    h_expect_events(a, applied, 2);
    json_decref(a);
    json_t *dev = h_get_device(d.id);
    char *text = json_dumps(dev, JSON_COMPACT);
    CHECK(h_jnull(dev, "active_assignment") && h_streq(h_jstr(dev, "firmware_version"), "1.4.0") &&
              h_streq(h_jstr(dev, "ota_status"), "applied"),
          "device once applied: %s", text);
    free(text);
    json_decref(dev);
    expect_no_update(&d, "once applied");
    relay_fw(&d, "1.4.0", &r);
    CHECK(h_jnull(r.json, "pending_assignment"), "pending_assignment once applied: %s", BODY(&r));
    h_resp_free(&r);
    h_release_free(&rel);
}

static void test_bluetooth_update_reported_by_relay(void **state)
{
    (void)state;
    bluetooth_update(true);
}

static void test_bluetooth_update_reported_by_heartbeat(void **state)
{
    (void)state;
    bluetooth_update(false);
}

/* ---- the program --------------------------------------------------------------------------------- */

int main(void)
{
    /* The tests drive devices far harder than the 10 requests in 10 s a device may send (one device is sent a transfer
       report per malformed body, dozens within a second); it_rate_limit tests the limit itself. */
    h_server_env_all = "OTA_DEVICE_RATE_LIMIT=1000000";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_credentials),
        cmocka_unit_test(test_update_nothing_newer),
        cmocka_unit_test(test_update_semver_precedence),
        cmocka_unit_test(test_update_without_ufw),
        cmocka_unit_test(test_update_active_assignment),
        cmocka_unit_test(test_relay_credentials_and_bodies),
        cmocka_unit_test(test_relay_bookkeeping),
        cmocka_unit_test(test_relay_pending_assignment),
        cmocka_unit_test(test_relay_delivered_and_no_ufw),
        cmocka_unit_test(test_relay_fails_assignment),
        cmocka_unit_test(test_transfers),
        cmocka_unit_test(test_transfer_bodies),
        cmocka_unit_test(test_transfer_while_recording),
        cmocka_unit_test(test_bluetooth_update_reported_by_relay),
        cmocka_unit_test(test_bluetooth_update_reported_by_heartbeat),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
