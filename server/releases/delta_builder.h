#ifndef OTA_SERVER_RELEASES_DELTA_BUILDER_H
#define OTA_SERVER_RELEASES_DELTA_BUILDER_H

/*
 * Building deltas between releases, on the delta job thread (never on an
 * event loop): when a release is made, from the model's three newest older
 * releases, and when a delivering heartbeat finds that the device runs
 * another release's image and no delta from it exists yet. A build is
 * claimed in the database first (table release_deltas), so that across
 * every instance each pair is built once, and a failed or not-worth-it pair
 * is never built again.
 */

#include "http/worker.h"

/**
 * Asks for the delta into release `to_release_id` from `from_release_id`,
 * or, when `from_release_id` is NULL, from the three newest releases of its
 * model older than it. Called on the worker's loop; returns at once: the
 * claim is a query, the build a job. Pairs already claimed are left alone.
 * Failures are logged, never reported to the caller: a delta is an
 * optimization, and the full image is always there.
 */
void ota__delta_request(ota_worker_t *worker, const char *to_release_id, const char *from_release_id);

/**
 * For a stopping process, before it destroys the delta pool: the builds still queued end at once, unbuilt (their
 * rows stay 'building' until the builder's time limit lets a later request claim them again). The build under way
 * finishes. Callable from any thread.
 */
void ota__delta_builder_stop(void);

#endif
