#ifndef OTA_SERVER_EVENTS_H
#define OTA_SERVER_EVENTS_H

#include "http/call.h"
#include "http/worker.h"

/*
 * GET /v1/events: Server-Sent Events, one per assignment transition and per
 * rollout change made by any instance.
 *
 * Every database connection LISTENs on ota_events, which the transition
 * trigger and ota_rollout_event notify. A notification only says "something
 * happened": each stream then reads the events tables after its own cursor,
 * so a stream never misses or repeats an event, whichever instance made it,
 * and `Last-Event-ID` resumes a stream from the tables. Comment lines
 * (": keep-alive") go out every OTA_EVENTS_KEEPALIVE_S seconds so proxies
 * keep the connection.
 *
 * Order and ids: events.c explains why a stream follows the order in which
 * events became safe to hand out, (transaction id, event id), and not the
 * event id alone. An event's SSE id is "<xid>-<event id>"; "0" resumes from
 * the first event.
 *
 * Memory: a stream reads its next batch only once h2o has written the last
 * one to the socket, and a batch stops at OTA_EVENTS_BUFFER_MAX bytes (or
 * OTA_EVENTS_BATCH events), so a stream holds at most that much, however far
 * behind its reader is. A reader that takes nothing for a whole keep-alive
 * interval while a batch waits is disconnected; it resumes with
 * Last-Event-ID. One API key holds at most OTA_EVENTS_STREAMS_PER_KEY
 * streams per instance; the next gets 429 `rate_limited`.
 */

/** Most bytes of event text one stream holds (a batch being written); one event larger than this still goes alone. */
#define OTA_EVENTS_BUFFER_MAX (256 * 1024)
/** Most events read from the database for one stream at a time. */
#define OTA_EVENTS_BATCH 200
/** Most open streams of one API key on one instance. */
#define OTA_EVENTS_STREAMS_PER_KEY 8
/** How soon a stream reads again while committed events wait behind an older running transaction. */
#define OTA_EVENTS_HOLD_RETRY_MS 50

typedef struct ota_events ota_events_t;

/** Starts the hub of one worker: hooks its database notifications and the timers. */
ota_events_t *ota__events_start(ota_worker_t *worker);

/** Stops notifications and timers; the hub stays allocated, as open streams refer to it until exit. */
void ota__events_stop(ota_events_t *hub);

/** Turns `call` (an authenticated GET /v1/events) into a stream, or answers 429 when its key has too many. */
void ota__events_subscribe(ota_call_t *call);

#endif
