/*
 * POST /v1/devices/{id}/heartbeat: the hot path.
 *
 * Why it looks like this: a million devices heartbeating once a minute are
 * ~17,000 requests a second, so a heartbeat costs one database round trip.
 * The stored function ota_heartbeat() (migrations/functions/) checks the
 * token's hash, records the reported state, applies or fails the active
 * assignment, decides delivery or deferral, and returns what the manifest
 * needs, all in one transaction, and writes nothing when nothing changed.
 * Here remain only what must not be in the database: validating the body,
 * presigning the URL (pure computation), the manifest's signature (made once
 * per assignment, then stored), keeping stale presence and re-delivery
 * counts to write in bulk (deferred_writes.h) and writing the answer. Only
 * when the token is refused does a second query choose 401 or 403.
 * BENCHMARKS.md has the measurements behind each of these choices.
 */
#include "heartbeat/heartbeat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "heartbeat/deferred_table.h"
#include "heartbeat/deferred_writes.h"
#include "heartbeat/presign_cache.h"
#include "http/auth.h"
#include "http/respond.h"
#include "http/validate.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/metrics.h"
#include "ota/manifest.h"
#include "ota/semver.h"
#include "ota/text.h"
#include "core/secret.h"
#include "releases/delta_builder.h"
#include "core/utc_time.h"

/* A download progress report (ota.state downloading, verifying or installing, with bytes and total). */
typedef struct progress {
    int state; /* an index in ota__progress_states, or -1: none reported */
    int delta; /* an index in ota__progress_deltas, or -1: a full download */
    int64_t bytes, total;
    char assignment_id[OTA_UUID_LEN + 1];
} progress_t;

typedef struct heartbeat_state {
    char hash[OTA_SECRET_HASH_PG_LEN];
    ota_heartbeat_done_fn done;
    progress_t progress; /* kept with the assignment if it is the one the answer delivers */
    char firmware_sha256[OTA_MANIFEST_SHA256_HEX_LEN + 1]; /* the image the device runs, "" when not reported */
} heartbeat_state_t;

static const char *const CONNECTIVITY[] = {"wifi", "cellular", NULL};
static const char *const BATTERY_STATES[] = {"usb", "high", "normal", "low", "dead", NULL};
static const char *const OTA_STATES[] = {"downloading", "verifying", "installing", "failed", NULL};

static bool one_of(const char *s, const char *const *allowed)
{
    for (; *allowed != NULL; allowed++)
        if (strcmp(s, *allowed) == 0)
            return true;
    return false;
}

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* The index of `s` among the `n` words of `words`, or -1. */
static int index_of(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, words[i]) == 0)
            return (int)i;
    return -1;
}

/* The reported values, as text parameters of ota_heartbeat() (NULL = not reported). */
typedef struct report {
    ota_semver_t version;
    const char *connectivity, *battery_state, *ota_assignment, *ota_state, *ota_error, *ota_delta, *firmware_sha256;
    char recording[6], battery_percent[8], assignment_id[OTA_UUID_LEN + 1];
    bool has_recording, has_percent;
    json_int_t bytes, total; /* -1: not reported */
} report_t;

/* 64 lower-case hex digits: the form of every SHA-256 the server stores, so that equal images compare equal. */
static bool is_sha256_hex(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == OTA_MANIFEST_SHA256_HEX_LEN;
}

static void read_battery(ota_validate_t *v, report_t *r)
{
    json_int_t percent;
    ota_validate_t sub;
    if (!ota__validate_object(v, "battery", &sub))
        return;
    r->battery_state = ota__validate_string(&sub, "state", false);
    if (ota__validate_integer(&sub, "percent", false, &percent)) {
        if (percent < 0 || percent > 100)
            ota__validate_fail(v, "battery.percent", "must be from 0 to 100");
        snprintf(r->battery_percent, sizeof r->battery_percent, "%d", (int)percent);
        r->has_percent = true;
    }
    if (r->battery_state != NULL && !one_of(r->battery_state, BATTERY_STATES))
        ota__validate_fail(v, "battery.state", "must be usb, high, normal, low or dead");
    ota__validate_end_object(v, "battery", &sub);
}

static void read_ota(ota_validate_t *v, report_t *r)
{
    ota_validate_t sub;
    json_int_t n;
    if (!ota__validate_object(v, "ota", &sub))
        return;
    const char *id = ota__validate_string(&sub, "assignment_id", false);
    r->ota_state = ota__validate_string(&sub, "state", false);
    r->ota_error = ota__validate_string(&sub, "error", false);
    r->ota_delta = ota__validate_string(&sub, "delta", false);
    r->bytes = r->total = -1;
    if (ota__validate_integer(&sub, "bytes", false, &n))
        r->bytes = n;
    if (ota__validate_integer(&sub, "total", false, &n))
        r->total = n;
    if (id != NULL && !ota__uuid_parse(id, strlen(id), r->assignment_id))
        ota__validate_fail(v, "ota.assignment_id", "must be a UUID");
    else if (id != NULL)
        r->ota_assignment = r->assignment_id;
    if (r->ota_state != NULL && !one_of(r->ota_state, OTA_STATES))
        ota__validate_fail(v, "ota.state", "must be downloading, verifying, installing or failed");
    if (r->ota_delta != NULL && index_of(r->ota_delta, ota__progress_deltas, ELEMS(ota__progress_deltas)) < 0)
        ota__validate_fail(v, "ota.delta", "must be used or failed");
    ota__validate_end_object(v, "ota", &sub);
}

static bool read_report(ota_call_t *call, report_t *r)
{
    ota_validate_t v;
    memset(r, 0, sizeof *r);
    ota__validate_init(&v, call->body);
    const char *firmware = ota__validate_string(&v, "firmware_version", true);
    r->connectivity = ota__validate_string(&v, "connectivity", false);
    r->firmware_sha256 = ota__validate_string(&v, "firmware_sha256", false);
    json_t *recording = call->body != NULL ? json_object_get(call->body, "recording") : NULL;
    if (firmware != NULL && ota_semver_parse(firmware, strlen(firmware), &r->version) != OTA_OK)
        ota__validate_fail(&v, "firmware_version", "must be a semantic version");
    if (r->firmware_sha256 != NULL && !is_sha256_hex(r->firmware_sha256))
        ota__validate_fail(&v, "firmware_sha256", "must be 64 lower-case hex digits");
    if (r->connectivity != NULL && !one_of(r->connectivity, CONNECTIVITY))
        ota__validate_fail(&v, "connectivity", "must be wifi or cellular");
    if (recording != NULL && !json_is_null(recording)) {
        if (!json_is_boolean(recording) && v.type_error[0] == '\0')
            snprintf(v.type_error, sizeof v.type_error, "field 'recording' must be a boolean");
        snprintf(r->recording, sizeof r->recording, "%s", json_is_true(recording) ? "true" : "false");
        r->has_recording = json_is_boolean(recording);
    }
    read_battery(&v, r);
    read_ota(&v, r);
    return ota__validate_done(&v, call);
}

/*
 * The manifest's signature. Ed25519 is deterministic and the signed fields
 * never change for an assignment (not_after included: it is fixed at the
 * first delivery), so the first delivery signs (~50 µs of
 * CPU with the thread's signer, the costliest step of a heartbeat) and the
 * signature is stored with this server's public key, in the next batch of
 * deferred_writes.h; re-deliveries reuse it. Another key's (a rotated key)
 * is replaced. The device verifies every manifest, so a bad stored
 * signature can stop a delivery but never pass one. A manifest with a
 * delta signs other bytes (the delta's fields too), so it has a signature
 * of its own, stored the same way with the SHA-256 of the delta it covers:
 * a device that comes to run another image gets another delta, and a new
 * signature.
 */
static ota_err_t sign_manifest(ota_call_t *call, const PGresult *res, ota_manifest_t *m)
{
    const ota_signing_key_t *key = call->worker->signing_key;
    int sig_col = m->has_delta ? OTA_HB_COL_DELTA_SIGNATURE : OTA_HB_COL_SIGNATURE;
    int key_col = m->has_delta ? OTA_HB_COL_DELTA_SIGNATURE_KEY : OTA_HB_COL_SIGNATURE_KEY;
    const char *stored = PQgetvalue(res, 0, sig_col);
    if (strcmp(PQgetvalue(res, 0, key_col), key->public_base64) == 0 &&
        strlen(stored) == OTA_MANIFEST_SIGNATURE_B64_LEN) {
        memcpy(m->signature, stored, OTA_MANIFEST_SIGNATURE_B64_LEN + 1);
        return OTA_OK;
    }
    ota_err_t rc = ota_manifest_sign_with(m, call->worker->signer);
    if (rc == OTA_OK && m->has_delta)
        ota__deferred_writes_delta_signature(call->worker->deferred_writes, m->assignment_id, m->signature,
                                             m->delta.sha256);
    else if (rc == OTA_OK)
        ota__deferred_writes_signature(call->worker->deferred_writes, m->assignment_id, m->signature);
    return rc;
}

static ota_err_t presign_get(void *storage, const char *key, time_t now, int ttl, char *url, size_t cap)
{
    return ota__storage_presign(storage, "GET", key, now, ttl, url, cap);
}

/*
 * Copies column `col` of the heartbeat's row into `field` (`cap` bytes). False when it does not fit: a value cut
 * short could still look valid (a model name's prefix), and the manifest would sign it.
 */
static bool copy_column(const PGresult *res, int col, char *field, size_t cap)
{
    size_t n = (size_t)PQgetlength(res, 0, col);
    if (n >= cap)
        return false;
    memcpy(field, PQgetvalue(res, 0, col), n + 1);
    return true;
}

/*
 * The delta from the image the device runs (it said which in firmware_sha256), with its own presigned URL. The
 * manifest with a delta has its own stored signature (sign_manifest), kept for the delta it was made with.
 */
static ota_err_t add_delta(ota_call_t *call, const PGresult *res, time_t now, ota_manifest_t *m)
{
    const ota_config_t *cfg = call->worker->cfg;
    const heartbeat_state_t *st = call->state;
    m->has_delta = true;
    memcpy(m->delta.from_sha256, st->firmware_sha256, sizeof m->delta.from_sha256);
    if (!copy_column(res, OTA_HB_COL_DELTA_SHA256, m->delta.sha256, sizeof m->delta.sha256))
        return OTA_ERR_INVALID;
    m->delta.size = strtoull(PQgetvalue(res, 0, OTA_HB_COL_DELTA_SIZE), NULL, 10);
    memcpy(m->delta.url_expires_at, m->url_expires_at, sizeof m->delta.url_expires_at);
    return ota__presign_cache_get(call->worker->presign_cache, presign_get, call->worker->storage,
                                  PQgetvalue(res, 0, OTA_HB_COL_DELTA_KEY), now, cfg->url_ttl, m->delta.url,
                                  sizeof m->delta.url);
}

/* The JSON text of a delivery's manifest (a fresh presigned URL, signed fields) into `json`. */
static ota_err_t manifest_json(ota_call_t *call, const PGresult *res, char json[OTA_MANIFEST_JSON_MAX], size_t *len)
{
    const ota_config_t *cfg = call->worker->cfg;
    ota_manifest_t m;
    time_t now = time(NULL);

    memset(&m, 0, sizeof m);
    memcpy(m.artifact, "bin", sizeof "bin");
    if (!copy_column(res, OTA_HB_COL_ASSIGNMENT_ID, m.assignment_id, sizeof m.assignment_id) ||
        !copy_column(res, OTA_HB_COL_DEVICE_ID, m.device_id, sizeof m.device_id) ||
        !copy_column(res, OTA_HB_COL_NOT_AFTER, m.not_after, sizeof m.not_after) ||
        !copy_column(res, OTA_HB_COL_RELEASE_ID, m.release_id, sizeof m.release_id) ||
        !copy_column(res, OTA_HB_COL_MODEL, m.model, sizeof m.model) ||
        !copy_column(res, OTA_HB_COL_VERSION, m.version, sizeof m.version) ||
        !copy_column(res, OTA_HB_COL_SHA256, m.sha256, sizeof m.sha256)) {
        ota_log_error("assignment %s: a manifest field is too long", PQgetvalue(res, 0, OTA_HB_COL_ASSIGNMENT_ID));
        return OTA_ERR_INVALID;
    }
    m.size = strtoull(PQgetvalue(res, 0, OTA_HB_COL_SIZE), NULL, 10);
    m.crc32 = (uint32_t)strtoul(PQgetvalue(res, 0, OTA_HB_COL_CRC32), NULL, 10);
    m.downgrade = PQgetvalue(res, 0, OTA_HB_COL_DOWNGRADE)[0] == 't';
    ota__utc_text(now + cfg->url_ttl, m.url_expires_at);
    ota_err_t rc =
        ota__presign_cache_get(call->worker->presign_cache, presign_get, call->worker->storage,
                               PQgetvalue(res, 0, OTA_HB_COL_OBJECT_KEY), now, cfg->url_ttl, m.url, sizeof m.url);
    if (rc == OTA_OK && !PQgetisnull(res, 0, OTA_HB_COL_DELTA_KEY))
        rc = add_delta(call, res, now, &m);
    if (rc == OTA_OK)
        rc = sign_manifest(call, res, &m);
    if (rc == OTA_OK)
        rc = ota_manifest_encode(&m, json, OTA_MANIFEST_JSON_MAX, len);
    if (rc != OTA_OK)
        ota_log_error("cannot make the manifest of assignment %s: %s", m.assignment_id, ota_strerror(rc));
    return rc;
}

/*
 * Written as text, not built with jansson: `ota` is the manifest's JSON from
 * the codec, `deferred` one of the database's fixed words and `extra_member`
 * JSON text already, so nothing here needs escaping, and the hot path makes
 * no allocation for it beyond the request's pool. Every piece is copied
 * whole (the manifest, most of a delivering answer, through snprintf's "%s"
 * cost ~3,000 instructions).
 */
void ota__heartbeat_respond(ota_call_t *call, const char *ota, size_t ota_len, const char *deferred,
                            const char *extra_name, const char *extra_json)
{
    static const size_t FIXED =
        sizeof "{\"server_time\":\"\",\"heartbeat_interval_s\":,\"ota\":,\"deferred\":\"\",\"\":}";
    char now[OTA_UTC_TEXT_LEN + 1];
    const char *interval = call->worker->cfg->heartbeat_interval_text;
    if (ota == NULL) {
        ota = "null";
        ota_len = strlen("null");
    }
    ota__utc_text(time(NULL), now);
    size_t cap = FIXED + strlen(now) + strlen(interval) + ota_len + (deferred != NULL ? strlen(deferred) : 4) +
                 (extra_name != NULL ? strlen(extra_name) + strlen(extra_json) : 0);
    ota_text_t body;
    ota_text_fixed(&body, h2o_mem_alloc_pool(&call->req->pool, cap), cap);
    ota_text_puts(&body, "{\"server_time\":\"");
    ota_text_puts(&body, now);
    ota_text_puts(&body, "\",\"heartbeat_interval_s\":");
    ota_text_puts(&body, interval);
    ota_text_puts(&body, ",\"ota\":");
    ota_text_put(&body, ota, ota_len);
    ota_text_puts(&body, ",\"deferred\":");
    if (deferred != NULL) {
        ota_text_put(&body, "\"", 1);
        ota_text_puts(&body, deferred);
        ota_text_put(&body, "\"", 1);
    } else {
        ota_text_puts(&body, "null");
    }
    if (extra_name != NULL) {
        ota_text_puts(&body, ",\"");
        ota_text_puts(&body, extra_name);
        ota_text_puts(&body, "\":");
        ota_text_puts(&body, extra_json);
    }
    ota_text_put(&body, "}", 1);
    if (body.err != OTA_OK) { /* `cap` counts every piece: a bug, not an input, lands here */
        ota__respond_error(call, 500, "internal", NULL, "heartbeat answer over its size");
        return;
    }
    ota__respond_json_text(call, 200, body.base, body.len);
}

/* Whether `s` is one of the reasons ota_heartbeat() gives for deferring. */
static bool known_deferral(const char *s)
{
    static const char *const REASONS[] = {"recording", "battery", "ble_connected", "rollout_pacing", NULL};
    return one_of(s, REASONS);
}

/*
 * The device's report of its download, kept (in bulk, with the re-delivery counts) when it is about the
 * assignment this heartbeat delivers: a report about another is stale, and one without bytes and total says
 * nothing to show.
 */
static void keep_progress(ota_call_t *call, const char *delivered)
{
    const progress_t *p = &((heartbeat_state_t *)call->state)->progress;
    if (p->state >= 0 && strcmp(p->assignment_id, delivered) == 0)
        ota__deferred_writes_progress(call->worker->deferred_writes, p->assignment_id, p->state, p->delta, p->bytes,
                                      p->total);
}

/* Notes in `p` the progress `r` reports, if it reports one (state other than failed, with bytes and total). */
static void note_progress(const report_t *r, progress_t *p)
{
    p->state = -1;
    if (r->ota_assignment == NULL || r->ota_state == NULL || r->bytes < 0 || r->total < 0)
        return;
    p->state = index_of(r->ota_state, ota__progress_states, ELEMS(ota__progress_states));
    p->delta = r->ota_delta != NULL ? index_of(r->ota_delta, ota__progress_deltas, ELEMS(ota__progress_deltas)) : -1;
    p->bytes = r->bytes;
    p->total = r->total;
    memcpy(p->assignment_id, r->ota_assignment, OTA_UUID_LEN + 1);
}

static void on_heartbeat(ota_call_t *call, const PGresult *res)
{
    const char *deferred = PQgetisnull(res, 0, OTA_HB_COL_DEFERRED) ? NULL : PQgetvalue(res, 0, OTA_HB_COL_DEFERRED);
    if (deferred != NULL && !known_deferral(deferred)) {
        ota__respond_error(call, 500, "internal", NULL, "unknown deferral");
        return;
    }
    char manifest[OTA_MANIFEST_JSON_MAX];
    size_t len = 0;
    bool deliver = PQgetvalue(res, 0, OTA_HB_COL_DELIVER)[0] == 't';
    if (deliver && manifest_json(call, res, manifest, &len) != OTA_OK) {
        /* The delivery is counted but no manifest leaves: the device gets one on its next heartbeat. */
        ota__respond_error(call, 500, "internal", NULL, "cannot make the manifest");
        return;
    }
    if (deliver && PQgetvalue(res, 0, OTA_HB_COL_COUNTED)[0] != 't')
        ota__deferred_writes_redelivery(call->worker->deferred_writes, PQgetvalue(res, 0, OTA_HB_COL_ASSIGNMENT_ID));
    if (deliver)
        keep_progress(call, PQgetvalue(res, 0, OTA_HB_COL_ASSIGNMENT_ID));
    if (deliver && !PQgetisnull(res, 0, OTA_HB_COL_DELTA_NEED_FROM))
        ota__delta_request(call->worker, PQgetvalue(res, 0, OTA_HB_COL_RELEASE_ID),
                           PQgetvalue(res, 0, OTA_HB_COL_DELTA_NEED_FROM));
    if (deliver && !PQgetisnull(res, 0, OTA_HB_COL_DELTA_KEY))
        ota__metrics_delta_offered();
    if (PQgetvalue(res, 0, OTA_HB_COL_PRESENCE_DUE)[0] == 't')
        ota__deferred_writes_presence(call->worker->deferred_writes, call->params[0]);
    ota__metrics_heartbeat(false, deliver, deferred);
    ota__heartbeat_respond(call, deliver ? manifest : NULL, len, deferred, NULL, NULL);
}

/* The row of an accepted token goes on to `done`; a refused one gets 401 or 403 here. */
static void on_row(ota_call_t *call, const PGresult *res)
{
    heartbeat_state_t *st = call->state;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, OTA_HB_COL_OUTCOME), "ok") != 0) {
        ota__auth_reject_device_token(call, st->hash);
        return;
    }
    st->done(call, res);
}

void ota__api_heartbeat(ota_call_t *call)
{
    ota__heartbeat_record(call, false, on_heartbeat);
}

void ota__heartbeat_record(ota_call_t *call, bool relay, ota_heartbeat_done_fn done)
{
    char secret[OTA_SECRET_MAX];
    report_t r;
    if (!ota__auth_bearer(call->req, secret)) {
        ota__auth_unauthorized(call, "missing or malformed Authorization: Bearer header");
        return;
    }
    heartbeat_state_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    st->done = done;
    call->state = st;
    call->state_free = free;
    ota__secret_hash_pg(secret, strlen(secret), st->hash);
    if (!read_report(call, &r))
        return;
    note_progress(&r, &st->progress);
    if (r.firmware_sha256 != NULL)
        memcpy(st->firmware_sha256, r.firmware_sha256, sizeof st->firmware_sha256);

    const ota_config_t *cfg = call->worker->cfg;
    const char *params[] = {call->params[0],
                            st->hash,
                            r.version.text,
                            r.connectivity,
                            r.has_recording ? r.recording : NULL,
                            r.has_percent ? r.battery_percent : NULL,
                            r.battery_state,
                            r.ota_assignment,
                            r.ota_state,
                            r.ota_error,
                            relay ? "true" : "false",
                            cfg->blocked_battery,
                            cfg->heartbeat_interval_text,
                            cfg->apply_timeout_text,
                            cfg->presence_interval_text,
                            cfg->verify_window_text,
                            r.firmware_sha256};
    ota__call_query(call, OTA_STMT_HEARTBEAT, params, on_row);
}
