#include "api/portal.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/log.h"
#include "http/respond.h"

/* The CSP every portal file is sent with: written once by ota__portal_csp_init, before any thread serves. */
static char portal_csp[OTA_PORTAL_CSP_MAX] = OTA_PORTAL_CSP;

size_t ota__url_origin_len(const char *url)
{
    size_t scheme = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    if (scheme == 0)
        return 0;
    size_t authority = strcspn(url + scheme, "/?#");
    return authority == 0 ? 0 : scheme + authority;
}

/* The bytes an origin may have in the header; the origin comes from configuration, which might hold anything. */
static bool origin_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == ':' ||
           c == '-' || c == '/';
}

ota_err_t ota__portal_csp_make(const char *origin, size_t len, char *out, size_t cap)
{
    if (len == 0)
        return OTA_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if (!origin_char(origin[i]))
            return OTA_ERR_INVALID;
    int n = snprintf(out, cap, "%s %.*s%s", OTA_PORTAL_CSP_HEAD, (int)len, origin, OTA_PORTAL_CSP_TAIL);
    return n < 0 || (size_t)n >= cap ? OTA_ERR_TOO_LARGE : OTA_OK;
}

void ota__portal_csp_init(ota_storage_t *storage)
{
    char url[8192], csp[sizeof portal_csp];
    /* fs: presigned URLs are on this server, which 'self' covers. */
    if (ota__storage_is_fs(storage))
        return;
    /* Any key will do: the URL's origin is the storage's, path-style or virtual-hosted, as it hands them out. */
    if (ota__storage_presign(storage, "PUT", "uploads/origin", time(NULL), 1, url, sizeof url) != OTA_OK) {
        ota_log_warn("cannot presign a URL to learn the storage's origin: the portal's CSP keeps connect-src 'self'");
        return;
    }
    size_t len = ota__url_origin_len(url);
    if (ota__portal_csp_make(url, len, csp, sizeof csp) != OTA_OK) {
        ota_log_warn("the storage's origin \"%.*s\" is left out of the portal's CSP (only A-Z a-z 0-9 . : - / may "
                     "enter it): connect-src stays 'self', so a browser cannot PUT from the portal to a presigned URL",
                     (int)len, url);
        return;
    }
    snprintf(portal_csp, sizeof portal_csp, "%s", csp);
    ota_log_info("the portal's CSP: %s", portal_csp);
}

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
    header_by_name(req, "content-security-policy", portal_csp);
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
