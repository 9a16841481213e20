#include "api/api.h"

#include <string.h>

#include "core/json_util.h"
#include "http/query.h"
#include "http/respond.h"

/*
 * GET /v1/audit?action=&target_id=&limit=&after= (admin): the audit log,
 * newest first, in keyset pages. What is recorded, and how it commits with
 * the write it records, is told at AUDITED in db/statements.c.
 */

/* Longest action name accepted as a filter ("resource.verb"). */
#define ACTION_MAX 64

/* An action name: [a-z_]+ "." [a-z_]+, as the audit_log CHECK has it. */
static bool action_valid(const char *s)
{
    size_t len = strlen(s), dots = 0;
    if (len < 3 || len > ACTION_MAX || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.')
            dots++;
        else if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return false;
    }
    return dots == 1;
}

static json_t *audit_row_json(const PGresult *res, int row)
{
    return ota__json_col_json(res, row, OTA_AUDIT_COL_JSON);
}

static void on_page(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    ota__respond_page(call, res, OTA_AUDIT_COL_CURSOR_TS, OTA_AUDIT_COL_ID, audit_row_json);
}

void ota__api_audit_list(ota_call_t *call)
{
    ota_page_t page;
    char action[OTA_QUERY_VALUE_MAX], target[OTA_QUERY_VALUE_MAX], uuid[OTA_UUID_LEN + 1];
    bool has_action, has_target;
    if (!ota__page_read(call, &page) || !ota__query_param(call, "action", action, &has_action) ||
        !ota__query_param(call, "target_id", target, &has_target))
        return;
    if (has_action && !action_valid(action)) {
        ota__respond_error(call, 400, "bad_request", NULL, "action must be resource.verb, e.g. release.create");
        return;
    }
    if (has_target && target[0] == '\0') {
        ota__respond_error(call, 400, "bad_request", NULL, "target_id must not be empty");
        return;
    }
    /* Targets are stored as the API shows them: a UUID in lower case. */
    if (has_target && ota__uuid_parse(target, strlen(target), uuid))
        memcpy(target, uuid, sizeof uuid);
    const char *params[] = {page.after_ts, page.after_id, page.limit_plus_one, has_target ? target : action,
                            has_target && has_action ? action : NULL};
    ota_stmt_t stmt = has_target   ? OTA_STMT_AUDIT_LIST_TARGET
                      : has_action ? OTA_STMT_AUDIT_LIST_ACTION
                                   : OTA_STMT_AUDIT_LIST;
    ota__call_query(call, stmt, params, on_page);
}
