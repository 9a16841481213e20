#include "http/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/respond.h"

struct ota_call_guard {
    ota_call_t *call; /* NULL once the call has finished */
};

/* h2o frees req->pool when the request ends, answered or not: let the call know. */
static void on_guard_dispose(void *p)
{
    ota_call_guard_t *guard = p;
    if (guard->call != NULL)
        guard->call->req = NULL;
}

/* The client's (or the proxy's) X-Request-Id when it is short and plain, else "<instance>-<thread>-<n>". */
static void take_request_id(ota_call_t *call, h2o_req_t *req, ota_worker_t *worker)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        bool plain = v->len > 0 && v->len < sizeof call->request_id;
        for (size_t k = 0; plain && k < v->len; k++) {
            char c = v->base[k];
            plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
        }
        if (plain) {
            memcpy(call->request_id, v->base, v->len);
            call->request_id[v->len] = '\0';
            return;
        }
    }
    snprintf(call->request_id, sizeof call->request_id, "%s-%d-%llx", worker->instance_id, worker->index,
             (unsigned long long)++worker->request_seq);
}

ota_call_t *ota__call_new(h2o_req_t *req, ota_worker_t *worker)
{
    ota_call_t *call = calloc(1, sizeof *call);
    if (call == NULL)
        h2o_fatal("out of memory");
    call->req = req;
    call->worker = worker;
    take_request_id(call, req, worker);
    call->guard = h2o_mem_alloc_shared(&req->pool, sizeof *call->guard, on_guard_dispose);
    call->guard->call = call;
    worker->calls_in_progress++;
    return call;
}

void ota__call_free(ota_call_t *call)
{
    if (call->req != NULL)
        call->guard->call = NULL;
    if (call->state_free != NULL)
        call->state_free(call->state);
    json_decref(call->body);
    call->worker->calls_in_progress--;
    free(call);
}

static void on_query_done(void *arg, const PGresult *res)
{
    ota_call_t *call = arg;
    ota_call_db_cb cb = call->db_cb;
    call->db_cb = NULL;
    if (ota__call_gone(call)) {
        ota__call_free(call);
        return;
    }
    if (res == NULL) {
        ota__respond_unavailable(call, "database connection lost");
        return;
    }
    cb(call, res);
}

/* The statement's parameters with, when it is audited, the actor after them (see AUDITED in db/statements.c). */
static const char *const *with_actor(const ota_call_t *call, ota_stmt_t stmt, const char *const *params,
                                     const char *all[OTA_STMT_PARAMS_MAX])
{
    const ota_stmt_def_t *def = ota__stmt_def(stmt);
    if (def == NULL || !def->audited)
        return params;
    int own = def->nparams - 2;
    if (def->nparams > OTA_STMT_PARAMS_MAX || own < 0)
        h2o_fatal("an audited statement with too many parameters");
    for (int i = 0; i < own; i++)
        all[i] = params[i];
    bool api_key = call->principal == OTA_PRINCIPAL_ADMIN || call->principal == OTA_PRINCIPAL_VIEWER;
    all[own] = api_key ? call->api_key_id : NULL;
    all[own + 1] = api_key ? call->api_key_name : NULL;
    return all;
}

static void query_on(ota_db_t *db, ota_call_t *call, ota_stmt_t stmt, const char *const *params, ota_call_db_cb cb)
{
    const char *all[OTA_STMT_PARAMS_MAX];
    params = with_actor(call, stmt, params, all);
    call->db_cb = cb;
    if (ota__db_query(db, stmt, params, on_query_done, call) != OTA_OK) {
        call->db_cb = NULL;
        ota__respond_unavailable(call, "database unavailable");
    }
}

void ota__call_query(ota_call_t *call, ota_stmt_t stmt, const char *const *params, ota_call_db_cb cb)
{
    query_on(call->worker->db, call, stmt, params, cb);
}

void ota__call_query_side(ota_call_t *call, ota_stmt_t stmt, const char *const *params, ota_call_db_cb cb)
{
    query_on(call->worker->side_db, call, stmt, params, cb);
}
