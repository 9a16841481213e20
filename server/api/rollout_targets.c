#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "http/query.h"
#include "http/respond.h"

/*
 * GET /v1/rollouts/{id}/devices?state=&wave=&limit=&after=: every target of a
 * rollout with where it stands, in (wave, device id) order. The cursor names
 * the last row's wave and device (http/cursor.h), so a page is one range of
 * the index rollout_targets_page or rollout_targets_state_page.
 */

#define WAVE_TOP "32767" /* smallint's top: "every wave" */

static const char *const STATES[] = {"waiting", "blocked", "pending",     "delivered", "applied",
                                     "failed",  "skipped", "rolled_back", "canceled",  NULL};

typedef struct targets_query {
    char state[OTA_QUERY_VALUE_MAX];
    bool has_state;
    char wave_lo[24], wave_hi[24];
    char after_wave[OTA_CURSOR_TS_MAX], after_id[37];
    char limit_plus_one[16];
} targets_query_t;

static bool known_state(const char *s)
{
    for (const char *const *w = STATES; *w != NULL; w++)
        if (strcmp(s, *w) == 0)
            return true;
    return false;
}

static json_t *target_json(const PGresult *res, int row)
{
    return ota__json_checked(json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "device_id", ota__json_col_string(res, row, OTA_TARGET_COL_DEVICE_ID),
        "serial", ota__json_col_string(res, row, OTA_TARGET_COL_SERIAL), "wave",
        ota__json_col_int(res, row, OTA_TARGET_COL_WAVE), "state", ota__json_col_string(res, row, OTA_TARGET_COL_STATE),
        "assignment_id", ota__json_col_string(res, row, OTA_TARGET_COL_ASSIGNMENT_ID), "attempts",
        ota__json_col_int(res, row, OTA_TARGET_COL_ATTEMPTS), "reason",
        ota__json_col_string(res, row, OTA_TARGET_COL_REASON)));
}

static void on_targets(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    ota__respond_page(call, res, OTA_TARGET_COL_WAVE, OTA_TARGET_COL_DEVICE_ID, target_json);
}

static void on_rollout_checked(ota_call_t *call, const PGresult *res)
{
    targets_query_t *q = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such rollout");
        return;
    }
    const char *params[] = {call->params[0], q->wave_lo,        q->wave_hi, q->after_wave,
                            q->after_id,     q->limit_plus_one, q->state};
    ota__call_query(call, q->has_state ? OTA_STMT_ROLLOUT_TARGETS_STATE : OTA_STMT_ROLLOUT_TARGETS, params, on_targets);
}

/* wave=N (1..20), or every wave. */
static bool read_wave(ota_call_t *call, targets_query_t *q)
{
    char value[OTA_QUERY_VALUE_MAX];
    bool present;
    if (!ota__query_param(call, "wave", value, &present))
        return false;
    snprintf(q->wave_lo, sizeof q->wave_lo, "1");
    snprintf(q->wave_hi, sizeof q->wave_hi, WAVE_TOP);
    if (!present)
        return true;
    char *end;
    long wave = strtol(value, &end, 10);
    if (value[0] < '1' || value[0] > '9' || *end != '\0' || wave > 20) {
        ota__respond_error(call, 400, "bad_request", NULL, "wave must be an integer from 1 to 20");
        return false;
    }
    snprintf(q->wave_lo, sizeof q->wave_lo, "%ld", wave);
    snprintf(q->wave_hi, sizeof q->wave_hi, "%ld", wave);
    return true;
}

/* The page: `limit` as for every list; `after` a cursor of this list, whose key is a wave number. */
static bool read_page(ota_call_t *call, targets_query_t *q)
{
    ota_page_t page;
    if (!ota__page_read(call, &page))
        return false;
    snprintf(q->limit_plus_one, sizeof q->limit_plus_one, "%s", page.limit_plus_one);
    if (strcmp(page.after_ts, "infinity") == 0) { /* no cursor: from the start */
        snprintf(q->after_wave, sizeof q->after_wave, "0");
        snprintf(q->after_id, sizeof q->after_id, "00000000-0000-0000-0000-000000000000");
        return true;
    }
    if (strchr(page.after_ts, 'T') != NULL) { /* a timestamp: another list's cursor */
        ota__respond_error(call, 400, "bad_request", NULL, "after is not a cursor of this list");
        return false;
    }
    snprintf(q->after_wave, sizeof q->after_wave, "%s", page.after_ts);
    snprintf(q->after_id, sizeof q->after_id, "%s", page.after_id);
    return true;
}

void ota__api_rollout_targets_list(ota_call_t *call)
{
    targets_query_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        h2o_fatal("out of memory");
    call->state = q;
    call->state_free = free;
    if (!ota__query_param(call, "state", q->state, &q->has_state) || !read_wave(call, q) || !read_page(call, q))
        return;
    if (q->has_state && !known_state(q->state)) {
        ota__respond_error(call, 400, "bad_request", NULL,
                           "state must be one of waiting, blocked, pending, delivered, applied, failed, skipped, "
                           "rolled_back, canceled");
        return;
    }
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_ROLLOUT_EXISTS, params, on_rollout_checked);
}
