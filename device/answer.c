#include "answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "ota/manifest.h"
#include "util.h"

/* Sets `key` of `obj` to `value` (stolen, NULL allowed); false when either failed to allocate. */
static bool set(json_t *obj, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(obj, key, value) == 0;
}

ota_err_t ota__report_encode(const ota__report_t *r, char **out)
{
    ota_err_t rc = OTA_ERR_NOMEM;
    json_t *j = json_object(), *battery = NULL, *ota = NULL;
    *out = NULL;
    if (j == NULL || !set(j, "firmware_version", json_string(r->version)) ||
        (r->firmware_sha256 != NULL && !set(j, "firmware_sha256", json_string(r->firmware_sha256))) ||
        (r->connectivity != NULL && !set(j, "connectivity", json_string(r->connectivity))) ||
        !set(j, "recording", json_boolean(r->recording)))
        goto Exit;
    if (r->battery_percent >= 0 || r->battery_state != NULL) {
        if ((battery = json_object()) == NULL ||
            (r->battery_percent >= 0 && !set(battery, "percent", json_integer(r->battery_percent))) ||
            (r->battery_state != NULL && !set(battery, "state", json_string(r->battery_state))))
            goto Exit;
        json_t *b = battery;
        battery = NULL;
        if (!set(j, "battery", b))
            goto Exit;
    }
    if (r->ota_assignment != NULL) {
        if ((ota = json_object()) == NULL || !set(ota, "assignment_id", json_string(r->ota_assignment)) ||
            !set(ota, "state", json_string(r->ota_state)) ||
            !set(ota, "bytes", json_integer((json_int_t)r->ota_bytes)) ||
            !set(ota, "total", json_integer((json_int_t)r->ota_total)) ||
            (r->ota_error != NULL && !set(ota, "error", json_string(r->ota_error))) ||
            (r->ota_delta != NULL && !set(ota, "delta", json_string(r->ota_delta))))
            goto Exit;
        json_t *o = ota;
        ota = NULL;
        if (!set(j, "ota", o))
            goto Exit;
    }
    if ((*out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL)
        rc = OTA_OK;
Exit:
    json_decref(battery);
    json_decref(ota);
    json_decref(j);
    return rc;
}

ota_err_t ota__answer_decode(const char *text, size_t len, ota_device_answer_t *out, char *why, size_t cap)
{
    ota_err_t rc = OTA_ERR_INVALID;
    char err[160];
    ota_device_answer_t *a = calloc(1, sizeof *a);
    json_t *j = NULL;
    if (a == NULL)
        return OTA_ERR_NOMEM;
    if ((rc = ota__json_parse(text, len, &j, err, sizeof err)) != OTA_OK) {
        if (rc == OTA_ERR_INVALID)
            snprintf(why, cap, "the heartbeat answer is not JSON: %s", err);
        goto Exit;
    }
    rc = OTA_ERR_INVALID;
    json_t *interval = json_object_get(j, "heartbeat_interval_s"), *time = json_object_get(j, "server_time");
    json_t *ota = json_object_get(j, "ota"), *deferred = json_object_get(j, "deferred");
    if (!json_is_object(j) || !json_is_integer(interval) || json_integer_value(interval) < 1 ||
        json_integer_value(interval) > 7 * 86400) {
        snprintf(why, cap, "the heartbeat answer has no valid heartbeat_interval_s");
        goto Exit;
    }
    a->interval_s = (long)json_integer_value(interval);
    if (json_is_string(time))
        snprintf(a->server_time, sizeof a->server_time, "%s", json_string_value(time));
    if (deferred != NULL && !json_is_null(deferred)) {
        if (!json_is_string(deferred) ||
            ota__copy(a->deferred, sizeof a->deferred, json_string_value(deferred)) != OTA_OK) {
            snprintf(why, cap, "the heartbeat answer has a bad \"deferred\"");
            goto Exit;
        }
    }
    if (ota != NULL && !json_is_null(ota)) {
        if (ota_manifest_decode_json(ota, &a->manifest) != OTA_OK) {
            snprintf(why, cap, "the heartbeat answer carries a malformed manifest");
            goto Exit;
        }
        a->has_manifest = true;
    }
    *out = *a;
    rc = OTA_OK;
Exit:
    json_decref(j);
    free(a);
    return rc;
}
