#ifndef OTA_SERVER_API_FLEET_SNAPSHOT_H
#define OTA_SERVER_API_FLEET_SNAPSHOT_H

#include <time.h>
#include <libpq-fe.h>

/*
 * The fleet's numbers as GET /v1/fleet shows them, made once from one
 * grouped count of the devices (OTA_STMT_FLEET_COUNTS) and then only read:
 * every model's answer and the whole fleet's are written out when the
 * snapshot is made, so a request copies text and counts nothing. A snapshot
 * never changes once made, so any thread may read it (http/shared_count.h
 * shares it between threads).
 */
typedef struct ota_fleet_snapshot ota_fleet_snapshot_t;

/** Makes a snapshot of the rows of `res`, counted at `as_of` (free it with ota__fleet_snapshot_free). Aborts on
 *  out-of-memory. */
ota_fleet_snapshot_t *ota__fleet_snapshot_new(const PGresult *res, time_t as_of);

/** Frees `s` (NULL: nothing). */
void ota__fleet_snapshot_free(ota_fleet_snapshot_t *s);

/**
 * The answer of GET /v1/fleet for devices of `model` (NULL: every device),
 * as JSON text (malloc'ed): {"as_of", "devices", "seen_last_24h",
 * "by_version": [{"model", "version", "devices"}], "by_ota_status"}, with
 * versions by model, then newest first by semver precedence (null last),
 * and every ota_status, zero or not. A model without devices has zeros.
 */
char *ota__fleet_snapshot_answer(const ota_fleet_snapshot_t *s, const char *model);

#endif
