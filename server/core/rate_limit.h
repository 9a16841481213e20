#ifndef OTA_SERVER_CORE_RATE_LIMIT_H
#define OTA_SERVER_CORE_RATE_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A fixed-window request limiter for many keys (device tokens), shared by
 * every event-loop thread of the process.
 *
 * Why one table for the process, not one per thread: each thread has its
 * own listener (SO_REUSEPORT), and the kernel spreads connections over them
 * by address and port, so one device's requests, one connection after
 * another, land on different threads. Per-thread tables would let a device
 * through `limit` times per thread.
 *
 * Memory is fixed at creation whatever arrives: a set-associative table
 * (WAYS slots a set, the set chosen by the key), each set guarded by one of
 * a fixed number of mutexes (a lock stripe), so threads contend only when
 * their keys share a stripe, and a lookup holds it for a few comparisons.
 * A key not in its set takes a slot whose window has ended, else the one
 * whose window began earliest. So a flood of distinct keys evicts counts
 * early instead of growing the table: the limit then errs toward letting a
 * device through, never toward refusing one that kept it.
 *
 * Time is the caller's (milliseconds on any monotonic clock), so the
 * behaviour is tested without waiting.
 */

typedef struct ota_rate_limit ota_rate_limit_t;

/**
 * Makes a limiter that lets each key through `limit` times in each window of `window_ms`, starting at its first
 * request; it remembers up to `slots` keys (rounded up to a power of two, at least the associativity). Aborts on
 * out-of-memory. Free it with ota__rate_limit_free.
 */
ota_rate_limit_t *ota__rate_limit_new(uint32_t limit, uint64_t window_ms, size_t slots);

/** Frees `rl` (NULL: nothing). No thread may use it any more. */
void ota__rate_limit_free(ota_rate_limit_t *rl);

/**
 * Counts one request of `key` at `now_ms`. Returns true when it is within the limit; otherwise false, with the
 * whole seconds until the key's window ends (at least 1) in `*retry_after_s`. Thread-safe.
 */
bool ota__rate_limit_take(ota_rate_limit_t *rl, uint64_t key, uint64_t now_ms, uint32_t *retry_after_s);

#endif
