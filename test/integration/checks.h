#ifndef OTA_TEST_CHECKS_H
#define OTA_TEST_CHECKS_H

/*
 * What the integration programs share on top of the harness: the CHECK and
 * EXPECT_* assertions (a failed one prints why and the server's log, then
 * fails the test), the contract's error shape, small JSON and time helpers,
 * and the usual group setup: one cluster (h_g_pg) and one ready server
 * (h_g_srv) for the whole program.
 *
 * Includes what cmocka.h needs before it, cmocka.h itself and harness.h.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

/** The cluster h_group_setup starts (programs with their own setup may start it themselves). */
extern h_pg_t h_g_pg;
/** The server h_group_setup starts on h_g_pg; a failed CHECK shows its log. */
extern h_server_t h_g_srv;

/**
 * Reports a failed check on stderr: "file:line: check failed: cond", the
 * printf-style message, then h_g_srv's log. CHECK's helper; fail() is left to the caller.
 */
void h_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Fails the test when `cond` is false, printing the printf-style message after it and h_g_srv's log. */
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            h_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                                                    \
            fail();                                                                                                    \
            abort(); /* not reached: fail() leaves the test; says so to the compiler (-O3's flow analysis) */          \
        }                                                                                                              \
    } while (0)

/** A response's body for messages, never NULL. */
#define BODY(r) ((r)->body != NULL ? (r)->body : "(no body)")

/** The response has HTTP status `want`. */
#define EXPECT_STATUS(r, want)                                                                                         \
    CHECK((r)->status == (want), "expected HTTP %d, got %ld: %.2000s", (int)(want), (r)->status, BODY(r))

/** The response has status `want` and an error body (h_error_shape_ok) with code `code`. */
#define EXPECT_ERROR(r, want, code)                                                                                    \
    CHECK((r)->status == (want) && h_error_shape_ok((r), (code)),                                                      \
          "expected HTTP %d with error code \"%s\", got %ld (%s): %.2000s", (int)(want), (code), (r)->status,          \
          (r)->content_type, BODY(r))

/** EXPECT_ERROR with the contract's full error shape (h_error_shape_strict). */
#define EXPECT_STRICT_ERROR(r, want, code)                                                                             \
    CHECK((r)->status == (want) && h_error_shape_strict((r), (code)),                                                  \
          "expected HTTP %d with error code \"%s\", got %ld (%s): %.2000s", (int)(want), (code), (r)->status,          \
          (r)->content_type, BODY(r))

/** EXPECT_ERROR naming the request (`method` `path`) in the message. */
#define EXPECT_ERROR_AT(r, want, code, method, path)                                                                   \
    CHECK((r)->status == (want) && h_error_shape_ok((r), (code)), "%s %s: expected %d %s, got %ld: %.2000s", (method), \
          (path), (int)(want), (code), (r)->status, BODY(r))

/** A 422 validation_failed error naming field `name` in error.details.fields. */
#define EXPECT_FIELD_ERROR(r, name)                                                                                    \
    do {                                                                                                               \
        EXPECT_ERROR((r), 422, "validation_failed");                                                                   \
        CHECK(h_field_error((r), (name)), "no details.fields.%s in %s", (name), BODY(r));                              \
    } while (0)

/**
 * An error body: a JSON object {"error": {"code": <string>, "message": <string>, ...}} whose code is `code`
 * (any code when `code` is NULL).
 */
bool h_error_shape_ok(const h_resp_t *r, const char *code);

/**
 * The contract's full error shape: h_error_shape_ok, and besides an application/json content type, a non-empty
 * message, and "details", when present, an object.
 */
bool h_error_shape_strict(const h_resp_t *r, const char *code);

/** error.details.fields.<name> is present. */
bool h_field_error(const h_resp_t *r, const char *name);

/** The string member `key` of `obj`, or NULL (no object, no such member, not a string). */
const char *h_jstr(json_t *obj, const char *key);

/** Both strings exist and are equal. */
bool h_streq(const char *a, const char *b);

/**
 * `s` is RFC 3339 UTC with a Z ("2026-11-21T10:00:00Z", optional fraction); the time it names (whole seconds)
 * goes to *out.
 */
bool h_rfc3339_utc(const char *s, time_t *out);

/** Writes `prefix` and 16 fresh random hex digits into `out` (`cap` bytes), for unique ids and serials. */
void h_unique(char *out, size_t cap, const char *prefix);

/** Writes a fresh random lower-case version-4 UUID (36 characters) into `out` (`cap` bytes). */
void h_random_uuid(char *out, size_t cap);

/**
 * h_http with a NUL-terminated `body` sent as JSON (NULL: no body), for tables of requests whose body may be
 * absent.
 */
void h_request(h_server_t *srv, const char *method, const char *path, const char *token, const char *body,
               h_resp_t *out);

/** Creates a model on h_g_srv with a fresh id "m-<hex>" (into `id`, `cap` bytes) and `name`; checks the 201. */
void h_make_model(char *id, size_t cap, const char *name);

/** Makes an API key of `role` ("admin", "viewer") with `ota-server apikey create` on h_g_pg; the key goes to `key`. */
void h_cli_api_key(const char *role, char key[128]);

/* ---- small utilities ---------------------------------------------------------------------------- */

/** Sleeps `ms` milliseconds (resumed after signals). */
void h_sleep_ms(long ms);

/** Runs `expr` (an SQL boolean expression) in the shared database and tells whether it holds (NULL: no). */
bool h_sql_holds(const char *expr);

/** h_sql_holds, tried every 100 ms for up to H_DEFERRED_WRITE_WAIT_MS (for what the server writes after answering). */
bool h_sql_eventually(const char *expr);

/** `s` is a lower-case hyphenated UUID. */
bool h_is_uuid(const char *s);

/** `n` fresh random bytes (malloc'ed; a failed CHECK when they cannot be had). */
unsigned char *h_random_bytes(size_t n);

/** `key` is present in `obj` and null. */
bool h_jnull(json_t *obj, const char *key);

/** The integer member `key` of `obj`, or -1 (absent or not an integer). */
json_int_t h_jint(json_t *obj, const char *key);

/** The value of the /metrics sample line of `series` (name and labels exactly) in `text`, or -1 when absent. */
long long h_metric_sample(const char *text, const char *series);

/** h_metric_sample of `series` in h_g_srv's GET /metrics (which must answer 200). */
long long h_metric(const char *series);

/** The SHA-256 of `len` bytes at `data`, as 64 lower-case hex digits. */
void h_sha256_hex(const void *data, size_t len, char out[65]);

/** A downloaded body (malloc'ed `p`, NUL-terminated past `len`). */
typedef struct h_buf {
    unsigned char *p;
    size_t len, cap;
} h_buf_t;

/** A plain GET of a whole URL without credentials: returns the status (0: transport failure); the body goes to
 *  `out` (free out->p). */
long h_download(const char *url, h_buf_t *out);

/* ---- fixtures on h_g_srv: releases, devices, assignments, heartbeats ------------------------------ */

/** A release made by h_make_release[_ufw], with the bytes of its artifacts and their CRC-32 and SHA-256. */
typedef struct h_release {
    char id[40];
    char model[32];
    char version[32];
    unsigned char *bin;
    size_t len;
    uint32_t crc32;
    char sha256[65];
    unsigned char *ufw; /**< NULL: no ufw artifact */
    size_t ufw_len;
    uint32_t ufw_crc32;
    char ufw_sha256[65];
} h_release_t;

/** POSTs a release of `model` / `version` with `len` random bytes as a JSON blob (bin only); checks the 201. */
void h_make_release(const char *model, const char *version, size_t len, h_release_t *out);

/** h_make_release with a ufw artifact of `ufw_len` random bytes too (0: none). */
void h_make_release_ufw(const char *model, const char *version, size_t len, size_t ufw_len, h_release_t *out);

/** Frees the bytes a release holds (not the struct). */
void h_release_free(h_release_t *r);

/** A device made by h_make_device, with its token. */
typedef struct h_device {
    char id[40];
    char token[200];
    char model[32];
    char serial[40];
} h_device_t;

/** Registers a device of `model` running `firmware` (NULL: none reported); checks the 201. */
void h_make_device(const char *model, const char *firmware, h_device_t *out);

/** POST /v1/devices/{device_id}/assignments {"release_id": release_id} as the admin. */
void h_assign(const char *device_id, const char *release_id, h_resp_t *out);

/** POST /v1/devices/{device_id}/assignments {"release_id": release_id, "allow_downgrade": true} as the admin. */
void h_assign_downgrade(const char *device_id, const char *release_id, h_resp_t *out);

/** The 201 of a new assignment of `rel` to `d`, with the contract's whole shape; its id goes to `id` (40 bytes). */
void h_assign_ok(const h_device_t *d, const h_release_t *rel, char id[40]);

/** h_assign_ok with "allow_downgrade": true. */
void h_assign_downgrade_ok(const h_device_t *d, const h_release_t *rel, char id[40]);

/**
 * POST /v1/rollouts as the admin: release `release_id` and the JSON members `members` (text, may be ""); checks
 * the 201, writes the rollout's id into `id` and returns the answer (caller decrefs).
 */
json_t *h_create_rollout(const char *release_id, const char *members, char id[40]);
/** GET /v1/rollouts/{id} as the admin: the rollout (caller decrefs). */
json_t *h_get_rollout(const char *id);
/** GET /v1/assignments/{id} as the admin: the assignment with its events (caller decrefs). */
json_t *h_get_assignment(const char *id);

/** GET /v1/devices/{id} as the admin (caller decrefs). */
json_t *h_get_device(const char *id);

/** One expected assignment event. */
typedef struct h_event {
    const char *from; /**< NULL: null */
    const char *to;
    const char *reason; /**< NULL: null */
} h_event_t;

/** The assignment's events are exactly `want` (oldest first), each with an RFC 3339 "at" in order. */
void h_expect_events(json_t *a, const h_event_t *want, size_t n);

/** The assignment `id` has `status`, `deliveries`, `reason` (NULL: null) and the matching timestamps; returns it
 *  (caller decrefs). Waits up to H_DEFERRED_WRITE_WAIT_MS for `deliveries`: the server writes re-delivery counts
 *  every OTA_DEFERRED_WRITE_MS, 200 ms in the tests (server/heartbeat/deferred_writes.h). */
#define H_DEFERRED_WRITE_WAIT_MS 3000

json_t *h_expect_assignment(const char *id, const char *status, json_int_t deliveries, const char *reason);

/** POST /v1/devices/{device_id}/heartbeat on `srv` with `token` (NULL: none) and the JSON text `body`. */
void h_heartbeat_on(h_server_t *srv, const char *device_id, const char *token, const char *body, h_resp_t *out);

/** A heartbeat of `d` that must be answered 200 with the contract's shape (default interval 60 s). */
void h_heartbeat_ok(h_server_t *srv, const h_device_t *d, const char *body, h_resp_t *out);

/** h_heartbeat_ok on h_g_srv reporting only `firmware`. */
void h_heartbeat_fw(const h_device_t *d, const char *firmware, h_resp_t *out);

/** The heartbeat answer has no manifest, and deferred is `deferred` (NULL: null). */
void h_expect_no_manifest(const h_resp_t *r, const char *deferred);

/**
 * Polls GET /readyz until 200 (at most 10 s): the server listens before its database connections are up.
 * On time-out says so and shows the server's log; returns whether it became ready.
 */
bool h_wait_ready(h_server_t *srv);

/** cmocka group setup: starts h_g_pg and h_g_srv on it, and waits until it is ready (-1 if it never is). */
int h_group_setup(void **state);

/** cmocka group teardown: stops h_g_srv (whatever its exit status) and destroys h_g_pg. */
int h_group_teardown(void **state);

#endif
