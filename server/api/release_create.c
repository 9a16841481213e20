/*
 * POST /v1/releases: the release upload pipeline.
 *
 * Why it has phases: a release body may be tens of megabytes (multipart
 * files, base64 blobs) or name a remote URL, so parsing, fetching, hashing
 * and storing run on job threads, and only the database steps run on the
 * event loop:
 *
 *   1. job:  parse the body (multipart or JSON) and check its fields
 *   2. loop: precheck in one query (model exists, version free, uploads known)
 *   3. job:  get each artifact's bytes, compute size/CRC32/SHA-256/MD5, store them
 *   4. loop: insert the release and its artifacts in one statement, then ask
 *            for the deltas into it (releases/delta_builder.h)
 *
 * Nothing half-made is visible: the release row exists only once step 4
 * commits, after every object is stored. Whenever the pipeline stops after
 * step 3 (an error, a conflict lost to a concurrent upload, the client gone)
 * the objects it stored are deleted. Objects of presigned uploads are not
 * ours to delete: they stay for a retry (the object sweeper removes them once
 * their URL has expired). A release never uses an upload's object itself,
 * whose presigned PUT URL stays valid: step 3 copies it to the release's own
 * key and hashes the copy, and `artifacts.upload_id` (unique) lets an upload
 * serve one release only.
 *
 * The object sweeper (releases/object_sweeper.h) deletes objects under
 * releases/ that no artifact names once they are older than OTA_GC_GRACE_S.
 * So that it can never take the objects of a release being made, step 4
 * refuses (503) when step 3 began more than half that long ago.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/digest.h"
#include "http/multipart.h"
#include "http/respond.h"
#include "core/json_util.h"
#include "core/log.h"
#include "ota/semver.h"
#include "ota/utf8.h"
#include "releases/delta_builder.h"
#include "releases/release_source.h"

#define NOTES_MAX 10000
#define MAX_PARTS 16

enum { BIN, UFW, KINDS };
static const char *const KIND_NAMES[KINDS] = {"bin", "ufw"};

typedef struct create {
    ota_job_t job;
    ota_call_t *call;
    /* the request, copied: the job outlives the request's memory if the client leaves */
    char *body;
    size_t body_len;
    char content_type[256];
    json_t *json; /* the parsed JSON body; sources point into it */

    /* the release */
    char id[OTA_UUID_LEN + 1];
    ota_semver_t version;
    char model[64];
    char *notes;
    bool has[KINDS];
    ota_source_t src[KINDS];

    /* what step 3 made */
    ota_digest_t digest[KINDS];
    char key[KINDS][OTA_SOURCE_KEY_MAX];
    bool stored[KINDS]; /* objects this pipeline wrote, deleted when it fails */
    time_t store_started; /* when step 3 began: no object of ours is older */

    /* the first error, answered on the loop */
    int err_status;
    const char *err_code;
    char err_message[256];
    json_t *err_details;
} create_t;

static void create_free(void *p)
{
    create_t *c = p;
    free(c->body);
    free(c->notes);
    json_decref(c->json);
    json_decref(c->err_details);
    free(c);
}

static void fail(create_t *c, int status, const char *code, json_t *details, const char *message)
{
    if (c->err_status != 0) {
        json_decref(details);
        return;
    }
    c->err_status = status;
    c->err_code = code;
    c->err_details = details;
    snprintf(c->err_message, sizeof c->err_message, "%s", message);
}

static void fail_field(create_t *c, const char *field, const char *problem)
{
    char message[200];
    snprintf(message, sizeof message, "invalid field '%s': %s", field, problem);
    fail(c, 422, "validation_failed", json_pack("{s:{s:s}}", "fields", field, problem), message);
}

static void fail_upload(create_t *c, const char *kind, ota_upload_error_t e)
{
    if (e == OTA_UPLOAD_STORAGE_FAILED) {
        fail(c, 503, "unavailable", NULL, "object storage unavailable; retry later");
        return;
    }
    fail(c, 422, "upload_failed", json_pack("{s:s}", "artifact", kind), ota__upload_error_message(e));
}

/* Answers the recorded error; ends the call. */
static void respond_failure(create_t *c)
{
    json_t *details = c->err_details;
    c->err_details = NULL;
    ota__respond_error(c->call, c->err_status, c->err_code, details, "%s", c->err_message);
}

/* Hands `c` to a job thread; when as many uploads already wait, answers 503 instead, which frees the body. */
static void submit(create_t *c)
{
    ota_worker_t *worker = c->call->worker;
    if (!ota__jobs_try_submit(worker->jobs, &c->job, &worker->jobs_done))
        ota__respond_unavailable(c->call, "the server has as many uploads waiting as it takes");
}

/* --- step 1: parse (job thread) --- */

static void set_text_fields(create_t *c, const char *version, size_t version_len, const char *model, size_t model_len,
                            const char *notes, size_t notes_len)
{
    if (version == NULL)
        fail_field(c, "version", "is required");
    else if (ota_semver_parse(version, version_len, &c->version) != OTA_OK)
        fail_field(c, "version", "must be a semantic version");
    if (model == NULL)
        fail_field(c, "model", "is required");
    else if (!ota__slug_valid(model, model_len))
        fail_field(c, "model", "no such model");
    else
        memcpy(c->model, model, model_len), c->model[model_len] = '\0';
    if (notes != NULL && notes_len > NOTES_MAX)
        fail_field(c, "notes", "must be at most 10000 characters");
    /* A multipart field is bytes, and a text column takes UTF-8 without NUL (JSON strings always are). */
    else if (notes != NULL && (memchr(notes, '\0', notes_len) != NULL || !ota_utf8_valid(notes, notes_len)))
        fail_field(c, "notes", "must be UTF-8 text");
    else if (notes != NULL && (c->notes = strndup(notes, notes_len)) == NULL)
        h2o_fatal("out of memory");
}

static void parse_multipart(create_t *c)
{
    char boundary[128];
    ota_multipart_part_t parts[MAX_PARTS];
    size_t nparts = 0;
    const char *field[3] = {NULL, NULL, NULL}; /* version, model, notes */
    size_t field_len[3] = {0, 0, 0};
    static const char *const FIELDS[3] = {"version", "model", "notes"};

    if (ota__multipart_boundary(c->content_type, strlen(c->content_type), boundary, sizeof boundary) != OTA_OK ||
        ota__multipart_parse(c->body, c->body_len, boundary, parts, MAX_PARTS, &nparts) != OTA_OK) {
        fail(c, 400, "bad_request", NULL, "malformed multipart/form-data body");
        return;
    }
    for (size_t i = 0; i < nparts; i++) {
        for (int f = 0; f < 3; f++)
            if (strcmp(parts[i].name, FIELDS[f]) == 0)
                field[f] = parts[i].data, field_len[f] = parts[i].data_len;
        for (int k = 0; k < KINDS; k++) {
            if (strcmp(parts[i].name, KIND_NAMES[k]) == 0) {
                c->has[k] = true;
                c->src[k] = (ota_source_t){.kind = OTA_SOURCE_BYTES, .text = parts[i].data, .len = parts[i].data_len};
            }
        }
    }
    set_text_fields(c, field[0], field_len[0], field[1], field_len[1], field[2], field_len[2]);
}

/* One artifact of a JSON body: exactly one of "file", "blob", "upload_id". */
static void parse_json_source(create_t *c, int k, json_t *value)
{
    const char *name = KIND_NAMES[k];
    if (value == NULL || json_is_null(value))
        return;
    if (!json_is_object(value)) {
        fail(c, 400, "bad_request", NULL, "an artifact must be an object with file, blob or upload_id");
        return;
    }
    json_t *file = json_object_get(value, "file"), *blob = json_object_get(value, "blob"),
           *upload = json_object_get(value, "upload_id");
    int given = (file != NULL) + (blob != NULL) + (upload != NULL);
    json_t *one = file != NULL ? file : blob != NULL ? blob : upload;
    if (given != 1) {
        fail_upload(c, name, OTA_UPLOAD_INVALID_ARGUMENTS);
        return;
    }
    if (!json_is_string(one)) {
        fail(c, 400, "bad_request", NULL, "file, blob and upload_id are strings");
        return;
    }
    c->has[k] = true;
    c->src[k].text = json_string_value(one);
    c->src[k].len = json_string_length(one);
    c->src[k].kind = file != NULL ? OTA_SOURCE_FILE : blob != NULL ? OTA_SOURCE_BLOB : OTA_SOURCE_UPLOAD;
    if (upload != NULL && !ota__uuid_parse(c->src[k].text, c->src[k].len, c->src[k].upload_id))
        fail_upload(c, name, OTA_UPLOAD_FILE_NOT_FOUND);
}

static const char *json_text(create_t *c, const char *name, size_t *len)
{
    json_t *v = json_object_get(c->json, name);
    *len = 0;
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        fail(c, 400, "bad_request", NULL, "version, model and notes are strings");
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

static void parse_json(create_t *c)
{
    json_error_t error;
    size_t version_len, model_len, notes_len;
    c->json = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &error);
    if (!json_is_object(c->json)) {
        fail(c, 400, "bad_request", NULL, "the body must be a JSON object");
        return;
    }
    const char *version = json_text(c, "version", &version_len);
    const char *model = json_text(c, "model", &model_len);
    const char *notes = json_text(c, "notes", &notes_len);
    for (int k = 0; k < KINDS; k++)
        parse_json_source(c, k, json_object_get(c->json, KIND_NAMES[k]));
    set_text_fields(c, version, version_len, model, model_len, notes, notes_len);
}

static void parse_run(ota_job_t *job)
{
    create_t *c = (create_t *)job;
    if (strncasecmp(c->content_type, "multipart/form-data", strlen("multipart/form-data")) == 0)
        parse_multipart(c);
    else if (c->content_type[0] == '\0' || strncasecmp(c->content_type, "application/json", 16) == 0)
        parse_json(c);
    else
        fail(c, 415, "unsupported_media_type", NULL, "send multipart/form-data or application/json");
    if (c->err_status == 0 && !c->has[BIN])
        fail_field(c, "bin", "is required");
}

/* --- step 3: fetch, hash, store (job thread) --- */

static void store_run(ota_job_t *job)
{
    create_t *c = (create_t *)job;
    const ota_config_t *cfg = c->call->worker->cfg;
    ota_storage_t *storage = c->call->worker->storage;

    c->store_started = time(NULL);
    for (int k = 0; k < KINDS && c->err_status == 0; k++) {
        unsigned char *data = NULL;
        size_t len = 0;
        char err[256];
        if (!c->has[k])
            continue;
        snprintf(c->key[k], sizeof c->key[k], "releases/%s/%s", c->id, KIND_NAMES[k]);
        if (c->src[k].kind == OTA_SOURCE_UPLOAD) {
            snprintf(c->src[k].copy_key, sizeof c->src[k].copy_key, "%s", c->key[k]);
            c->stored[k] = true; /* the copy, whenever it got made */
        }
        ota_upload_error_t e = ota__source_fetch(&c->src[k], cfg->import_dir, storage, cfg->max_body, &data, &len);
        if (e != OTA_UPLOAD_OK) {
            fail_upload(c, KIND_NAMES[k], e);
            continue;
        }
        if (ota__digest_buffer(data, len, &c->digest[k]) != OTA_OK) {
            free(data);
            fail(c, 500, "internal", NULL, "cannot compute the artifact's digests");
            continue;
        }
        if (c->src[k].kind != OTA_SOURCE_UPLOAD) {
            if (ota__storage_put(storage, c->key[k], data, len, err, sizeof err) == OTA_OK) {
                c->stored[k] = true;
            } else {
                ota_log_error("storing %s: %s", c->key[k], err);
                fail_upload(c, KIND_NAMES[k], OTA_UPLOAD_STORAGE_FAILED);
            }
        }
        free(data);
    }
}

/* Deletes what this pipeline stored (on a job thread of its own, since the call is about to end). */
static void delete_stored(create_t *c)
{
    json_t *keys = ota__json_checked(json_array());
    for (int k = 0; k < KINDS; k++)
        if (c->stored[k])
            json_array_append_new(keys, json_string(c->key[k]));
    if (json_array_size(keys) > 0)
        ota__releases_delete_objects(c->call->worker, keys);
    else
        json_decref(keys);
}

/* --- step 4: insert (loop) --- */

static void on_inserted(ota_call_t *call, const PGresult *res)
{
    create_t *c = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        delete_stored(c);
        const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        if (constraint != NULL && strcmp(constraint, "artifacts_upload_id_key") == 0) {
            /* an upload another release claimed first: name the artifact that came from an upload */
            int k = c->has[UFW] && c->src[UFW].kind == OTA_SOURCE_UPLOAD && c->src[BIN].kind != OTA_SOURCE_UPLOAD
                        ? UFW
                        : BIN;
            ota__respond_error(call, 422, "upload_failed", json_pack("{s:s}", "artifact", KIND_NAMES[k]), "%s",
                               ota__upload_error_message(OTA_UPLOAD_INVALID_ARGUMENTS));
        } else
            ota__respond_db_error(call, res);
        return;
    }
    /* Committed: the deltas from the model's older releases can be built (on the delta pool, later). */
    ota__delta_request(call->worker, c->id, NULL);
    ota__respond_json(call, 201, ota__release_json(res, 0));
}

static json_t *artifact_rows(create_t *c)
{
    json_t *rows = ota__json_checked(json_array());
    for (int k = 0; k < KINDS; k++) {
        if (!c->has[k])
            continue;
        json_array_append_new(rows, json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s?}", "kind", KIND_NAMES[k],
                                              "object_key", c->key[k], "size", (json_int_t)c->digest[k].size, "crc32",
                                              (json_int_t)c->digest[k].crc32, "sha256", c->digest[k].sha256, "md5",
                                              c->digest[k].md5, "upload_id",
                                              c->src[k].kind == OTA_SOURCE_UPLOAD ? c->src[k].upload_id : NULL));
    }
    return rows;
}

static void store_done(ota_job_t *job)
{
    create_t *c = (create_t *)job;
    ota_call_t *call = c->call;
    if (ota__call_gone(call) || c->err_status != 0) {
        delete_stored(c);
        if (ota__call_gone(call))
            ota__call_free(call);
        else
            respond_failure(c);
        return;
    }
    if (time(NULL) - c->store_started > call->worker->cfg->gc_grace / 2) {
        ota_log_warn("release %s: its objects were stored too long ago for the sweeper's grace period", c->id);
        delete_stored(c);
        ota__respond_error(call, 503, "unavailable", NULL, "storing the artifacts took too long; retry");
        return;
    }
    json_t *rows = artifact_rows(c);
    char *rows_text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    if (rows_text == NULL)
        h2o_fatal("out of memory");
    const char *params[] = {c->id, c->model, c->version.text, c->notes, rows_text};
    ota__call_query(call, OTA_STMT_RELEASE_CREATE, params, on_inserted);
    free(rows_text); /* libpq has copied the parameters */
}

/* --- step 2: precheck (loop) --- */

/* Takes the upload named by artifact `k` from the precheck's JSON column. */
static void take_upload(create_t *c, int k, const char *text)
{
    json_t *u = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *artifact = json_string_value(json_object_get(u, "artifact"));
    const char *key = json_string_value(json_object_get(u, "object_key"));
    if (u == NULL || key == NULL) {
        fail_upload(c, KIND_NAMES[k], OTA_UPLOAD_FILE_NOT_FOUND);
    } else if (artifact == NULL || strcmp(artifact, KIND_NAMES[k]) != 0) {
        fail_upload(c, KIND_NAMES[k], OTA_UPLOAD_INVALID_ARGUMENTS); /* an upload made for the other artifact */
    } else {
        snprintf(c->src[k].upload_key, sizeof c->src[k].upload_key, "%s", key);
        c->src[k].upload_size = (uint64_t)json_integer_value(json_object_get(u, "size"));
    }
    json_decref(u);
}

static void on_precheck(ota_call_t *call, const PGresult *res)
{
    create_t *c = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQgetvalue(res, 0, OTA_PRECHECK_COL_MODEL_EXISTS)[0] != 't') {
        fail_field(c, "model", "no such model");
    } else if (PQgetvalue(res, 0, OTA_PRECHECK_COL_VERSION_TAKEN)[0] == 't') {
        char message[256];
        snprintf(message, sizeof message, "model %s already has a release %s", c->model, c->version.text);
        fail(c, 409, "conflict", NULL, message);
    }
    for (int k = 0; k < KINDS; k++) {
        int col = k == BIN ? OTA_PRECHECK_COL_BIN_UPLOAD : OTA_PRECHECK_COL_UFW_UPLOAD;
        if (c->has[k] && c->src[k].kind == OTA_SOURCE_UPLOAD)
            take_upload(c, k, PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col));
    }
    if (c->err_status != 0) {
        respond_failure(c);
        return;
    }
    c->job.run = store_run;
    c->job.done = store_done;
    submit(c);
}

static void parse_done(ota_job_t *job)
{
    create_t *c = (create_t *)job;
    ota_call_t *call = c->call;
    if (ota__call_gone(call)) {
        ota__call_free(call);
        return;
    }
    if (c->err_status != 0) {
        respond_failure(c);
        return;
    }
    const char *params[] = {c->model, c->version.text,
                            c->has[BIN] && c->src[BIN].kind == OTA_SOURCE_UPLOAD ? c->src[BIN].upload_id : NULL,
                            c->has[UFW] && c->src[UFW].kind == OTA_SOURCE_UPLOAD ? c->src[UFW].upload_id : NULL};
    ota__call_query(call, OTA_STMT_RELEASE_PRECHECK, params, on_precheck);
}

/* --- step 0: take the request (loop) --- */

static void copy_content_type(create_t *c, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    size_t n = v->len < sizeof c->content_type - 1 ? v->len : sizeof c->content_type - 1;
    memcpy(c->content_type, v->base, n);
    c->content_type[n] = '\0';
}

void ota__api_releases_create(ota_call_t *call)
{
    h2o_req_t *req = call->req;
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    create_t *c = calloc(1, sizeof *c);
    if (c == NULL || (c->body = malloc(len + 1)) == NULL)
        h2o_fatal("out of memory");
    if (len > 0)
        memcpy(c->body, req->entity.base, len);
    c->body[len] = '\0';
    c->body_len = len;
    copy_content_type(c, req);
    ota__uuid_new(c->id);
    c->call = call;
    call->state = c;
    call->state_free = create_free;

    c->job.run = parse_run;
    c->job.done = parse_done;
    submit(c);
}
