/*
 * GET /v1/releases/{id}/deltas: the deltas into a release (releases/delta_builder.h), newest from-version first.
 * Sorted here by semver precedence, which SQL has only as a comparison function (ota_semver_cmp), not as an order.
 */
#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "http/respond.h"
#include "ota/semver.h"

typedef struct item {
    ota_semver_t version;
    bool parsed;
    json_t *json;
} item_t;

static int newest_first(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->parsed != y->parsed)
        return x->parsed ? -1 : 1; /* a version that is not semver (none should be) sorts last */
    return x->parsed ? -ota_semver_compare(&x->version, &y->version) : 0;
}

static json_t *delta_json(const PGresult *res, int row)
{
    json_t *d = ota__json_checked(json_object());
    json_object_set_new(d, "from_release_id", ota__json_col_string(res, row, OTA_DELTA_COL_FROM_ID));
    json_object_set_new(d, "from_version", ota__json_col_string(res, row, OTA_DELTA_COL_FROM_VERSION));
    json_object_set_new(d, "size", ota__json_col_int(res, row, OTA_DELTA_COL_SIZE));
    json_object_set_new(d, "sha256", ota__json_col_string(res, row, OTA_DELTA_COL_SHA256));
    json_object_set_new(d, "status", ota__json_col_string(res, row, OTA_DELTA_COL_STATUS));
    json_object_set_new(d, "error", ota__json_col_string(res, row, OTA_DELTA_COL_ERROR));
    json_object_set_new(d, "started_at", ota__json_col_string(res, row, OTA_DELTA_COL_STARTED_AT));
    json_object_set_new(d, "finished_at", ota__json_col_string(res, row, OTA_DELTA_COL_FINISHED_AT));
    return d;
}

static void on_deltas(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such release");
        return;
    }
    item_t *items = calloc((size_t)n, sizeof *items);
    if (items == NULL)
        h2o_fatal("out of memory");
    size_t count = 0;
    for (int r = 0; r < n; r++) {
        if (PQgetisnull(res, r, OTA_DELTA_COL_FROM_ID))
            continue; /* the release's one row when it has no delta */
        const char *version = PQgetvalue(res, r, OTA_DELTA_COL_FROM_VERSION);
        items[count].parsed = ota_semver_parse(version, strlen(version), &items[count].version) == OTA_OK;
        items[count].json = delta_json(res, r);
        count++;
    }
    qsort(items, count, sizeof *items, newest_first);
    json_t *list = ota__json_checked(json_array());
    for (size_t i = 0; i < count; i++)
        json_array_append_new(list, items[i].json);
    free(items);
    ota__respond_json(call, 200, json_pack("{s:o}", "items", list));
}

void ota__api_releases_deltas(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_DELTA_LIST, params, on_deltas);
}
