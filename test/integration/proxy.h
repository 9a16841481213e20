#ifndef OTA_TEST_PROXY_H
#define OTA_TEST_PROXY_H

/*
 * A man in the middle for integration tests: an HTTP/1.1 server on
 * 127.0.0.1 that a device client is pointed at (its state.json "server"),
 * forwarding each request to the real ota-server and handing the answer to
 * the test before it goes back, so the test can replay, rewrite, truncate or
 * trickle what the device gets. It runs on a thread of its own and serves one
 * connection at a time, one request per connection (it answers with
 * "Connection: close"), which is all a device client needs.
 */

#include <stdbool.h>
#include <stddef.h>

/** Caps on what the proxy reads: a request (head and body) and an upstream answer. */
#define H_PROXY_REQUEST_MAX (1024 * 1024)
#define H_PROXY_ANSWER_MAX (16 * 1024 * 1024)

/**
 * One request and the answer the device will get. The hook may change any
 * of the answer's fields; the body it replaces must be malloc'ed (the proxy
 * frees it).
 */
typedef struct h_proxy_exchange {
    /* the request, as the device sent it (read only) */
    char method[16];
    char path[8192];      /**< path and query */
    const char *auth;     /**< the Authorization header's value, or NULL */
    const char *range;    /**< the Range header's value, or NULL */
    const char *req_body; /**< NUL-terminated, "" when none */
    size_t req_len;
    /* the answer (upstream's, unless the hook changes it) */
    int status; /**< 0 when upstream could not be reached: the proxy then closes without an answer */
    char content_type[128];
    char content_range[128]; /**< "" for none */
    char *body;              /**< malloc'ed, NUL-terminated */
    size_t len;
    long long declared_len; /**< Content-Length announced; -1: len (more than len and the connection ends early) */
    size_t send_max;        /**< send at most this many body bytes, then close (truncation); default: all */
    long trickle_ms;        /**< sleep this long between chunks of trickle_chunk bytes (0: no trickle) */
    size_t trickle_chunk;
} h_proxy_exchange_t;

/** Called for each request after upstream answered (or instead, when `forward` says no). */
typedef void (*h_proxy_hook)(void *arg, h_proxy_exchange_t *x);

/**
 * Decides, before upstream is asked, whether to ask it (false: the hook makes the whole answer), and may change
 * the request (e.g. set `range` to NULL to ask for the whole image). May be NULL.
 */
typedef bool (*h_proxy_forward_fn)(void *arg, h_proxy_exchange_t *x);

typedef struct h_proxy h_proxy_t;

/**
 * Starts a proxy to `upstream` ("http://127.0.0.1:PORT") on a free port; `hook` (may be NULL: pass through) and
 * `forward` see every exchange, on the proxy's thread, with `arg`. Aborts the test program when it cannot listen.
 */
h_proxy_t *h_proxy_start(const char *upstream, h_proxy_hook hook, h_proxy_forward_fn forward, void *arg);

/** "http://127.0.0.1:PORT" of the proxy (borrowed). */
const char *h_proxy_url(const h_proxy_t *p);

/** Requests served so far. */
int h_proxy_requests(h_proxy_t *p);

/** Stops the thread, closes the socket and frees `p` (NULL allowed). */
void h_proxy_stop(h_proxy_t *p);

#endif
