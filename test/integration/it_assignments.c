/*
 * Integration: assignments and the device heartbeat (openapi.yaml: assignments,
 * "Heartbeat (device)", the manifest, GET /v1/signing-key) against the real
 * ota-server on a throwaway PostgreSQL cluster, with the fs storage backend.
 *
 * The whole state machine over HTTP: pending -> delivered (a heartbeat
 * carries a signed manifest whose URL serves the release's bytes) ->
 * re-delivery -> applied | failed; cancel; withdrawal; the apply timeout;
 * deferrals; and every 4xx of these routes. Each test makes its own model,
 * releases and devices, so none depends on another's order.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "checks.h"
#include "ota/manifest.h"
#include "ota/semver.h"
#include "ota/text.h"

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A second server some tests start with other settings; stopped by the test's teardown, even after a failure. */
static h_server_t g_other;
static bool g_other_up;

/* ---- the signing key and the manifest ---------------------------------------------------------- */

/* GET /v1/signing-key (no credentials): the 32-byte Ed25519 public key. */
static void signing_key(unsigned char pub[OTA_ED25519_PUBLIC_LEN])
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/signing-key", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(strncasecmp(r.content_type, "application/json", 16) == 0, "content type %s", r.content_type);
    CHECK(h_streq(h_jstr(r.json, "alg"), "Ed25519"), "alg: %s", BODY(&r));
    const char *b64 = h_jstr(r.json, "public_key");
    CHECK(b64 != NULL && strlen(b64) == 44 && b64[43] == '=' && b64[42] != '=', "public_key: %s", BODY(&r));
    unsigned char raw[48];
    int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, 44);
    CHECK(n == 33, "public_key is not base64 of 32 bytes: %s", BODY(&r)); /* 33: the '=' counts as a zero byte */
    memcpy(pub, raw, OTA_ED25519_PUBLIC_LEN);
    h_resp_free(&r);
}

/*
 * The heartbeat answer carries a manifest for assignment `aid` of `rel`: decodes, matches the release, names the
 * assignment's device, carries `downgrade`, ends (not_after) no sooner than the shortest OTA_APPLY_TIMEOUT after the
 * delivery, its signature verifies with the server's key, and its URL serves the release's bytes. Decoded into *out.
 */
static void expect_manifest_of(const h_resp_t *r, const char *aid, const h_release_t *rel, bool downgrade,
                               ota_manifest_t *out)
{
    json_t *m = json_object_get(r->json, "ota");
    CHECK(json_is_object(m), "expected a manifest in ota: %s", BODY(r));
    CHECK(h_jnull(r->json, "deferred"), "a delivery with deferred set: %s", BODY(r));
    CHECK(ota_manifest_decode_json(m, out) == OTA_OK, "the manifest does not decode: %s", BODY(r));
    CHECK(h_streq(out->assignment_id, aid), "assignment_id, want %s: %s", aid, BODY(r));
    CHECK(h_streq(out->release_id, rel->id), "release_id, want %s: %s", rel->id, BODY(r));
    CHECK(h_streq(out->model, rel->model), "model, want %s: %s", rel->model, BODY(r));
    CHECK(h_streq(out->version, rel->version), "version, want %s: %s", rel->version, BODY(r));
    CHECK(h_streq(out->artifact, "bin"), "artifact: %s", BODY(r));
    CHECK(out->size == rel->len, "size, want %zu: %s", rel->len, BODY(r));
    CHECK(out->crc32 == rel->crc32, "crc32, want %u: %s", (unsigned)rel->crc32, BODY(r));
    CHECK(h_streq(out->sha256, rel->sha256), "sha256, want %s: %s", rel->sha256, BODY(r));
    CHECK(out->downgrade == downgrade, "downgrade, want %s: %s", downgrade ? "true" : "false", BODY(r));
    json_t *a = h_get_assignment(aid);
    time_t delivered, not_after;
    CHECK(h_streq(out->device_id, h_jstr(a, "device_id")), "device_id, want the assignment's: %s", BODY(r));
    CHECK(h_rfc3339_utc(h_jstr(a, "delivered_at"), &delivered) && h_rfc3339_utc(out->not_after, &not_after) &&
              not_after >= delivered + 60,
          "not_after %s, delivered at %s", out->not_after, h_jstr(a, "delivered_at"));
    json_decref(a);
    time_t expires;
    CHECK(h_rfc3339_utc(out->url_expires_at, &expires) && expires > time(NULL) && expires <= time(NULL) + 1000,
          "url_expires_at (default OTA_URL_TTL 900): %s", BODY(r));

    unsigned char pub[OTA_ED25519_PUBLIC_LEN];
    signing_key(pub);
    CHECK(ota_manifest_verify(out, pub) == OTA_OK, "the manifest's signature does not verify: %s", BODY(r));

    h_buf_t b;
    long status = h_download(out->url, &b);
    CHECK(status == 200, "GET %s: %ld", out->url, status);
    CHECK(b.len == rel->len && memcmp(b.p, rel->bin, rel->len) == 0,
          "GET %s: %zu bytes that differ from the %zu "
          "of the release",
          out->url, b.len, rel->len);
    free(b.p);
}

static void expect_manifest(const h_resp_t *r, const char *aid, const h_release_t *rel, ota_manifest_t *out)
{
    expect_manifest_of(r, aid, rel, false, out);
}

/* A fresh model with release 2.0.0 (and `old` 1.0.0 too when not NULL) and a device running 1.0.0. */
typedef struct scene {
    char model[32];
    h_release_t rel;
    h_device_t dev;
    char aid[40]; /* filled by scene_assign */
} scene_t;

static void scene_make(scene_t *s, size_t bin_len)
{
    memset(s, 0, sizeof *s);
    h_make_model(s->model, sizeof s->model, "Assignment test model");
    h_make_release(s->model, "2.0.0", bin_len, &s->rel);
    h_make_device(s->model, "1.0.0", &s->dev);
}

static void scene_assign(scene_t *s)
{
    h_assign_ok(&s->dev, &s->rel, s->aid);
}

/* Assigns and delivers once: the assignment is delivered with deliveries 1. */
static void scene_deliver(scene_t *s)
{
    scene_assign(s);
    h_resp_t r = {0};
    ota_manifest_t m;
    h_heartbeat_fw(&s->dev, "1.0.0", &r);
    expect_manifest(&r, s->aid, &s->rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s->aid, "delivered", 1, NULL));
}

static void scene_free(scene_t *s)
{
    h_release_free(&s->rel);
}

static int stop_other(void **state)
{
    (void)state;
    if (g_other_up) {
        h_server_stop(&g_other);
        g_other_up = false;
    }
    return 0;
}

static h_server_t *start_other(const char *const *extra)
{
    h_server_start(&g_other, &h_g_pg, extra);
    g_other_up = true;
    CHECK(h_wait_ready(&g_other), "the second server did not become ready");
    return &g_other;
}

/* POST /v1/assignments/{id}/cancel as the admin. */
static void cancel(const char *aid, h_resp_t *out)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", aid);
    h_http(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, 0, NULL, out);
}

/* ---- 1. the happy path ------------------------------------------------------------------------ */

static void test_lifecycle_applied(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 20000);
    scene_assign(&s);

    /* pending: one event, the device shows it as its active assignment. */
    json_t *a = h_expect_assignment(s.aid, "pending", 0, NULL);
    const h_event_t created[] = {{NULL, "pending", NULL}};
    h_expect_events(a, created, 1);
    json_t *d = h_get_device(s.dev.id);
    json_t *active = json_object_get(d, "active_assignment");
    char *dtext = json_dumps(d, JSON_COMPACT);
    CHECK(json_is_object(active), "active_assignment: %s", dtext);
    CHECK(json_object_get(active, "events") == NULL, "active_assignment carries events: %s", dtext);
    json_t *plain = json_deep_copy(a);
    json_object_del(plain, "events");
    CHECK(json_equal(plain, active), "active_assignment differs from GET /v1/assignments/{id}: %s", dtext);
    CHECK(h_streq(h_jstr(d, "ota_status"), "pending"), "ota_status: %s", dtext);
    free(dtext);
    json_decref(plain);
    json_decref(d);
    json_decref(a);

    /* The device's own token reads its own device, active assignment included. */
    char dpath[128];
    snprintf(dpath, sizeof dpath, "/v1/devices/%s", s.dev.id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", dpath, s.dev.token, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(json_object_get(r.json, "active_assignment"), "id"), s.aid), "%s", BODY(&r));
    h_resp_free(&r);

    /* The first heartbeat delivers. */
    ota_manifest_t m1, m2;
    h_heartbeat_ok(&h_g_srv, &s.dev,
                   "{\"firmware_version\": \"1.0.0\", \"connectivity\": \"wifi\", \"recording\": false, "
                   "\"battery\": {\"percent\": 80, \"state\": \"normal\"}}",
                   &r);
    expect_manifest(&r, s.aid, &s.rel, &m1);
    h_resp_free(&r);
    a = h_expect_assignment(s.aid, "delivered", 1, NULL);
    char delivered_at[40];
    snprintf(delivered_at, sizeof delivered_at, "%s", h_jstr(a, "delivered_at"));
    const h_event_t delivered[] = {{NULL, "pending", NULL}, {"pending", "delivered", NULL}};
    h_expect_events(a, delivered, 2);
    json_decref(a);
    d = h_get_device(s.dev.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "delivered") &&
              h_streq(h_jstr(json_object_get(d, "active_assignment"), "status"), "delivered"),
          "device after delivery: %s", json_dumps(d, JSON_COMPACT));
    json_decref(d);

    /* Tampering with any signed field breaks the signature; the URL is not signed. */
    unsigned char pub[OTA_ED25519_PUBLIC_LEN];
    signing_key(pub);
    ota_manifest_t t = m1;
    snprintf(t.url, sizeof t.url, "http://127.0.0.1:1/elsewhere");
    CHECK(ota_manifest_verify(&t, pub) == OTA_OK, "changing the (unsigned) url broke the signature");
    t = m1;
    snprintf(t.version, sizeof t.version, "2.0.1");
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed version still verifies");
    t = m1;
    t.size += 1;
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed size still verifies");
    t = m1;
    t.crc32 ^= 1u;
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed crc32 still verifies");
    t = m1;
    t.sha256[0] = t.sha256[0] == '0' ? '1' : '0';
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed sha256 still verifies");
    t = m1;
    h_random_uuid(t.assignment_id, sizeof t.assignment_id);
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed assignment_id still verifies");
    t = m1;
    h_random_uuid(t.device_id, sizeof t.device_id);
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed device_id still verifies");
    t = m1;
    t.not_after[3] = t.not_after[3] == '9' ? '8' : (char)(t.not_after[3] + 1);
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed not_after still verifies");
    t = m1;
    t.downgrade = true;
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "a changed downgrade still verifies");
    t = m1;
    pub[0] ^= 0x40;
    CHECK(ota_manifest_verify(&t, pub) != OTA_OK, "verifies with another key");

    /* not_after: the end of the apply timeout (default one day) that the first delivery started. */
    time_t delivered_t, not_after_t;
    CHECK(h_rfc3339_utc(delivered_at, &delivered_t) && h_rfc3339_utc(m1.not_after, &not_after_t) &&
              not_after_t == delivered_t + 86400,
          "not_after %s is not delivered_at %s + 86400 s", m1.not_after, delivered_at);
    CHECK(h_streq(m1.device_id, s.dev.id), "device_id %s, want %s", m1.device_id, s.dev.id);

    /* Later heartbeats while delivered re-deliver with a fresh URL; every manifest sent is counted. */
    h_sleep_ms(1100); /* presigned URLs carry the second they were made */
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    expect_manifest(&r, s.aid, &s.rel, &m2);
    h_resp_free(&r);
    CHECK(strcmp(m1.url, m2.url) != 0, "re-delivery 1.1 s later has the same URL %s", m1.url);
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    expect_manifest(&r, s.aid, &s.rel, &m2);
    h_resp_free(&r);
    CHECK(h_streq(m2.not_after, m1.not_after) && h_streq(m2.signature, m1.signature),
          "a re-delivery moved not_after (%s -> %s) or the signature", m1.not_after, m2.not_after);
    a = h_expect_assignment(s.aid, "delivered", 3, NULL);
    CHECK(h_streq(h_jstr(a, "delivered_at"), delivered_at), "delivered_at moved on re-delivery: %s -> %s", delivered_at,
          h_jstr(a, "delivered_at"));
    h_expect_events(a, delivered, 2); /* re-delivery is no transition */
    json_decref(a);

    /* Progress reports change nothing (the manifest keeps coming while it is delivered). */
    char body[512];
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"downloading\", "
             "\"bytes\": 1000, \"total\": %zu}}",
             s.aid, s.rel.len);
    h_heartbeat_ok(&h_g_srv, &s.dev, body, &r);
    h_resp_free(&r);
    a = h_get_assignment(s.aid);
    CHECK(h_streq(h_jstr(a, "status"), "delivered"), "after a progress report: %s", json_dumps(a, JSON_COMPACT));
    json_int_t deliveries = h_jint(a, "deliveries");
    json_decref(a);

    /* Reporting the version applies it (the leading v is dropped on input). */
    h_heartbeat_fw(&s.dev, "v2.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    a = h_expect_assignment(s.aid, "applied", deliveries, NULL);
    const h_event_t applied[] = {
        {NULL, "pending", NULL}, {"pending", "delivered", NULL}, {"delivered", "applied", NULL}};
    h_expect_events(a, applied, 3);
    json_decref(a);
    d = h_get_device(s.dev.id);
    dtext = json_dumps(d, JSON_COMPACT);
    CHECK(h_jnull(d, "active_assignment"), "active_assignment after applied: %s", dtext);
    CHECK(h_streq(h_jstr(d, "ota_status"), "applied"), "ota_status after applied: %s", dtext);
    CHECK(h_streq(h_jstr(d, "firmware_version"), "2.0.0"), "firmware_version: %s", dtext);
    CHECK(h_streq(h_jstr(d, "connectivity"), "wifi"), "connectivity kept from an earlier heartbeat: %s", dtext);
    free(dtext);
    json_decref(d);

    /* Nothing more to deliver; the release is now installed, so assigning it again is refused. */
    h_heartbeat_fw(&s.dev, "2.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    h_assign(s.dev.id, s.rel.id, &r);
    EXPECT_ERROR(&r, 409, "already_installed");
    h_resp_free(&r);
    scene_free(&s);
}

/* ---- 2. failure reported by the device -------------------------------------------------------- */

static void test_failed_path(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 5000);
    scene_deliver(&s);

    /* "failed" for another assignment id is not about this one. */
    char other[40], body[512];
    h_random_uuid(other, sizeof other);
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"failed\", "
             "\"error\": \"unrelated\"}}",
             other);
    h_resp_t r = {0};
    h_heartbeat_ok(&h_g_srv, &s.dev, body, &r);
    h_resp_free(&r);
    json_t *a = h_get_assignment(s.aid);
    CHECK(h_streq(h_jstr(a, "status"), "delivered"), "failed for another assignment: %s", json_dumps(a, 0));
    json_int_t deliveries = h_jint(a, "deliveries");
    json_decref(a);

    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"failed\", "
             "\"bytes\": 4096, \"total\": 5000, \"error\": \"crc32 mismatch\"}}",
             s.aid);
    h_heartbeat_ok(&h_g_srv, &s.dev, body, &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    a = h_expect_assignment(s.aid, "failed", deliveries, "crc32 mismatch");
    const h_event_t failed[] = {
        {NULL, "pending", NULL}, {"pending", "delivered", NULL}, {"delivered", "failed", "crc32 mismatch"}};
    h_expect_events(a, failed, 3);
    json_decref(a);
    json_t *d = h_get_device(s.dev.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "failed") && h_jnull(d, "active_assignment"), "device: %s",
          json_dumps(d, 0));
    json_decref(d);

    /* Final: cancel is refused; a new assignment of the same release may follow. */
    cancel(s.aid, &r);
    EXPECT_ERROR(&r, 409, "invalid_transition");
    h_resp_free(&r);
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    char again[40];
    h_assign_ok(&s.dev, &s.rel, again);
    CHECK(strcmp(again, s.aid) != 0, "the new assignment has the old id");
    scene_free(&s);
}

/* ---- 3. cancel -------------------------------------------------------------------------------- */

static void test_cancel(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 3000);

    /* Cancel a pending one. */
    scene_assign(&s);
    h_resp_t r = {0};
    cancel(s.aid, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "id"), s.aid) && h_streq(h_jstr(r.json, "status"), "canceled") &&
              h_streq(h_jstr(r.json, "reason"), "canceled"),
          "cancel answer: %s", BODY(&r));
    h_resp_free(&r);
    json_t *a = h_expect_assignment(s.aid, "canceled", 0, "canceled");
    const h_event_t pending_canceled[] = {{NULL, "pending", NULL}, {"pending", "canceled", "canceled"}};
    h_expect_events(a, pending_canceled, 2);
    json_decref(a);
    json_t *d = h_get_device(s.dev.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "canceled") && h_jnull(d, "active_assignment"), "device: %s",
          json_dumps(d, 0));
    json_decref(d);
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);

    /* Canceling again: final already. */
    cancel(s.aid, &r);
    EXPECT_STRICT_ERROR(&r, 409, "invalid_transition");
    h_resp_free(&r);

    /* Cancel a delivered one: the device gets no manifest after. */
    scene_deliver(&s);
    cancel(s.aid, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "canceled"), "cancel answer: %s", BODY(&r));
    h_resp_free(&r);
    a = h_expect_assignment(s.aid, "canceled", 1, "canceled");
    const h_event_t delivered_canceled[] = {
        {NULL, "pending", NULL}, {"pending", "delivered", NULL}, {"delivered", "canceled", "canceled"}};
    h_expect_events(a, delivered_canceled, 3);
    json_decref(a);
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    /* A late "applied" report does not resurrect it. */
    h_heartbeat_fw(&s.dev, "2.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "canceled", 1, "canceled"));

    /* Cancel an applied one: 409, and nothing changes. */
    h_heartbeat_fw(&s.dev, "1.0.0", &r); /* back to the old version */
    h_resp_free(&r);
    scene_deliver(&s);
    h_heartbeat_fw(&s.dev, "2.0.0", &r);
    h_resp_free(&r);
    cancel(s.aid, &r);
    EXPECT_STRICT_ERROR(&r, 409, "invalid_transition");
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "applied", 1, NULL));

    /* Unknown, malformed, without or with weaker credentials. */
    char unknown[40], path[128];
    h_random_uuid(unknown, sizeof unknown);
    cancel(unknown, &r);
    EXPECT_STRICT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&h_g_srv, "POST", "/v1/assignments/not-a-uuid/cancel", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", s.aid);
    h_http(&h_g_srv, "POST", path, NULL, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_http(&h_g_srv, "POST", path, s.dev.token, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    scene_free(&s);
}

/* ---- 4. creating: every refusal ------------------------------------------------------------------ */

static void test_create_errors(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 1000);
    h_resp_t r = {0};
    char unknown[40], path[128];

    /* Unknown device. */
    h_random_uuid(unknown, sizeof unknown);
    h_assign(unknown, s.rel.id, &r);
    EXPECT_STRICT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", "/v1/devices/not-a-uuid/assignments", h_g_srv.admin_key, &r, "{s:s}", "release_id",
           s.rel.id);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    /* release_id: unknown, not a UUID, missing, empty; a wrong type is a 400. */
    h_assign(s.dev.id, unknown, &r);
    EXPECT_FIELD_ERROR(&r, "release_id");
    h_resp_free(&r);
    h_assign(s.dev.id, "not-a-uuid", &r);
    EXPECT_FIELD_ERROR(&r, "release_id");
    h_resp_free(&r);
    h_assign(s.dev.id, "", &r);
    EXPECT_FIELD_ERROR(&r, "release_id");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", s.dev.id);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, &r, "{}");
    EXPECT_FIELD_ERROR(&r, "release_id");
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, &r, "{s:i}", "release_id", 42);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    h_request(&h_g_srv, "POST", path, h_g_srv.admin_key, "{\"release_id\": ", &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    /* Another model's release. */
    char model2[32];
    h_release_t other;
    h_make_model(model2, sizeof model2, "Other model");
    h_make_release(model2, "3.0.0", 500, &other);
    h_assign(s.dev.id, other.id, &r);
    EXPECT_STRICT_ERROR(&r, 422, "model_mismatch");
    h_resp_free(&r);
    h_release_free(&other);

    /* A withdrawn release. */
    h_release_t withdrawn;
    h_make_release(s.model, "2.5.0", 500, &withdrawn);
    snprintf(path, sizeof path, "/v1/releases/%s", withdrawn.id);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "withdrawn");
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    h_assign(s.dev.id, withdrawn.id, &r);
    EXPECT_STRICT_ERROR(&r, 422, "release_withdrawn");
    h_resp_free(&r);

    /* The version the device runs already. */
    h_release_t current;
    h_make_release(s.model, "1.0.0", 500, &current);
    h_assign(s.dev.id, current.id, &r);
    EXPECT_STRICT_ERROR(&r, 409, "already_installed");
    h_resp_free(&r);

    /* Nothing of that created anything. */
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", s.dev.id);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 0, "refusals created assignments: %s", BODY(&r));
    h_resp_free(&r);

    /* One active per device: the second names the first, pending then delivered. */
    scene_assign(&s);
    h_release_t newer;
    h_make_release(s.model, "2.1.0", 500, &newer);
    const char *const rels[] = {s.rel.id, newer.id};
    for (size_t i = 0; i < ELEMS(rels); i++) {
        h_assign(s.dev.id, rels[i], &r);
        EXPECT_STRICT_ERROR(&r, 409, "active_assignment_exists");
        json_t *details = json_object_get(json_object_get(r.json, "error"), "details");
        CHECK(h_streq(h_jstr(details, "assignment_id"), s.aid) && h_streq(h_jstr(details, "status"), "pending"),
              "details, want assignment_id %s and status pending: %s", s.aid, BODY(&r));
        h_resp_free(&r);
    }
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    h_resp_free(&r);
    h_assign(s.dev.id, newer.id, &r);
    EXPECT_ERROR(&r, 409, "active_assignment_exists");
    json_t *details = json_object_get(json_object_get(r.json, "error"), "details");
    CHECK(h_streq(h_jstr(details, "assignment_id"), s.aid) && h_streq(h_jstr(details, "status"), "delivered"),
          "details, want assignment_id %s and status delivered: %s", s.aid, BODY(&r));
    h_resp_free(&r);

    /* Credentials: none 401; a viewer key or the device's own token 403. */
    h_json(&h_g_srv, "POST", path, NULL, &r, "{s:s}", "release_id", newer.id);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_json(&h_g_srv, "POST", path, s.dev.token, &r, "{s:s}", "release_id", newer.id);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    char name[40], key[256] = "";
    h_unique(name, sizeof name, "viewer-");
    const char *const args[] = {"apikey", "create", "--name", name, "--role", "viewer", NULL};
    int rc = h_run_server_cmd(&h_g_pg, args, NULL, key, sizeof key);
    key[strcspn(key, "\r\n")] = '\0';
    CHECK(rc == 0 && key[0] != '\0', "apikey create --role viewer: exit %d, output \"%s\"", rc, key);
    h_json(&h_g_srv, "POST", path, key, &r, "{s:s}", "release_id", newer.id);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    char cpath[128];
    snprintf(cpath, sizeof cpath, "/v1/assignments/%s/cancel", s.aid);
    h_http(&h_g_srv, "POST", cpath, key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    /* ... but a viewer reads. */
    h_http(&h_g_srv, "GET", path, key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    snprintf(cpath, sizeof cpath, "/v1/assignments/%s", s.aid);
    h_http(&h_g_srv, "GET", cpath, key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    h_release_free(&withdrawn);
    h_release_free(&current);
    h_release_free(&newer);
    scene_free(&s);
}

/* ---- 5. deferrals -------------------------------------------------------------------------------- */

static void test_deferral_recording(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 2000);
    scene_assign(&s);
    h_resp_t r = {0};
    ota_manifest_t m;

    for (int i = 0; i < 2; i++) {
        h_heartbeat_ok(&h_g_srv, &s.dev, "{\"firmware_version\": \"1.0.0\", \"recording\": true}", &r);
        h_expect_no_manifest(&r, "recording");
        h_resp_free(&r);
    }
    json_t *a = h_expect_assignment(s.aid, "pending", 0, NULL);
    const h_event_t created[] = {{NULL, "pending", NULL}};
    h_expect_events(a, created, 1);
    json_decref(a);
    json_t *d = h_get_device(s.dev.id);
    CHECK(json_is_true(json_object_get(d, "recording")), "device recording: %s", json_dumps(d, 0));
    json_decref(d);

    /* The recording ends: delivered at once. */
    h_heartbeat_ok(&h_g_srv, &s.dev, "{\"firmware_version\": \"1.0.0\", \"recording\": false}", &r);
    expect_manifest(&r, s.aid, &s.rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "delivered", 1, NULL));

    /* Recording again while delivered: no re-delivery, nothing counted, still delivered. */
    h_heartbeat_ok(&h_g_srv, &s.dev, "{\"firmware_version\": \"1.0.0\", \"recording\": true}", &r);
    h_expect_no_manifest(&r, "recording");
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "delivered", 1, NULL));

    /* The device applies it in the meantime: applied, not deferred. */
    h_heartbeat_ok(&h_g_srv, &s.dev, "{\"firmware_version\": \"2.0.0\", \"recording\": true}", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "applied", 1, NULL));
    scene_free(&s);
}

/* Sets when the phone app last relayed for the device (the relay route comes with the Bluetooth path). */
static void set_ble_seen(const char *device_id, const char *ago)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE devices SET ble_seen_at = now() - interval '%s' WHERE id = '%s'", ago, device_id);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
}

static void test_deferral_ble_connected(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 1500);
    scene_assign(&s);
    h_resp_t r = {0};
    ota_manifest_t m;

    /* A relay 10 s ago: Bluetooth-connected, HTTP delivery waits. */
    set_ble_seen(s.dev.id, "10 seconds");
    h_heartbeat_ok(&h_g_srv, &s.dev, "{\"firmware_version\": \"1.0.0\"}", &r);
    h_expect_no_manifest(&r, "ble_connected");
    h_resp_free(&r);
    json_t *d = h_get_device(s.dev.id);
    CHECK(json_is_true(json_object_get(d, "ble_connected")), "ble_connected: %s", json_dumps(d, 0));
    json_decref(d);
    json_decref(h_expect_assignment(s.aid, "pending", 0, NULL));

    /* The last relay is older than 2 heartbeat intervals (2 x 60 s): delivered. */
    set_ble_seen(s.dev.id, "121 seconds");
    h_heartbeat_ok(&h_g_srv, &s.dev, "{\"firmware_version\": \"1.0.0\"}", &r);
    expect_manifest(&r, s.aid, &s.rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "delivered", 1, NULL));
    scene_free(&s);
}

static void test_deferral_battery(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 2000);
    scene_assign(&s);
    h_resp_t r = {0};
    ota_manifest_t m;

    static const char *const blocked[] = {"low", "dead"};
    for (size_t i = 0; i < ELEMS(blocked); i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 4, \"state\": \"%s\"}}", blocked[i]);
        h_heartbeat_ok(&h_g_srv, &s.dev, body, &r);
        h_expect_no_manifest(&r, "battery");
        h_resp_free(&r);
        json_decref(h_expect_assignment(s.aid, "pending", 0, NULL));
    }
    /* Charging: delivered. */
    h_heartbeat_ok(&h_g_srv, &s.dev,
                   "{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 5, \"state\": \"usb\"}}", &r);
    expect_manifest(&r, s.aid, &s.rel, &m);
    h_resp_free(&r);
    json_t *a = h_expect_assignment(s.aid, "delivered", 1, NULL);
    const h_event_t delivered[] = {{NULL, "pending", NULL}, {"pending", "delivered", NULL}};
    h_expect_events(a, delivered, 2);
    json_decref(a);
    json_t *d = h_get_device(s.dev.id);
    json_t *battery = json_object_get(d, "battery");
    CHECK(h_jint(battery, "percent") == 5 && h_streq(h_jstr(battery, "state"), "usb"), "device battery: %s",
          json_dumps(d, 0));
    json_decref(d);

    /* Low battery while delivered: deferred, not re-delivered. */
    h_heartbeat_ok(&h_g_srv, &s.dev,
                   "{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 3, \"state\": \"low\"}}", &r);
    h_expect_no_manifest(&r, "battery");
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "delivered", 1, NULL));
    h_heartbeat_ok(&h_g_srv, &s.dev,
                   "{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 60, \"state\": \"high\"}}", &r);
    expect_manifest(&r, s.aid, &s.rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "delivered", 2, NULL));
    scene_free(&s);
}

/* OTA_BLOCKED_BATTERY sets which states defer: with "normal" only, "low" is delivered and "normal" is not. */
static void test_deferral_battery_policy(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_BLOCKED_BATTERY=normal", NULL};
    h_server_t *srv = start_other(extra);
    scene_t s1, s2;
    scene_make(&s1, 1000);
    scene_make(&s2, 1000);
    scene_assign(&s1);
    scene_assign(&s2);
    h_resp_t r = {0};
    ota_manifest_t m;

    h_heartbeat_ok(srv, &s1.dev,
                   "{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 50, \"state\": \"normal\"}}", &r);
    h_expect_no_manifest(&r, "battery");
    h_resp_free(&r);
    json_decref(h_expect_assignment(s1.aid, "pending", 0, NULL));

    h_heartbeat_ok(srv, &s2.dev, "{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 5, \"state\": \"low\"}}",
                   &r);
    expect_manifest(&r, s2.aid, &s2.rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s2.aid, "delivered", 1, NULL));
    scene_free(&s1);
    scene_free(&s2);
}

/* ---- 6. withdrawal and deletion of a release ---------------------------------------------------- */

static void test_withdraw_and_delete_in_use(void **state)
{
    (void)state;
    char model[32], pending_id[40], delivered_id[40], path[128];
    h_make_model(model, sizeof model, "Withdraw");
    h_release_t rel;
    h_make_release(model, "2.0.0", 1500, &rel);
    h_device_t a, b;
    h_make_device(model, "1.0.0", &a);
    h_make_device(model, "1.0.0", &b);
    h_assign_ok(&a, &rel, pending_id);
    h_assign_ok(&b, &rel, delivered_id);
    h_resp_t r = {0};
    ota_manifest_t m;
    h_heartbeat_fw(&b, "1.0.0", &r);
    expect_manifest(&r, delivered_id, &rel, &m);
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/releases/%s", rel.id);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "withdrawn");
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "status"), "withdrawn"), "%s", BODY(&r));
    h_resp_free(&r);

    /* The pending one is canceled with reason release_withdrawn; the delivered one stays. */
    json_t *x = h_expect_assignment(pending_id, "canceled", 0, "release_withdrawn");
    const h_event_t canceled[] = {{NULL, "pending", NULL}, {"pending", "canceled", "release_withdrawn"}};
    h_expect_events(x, canceled, 2);
    json_decref(x);
    json_t *d = h_get_device(a.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "canceled") && h_jnull(d, "active_assignment"), "device a: %s",
          json_dumps(d, 0));
    json_decref(d);
    json_decref(h_expect_assignment(delivered_id, "delivered", 1, NULL));
    h_heartbeat_fw(&a, "1.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);

    /* No new assignment of it; it cannot be deleted while assignments name it, final or not. */
    h_assign(a.id, rel.id, &r);
    EXPECT_ERROR(&r, 422, "release_withdrawn");
    h_resp_free(&r);
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 409, "in_use");
    h_resp_free(&r);
    h_heartbeat_fw(&b, "2.0.0", &r);
    h_resp_free(&r);
    json_decref(h_expect_assignment(delivered_id, "applied", 1, NULL));
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 409, "in_use");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    /* Withdrawing a release leaves other releases' assignments alone. */
    h_release_t keep, gone;
    h_make_release(model, "3.0.0", 700, &keep);
    h_make_release(model, "4.0.0", 700, &gone);
    char keep_id[40];
    h_assign_ok(&a, &keep, keep_id);
    snprintf(path, sizeof path, "/v1/releases/%s", gone.id);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "withdrawn");
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    json_decref(h_expect_assignment(keep_id, "pending", 0, NULL));
    /* A release that nothing names deletes fine. */
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    h_release_free(&rel);
    h_release_free(&keep);
    h_release_free(&gone);
}

/* ---- 7. the apply timeout ----------------------------------------------------------------------- */

static void push_back_delivery(const char *aid, const char *interval)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE assignments SET delivered_at = now() - interval '%s' WHERE id = '%s'", interval,
             aid);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
}

static void test_apply_timeout(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 1000);
    scene_deliver(&s);
    h_resp_t r = {0};

    /* Default OTA_APPLY_TIMEOUT (one day): 2 days late fails with reason timeout at the next heartbeat. */
    push_back_delivery(s.aid, "2 days");
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    json_t *a = h_expect_assignment(s.aid, "failed", 1, "timeout");
    const h_event_t timed_out[] = {
        {NULL, "pending", NULL}, {"pending", "delivered", NULL}, {"delivered", "failed", "timeout"}};
    h_expect_events(a, timed_out, 3);
    json_decref(a);
    json_t *d = h_get_device(s.dev.id);
    CHECK(h_streq(h_jstr(d, "ota_status"), "failed") && h_jnull(d, "active_assignment"), "device: %s",
          json_dumps(d, 0));
    json_decref(d);

    /* Late reporting of the version does not turn a timed-out assignment into an applied one. */
    h_heartbeat_fw(&s.dev, "2.0.0", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    json_decref(h_expect_assignment(s.aid, "failed", 1, "timeout"));
    scene_free(&s);
}

/* OTA_APPLY_TIMEOUT=60: 2 minutes late fails, 20 seconds late does not. A pending one never times out. */
static void test_apply_timeout_setting(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_APPLY_TIMEOUT=60", NULL};
    h_server_t *srv = start_other(extra);
    scene_t late, early, waiting;
    scene_make(&late, 800);
    scene_make(&early, 800);
    scene_make(&waiting, 800);
    scene_deliver(&late);
    scene_deliver(&early);
    scene_assign(&waiting);
    push_back_delivery(late.aid, "2 minutes");
    push_back_delivery(early.aid, "20 seconds");
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE assignments SET created_at = now() - interval '3 days' WHERE id = '%s'",
             waiting.aid);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
    h_resp_t r = {0};
    ota_manifest_t m;

    h_heartbeat_ok(srv, &late.dev, "{\"firmware_version\": \"1.0.0\"}", &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    json_decref(h_expect_assignment(late.aid, "failed", 1, "timeout"));

    h_heartbeat_ok(srv, &early.dev, "{\"firmware_version\": \"1.0.0\"}", &r);
    expect_manifest(&r, early.aid, &early.rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(early.aid, "delivered", 2, NULL));

    h_heartbeat_ok(srv, &waiting.dev, "{\"firmware_version\": \"1.0.0\"}", &r);
    expect_manifest(&r, waiting.aid, &waiting.rel, &m);
    h_resp_free(&r);
    json_decref(h_expect_assignment(waiting.aid, "delivered", 1, NULL));
    scene_free(&late);
    scene_free(&early);
    scene_free(&waiting);
}

/* ---- 8. heartbeat credentials and bodies -------------------------------------------------------- */

static void test_heartbeat_tokens(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 500);
    scene_assign(&s);
    h_device_t other;
    h_make_device(s.model, "1.0.0", &other);
    const char *body = "{\"firmware_version\": \"1.0.0\"}";
    h_resp_t r = {0};

    h_heartbeat_on(&h_g_srv, s.dev.id, NULL, body, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_heartbeat_on(&h_g_srv, s.dev.id, "otd_0000000000000000000000000000000000000000000", body, &r);
    EXPECT_STRICT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    h_heartbeat_on(&h_g_srv, s.dev.id, "garbage", body, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    /* API keys are not device tokens. */
    /* An API key is valid credentials, not allowed here: the heartbeat takes the device's own token. */
    h_heartbeat_on(&h_g_srv, s.dev.id, h_g_srv.admin_key, body, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    /* Another device's token, on this device's path and on an unknown device's. */
    h_heartbeat_on(&h_g_srv, s.dev.id, other.token, body, &r);
    EXPECT_STRICT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    char unknown[40];
    h_random_uuid(unknown, sizeof unknown);
    h_heartbeat_on(&h_g_srv, unknown, other.token, body, &r);
    EXPECT_ERROR(&r, 403, "forbidden");
    h_resp_free(&r);
    h_request(&h_g_srv, "POST", "/v1/devices/not-a-uuid/heartbeat", s.dev.token, body, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    /* None of that was a heartbeat: never seen, still pending. */
    json_t *d = h_get_device(s.dev.id);
    CHECK(h_jnull(d, "last_seen_at"), "a refused heartbeat recorded presence: %s", json_dumps(d, 0));
    json_decref(d);
    json_decref(h_expect_assignment(s.aid, "pending", 0, NULL));

    /* A rotated token stops at once; the new one works. */
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/token", s.dev.id);
    h_http(&h_g_srv, "POST", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    char old[200];
    snprintf(old, sizeof old, "%s", s.dev.token);
    snprintf(s.dev.token, sizeof s.dev.token, "%s", h_jstr(r.json, "token"));
    h_resp_free(&r);
    h_heartbeat_on(&h_g_srv, s.dev.id, old, body, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
    ota_manifest_t m;
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    expect_manifest(&r, s.aid, &s.rel, &m);
    h_resp_free(&r);
    d = h_get_device(s.dev.id);
    time_t t;
    CHECK(h_rfc3339_utc(h_jstr(d, "last_seen_at"), &t) && labs((long)(t - time(NULL))) < 120, "last_seen_at: %s",
          json_dumps(d, 0));
    json_decref(d);
    scene_free(&s);
}

static void test_heartbeat_bodies(void **state)
{
    (void)state;
    char model[32], aid_body[256];
    h_make_model(model, sizeof model, "Bodies");
    h_device_t d;
    h_make_device(model, "1.0.0", &d);

    static const struct {
        const char *body;
        long status;
        const char *field; /* for 422: the details.fields member, or NULL for any */
    } cases[] = {
        {"{}", 422, "firmware_version"},
        {"{\"connectivity\": \"wifi\"}", 422, "firmware_version"},
        {"{\"firmware_version\": null}", 422, "firmware_version"},
        {"{\"firmware_version\": \"banana\"}", 422, "firmware_version"},
        {"{\"firmware_version\": \"1.0\"}", 422, "firmware_version"},
        {"{\"firmware_version\": \"01.0.0\"}", 422, "firmware_version"},
        {"{\"firmware_version\": \"\"}", 422, "firmware_version"},
        {"{\"firmware_version\": \"1.0.0\", \"connectivity\": \"lte\"}", 422, "connectivity"},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 101, \"state\": \"high\"}}", 422, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": -1, \"state\": \"high\"}}", 422, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 50, \"state\": \"full\"}}", 422, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"state\": \"exploded\"}}", 422, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"not-a-uuid\", \"state\": \"failed\"}}", 422,
         NULL},
        /* wrong types */
        {"{\"firmware_version\": 100}", 400, NULL},
        {"{\"firmware_version\": [\"1.0.0\"]}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"connectivity\": 1}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"recording\": \"yes\"}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"recording\": 1}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": \"80\", \"state\": \"high\"}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 80.5, \"state\": \"high\"}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": {\"percent\": 80, \"state\": 3}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": \"low\"}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"battery\": 42}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": \"failed\"}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": [1, 2]}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"state\": \"downloading\", \"bytes\": \"10\"}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"state\": \"downloading\", \"total\": true}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"state\": \"failed\", \"error\": 7}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": 7, \"state\": \"failed\"}}", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"ota\": {\"state\": 1}}", 400, NULL},
        /* not a JSON object */
        {"{\"firmware_version\": ", 400, NULL},
        {"[\"1.0.0\"]", 400, NULL},
        {"\"1.0.0\"", 400, NULL},
        {"{\"firmware_version\": \"1.0.0\", \"firmware_version\": \"2.0.0\"}", 400, NULL},
    };
    /* Every case runs; the mismatches are reported together. */
    char report[8192] = "";
    size_t used = 0, wrong = 0;
    for (size_t i = 0; i < ELEMS(cases); i++) {
        h_resp_t r = {0};
        h_heartbeat_on(&h_g_srv, d.id, d.token, cases[i].body, &r);
        const char *code = cases[i].status == 422 ? "validation_failed" : "bad_request";
        bool ok = r.status == cases[i].status && h_error_shape_strict(&r, code) &&
                  (cases[i].field == NULL || h_field_error(&r, cases[i].field));
        if (!ok) {
            wrong++;
            int k = snprintf(report + used, sizeof report - used,
                             "\n    heartbeat %s: expected %ld %s%s%s, got %ld: %.300s", cases[i].body, cases[i].status,
                             code, cases[i].field ? " naming " : "", cases[i].field ? cases[i].field : "", r.status,
                             BODY(&r));
            if (k > 0 && (size_t)k < sizeof report - used)
                used += (size_t)k;
        }
        h_resp_free(&r);
    }

    /* Not JSON at all. */
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/heartbeat", d.id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "POST", path, d.token, "firmware_version=1.0.0", 22, "text/plain", &r);
    EXPECT_ERROR(&r, 415, "unsupported_media_type");
    h_resp_free(&r);
    h_http(&h_g_srv, "POST", path, d.token, NULL, 0, NULL, &r);
    EXPECT_FIELD_ERROR(&r, "firmware_version");
    h_resp_free(&r);

    /* None of those was recorded. */
    json_t *dev = h_get_device(d.id);
    CHECK(h_jnull(dev, "last_seen_at") && h_streq(h_jstr(dev, "firmware_version"), "1.0.0"),
          "a refused heartbeat changed the device: %s", json_dumps(dev, 0));
    json_decref(dev);

    /* The whole documented body, every optional member present, is fine; null members are absent ones. */
    char uuid[40];
    h_random_uuid(uuid, sizeof uuid);
    snprintf(aid_body, sizeof aid_body,
             "{\"firmware_version\": \"1.0.1\", \"connectivity\": \"cellular\", \"recording\": false, "
             "\"battery\": {\"percent\": 0, \"state\": \"dead\"}, \"ota\": {\"assignment_id\": \"%s\", "
             "\"state\": \"installing\", \"bytes\": 0, \"total\": 0, \"error\": null}}",
             uuid);
    h_heartbeat_ok(&h_g_srv, &d, aid_body, &r);
    h_expect_no_manifest(&r, NULL);
    h_resp_free(&r);
    h_heartbeat_ok(&h_g_srv, &d,
                   "{\"firmware_version\": \"1.0.2\", \"connectivity\": null, \"recording\": null, \"battery\": null, "
                   "\"ota\": null, \"extra\": {\"ignored\": true}}",
                   &r);
    h_resp_free(&r);
    dev = h_get_device(d.id);
    char *text = json_dumps(dev, JSON_COMPACT);
    CHECK(h_streq(h_jstr(dev, "firmware_version"), "1.0.2"), "firmware_version: %s", text);
    CHECK(h_streq(h_jstr(dev, "connectivity"), "cellular"), "connectivity: %s", text);
    CHECK(json_is_false(json_object_get(dev, "recording")), "recording: %s", text);
    CHECK(h_jint(json_object_get(dev, "battery"), "percent") == 0 &&
              h_streq(h_jstr(json_object_get(dev, "battery"), "state"), "dead"),
          "battery: %s", text);
    free(text);
    json_decref(dev);
    CHECK(wrong == 0, "%zu of %zu malformed heartbeats got the wrong answer:%s", wrong, ELEMS(cases), report);
}

/* ---- 9. the signing key -------------------------------------------------------------------------- */

static void test_signing_key(void **state)
{
    (void)state;
    unsigned char a[OTA_ED25519_PUBLIC_LEN], b[OTA_ED25519_PUBLIC_LEN];
    signing_key(a);
    signing_key(b);
    CHECK(memcmp(a, b, sizeof a) == 0, "the public key changed between two calls");
    /* Credentials are not needed, but do no harm. */
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", "/v1/signing-key", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    /* A second instance on the same data signs with the same key. */
    h_server_t *srv = start_other(NULL);
    h_http(srv, "GET", "/v1/signing-key", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    const char *other = h_jstr(r.json, "public_key");
    unsigned char raw[48];
    CHECK(other != NULL && strlen(other) == 44 && EVP_DecodeBlock(raw, (const unsigned char *)other, 44) == 33 &&
              memcmp(raw, a, sizeof a) == 0,
          "the second instance has another key: %s", BODY(&r));
    h_resp_free(&r);
}

/*
 * The first delivery signs the manifest and stores the signature with the server's public key; re-deliveries
 * send the stored one (seen by planting a wrong one: it goes out as it is, and the device's check refuses it);
 * a signature stored under another key (a rotated key) is made again and replaced.
 */
static void test_manifest_signature_stored(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 700);
    scene_deliver(&s);
    h_resp_t r = {0};
    char expr[600], key[64];
    h_http(&h_g_srv, "GET", "/v1/signing-key", NULL, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    snprintf(key, sizeof key, "%s", h_jstr(r.json, "public_key"));
    h_resp_free(&r);
    snprintf(expr, sizeof expr,
             "(SELECT length(signature) = 88 AND signature_key = '%s' FROM assignments WHERE id = '%s')", key, s.aid);
    CHECK(h_sql_eventually(expr), "the first delivery's signature was not stored: %s", expr);

    /* A planted signature (well-formed, wrong) is what a re-delivery sends: proof that it is not made again. */
    static const char PLANTED[] =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    char sql[400];
    snprintf(sql, sizeof sql, "UPDATE assignments SET signature = '%s' WHERE id = '%s'", PLANTED, s.aid);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    ota_manifest_t m;
    json_t *ota = json_object_get(r.json, "ota");
    CHECK(json_is_object(ota) && ota_manifest_decode_json(ota, &m) == OTA_OK, "no manifest: %s", BODY(&r));
    CHECK(h_streq(m.signature, PLANTED), "the stored signature was not reused: %s", BODY(&r));
    unsigned char pub[OTA_ED25519_PUBLIC_LEN];
    signing_key(pub);
    CHECK(ota_manifest_verify(&m, pub) != OTA_OK, "a planted signature verified");
    h_resp_free(&r);

    /* Stored under another key: signed again (it verifies) and stored again under this server's key. */
    snprintf(sql, sizeof sql, "UPDATE assignments SET signature_key = 'another key' WHERE id = '%s'", s.aid);
    CHECK(h_pg_sql(&h_g_pg, sql) == 0, "psql: %s", sql);
    h_heartbeat_fw(&s.dev, "1.0.0", &r);
    expect_manifest(&r, s.aid, &s.rel, &m);
    h_resp_free(&r);
    snprintf(expr, sizeof expr, "(SELECT signature = '%s' AND signature_key = '%s' FROM assignments WHERE id = '%s')",
             m.signature, key, s.aid);
    CHECK(h_sql_eventually(expr), "the new signature was not stored: %s", expr);
    json_decref(h_expect_assignment(s.aid, "delivered", 3, NULL));
    scene_free(&s);
}

/*
 * Deliveries of one release in the same second carry the same presigned URL (server/heartbeat/presign_cache.h: SigV4 is
 * deterministic, so it is the URL a fresh presign would make), and it serves the release's bytes to each. Tried
 * until two heartbeats land in one second (url_expires_at says when the URL was made).
 */
static void test_presigned_url_shared_within_second(void **state)
{
    (void)state;
    scene_t s;
    scene_make(&s, 900);
    h_device_t other;
    char other_aid[40];
    h_make_device(s.model, "1.0.0", &other);
    scene_assign(&s);
    h_assign_ok(&other, &s.rel, other_aid);
    bool same_second = false;
    for (int attempt = 0; attempt < 20 && !same_second; attempt++) {
        h_resp_t r1 = {0}, r2 = {0};
        ota_manifest_t m1, m2;
        h_heartbeat_fw(&s.dev, "1.0.0", &r1);
        h_heartbeat_fw(&other, "1.0.0", &r2);
        expect_manifest(&r1, s.aid, &s.rel, &m1);
        expect_manifest(&r2, other_aid, &s.rel, &m2);
        same_second = strcmp(m1.url_expires_at, m2.url_expires_at) == 0;
        if (same_second)
            CHECK(h_streq(m1.url, m2.url), "two URLs for one object in one second: %s and %s", m1.url, m2.url);
        h_resp_free(&r1);
        h_resp_free(&r2);
    }
    CHECK(same_second, "no two heartbeats in 20 tries answered within one second");
    scene_free(&s);
}

/* ---- 10. lists ---------------------------------------------------------------------------------- */

/* GET `query`: a page of `want` items whose ids are `ids` in order; returns the next cursor (malloc'ed) or NULL. */
static char *expect_page(const char *query, const char *const *ids, size_t want)
{
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", query, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items"), *next = json_object_get(r.json, "next");
    CHECK(json_is_array(items) && json_array_size(items) == want, "%s: want %zu items: %.3000s", query, want, BODY(&r));
    CHECK(next != NULL && (json_is_null(next) || json_is_string(next)), "%s: next: %.3000s", query, BODY(&r));
    for (size_t i = 0; i < want; i++) {
        json_t *it = json_array_get(items, i);
        CHECK(h_streq(h_jstr(it, "id"), ids[i]), "%s: item %zu is not %s: %.3000s", query, i, ids[i], BODY(&r));
        CHECK(h_jstr(it, "status") != NULL && h_jstr(it, "device_id") != NULL && h_jstr(it, "release_id") != NULL &&
                  json_is_integer(json_object_get(it, "deliveries")),
              "%s: item %zu shape: %.3000s", query, i, BODY(&r));
    }
    char *cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
    h_resp_free(&r);
    return cursor;
}

static void test_lists(void **state)
{
    (void)state;
    char model[32], q[512];
    h_make_model(model, sizeof model, "Lists");
    h_release_t r1, r2;
    h_make_release(model, "2.0.0", 300, &r1);
    h_make_release(model, "3.0.0", 300, &r2);
    h_device_t d, e;
    h_make_device(model, "1.0.0", &d);
    h_make_device(model, "1.0.0", &e);

    /* d: a1 (r1, canceled), a2 (r1, canceled), a3 (r2, pending); e: b1 (r1, delivered). */
    char a1[40], a2[40], a3[40], b1[40];
    h_resp_t r = {0};
    h_assign_ok(&d, &r1, a1);
    cancel(a1, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    h_assign_ok(&d, &r1, a2);
    cancel(a2, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    h_assign_ok(&d, &r2, a3);
    h_assign_ok(&e, &r1, b1);
    h_heartbeat_fw(&e, "1.0.0", &r);
    h_resp_free(&r);

    /* A device's history, newest first, paged. */
    snprintf(q, sizeof q, "/v1/devices/%s/assignments", d.id);
    const char *const hist[] = {a3, a2, a1};
    free(expect_page(q, hist, 3));
    snprintf(q, sizeof q, "/v1/devices/%s/assignments?limit=2", d.id);
    char *cursor = expect_page(q, hist, 2);
    CHECK(cursor != NULL, "first page of 2 of 3: next is null");
    snprintf(q, sizeof q, "/v1/devices/%s/assignments?limit=2&after=%s", d.id, cursor);
    free(cursor);
    cursor = expect_page(q, hist + 2, 1);
    CHECK(cursor == NULL, "last page: next = %s", cursor);
    snprintf(q, sizeof q, "/v1/devices/%s/assignments?limit=3", d.id);
    cursor = expect_page(q, hist, 3);
    CHECK(cursor == NULL, "a page exactly as large as the rest: next = %s", cursor);

    /* The items are the assignments as GET shows them, less events. */
    snprintf(q, sizeof q, "/v1/devices/%s/assignments?limit=1", d.id);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *full = h_get_assignment(a3);
    json_object_del(full, "events");
    CHECK(json_equal(full, json_array_get(json_object_get(r.json, "items"), 0)), "list item differs from GET: %s",
          BODY(&r));
    json_decref(full);
    h_resp_free(&r);

    /* Unknown device: 404; bad paging: 400. */
    char unknown[40];
    h_random_uuid(unknown, sizeof unknown);
    snprintf(q, sizeof q, "/v1/devices/%s/assignments", unknown);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    snprintf(q, sizeof q, "/v1/devices/%s/assignments?limit=0", d.id);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    snprintf(q, sizeof q, "/v1/devices/%s/assignments?after=garbage!!", d.id);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    snprintf(q, sizeof q, "/v1/devices/%s/assignments", d.id);
    h_http(&h_g_srv, "GET", q, NULL, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);

    /* The global list: by release, by status, both; paged. */
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s", r1.id);
    const char *const by_r1[] = {b1, a2, a1};
    free(expect_page(q, by_r1, 3));
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s&limit=1", r1.id);
    cursor = expect_page(q, by_r1, 1);
    for (size_t i = 1; i < 3; i++) {
        CHECK(cursor != NULL, "page %zu: next is null", i);
        snprintf(q, sizeof q, "/v1/assignments?release_id=%s&limit=1&after=%s", r1.id, cursor);
        free(cursor);
        cursor = expect_page(q, by_r1 + i, 1);
    }
    CHECK(cursor == NULL, "after the last: next = %s", cursor);
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s&status=canceled", r1.id);
    const char *const canceled[] = {a2, a1};
    free(expect_page(q, canceled, 2));
    snprintf(q, sizeof q, "/v1/assignments?status=canceled&release_id=%s&limit=1", r1.id);
    cursor = expect_page(q, canceled, 1);
    CHECK(cursor != NULL, "status+release page 1: next is null");
    snprintf(q, sizeof q, "/v1/assignments?status=canceled&release_id=%s&limit=1&after=%s", r1.id, cursor);
    free(cursor);
    cursor = expect_page(q, canceled + 1, 1);
    CHECK(cursor == NULL, "status+release last page: next = %s", cursor);
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s&status=delivered", r1.id);
    const char *const delivered[] = {b1};
    free(expect_page(q, delivered, 1));
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s&status=pending", r1.id);
    free(expect_page(q, NULL, 0));
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s", r2.id);
    const char *const by_r2[] = {a3};
    free(expect_page(q, by_r2, 1));
    h_random_uuid(unknown, sizeof unknown);
    snprintf(q, sizeof q, "/v1/assignments?release_id=%s", unknown);
    free(expect_page(q, NULL, 0));

    /* By status alone: the newest pending one overall is a3 (tests run one at a time). */
    h_http(&h_g_srv, "GET", "/v1/assignments?status=pending&limit=500", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_array_size(items) >= 1 && h_streq(h_jstr(json_array_get(items, 0), "id"), a3), "status=pending: %.2000s",
          BODY(&r));
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
        CHECK(h_streq(h_jstr(it, "status"), "pending"), "status=pending lists a %s one", h_jstr(it, "status"));
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/v1/assignments?limit=2", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 2 && json_is_string(json_object_get(r.json, "next")),
          "limit=2: %.2000s", BODY(&r));
    CHECK(h_streq(h_jstr(json_array_get(json_object_get(r.json, "items"), 0), "id"), b1), "newest overall: %.2000s",
          BODY(&r));
    h_resp_free(&r);

    /* Bad filters and paging: 400. */
    static const char *const bad[] = {
        "/v1/assignments?status=bogus",    "/v1/assignments?status=",     "/v1/assignments?status=PENDING",
        "/v1/assignments?release_id=nope", "/v1/assignments?release_id=", "/v1/assignments?limit=0",
        "/v1/assignments?limit=501",       "/v1/assignments?limit=x",     "/v1/assignments?after=garbage!!"};
    for (size_t k = 0; k < ELEMS(bad); k++) {
        h_http(&h_g_srv, "GET", bad[k], h_g_srv.admin_key, NULL, 0, NULL, &r);
        EXPECT_ERROR_AT(&r, 400, "bad_request", "GET", bad[k]);
        h_resp_free(&r);
    }

    /* Single assignment: unknown 404, malformed 400. */
    snprintf(q, sizeof q, "/v1/assignments/%s", unknown);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STRICT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", "/v1/assignments/12345", h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);

    /* The device list filters by ota_status (the newest assignment's status). */
    snprintf(q, sizeof q, "/v1/devices?model=%s&ota_status=pending", model);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    items = json_object_get(r.json, "items");
    CHECK(json_array_size(items) == 1 && h_streq(h_jstr(json_array_get(items, 0), "id"), d.id), "%s: %.2000s", q,
          BODY(&r));
    h_resp_free(&r);
    snprintf(q, sizeof q, "/v1/devices?model=%s&ota_status=delivered", model);
    h_http(&h_g_srv, "GET", q, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    items = json_object_get(r.json, "items");
    CHECK(json_array_size(items) == 1 && h_streq(h_jstr(json_array_get(items, 0), "id"), e.id), "%s: %.2000s", q,
          BODY(&r));
    h_resp_free(&r);
    h_release_free(&r1);
    h_release_free(&r2);
}

/* ---- the program --------------------------------------------------------------------------------- */

/* ---- downgrades ---------------------------------------------------------------------------------- */

/* A release older than the device's firmware, by semver precedence, is assigned only with "allow_downgrade". */
static void test_downgrade_needs_consent(void **state)
{
    (void)state;
    char model[32], aid[40];
    h_release_t older, rc, newer;
    h_device_t d, fresh, pre;
    h_resp_t r = {0};
    h_make_model(model, sizeof model, "Downgrade model");
    h_make_release(model, "1.5.0", 300, &older);
    h_make_release(model, "2.0.0-rc.1", 300, &rc);
    h_make_release(model, "2.0.0", 300, &newer);
    h_make_device(model, "2.0.0", &d);

    h_assign(d.id, older.id, &r);
    EXPECT_STRICT_ERROR(&r, 422, "downgrade_not_allowed");
    CHECK(h_streq(h_jstr(json_object_get(json_object_get(r.json, "error"), "details"), "firmware_version"), "2.0.0"),
          "details: %s", BODY(&r));
    h_resp_free(&r);
    /* A pre-release of the running version is older too. */
    h_assign(d.id, rc.id, &r);
    EXPECT_STRICT_ERROR(&r, 422, "downgrade_not_allowed");
    h_resp_free(&r);
    /* Not a boolean: 400, whatever the versions. */
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", d.id);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, &r, "{s:s, s:s}", "release_id", older.id, "allow_downgrade",
           "yes");
    EXPECT_STRICT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    /* Explicit: assigned as any other, and its manifest says so, signed. */
    h_assign_downgrade_ok(&d, &older, aid);
    ota_manifest_t m;
    h_heartbeat_fw(&d, "2.0.0", &r);
    expect_manifest_of(&r, aid, &older, true, &m);
    h_resp_free(&r);

    /* From a pre-release to its release is an upgrade; a device that never reported a version has nothing older. */
    h_make_device(model, "2.0.0-rc.1", &pre);
    h_assign_ok(&pre, &newer, aid);
    h_make_device(model, NULL, &fresh);
    h_assign_ok(&fresh, &older, aid);
    h_release_free(&older);
    h_release_free(&rc);
    h_release_free(&newer);
}

/* The database's ota_semver_cmp(), which refuses downgrades, orders versions exactly as the C codec does. */
static void test_semver_order_matches_the_codec(void **state)
{
    (void)state;
    static const char *const VERSIONS[] = {
        "0.0.4",
        "0.9.9",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.0+build.7",
        "1.0.1-0",
        "1.0.1-0.3.7",
        "1.0.1-x.7.z.92",
        "1.0.1-x-y-z.--",
        "1.2.3-Alpha",
        "1.2.3-alpha",
        "1.2.3-10",
        "1.2.3-9",
        "1.2.3",
        "1.10.0",
        "2.0.0",
        "10.2.3-DEV-SNAPSHOT",
        "9223372036854775807.0.0",
    };
    enum { N = sizeof VERSIONS / sizeof VERSIONS[0] };
    ota_semver_t v[N];
    for (int i = 0; i < N; i++)
        CHECK(ota_semver_parse(VERSIONS[i], strlen(VERSIONS[i]), &v[i]) == OTA_OK, "not a version: %s", VERSIONS[i]);
    for (int i = 0; i < N; i++) {
        /* One query a row of the table; the pair that differs is looked for only when the row does. */
        char buf[N * 96], one[N][96];
        ota_text_t row;
        ota_text_fixed(&row, buf, sizeof buf);
        ota_text_puts(&row, "true");
        for (int j = 0; j < N; j++) {
            snprintf(one[j], sizeof one[j], "ota_semver_cmp('%s', '%s') = %d", VERSIONS[i], VERSIONS[j],
                     ota_semver_compare(&v[i], &v[j]));
            ota_text_printf(&row, " AND %s", one[j]);
        }
        CHECK(row.err == OTA_OK, "the query of row %d does not fit", i);
        if (h_sql_holds(row.base))
            continue;
        for (int j = 0; j < N; j++)
            CHECK(h_sql_holds(one[j]), "%s", one[j]);
    }
    CHECK(h_sql_holds("ota_semver_cmp('1.0', '1.0.0') IS NULL AND ota_semver_cmp('v1.0.0', '1.0.0') = 0"),
          "not a version, or a leading v");
}

/* The progress of `a` is {state, bytes, total, at}: polled until it is (the server writes it in bulk). */
static json_t *await_progress(const char *aid, const char *state, json_int_t bytes, json_int_t total)
{
    for (long waited = 0;; waited += 100) {
        json_t *a = h_get_assignment(aid);
        json_t *p = json_object_get(a, "progress");
        time_t at;
        if (h_streq(h_jstr(p, "state"), state) && h_jint(p, "bytes") == bytes && h_jint(p, "total") == total &&
            h_rfc3339_utc(h_jstr(p, "at"), &at) && labs((long)(at - time(NULL))) < 120)
            return a;
        if (waited >= H_DEFERRED_WRITE_WAIT_MS) {
            char *text = json_dumps(a, JSON_COMPACT);
            CHECK(false, "progress never became %s %lld/%lld: %s", state, (long long)bytes, (long long)total, text);
        }
        json_decref(a);
        h_sleep_ms(100);
    }
}

/*
 * Download progress: what the device reports in its heartbeats while it downloads is kept with the delivered
 * assignment and shown on it and on the device's active assignment; a report about another assignment, or without
 * bytes and total, changes nothing.
 */
static void test_download_progress(void **state)
{
    (void)state;
    char model[40], aid[40], body[400];
    h_release_t rel;
    h_device_t d;
    h_resp_t r = {0};
    h_make_model(model, sizeof model, "Progress");
    h_make_release(model, "1.1.0", 42892, &rel);
    h_make_device(model, "1.0.0", &d);
    h_assign_ok(&d, &rel, aid);
    h_heartbeat_fw(&d, "1.0.0", &r);
    CHECK(json_is_object(json_object_get(r.json, "ota")), "no manifest: %s", BODY(&r));
    h_resp_free(&r);
    json_t *a = h_get_assignment(aid);
    CHECK(h_jnull(a, "progress"), "progress before any report: %s", json_dumps(a, 0));
    json_decref(a);

    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"downloading\", "
             "\"bytes\": 28672, \"total\": 42892}}",
             aid);
    h_heartbeat_ok(&h_g_srv, &d, body, &r);
    CHECK(json_is_object(json_object_get(r.json, "ota")), "the manifest stops while downloading: %s", BODY(&r));
    h_resp_free(&r);
    json_decref(await_progress(aid, "downloading", 28672, 42892));
    json_t *dev = h_get_device(d.id);
    json_t *p = json_object_get(json_object_get(dev, "active_assignment"), "progress");
    CHECK(h_streq(h_jstr(p, "state"), "downloading") && h_jint(p, "bytes") == 28672 && h_jint(p, "total") == 42892,
          "the device's active assignment: %s", json_dumps(dev, 0));
    json_decref(dev);

    /* Reports that say nothing to keep: another assignment's, and one without bytes. */
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"00000000-0000-4000-8000-000000000000\", "
             "\"state\": \"verifying\", \"bytes\": 1, \"total\": 1}}");
    h_heartbeat_ok(&h_g_srv, &d, body, &r);
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"installing\"}}", aid);
    h_heartbeat_ok(&h_g_srv, &d, body, &r);
    h_resp_free(&r);
    h_sleep_ms(800); /* several writes of what the server keeps (every 200 ms in the tests) */
    a = h_get_assignment(aid);
    p = json_object_get(a, "progress");
    CHECK(h_streq(h_jstr(p, "state"), "downloading") && h_jint(p, "bytes") == 28672,
          "a report kept that says nothing: %s", json_dumps(a, 0));
    json_decref(a);
    /* Then one that counts. */
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"verifying\", "
             "\"bytes\": 42892, \"total\": 42892}}",
             aid);
    h_heartbeat_ok(&h_g_srv, &d, body, &r);
    h_resp_free(&r);
    a = await_progress(aid, "verifying", 42892, 42892);
    CHECK(h_jnull(json_object_get(a, "progress"), "delta"), "a full download's progress names a delta: %s",
          json_dumps(a, 0));
    json_decref(a);
    /* What the device says of a delta is kept with its progress: used, then failed (the full image after it). */
    static const char *const DELTA_WORDS[] = {"used", "failed"};
    for (int i = 0; i < 2; i++) {
        snprintf(body, sizeof body,
                 "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"downloading\", "
                 "\"bytes\": %d, \"total\": 42892, \"delta\": \"%s\"}}",
                 aid, 100 + i, DELTA_WORDS[i]);
        h_heartbeat_ok(&h_g_srv, &d, body, &r);
        h_resp_free(&r);
        a = await_progress(aid, "downloading", 100 + i, 42892);
        CHECK(h_streq(h_jstr(json_object_get(a, "progress"), "delta"), DELTA_WORDS[i]), "want progress.delta %s: %s",
              DELTA_WORDS[i], json_dumps(a, 0));
        json_decref(a);
    }
    /* Another word is a 422. */
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"downloading\", "
             "\"bytes\": 1, \"total\": 42892, \"delta\": \"maybe\"}}",
             aid);
    h_heartbeat_on(&h_g_srv, d.id, d.token, body, &r);
    EXPECT_ERROR(&r, 422, "validation_failed");
    h_resp_free(&r);
    /* A progress report of a wrong type is a 400, like any field. */
    snprintf(body, sizeof body,
             "{\"firmware_version\": \"1.0.0\", \"ota\": {\"assignment_id\": \"%s\", \"state\": \"downloading\", "
             "\"bytes\": \"many\"}}",
             aid);
    h_heartbeat_on(&h_g_srv, d.id, d.token, body, &r);
    EXPECT_STRICT_ERROR(&r, 400, "bad_request");
    h_resp_free(&r);
    h_release_free(&rel);
}

int main(void)
{
    /* The tests drive devices far harder than the 10 requests in 10 s a device may send (one device is sent a heartbeat
       per malformed body, dozens within a second); it_rate_limit tests the limit itself. */
    h_server_env_all = "OTA_DEVICE_RATE_LIMIT=1000000";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_applied),
        cmocka_unit_test(test_failed_path),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_deferral_recording),
        cmocka_unit_test(test_deferral_ble_connected),
        cmocka_unit_test(test_deferral_battery),
        cmocka_unit_test_teardown(test_deferral_battery_policy, stop_other),
        cmocka_unit_test(test_withdraw_and_delete_in_use),
        cmocka_unit_test(test_apply_timeout),
        cmocka_unit_test_teardown(test_apply_timeout_setting, stop_other),
        cmocka_unit_test(test_heartbeat_tokens),
        cmocka_unit_test(test_heartbeat_bodies),
        cmocka_unit_test_teardown(test_signing_key, stop_other),
        cmocka_unit_test(test_manifest_signature_stored),
        cmocka_unit_test(test_presigned_url_shared_within_second),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_downgrade_needs_consent),
        cmocka_unit_test(test_semver_order_matches_the_codec),
        cmocka_unit_test(test_download_progress),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
