#ifndef OTA_SERVER_DB_STATEMENTS_H
#define OTA_SERVER_DB_STATEMENTS_H

#include <stdbool.h>

/*
 * Every SQL statement the server runs at request time, as named prepared
 * statements. Each connection prepares them all when it connects; callers
 * name a statement by its id and pass text parameters.
 *
 * The writes an API key can make are audited (ota_stmt_def_t.audited): the
 * statement also records the write in audit_log, in the same transaction
 * (the why is at AUDITED in statements.c). Such a statement takes two more
 * parameters than its comment below lists, last: the actor's API key id and
 * name. Callers on the event loop pass only the listed ones and
 * ota__call_query adds the actor from the call (http/call.h).
 */

typedef enum ota_stmt {
    OTA_STMT_PING,
    OTA_STMT_API_KEY_AUTH,        /* $1 key hash → id, name, role, last use stale (bool) of the unrevoked key */
    OTA_STMT_API_KEY_USED,        /* $1 key id → (notes the key's use when the last is a minute old) */
    OTA_STMT_DEVICE_TOKEN_HASH,   /* $1 device id → token_hash */
    OTA_STMT_DEVICE_BY_TOKEN,     /* $1 secret hash → 'device' or 'api_key' when it is someone's */
    OTA_STMT_MODEL_CREATE,        /* $1 id, $2 name → model */
    OTA_STMT_MODEL_LIST,          /* → models */
    OTA_STMT_MODEL_GET,           /* $1 id → model */
    OTA_STMT_DEVICE_CREATE,       /* $1 id, $2 serial, $3 model, $4 name, $5 token hash, $6 version, $7 tags (JSON
                                     array or NULL) → device */
    OTA_STMT_DEVICE_GET,          /* $1 id → device */
    OTA_STMT_DEVICE_PAGE,         /* $1 fleet filter (JSON), $2 cursor ts, $3 cursor id, $4 limit → devices */
    OTA_STMT_DEVICE_UPDATE,       /* $1 id, $2 set name (bool), $3 name, $4 tags (JSON array, NULL: unchanged) → device */
    OTA_STMT_DEVICES_TAG,         /* $1 fleet filter (JSON), $2 tags to add, $3 to remove (JSON arrays) → matched */
    OTA_STMT_DEVICE_DELETE,       /* $1 id → (1 row when deleted) */
    OTA_STMT_DEVICE_TOKEN_ROTATE, /* $1 id, $2 new token hash → (1 row when found) */
    OTA_STMT_RELEASE_PRECHECK,    /* $1 model, $2 version, $3 bin upload id, $4 ufw upload id → precheck row */
    OTA_STMT_RELEASE_CREATE,      /* $1 id, $2 model, $3 version, $4 notes, $5 artifacts (JSON array) → release */
    OTA_STMT_RELEASE_GET,         /* $1 id → release */
    OTA_STMT_RELEASE_LIST,        /* $1 cursor ts, $2 cursor id, $3 limit → releases */
    OTA_STMT_RELEASE_LIST_MODEL,  /* ... $4 model */
    OTA_STMT_RELEASE_UPDATE,      /* $1 id, $2 set notes (bool), $3 notes, $4 status or NULL → release */
    OTA_STMT_RELEASE_DELETE,      /* $1 id → deleted count, object keys of its artifacts and deltas (JSON array) */
    OTA_STMT_ARTIFACT_KEY,        /* $1 release id, $2 kind → object_key */
    OTA_STMT_UPLOAD_CREATE,       /* $1 id, $2 artifact, $3 size, $4 object key, $5 ttl seconds → id, expires_at */
    OTA_STMT_ASSIGN,                 /* $1 id, $2 device, $3 release, $4 allow downgrade → outcome, existing id/status,
                                        version, created_at */
    OTA_STMT_ASSIGNMENT_GET,         /* $1 id → assignment cols + events (JSON array) */
    OTA_STMT_ASSIGNMENT_LIST,        /* $1 cursor ts, $2 cursor id, $3 limit → assignments */
    OTA_STMT_ASSIGNMENT_LIST_STATUS, /* ... $4 status */
    OTA_STMT_ASSIGNMENT_LIST_RELEASE, /* ... $4 release id */
    OTA_STMT_ASSIGNMENT_LIST_STATUS_RELEASE, /* ... $4 status, $5 release id */
    OTA_STMT_ASSIGNMENT_LIST_DEVICE, /* ... $4 device id */
    OTA_STMT_ASSIGNMENT_CANCEL,      /* $1 id → status after, canceled count */
    OTA_STMT_DEVICE_EXISTS,          /* $1 id → one row when it exists */
    OTA_STMT_HEARTBEAT,              /* see migrations/functions/ota_heartbeat.sql */
    OTA_STMT_WRITE_DEFERRED,         /* $1 device uuid[], $2 integer[] ages in ms, $3 assignment uuid[], $4 integer[]
                                        re-deliveries, $5 text[] signatures, $6 key, $7..$10 progress states, bytes,
                                        totals, ages in ms → rows (ota_write_deferred) */
    OTA_STMT_EXPIRE_DELIVERIES,      /* $1 apply timeout seconds → how many failed */
    OTA_STMT_UPDATE_CANDIDATES,      /* $1 device → rows (kind 'active'|'candidate', assignment id, release id, version, firmware) */
    OTA_STMT_RELEASE_GET_UFW,        /* $1 release id → release cols + ufw object key */
    OTA_STMT_ASSIGNMENT_GET_UFW,     /* $1 assignment id → assignment JSON, ufw object key, ufw artifact JSON */
    OTA_STMT_BLE_TRANSFER,           /* $1 id, $2 device, $3 release, $4 state, $5 error → outcome, created_at */
    OTA_STMT_EVENTS_SINCE,           /* $1 after xid, $2 after event id, $3 limit → rows (xid, id, kind, JSON, held) */
    OTA_STMT_EVENTS_LAST,            /* → the oldest running transaction: where a new stream starts */
    OTA_STMT_METRICS_ASSIGNMENTS,    /* → rows (kind 'status'|'transition'|'rollouts'|'rollout_targets', state, count)
                                        for /metrics */
    OTA_STMT_ROLLOUT_CREATE,         /* see migrations/functions/ota_rollout_create.sql → outcome, body */
    OTA_STMT_ROLLOUT_GET,            /* $1 id → the rollout's JSON (NULL when none) */
    OTA_STMT_ROLLOUT_LIST,           /* $1 cursor ts, $2 cursor id, $3 limit, $4 status|NULL, $5 release|NULL → rows */
    OTA_STMT_ROLLOUT_ACT,            /* $1 id, $2 pause|resume|advance|cancel → outcome, body */
    OTA_STMT_ROLLOUT_TARGETS,        /* $1 id, $2..$3 waves, $4 cursor wave, $5 cursor device, $6 limit → targets */
    OTA_STMT_ROLLOUT_TARGETS_STATE,  /* ... $7 state */
    OTA_STMT_ROLLOUT_EXISTS,         /* $1 id → one row when it exists */
    OTA_STMT_ROLLOUT_TICK,           /* $1 batch → work done (0: nothing to do) */
    OTA_STMT_FLEET_COUNTS,           /* → rows (model, firmware version, ota_status, devices, seen in 24 h) */
    OTA_STMT_API_KEY_CREATE,         /* audited: $1 id, $2 name, $3 role, $4 key hash → the key's JSON */
    OTA_STMT_API_KEY_LIST,           /* → every key's JSON, newest first */
    OTA_STMT_API_KEY_REVOKE,         /* audited: $1 id → found (0|1), revoked now (0|1); wakes the event streams */
    OTA_STMT_AUDIT_LIST,             /* $1 cursor ts, $2 cursor id, $3 limit → audit rows */
    OTA_STMT_AUDIT_LIST_ACTION,      /* ... $4 action */
    OTA_STMT_AUDIT_LIST_TARGET,      /* ... $4 target id, $5 action or NULL */
    OTA_STMT_OBJECT_SWEEP_TAKE,      /* $1 interval seconds, $2 grace seconds → taken (0|1), upload rows removed */
    OTA_STMT_OBJECTS_UNUSED,         /* $1 object keys (JSON array), $2 grace seconds → rows (key) no row needs */
    OTA_STMT_DELTA_CLAIM,            /* $1 to release, $2 from release or NULL (the three newest older), $3 time limit
                                        seconds → claimed rows (OTA_DELTA_CLAIM_COL_*) */
    OTA_STMT_DELTA_FINISH,           /* $1 to, $2 from, $3 claim token, $4 status, $5 size, $6 sha256, $7 object key,
                                        $8 error → one row when the claim was still this build's */
    OTA_STMT_DELTA_LIST,             /* $1 release → rows (OTA_DELTA_COL_*); none: no such release */
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
    OTA_DEVICE_COL_ACTIVE_ASSIGNMENT, /**< JSON of the active assignment, or NULL */
    OTA_DEVICE_COL_TAGS,              /**< JSON array of the tags */
};

/** Columns of OTA_STMT_API_KEY_AUTH. */
enum { OTA_API_KEY_AUTH_COL_ID, OTA_API_KEY_AUTH_COL_NAME, OTA_API_KEY_AUTH_COL_ROLE, OTA_API_KEY_AUTH_COL_STALE };

/** Columns of OTA_STMT_API_KEY_REVOKE. */
enum { OTA_API_KEY_REVOKE_COL_FOUND, OTA_API_KEY_REVOKE_COL_REVOKED };

/** Columns of an audit row (OTA_STMT_AUDIT_LIST*). */
enum { OTA_AUDIT_COL_JSON, OTA_AUDIT_COL_CURSOR_TS, OTA_AUDIT_COL_ID };

/** The most parameters a statement takes (the heartbeat's). */
#define OTA_STMT_PARAMS_MAX 17

/** Columns of an assignment row. */
enum { OTA_ASSIGNMENT_COL_ID, OTA_ASSIGNMENT_COL_JSON, OTA_ASSIGNMENT_COL_CURSOR_TS, OTA_ASSIGNMENT_COL_EVENTS };

/** Columns of the heartbeat row (ota_heartbeat's OUT parameters). */
enum {
    OTA_HB_COL_OUTCOME,
    OTA_HB_COL_DEFERRED,
    OTA_HB_COL_DELIVER,
    OTA_HB_COL_ASSIGNMENT_ID,
    OTA_HB_COL_ASSIGNMENT_STATUS,
    OTA_HB_COL_RELEASE_ID,
    OTA_HB_COL_MODEL,
    OTA_HB_COL_VERSION,
    OTA_HB_COL_OBJECT_KEY,
    OTA_HB_COL_SIZE,
    OTA_HB_COL_CRC32,
    OTA_HB_COL_SHA256,
    OTA_HB_COL_DEVICE_ID,     /**< the device the manifest is made for */
    OTA_HB_COL_NOT_AFTER,     /**< the manifest's deadline, RFC 3339 UTC (fixed at the first delivery) */
    OTA_HB_COL_DOWNGRADE,     /**< 't' when the assignment was made with allow_downgrade */
    OTA_HB_COL_SIGNATURE,     /**< the manifest's stored signature, or NULL */
    OTA_HB_COL_SIGNATURE_KEY, /**< base64 public key that made it, or NULL */
    OTA_HB_COL_COUNTED,       /**< 't' when this delivery is counted already (the first); else the caller counts it */
    OTA_HB_COL_PRESENCE_DUE,  /**< 't' when nothing was written and last_seen_at is older than the presence interval */
    OTA_HB_COL_DELTA_KEY,           /**< the object key of a ready delta from the image the device runs, or NULL */
    OTA_HB_COL_DELTA_SIZE,          /**< its size */
    OTA_HB_COL_DELTA_SHA256,        /**< its SHA-256 */
    OTA_HB_COL_DELTA_NEED_FROM,     /**< a release whose delta to this one nobody asked for yet, or NULL */
    OTA_HB_COL_DELTA_SIGNATURE,     /**< the stored signature of the manifest with that delta, or NULL */
    OTA_HB_COL_DELTA_SIGNATURE_KEY, /**< base64 public key that made it, or NULL */
};

/** Columns of a release row, in order. */
enum {
    OTA_RELEASE_COL_ID,
    OTA_RELEASE_COL_MODEL,
    OTA_RELEASE_COL_VERSION,
    OTA_RELEASE_COL_NOTES,
    OTA_RELEASE_COL_STATUS,
    OTA_RELEASE_COL_CREATED_AT,
    OTA_RELEASE_COL_ARTIFACTS, /**< JSON object kind → {size, crc32, sha256, md5}, or NULL */
    OTA_RELEASE_COL_CURSOR_TS,
};

/** Columns of the release precheck row. */
enum {
    OTA_PRECHECK_COL_MODEL_EXISTS,
    OTA_PRECHECK_COL_VERSION_TAKEN,
    OTA_PRECHECK_COL_BIN_UPLOAD, /**< JSON {artifact, size, object_key} of the named upload, or NULL */
    OTA_PRECHECK_COL_UFW_UPLOAD,
};

/** The column of a one-column result (role, token_hash, object_key, a count, ...). */
enum { OTA_COL_ONLY };

/** Columns of OTA_STMT_ASSIGN (ota_assign()'s result). */
enum {
    OTA_ASSIGN_COL_OUTCOME,         /**< 'created', 'active_exists', 'no_device', ... */
    OTA_ASSIGN_COL_EXISTING_ID,     /**< with 'active_exists': the active assignment */
    OTA_ASSIGN_COL_EXISTING_STATUS, /**< with 'active_exists': its status */
    OTA_ASSIGN_COL_VERSION,         /**< with 'created': the release's version; with 'downgrade': the device's */
    OTA_ASSIGN_COL_CREATED_AT,      /**< with 'created' */
};

/** Columns of OTA_STMT_ASSIGNMENT_CANCEL. */
enum { OTA_CANCEL_COL_STATUS, OTA_CANCEL_COL_CANCELED };

/** Columns of OTA_STMT_RELEASE_DELETE. */
enum { OTA_RELEASE_DELETE_COL_DELETED, OTA_RELEASE_DELETE_COL_OBJECT_KEYS };

/** Columns of OTA_STMT_UPLOAD_CREATE. */
enum { OTA_UPLOAD_COL_ID, OTA_UPLOAD_COL_EXPIRES_AT };

/** Columns of OTA_STMT_UPDATE_CANDIDATES. */
enum {
    OTA_CANDIDATE_COL_KIND, /**< 'active' (the active assignment's release) or 'candidate' */
    OTA_CANDIDATE_COL_ASSIGNMENT_ID,
    OTA_CANDIDATE_COL_RELEASE_ID,
    OTA_CANDIDATE_COL_VERSION,
    OTA_CANDIDATE_COL_FIRMWARE, /**< the device's firmware version, on every row */
};

/** Columns of OTA_STMT_RELEASE_GET_UFW: a release row, then its .ufw object key (or NULL). */
enum { OTA_RELEASE_UFW_COL_OBJECT_KEY = OTA_RELEASE_COL_CURSOR_TS + 1 };

/** Columns of OTA_STMT_ASSIGNMENT_GET_UFW. */
enum { OTA_ASSIGNMENT_UFW_COL_JSON, OTA_ASSIGNMENT_UFW_COL_OBJECT_KEY, OTA_ASSIGNMENT_UFW_COL_ARTIFACT };

/** Columns of OTA_STMT_BLE_TRANSFER. */
enum { OTA_BLE_TRANSFER_COL_OUTCOME, OTA_BLE_TRANSFER_COL_CREATED_AT };

/** Columns of an OTA_STMT_EVENTS_SINCE row; a lone row with a NULL xid means no event. */
enum {
    OTA_EVENT_COL_XID,
    OTA_EVENT_COL_ID,
    OTA_EVENT_COL_KIND /**< 'transition' or 'rollout' */,
    OTA_EVENT_COL_JSON,
    OTA_EVENT_COL_HELD,   /**< 't' when committed events wait for an older transaction to end */
    OTA_EVENT_COL_REVOKED /**< 't' when the stream's API key has been revoked */
};

/** Columns of OTA_STMT_ROLLOUT_CREATE and OTA_STMT_ROLLOUT_ACT. */
enum { OTA_ROLLOUT_OUTCOME_COL, OTA_ROLLOUT_BODY_COL };

/** Columns of an OTA_STMT_ROLLOUT_LIST row. */
enum { OTA_ROLLOUT_COL_JSON, OTA_ROLLOUT_COL_CURSOR_TS, OTA_ROLLOUT_COL_ID };

/** Columns of an OTA_STMT_ROLLOUT_TARGETS row. */
enum {
    OTA_TARGET_COL_DEVICE_ID,
    OTA_TARGET_COL_SERIAL,
    OTA_TARGET_COL_WAVE,
    OTA_TARGET_COL_STATE,
    OTA_TARGET_COL_ASSIGNMENT_ID,
    OTA_TARGET_COL_ATTEMPTS,
    OTA_TARGET_COL_REASON,
};

/** Columns of the OTA_STMT_EVENTS_LAST row. */
enum { OTA_EVENTS_LAST_COL_XID };

/** Columns of an OTA_STMT_METRICS_ASSIGNMENTS row. */
enum {
    OTA_METRICS_COL_KIND,  /**< 'status', 'transition', 'rollouts' or 'rollout_targets' */
    OTA_METRICS_COL_STATE, /**< the status, the transition's target status, a rollout status, a target state */
    OTA_METRICS_COL_COUNT,
};

/** Columns of an OTA_STMT_FLEET_COUNTS row: one group of devices, rows ordered by model (bytes), then version. */
enum {
    OTA_FLEET_COL_MODEL,
    OTA_FLEET_COL_VERSION, /**< NULL for devices that never reported one */
    OTA_FLEET_COL_STATUS,
    OTA_FLEET_COL_DEVICES,
    OTA_FLEET_COL_SEEN, /**< of them, those seen within the last 24 hours */
};

/** Columns of an OTA_STMT_DELTA_CLAIM row: one claimed pair. */
enum {
    OTA_DELTA_CLAIM_COL_TO_ID,
    OTA_DELTA_CLAIM_COL_FROM_ID,
    OTA_DELTA_CLAIM_COL_FROM_KEY, /**< the from release's bin object */
    OTA_DELTA_CLAIM_COL_FROM_SIZE,
    OTA_DELTA_CLAIM_COL_FROM_SHA256,
    OTA_DELTA_CLAIM_COL_TO_KEY, /**< the to release's bin object */
    OTA_DELTA_CLAIM_COL_TO_SIZE,
    OTA_DELTA_CLAIM_COL_TOKEN, /**< started_at to the microsecond: OTA_STMT_DELTA_FINISH's $3 */
};

/** Columns of an OTA_STMT_DELTA_LIST row; FROM_ID is NULL on the one row of a release without deltas. */
enum {
    OTA_DELTA_COL_FROM_ID,
    OTA_DELTA_COL_FROM_VERSION,
    OTA_DELTA_COL_SIZE,
    OTA_DELTA_COL_SHA256,
    OTA_DELTA_COL_STATUS,
    OTA_DELTA_COL_ERROR,
    OTA_DELTA_COL_STARTED_AT,
    OTA_DELTA_COL_FINISHED_AT,
};

/** A statement's name, SQL and parameter count. */
typedef struct ota_stmt_def {
    const char *name;
    const char *sql;
    int nparams;  /**< with the actor's two when audited */
    bool audited; /**< its last two parameters are the actor: API key id (or NULL) and name (NULL: not recorded) */
} ota_stmt_def_t;

/** The definition of statement `id`. */
const ota_stmt_def_t *ota__stmt_def(ota_stmt_t id);

#endif
