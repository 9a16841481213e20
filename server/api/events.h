#ifndef OTA_SERVER_EVENTS_H
#define OTA_SERVER_EVENTS_H

#include "http/call.h"
#include "http/worker.h"

/*
 * GET /v1/events: Server-Sent Events, one per assignment transition made by
 * any instance.
 *
 * Every database connection LISTENs on ota_events, which the transition
 * trigger notifies (migrations/functions/ota_assignment_transition.sql). A
 * notification only says "something happened": each stream then reads the
 * events table after its own cursor, so a stream never misses or repeats an
 * event it has seen, whichever instance made it, and `Last-Event-ID` resumes
 * a stream from the table. Comment lines (": keep-alive") go out every
 * OTA_EVENTS_KEEPALIVE_SECONDS so proxies keep the connection.
 *
 * Known limit: event ids come from a sequence, so a transaction that commits
 * after a later-numbered one may land behind a cursor that already moved
 * past it; with one transition per transaction and short transactions the
 * window is a few milliseconds. The next step is to hold back ids newer than
 * the oldest running transaction (pg_snapshot_xmin).
 */

#define OTA_EVENTS_KEEPALIVE_SECONDS 15

typedef struct ota_events ota_events_t;

/** Starts the hub of one worker: hooks its database notifications and the keep-alive timer. */
ota_events_t *ota__events_start(ota_worker_t *worker);

/** Stops notifications and keep-alives; the hub stays allocated, as open streams refer to it until exit. */
void ota__events_stop(ota_events_t *hub);

/** Turns `call` (an authenticated GET /v1/events) into a stream. */
void ota__events_subscribe(ota_call_t *call);

#endif
