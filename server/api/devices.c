#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/fleet_filter.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"
#include "ota/semver.h"
#include "core/secret.h"

/* Longest serial number and display name we keep. */
#define SERIAL_MAX 128
#define NAME_MAX_LEN 200

static json_t *battery_json(const PGresult *res, int row)
{
    if (PQgetisnull(res, row, OTA_DEVICE_COL_BATTERY_PERCENT) && PQgetisnull(res, row, OTA_DEVICE_COL_BATTERY_STATE))
        return json_null();
    return ota__json_checked(json_pack("{s:o, s:o}", "percent",
                                       ota__json_col_int(res, row, OTA_DEVICE_COL_BATTERY_PERCENT), "state",
                                       ota__json_col_string(res, row, OTA_DEVICE_COL_BATTERY_STATE)));
}

static json_t *device_json(const PGresult *res, int row)
{
    json_t *d = ota__json_checked(json_object());
    json_object_set_new(d, "id", ota__json_col_string(res, row, OTA_DEVICE_COL_ID));
    json_object_set_new(d, "serial", ota__json_col_string(res, row, OTA_DEVICE_COL_SERIAL));
    json_object_set_new(d, "model", ota__json_col_string(res, row, OTA_DEVICE_COL_MODEL));
    json_object_set_new(d, "name", ota__json_col_string(res, row, OTA_DEVICE_COL_NAME));
    json_object_set_new(d, "firmware_version", ota__json_col_string(res, row, OTA_DEVICE_COL_FIRMWARE_VERSION));
    json_object_set_new(d, "last_seen_at", ota__json_col_string(res, row, OTA_DEVICE_COL_LAST_SEEN_AT));
    json_object_set_new(d, "connectivity", ota__json_col_string(res, row, OTA_DEVICE_COL_CONNECTIVITY));
    json_object_set_new(d, "recording", ota__json_col_bool(res, row, OTA_DEVICE_COL_RECORDING));
    json_object_set_new(d, "battery", battery_json(res, row));
    json_object_set_new(d, "ble_connected", ota__json_col_bool(res, row, OTA_DEVICE_COL_BLE_CONNECTED));
    json_object_set_new(d, "ota_status", ota__json_col_string(res, row, OTA_DEVICE_COL_OTA_STATUS));
    json_object_set_new(d, "created_at", ota__json_col_string(res, row, OTA_DEVICE_COL_CREATED_AT));
    json_object_set_new(d, "active_assignment", ota__json_col_json(res, row, OTA_DEVICE_COL_ACTIVE_ASSIGNMENT));
    json_object_set_new(d, "tags", ota__json_col_json(res, row, OTA_DEVICE_COL_TAGS));
    return d;
}

static bool row_ok(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return true;
    ota__respond_db_error(call, res);
    return false;
}

static void check_name(ota_validate_t *v, const char *name)
{
    if (name != NULL && strlen(name) > NAME_MAX_LEN)
        ota__validate_fail(v, "name", "must be at most 200 characters");
}

/* --- POST /v1/devices --- */

/* The token is shown once, in the creation answer; only its hash is kept. */
typedef struct create_state {
    char token[OTA_SECRET_MAX];
} create_state_t;

static void on_device_created(ota_call_t *call, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "23503") == 0) {
        ota__respond_error(call, 422, "validation_failed", json_pack("{s:{s:s}}", "fields", "model", "no such model"),
                           "no such model");
        return;
    }
    if (!row_ok(call, res))
        return;
    json_t *device = device_json(res, 0);
    json_object_set_new(device, "token", json_string(((create_state_t *)call->state)->token));
    ota__respond_json(call, 201, device);
}

void ota__api_devices_create(ota_call_t *call)
{
    ota_validate_t v;
    ota_semver_t version;
    ota__validate_init(&v, call->body);
    const char *serial = ota__validate_string(&v, "serial", true);
    const char *model = ota__validate_string(&v, "model", true);
    const char *name = ota__validate_string(&v, "name", false);
    const char *firmware = ota__validate_string(&v, "firmware_version", false);
    json_t *tags = ota__tags_read(&v, json_object_get(call->body, "tags"), "tags");
    if (serial != NULL && (serial[0] == '\0' || strlen(serial) > SERIAL_MAX))
        ota__validate_fail(&v, "serial", "must be 1 to 128 characters");
    if (model != NULL && !ota__slug_valid(model, strlen(model)))
        ota__validate_fail(&v, "model", "no such model");
    check_name(&v, name);
    if (firmware != NULL && ota_semver_parse(firmware, strlen(firmware), &version) != OTA_OK)
        ota__validate_fail(&v, "firmware_version", "must be a semantic version");
    if (!ota__validate_done(&v, call))
        goto Exit;

    create_state_t *st = calloc(1, sizeof *st);
    char id[OTA_UUID_LEN + 1], hash[OTA_SECRET_HASH_PG_LEN];
    if (st == NULL || ota__secret_new(OTA_DEVICE_TOKEN_PREFIX, st->token) != OTA_OK)
        h2o_fatal("cannot make a device token");
    call->state = st;
    call->state_free = free;
    ota__uuid_new(id);
    ota__secret_hash_pg(st->token, strlen(st->token), hash);
    char *tags_text = tags != NULL ? ota__json_text(tags) : NULL;
    const char *params[] = {id, serial, model, name, hash, firmware != NULL ? version.text : NULL, tags_text};
    ota__call_query(call, OTA_STMT_DEVICE_CREATE, params, on_device_created);
    free(tags_text);
Exit:
    json_decref(tags);
}

/* --- GET /v1/devices --- */

static void on_device_list(ota_call_t *call, const PGresult *res)
{
    if (row_ok(call, res))
        ota__respond_page(call, res, OTA_DEVICE_COL_CURSOR_TS, OTA_DEVICE_COL_ID, device_json);
}

void ota__api_devices_list(ota_call_t *call)
{
    ota_page_t page;
    json_t *filter;
    if (!ota__page_read(call, &page) || (filter = ota__fleet_filter_query(call)) == NULL)
        return;
    char *filter_text = ota__json_text(filter);
    json_decref(filter);
    const char *params[] = {filter_text, page.after_ts, page.after_id, page.limit_plus_one};
    ota__call_query(call, OTA_STMT_DEVICE_PAGE, params, on_device_list);
    free(filter_text);
}

/* --- GET, PATCH, DELETE /v1/devices/{id}, POST /v1/devices/{id}/token --- */

static void on_device_get(ota_call_t *call, const PGresult *res)
{
    if (!row_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such device");
        return;
    }
    ota__respond_json(call, 200, device_json(res, 0));
}

void ota__api_devices_get(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_DEVICE_GET, params, on_device_get);
}

/* --- PATCH /v1/devices/{id} --- */

/* A member given as JSON null clears it: no name, no tags. An absent one is left as it is. */
void ota__api_devices_update(ota_call_t *call)
{
    ota_validate_t v;
    ota__validate_init(&v, call->body);
    json_t *name_given = json_object_get(call->body, "name"), *tags_given = json_object_get(call->body, "tags");
    const char *name = ota__validate_string(&v, "name", false);
    check_name(&v, name);
    json_t *tags = ota__tags_read(&v, tags_given, "tags");
    if (!ota__validate_done(&v, call))
        goto Exit;

    char *tags_text = tags != NULL ? ota__json_text(tags) : NULL;
    const char *tags_param = json_is_null(tags_given) ? "[]" : tags_text;
    const char *params[] = {call->params[0], name_given != NULL ? "true" : "false", name, tags_param};
    ota__call_query(call, OTA_STMT_DEVICE_UPDATE, params, on_device_get);
    free(tags_text);
Exit:
    json_decref(tags);
}

static void on_device_deleted(ota_call_t *call, const PGresult *res)
{
    if (!row_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such device");
        return;
    }
    ota__respond_empty(call, 204);
}

void ota__api_devices_delete(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_DEVICE_DELETE, params, on_device_deleted);
}

static void on_token_rotated(ota_call_t *call, const PGresult *res)
{
    if (!row_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such device");
        return;
    }
    ota__respond_json(call, 200, json_pack("{s:s}", "token", ((create_state_t *)call->state)->token));
}

/* The old hash is overwritten in the same statement, so the old token fails from the next request on. */
void ota__api_devices_rotate_token(ota_call_t *call)
{
    create_state_t *st = calloc(1, sizeof *st);
    char hash[OTA_SECRET_HASH_PG_LEN];
    if (st == NULL || ota__secret_new(OTA_DEVICE_TOKEN_PREFIX, st->token) != OTA_OK)
        h2o_fatal("cannot make a device token");
    call->state = st;
    call->state_free = free;
    ota__secret_hash_pg(st->token, strlen(st->token), hash);
    const char *params[] = {call->params[0], hash};
    ota__call_query(call, OTA_STMT_DEVICE_TOKEN_ROTATE, params, on_token_rotated);
}
