#ifndef OTA_SERVER_DEFERRED_TABLE_H
#define OTA_SERVER_DEFERRED_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ids.h"

/*
 * The rows deferred_writes.h keeps for one thread: an open-addressing hash
 * table from (kind, id) to what is to be written for that row. Adding a row
 * that is there already merges the two: re-delivery counts add up, a newer
 * signature replaces an older, the later sighting of a device stands. So
 * the heartbeats of a device or the re-deliveries of an assignment within
 * one interval cost one row update together; of two progress reports, the later stands.
 */

typedef enum { OTA_DEFERRED_DEVICE, OTA_DEFERRED_ASSIGNMENT } ota_deferred_kind_t;

/** A download progress report: what the device said, and when (monotonic clock, ms); state 0 = none. */
typedef struct ota_deferred_progress {
    uint8_t state; /**< 0 none, else 1 + the index in ota__progress_states */
    uint8_t delta; /**< 0: a full download; else 1 + the index in ota__progress_deltas */
    int64_t bytes, total;
    uint64_t at_ms;
} ota_deferred_progress_t;

/** The progress states a device reports while it downloads and installs, as the API names them. */
extern const char *const ota__progress_states[3];

/** What a device says of the delta while it updates ("delta" in its report), as the API names it. */
extern const char *const ota__progress_deltas[2];

typedef struct ota_deferred_row {
    bool used;
    ota_deferred_kind_t kind;
    char id[OTA_UUID_LEN + 1];
    uint64_t seen_ms;                 /**< device: when last seen (monotonic clock, ms) */
    uint32_t n;                       /**< assignment: re-deliveries */
    char *signature;                  /**< assignment: a signature to store (owned, malloc'd), or NULL */
    char *delta_signature;            /**< assignment: the signature of its manifest with a delta, then the SHA-256
                                           of that delta: 88 + 64 characters (owned, malloc'd), or NULL */
    ota_deferred_progress_t progress; /**< assignment: the latest progress its device reported */
} ota_deferred_row_t;

typedef struct ota_deferred_table {
    ota_deferred_row_t *slots;
    size_t cap; /**< a power of two, or 0 */
    size_t used;
} ota_deferred_table_t;

/** Merges `add` into `t` and takes its signature (add->signature is set to NULL). */
void ota__deferred_table_put(ota_deferred_table_t *t, ota_deferred_row_t *add);

/** Whether `t` holds a row of `kind` and `id`. */
bool ota__deferred_table_has(const ota_deferred_table_t *t, ota_deferred_kind_t kind, const char *id);

/** Moves the rows in slots [from, cap) of `from_table` into `into` (merging) and empties `from_table`. */
void ota__deferred_table_move(ota_deferred_table_t *into, ota_deferred_table_t *from_table, size_t from);

/** Empties `t` (frees its signatures), keeping its slots for reuse. */
void ota__deferred_table_clear(ota_deferred_table_t *t);

/** Empties `t` and frees everything. */
void ota__deferred_table_free(ota_deferred_table_t *t);

#endif
