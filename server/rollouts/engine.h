#ifndef OTA_SERVER_ROLLOUTS_ENGINE_H
#define OTA_SERVER_ROLLOUTS_ENGINE_H

#include "http/worker.h"

/*
 * The rollout engine of one server instance: one thread of every instance
 * ticks, on a database connection of its own, so that its statements never
 * wait behind heartbeats or hold them up. A tick is one call of
 * ota_rollout_tick() (migrations/functions/), which steps one rollout that no
 * other instance is stepping: checks its gates, opens waves, admits a batch of
 * targets, or takes back a paused or canceled rollout's assignments. While a
 * tick reports work done the engine ticks again at once; otherwise it waits
 * OTA_ROLLOUT_TICK_MS. Any number of instances tick together: they share the
 * work and none double-acts (docs/rollouts.md).
 */

/** Targets one tick admits, or assignments one tick takes back, at most (a transaction of a few tens of ms), as
 * the statement's text parameter. */
#define OTA_ROLLOUT_BATCH "1000"

typedef struct ota_rollout_engine ota_rollout_engine_t;

/** Starts ticking on `worker`'s loop. Free with ota__rollout_engine_stop. */
ota_rollout_engine_t *ota__rollout_engine_start(ota_worker_t *worker);

/** Stops ticking; a tick in flight finishes harmlessly. */
void ota__rollout_engine_stop(ota_rollout_engine_t *engine);

#endif
