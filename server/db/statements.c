#include "db/statements.h"

#include <stddef.h>

#define MODEL_COLS "id, name, ota_ts(created_at)"

/* ble_connected: a relay seen within the last 2 heartbeat intervals ($ble_window seconds, see API.md). */
#define DEVICE_COLS                                                                                                    \
    "id, serial, model_id, name, firmware_version, ota_ts(last_seen_at), connectivity, recording, "                   \
    "battery_percent, battery_state, "                                                                                 \
    "coalesce(ble_seen_at > now() - make_interval(secs => 2 * current_setting('ota.heartbeat_interval')::int), "       \
    "false), ota_status, ota_ts(created_at), ota_ts_us(created_at)"

/* Keyset page, newest first: rows strictly after the cursor ($1, $2). */
#define DEVICE_PAGE "(created_at, id) < ($1::timestamptz, $2::uuid) ORDER BY created_at DESC, id DESC LIMIT $3"

static const ota_stmt_def_t DEFS[OTA_STMT_COUNT] = {
    [OTA_STMT_PING] = {"ping", "SELECT 1", 0},
    [OTA_STMT_API_KEY_ROLE] = {"api_key_role", "SELECT role FROM api_keys WHERE key_hash = $1::bytea", 1},
    [OTA_STMT_DEVICE_TOKEN_HASH] = {"device_token_hash", "SELECT token_hash FROM devices WHERE id = $1::uuid", 1},
    [OTA_STMT_DEVICE_BY_TOKEN] = {"device_by_token", "SELECT id FROM devices WHERE token_hash = $1::bytea", 1},
    [OTA_STMT_MODEL_CREATE] = {"model_create", "INSERT INTO models (id, name) VALUES ($1, $2) RETURNING " MODEL_COLS,
                               2},
    [OTA_STMT_MODEL_LIST] = {"model_list", "SELECT " MODEL_COLS " FROM models ORDER BY id", 0},
    [OTA_STMT_MODEL_GET] = {"model_get", "SELECT " MODEL_COLS " FROM models WHERE id = $1", 1},
    [OTA_STMT_DEVICE_CREATE] = {"device_create",
                                "INSERT INTO devices (id, serial, model_id, name, token_hash, firmware_version) "
                                "VALUES ($1::uuid, $2, $3, $4, $5::bytea, $6) RETURNING " DEVICE_COLS,
                                6},
    [OTA_STMT_DEVICE_GET] = {"device_get", "SELECT " DEVICE_COLS " FROM devices WHERE id = $1::uuid", 1},
    [OTA_STMT_DEVICE_LIST] = {"device_list", "SELECT " DEVICE_COLS " FROM devices WHERE " DEVICE_PAGE, 3},
    [OTA_STMT_DEVICE_LIST_MODEL] = {"device_list_model",
                                    "SELECT " DEVICE_COLS " FROM devices WHERE model_id = $4 AND " DEVICE_PAGE, 4},
    [OTA_STMT_DEVICE_LIST_STATUS] = {"device_list_status",
                                     "SELECT " DEVICE_COLS " FROM devices WHERE ota_status = $4 AND " DEVICE_PAGE, 4},
    [OTA_STMT_DEVICE_LIST_MODEL_STATUS] = {"device_list_model_status",
                                           "SELECT " DEVICE_COLS
                                           " FROM devices WHERE model_id = $4 AND ota_status = $5 AND " DEVICE_PAGE,
                                           5},
    [OTA_STMT_DEVICE_DELETE] = {"device_delete", "DELETE FROM devices WHERE id = $1::uuid RETURNING id", 1},
    [OTA_STMT_DEVICE_TOKEN_ROTATE] = {"device_token_rotate",
                                      "UPDATE devices SET token_hash = $2::bytea WHERE id = $1::uuid RETURNING id", 2},
};

const ota_stmt_def_t *ota__stmt_def(ota_stmt_t id)
{
    return (id >= 0 && id < OTA_STMT_COUNT) ? &DEFS[id] : NULL;
}
