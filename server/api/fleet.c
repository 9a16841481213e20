#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "api/fleet_snapshot.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/shared_count.h"

/*
 * GET /v1/fleet: the fleet's numbers for dashboards, answered from one
 * snapshot that the whole process shares (api/fleet_snapshot.h) and makes
 * again at most every OTA_FLEET_CACHE_MS (10 s by default), so no request
 * ever counts the fleet itself (http/shared_count.h). The count is one
 * grouped scan of the devices, about 0.3 s at a million.
 */

/* The model asked for, kept while the request waits for a snapshot. */
typedef struct fleet_query {
    char model[OTA_QUERY_VALUE_MAX];
    bool has_model;
} fleet_query_t;

static void *make_snapshot(const PGresult *res, time_t as_of)
{
    return ota__fleet_snapshot_new(res, as_of);
}

static void free_snapshot(void *snapshot)
{
    ota__fleet_snapshot_free(snapshot);
}

static ota_shared_count_t fleet_counts = OTA_SHARED_COUNT_INIT(OTA_STMT_FLEET_COUNTS, make_snapshot, free_snapshot);

static void answer(ota_call_t *call, const void *snapshot)
{
    if (snapshot == NULL) {
        ota__respond_unavailable(call, "the fleet could not be counted");
        return;
    }
    const fleet_query_t *q = call->state;
    char *text = ota__fleet_snapshot_answer(snapshot, q->has_model ? q->model : NULL);
    ota__respond_json_text(call, 200, text, strlen(text));
    free(text);
}

void ota__api_fleet(ota_call_t *call)
{
    fleet_query_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        h2o_fatal("out of memory");
    call->state = q;
    call->state_free = free;
    if (!ota__query_param(call, "model", q->model, &q->has_model))
        return;
    ota__shared_count_get(&fleet_counts, call, (uint64_t)call->worker->cfg->fleet_cache_ms, answer);
}
