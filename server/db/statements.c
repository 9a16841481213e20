#include "db/statements.h"

#include <stddef.h>

#define MODEL_COLS "id, name, ota_ts(created_at)"

/* An assignment as the API shows it (without events), as one JSON object. */
#define ASSIGNMENT_JSON(a)                                                                                             \
    "json_build_object('id', " a ".id, 'device_id', " a ".device_id, 'release_id', " a ".release_id, 'version', " a    \
    ".version, 'status', " a ".status, 'created_at', ota_ts(" a ".created_at), 'delivered_at', ota_ts(" a              \
    ".delivered_at), 'finished_at', ota_ts(" a ".finished_at), 'reason', " a ".reason, 'deliveries', " a               \
    ".deliveries, 'rollout_id', " a ".rollout_id, 'progress', CASE WHEN " a ".progress_at IS NOT NULL THEN "           \
    "json_build_object('state', " a ".progress_state, 'bytes', " a ".progress_bytes, 'total', " a                      \
    ".progress_total, 'at', ota_ts(" a ".progress_at), 'delta', " a ".progress_delta) END)"

#define ACTIVE_ASSIGNMENT_OF(device)                                                                                   \
    "(SELECT " ASSIGNMENT_JSON("aa") " FROM assignments aa WHERE aa.device_id = " device                              \
    " AND aa.status IN ('pending', 'delivered'))"

/* ble_connected: a relay seen within the last 2 heartbeat intervals ($ble_window seconds, docs/concepts.md). */
#define DEVICE_COLS                                                                                                    \
    "id, serial, model_id, name, firmware_version, ota_ts(last_seen_at), connectivity, recording, "                   \
    "battery_percent, battery_state, "                                                                                 \
    "coalesce(ble_seen_at > now() - make_interval(secs => 2 * current_setting('ota.heartbeat_interval')::int), "       \
    "false), ota_status, ota_ts(created_at), ota_ts_us(created_at), " ACTIVE_ASSIGNMENT_OF("devices.id") ", "         \
    "to_json(tags)"

/* A JSON array of strings ($n, text) as a text[]; SQL NULL gives the empty array. */
#define TEXT_ARRAY_OF(param) "ARRAY(SELECT jsonb_array_elements_text(" param "::jsonb))"

#define ARTIFACTS_OF(source)                                                                                          \
    "(SELECT json_object_agg(kind, json_build_object('size', size, 'crc32', crc32, 'sha256', sha256, 'md5', md5)) "     \
    "FROM " source ")"

#define RELEASE_COLS_OF(r, artifacts)                                                                                  \
    r ".id, " r ".model_id, " r ".version, " r ".notes, " r ".status, ota_ts(" r ".created_at), " artifacts             \
      ", ota_ts_us(" r ".created_at)"

#define RELEASE_COLS RELEASE_COLS_OF("r", ARTIFACTS_OF("artifacts a WHERE a.release_id = r.id"))

#define UPLOAD_OF(id) "(SELECT json_build_object('artifact', artifact, 'size', size, 'object_key', object_key) " \
                      "FROM uploads WHERE id = " id "::uuid)"

#define RELEASE_PAGE "(r.created_at, r.id) < ($1::timestamptz, $2::uuid) ORDER BY r.created_at DESC, r.id DESC LIMIT $3"

#define ASSIGNMENT_COLS "a.id, " ASSIGNMENT_JSON("a") ", ota_ts_us(a.created_at)"
#define ASSIGNMENT_PAGE                                                                                                \
    "(a.created_at, a.id) < ($1::timestamptz, $2::uuid) ORDER BY a.created_at DESC, a.id DESC LIMIT $3"
#define ASSIGNMENT_EVENTS                                                                                              \
    "(SELECT json_agg(json_build_object('at', ota_ts(e.at), 'from', e.from_status, 'to', e.to_status, 'reason', "    \
    "e.reason) ORDER BY e.id) FROM assignment_events e WHERE e.assignment_id = a.id)"

/* A rollout target as GET /v1/rollouts/{id}/devices shows it, and its keyset page in (wave, device) order. */
#define ROLLOUT_TARGET_COLS                                                                                            \
    "t.device_id, d.serial, t.wave, t.state, t.assignment_id, t.attempts, t.reason "                                  \
    "FROM rollout_targets t JOIN devices d ON d.id = t.device_id"
#define ROLLOUT_TARGET_PAGE                                                                                            \
    "AND (t.wave, t.device_id) > ($4::smallint, $5::uuid) ORDER BY t.wave, t.device_id LIMIT $6::integer"

/*
 * The audit log: one mechanism for every write an API key makes.
 *
 * Each such write is one statement (a plain INSERT/UPDATE/DELETE, or a SELECT of the stored function that does
 * it), run on its own, so one statement is one transaction. AUDITED wraps that statement instead of adding an
 * INSERT to each of them by hand: the write becomes the CTE `w`, a data-modifying CTE inserts into audit_log the
 * entry that `entry` (a SELECT over w's rows and the statement's parameters) describes, and the statement answers
 * w's rows unchanged, so handlers read the same columns as before. Hence:
 *   - the entry commits with the write or not at all, whichever connection or thread sent it (the release
 *     upload's final INSERT too, sent from the loop after its job threads stored the artifacts);
 *   - a write that fails with an error (a constraint, a RAISE in a function) rolls back its entry with it;
 *   - a write refused without an error (ota_assign's outcome 'active_exists', a rollout that cannot be paused,
 *     a DELETE that found nothing) makes `entry` select no row: no entry;
 *   - the actor is the statement's last two parameters (API key id, name): http/call.c adds them from the
 *     authenticated call, the command line passes its own name; a NULL name (a device token's call) records
 *     nothing.
 * `w` is read twice (by the entry and by the answer), and is MATERIALIZED, so the write runs exactly once.
 * `ctes` are CTEs the write needs at the top level (data-modifying ones cannot nest): "" or "a AS (...), ".
 * The alternatives: a trigger per table would see rows rather than actions (a pause and a resume are both an
 * UPDATE of rollouts; bulk tagging would log a row per device) and could not tell an operator's write from the
 * engine's or a heartbeat's; a transaction wrapped around the write in the pipeline (BEGIN, write, audit INSERT,
 * COMMIT) could not see a refusal that is an outcome row rather than an error, so each caller would decide again.
 */
#define AUDITED(ctes, write, actor_id, actor_name, entry)                                                              \
    "WITH " ctes "w AS MATERIALIZED (" write "), "                                                                     \
    "audit AS (INSERT INTO audit_log (actor_key_id, actor_name, action, target_type, target_id, details) "             \
    "SELECT " actor_id "::uuid, " actor_name "::text, e.action, e.target_type, e.target_id::text, e.details::jsonb "   \
    "FROM (" entry ") AS e (action, target_type, target_id, details) WHERE " actor_name "::text IS NOT NULL) "         \
    "SELECT * FROM w"

/* An API key as GET /v1/api-keys shows it. */
#define API_KEY_JSON(k)                                                                                                \
    "json_build_object('id', " k ".id, 'name', " k ".name, 'role', " k ".role, 'created_at', ota_ts(" k                \
    ".created_at), 'last_used_at', ota_ts(" k ".last_used_at), 'revoked_at', ota_ts(" k ".revoked_at))"

/* An audit row as GET /v1/audit shows it, its cursor timestamp and id; and its keyset page, newest first. */
#define AUDIT_COLS                                                                                                     \
    "json_build_object('at', ota_ts(l.at), 'actor', json_build_object('api_key_id', l.actor_key_id, 'name', "          \
    "l.actor_name), 'action', l.action, 'target', json_build_object('type', l.target_type, 'id', l.target_id), "       \
    "'details', l.details), ota_ts_us(l.at), l.id FROM audit_log l"
#define AUDIT_PAGE "(l.at, l.id) < ($1::timestamptz, $2::uuid) ORDER BY l.at DESC, l.id DESC LIMIT $3"

/* What one request changed of a device or a release: only the members it gave. */
#define CHANGED(flag, member, value)                                                                                   \
    "(CASE WHEN " flag " THEN jsonb_build_object('" member "', " value ") ELSE '{}'::jsonb END)"

static const ota_stmt_def_t DEFS[OTA_STMT_COUNT] = {
    [OTA_STMT_PING] = {"ping", "SELECT 1", 0},
    /* Every API-key request asks here (no cache), so a revoked key is refused at once on every instance. A read
       only: the last use is written by api_key_used, and only when this says it is a minute old. */
    [OTA_STMT_API_KEY_AUTH] = {"api_key_auth",
                               "SELECT id, name, role, last_used_at IS NULL OR last_used_at < now() - interval "
                               "'1 minute' FROM api_keys WHERE key_hash = $1::bytea AND revoked_at IS NULL",
                               1},
    /* Requests that all saw a stale time each send this; the first writes, the others find it fresh (a
       concurrent one rechecks the condition on the row the first wrote) and write nothing. */
    [OTA_STMT_API_KEY_USED] = {"api_key_used",
                               "UPDATE api_keys SET last_used_at = now() WHERE id = $1::uuid AND "
                               "(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
                               1},
    [OTA_STMT_API_KEY_CREATE] = {"api_key_create",
                                 AUDITED(
                                     "",
                                     "INSERT INTO api_keys AS k (id, name, role, key_hash) "
                                     "VALUES ($1::uuid, $2::text, $3::text, $4::bytea) RETURNING " API_KEY_JSON("k"),
                                     "$5", "$6",
                                     "SELECT 'api_key.create', 'api_key', $1::uuid, "
                                     "jsonb_build_object('name', $2::text, 'role', $3::text) FROM w"),
                                 6, true},
    [OTA_STMT_API_KEY_LIST] = {"api_key_list",
                               "SELECT " API_KEY_JSON("k") " FROM api_keys k ORDER BY k.created_at DESC, k.id DESC", 0},
    /* Revoking a revoked key changes nothing (its first revocation time stays) and records nothing. Two revokes
       at once: the second's UPDATE waits for the first, then finds revoked_at set and updates no row. */
    [OTA_STMT_API_KEY_REVOKE] = {"api_key_revoke",
                                 AUDITED(
                                     "k AS (SELECT id FROM api_keys WHERE id = $1::uuid), "
                                     "r AS (UPDATE api_keys a SET revoked_at = now() WHERE a.id = $1::uuid "
                                     "AND a.revoked_at IS NULL RETURNING a.id, a.name, a.role), ",
                                     /* wakes every event stream of every instance: the revoked key's end */
                                     "SELECT (SELECT count(*) FROM k) AS found, (SELECT count(*) FROM r) AS revoked, "
                                     "(SELECT pg_notify('ota_events', 'api_key') FROM r) AS notified",
                                     "$2", "$3",
                                     "SELECT 'api_key.revoke', 'api_key', r.id, "
                                     "jsonb_build_object('name', r.name, 'role', r.role) FROM r"),
                                 3, true},
    [OTA_STMT_AUDIT_LIST] = {"audit_list", "SELECT " AUDIT_COLS " WHERE " AUDIT_PAGE, 3},
    [OTA_STMT_AUDIT_LIST_ACTION] = {"audit_list_action", "SELECT " AUDIT_COLS " WHERE l.action = $4 AND " AUDIT_PAGE,
                                    4},
    /* A target has few rows: the action, when given too, filters them. */
    [OTA_STMT_AUDIT_LIST_TARGET] = {"audit_list_target",
                                    "SELECT " AUDIT_COLS " WHERE l.target_id = $4 AND ($5::text IS NULL OR "
                                    "l.action = $5) AND " AUDIT_PAGE,
                                    5},
    [OTA_STMT_DEVICE_TOKEN_HASH] = {"device_token_hash", "SELECT token_hash FROM devices WHERE id = $1::uuid", 1},
    /* Whose secret is it? Chooses 403 (a valid secret, not allowed here) over 401 (nobody's). */
    [OTA_STMT_DEVICE_BY_TOKEN] = {"device_by_token",
                                  "SELECT 'device' FROM devices WHERE token_hash = $1::bytea UNION ALL "
                                  "SELECT 'api_key' FROM api_keys WHERE key_hash = $1::bytea AND revoked_at IS NULL "
                                  "LIMIT 1",
                                  1},
    [OTA_STMT_MODEL_CREATE] = {"model_create",
                               AUDITED("", "INSERT INTO models (id, name) VALUES ($1, $2) RETURNING " MODEL_COLS, "$3",
                                       "$4",
                                       "SELECT 'model.create', 'model', w.id, jsonb_build_object('name', w.name) "
                                       "FROM w"),
                               4, true},
    [OTA_STMT_MODEL_LIST] = {"model_list", "SELECT " MODEL_COLS " FROM models ORDER BY id", 0},
    [OTA_STMT_MODEL_GET] = {"model_get", "SELECT " MODEL_COLS " FROM models WHERE id = $1", 1},
    [OTA_STMT_DEVICE_CREATE] =
        {"device_create",
         AUDITED("",
                 "INSERT INTO devices (id, serial, model_id, name, token_hash, firmware_version, "
                 "tags) VALUES ($1::uuid, $2, $3, $4, $5::bytea, $6, " TEXT_ARRAY_OF("$7") ") "
                                                                                           "RETURNING " DEVICE_COLS,
                 "$8", "$9",
                 "SELECT 'device.create', 'device', w.id, jsonb_build_object('serial', w.serial, "
                 "'model', w.model_id) FROM w"),
         9, true},
    [OTA_STMT_DEVICE_GET] = {"device_get", "SELECT " DEVICE_COLS " FROM devices WHERE id = $1::uuid", 1},
    /* The page is chosen by ota_device_page (the fleet filter, planned for its values); only the columns here. */
    [OTA_STMT_DEVICE_PAGE] = {"device_page",
                              "SELECT " DEVICE_COLS " FROM ota_device_page($1::jsonb, $2::timestamptz, $3::uuid, "
                              "$4::integer) AS devices ORDER BY created_at DESC, id DESC",
                              4},
    /* Tags unchanged leave the row's indexed columns as they were, so the update may still be HOT. */
    [OTA_STMT_DEVICE_UPDATE] =
        {"device_update",
         AUDITED("",
                 "UPDATE devices SET name = CASE WHEN $2::boolean THEN $3::text ELSE name END, "
                 "tags = CASE WHEN $4::jsonb IS NULL THEN tags ELSE " TEXT_ARRAY_OF(
                     "$4") " END "
                           "WHERE id = $1::uuid RETURNING " DEVICE_COLS,
                 "$5", "$6",
                 "SELECT 'device.update', 'device', w.id, " CHANGED("$2::boolean", "name", "$3::text") " || " CHANGED(
                     "$4::jsonb IS NOT NULL", "tags", "$4::jsonb") " FROM w"),
         6, true},
    /* One entry for the whole bulk write (no single target): the filter, the change, how many devices matched. */
    [OTA_STMT_DEVICES_TAG] =
        {"devices_tag",
         AUDITED("", "SELECT ota_devices_tag($1::jsonb, " TEXT_ARRAY_OF("$2") ", " TEXT_ARRAY_OF("$3") ") AS matched",
                 "$4", "$5",
                 "SELECT 'device.tag', 'device', NULL, jsonb_build_object('filter', $1::jsonb, "
                 "'add', $2::jsonb, 'remove', $3::jsonb, 'matched', w.matched) FROM w"),
         5, true},
    [OTA_STMT_DEVICE_DELETE] = {"device_delete",
                                AUDITED(
                                    "", "DELETE FROM devices WHERE id = $1::uuid RETURNING id, serial, model_id", "$2",
                                    "$3",
                                    "SELECT 'device.delete', 'device', w.id, jsonb_build_object('serial', w.serial, "
                                    "'model', w.model_id) FROM w"),
                                3, true},
    [OTA_STMT_DEVICE_TOKEN_ROTATE] = {"device_token_rotate",
                                      AUDITED("",
                                              "UPDATE devices SET token_hash = $2::bytea WHERE id = $1::uuid "
                                              "RETURNING id",
                                              "$3", "$4", "SELECT 'device.rotate_token', 'device', w.id, NULL FROM w"),
                                      4, true},
    [OTA_STMT_RELEASE_PRECHECK] = {"release_precheck",
                                   "SELECT EXISTS (SELECT 1 FROM models WHERE id = $1), "
                                   "EXISTS (SELECT 1 FROM releases WHERE model_id = $1 AND version = $2), " UPLOAD_OF(
                                       "$3") ", " UPLOAD_OF("$4"),
                                   4},
    /* Release and artifacts in one statement: both exist, or (on any error) neither. */
    [OTA_STMT_RELEASE_CREATE] = {"release_create",
                                 AUDITED("r AS (INSERT INTO releases (id, model_id, version, notes) "
                                         "VALUES ($1::uuid, $2, $3, $4) RETURNING *), "
                                         "a AS (INSERT INTO artifacts (release_id, kind, object_key, size, crc32, "
                                         "sha256, md5, upload_id) SELECT r.id, x.kind, x.object_key, x.size, x.crc32, "
                                         "x.sha256, x.md5, x.upload_id FROM r, json_to_recordset($5::json) AS "
                                         "x(kind text, object_key text, size bigint, crc32 bigint, sha256 text, "
                                         "md5 text, upload_id uuid) RETURNING *), ",
                                         "SELECT " RELEASE_COLS_OF("r", ARTIFACTS_OF("a")) " FROM r", "$6", "$7",
                                         "SELECT 'release.create', 'release', w.id, jsonb_build_object('model', "
                                         "w.model_id, 'version', w.version) FROM w"),
                                 7, true},
    [OTA_STMT_RELEASE_GET] = {"release_get", "SELECT " RELEASE_COLS " FROM releases r WHERE r.id = $1::uuid", 1},
    [OTA_STMT_RELEASE_LIST] = {"release_list", "SELECT " RELEASE_COLS " FROM releases r WHERE " RELEASE_PAGE, 3},
    [OTA_STMT_RELEASE_LIST_MODEL] = {"release_list_model",
                                     "SELECT " RELEASE_COLS " FROM releases r WHERE r.model_id = $4 AND " RELEASE_PAGE,
                                     4},
    /* Withdrawing cancels the release's pending assignments in the same statement (the subquery runs first). */
    [OTA_STMT_RELEASE_UPDATE] =
        {"release_update",
         AUDITED("",
                 "UPDATE releases r SET notes = CASE WHEN $2::boolean THEN $3::text ELSE "
                 "r.notes END, status = coalesce($4::text, r.status) FROM (SELECT CASE WHEN "
                 "$4::text = 'withdrawn' THEN ota_cancel_pending_of($1::uuid) END) c "
                 "WHERE r.id = $1::uuid RETURNING " RELEASE_COLS,
                 "$5", "$6",
                 "SELECT CASE WHEN $4::text = 'withdrawn' THEN 'release.withdraw' ELSE "
                 "'release.update' END, 'release', w.id, " CHANGED("$2::boolean", "notes", "$3::text") " || " CHANGED(
                     "$4::text IS NOT NULL", "status", "$4::text") " FROM w"),
         6, true},
    /* The object keys are read before the delete (same snapshot) so the objects can be removed after it: the
       artifacts', and those of the deltas into and from the release, whose rows go with it (ON DELETE CASCADE). */
    [OTA_STMT_RELEASE_DELETE] = {"release_delete",
                                 AUDITED("k AS (SELECT object_key FROM artifacts WHERE release_id = $1::uuid "
                                         "UNION ALL SELECT object_key FROM release_deltas WHERE object_key IS NOT NULL "
                                         "AND (to_release_id = $1::uuid OR from_release_id = $1::uuid)), "
                                         "d AS (DELETE FROM releases WHERE id = $1::uuid RETURNING id, model_id, "
                                         "version), ",
                                         "SELECT (SELECT count(*) FROM d), (SELECT json_agg(object_key) FROM k)", "$2",
                                         "$3",
                                         "SELECT 'release.delete', 'release', d.id, jsonb_build_object('model', "
                                         "d.model_id, 'version', d.version) FROM d"),
                                 3, true},
    [OTA_STMT_ARTIFACT_KEY] = {"artifact_key",
                               "SELECT object_key FROM artifacts WHERE release_id = $1::uuid AND kind = $2", 2},
    [OTA_STMT_UPLOAD_CREATE] = {"upload_create",
                                AUDITED("",
                                        "INSERT INTO uploads (id, artifact, size, object_key, expires_at) "
                                        "VALUES ($1::uuid, $2::text, $3::bigint, $4, now() + make_interval(secs => "
                                        "$5::int)) RETURNING id, ota_ts(expires_at)",
                                        "$6", "$7",
                                        "SELECT 'upload.create', 'upload', w.id, jsonb_build_object('artifact', "
                                        "$2::text, 'size', $3::bigint) FROM w"),
                                7, true},
    [OTA_STMT_ASSIGN] = {"assign",
                         AUDITED("",
                                 "SELECT outcome, existing_id, existing_status, version, created_at "
                                 "FROM ota_assign($1::uuid, $2::uuid, $3::uuid, $4::boolean)",
                                 "$5", "$6",
                                 "SELECT 'assignment.create', 'assignment', $1::uuid, jsonb_build_object('device_id', "
                                 "$2::uuid, 'release_id', $3::uuid, 'version', w.version, 'allow_downgrade', "
                                 "$4::boolean) FROM w WHERE w.outcome = 'created'"),
                         6, true},
    [OTA_STMT_ASSIGNMENT_GET] = {"assignment_get",
                                 "SELECT " ASSIGNMENT_COLS ", " ASSIGNMENT_EVENTS
                                 " FROM assignments a WHERE a.id = $1::uuid",
                                 1},
    [OTA_STMT_ASSIGNMENT_LIST] = {"assignment_list",
                                  "SELECT " ASSIGNMENT_COLS " FROM assignments a WHERE " ASSIGNMENT_PAGE, 3},
    [OTA_STMT_ASSIGNMENT_LIST_STATUS] = {"assignment_list_status",
                                         "SELECT " ASSIGNMENT_COLS
                                         " FROM assignments a WHERE a.status = $4 AND " ASSIGNMENT_PAGE,
                                         4},
    [OTA_STMT_ASSIGNMENT_LIST_RELEASE] = {"assignment_list_release",
                                          "SELECT " ASSIGNMENT_COLS
                                          " FROM assignments a WHERE a.release_id = $4::uuid AND " ASSIGNMENT_PAGE,
                                          4},
    [OTA_STMT_ASSIGNMENT_LIST_STATUS_RELEASE] = {"assignment_list_status_release",
                                                 "SELECT " ASSIGNMENT_COLS " FROM assignments a WHERE a.status = $4 "
                                                 "AND a.release_id = $5::uuid AND " ASSIGNMENT_PAGE,
                                                 5},
    [OTA_STMT_ASSIGNMENT_LIST_DEVICE] = {"assignment_list_device",
                                         "SELECT " ASSIGNMENT_COLS
                                         " FROM assignments a WHERE a.device_id = $4::uuid AND " ASSIGNMENT_PAGE,
                                         4},
    /* 0 rows: no such assignment; status unchanged: it was final already. */
    [OTA_STMT_ASSIGNMENT_CANCEL] = {"assignment_cancel",
                                    AUDITED("", "SELECT status, canceled FROM ota_cancel($1::uuid)", "$2", "$3",
                                            "SELECT 'assignment.cancel', 'assignment', $1::uuid, NULL FROM w "
                                            "WHERE w.canceled"),
                                    3, true},
    [OTA_STMT_DEVICE_EXISTS] = {"device_exists", "SELECT 1 FROM devices WHERE id = $1::uuid", 1},
    [OTA_STMT_HEARTBEAT] = {"heartbeat",
                            "SELECT * FROM ota_heartbeat($1::uuid, $2::bytea, $3, $4, $5::boolean, $6::integer, $7, "
                            "$8::uuid, $9, $10, $11::boolean, $12::text[], $13::integer, $14::integer, $15::integer, "
                            "$16::integer, $17)",
                            17},
    [OTA_STMT_WRITE_DEFERRED] = {"write_deferred",
                                 "SELECT ota_write_deferred($1::uuid[], $2::integer[], $3::uuid[], $4::integer[], "
                                 "$5::text[], $6, $7::text[], $8::bigint[], $9::bigint[], $10::integer[], "
                                 "$11::text[], $12::text[])",
                                 12},
    /* The sweep's turn, taken by one instance per interval; upload rows whose URL expired a grace period ago go. */
    [OTA_STMT_OBJECT_SWEEP_TAKE] = {"object_sweep_take",
                                    "WITH t AS (UPDATE object_sweeps SET next_at = now() + make_interval(secs => "
                                    "$1::int) WHERE next_at <= now() RETURNING 1), "
                                    "u AS (DELETE FROM uploads WHERE EXISTS (SELECT 1 FROM t) AND expires_at < now() - "
                                    "make_interval(secs => $2::int) RETURNING 1) "
                                    "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u)",
                                    2},
    /* Of these keys, those no artifact names and no upload still within its URL's life and a grace period. */
    [OTA_STMT_OBJECTS_UNUSED] = {"objects_unused",
                                 "SELECT k FROM json_array_elements_text($1::json) AS k WHERE "
                                 "NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.object_key = k) AND "
                                 "NOT EXISTS (SELECT 1 FROM release_deltas d WHERE d.object_key = k) AND "
                                 "NOT EXISTS (SELECT 1 FROM uploads u WHERE u.object_key = k AND "
                                 "u.expires_at >= now() - make_interval(secs => $2::int))",
                                 2},
    [OTA_STMT_EXPIRE_DELIVERIES] = {"expire_deliveries", "SELECT ota_expire_deliveries($1::integer)", 1},
    /* The phone app's question: the active assignment's release, else every released release of the model
       (the newest by semver precedence is chosen in C, which knows semver). */
    [OTA_STMT_UPDATE_CANDIDATES] =
        {"update_candidates",
         "SELECT 'active', a.id, a.release_id, a.version, d.firmware_version FROM devices d "
         "JOIN assignments a ON a.device_id = d.id AND a.status IN ('pending', 'delivered') "
         "WHERE d.id = $1::uuid "
         "UNION ALL SELECT 'candidate', NULL, r.id, r.version, d.firmware_version "
         "FROM devices d JOIN releases r ON r.model_id = d.model_id AND r.status = 'released' "
         "WHERE d.id = $1::uuid AND NOT EXISTS (SELECT 1 FROM assignments a "
         "WHERE a.device_id = d.id AND a.status IN ('pending', 'delivered'))",
         1},
    [OTA_STMT_RELEASE_GET_UFW] = {"release_get_ufw",
                                  "SELECT " RELEASE_COLS
                                  ", (SELECT object_key FROM artifacts u WHERE u.release_id = r.id "
                                  "AND u.kind = 'ufw') FROM releases r WHERE r.id = $1::uuid",
                                  1},
    [OTA_STMT_ASSIGNMENT_GET_UFW] =
        {"assignment_get_ufw",
         "SELECT " ASSIGNMENT_JSON(
             "a") ", u.object_key, json_build_object('size', u.size, "
                  "'crc32', u.crc32, 'sha256', u.sha256) FROM assignments a LEFT JOIN artifacts u "
                  "ON u.release_id = a.release_id AND u.kind = 'ufw' WHERE a.id = $1::uuid",
         1},
    [OTA_STMT_BLE_TRANSFER] = {"ble_transfer",
                               "SELECT outcome, created_at FROM ota_ble_transfer($1::uuid, $2::uuid, $3::uuid, $4, $5)",
                               5},
    /* Events in the order they became safe to hand out (events.h): only from transactions older than the oldest
     * still running, by (xid, id), after the cursor ($1 xid, $2 id); at most $3. One row even when there is none
     * (xid NULL), whose `held` says whether newer committed events wait behind a running transaction, and
     * `revoked` whether the stream's API key ($4, its hash) has been revoked since it opened. */
    [OTA_STMT_EVENTS_SINCE] = {"events_since",
                               "WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) "
                               "SELECT e.xid::text, e.id, e.kind, e.data, "
                               /* the newest xid of each table, read from the end of its primary key */
                               "(SELECT coalesce((SELECT xid FROM assignment_events ORDER BY xid DESC LIMIT 1) >= "
                               "h.horizon, false) OR coalesce((SELECT xid FROM rollout_events ORDER BY xid DESC "
                               "LIMIT 1) >= h.horizon, false) FROM h), "
                               /* the stream's API key ($4, its hash) was revoked: the stream ends */
                               "NOT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = $4::bytea AND revoked_at IS NULL) "
                               "FROM (SELECT 1) one LEFT JOIN ("
                               "(SELECT e.xid, e.id, 'transition' AS kind, json_build_object('id', e.id, "
                               "'assignment_id', e.assignment_id, 'device_id', e.device_id, 'from', e.from_status, "
                               "'to', e.to_status, 'reason', e.reason, 'at', ota_ts(e.at)) AS data "
                               "FROM assignment_events e WHERE (e.xid, e.id) > ($1::xid8, $2::bigint) "
                               "AND e.xid < (SELECT horizon FROM h) ORDER BY e.xid, e.id LIMIT $3::integer) "
                               "UNION ALL (SELECT e.xid, e.id, 'rollout', json_build_object('id', e.id, 'rollout_id', "
                               "e.rollout_id, 'event', e.event, 'status', e.status, 'wave', e.wave, 'reason', "
                               "e.reason, 'at', ota_ts(e.at)) FROM rollout_events e "
                               "WHERE (e.xid, e.id) > ($1::xid8, $2::bigint) AND e.xid < (SELECT horizon FROM h) "
                               "ORDER BY e.xid, e.id LIMIT $3::integer) ORDER BY 1, 2 LIMIT $3::integer) e ON true "
                               "ORDER BY e.xid, e.id",
                               4},
    /* Where a stream with no Last-Event-ID starts: at the events of the transactions not yet safe to hand out. */
    [OTA_STMT_EVENTS_LAST] = {"events_last", "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", 0},
    /* Fleet-wide numbers, the same whichever instance is scraped. */
    [OTA_STMT_METRICS_ASSIGNMENTS] = {"metrics_assignments",
                                      "SELECT 'status', status, count(*) FROM assignments GROUP BY status "
                                      "UNION ALL SELECT 'transition', to_status, count(*) FROM assignment_events "
                                      "GROUP BY to_status "
                                      "UNION ALL SELECT 'rollouts', status, count(*) FROM rollouts GROUP BY status "
                                      /* targets of the running and paused rollouts, from the counts ledger */
                                      "UNION ALL SELECT 'rollout_targets', c.state, sum(c.n) FROM rollout_counts c "
                                      "JOIN rollouts r ON r.id = c.rollout_id AND r.status IN ('running', 'paused') "
                                      "WHERE c.state <> 'retries' GROUP BY c.state",
                                      0},
    [OTA_STMT_ROLLOUT_CREATE] = {"rollout_create",
                                 AUDITED(
                                     "",
                                     "SELECT outcome, body FROM ota_rollout_create($1::uuid, $2::uuid, $3::text, "
                                     "$4::jsonb, $5::numeric[], $6::integer, $7::numeric, $8::integer, $9::numeric, "
                                     "$10::integer, $11::integer, $12::integer, $13::boolean, $14::boolean)",
                                     "$15", "$16",
                                     "SELECT 'rollout.create', 'rollout', $1::uuid, jsonb_build_object('name', "
                                     "$3::text, 'release_id', $2::uuid, 'start', $13::boolean) FROM w "
                                     "WHERE w.outcome = 'created'"),
                                 16, true},
    [OTA_STMT_ROLLOUT_GET] = {"rollout_get", "SELECT ota_rollout_json($1::uuid)", 1},
    /* Few rows (one per rollout), so one statement with optional filters plans well enough. */
    [OTA_STMT_ROLLOUT_LIST] = {"rollout_list",
                               "SELECT ota_rollout_json(r.id), ota_ts_us(r.created_at), r.id FROM rollouts r "
                               "WHERE ($4::text IS NULL OR r.status = $4) AND ($5::uuid IS NULL OR r.release_id = $5) "
                               "AND (r.created_at, r.id) < ($1::timestamptz, $2::uuid) "
                               "ORDER BY r.created_at DESC, r.id DESC LIMIT $3",
                               5},
    [OTA_STMT_ROLLOUT_ACT] = {"rollout_act",
                              AUDITED("", "SELECT outcome, body FROM ota_rollout_act($1::uuid, $2::text)", "$3", "$4",
                                      "SELECT 'rollout.' || $2::text, 'rollout', $1::uuid, NULL FROM w "
                                      "WHERE w.outcome = 'ok'"),
                              4, true},
    /* A page of targets in (wave, device) order: rows after the cursor ($4 wave, $5 device), within the waves
       $2 .. $3. Each statement walks one index range (rollout_targets_page, rollout_targets_state_page). */
    [OTA_STMT_ROLLOUT_TARGETS] = {"rollout_targets",
                                  "SELECT " ROLLOUT_TARGET_COLS " WHERE t.rollout_id = $1::uuid "
                                  "AND t.wave BETWEEN $2::smallint AND $3::smallint " ROLLOUT_TARGET_PAGE,
                                  6},
    [OTA_STMT_ROLLOUT_TARGETS_STATE] =
        {"rollout_targets_state",
         "SELECT " ROLLOUT_TARGET_COLS " WHERE t.rollout_id = $1::uuid "
         "AND t.state = $7 AND t.wave BETWEEN $2::smallint AND $3::smallint " ROLLOUT_TARGET_PAGE,
         7},
    [OTA_STMT_ROLLOUT_EXISTS] = {"rollout_exists", "SELECT 1 FROM rollouts WHERE id = $1::uuid", 1},
    [OTA_STMT_ROLLOUT_TICK] = {"rollout_tick", "SELECT ota_rollout_tick($1::integer)", 1},
    /* GET /v1/fleet's numbers, grouped as small as it needs them (server/api/fleet_snapshot.h): one scan of the
       devices, made at most every OTA_FLEET_CACHE_MS by each instance, never per request. */
    [OTA_STMT_FLEET_COUNTS] = {"fleet_counts",
                               "SELECT model_id, firmware_version, ota_status, count(*), "
                               "count(*) FILTER (WHERE last_seen_at > now() - interval '24 hours') FROM devices "
                               "GROUP BY model_id, firmware_version, ota_status "
                               "ORDER BY model_id COLLATE \"C\", firmware_version",
                               0},
    /*
     * Deltas (releases/delta_builder.c). Written by the server itself, never by an API key: not audited.
     *
     * The claim: 'building' rows for the pairs into release $1 from $2, or (with $2 NULL) from the model's three
     * newest releases older than $1 by semver precedence; a pair that has a row already is left alone, unless that
     * row is 'building' and older than $3 seconds (its builder died with its instance): then it is claimed again.
     * Answers the claimed pairs only, with what the build needs; started_at, to the microsecond, is the claim's
     * token, so that a builder whose claim was taken over cannot finish the row.
     *
     * The three newest by counting, for each older release, the newer ones (semver precedence is a comparison
     * function, ota_semver_cmp, not an order). Counting compares every pair, so it runs only on the releases whose
     * MAJOR.MINOR.PATCH (k) is at least the third largest: any other has three with a larger one, all newer. That
     * keeps a model with thousands of releases (nightly builds) linear, unless hundreds of pre-releases share
     * its newest versions.
     */
    [OTA_STMT_DELTA_CLAIM] =
        {"delta_claim",
         "WITH t AS (SELECT r.id, r.model_id, r.version, a.object_key, a.size FROM releases r "
         "JOIN artifacts a ON a.release_id = r.id AND a.kind = 'bin' WHERE r.id = $1::uuid), "
         "o AS (SELECT r.id, r.version, a.object_key, a.size, a.sha256, "
         "(regexp_match(r.version, '^[vV]?([0-9]+)\\.([0-9]+)\\.([0-9]+)'))::numeric[] AS k "
         "FROM t JOIN releases r ON r.id <> t.id AND "
         "CASE WHEN $2::uuid IS NULL THEN r.model_id = t.model_id AND ota_semver_cmp(r.version, t.version) < 0 "
         "ELSE r.id = $2::uuid END JOIN artifacts a ON a.release_id = r.id AND a.kind = 'bin'), "
         "p AS (SELECT * FROM o WHERE o.k >= (SELECT min(top.k) FROM (SELECT k FROM o ORDER BY k DESC LIMIT 3) top)), "
         "f AS (SELECT * FROM p WHERE $2::uuid IS NOT NULL OR "
         "(SELECT count(*) FROM p n WHERE ota_semver_cmp(n.version, p.version) > 0) < 3), "
         "c AS (INSERT INTO release_deltas AS d (to_release_id, from_release_id, from_sha256, status) "
         "SELECT t.id, f.id, f.sha256, 'building' FROM t, f ON CONFLICT (to_release_id, from_release_id) DO UPDATE "
         "SET started_at = now(), finished_at = NULL, error = NULL WHERE d.status = 'building' AND "
         "d.started_at < now() - make_interval(secs => $3::int) RETURNING d.from_release_id, d.started_at) "
         "SELECT t.id, c.from_release_id, f.object_key, f.size, f.sha256, t.object_key, t.size, "
         "ota_ts_us(c.started_at) "
         "FROM c JOIN f ON f.id = c.from_release_id, t",
         3},
    /* The build's end, for the claim it made ($3, its started_at) only; 0 rows: the claim is no longer its. */
    [OTA_STMT_DELTA_FINISH] = {"delta_finish",
                               "UPDATE release_deltas SET status = $4, size = $5::bigint, sha256 = $6, "
                               "object_key = $7, error = left($8, 500), finished_at = now() "
                               "WHERE to_release_id = $1::uuid AND from_release_id = $2::uuid AND "
                               "status = 'building' AND started_at = $3::timestamptz RETURNING 1",
                               8},
    /* No row: no such release; one row with a NULL delta: none yet. Sorted by the from version in C. */
    [OTA_STMT_DELTA_LIST] = {"delta_list",
                             "SELECT d.from_release_id, f.version, d.size, d.sha256, d.status, d.error, "
                             "ota_ts(d.started_at), ota_ts(d.finished_at) FROM releases r "
                             "LEFT JOIN (release_deltas d JOIN releases f ON f.id = d.from_release_id) "
                             "ON d.to_release_id = r.id WHERE r.id = $1::uuid",
                             1},
};

const ota_stmt_def_t *ota__stmt_def(ota_stmt_t id)
{
    return (id >= 0 && id < OTA_STMT_COUNT) ? &DEFS[id] : NULL;
}
