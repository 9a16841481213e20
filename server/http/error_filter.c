#include "http/error_filter.h"

#include <string.h>

static const char BODY_413[] = "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the request body is over "
                               "the server's limit (see OTA_MAX_BODY)\"}}";
static const char BODY_400[] = "{\"error\":{\"code\":\"bad_request\",\"message\":\"malformed HTTP request\"}}";
static const char JSON_TYPE[] = "application/json; charset=utf-8";

typedef struct json_body_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
} json_body_ostream_t;

/* Drops h2o's text and sends the JSON body instead, once, with the final chunk. */
static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    json_body_ostream_t *o = (json_body_ostream_t *)self;
    (void)bufs;
    (void)bufcnt;
    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    h2o_ostream_send_next(self, req, &o->body, 1, state);
}

static int is_json(const h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i >= 0 && req->res.headers.entries[i].value.len >= 16 &&
           memcmp(req->res.headers.entries[i].value.base, "application/json", 16) == 0;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    int status = req->res.status;
    if ((status == 413 || status == 400) && !is_json(req)) {
        h2o_iovec_t body = status == 413 ? h2o_iovec_init(BODY_413, sizeof BODY_413 - 1)
                                         : h2o_iovec_init(BODY_400, sizeof BODY_400 - 1);
        ssize_t i;
        while ((i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) >= 0)
            h2o_delete_header(&req->res.headers, i);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT(JSON_TYPE));
        req->res.content_length = body.len;
        json_body_ostream_t *o = (json_body_ostream_t *)h2o_add_ostream(req, sizeof *o, slot);
        o->super.do_send = on_send;
        o->body = body;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void ota__error_filter_install(h2o_pathconf_t *path)
{
    h2o_filter_t *filter = h2o_create_filter(path, sizeof *filter);
    filter->on_setup_ostream = on_setup_ostream;
}
