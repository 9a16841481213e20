#include "api/dispatch.h"

#include <string.h>

#include "api/api.h"
#include "api/blobs.h"
#include "http/auth.h"
#include "http/body.h"
#include "http/call.h"
#include "http/device_limit.h"
#include "http/respond.h"

/* Copies the path parameters into the call, NUL-terminated; false when a {uuid} one is not a UUID. */
static bool take_params(ota_call_t *call)
{
    for (int i = 0; i < call->match.nparams; i++) {
        const ota_route_param_t *p = &call->match.params[i];
        if (p->is_uuid) {
            if (!ota__uuid_parse(p->base, p->len, call->params[i]))
                return false;
        } else {
            size_t len = p->len < sizeof call->params[i] - 1 ? p->len : sizeof call->params[i] - 1;
            memcpy(call->params[i], p->base, len);
            call->params[i][len] = '\0';
        }
    }
    return true;
}

static void run_handler(ota_call_t *call)
{
    call->match.route->handler(call);
}

int ota__dispatch(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (ota__blobs_match(req)) {
        ota__blobs_handle(req);
        return 0;
    }
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    ota_route_match_t match;
    ota_route_result_t found =
        ota__route_match(ota__routes, ota__routes_count, req->method.base, req->method.len, req->path.base, path_len,
                         &match);
    if (found == OTA_ROUTE_NOT_FOUND) {
        ota__respond_error_req(req, 404, "not_found", "no such route", NULL);
        return 0;
    }
    if (found == OTA_ROUTE_METHOD_NOT_ALLOWED) {
        ota__respond_error_req(req, 405, "method_not_allowed", "method not allowed on this path", match.allow);
        return 0;
    }

    ota_call_t *call = ota__call_new(req, ota__worker_of(req));
    call->match = match;
    if (!take_params(call)) {
        ota__respond_error(call, 400, "bad_request", NULL, "the id in the path is not a UUID");
        return 0;
    }
    if (!ota__device_limit_check(call))
        return 0;
    if (!ota__body_read(call))
        return 0;
    ota__auth_check(call, run_handler);
    return 0;
}
