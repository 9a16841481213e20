#ifndef OTA_SERVER_API_API_H
#define OTA_SERVER_API_API_H

#include <stddef.h>

#include "http/call.h"
#include "http/router.h"

/*
 * The API's route table and its handlers, one file per resource.
 * Every handler ends in exactly one ota__respond_* call (see http/respond.h).
 */

/** Every route the server serves. */
extern const ota_route_t ota__routes[];
/** How many entries ota__routes has. */
extern const size_t ota__routes_count;

/* portal.c: GET / and GET /portal/{name} */
void ota__api_portal_index(ota_call_t *call);
void ota__api_portal_file(ota_call_t *call);

/* health.c */
void ota__api_healthz(ota_call_t *call);
void ota__api_readyz(ota_call_t *call);

/* models.c */
void ota__api_models_create(ota_call_t *call);
void ota__api_models_list(ota_call_t *call);
void ota__api_models_get(ota_call_t *call);

/* devices.c */
void ota__api_devices_create(ota_call_t *call);
void ota__api_devices_list(ota_call_t *call);
void ota__api_devices_get(ota_call_t *call);
void ota__api_devices_update(ota_call_t *call);
void ota__api_devices_delete(ota_call_t *call);
void ota__api_devices_rotate_token(ota_call_t *call);

/* device_tags.c */
void ota__api_devices_tag(ota_call_t *call);

/* releases.c */
void ota__api_releases_list(ota_call_t *call);
void ota__api_releases_get(ota_call_t *call);
void ota__api_releases_update(ota_call_t *call);
void ota__api_releases_delete(ota_call_t *call);
void ota__api_releases_artifact(ota_call_t *call);
/** The API's JSON of the release in `row` of a result with the OTA_RELEASE_COL_* columns. New reference. */
json_t *ota__release_json(const PGresult *res, int row);
/** Deletes the objects named by `keys` (a JSON array of strings, stolen) on a job thread. */
void ota__releases_delete_objects(ota_worker_t *worker, json_t *keys);

/* release_deltas.c */
void ota__api_releases_deltas(ota_call_t *call);

/* release_create.c */
void ota__api_releases_create(ota_call_t *call);

/* assignments.c */
void ota__api_assignments_create(ota_call_t *call);
void ota__api_assignments_get(ota_call_t *call);
void ota__api_assignments_list(ota_call_t *call);
void ota__api_device_assignments_list(ota_call_t *call);
void ota__api_assignments_cancel(ota_call_t *call);
/** Every status an assignment can have (assignments.status, migrations/0001_schema.sql), NULL-terminated. */
extern const char *const ota__assignment_statuses[];
/** Whether `s` is one of ota__assignment_statuses. */
bool ota__assignment_status_valid(const char *s);

/* rollouts.c */
void ota__api_rollouts_create(ota_call_t *call);
void ota__api_rollouts_list(ota_call_t *call);
void ota__api_rollouts_get(ota_call_t *call);
void ota__api_rollouts_pause(ota_call_t *call);
void ota__api_rollouts_resume(ota_call_t *call);
void ota__api_rollouts_advance(ota_call_t *call);
void ota__api_rollouts_cancel(ota_call_t *call);

/* rollout_targets.c */
void ota__api_rollout_targets_list(ota_call_t *call);

/* ble.c */
void ota__api_device_update(ota_call_t *call);
void ota__api_relay(ota_call_t *call);
void ota__api_ble_transfers_create(ota_call_t *call);
/**
 * {size, crc32, sha256} of an artifact (`artifact`, stolen) with a fresh presigned GET of `object_key` added as
 * "url" and "url_expires_at". New reference (json null when the URL cannot be made).
 */
json_t *ota__ufw_link(ota_call_t *call, const char *object_key, json_t *artifact);

/* signing_key.c */
void ota__api_signing_key(ota_call_t *call);

/* api_keys.c */
void ota__api_api_keys_create(ota_call_t *call);
void ota__api_api_keys_list(ota_call_t *call);
void ota__api_api_keys_revoke(ota_call_t *call);

/* audit.c */
void ota__api_audit_list(ota_call_t *call);

/* whoami.c */
void ota__api_whoami(ota_call_t *call);

/* fleet.c */
void ota__api_fleet(ota_call_t *call);

/* metrics.c */
void ota__api_metrics(ota_call_t *call);

/* uploads.c */
void ota__api_uploads_create(ota_call_t *call);

#endif
