#ifndef OTA_SERVER_KEY_SLOTS_H
#define OTA_SERVER_KEY_SLOTS_H

#include <stdbool.h>

/*
 * Counted slots per key, shared by every thread of the process: how many
 * long-lived things (event streams) one API key holds open on this
 * instance. A key is any NUL-terminated text up to OTA_KEY_SLOTS_KEY_MAX
 * bytes (the key's hash, never the secret). A key with no slot taken holds no
 * memory beyond one reusable entry.
 */

#define OTA_KEY_SLOTS_KEY_MAX 80

/** Takes one of at most `max` slots of `key`; false (nothing taken) when all are in use. Thread-safe. */
bool ota__key_slots_take(const char *key, int max);

/** Gives back one slot of `key` taken with ota__key_slots_take. Thread-safe. */
void ota__key_slots_give(const char *key);

/** The slots of `key` in use now (for tests and metrics). Thread-safe. */
int ota__key_slots_used(const char *key);

#endif
