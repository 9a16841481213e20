#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"

/*
 * POST /v1/uploads: a presigned PUT for an artifact too large to send
 * through the API. The client PUTs the bytes straight to object storage,
 * then names the upload in POST /v1/releases, which reads the object back
 * and checks it (size as announced, hashes computed by the server) before a
 * release may use it.
 */

typedef struct upload_state {
    char url[4096];
} upload_state_t;

static void on_upload_created(ota_call_t *call, const PGresult *res)
{
    upload_state_t *st = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    ota__respond_json(call, 201,
                      json_pack("{s:o, s:s, s:s, s:o}", "upload_id", ota__json_col_string(res, 0, OTA_UPLOAD_COL_ID), "url", st->url,
                                "method", "PUT", "expires_at", ota__json_col_string(res, 0, OTA_UPLOAD_COL_EXPIRES_AT)));
}

void ota__api_uploads_create(ota_call_t *call)
{
    const ota_config_t *cfg = call->worker->cfg;
    ota_validate_t v;
    json_int_t size = 0;
    ota__validate_init(&v, call->body);
    const char *artifact = ota__validate_string(&v, "artifact", true);
    bool has_size = ota__validate_integer(&v, "size", true, &size);
    if (artifact != NULL && strcmp(artifact, "bin") != 0 && strcmp(artifact, "ufw") != 0)
        ota__validate_fail(&v, "artifact", "must be bin or ufw");
    if (has_size && (size < 1 || (uint64_t)size > cfg->max_body))
        ota__validate_fail(&v, "size", "must be from 1 to OTA_MAX_BODY bytes");
    if (!ota__validate_done(&v, call))
        return;

    char id[OTA_UUID_LEN + 1], key[96], size_text[24], ttl[16];
    upload_state_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    call->state = st;
    call->state_free = free;
    ota__uuid_new(id);
    snprintf(key, sizeof key, "uploads/%s/%s", id, artifact);
    snprintf(size_text, sizeof size_text, "%lld", (long long)size);
    snprintf(ttl, sizeof ttl, "%d", cfg->url_ttl);
    if (ota__storage_presign(call->worker->storage, "PUT", key, time(NULL), cfg->url_ttl, st->url, sizeof st->url) !=
        OTA_OK) {
        ota__respond_error(call, 500, "internal", NULL, "cannot presign the upload URL");
        return;
    }
    const char *params[] = {id, artifact, size_text, key, ttl};
    ota__call_query(call, OTA_STMT_UPLOAD_CREATE, params, on_upload_created);
}
