#include "http/respond.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "http/cursor.h"
#include "core/log.h"
#include "core/metrics.h"
#include "db/sqlstate.h"
#include "ota/utf8.h"

/* Seconds a client should wait before retrying after a 503. */
#define RETRY_AFTER_SECONDS "1"

static const char JSON_TYPE[] = "application/json; charset=utf-8";

static void send_bytes(h2o_req_t *req, int status, const char *reason, const char *bytes, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    if (len > 0 || status != 204)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT(JSON_TYPE));
    h2o_send_inline(req, bytes, len);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "OK";
    }
}

/* Serializes `body` and sends it (h2o_send_inline copies the text into req->pool). */
static void send_json(h2o_req_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        h2o_fatal("out of memory");
    send_bytes(req, status, reason_of(status), text, strlen(text));
    free(text);
}

static double seconds_since(const h2o_req_t *req)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
           (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
}

void ota__access_log(h2o_req_t *req, const char *route, const char *request_id, int status)
{
    double seconds = seconds_since(req);
    char status_text[8], ms[24];
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len; /* no query: it may hold cursors */
    char path[256];
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(ms, sizeof ms, "%.3f", seconds * 1000);
    snprintf(path, sizeof path, "%.*s", (int)(path_len < 255 ? path_len : 255), req->path.base);
    char method[16];
    snprintf(method, sizeof method, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    const char *kv[] = {"request_id", request_id, "method",    method, "path", path, "route",
                        route,        "status",   status_text, "ms",   ms,     NULL};
    ota__log_kv(status >= 500 ? OTA_LOG_ERROR : OTA_LOG_INFO, "request", kv);
}

/*
 * Ends the call: counts and logs it, and detaches it from its request before sending, since h2o may finish the
 * request inside h2o_send.
 */
static h2o_req_t *finish(ota_call_t *call, int status)
{
    h2o_req_t *req = call->req;
    if (req != NULL) {
        double seconds = seconds_since(req);
        ota__metrics_request(call->match.route != NULL ? call->match.index : OTA_METRICS_NO_ROUTE, status, seconds);
        if (call->worker->cfg->access_log)
            ota__access_log(req, call->match.route != NULL ? call->match.route->name : "-", call->request_id, status);
        h2o_iovec_t id = h2o_strdup(&req->pool, call->request_id, SIZE_MAX);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id.base, id.len);
    }
    ota__call_free(call);
    return req;
}

void ota__respond_json(ota_call_t *call, int status, json_t *body)
{
    h2o_req_t *req = finish(call, status);
    if (req != NULL)
        send_json(req, status, body);
    json_decref(body);
}

void ota__respond_json_text(ota_call_t *call, int status, const char *json, size_t len)
{
    h2o_req_t *req = finish(call, status);
    if (req == NULL)
        return;
    send_bytes(req, status, reason_of(status), json, len); /* h2o_send_inline copies */
}

void ota__respond_raw(ota_call_t *call, int status, const char *body, size_t len)
{
    h2o_req_t *req = finish(call, status);
    if (req == NULL)
        return;
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void ota__respond_empty(ota_call_t *call, int status)
{
    h2o_req_t *req = finish(call, status);
    if (req != NULL)
        send_bytes(req, status, reason_of(status), NULL, 0);
}

static json_t *error_body(const char *code, const char *message, json_t *details)
{
    json_t *error = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (error == NULL)
        h2o_fatal("out of memory");
    if (details != NULL)
        json_object_set_new(error, "details", details);
    return json_pack("{s:o}", "error", error);
}

static void send_error(h2o_req_t *req, int status, const char *code, const char *message, json_t *details)
{
    json_t *body = error_body(code, message, details);
    send_json(req, status, body);
    json_decref(body);
}

void ota__respond_error(ota_call_t *call, int status, const char *code, json_t *details, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* jansson cannot put a message that is not UTF-8 into the answer, and that would stop the server: callers give
     * UTF-8, but a message cut at its cap may end inside a character. */
    ota_utf8_scrub(message, strlen(message));

    h2o_req_t *req = finish(call, status);
    if (req == NULL) {
        json_decref(details);
        return;
    }
    if (status == 503)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT(RETRY_AFTER_SECONDS));
    send_error(req, status, code, message, details);
}

void ota__respond_unavailable(ota_call_t *call, const char *what)
{
    ota__respond_error(call, 503, "unavailable", NULL, "%s; retry later", what);
}

void ota__respond_rate_limited(ota_call_t *call, uint32_t retry_after_s)
{
    h2o_req_t *req = finish(call, 429);
    if (req == NULL)
        return;
    char seconds[12];
    int len = snprintf(seconds, sizeof seconds, "%u", (unsigned)retry_after_s);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                   h2o_strdup(&req->pool, seconds, len).base, (size_t)len);
    char message[96];
    snprintf(message, sizeof message, "too many requests with this device token; retry in %u s",
             (unsigned)retry_after_s);
    send_error(req, 429, "rate_limited", message, json_pack("{s:I}", "retry_after_s", (json_int_t)retry_after_s));
}

/* The name of the violated constraint, as the schema names them ("devices_serial_key"). */
static const char *constraint_of(const PGresult *res)
{
    const char *c = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    return c != NULL ? c : "";
}

void ota__respond_db_error(ota_call_t *call, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (state == NULL)
        state = "";
    if (primary == NULL)
        primary = PQresultErrorMessage(res);

    switch (ota__sqlstate_kind(state)) {
    case OTA_SQLSTATE_DUPLICATE:
        ota__respond_error(call, 409, "conflict", json_pack("{s:s}", "constraint", constraint_of(res)),
                           "already exists (%s)", constraint_of(res));
        break;
    case OTA_SQLSTATE_INVALID: /* the request named something invalid */
        ota__respond_error(call, 422, "validation_failed", json_pack("{s:s}", "constraint", constraint_of(res)), "%s",
                           primary);
        break;
    case OTA_SQLSTATE_TRANSIENT:
        ota_log_warn("request %s: transient database error %s: %s", call->request_id, state, primary);
        ota__respond_unavailable(call, "the database could not complete the request now");
        break;
    case OTA_SQLSTATE_INTERNAL:
        ota_log_error("request %s: database error %s: %s", call->request_id, state, primary);
        ota__respond_error(call, 500, "internal", NULL, "internal error");
        break;
    }
}

void ota__respond_page(ota_call_t *call, const PGresult *res, int ts_col, int id_col,
                       json_t *(*row_json)(const PGresult *res, int row))
{
    int limit = call->page_limit, rows = PQntuples(res);
    json_t *items = json_array(), *next = json_null();
    char cursor[OTA_CURSOR_MAX];
    if (items == NULL)
        h2o_fatal("out of memory");
    for (int row = 0; row < rows && row < limit; row++)
        json_array_append_new(items, row_json(res, row));
    if (rows > limit &&
        ota__cursor_encode(PQgetvalue(res, limit - 1, ts_col), PQgetvalue(res, limit - 1, id_col), cursor))
        next = json_string(cursor);
    ota__respond_json(call, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
}

void ota__respond_error_req(h2o_req_t *req, int status, const char *code, const char *message, const char *allow)
{
    ota__metrics_request(OTA_METRICS_NO_ROUTE, status, seconds_since(req));
    if (allow != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    send_error(req, status, code, message, NULL);
}
