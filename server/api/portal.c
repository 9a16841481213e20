#include "api/portal.h"

#include <string.h>

#include "api/api.h"
#include "http/respond.h"

static const ota_portal_file_t *find_file(const char *name)
{
    for (const ota_portal_file_t *f = ota__portal_files; f->name != NULL; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static void header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, strlen(value));
}

static void header_by_name(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

/* The file, or 304 when the browser holds this very version (If-None-Match). */
static void send_file(ota_call_t *call, const ota_portal_file_t *f)
{
    h2o_req_t *req = call->req;
    header_by_name(req, "content-security-policy", OTA_PORTAL_CSP);
    header_by_name(req, "x-content-type-options", "nosniff");
    header_by_name(req, "referrer-policy", "no-referrer");
    /* no-cache: kept, but asked about each time, so a new server's files are used at once. */
    header(req, H2O_TOKEN_CACHE_CONTROL, "no-cache");
    header(req, H2O_TOKEN_ETAG, f->etag);
    ssize_t cursor = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (cursor != -1 && h2o_memis(req->headers.entries[cursor].value.base, req->headers.entries[cursor].value.len,
                                  f->etag, strlen(f->etag))) {
        ota__respond_empty(call, 304);
        return;
    }
    header(req, H2O_TOKEN_CONTENT_TYPE, f->content_type);
    ota__respond_raw(call, 200, (const char *)f->bytes, f->len);
}

void ota__api_portal_index(ota_call_t *call)
{
    const ota_portal_file_t *f = find_file("index.html");
    if (f == NULL) {
        ota__respond_error(call, 404, "not_found", NULL, "this server was built without its portal");
        return;
    }
    send_file(call, f);
}

void ota__api_portal_file(ota_call_t *call)
{
    const ota_portal_file_t *f = find_file(call->params[0]);
    if (f == NULL) {
        ota__respond_error(call, 404, "not_found", NULL, "no such file");
        return;
    }
    send_file(call, f);
}
