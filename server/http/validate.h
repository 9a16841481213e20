#ifndef OTA_SERVER_HTTP_VALIDATE_H
#define OTA_SERVER_HTTP_VALIDATE_H

#include <stdbool.h>
#include <jansson.h>

#include "http/call.h"

/*
 * Reading fields of a JSON request body, collecting every problem before
 * answering. As the API says: a field of the wrong JSON type is 400
 * `bad_request`; a missing or invalid value is 422 `validation_failed` with
 * `details.fields` mapping each field to what is wrong with it.
 *
 *     ota_validate_t v;
 *     ota__validate_init(&v, call->body);
 *     const char *serial = ota__validate_string(&v, "serial", true);
 *     if (!ota__validate_done(&v, call))
 *         return; // answered
 */
typedef struct ota_validate {
    json_t *object;      /**< the body (may be NULL: every required field is then missing) */
    json_t *fields;      /**< field → problem, for 422 */
    char type_error[160]; /**< the first wrong-type problem, for 400 */
} ota_validate_t;

/** Starts checking `object` (not owned). */
void ota__validate_init(ota_validate_t *v, json_t *object);

/** A string field: NULL when absent (a problem when `required`), JSON null, or not a string (a 400 problem). */
const char *ota__validate_string(ota_validate_t *v, const char *name, bool required);

/**
 * An integer field: false when absent (a problem when `required`), JSON null, or not an integer (a 400
 * problem); otherwise stores it in `*out` and returns true.
 */
bool ota__validate_integer(ota_validate_t *v, const char *name, bool required, json_int_t *out);

/**
 * A number field (integer or not): false when absent or JSON null; a non-number is a 400 problem. Otherwise
 * stores it in `*out` and returns true.
 */
bool ota__validate_number(ota_validate_t *v, const char *name, double *out);

/** An array field (borrowed): NULL when absent or JSON null; a non-array is a 400 problem (and gives NULL). */
json_t *ota__validate_array(ota_validate_t *v, const char *name);

/**
 * A boolean field: `def` when absent or JSON null; a non-boolean is a 400 problem (and gives `def`).
 */
bool ota__validate_boolean(ota_validate_t *v, const char *name, bool def);

/**
 * Starts checking the nested object field `name` with `sub`: false when it is absent or null, or not an
 * object (a 400 problem recorded in `v`). After a true, end with ota__validate_end_object.
 */
bool ota__validate_object(ota_validate_t *v, const char *name, ota_validate_t *sub);

/** Carries a wrong-type problem found in `sub` (the object `name`) over to `v`, and releases `sub`. */
void ota__validate_end_object(ota_validate_t *v, const char *name, ota_validate_t *sub);

/** Records that `field` is not of the JSON type `what` ("an array of strings"): a 400, unless one came first. */
void ota__validate_wrong_type(ota_validate_t *v, const char *field, const char *what);

/** True when `value` (of field `field`) is a JSON array of strings; otherwise records a 400 problem. */
bool ota__validate_string_array(ota_validate_t *v, json_t *value, const char *field);

/** Records `problem` for `field` (a 422). */
void ota__validate_fail(ota_validate_t *v, const char *field, const char *problem);

/** True when no problem was found. Otherwise answers 400 or 422, frees the call and returns false. Always releases `v`. */
bool ota__validate_done(ota_validate_t *v, ota_call_t *call);

#endif
