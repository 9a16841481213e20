/*
 * libFuzzer driver for JSON request bodies and their validation. The input
 * is the body of a POST to a JSON route; it is read by ota__body_read as the
 * server reads it, and an object that reads is then checked field by field
 * as the handlers check theirs: a representative set of what creating a
 * rollout and tagging devices read (strings, integers, numbers, arrays of
 * numbers and of strings, a nested object, booleans, a fleet filter, tag
 * lists).
 *
 * Every refusal must be one answer the server can build (respond_stub.c):
 * 400 when a field had the wrong type, else 422. A fleet filter that was
 * given but did not read must have been refused; one that reads is
 * normalized (filter_check.c), and so are tag lists.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter_check.h"
#include "http/body.h"
#include "http/fleet_filter.h"
#include "http/tags.h"
#include "http/validate.h"
#include "respond_stub.h"

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_body.c:%d: check failed\n", line);
        abort();
    }
}

static int given(json_t *body, const char *name)
{
    json_t *value = json_object_get(body, name);
    return value != NULL && !json_is_null(value);
}

/* A nested object of settings, as a rollout's "failure" gates. */
static void read_nested(ota_validate_t *v)
{
    ota_validate_t sub;
    json_int_t count;
    double percent;
    if (!ota__validate_object(v, "failure", &sub))
        return;
    if (ota__validate_number(&sub, "max_percent", &percent) && !(percent >= 0 && percent <= 100))
        ota__validate_fail(&sub, "max_percent", "must be a percentage from 0 to 100");
    if (ota__validate_integer(&sub, "min_failures", false, &count) && count < 1)
        ota__validate_fail(v, "failure.min_failures", "must be at least 1");
    ota__validate_end_object(v, "failure", &sub);
}

/* An array of numbers, as a rollout's waves. */
static void read_waves(ota_validate_t *v)
{
    size_t i;
    json_t *wave;
    json_t *waves = ota__validate_array(v, "waves");
    json_array_foreach(waves, i, wave)
    {
        if (!json_is_number(wave)) {
            ota__validate_fail(v, "waves", "must hold numbers");
            return;
        }
    }
}

/* Validates `body` (an object, or NULL for an empty body) as the handlers do; true when it passes. */
static int validate(json_t *body)
{
    ota_validate_t v;
    ota_call_t call;
    json_int_t limit;
    ota__validate_init(&v, body);
    const char *name = ota__validate_string(&v, "name", false);
    ota__validate_string(&v, "release_id", true);
    json_t *filter = ota__fleet_filter_read(&v, "filter");
    read_waves(&v);
    read_nested(&v);
    if (ota__validate_integer(&v, "max_per_minute", false, &limit) && limit < 1)
        ota__validate_fail(&v, "max_per_minute", "must be at least 1");
    ota__validate_boolean(&v, "dry_run", false);
    json_t *add = ota__tags_read(&v, json_object_get(body, "add"), "add");
    json_t *labels = ota__validate_array(&v, "labels");
    if (labels != NULL)
        ota__validate_string_array(&v, labels, "labels");
    if (name != NULL && strlen(name) > 200)
        ota__validate_fail(&v, "name", "must be at most 200 characters");

    int type_error = v.type_error[0] != '\0', problems = json_object_size(v.fields) > 0;
    memset(&call, 0, sizeof call);
    ota_fuzz_answer_reset();
    int ok = ota__validate_done(&v, &call);
    check(ok == !(type_error || problems));
    check(ok ? ota_fuzz_answer.count == 0 : ota_fuzz_answer.count == 1);
    if (!ok)
        check(ota_fuzz_answer.status == (type_error ? 400 : 422));
    /* A filter given is read or refused: never taken as absent, which is every device. */
    check(filter != NULL || !given(body, "filter") || !ok);
    if (filter != NULL)
        ota_fuzz_check_filter(filter, 0);
    if (add != NULL)
        ota_fuzz_check_tags(add);
    json_decref(filter);
    json_decref(add);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ota_route_t route = {.body = OTA_BODY_JSON_BULK};
    h2o_req_t req;
    ota_call_t call;
    /* A copy of its own, so ASan sees any read past the end. */
    char *body = malloc(size > 0 ? size : 1);

    check(body != NULL);
    if (size > 0)
        memcpy(body, data, size);
    memset(&req, 0, sizeof req);
    memset(&call, 0, sizeof call);
    req.entity = h2o_iovec_init(body, size);
    call.req = &req;
    call.match.route = &route;
    ota_fuzz_answer_reset();
    if (ota__body_read(&call)) {
        check(ota_fuzz_answer.count == 0);
        check(size == 0 ? call.body == NULL : json_is_object(call.body));
        validate(call.body);
        json_decref(call.body);
    } else {
        check(ota_fuzz_answer.count == 1 && (ota_fuzz_answer.status == 400 || ota_fuzz_answer.status == 413));
    }
    free(body);
    return 0;
}
