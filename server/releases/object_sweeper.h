#ifndef OTA_SERVER_RELEASES_OBJECT_SWEEPER_H
#define OTA_SERVER_RELEASES_OBJECT_SWEEPER_H

#include "http/worker.h"

/*
 * Object garbage collection. Object storage collects what no release needs:
 * uploads never used (or used: a release copies its upload), the objects of a
 * release whose creation died with its process, and (fs) the temporary files
 * of writes cut short by a crash (`<key>.tmp-<id>`).
 *
 * One thread of each instance ticks; at most one instance sweeps per
 * OTA_GC_INTERVAL_S: the one whose update moves the `object_sweeps` row's
 * next_at forward (OTA_STMT_OBJECT_SWEEP_TAKE). A sweep lists the objects
 * under releases/ and uploads/ last modified more than OTA_GC_GRACE_S ago,
 * asks the database which of them no artifact names and no upload still
 * needs (its URL valid, or expired less than the grace period ago), and
 * deletes those.
 *
 * Why it cannot take the objects of a release being made: a release's
 * objects are written (or copied, which dates the copy) after its creation
 * began, and its row is refused unless it commits within half the grace
 * period of that (api/release_create.c). An object the sweeper judges is
 * older than the whole grace period, so either its release's row was
 * committed before the database was asked, or it never will be.
 */

typedef struct ota_object_sweeper ota_object_sweeper_t;

/** Starts ticking on `worker`'s loop; NULL when OTA_GC_INTERVAL_S is 0. Free with ota__object_sweeper_stop. */
ota_object_sweeper_t *ota__object_sweeper_start(ota_worker_t *worker);

/** Stops; waits (a few seconds at most) for a sweep under way to end. NULL is ignored. */
void ota__object_sweeper_stop(ota_object_sweeper_t *sweeper);

#endif
