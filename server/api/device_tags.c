#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "http/fleet_filter.h"
#include "http/respond.h"
#include "http/validate.h"

/*
 * POST /v1/devices/tags: adds and removes tags on every device a fleet
 * filter matches, in one statement however many they are
 * (migrations/functions/ota_devices_tag.sql). On the side connection: the
 * statement writes as many rows as the filter matches, and the heartbeats
 * pipelined on this thread's connection must not wait behind it.
 */

#define TOO_MANY_TAGS "a matched device would have more than 32 tags"

static void on_tagged(ota_call_t *call, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    if (state != NULL && strcmp(state, "23514") == 0 && constraint != NULL &&
        strcmp(constraint, "devices_tags_check") == 0) {
        ota__respond_error(call, 422, "validation_failed", json_pack("{s:{s:s}}", "fields", "add", TOO_MANY_TAGS),
                           "%s; no device was changed", TOO_MANY_TAGS);
        return;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    json_int_t matched = strtoll(PQgetvalue(res, 0, OTA_COL_ONLY), NULL, 10);
    ota__respond_json(call, 200, json_pack("{s:I}", "matched", matched));
}

/* True when member `name` of `body` is absent or JSON null. */
static bool absent(json_t *body, const char *name)
{
    json_t *value = json_object_get(body, name);
    return value == NULL || json_is_null(value);
}

/* The changes asked for: at least one tag, and none both added and removed (which one was meant?). */
static void check_changes(ota_validate_t *v, json_t *body, json_t *add, json_t *remove)
{
    size_t i;
    json_t *tag;
    bool add_read = add != NULL || absent(body, "add"), remove_read = remove != NULL || absent(body, "remove");
    if (add_read && remove_read && json_array_size(add) + json_array_size(remove) == 0)
        ota__validate_fail(v, "add", "add or remove must name at least one tag");
    json_array_foreach(add, i, tag)
    {
        for (size_t k = 0; k < json_array_size(remove); k++)
            if (json_equal(tag, json_array_get(remove, k)))
                ota__validate_fail(v, "remove", "a tag cannot be both added and removed");
    }
}

void ota__api_devices_tag(ota_call_t *call)
{
    ota_validate_t v;
    ota__validate_init(&v, call->body);
    json_t *filter = ota__fleet_filter_read(&v, "filter");
    json_t *add = ota__tags_read(&v, json_object_get(call->body, "add"), "add");
    json_t *remove = ota__tags_read(&v, json_object_get(call->body, "remove"), "remove");
    /* Required, so that tagging the whole fleet is said ({}), never implied by a forgotten member. */
    if (absent(call->body, "filter"))
        ota__validate_fail(&v, "filter", "is required ({} matches every device)");
    check_changes(&v, call->body, add, remove);
    if (!ota__validate_done(&v, call))
        goto Exit;

    char *filter_text = ota__json_text(filter), *add_text = add != NULL ? ota__json_text(add) : NULL;
    char *remove_text = remove != NULL ? ota__json_text(remove) : NULL;
    const char *params[] = {filter_text, add_text, remove_text};
    ota__call_query_side(call, OTA_STMT_DEVICES_TAG, params, on_tagged);
    free(filter_text);
    free(add_text);
    free(remove_text);
Exit:
    json_decref(filter);
    json_decref(add);
    json_decref(remove);
}
