#include "http/body.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "http/respond.h"
#include "ota/utf8.h"

/* True for "application/json", with or without parameters ("; charset=utf-8"), in any case. */
static bool is_json_type(const char *type, size_t len)
{
    static const char json[] = "application/json";
    size_t n = sizeof json - 1;
    if (len < n || strncasecmp(type, json, n) != 0)
        return false;
    for (size_t i = n; i < len; i++) {
        if (type[i] == ';')
            return true;
        if (type[i] != ' ' && type[i] != '\t')
            return false;
    }
    return true;
}

static bool check_content_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return true;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    return is_json_type(v->base, v->len);
}

/* The largest body the route takes: h2o's own limit is the largest of them all (server.c). */
static size_t limit_of(const ota_call_t *call)
{
    switch (call->match.route->body) {
    case OTA_BODY_JSON:
        return OTA_MAX_JSON_BODY;
    case OTA_BODY_JSON_BULK:
        return OTA_MAX_BULK_JSON_BODY;
    case OTA_BODY_UPLOAD:
        return ota__max_upload_request(call->worker->cfg);
    default:
        return SIZE_MAX;
    }
}

bool ota__body_read(ota_call_t *call)
{
    h2o_req_t *req = call->req;
    const ota_route_t *route = call->match.route;
    size_t len = req->entity.base != NULL ? req->entity.len : 0, limit = limit_of(call);

    if (len > limit) {
        ota__respond_error(call, 413, "payload_too_large", json_pack("{s:I}", "limit", (json_int_t)limit),
                           "request body is %zu bytes; the limit for this route is %zu", len, limit);
        return false;
    }
    if ((route->body != OTA_BODY_JSON && route->body != OTA_BODY_JSON_BULK) || len == 0)
        return true;
    if (!check_content_type(req)) {
        ota__respond_error(call, 415, "unsupported_media_type", NULL, "this route takes application/json");
        return false;
    }
    json_error_t error;
    json_t *body = json_loadb(req->entity.base, len, JSON_REJECT_DUPLICATES, &error);
    if (body == NULL) {
        /* jansson quotes the text near the error, which may be part of a character, or bytes that are not UTF-8. */
        ota_utf8_scrub(error.text, strlen(error.text));
        ota__respond_error(call, 400, "bad_request", NULL, "malformed JSON at line %d column %d: %s", error.line,
                           error.column, error.text);
        return false;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        ota__respond_error(call, 400, "bad_request", NULL, "the body must be a JSON object");
        return false;
    }
    call->body = body;
    return true;
}
