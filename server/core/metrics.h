#ifndef OTA_SERVER_METRICS_H
#define OTA_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/text.h"

/*
 * Process-wide counters for GET /metrics (Prometheus text format). Every
 * event-loop thread adds to them with relaxed atomic operations: a scrape
 * may see one request counted and its latency not yet, which Prometheus
 * tolerates, and the hot path pays no lock.
 */

/** Route slots counted one by one; a request that matched no route counts as "unmatched". */
#define OTA_METRICS_NO_ROUTE SIZE_MAX

/**
 * Counts one answered API request: `route_index` is the matched route's index in the route table
 * (OTA_METRICS_NO_ROUTE for 404/405), `seconds` its latency.
 */
void ota__metrics_request(size_t route_index, int status, double seconds);

/** Counts one heartbeat (or relay) answer: whether it carried a manifest, and why it was deferred (NULL: not). */
void ota__metrics_heartbeat(bool relay, bool delivered, const char *deferred);

/** Counts one manifest sent with a delta. */
void ota__metrics_delta_offered(void);

/** Rows kept in memory for deferred_writes.h: `delta` more pending, `rows` written, `rows` dropped. */
void ota__metrics_deferred_pending(int64_t delta);
void ota__metrics_deferred_written(uint64_t rows);
void ota__metrics_deferred_dropped(uint64_t rows);

/** Counts one delta build that ended: `status` is "ready", "not_worth_it" or "failed" (releases/delta_builder.h). */
void ota__metrics_delta_build(const char *status);

/**
 * Appends the process's counters in Prometheus text format to `out` (the caller checks out->err). `route_name`
 * gives the label of the route at an index of the route table (NULL past its end).
 */
void ota__metrics_render(ota_text_t *out, const char *(*route_name)(size_t index));

#endif
