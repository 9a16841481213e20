#include "api/blobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/call.h"
#include "http/range.h"
#include "http/respond.h"
#include "core/log.h"
#include "storage/fs.h"
#include "http/worker.h"

/* An S3-style error document. */
/* The access log line of a blob request (route "blobs"), at its answer's start: what a device downloaded. */
static void log_blob(h2o_req_t *req)
{
    if (ota__worker_of(req)->cfg->access_log)
        ota__access_log(req, "blobs", "-", req->res.status);
}

static void send_xml_error(h2o_req_t *req, int status, const char *reason, const char *code, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof body,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>",
                     code, message);
    char *copy = h2o_mem_alloc_pool(&req->pool, (size_t)n);
    memcpy(copy, body, (size_t)n);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = (size_t)n;
    log_blob(req);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/xml"));
    h2o_send_inline(req, copy, (size_t)n);
}

bool ota__blobs_match(h2o_req_t *req)
{
    ota_worker_t *worker = ota__worker_of(req);
    return ota__storage_is_fs(worker->storage) && req->path.len > sizeof OTA_BLOBS_PREFIX - 1 &&
           memcmp(req->path.base, OTA_BLOBS_PREFIX, sizeof OTA_BLOBS_PREFIX - 1) == 0;
}

/* Checks the presigned URL; on failure answers 403 as S3 does and returns false. */
static bool check_signature(h2o_req_t *req, const ota_storage_t *storage)
{
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    ota_sigv4_received_t rcv = {
        .method = req->method.base,
        .method_len = req->method.len,
        .host = req->authority.base,
        .host_len = req->authority.len,
        .path = req->path.base,
        .path_len = path_len,
        .query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "",
        .query_len = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0,
    };
    ota_sigv4_verdict_t verdict = ota__sigv4_verify(ota__storage_fs_signer(storage), &rcv, time(NULL), NULL);
    switch (verdict) {
    case OTA_SIGV4_VALID:
        return true;
    case OTA_SIGV4_EXPIRED:
        send_xml_error(req, 403, "Forbidden", "AccessDenied", "Request has expired");
        return false;
    case OTA_SIGV4_MISMATCH:
        send_xml_error(req, 403, "Forbidden", "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you provided.");
        return false;
    default:
        send_xml_error(req, 403, "Forbidden", "AccessDenied",
                       "Query-string authentication is required and must be valid.");
        return false;
    }
}

/* The object key named by the path, decoded; false when it is not a key this server makes. */
static bool key_of(h2o_req_t *req, char *key, size_t cap)
{
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    size_t prefix = sizeof OTA_BLOBS_PREFIX - 1, key_len = 0;
    if (ota__sigv4_uri_decode(req->path.base + prefix, path_len - prefix, key, cap - 1, &key_len) != OTA_OK)
        return false;
    key[key_len] = '\0';
    return ota__storage_key_valid(key, key_len);
}

/*
 * --- GET, HEAD: stream the file, one chunk at a time ---
 *
 * Each chunk is read on a thread of the worker's read pool, never on the loop (a cold disk or a network
 * filesystem can take long), when h2o asks for the next one: a download holds one chunk in memory however slowly
 * its client reads. A client that stops reading is disconnected by the idle watch (http/idle.h). The sender is
 * malloc'ed, not in the request's pool, because a read in flight outlives a request whose client has gone.
 */

#define CHUNK (64 * 1024)

typedef struct file_sender {
    ota_job_t job; /* first: a read in flight */
    h2o_generator_t super;
    h2o_req_t *req; /* NULL once the request is gone */
    ota_worker_t *worker;
    int fd;
    bool reading; /* a read is on a pool thread: the sender is freed when it comes back */
    uint64_t offset, remaining;
    ssize_t got; /* the last read's result, written by the pool thread */
    char buf[CHUNK];
} file_sender_t;

static void sender_free(file_sender_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

/* The request's pool is going away: the sender goes now, or when its read comes back. */
static void sender_gone(void *p)
{
    file_sender_t *f = *(file_sender_t **)p;
    f->req = NULL;
    if (!f->reading)
        sender_free(f);
}

static void read_run(ota_job_t *job)
{
    file_sender_t *f = (file_sender_t *)job;
    size_t want = f->remaining < CHUNK ? (size_t)f->remaining : CHUNK;
    do
        f->got = pread(f->fd, f->buf, want, (off_t)f->offset);
    while (f->got < 0 && errno == EINTR);
}

static void read_done(ota_job_t *job)
{
    file_sender_t *f = (file_sender_t *)job;
    f->reading = false;
    if (f->req == NULL) {
        sender_free(f);
        return;
    }
    if (f->got <= 0) { /* the file shrank or failed under us: end the response abruptly rather than lie */
        h2o_send(f->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    f->offset += (uint64_t)f->got;
    f->remaining -= (uint64_t)f->got;
    h2o_iovec_t chunk = h2o_iovec_init(f->buf, (size_t)f->got);
    h2o_send(f->req, &chunk, 1, f->remaining == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void sender_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    file_sender_t *f = H2O_STRUCT_FROM_MEMBER(file_sender_t, super, self);
    (void)req;
    f->reading = true;
    ota__jobs_submit(f->worker->reads, &f->job, &f->worker->jobs_done);
}

static void sender_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req;
}

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, v.base, v.len);
}

static void send_file(h2o_req_t *req, const char *path, bool head_only)
{
    char header[96];
    uint64_t first = 0, last = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        send_xml_error(req, 404, "Not Found", "NoSuchKey", "The specified key does not exist.");
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    ssize_t range_at = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
    ota_range_result_t range = OTA_RANGE_NONE;
    if (range_at >= 0)
        range = ota__range_parse(req->headers.entries[range_at].value.base, req->headers.entries[range_at].value.len,
                                 size, &first, &last);
    if (range == OTA_RANGE_UNSATISFIABLE) {
        close(fd);
        snprintf(header, sizeof header, "bytes */%" PRIu64, size);
        add_header(req, H2O_TOKEN_CONTENT_RANGE, header);
        send_xml_error(req, 416, "Range Not Satisfiable", "InvalidRange", "The requested range is not satisfiable");
        return;
    }
    if (range == OTA_RANGE_NONE) {
        first = 0;
        last = size - 1; /* unused when size is 0 */
    }
    uint64_t length = size == 0 ? 0 : last - first + 1;

    req->res.status = range == OTA_RANGE_PARTIAL ? 206 : 200;
    req->res.reason = range == OTA_RANGE_PARTIAL ? "Partial Content" : "OK";
    req->res.content_length = (size_t)length;
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "application/octet-stream");
    add_header(req, H2O_TOKEN_ACCEPT_RANGES, "bytes");
    if (range == OTA_RANGE_PARTIAL) {
        snprintf(header, sizeof header, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
        add_header(req, H2O_TOKEN_CONTENT_RANGE, header);
    }
    log_blob(req);
    if (head_only || length == 0) {
        close(fd);
        h2o_send_inline(req, NULL, 0);
        return;
    }
    file_sender_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        h2o_fatal("out of memory");
    file_sender_t **handle = h2o_mem_alloc_shared(&req->pool, sizeof *handle, sender_gone);
    *handle = f;
    f->super.proceed = sender_proceed;
    f->super.stop = sender_stop;
    f->req = req;
    f->worker = ota__worker_of(req);
    f->fd = fd;
    f->offset = first;
    f->remaining = length;
    f->job.run = read_run;
    f->job.done = read_done;
    h2o_start_response(req, &f->super);
    sender_proceed(&f->super, req);
}

/* --- PUT: a presigned upload, written on a job thread --- */

typedef struct put_job {
    ota_job_t job;
    ota_call_t *call;
    const char *root;
    char key[600];
    char *data;
    size_t len;
    ota_err_t rc;
    char err[256];
} put_job_t;

static void put_run(ota_job_t *job)
{
    put_job_t *p = (put_job_t *)job;
    p->rc = ota__fs_put(p->root, p->key, p->data, p->len, p->err, sizeof p->err);
}

static void put_done(ota_job_t *job)
{
    put_job_t *p = (put_job_t *)job;
    h2o_req_t *req = p->call->req;
    ota__call_free(p->call);
    if (p->rc != OTA_OK)
        ota_log_error("blob upload %s failed: %s", p->key, p->err);
    if (req != NULL) {
        if (p->rc == OTA_OK) {
            req->res.status = 200;
            req->res.reason = "OK";
            req->res.content_length = 0;
            log_blob(req);
            h2o_send_inline(req, NULL, 0);
        } else {
            send_xml_error(req, 500, "Internal Server Error", "InternalError", "The object could not be stored.");
        }
    }
    free(p->data);
    free(p);
}

static void handle_put(h2o_req_t *req, ota_worker_t *worker, const char *key)
{
    static const char uploads[] = "uploads/";
    if (strncmp(key, uploads, sizeof uploads - 1) != 0) {
        send_xml_error(req, 403, "Forbidden", "AccessDenied", "Only uploads may be written.");
        return;
    }
    put_job_t *p = calloc(1, sizeof *p);
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    if (p == NULL || (p->data = malloc(len + 1)) == NULL)
        h2o_fatal("out of memory");
    /* A copy: the request's memory goes away if the client leaves while the job runs. */
    if (len > 0)
        memcpy(p->data, req->entity.base, len);
    p->len = len;
    snprintf(p->key, sizeof p->key, "%s", key);
    p->root = ota__storage_fs_root(worker->storage);
    p->call = ota__call_new(req, worker);
    p->job.run = put_run;
    p->job.done = put_done;
    if (!ota__jobs_try_submit(worker->jobs, &p->job, &worker->jobs_done)) {
        ota__call_free(p->call);
        free(p->data);
        free(p);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        send_xml_error(req, 503, "Service Unavailable", "SlowDown", "Too many uploads are waiting; retry later.");
    }
}

void ota__blobs_handle(h2o_req_t *req)
{
    ota_worker_t *worker = ota__worker_of(req);
    char key[600], path[1200];
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                  h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    bool is_put = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT"));

    if (!is_get && !is_put) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD, PUT"));
        send_xml_error(req, 405, "Method Not Allowed", "MethodNotAllowed", "The method is not allowed here.");
        return;
    }
    if (!check_signature(req, worker->storage))
        return;
    if (!key_of(req, key, sizeof key)) {
        send_xml_error(req, 404, "Not Found", "NoSuchKey", "The specified key does not exist.");
        return;
    }
    if (is_put) {
        handle_put(req, worker, key);
        return;
    }
    if (ota__fs_path(ota__storage_fs_root(worker->storage), key, path, sizeof path) != OTA_OK) {
        send_xml_error(req, 404, "Not Found", "NoSuchKey", "The specified key does not exist.");
        return;
    }
    send_file(req, path, h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")));
}
