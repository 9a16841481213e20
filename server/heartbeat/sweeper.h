#ifndef OTA_SERVER_SWEEPER_H
#define OTA_SERVER_SWEEPER_H

#include "http/worker.h"

/*
 * The apply timeout: every OTA_SWEEP_SECONDS, one thread of each instance
 * fails the deliveries older than OTA_APPLY_TIMEOUT (reason "timeout").
 * Any number of instances may sweep at once: the statement locks the rows it
 * changes and skips those another sweep holds (ota_expire_deliveries() in
 * migrations/functions/). A heartbeat of the device itself applies the same rule
 * at once, so the sweep only matters for devices that went quiet.
 */

#define OTA_SWEEP_SECONDS 30

typedef struct ota_sweeper ota_sweeper_t;

/** Starts sweeping on `worker`'s loop and database connection. Free with ota__sweeper_stop. */
ota_sweeper_t *ota__sweeper_start(ota_worker_t *worker);

/** Stops sweeping; a sweep in flight finishes harmlessly. */
void ota__sweeper_stop(ota_sweeper_t *sweeper);

#endif
