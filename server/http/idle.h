#ifndef OTA_SERVER_HTTP_IDLE_H
#define OTA_SERVER_HTTP_IDLE_H

#include <stdint.h>

#include <h2o.h>

/*
 * Closes connections that stop moving bytes in the middle of an exchange.
 *
 * libh2o 2.2.5 has one timer for reading a request (globalconf.http1.req_timeout), armed once when the server
 * starts waiting for a request and never re-armed as bytes arrive: it bounds the whole request, body included,
 * so a large upload on a slow link was cut off however steadily it progressed. It also has no timer at all for
 * a response the client stops reading. The server therefore sets req_timeout to the generous OTA_REQUEST_TIMEOUT
 * and watches progress itself: a connection that h2o is reading a request from and that has received no data
 * for OTA_IDLE_TIMEOUT_MS, or that h2o is writing to and that has sent no data for as long (the client's window
 * stayed shut), is shut down. h2o then sees the socket fail and closes the connection its own way.
 *
 * While a request is being handled (h2o neither reads nor writes), no limit applies: a long job is no idle
 * client. An idle keep-alive connection is one waiting for its next request, so the same limit closes it.
 * The kernel's TCP_INFO times say when data last moved, so a connection costs nothing between checks; the
 * checks run every quarter of the limit (at most once a second).
 */

typedef struct ota_idle ota_idle_t;

/** Starts watching on `loop`, closing connections idle for `timeout_ms`. Free with ota__idle_stop on that loop. */
ota_idle_t *ota__idle_start(h2o_evloop_t *loop, uint64_t timeout_ms);

/**
 * Watches `sock`, a newly accepted connection, until it closes. Takes over sock->on_close (which must be unset).
 */
void ota__idle_track(ota_idle_t *idle, h2o_socket_t *sock);

/** Stops watching and frees the watcher; connections still open stay open and are no longer watched. */
void ota__idle_stop(ota_idle_t *idle);

#endif
