#ifndef OTA_SERVER_HTTP_RESPOND_H
#define OTA_SERVER_HTTP_RESPOND_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "http/call.h"

/*
 * Every response the API sends goes through here, so the error shape of
 * the API ({"error": {"code", "message", "details"?}}) is written in one
 * place. Each function ends the call: it sends the response (unless the
 * client has gone) and frees the call, which must not be used afterwards.
 */

/**
 * Writes the access log line of `req` (OTA_ACCESS_LOG): `route` and `request_id` as the log names them, the answer's
 * `status` and the time since the request began. For answers made without a call (the fs blob server); calls log
 * themselves.
 */
void ota__access_log(h2o_req_t *req, const char *route, const char *request_id, int status);

/** Sends `status` with `body` as JSON. Steals the reference to `body`. */
void ota__respond_json(ota_call_t *call, int status, json_t *body);

/** Sends `len` bytes of JSON text `json` (copied) as the body of a JSON response. */
void ota__respond_json_text(ota_call_t *call, int status, const char *json, size_t len);

/** Sends `len` bytes of `body` (in req->pool or static) as they are; the caller has set Content-Type. */
void ota__respond_raw(ota_call_t *call, int status, const char *body, size_t len);

/** Sends `status` with no body (204, 304). */
void ota__respond_empty(ota_call_t *call, int status);

/**
 * Sends an error: `status`, `code` (e.g. "not_found"), a printf-style
 * message and optional `details` (stolen; NULL for none).
 */
void ota__respond_error(ota_call_t *call, int status, const char *code, json_t *details, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** 503 `unavailable` with Retry-After: the database or storage cannot be reached. */
void ota__respond_unavailable(ota_call_t *call, const char *what);

/** 429 `rate_limited` with Retry-After: `retry_after_s` seconds until the client may send again. */
void ota__respond_rate_limited(ota_call_t *call, uint32_t retry_after_s);

/**
 * Answers a failed database result by its SQLSTATE (db/sqlstate.h):
 * constraint violations become the contract's 409/422 codes, transient
 * errors (deadlock, serialization failure, a database starting, shutting
 * down, read-only or unreachable, a statement timeout) 503 with Retry-After,
 * and anything else 500 (and is logged).
 */
void ota__respond_db_error(ota_call_t *call, const PGresult *res);

/**
 * Sends one page of a list: {"items": [row_json(res, i) for the first call->page_limit rows], "next": cursor or
 * null}. The statement fetched page_limit + 1 rows, so one more row than asked means there is a next page; the
 * cursor names the last row shown by its `ts_col` (microsecond timestamp) and `id_col`.
 */
void ota__respond_page(ota_call_t *call, const PGresult *res, int ts_col, int id_col,
                       json_t *(*row_json)(const PGresult *res, int row));

/** Sends `status`, `code` and `message` for a request that has no call (before routing). */
void ota__respond_error_req(h2o_req_t *req, int status, const char *code, const char *message, const char *allow);

#endif
