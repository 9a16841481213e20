#include "api/api.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/query.h"
#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"
#include "core/log.h"

/* Longest release notes accepted. */
#define NOTES_MAX 10000

/* {"bin": {...}, "ufw": {...} | null} from the artifacts column (a JSON object built by SQL). */
static json_t *artifacts_json(const PGresult *res, int row)
{
    json_t *all = NULL;
    if (!PQgetisnull(res, row, OTA_RELEASE_COL_ARTIFACTS))
        all = json_loads(PQgetvalue(res, row, OTA_RELEASE_COL_ARTIFACTS), 0, NULL);
    json_t *out = ota__json_checked(json_object());
    json_t *bin = all != NULL ? json_object_get(all, "bin") : NULL;
    json_t *ufw = all != NULL ? json_object_get(all, "ufw") : NULL;
    json_object_set(out, "bin", bin != NULL ? bin : json_null());
    json_object_set(out, "ufw", ufw != NULL ? ufw : json_null());
    json_decref(all);
    return out;
}

json_t *ota__release_json(const PGresult *res, int row)
{
    json_t *r = ota__json_checked(json_object());
    json_object_set_new(r, "id", ota__json_col_string(res, row, OTA_RELEASE_COL_ID));
    json_object_set_new(r, "model", ota__json_col_string(res, row, OTA_RELEASE_COL_MODEL));
    json_object_set_new(r, "version", ota__json_col_string(res, row, OTA_RELEASE_COL_VERSION));
    json_object_set_new(r, "notes", ota__json_col_string(res, row, OTA_RELEASE_COL_NOTES));
    json_object_set_new(r, "status", ota__json_col_string(res, row, OTA_RELEASE_COL_STATUS));
    json_object_set_new(r, "created_at", ota__json_col_string(res, row, OTA_RELEASE_COL_CREATED_AT));
    json_object_set_new(r, "artifacts", artifacts_json(res, row));
    return r;
}

static bool result_ok(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return true;
    ota__respond_db_error(call, res);
    return false;
}

static void on_release_row(ota_call_t *call, const PGresult *res)
{
    if (!result_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such release");
        return;
    }
    ota__respond_json(call, 200, ota__release_json(res, 0));
}

/* --- GET /v1/releases --- */

static void on_release_list(ota_call_t *call, const PGresult *res)
{
    if (result_ok(call, res))
        ota__respond_page(call, res, OTA_RELEASE_COL_CURSOR_TS, OTA_RELEASE_COL_ID, ota__release_json);
}

void ota__api_releases_list(ota_call_t *call)
{
    ota_page_t page;
    char model[OTA_QUERY_VALUE_MAX];
    bool has_model;
    if (!ota__page_read(call, &page) || !ota__query_param(call, "model", model, &has_model))
        return;
    const char *params[] = {page.after_ts, page.after_id, page.limit_plus_one, model};
    ota__call_query(call, has_model ? OTA_STMT_RELEASE_LIST_MODEL : OTA_STMT_RELEASE_LIST, params, on_release_list);
}

/* --- GET, PATCH /v1/releases/{id} --- */

void ota__api_releases_get(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_RELEASE_GET, params, on_release_row);
}

/*
 * Withdrawing keeps the release (devices that have it keep running it) but
 * stops new assignments of it; its pending assignments are canceled with
 * the assignments feature (see the assignments migration).
 */
void ota__api_releases_update(ota_call_t *call)
{
    ota_validate_t v;
    ota__validate_init(&v, call->body);
    json_t *notes_value = call->body != NULL ? json_object_get(call->body, "notes") : NULL;
    const char *notes = ota__validate_string(&v, "notes", false);
    const char *status = ota__validate_string(&v, "status", false);
    if (notes != NULL && strlen(notes) > NOTES_MAX)
        ota__validate_fail(&v, "notes", "must be at most 10000 characters");
    if (status != NULL && strcmp(status, "released") != 0 && strcmp(status, "withdrawn") != 0)
        ota__validate_fail(&v, "status", "must be released or withdrawn");
    if (!ota__validate_done(&v, call))
        return;
    /* "notes": null clears them; an absent "notes" keeps them. */
    const char *params[] = {call->params[0], notes_value != NULL ? "true" : "false", notes, status};
    ota__call_query(call, OTA_STMT_RELEASE_UPDATE, params, on_release_row);
}

/* --- DELETE /v1/releases/{id} --- */

typedef struct delete_job {
    ota_job_t job;
    ota_storage_t *storage;
    json_t *keys;
} delete_job_t;

static void delete_run(ota_job_t *job)
{
    delete_job_t *d = (delete_job_t *)job;
    size_t i;
    json_t *key;
    json_array_foreach(d->keys, i, key) {
        char err[256];
        if (ota__storage_delete(d->storage, json_string_value(key), err, sizeof err) != OTA_OK)
            ota_log_warn("cannot delete object %s: %s", json_string_value(key), err);
    }
}

static void delete_done(ota_job_t *job)
{
    delete_job_t *d = (delete_job_t *)job;
    json_decref(d->keys);
    free(d);
}

void ota__releases_delete_objects(ota_worker_t *worker, json_t *keys)
{
    delete_job_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        h2o_fatal("out of memory");
    d->storage = worker->storage;
    d->keys = keys;
    d->job.run = delete_run;
    d->job.done = delete_done;
    ota__jobs_submit(worker->jobs, &d->job, &worker->jobs_done);
}

static void on_release_deleted(ota_call_t *call, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "23503") == 0) { /* an assignment still names it */
        ota__respond_error(call, 409, "in_use", NULL, "assignments name this release; it cannot be deleted");
        return;
    }
    if (!result_ok(call, res))
        return;
    if (strcmp(PQgetvalue(res, 0, OTA_RELEASE_DELETE_COL_DELETED), "0") == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such release");
        return;
    }
    /* The rows are gone; the objects go after, so a failure there leaves garbage, never a dangling release. */
    json_t *keys = json_loads(PQgetvalue(res, 0, OTA_RELEASE_DELETE_COL_OBJECT_KEYS), JSON_DECODE_ANY, NULL);
    if (json_is_array(keys))
        ota__releases_delete_objects(call->worker, keys);
    else
        json_decref(keys);
    ota__respond_empty(call, 204);
}

void ota__api_releases_delete(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_RELEASE_DELETE, params, on_release_deleted);
}

/* --- GET /v1/releases/{id}/artifacts/{kind} --- */

static void on_artifact_key(ota_call_t *call, const PGresult *res)
{
    char url[4096];
    if (!result_ok(call, res))
        return;
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such release or artifact");
        return;
    }
    const ota_config_t *cfg = call->worker->cfg;
    if (ota__storage_presign(call->worker->storage, "GET", PQgetvalue(res, 0, OTA_COL_ONLY), time(NULL), cfg->url_ttl, url,
                             sizeof url) != OTA_OK) {
        ota__respond_error(call, 500, "internal", NULL, "cannot presign the artifact's URL");
        return;
    }
    h2o_add_header(&call->req->pool, &call->req->res.headers, H2O_TOKEN_LOCATION, NULL,
                   h2o_strdup(&call->req->pool, url, SIZE_MAX).base, strlen(url));
    ota__respond_json(call, 302, json_pack("{s:s}", "url", url));
}

void ota__api_releases_artifact(ota_call_t *call)
{
    const char *kind = call->params[1];
    if (strcmp(kind, "bin") != 0 && strcmp(kind, "ufw") != 0) {
        ota__respond_error(call, 404, "not_found", NULL, "artifacts are bin or ufw");
        return;
    }
    const char *params[] = {call->params[0], kind};
    ota__call_query(call, OTA_STMT_ARTIFACT_KEY, params, on_artifact_key);
}
