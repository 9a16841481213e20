#ifndef OTA_SERVER_DB_STATEMENTS_H
#define OTA_SERVER_DB_STATEMENTS_H

/*
 * Every SQL statement the server runs at request time, as named prepared
 * statements. Each connection prepares them all when it connects; callers
 * name a statement by its id and pass text parameters.
 */

typedef enum ota_stmt {
    OTA_STMT_PING,
    OTA_STMT_API_KEY_ROLE,        /* $1 key hash → role */
    OTA_STMT_DEVICE_TOKEN_HASH,   /* $1 device id → token_hash */
    OTA_STMT_DEVICE_BY_TOKEN,     /* $1 token hash → id */
    OTA_STMT_MODEL_CREATE,        /* $1 id, $2 name → model */
    OTA_STMT_MODEL_LIST,          /* → models */
    OTA_STMT_MODEL_GET,           /* $1 id → model */
    OTA_STMT_DEVICE_CREATE,       /* $1 id, $2 serial, $3 model, $4 name, $5 token hash, $6 version → device */
    OTA_STMT_DEVICE_GET,          /* $1 id → device */
    OTA_STMT_DEVICE_LIST,         /* $1 cursor ts, $2 cursor id, $3 limit → devices */
    OTA_STMT_DEVICE_LIST_MODEL,   /* ... $4 model */
    OTA_STMT_DEVICE_LIST_STATUS,  /* ... $4 ota_status */
    OTA_STMT_DEVICE_LIST_MODEL_STATUS, /* ... $4 model, $5 ota_status */
    OTA_STMT_DEVICE_DELETE,       /* $1 id → (1 row when deleted) */
    OTA_STMT_DEVICE_TOKEN_ROTATE, /* $1 id, $2 new token hash → (1 row when found) */
    OTA_STMT_COUNT
} ota_stmt_t;

/** Columns of a model row, in order. */
enum { OTA_MODEL_COL_ID, OTA_MODEL_COL_NAME, OTA_MODEL_COL_CREATED_AT };

/** Columns of a device row, in order. */
enum {
    OTA_DEVICE_COL_ID,
    OTA_DEVICE_COL_SERIAL,
    OTA_DEVICE_COL_MODEL,
    OTA_DEVICE_COL_NAME,
    OTA_DEVICE_COL_FIRMWARE_VERSION,
    OTA_DEVICE_COL_LAST_SEEN_AT,
    OTA_DEVICE_COL_CONNECTIVITY,
    OTA_DEVICE_COL_RECORDING,
    OTA_DEVICE_COL_BATTERY_PERCENT,
    OTA_DEVICE_COL_BATTERY_STATE,
    OTA_DEVICE_COL_BLE_CONNECTED,
    OTA_DEVICE_COL_OTA_STATUS,
    OTA_DEVICE_COL_CREATED_AT,
    OTA_DEVICE_COL_CURSOR_TS, /**< created_at with microseconds, for the keyset cursor */
};

/** A statement's name, SQL and parameter count. */
typedef struct ota_stmt_def {
    const char *name;
    const char *sql;
    int nparams;
} ota_stmt_def_t;

/** The definition of statement `id`. */
const ota_stmt_def_t *ota__stmt_def(ota_stmt_t id);

#endif
