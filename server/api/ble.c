#include "api/api.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "heartbeat/heartbeat.h"
#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/metrics.h"
#include "ota/semver.h"
#include "core/utc_time.h"

/*
 * The Bluetooth path: the phone app, holding the device's token, asks
 * whether an update exists, relays the device's heartbeats (recorded as a
 * heartbeat is, by heartbeat/heartbeat.c, but never delivering) and reports
 * the transfers it makes.
 */

json_t *ota__ufw_link(ota_call_t *call, const char *object_key, json_t *artifact)
{
    const ota_config_t *cfg = call->worker->cfg;
    char url[4096], expires_at[OTA_UTC_TEXT_LEN + 1];
    time_t now = time(NULL);
    if (ota__storage_presign(call->worker->storage, "GET", object_key, now, cfg->url_ttl, url, sizeof url) != OTA_OK) {
        ota_log_error("cannot presign %s", object_key);
        json_decref(artifact);
        return json_null();
    }
    ota__utc_text(now + cfg->url_ttl, expires_at);
    json_t *link = json_is_object(artifact) ? artifact : (json_decref(artifact), ota__json_checked(json_object()));
    json_object_set_new(link, "url", json_string(url));
    json_object_set_new(link, "url_expires_at", json_string(expires_at));
    return link;
}

/* --- GET /v1/devices/{id}/update --- */

typedef struct update_state {
    char assignment_id[OTA_UUID_LEN + 1]; /* "" when the offer is not an assignment's */
} update_state_t;

static void on_release(ota_call_t *call, const PGresult *res)
{
    update_state_t *st = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            ota__respond_db_error(call, res);
        else
            ota__respond_error(call, 404, "not_found", NULL, "the release is gone");
        return;
    }
    json_t *release = ota__release_json(res, 0);
    int key_col = OTA_RELEASE_UFW_COL_OBJECT_KEY;
    json_t *ufw = json_null();
    if (!PQgetisnull(res, 0, key_col)) {
        json_t *artifact = json_deep_copy(json_object_get(json_object_get(release, "artifacts"), "ufw"));
        json_object_del(artifact, "md5"); /* the link has the same fields as the relay's: size, crc32, sha256 */
        ufw = ota__ufw_link(call, PQgetvalue(res, 0, key_col), artifact);
    }
    ota__respond_json(call, 200,
                      json_pack("{s:b, s:o, s:o, s:o}", "update_available", 1, "assignment_id",
                                st->assignment_id[0] != '\0' ? json_string(st->assignment_id) : json_null(),
                                "release", release, "ufw", ufw));
}

/* The newest candidate by semver precedence that is newer than the device's firmware, or -1. */
static int newest_candidate(const PGresult *res)
{
    ota_semver_t best, current, v;
    int best_row = -1;
    const char *firmware = PQntuples(res) > 0 ? PQgetvalue(res, 0, OTA_CANDIDATE_COL_FIRMWARE) : "";
    bool has_current = ota_semver_parse(firmware, strlen(firmware), &current) == OTA_OK;
    for (int row = 0; row < PQntuples(res); row++) {
        const char *text = PQgetvalue(res, row, OTA_CANDIDATE_COL_VERSION);
        if (ota_semver_parse(text, strlen(text), &v) != OTA_OK)
            continue;
        if (has_current && ota_semver_compare(&v, &current) <= 0)
            continue;
        if (best_row < 0 || ota_semver_compare(&v, &best) > 0) {
            best = v;
            best_row = row;
        }
    }
    return best_row;
}

static void on_candidates(ota_call_t *call, const PGresult *res)
{
    update_state_t *st = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    int row = -1;
    if (PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, OTA_CANDIDATE_COL_KIND), "active") == 0) {
        row = 0;
        snprintf(st->assignment_id, sizeof st->assignment_id, "%s", PQgetvalue(res, 0, OTA_CANDIDATE_COL_ASSIGNMENT_ID));
    } else {
        row = newest_candidate(res);
    }
    if (row < 0) {
        ota__respond_json(call, 200,
                          json_pack("{s:b, s:n, s:n, s:n}", "update_available", 0, "assignment_id", "release", "ufw"));
        return;
    }
    const char *params[] = {PQgetvalue(res, row, OTA_CANDIDATE_COL_RELEASE_ID)};
    ota__call_query(call, OTA_STMT_RELEASE_GET_UFW, params, on_release);
}

void ota__api_device_update(ota_call_t *call)
{
    update_state_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    call->state = st;
    call->state_free = free;
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_UPDATE_CANDIDATES, params, on_candidates);
}

/* --- POST /v1/devices/{id}/ble-transfers --- */

typedef struct transfer_state {
    char id[OTA_UUID_LEN + 1];
    char release_id[OTA_UUID_LEN + 1];
    char state[16];
    char *error;
} transfer_state_t;

static void transfer_free(void *p)
{
    transfer_state_t *t = p;
    free(t->error);
    free(t);
}

static void on_transfer(ota_call_t *call, const PGresult *res)
{
    transfer_state_t *t = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    const char *outcome = PQgetvalue(res, 0, OTA_BLE_TRANSFER_COL_OUTCOME);
    if (strcmp(outcome, "recording") == 0) {
        ota__respond_error(call, 409, "recording_in_progress", NULL,
                           "the device reports a recording in progress; transfer when it ends");
    } else if (strcmp(outcome, "no_release") == 0) {
        ota__respond_error(call, 422, "validation_failed",
                           json_pack("{s:{s:s}}", "fields", "release_id", "no such release"), "no such release");
    } else {
        ota__respond_json(call, 201,
                          json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s}", "id", t->id, "device_id", call->params[0],
                                    "release_id", t->release_id, "state", t->state, "error", t->error, "created_at",
                                    PQgetvalue(res, 0, OTA_BLE_TRANSFER_COL_CREATED_AT)));
    }
}

void ota__api_ble_transfers_create(ota_call_t *call)
{
    ota_validate_t v;
    transfer_state_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        h2o_fatal("out of memory");
    call->state = t;
    call->state_free = transfer_free;
    ota__validate_init(&v, call->body);
    const char *release_id = ota__validate_string(&v, "release_id", true);
    const char *state = ota__validate_string(&v, "state", true);
    const char *error = ota__validate_string(&v, "error", false);
    if (release_id != NULL && !ota__uuid_parse(release_id, strlen(release_id), t->release_id))
        ota__validate_fail(&v, "release_id", "must be a UUID");
    if (state != NULL && strcmp(state, "started") != 0 && strcmp(state, "completed") != 0 &&
        strcmp(state, "failed") != 0)
        ota__validate_fail(&v, "state", "must be started, completed or failed");
    if (error != NULL && strlen(error) > 500)
        ota__validate_fail(&v, "error", "must be at most 500 characters");
    if (!ota__validate_done(&v, call))
        return;
    snprintf(t->state, sizeof t->state, "%s", state);
    if (error != NULL && (t->error = strdup(error)) == NULL)
        h2o_fatal("out of memory");
    ota__uuid_new(t->id);
    const char *params[] = {t->id, call->params[0], t->release_id, t->state, t->error};
    ota__call_query(call, OTA_STMT_BLE_TRANSFER, params, on_transfer);
}

/* --- POST /v1/devices/{id}/relay: the phone app relays a heartbeat over Bluetooth --- */

/* The relay's answer: the heartbeat's, never a manifest, and "pending_assignment" (`pending`, stolen). */
static void respond_relay(ota_call_t *call, json_t *pending)
{
    char *text = json_dumps(pending, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(pending);
    if (text == NULL)
        h2o_fatal("out of memory");
    ota__heartbeat_respond(call, NULL, 0, NULL, "pending_assignment", text);
    free(text);
}

static void on_relay_assignment(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    json_t *pending = json_null();
    if (PQntuples(res) == 1) {
        pending = ota__json_col_json(res, 0, OTA_ASSIGNMENT_UFW_COL_JSON);
        json_object_set_new(pending, "ufw",
                            PQgetisnull(res, 0, OTA_ASSIGNMENT_UFW_COL_OBJECT_KEY)
                                ? json_null()
                                : ota__ufw_link(call, PQgetvalue(res, 0, OTA_ASSIGNMENT_UFW_COL_OBJECT_KEY),
                                                ota__json_col_json(res, 0, OTA_ASSIGNMENT_UFW_COL_ARTIFACT)));
    }
    respond_relay(call, pending);
}

static void on_relayed(ota_call_t *call, const PGresult *res)
{
    ota__metrics_heartbeat(true, false, NULL);
    const char *status = PQgetvalue(res, 0, OTA_HB_COL_ASSIGNMENT_STATUS);
    if (strcmp(status, "pending") != 0 && strcmp(status, "delivered") != 0) {
        respond_relay(call, json_null());
        return;
    }
    const char *params[] = {PQgetvalue(res, 0, OTA_HB_COL_ASSIGNMENT_ID)};
    ota__call_query(call, OTA_STMT_ASSIGNMENT_GET_UFW, params, on_relay_assignment);
}

void ota__api_relay(ota_call_t *call)
{
    ota__heartbeat_record(call, true, on_relayed);
}
