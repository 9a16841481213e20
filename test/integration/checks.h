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
