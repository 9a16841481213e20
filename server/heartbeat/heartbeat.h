#ifndef OTA_SERVER_HEARTBEAT_HEARTBEAT_H
#define OTA_SERVER_HEARTBEAT_HEARTBEAT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "http/call.h"

/*
 * The heartbeat: a device's report in, its manifest (or why it must wait)
 * out, in one database round trip. The phone app's relay (api/ble.c) shares
 * the report's validation and bookkeeping and writes its own answer.
 */

/** POST /v1/devices/{id}/heartbeat. */
void ota__api_heartbeat(ota_call_t *call);

/** Gets the row of ota_heartbeat() (OTA_HB_COL_* columns) once the device's token was accepted. */
typedef void (*ota_heartbeat_done_fn)(ota_call_t *call, const PGresult *res);

/**
 * Validates the heartbeat body of `call` and records it with ota_heartbeat() (`relay`: bookkeeping only, never a
 * delivery). Answers bad input, a refused token and a database error itself; `done` gets the row otherwise.
 */
void ota__heartbeat_record(ota_call_t *call, bool relay, ota_heartbeat_done_fn done);

/**
 * Answers 200 {"server_time", "heartbeat_interval_s", "ota", "deferred"}: `ota` is the manifest's JSON text
 * (`ota_len` bytes) or NULL, `deferred` a reason or NULL; `extra_name` (NULL: none) names one more member, whose
 * value is the JSON text `extra_json`, added as it is. Called from a query callback, so the client is there
 * (http/call.c runs no callback of a call whose client has gone).
 */
void ota__heartbeat_respond(ota_call_t *call, const char *ota, size_t ota_len, const char *deferred,
                            const char *extra_name, const char *extra_json);

#endif
