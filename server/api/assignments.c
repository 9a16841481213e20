#include "api/api.h"

#include <string.h>

#include "http/query.h"
#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"

/*
 * Assignments: a release assigned to a device. The rules (one active per
 * device, legal transitions, an event per transition) are the database's;
 * see migrations/0001_schema.sql and migrations/functions/. This file maps
 * them to HTTP.
 */

static json_t *assignment_json(const PGresult *res, int row)
{
    return ota__json_col_json(res, row, OTA_ASSIGNMENT_COL_JSON);
}

static bool result_ok(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return true;
    ota__respond_db_error(call, res);
    return false;
}

/* --- POST /v1/devices/{id}/assignments --- */

typedef struct assign_state {
    char id[OTA_UUID_LEN + 1];
    char release_id[OTA_UUID_LEN + 1];
} assign_state_t;

static void on_assigned(ota_call_t *call, const PGresult *res)
{
    assign_state_t *st = call->state;
    if (!result_ok(call, res))
        return;
    const char *outcome = PQgetvalue(res, 0, OTA_ASSIGN_COL_OUTCOME);
    if (strcmp(outcome, "created") == 0) {
        ota__respond_json(call, 201,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:n, s:i, s:n, s:n}", "id", st->id,
                                    "device_id", call->params[0], "release_id", st->release_id, "version",
                                    PQgetvalue(res, 0, OTA_ASSIGN_COL_VERSION), "status", "pending", "created_at",
                                    PQgetvalue(res, 0, OTA_ASSIGN_COL_CREATED_AT), "delivered_at", "finished_at",
                                    "reason", "deliveries", 0, "rollout_id", "progress"));
    } else if (strcmp(outcome, "active_exists") == 0) {
        const char *existing = PQgetvalue(res, 0, OTA_ASSIGN_COL_EXISTING_ID),
                   *status = PQgetvalue(res, 0, OTA_ASSIGN_COL_EXISTING_STATUS);
        ota__respond_error(call, 409, "active_assignment_exists",
                           json_pack("{s:s, s:s}", "assignment_id", existing, "status", status),
                           "device %s already has assignment %s (%s)", call->params[0], existing, status);
    } else if (strcmp(outcome, "no_device") == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such device");
    } else if (strcmp(outcome, "no_release") == 0) {
        ota__respond_error(call, 422, "validation_failed",
                           json_pack("{s:{s:s}}", "fields", "release_id", "no such release"), "no such release");
    } else if (strcmp(outcome, "model_mismatch") == 0) {
        ota__respond_error(call, 422, "model_mismatch", NULL, "the release is for another model than the device");
    } else if (strcmp(outcome, "release_withdrawn") == 0) {
        ota__respond_error(call, 422, "release_withdrawn", NULL, "the release is withdrawn");
    } else if (strcmp(outcome, "downgrade") == 0) {
        const char *running = PQgetvalue(res, 0, OTA_ASSIGN_COL_VERSION);
        ota__respond_error(call, 422, "downgrade_not_allowed", json_pack("{s:s}", "firmware_version", running),
                           "the release is older than the %s the device runs; say \"allow_downgrade\": true to "
                           "assign it",
                           running);
    } else {
        ota__respond_error(call, 409, "already_installed", NULL, "the device already runs this version");
    }
}

void ota__api_assignments_create(ota_call_t *call)
{
    ota_validate_t v;
    assign_state_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    call->state = st;
    call->state_free = free;
    ota__validate_init(&v, call->body);
    const char *release_id = ota__validate_string(&v, "release_id", true);
    bool allow_downgrade = ota__validate_boolean(&v, "allow_downgrade", false);
    if (release_id != NULL && !ota__uuid_parse(release_id, strlen(release_id), st->release_id))
        ota__validate_fail(&v, "release_id", "must be a UUID");
    if (!ota__validate_done(&v, call))
        return;
    ota__uuid_new(st->id);
    const char *params[] = {st->id, call->params[0], st->release_id, allow_downgrade ? "true" : "false"};
    ota__call_query(call, OTA_STMT_ASSIGN, params, on_assigned);
}

/* --- GET /v1/assignments/{id} --- */

static void on_assignment(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such assignment");
        return;
    }
    json_t *a = assignment_json(res, 0);
    json_t *events = ota__json_col_json(res, 0, OTA_ASSIGNMENT_COL_EVENTS);
    json_object_set_new(a, "events", json_is_array(events) ? events : (json_decref(events), json_array()));
    ota__respond_json(call, 200, a);
}

void ota__api_assignments_get(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_ASSIGNMENT_GET, params, on_assignment);
}

/* --- lists --- */

static void on_list(ota_call_t *call, const PGresult *res)
{
    if (result_ok(call, res))
        ota__respond_page(call, res, OTA_ASSIGNMENT_COL_CURSOR_TS, OTA_ASSIGNMENT_COL_ID, assignment_json);
}

const char *const ota__assignment_statuses[] = {"pending",  "delivered",   "applied", "failed",
                                                "canceled", "rolled_back", NULL};

bool ota__assignment_status_valid(const char *s)
{
    for (const char *const *status = ota__assignment_statuses; *status != NULL; status++)
        if (strcmp(s, *status) == 0)
            return true;
    return false;
}

void ota__api_assignments_list(ota_call_t *call)
{
    ota_page_t page;
    char status[OTA_QUERY_VALUE_MAX], release[OTA_QUERY_VALUE_MAX], release_id[OTA_UUID_LEN + 1];
    bool has_status, has_release;
    if (!ota__page_read(call, &page) || !ota__query_param(call, "status", status, &has_status) ||
        !ota__query_param(call, "release_id", release, &has_release))
        return;
    if (has_status && !ota__assignment_status_valid(status)) {
        ota__respond_error(call, 400, "bad_request", NULL,
                           "status must be one of pending, delivered, applied, failed, canceled, rolled_back");
        return;
    }
    if (has_release && !ota__uuid_parse(release, strlen(release), release_id)) {
        ota__respond_error(call, 400, "bad_request", NULL, "release_id must be a UUID");
        return;
    }
    const char *params[] = {page.after_ts, page.after_id, page.limit_plus_one, NULL, NULL};
    ota_stmt_t stmt = OTA_STMT_ASSIGNMENT_LIST;
    if (has_status && has_release) {
        stmt = OTA_STMT_ASSIGNMENT_LIST_STATUS_RELEASE;
        params[3] = status;
        params[4] = release_id;
    } else if (has_status) {
        stmt = OTA_STMT_ASSIGNMENT_LIST_STATUS;
        params[3] = status;
    } else if (has_release) {
        stmt = OTA_STMT_ASSIGNMENT_LIST_RELEASE;
        params[3] = release_id;
    }
    ota__call_query(call, stmt, params, on_list);
}

/* A device's history: 404 for an unknown device rather than an empty list. */
static void on_device_checked(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such device");
        return;
    }
    ota_page_t page;
    if (!ota__page_read(call, &page))
        return;
    const char *params[] = {page.after_ts, page.after_id, page.limit_plus_one, call->params[0]};
    ota__call_query(call, OTA_STMT_ASSIGNMENT_LIST_DEVICE, params, on_list);
}

void ota__api_device_assignments_list(ota_call_t *call)
{
    ota_page_t page;
    if (!ota__page_read(call, &page)) /* bad paging is 400 before the lookup */
        return;
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_DEVICE_EXISTS, params, on_device_checked);
}

/* --- POST /v1/assignments/{id}/cancel --- */

static void on_canceled(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such assignment");
        return;
    }
    if (PQgetvalue(res, 0, OTA_CANCEL_COL_CANCELED)[0] != 't') {
        const char *status = PQgetvalue(res, 0, OTA_CANCEL_COL_STATUS);
        ota__respond_error(call, 409, "invalid_transition", json_pack("{s:s}", "status", status),
                           "assignment is %s already; only pending or delivered ones can be canceled", status);
        return;
    }
    ota__api_assignments_get(call); /* answer with the assignment as it is now, events included */
}

void ota__api_assignments_cancel(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_ASSIGNMENT_CANCEL, params, on_canceled);
}
