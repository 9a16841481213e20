#include "api/api.h"

#include <string.h>

#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"

/* Longest display name of a model. */
#define MODEL_NAME_MAX 200

static json_t *model_json(const PGresult *res, int row)
{
    return ota__json_checked(json_pack("{s:o, s:o, s:o}", "id", ota__json_col_string(res, row, OTA_MODEL_COL_ID),
                                       "name", ota__json_col_string(res, row, OTA_MODEL_COL_NAME), "created_at",
                                       ota__json_col_string(res, row, OTA_MODEL_COL_CREATED_AT)));
}

static void on_model_created(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    ota__respond_json(call, 201, model_json(res, 0));
}

void ota__api_models_create(ota_call_t *call)
{
    ota_validate_t v;
    ota__validate_init(&v, call->body);
    const char *id = ota__validate_string(&v, "id", true);
    const char *name = ota__validate_string(&v, "name", true);
    if (id != NULL && !ota__slug_valid(id, strlen(id)))
        ota__validate_fail(&v, "id", "must match [a-z0-9][a-z0-9-]{0,62}");
    if (name != NULL && (name[0] == '\0' || strlen(name) > MODEL_NAME_MAX))
        ota__validate_fail(&v, "name", "must be 1 to 200 characters");
    if (!ota__validate_done(&v, call))
        return;
    const char *params[] = {id, name};
    ota__call_query(call, OTA_STMT_MODEL_CREATE, params, on_model_created);
}

static void on_model_list(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    json_t *items = ota__json_checked(json_array());
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(items, model_json(res, row));
    ota__respond_json(call, 200, json_pack("{s:o}", "items", items));
}

/* Models are few (one per hardware product), so the list is not paged. */
void ota__api_models_list(ota_call_t *call)
{
    ota__call_query(call, OTA_STMT_MODEL_LIST, NULL, on_model_list);
}

static void on_model_get(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQntuples(res) == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such model");
        return;
    }
    ota__respond_json(call, 200, model_json(res, 0));
}

void ota__api_models_get(ota_call_t *call)
{
    if (!ota__slug_valid(call->params[0], strlen(call->params[0]))) {
        ota__respond_error(call, 404, "not_found", NULL, "no such model");
        return;
    }
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_MODEL_GET, params, on_model_get);
}
