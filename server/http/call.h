#ifndef OTA_SERVER_HTTP_CALL_H
#define OTA_SERVER_HTTP_CALL_H

#include <stdbool.h>
#include <h2o.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "db/statements.h"
#include "http/router.h"
#include "core/ids.h"
#include "core/secret.h"
#include "http/worker.h"

/*
 * One API request on its way through authentication, the handler and the
 * database, to exactly one response.
 *
 * Why not keep this in req->pool: the client may close its connection while
 * a query runs, and h2o then frees the pool; the query's answer still comes
 * later. So the call is malloc'ed, and a small guard in req->pool (freed with
 * the request) clears `call->req` when the request goes away. Whoever
 * continues the call after an asynchronous step checks ota__call_gone() and,
 * if so, finishes it with ota__call_free() instead of responding.
 */

/** Who is calling, after authentication. */
typedef enum ota_principal {
    OTA_PRINCIPAL_NONE,
    OTA_PRINCIPAL_ADMIN,
    OTA_PRINCIPAL_VIEWER,
    OTA_PRINCIPAL_DEVICE, /**< the device named by params[0] */
} ota_principal_t;

typedef struct ota_call_guard ota_call_guard_t;
typedef struct ota_call ota_call_t;

/** Continues a call with the result of its query (never NULL: a lost connection is answered 503 for you). */
typedef void (*ota_call_db_cb)(ota_call_t *call, const PGresult *res);

struct ota_call {
    h2o_req_t *req; /**< NULL once the client has gone */
    ota_call_guard_t *guard;
    ota_worker_t *worker;
    ota_route_match_t match;
    /** The path parameters, NUL-terminated; {uuid} ones in lower case. */
    char params[OTA_ROUTE_MAX_PARAMS][OTA_UUID_LEN + 1 + 64];
    ota_principal_t principal;
    /** With an API key (admin or viewer): the key's id and name, the actor of the audited writes it makes. */
    char api_key_id[OTA_UUID_LEN + 1];
    char api_key_name[OTA_API_KEY_NAME_MAX + 1];
    json_t *body; /**< the parsed JSON body (JSON routes with a body), or NULL; owned */
    void *state;  /**< handler-specific, freed by the handler's `state_free`, if set */
    void (*state_free)(void *state);
    ota_call_db_cb db_cb; /**< the continuation of the query in flight */
    int page_limit;       /**< the page size of a list call (set by ota__page_read) */
    char request_id[48];  /**< X-Request-Id as received (when sane) or made here; in logs and the response */
};

/** Makes the call for `req` and ties its guard to req->pool. Aborts on out-of-memory (server policy). */
ota_call_t *ota__call_new(h2o_req_t *req, ota_worker_t *worker);

/** True when the client has gone and nobody will read a response. */
static inline bool ota__call_gone(const ota_call_t *call)
{
    return call->req == NULL;
}

/** Detaches the call from its request (no response will be sent through it) and frees it. */
void ota__call_free(ota_call_t *call);

/**
 * Runs prepared statement `stmt` with `params` and continues with
 * `cb(call, res)`. When the database cannot take the query, or the
 * connection is lost before the answer, answers 503 (`unavailable`) instead.
 * When the client has gone by the time the answer comes, frees the call
 * without calling `cb`. For an audited statement (db/statements.h) `params`
 * holds all but the last two, the actor, which this adds: the call's API key,
 * or nobody (nothing recorded) for other credentials.
 */
void ota__call_query(ota_call_t *call, ota_stmt_t stmt, const char *const *params, ota_call_db_cb cb);

/** As ota__call_query, on the worker's side connection (worker.h: for queries that scan many rows). */
void ota__call_query_side(ota_call_t *call, ota_stmt_t stmt, const char *const *params, ota_call_db_cb cb);

#endif
