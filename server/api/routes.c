#include "api/api.h"
#include "api/events.h"
#include "heartbeat/heartbeat.h"

const ota_route_t ota__routes[] = {
    /* The portal's files: public, as a sign-in page must be; the data they show comes from the API, with a key. */
    {"GET", "/", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, ota__api_portal_index, "portal.index"},
    {"GET", "/portal/{name}", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, ota__api_portal_file, "portal.file"},
    {"GET", "/healthz", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, ota__api_healthz, "healthz"},
    {"GET", "/readyz", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, ota__api_readyz, "readyz"},
    /* Open, as Prometheus scrapes expect, unless OTA_METRICS_TOKEN is set (checked by the handler): it shows counts,
       never data. The shipped nginx does not serve it; Prometheus scrapes each instance directly. */
    {"GET", "/metrics", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, ota__api_metrics, "metrics"},

    {"POST", "/v1/models", OTA_ACCESS_API, OTA_BODY_JSON, ota__api_models_create, "models.create"},
    {"GET", "/v1/models", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_models_list, "models.list"},
    {"GET", "/v1/models/{id}", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_models_get, "models.get"},

    {"POST", "/v1/devices", OTA_ACCESS_API, OTA_BODY_JSON, ota__api_devices_create, "devices.create"},
    {"GET", "/v1/devices", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_devices_list, "devices.list"},
    {"POST", "/v1/devices/tags", OTA_ACCESS_ADMIN, OTA_BODY_JSON_BULK, ota__api_devices_tag, "devices.tag"},
    {"GET", "/v1/devices/{uuid}", OTA_ACCESS_DEVICE_OR_API, OTA_BODY_NONE, ota__api_devices_get, "devices.get"},
    {"PATCH", "/v1/devices/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_JSON, ota__api_devices_update, "devices.update"},
    {"DELETE", "/v1/devices/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_devices_delete, "devices.delete"},
    {"POST", "/v1/devices/{uuid}/token", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_devices_rotate_token,
     "devices.rotate_token"},

    {"POST", "/v1/devices/{uuid}/assignments", OTA_ACCESS_ADMIN, OTA_BODY_JSON, ota__api_assignments_create,
     "assignments.create"},
    {"GET", "/v1/devices/{uuid}/assignments", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_device_assignments_list,
     "assignments.list_device"},
    {"POST", "/v1/devices/{uuid}/heartbeat", OTA_ACCESS_PUBLIC, OTA_BODY_JSON, ota__api_heartbeat, "heartbeat"},
    /* The relay checks the token inside its one query, as the heartbeat does. */
    {"POST", "/v1/devices/{uuid}/relay", OTA_ACCESS_PUBLIC, OTA_BODY_JSON, ota__api_relay, "relay"},
    {"GET", "/v1/devices/{uuid}/update", OTA_ACCESS_DEVICE, OTA_BODY_NONE, ota__api_device_update, "update"},
    {"POST", "/v1/devices/{uuid}/ble-transfers", OTA_ACCESS_DEVICE, OTA_BODY_JSON, ota__api_ble_transfers_create,
     "ble_transfers.create"},
    {"GET", "/v1/fleet", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_fleet, "fleet"},
    {"GET", "/v1/assignments", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_assignments_list, "assignments.list"},
    {"GET", "/v1/assignments/{uuid}", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_assignments_get, "assignments.get"},
    {"POST", "/v1/assignments/{uuid}/cancel", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_assignments_cancel,
     "assignments.cancel"},
    {"GET", "/v1/events", OTA_ACCESS_API, OTA_BODY_NONE, ota__events_subscribe, "events"},
    {"GET", "/v1/whoami", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_whoami, "whoami"},
    {"GET", "/v1/signing-key", OTA_ACCESS_PUBLIC, OTA_BODY_NONE, ota__api_signing_key, "signing_key"},

    {"GET", "/v1/api-keys", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_api_keys_list, "api_keys.list"},
    {"POST", "/v1/api-keys", OTA_ACCESS_ADMIN, OTA_BODY_JSON, ota__api_api_keys_create, "api_keys.create"},
    {"DELETE", "/v1/api-keys/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_api_keys_revoke, "api_keys.revoke"},
    {"GET", "/v1/audit", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_audit_list, "audit.list"},

    {"POST", "/v1/releases", OTA_ACCESS_ADMIN, OTA_BODY_UPLOAD, ota__api_releases_create, "releases.create"},
    {"GET", "/v1/releases", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_releases_list, "releases.list"},
    {"GET", "/v1/releases/{uuid}", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_releases_get, "releases.get"},
    {"PATCH", "/v1/releases/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_JSON, ota__api_releases_update, "releases.update"},
    {"DELETE", "/v1/releases/{uuid}", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_releases_delete, "releases.delete"},
    {"GET", "/v1/releases/{uuid}/artifacts/{kind}", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_releases_artifact,
     "releases.artifact"},
    {"GET", "/v1/releases/{uuid}/deltas", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_releases_deltas, "releases.deltas"},
    {"POST", "/v1/uploads", OTA_ACCESS_ADMIN, OTA_BODY_JSON, ota__api_uploads_create, "uploads.create"},

    /* Bulk: a filter may name 10,000 device ids. */
    {"POST", "/v1/rollouts", OTA_ACCESS_ADMIN, OTA_BODY_JSON_BULK, ota__api_rollouts_create, "rollouts.create"},
    {"GET", "/v1/rollouts", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_rollouts_list, "rollouts.list"},
    {"GET", "/v1/rollouts/{uuid}", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_rollouts_get, "rollouts.get"},
    {"GET", "/v1/rollouts/{uuid}/devices", OTA_ACCESS_API, OTA_BODY_NONE, ota__api_rollout_targets_list,
     "rollouts.devices"},
    {"POST", "/v1/rollouts/{uuid}/pause", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_rollouts_pause, "rollouts.pause"},
    {"POST", "/v1/rollouts/{uuid}/resume", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_rollouts_resume,
     "rollouts.resume"},
    {"POST", "/v1/rollouts/{uuid}/advance", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_rollouts_advance,
     "rollouts.advance"},
    {"POST", "/v1/rollouts/{uuid}/cancel", OTA_ACCESS_ADMIN, OTA_BODY_NONE, ota__api_rollouts_cancel,
     "rollouts.cancel"},
};

const size_t ota__routes_count = sizeof ota__routes / sizeof ota__routes[0];
