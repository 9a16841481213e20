#include "core/metrics.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Routes counted one by one; requests that matched none share the last slot. */
#define ROUTE_SLOTS 64
#define UNMATCHED (ROUTE_SLOTS - 1)

static const int STATUSES[] = {200, 201, 204, 206, 302, 400, 401, 403, 404,
                               405, 409, 413, 415, 416, 422, 429, 500, 503};
#define NSTATUS (sizeof STATUSES / sizeof STATUSES[0] + 1) /* + "other" */

static const double BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

static const char *const DEFERRALS[] = {"recording", "battery", "ble_connected", "rollout_pacing"};
#define NDEFERRALS (sizeof DEFERRALS / sizeof DEFERRALS[0])

static const char *const DELTA_STATUSES[] = {"ready", "not_worth_it", "failed"};
#define NDELTA_STATUSES (sizeof DELTA_STATUSES / sizeof DELTA_STATUSES[0])

static struct {
    atomic_uint_fast64_t requests[ROUTE_SLOTS][NSTATUS];
    atomic_uint_fast64_t latency_le[ROUTE_SLOTS][NBUCKETS]; /* not cumulative; summed when rendered */
    atomic_uint_fast64_t latency_count[ROUTE_SLOTS];
    atomic_uint_fast64_t latency_sum_us[ROUTE_SLOTS];
    atomic_uint_fast64_t heartbeats[2]; /* [relay] */
    atomic_uint_fast64_t deliveries;
    atomic_uint_fast64_t delta_offers;
    atomic_uint_fast64_t deferred[NDEFERRALS];
    atomic_int_fast64_t deferred_rows_pending;
    atomic_uint_fast64_t deferred_rows_written;
    atomic_uint_fast64_t deferred_rows_dropped;
    atomic_uint_fast64_t delta_builds[NDELTA_STATUSES];
} m;

static size_t status_slot(int status)
{
    for (size_t i = 0; i < NSTATUS - 1; i++)
        if (STATUSES[i] == status)
            return i;
    return NSTATUS - 1;
}

void ota__metrics_request(size_t route_index, int status, double seconds)
{
    size_t r = route_index < UNMATCHED ? route_index : UNMATCHED, b = 0;
    atomic_fetch_add_explicit(&m.requests[r][status_slot(status)], 1, memory_order_relaxed);
    while (b < NBUCKETS && seconds > BUCKETS[b])
        b++;
    if (b < NBUCKETS)
        atomic_fetch_add_explicit(&m.latency_le[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m.latency_count[r], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m.latency_sum_us[r], (uint_fast64_t)(seconds * 1e6), memory_order_relaxed);
}

void ota__metrics_heartbeat(bool relay, bool delivered, const char *deferred)
{
    atomic_fetch_add_explicit(&m.heartbeats[relay ? 1 : 0], 1, memory_order_relaxed);
    if (delivered)
        atomic_fetch_add_explicit(&m.deliveries, 1, memory_order_relaxed);
    for (size_t i = 0; deferred != NULL && i < NDEFERRALS; i++)
        if (strcmp(deferred, DEFERRALS[i]) == 0)
            atomic_fetch_add_explicit(&m.deferred[i], 1, memory_order_relaxed);
}

void ota__metrics_delta_offered(void)
{
    atomic_fetch_add_explicit(&m.delta_offers, 1, memory_order_relaxed);
}

void ota__metrics_deferred_pending(int64_t delta)
{
    atomic_fetch_add_explicit(&m.deferred_rows_pending, delta, memory_order_relaxed);
}

void ota__metrics_deferred_written(uint64_t rows)
{
    atomic_fetch_add_explicit(&m.deferred_rows_written, rows, memory_order_relaxed);
}

void ota__metrics_deferred_dropped(uint64_t rows)
{
    atomic_fetch_add_explicit(&m.deferred_rows_dropped, rows, memory_order_relaxed);
}

void ota__metrics_delta_build(const char *status)
{
    for (size_t i = 0; i < NDELTA_STATUSES; i++)
        if (strcmp(status, DELTA_STATUSES[i]) == 0)
            atomic_fetch_add_explicit(&m.delta_builds[i], 1, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *a)
{
    return (uint64_t)atomic_load_explicit(a, memory_order_relaxed);
}

static const char *slot_name(const char *(*route_name)(size_t index), size_t slot)
{
    const char *name = slot < UNMATCHED ? route_name(slot) : NULL;
    return name != NULL ? name : "unmatched";
}

static void render_requests(ota_text_t *out, const char *(*route_name)(size_t index))
{
    ota_text_printf(out, "# HELP ota_http_requests_total API requests answered, by route and status.\n"
                         "# TYPE ota_http_requests_total counter\n");
    for (size_t r = 0; r < ROUTE_SLOTS; r++) {
        for (size_t s = 0; s < NSTATUS; s++) {
            uint64_t n = get(&m.requests[r][s]);
            if (n == 0)
                continue;
            char status[8];
            if (s < NSTATUS - 1)
                snprintf(status, sizeof status, "%d", STATUSES[s]);
            else
                snprintf(status, sizeof status, "other");
            ota_text_printf(out, "ota_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", slot_name(route_name, r),
                            status, (unsigned long long)n);
        }
    }
}

static void render_latency(ota_text_t *out, const char *(*route_name)(size_t index))
{
    ota_text_printf(out, "# HELP ota_http_request_duration_seconds Time from request to answer, by route.\n"
                         "# TYPE ota_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < ROUTE_SLOTS; r++) {
        uint64_t count = get(&m.latency_count[r]), cumulative = 0;
        if (count == 0)
            continue;
        const char *name = slot_name(route_name, r);
        for (size_t b = 0; b < NBUCKETS; b++) {
            cumulative += get(&m.latency_le[r][b]);
            ota_text_printf(out, "ota_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name,
                            BUCKETS[b], (unsigned long long)cumulative);
        }
        ota_text_printf(out,
                        "ota_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                        "ota_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                        "ota_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        name, (unsigned long long)count, name, get(&m.latency_sum_us[r]) / 1e6, name,
                        (unsigned long long)count);
    }
}

void ota__metrics_render(ota_text_t *out, const char *(*route_name)(size_t index))
{
    render_requests(out, route_name);
    render_latency(out, route_name);
    ota_text_printf(out,
                    "# HELP ota_heartbeats_total Heartbeats answered (relay: relayed by the phone app).\n"
                    "# TYPE ota_heartbeats_total counter\n"
                    "ota_heartbeats_total{relay=\"false\"} %llu\n"
                    "ota_heartbeats_total{relay=\"true\"} %llu\n"
                    "# HELP ota_deliveries_total Manifests sent in heartbeat answers.\n"
                    "# TYPE ota_deliveries_total counter\n"
                    "ota_deliveries_total %llu\n"
                    "# HELP ota_delta_offers_total Manifests sent with a delta from the image the device runs.\n"
                    "# TYPE ota_delta_offers_total counter\n"
                    "ota_delta_offers_total %llu\n"
                    "# HELP ota_deferrals_total Heartbeats whose delivery waited, by reason.\n"
                    "# TYPE ota_deferrals_total counter\n",
                    (unsigned long long)get(&m.heartbeats[0]), (unsigned long long)get(&m.heartbeats[1]),
                    (unsigned long long)get(&m.deliveries), (unsigned long long)get(&m.delta_offers));
    for (size_t i = 0; i < NDEFERRALS; i++)
        ota_text_printf(out, "ota_deferrals_total{reason=\"%s\"} %llu\n", DEFERRALS[i],
                        (unsigned long long)get(&m.deferred[i]));
    ota_text_printf(out,
                    "# HELP ota_deferred_rows_pending Presence and re-delivery rows kept in memory, not written yet.\n"
                    "# TYPE ota_deferred_rows_pending gauge\n"
                    "ota_deferred_rows_pending %lld\n"
                    "# HELP ota_deferred_rows_written_total Presence and re-delivery rows written in bulk.\n"
                    "# TYPE ota_deferred_rows_written_total counter\n"
                    "ota_deferred_rows_written_total %llu\n"
                    "# HELP ota_deferred_rows_dropped_total Rows not kept because the database did not keep up.\n"
                    "# TYPE ota_deferred_rows_dropped_total counter\n"
                    "ota_deferred_rows_dropped_total %llu\n",
                    (long long)atomic_load_explicit(&m.deferred_rows_pending, memory_order_relaxed),
                    (unsigned long long)get(&m.deferred_rows_written),
                    (unsigned long long)get(&m.deferred_rows_dropped));
    ota_text_printf(out, "# HELP ota_delta_builds_total Delta builds this instance ended, by outcome.\n"
                         "# TYPE ota_delta_builds_total counter\n");
    for (size_t i = 0; i < NDELTA_STATUSES; i++)
        ota_text_printf(out, "ota_delta_builds_total{status=\"%s\"} %llu\n", DELTA_STATUSES[i],
                        (unsigned long long)get(&m.delta_builds[i]));
}
