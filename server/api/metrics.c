#include "api/api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/secret.h"
#include "http/auth.h"
#include "http/respond.h"
#include "http/shared_count.h"

/*
 * GET /metrics: this process's request, latency and heartbeat counters,
 * this thread's database connection, and the fleet's assignments by state,
 * transitions by target state, rollouts by status and their targets by state
 * (from the database, so the same on every instance).
 *
 * Those fleet-wide counts scan every assignment and every transition ever
 * made (~60 ms at 100,000 assignments, and growing with the history), and
 * /metrics has no credentials unless OTA_METRICS_TOKEN is set: so they are
 * counted at most every 10 s per instance and shared by every scrape
 * (http/shared_count.h), however many scrapes come. The count runs on the
 * side connection, so that the heartbeats pipelined on the thread's
 * connection do not wait behind it.
 */

/* How old the fleet-wide counts may be, as the contract allows. */
#define COUNTS_MAX_AGE_MS 10000

/*
 * The count of the `kind` row for `status`, "0" when there is none. Every status gets its series from the first
 * scrape on: a series that appears only with its first sample shows no increase, and the first rollback of a
 * fleet is the one an alert must not miss.
 */
static const char *count_of(const PGresult *res, const char *kind, const char *status)
{
    for (int row = 0; row < PQntuples(res); row++)
        if (strcmp(PQgetvalue(res, row, OTA_METRICS_COL_KIND), kind) == 0 &&
            strcmp(PQgetvalue(res, row, OTA_METRICS_COL_STATE), status) == 0)
            return PQgetvalue(res, row, OTA_METRICS_COL_COUNT);
    return "0";
}

/* One metric family: a sample labelled `label`="<value>" for each of `values` (NULL-terminated), 0 when none. */
static void render_family(ota_text_t *out, const PGresult *res, const char *kind, const char *metric, const char *label,
                          const char *help, const char *type, const char *const *values)
{
    ota_text_printf(out, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
    for (; *values != NULL; values++)
        ota_text_printf(out, "%s{%s=\"%s\"} %s\n", metric, label, *values, count_of(res, kind, *values));
}

/* The fleet-wide families, written out once per count. */
static void *make_counts_text(const PGresult *res, time_t as_of)
{
    (void)as_of;
    static const char *const ROLLOUT_STATUSES[] = {"running", "paused", "completed", "canceled", NULL};
    static const char *const TARGET_STATES[] = {"waiting", "blocked", "skipped",     "pending",  "delivered",
                                                "applied", "failed",  "rolled_back", "canceled", NULL};
    ota_text_t out;
    ota_text_heap(&out, SIZE_MAX);
    render_family(&out, res, "status", "ota_assignments", "status", "Assignments by status, fleet-wide.", "gauge",
                  ota__assignment_statuses);
    render_family(&out, res, "transition", "ota_assignment_transitions_total", "to",
                  "Assignment transitions by target status, fleet-wide.", "counter", ota__assignment_statuses);
    render_family(&out, res, "rollouts", "ota_rollouts", "status", "Rollouts by status.", "gauge", ROLLOUT_STATUSES);
    render_family(&out, res, "rollout_targets", "ota_rollout_targets", "state",
                  "Targets of the running and paused rollouts by state.", "gauge", TARGET_STATES);
    char *text = out.err == OTA_OK ? strndup(out.base, out.len) : NULL;
    ota_text_free(&out);
    if (text == NULL)
        h2o_fatal("out of memory");
    return text;
}

static ota_shared_count_t fleet_counts = OTA_SHARED_COUNT_INIT(OTA_STMT_METRICS_ASSIGNMENTS, make_counts_text, free);

static void render_database(ota_text_t *out, ota_call_t *call, const char *counts)
{
    ota_worker_t *w = call->worker;
    ota_text_printf(out,
                    "# HELP ota_db_up Whether this thread's database connection is ready.\n"
                    "# TYPE ota_db_up gauge\nota_db_up{thread=\"%d\"} %d\n"
                    "# HELP ota_db_in_flight Queries sent on this thread's connection and not yet answered.\n"
                    "# TYPE ota_db_in_flight gauge\nota_db_in_flight{thread=\"%d\"} %zu\n",
                    w->index, ota__db_ready(w->db) ? 1 : 0, w->index, ota__db_in_flight(w->db));
    if (counts != NULL)
        ota_text_printf(out, "%s", counts);
}

static const char *route_name(size_t index)
{
    return index < ota__routes_count ? ota__routes[index].name : NULL;
}

static void respond_text(ota_call_t *call, const void *counts)
{
    ota_text_t out;
    ota_text_heap(&out, SIZE_MAX);
    ota__metrics_render(&out, route_name);
    render_database(&out, call, counts);
    if (out.err != OTA_OK)
        h2o_fatal("out of memory"); /* the server's policy: no bound, so memory is the only failure */
    h2o_req_t *req = call->req;
    h2o_iovec_t body = h2o_strdup(&req->pool, out.base, out.len);
    ota_text_free(&out);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    ota__respond_raw(call, 200, body.base, body.len);
}

/* With OTA_METRICS_TOKEN set: whether the call carries it, compared in constant time (as hashes, so the length
   of the token does not show either). */
static bool token_ok(ota_call_t *call)
{
    const char *want = call->worker->cfg->metrics_token;
    char got[OTA_SECRET_MAX], got_hash[OTA_SECRET_HASH_PG_LEN], want_hash[OTA_SECRET_HASH_PG_LEN];
    if (want == NULL)
        return true;
    if (!ota__auth_bearer(call->req, got))
        return false;
    ota__secret_hash_pg(got, strlen(got), got_hash);
    ota__secret_hash_pg(want, strlen(want), want_hash);
    return ota__secret_hash_equal(got_hash, want_hash);
}

void ota__api_metrics(ota_call_t *call)
{
    if (!token_ok(call)) {
        ota__auth_unauthorized(call, "GET /metrics needs the metrics token (OTA_METRICS_TOKEN)");
        return;
    }
    ota__shared_count_get(&fleet_counts, call, COUNTS_MAX_AGE_MS, respond_text);
}
