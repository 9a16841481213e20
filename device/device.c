/*
 * libota-device: the public API (include/ota/device.h).
 *
 * Why apply() is shaped like this: the image is checked twice over before
 * the device may run it. The manifest's signature (with the key pinned at
 * provisioning) is checked before a byte is downloaded, so a forged manifest
 * costs no bandwidth; the image's size, CRC-32 and SHA-256 are checked after
 * the download, against the signed manifest. Only then does the image move
 * into the inactive slot, and the switch is one atomic rename of state.json:
 * a crash before it leaves the old slot running, after it the new one.
 *
 * Why a delta is only ever a shortcut: the image it makes is checked as a
 * downloaded one, and any failure on its way (base, download, its hash,
 * applying it, the image's checks) falls back to the full image in the same
 * call, so a device never stays behind because of a delta, and never runs
 * an image that the signed manifest does not describe.
 *
 * What the server hears: every heartbeat carries the running version (the
 * server marks an assignment applied when it equals the assignment's) and
 * the running image's SHA-256 when known (what the server offers a delta
 * from), and, while an update is under way, ota {assignment_id, state
 * "downloading", bytes, total, and delta "used" or "failed" when a delta
 * was tried}; after a failed check, once, ota {state "failed", error}.
 *
 * Why the new slot starts on trial: checks prove the image is the one that
 * was signed, not that it runs. As A/B bootloaders do it, the switched-to
 * slot gets one boot, counted on disk before it runs; the firmware confirms
 * itself once it works, and a slot found unconfirmed at the next boot is
 * given up for the other one, which still holds what ran before. The
 * server learns of it from the old version in the next heartbeat.
 */
#include "ota/device.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "answer.h"
#include "delta.h"
#include "download.h"
#include "http.h"
#include "state.h"
#include "util.h"
#include "verify.h"

#define DEFAULT_INTERVAL_S 60L

/* What the next heartbeat says about an update. */
typedef struct report {
    bool set;
    char assignment_id[OTA_MANIFEST_UUID_LEN + 1];
    const char *state; /* "downloading" or "failed" (static strings) */
    uint64_t bytes, total;
    const char *delta; /* "used" or "failed" (static strings), or NULL: no delta */
    char error[OTA_DEVICE_ERROR_MAX + 1];
} report_t;

struct ota_device {
    char dir[4096];
    ota__state_t state;
    int lock_fd;
    CURL *api; /* heartbeats */
    CURL *dl;  /* downloads */

    char connectivity[16];
    bool recording;
    int battery_percent;
    char battery_state[16];
    bool report_battery_state;

    ota_device_faults_t faults;
    int max_retries;
    long backoff_initial_ms, backoff_max_ms, timeout_ms;
    ota_device_progress_cb on_progress;
    void *progress_arg;
    ota_device_log_cb on_log;
    void *log_arg;

    long interval_s;
    int64_t last_beat_ms;
    report_t report;
    bool cut_done;     /* the cut_after fault strikes once */
    uint64_t received; /* download bytes received, for cut_after */
    char errmsg[512];
};

/* What one apply() call carries through the download's hooks. */
typedef struct apply_ctx {
    ota_device_t *dev;
    ota_manifest_t manifest;    /* as delivered; url replaced by fresh ones */
    ota_device_answer_t answer; /* scratch for the heartbeats made meanwhile */
    ota_device_result_t *res;   /* the call's result: what is downloading (delta or image), its total */
    uint64_t bytes;
    bool ended; /* the server stopped delivering it */
    char ended_why[160];
} apply_ctx_t;

static const char *const CONNECTIVITIES[] = {"wifi", "cellular", NULL};
static const char *const BATTERY_STATES[] = {"usb", "high", "normal", "low", "dead", NULL};

static bool one_of(const char *s, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

__attribute__((format(printf, 2, 3))) static void dev_log(const ota_device_t *dev, const char *fmt, ...)
{
    char line[640];
    va_list ap;
    if (dev->on_log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    dev->on_log(dev->log_arg, line);
}

__attribute__((format(printf, 3, 4))) static ota_err_t fail(ota_device_t *dev, ota_err_t rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dev->errmsg, sizeof dev->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- boot ------------------------------------------------------------------------ */

/*
 * The bootloader's turn, on the state just read from disk (ota__state_boot). The boot of a slot on trial is
 * counted on disk before that slot runs, so a firmware that never confirms itself, whether it hangs, crashes or
 * restarts, is given up at the boot after. Sets *fell_back to whether it was.
 */
static ota_err_t bootloader(ota_device_t *dev, bool *fell_back, char *why, size_t cap)
{
    ota__state_t next = dev->state;
    *fell_back = false;
    if (!next.trial)
        return OTA_OK;
    bool gave_up = ota__state_boot(&next);
    ota_err_t rc = ota__state_save(dev->dir, &next, why, cap);
    if (rc != OTA_OK) {
        if (rc == OTA_ERR_NOMEM)
            snprintf(why, cap, "out of memory");
        return rc;
    }
    if (gave_up)
        dev_log(dev, "boot: slot %c (%s) is on trial and did not confirm itself; falling back to slot %c (%s)",
                dev->state.active_slot, dev->state.version, next.active_slot, next.version);
    else
        dev_log(dev, "boot: slot %c (%s) is on trial (boot %d of %d); it must confirm itself before the next",
                next.active_slot, next.version, next.trial_boots, OTA__TRIAL_BOOTS);
    dev->state = next;
    *fell_back = gave_up;
    return OTA_OK;
}

/* A boot: the device comes back with what is on disk, nothing of memory, and the bootloader picks the slot. */
static ota_err_t boot(ota_device_t *dev, bool *fell_back, char *why, size_t cap)
{
    ota_err_t rc = ota__state_load(dev->dir, &dev->state, why, cap);
    *fell_back = false;
    if (rc == OTA_ERR_TOO_LARGE)
        rc = OTA_ERR_INVALID; /* no state.json is that big */
    return rc != OTA_OK ? rc : bootloader(dev, fell_back, why, cap);
}

void ota_device_config_init(ota_device_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->conditions.battery_percent = -1;
    cfg->max_retries = OTA_DEVICE_MAX_RETRIES;
    cfg->backoff_initial_ms = OTA_DEVICE_BACKOFF_INITIAL_MS;
    cfg->backoff_max_ms = OTA_DEVICE_BACKOFF_MAX_MS;
    cfg->timeout_ms = OTA_DEVICE_TIMEOUT_MS;
}

const char *ota_device_outcome_name(ota_device_outcome_t o)
{
    switch (o) {
    case OTA_DEVICE_APPLIED:
        return "applied";
    case OTA_DEVICE_FAILED:
        return "failed";
    case OTA_DEVICE_INCOMPLETE:
        return "incomplete";
    }
    return "unknown";
}

const char *ota_device_delta_name(ota_device_delta_t d)
{
    switch (d) {
    case OTA_DEVICE_DELTA_NONE:
        return "none";
    case OTA_DEVICE_DELTA_USED:
        return "used";
    case OTA_DEVICE_DELTA_FAILED:
        return "failed";
    }
    return "unknown";
}

ota_err_t ota_device_set_conditions(ota_device_t *dev, const ota_device_conditions_t *cond)
{
    const char *conn = cond->connectivity != NULL ? cond->connectivity : "wifi";
    if (!one_of(conn, CONNECTIVITIES))
        return fail(dev, OTA_ERR_INVALID, "connectivity must be wifi or cellular");
    if (cond->battery_state != NULL && !one_of(cond->battery_state, BATTERY_STATES))
        return fail(dev, OTA_ERR_INVALID, "battery state must be usb, high, normal, low or dead");
    if (cond->battery_percent < -1 || cond->battery_percent > 100)
        return fail(dev, OTA_ERR_INVALID, "battery percent must be 0..100 (or -1)");
    ota__copy(dev->connectivity, sizeof dev->connectivity, conn);
    dev->recording = cond->recording;
    dev->battery_percent = cond->battery_percent;
    dev->report_battery_state = cond->battery_state != NULL;
    ota__copy(dev->battery_state, sizeof dev->battery_state, cond->battery_state != NULL ? cond->battery_state : "");
    return OTA_OK;
}

ota_device_t *ota_device_new(const ota_device_config_t *cfg, ota_err_t *err)
{
    ota_err_t rc = OTA_OK;
    char path[4096];
    ota_device_t *dev = NULL;
    if (cfg == NULL || cfg->state_dir == NULL || cfg->max_retries < 0) {
        rc = OTA_ERR_INVALID;
        goto Exit;
    }
    if ((dev = calloc(1, sizeof *dev)) == NULL) {
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    dev->lock_fd = -1;
    if (ota__copy(dev->dir, sizeof dev->dir, cfg->state_dir) != OTA_OK ||
        ota__path(path, sizeof path, cfg->state_dir, OTA__LOCK_FILE) != OTA_OK) {
        rc = OTA_ERR_INVALID;
        goto Exit;
    }
    if ((rc = ota_device_set_conditions(dev, &cfg->conditions)) != OTA_OK)
        goto Exit;
    dev->faults = cfg->faults;
    dev->max_retries = cfg->max_retries;
    dev->backoff_initial_ms = cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : OTA_DEVICE_BACKOFF_INITIAL_MS;
    dev->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : OTA_DEVICE_BACKOFF_MAX_MS;
    dev->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : OTA_DEVICE_TIMEOUT_MS;
    dev->on_progress = cfg->on_progress;
    dev->progress_arg = cfg->progress_arg;
    dev->on_log = cfg->on_log;
    dev->log_arg = cfg->log_arg;
    dev->interval_s = DEFAULT_INTERVAL_S;

    if ((rc = ota__state_load(dev->dir, &dev->state, dev->errmsg, sizeof dev->errmsg)) != OTA_OK) {
        if (rc == OTA_ERR_TOO_LARGE)
            rc = OTA_ERR_INVALID; /* no state.json is that big */
        goto Exit;
    }
    if ((dev->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rc = OTA_ERR_IO;
        goto Exit;
    }
    if (flock(dev->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? OTA_ERR_UNAVAILABLE : OTA_ERR_IO;
        goto Exit;
    }
    /* Opening the device is its power-on: the bootloader's turn, on the state read again under the lock (the boot
       of a slot on trial is written). */
    bool fell_back;
    if ((rc = boot(dev, &fell_back, dev->errmsg, sizeof dev->errmsg)) != OTA_OK)
        goto Exit;
    if ((dev->api = curl_easy_init()) == NULL || (dev->dl = curl_easy_init()) == NULL) {
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
Exit:
    if (rc != OTA_OK) {
        ota_device_free(dev);
        dev = NULL;
    }
    if (err != NULL)
        *err = rc;
    return dev;
}

void ota_device_free(ota_device_t *dev)
{
    if (dev == NULL)
        return;
    if (dev->api != NULL)
        curl_easy_cleanup(dev->api);
    if (dev->dl != NULL)
        curl_easy_cleanup(dev->dl);
    if (dev->lock_fd >= 0)
        close(dev->lock_fd); /* releases the lock */
    memset(dev->state.token, 0, sizeof dev->state.token);
    free(dev);
}

const char *ota_device_version(const ota_device_t *dev)
{
    return dev->state.version;
}

const char *ota_device_id(const ota_device_t *dev)
{
    return dev->state.device_id;
}

char ota_device_active_slot(const ota_device_t *dev)
{
    return dev->state.active_slot;
}

const char *ota_device_errmsg(const ota_device_t *dev)
{
    return dev->errmsg;
}

/* ---- heartbeat ------------------------------------------------------------------ */

/* A reason as a result and the report keep it: its first OTA_DEVICE_ERROR_MAX bytes (include/ota/device.h). */
static void keep_reason(char out[OTA_DEVICE_ERROR_MAX + 1], const char *reason)
{
    snprintf(out, OTA_DEVICE_ERROR_MAX + 1, "%.*s", OTA_DEVICE_ERROR_MAX, reason);
}

/* What the next heartbeats say of m's update: `bytes` of res->total (the delta's or the image's), and the delta. */
static void set_report(ota_device_t *dev, const char *state, const ota_manifest_t *m, uint64_t bytes,
                       const ota_device_result_t *res, const char *error)
{
    report_t *r = &dev->report;
    memset(r, 0, sizeof *r);
    r->set = true;
    r->state = state;
    ota__copy(r->assignment_id, sizeof r->assignment_id, m->assignment_id);
    r->bytes = bytes;
    r->total = res->total;
    r->delta = res->delta != OTA_DEVICE_DELTA_NONE ? ota_device_delta_name(res->delta) : NULL;
    if (error != NULL)
        keep_reason(r->error, error);
}

ota_err_t ota_device_heartbeat(ota_device_t *dev, ota_device_answer_t *answer)
{
    char url[OTA_DEVICE_URL_MAX + 128], why[300] = "", *body = NULL;
    ota__http_resp_t resp = {0};
    ota_err_t rc;
    const report_t *r = &dev->report;
    const ota__slot_t *running = &dev->state.slots[dev->state.active_slot - 'a'];
    ota__report_t rep = {
        .version = dev->state.version,
        .firmware_sha256 = running->sha256[0] != '\0' ? running->sha256 : NULL,
        .connectivity = dev->connectivity,
        .recording = dev->recording,
        .battery_percent = dev->battery_percent,
        .battery_state = dev->report_battery_state ? dev->battery_state : NULL,
        .ota_assignment = r->set ? r->assignment_id : NULL,
        .ota_state = r->state,
        .ota_bytes = r->bytes,
        .ota_total = r->total,
        .ota_error = r->set && r->error[0] != '\0' ? r->error : NULL,
        .ota_delta = r->set ? r->delta : NULL,
    };
    dev->errmsg[0] = '\0';
    if (answer == NULL)
        return fail(dev, OTA_ERR_INVALID, "no answer buffer");
    if (ota__fmt(url, sizeof url, "%s/v1/devices/%s/heartbeat", dev->state.server, dev->state.device_id) != OTA_OK)
        return fail(dev, OTA_ERR_INVALID, "server URL too long");
    if ((rc = ota__report_encode(&rep, &body)) != OTA_OK) {
        fail(dev, rc, "out of memory");
        goto Exit;
    }
    if ((rc = ota__http_request(dev->api, "POST", url, dev->state.token, body, dev->timeout_ms, &resp, why,
                                sizeof why)) != OTA_OK) {
        fail(dev, rc, "heartbeat: %s", why);
        goto Exit;
    }
    dev->last_beat_ms = ota__now_ms();
    if (resp.status != 200) {
        ota__http_describe(&resp, why, sizeof why);
        rc = ota__http_status_err(resp.status);
        if (rc == OTA_OK)
            rc = OTA_ERR_INVALID; /* a 2xx that is not the contract's 200 */
        fail(dev, rc, "heartbeat refused: %s", why);
        goto Exit;
    }
    if ((rc = ota__answer_decode(resp.body, resp.len, answer, why, sizeof why)) != OTA_OK) {
        fail(dev, rc, "%s", rc == OTA_ERR_NOMEM ? "out of memory" : why);
        goto Exit;
    }
    dev->interval_s = answer->interval_s;
    /* A failure is reported once; progress only while the server still delivers that assignment (or waits). */
    if (r->set && (strcmp(r->state, "failed") == 0 ||
                   (answer->has_manifest ? strcmp(answer->manifest.assignment_id, r->assignment_id) != 0
                                         : answer->deferred[0] == '\0')))
        memset(&dev->report, 0, sizeof dev->report);
    if (answer->has_manifest)
        dev_log(dev, "heartbeat: running %s; update to %s delivered (assignment %s, %" PRIu64 " bytes)",
                dev->state.version, answer->manifest.version, answer->manifest.assignment_id, answer->manifest.size);
    else if (answer->deferred[0] != '\0')
        dev_log(dev, "heartbeat: running %s; an update waits (deferred: %s)", dev->state.version, answer->deferred);
    else
        dev_log(dev, "heartbeat: running %s; no update", dev->state.version);
Exit:
    ota__http_resp_free(&resp);
    free(body);
    return rc;
}

/* ---- apply ----------------------------------------------------------------------- */

/* A heartbeat during a download; notes in ctx when the server no longer delivers this update. */
static ota_err_t beat_while_downloading(apply_ctx_t *ctx)
{
    ota_device_t *dev = ctx->dev;
    set_report(dev, "downloading", &ctx->manifest, ctx->bytes, ctx->res, NULL);
    ota_err_t rc = ota_device_heartbeat(dev, &ctx->answer);
    if (rc != OTA_OK)
        return rc;
    const ota_device_answer_t *a = &ctx->answer;
    if (a->has_manifest && strcmp(a->manifest.assignment_id, ctx->manifest.assignment_id) != 0) {
        ctx->ended = true;
        snprintf(ctx->ended_why, sizeof ctx->ended_why, "the server now delivers another assignment (%s)",
                 a->manifest.assignment_id);
    } else if (!a->has_manifest && a->deferred[0] == '\0') {
        ctx->ended = true;
        snprintf(ctx->ended_why, sizeof ctx->ended_why,
                 "the server no longer delivers assignment %s (canceled or ended)", ctx->manifest.assignment_id);
    }
    return OTA_OK;
}

/* The same update: every signed field equal. */
static bool same_update(const ota_manifest_t *a, const ota_manifest_t *b)
{
    return strcmp(a->assignment_id, b->assignment_id) == 0 && strcmp(a->device_id, b->device_id) == 0 &&
           strcmp(a->release_id, b->release_id) == 0 && strcmp(a->model, b->model) == 0 &&
           strcmp(a->version, b->version) == 0 && a->downgrade == b->downgrade &&
           strcmp(a->artifact, b->artifact) == 0 && strcmp(a->not_after, b->not_after) == 0 && a->size == b->size &&
           a->crc32 == b->crc32 && strcmp(a->sha256, b->sha256) == 0;
}

/* The same delta: its signed fields equal (both manifests have one). */
static bool same_delta(const ota_manifest_t *a, const ota_manifest_t *b)
{
    return a->has_delta && b->has_delta && strcmp(a->delta.from_sha256, b->delta.from_sha256) == 0 &&
           a->delta.size == b->delta.size && strcmp(a->delta.sha256, b->delta.sha256) == 0;
}

/* What a manifest is checked against: this device, its running version and its clock, now. */
static ota__verify_device_t verify_device(const ota_device_t *dev)
{
    return (ota__verify_device_t){.public_key = dev->state.public_key,
                                  .model = dev->state.model,
                                  .device_id = dev->state.device_id,
                                  .version = dev->state.version,
                                  .now = time(NULL) + (time_t)dev->faults.clock_skew_s};
}

/* A fresh URL from a fresh manifest: of the delta while the delta downloads (it must offer the same delta). */
static ota_err_t refresh_hook(void *arg, char *url, size_t cap, char *why, size_t why_cap)
{
    apply_ctx_t *ctx = arg;
    ota_device_t *dev = ctx->dev;
    char reason[OTA_DEVICE_ERROR_MAX + 1];
    bool delta = ctx->res->delta == OTA_DEVICE_DELTA_USED;
    ota_err_t rc = beat_while_downloading(ctx);
    if (rc != OTA_OK) {
        snprintf(why, why_cap, "%s", dev->errmsg);
        return rc;
    }
    if (ctx->ended) {
        snprintf(why, why_cap, "%s", ctx->ended_why);
        return OTA_ERR_NOT_FOUND;
    }
    const ota_device_answer_t *a = &ctx->answer;
    if (!a->has_manifest) {
        snprintf(why, why_cap, "delivery deferred (%s)", a->deferred);
        return OTA_ERR_UNAVAILABLE;
    }
    if (!same_update(&a->manifest, &ctx->manifest)) {
        snprintf(why, why_cap, "the fresh manifest differs from the one being downloaded");
        return OTA_ERR_INVALID;
    }
    ota__verify_device_t self = verify_device(dev);
    if ((rc = ota__verify_manifest(&a->manifest, &self, reason, sizeof reason)) != OTA_OK) {
        snprintf(why, why_cap, "the fresh manifest: %s", rc == OTA_ERR_NOMEM ? "out of memory" : reason);
        return rc;
    }
    if (delta) {
        /* The image's fresh URL too: a fallback to the full image then starts with it. */
        memcpy(ctx->manifest.url, a->manifest.url, sizeof ctx->manifest.url);
        memcpy(ctx->manifest.url_expires_at, a->manifest.url_expires_at, sizeof ctx->manifest.url_expires_at);
        if (!same_delta(&a->manifest, &ctx->manifest)) {
            snprintf(why, why_cap, "the fresh manifest no longer offers this delta");
            return OTA_ERR_INVALID;
        }
    }
    const char *fresh = delta ? a->manifest.delta.url : a->manifest.url;
    const char *until = delta ? a->manifest.delta.url_expires_at : a->manifest.url_expires_at;
    if (ota__copy(url, cap, fresh) != OTA_OK)
        return OTA_ERR_TOO_LARGE; /* cannot happen: both are OTA_MANIFEST_URL_MAX + 1 */
    ota__copy(delta ? ctx->manifest.delta.url_expires_at : ctx->manifest.url_expires_at, OTA_MANIFEST_TIME_LEN + 1,
              until);
    dev_log(dev, "download: fresh URL (valid until %s); continuing from byte %" PRIu64, until, ctx->bytes);
    return OTA_OK;
}

static int progress_hook(void *arg, uint64_t bytes, uint64_t total)
{
    apply_ctx_t *ctx = arg;
    ota_device_t *dev = ctx->dev;
    ctx->bytes = bytes;
    if (dev->on_progress != NULL && dev->on_progress(dev->progress_arg, bytes, total) != 0)
        return 1;
    /* Long downloads keep the heartbeat going, with their progress. */
    if (ota__now_ms() - dev->last_beat_ms >= (int64_t)dev->interval_s * 1000) {
        if (beat_while_downloading(ctx) != OTA_OK)
            dev_log(dev, "download: progress heartbeat failed: %s", dev->errmsg);
        if (ctx->ended)
            return 1;
    }
    return 0;
}

static void log_hook(void *arg, const char *line)
{
    apply_ctx_t *ctx = arg;
    dev_log(ctx->dev, "%s", line);
}

/* Forgets the download in progress (its bytes and which image they were). */
static void drop_part(ota_device_t *dev)
{
    ota__remove(dev->dir, OTA__PART_FILE);
    ota__remove(dev->dir, OTA__PART_META);
}

/* Forgets the delta being downloaded. */
static void drop_delta(ota_device_t *dev)
{
    ota__remove(dev->dir, OTA__DELTA_FILE);
    ota__remove(dev->dir, OTA__DELTA_META);
}

static void result_failed(ota_device_t *dev, ota_device_result_t *res, const ota_manifest_t *m, const char *reason)
{
    res->outcome = OTA_DEVICE_FAILED;
    keep_reason(res->error, reason);
    set_report(dev, "failed", m, res->bytes, res, res->error);
    dev_log(dev, "update to %s failed: %s; staying on %s in slot %c", m->version, res->error, dev->state.version,
            dev->state.active_slot);
}

static void result_incomplete(ota_device_t *dev, ota_device_result_t *res, const ota_manifest_t *m, const char *why)
{
    res->outcome = OTA_DEVICE_INCOMPLETE;
    keep_reason(res->error, why);
    set_report(dev, "downloading", m, res->bytes, res, NULL);
    dev_log(dev, "download of %s paused at byte %" PRIu64 " of %" PRIu64 ": %s", m->version, res->bytes, res->total,
            res->error);
}

/*
 * Puts the verified download into the inactive slot and switches to it; then "reboots". The new state.json is
 * encoded first, so running out of memory changes nothing (OTA_ERR_NOMEM: the download stays, complete).
 */
static ota_err_t install(ota_device_t *dev, const ota_manifest_t *m, char *why, size_t cap)
{
    char part[4096], slot_path[4096], *text = NULL;
    char from = dev->state.active_slot, to = ota__state_inactive(&dev->state);
    ota__state_t next = dev->state;
    ota_err_t rc;
    if (ota__path(part, sizeof part, dev->dir, OTA__PART_FILE) != OTA_OK ||
        ota__path(slot_path, sizeof slot_path, dev->dir, ota__slot_file(to)) != OTA_OK) {
        snprintf(why, cap, "install failed: path too long");
        return OTA_ERR_TOO_LARGE;
    }
    ota__state_switch(&next, m);
    if ((rc = ota__state_validate(&next, why, cap)) != OTA_OK || (rc = ota__state_encode(&next, &text)) != OTA_OK) {
        if (rc == OTA_ERR_NOMEM)
            snprintf(why, cap, "out of memory");
        goto Exit;
    }
    if (rename(part, slot_path) != 0 || ota__fsync_dir(dev->dir) != OTA_OK) {
        snprintf(why, cap, "install failed: cannot write slot %c: %s", to, strerror(errno));
        rc = OTA_ERR_IO;
        goto Exit;
    }
    dev_log(dev, "install: wrote %s into slot %c", m->version, to);
    if ((rc = ota__write_atomic(dev->dir, OTA__STATE_FILE, text, strlen(text), 0600)) != OTA_OK) {
        snprintf(why, cap, "install failed: cannot switch slots: cannot write %s", OTA__STATE_FILE);
        goto Exit;
    }
    ota__remove(dev->dir, OTA__PART_META);
    dev_log(dev, "install: switched from slot %c (%s) to slot %c (%s); rebooting", from, dev->state.version, to,
            m->version);
    dev->state = next;
    /* The "reboot": the new slot is on trial, and this is its one boot (ota__state_boot). */
    bool fell_back;
    if ((rc = boot(dev, &fell_back, why, cap)) != OTA_OK)
        goto Exit;
    dev_log(dev, "reboot: running %s from slot %c", dev->state.version, dev->state.active_slot);
Exit:
    free(text);
    return rc;
}

/* How one way to the image ended: download.part holds the checked image, or it does not (`res` says why). */
typedef enum way {
    WAY_GOT,    /* download.part holds the image, its size, CRC-32 and SHA-256 checked */
    WAY_FAILED, /* a check failed: FAILED in `res` (the delta: fall back to the full image) */
    WAY_PAUSED, /* the download did not finish: INCOMPLETE in `res`, what it has is kept */
} way_t;

/* Downloads `size` bytes from `url` into the file `path` with the engine, counting into `res`. */
static ota_err_t download(apply_ctx_t *ctx, const char *path, uint64_t size, char *url, size_t url_cap,
                          ota_device_result_t *res, ota__dl_result_t *dl)
{
    ota_device_t *dev = ctx->dev;
    ota__dl_job_t job = {
        .path = path,
        .size = size,
        .url = url,
        .url_cap = url_cap,
        .max_retries = dev->max_retries,
        .backoff_initial_ms = dev->backoff_initial_ms,
        .backoff_max_ms = dev->backoff_max_ms,
        .connect_timeout_ms = dev->timeout_ms < 10000 ? dev->timeout_ms : 10000L,
        .stall_s = 30,
        .throttle_bps = dev->faults.throttle_bps,
        .cut_after = dev->faults.cut_after,
        .cut_done = &dev->cut_done,
        .received = &dev->received,
        .refresh = refresh_hook,
        .progress = progress_hook,
        .log = log_hook,
        .arg = ctx,
    };
    ctx->bytes = 0;
    set_report(dev, "downloading", &ctx->manifest, 0, res, NULL);
    ota_err_t rc = ota__download(dev->dl, &job, dl);
    res->bytes = dl->bytes;
    res->retries += dl->retries;
    res->resumes += dl->resumes;
    res->url_refreshes += dl->refreshes;
    return rc;
}

/* The --corrupt fault strikes the first thing downloaded (the delta when one is used). */
static void corrupt_once(ota_device_t *dev, bool *corrupt, const char *path, const char *what)
{
    if (!*corrupt)
        return;
    *corrupt = false;
    if (ota__corrupt_file(path) == OTA_OK)
        dev_log(dev, "fault: flipped a bit in the middle of the downloaded %s (--corrupt)", what);
    else
        dev_log(dev, "fault: could not corrupt the downloaded %s", what);
}

/* The full image: continue a download of the same image or begin afresh, then check it. */
static way_t full_image(apply_ctx_t *ctx, ota_device_result_t *res, bool *corrupt, ota_err_t *rc)
{
    ota_device_t *dev = ctx->dev;
    const ota_manifest_t *m = &ctx->manifest;
    char part[4096], reason[OTA_DEVICE_ERROR_MAX + 1] = "";
    ota__part_meta_t meta;
    ota__dl_result_t dl;
    struct stat st;
    if (ota__path(part, sizeof part, dev->dir, OTA__PART_FILE) != OTA_OK) {
        *rc = fail(dev, OTA_ERR_TOO_LARGE, "state directory path too long");
        result_incomplete(dev, res, m, dev->errmsg);
        return WAY_PAUSED;
    }
    if (ota__part_meta_load(dev->dir, OTA__PART_META, &meta) == OTA_OK && ota__part_meta_matches(&meta, m)) {
        if (stat(part, &st) == 0 && st.st_size > 0)
            dev_log(dev, "download: %" PRIu64 " bytes of this image are already here", (uint64_t)st.st_size);
    } else {
        drop_part(dev);
        ota__part_meta_of(m, &meta);
        if ((*rc = ota__part_meta_save(dev->dir, OTA__PART_META, &meta)) != OTA_OK) {
            fail(dev, *rc, "%s", *rc == OTA_ERR_NOMEM ? "out of memory" : "cannot write " OTA__PART_META);
            result_incomplete(dev, res, m, dev->errmsg);
            return WAY_PAUSED;
        }
    }
    res->total = m->size;
    if ((*rc = download(ctx, part, m->size, ctx->manifest.url, sizeof ctx->manifest.url, res, &dl)) != OTA_OK) {
        fail(dev, *rc, "%s", dl.why);
        result_incomplete(dev, res, m, dl.why);
        return WAY_PAUSED;
    }
    switch (dl.status) {
    case OTA__DL_DONE:
        break;
    case OTA__DL_REFUSED:
        drop_part(dev);
        result_failed(dev, res, m, dl.why);
        return WAY_FAILED;
    case OTA__DL_STOPPED:
        result_incomplete(dev, res, m, ctx->ended ? ctx->ended_why : dl.why);
        return WAY_PAUSED;
    case OTA__DL_GAVE_UP:
        result_incomplete(dev, res, m, dl.why);
        return WAY_PAUSED;
    }
    dev_log(dev, "download: complete, %" PRIu64 " bytes", dl.bytes);
    corrupt_once(dev, corrupt, part, "image");
    if ((*rc = ota__verify_image(part, m, reason, sizeof reason)) != OTA_OK) {
        if (*rc == OTA_ERR_CRYPTO) {
            *rc = OTA_OK;
            drop_part(dev);
            result_failed(dev, res, m, reason);
            return WAY_FAILED;
        }
        fail(dev, *rc, "%s", reason);
        result_incomplete(dev, res, m, reason);
        return WAY_PAUSED;
    }
    return WAY_GOT;
}

/*
 * Whether to go by m's delta: it applies to the running image as state.json records it, and no download of the
 * full image has begun (that one goes on: its bytes are paid for already).
 */
static bool delta_applies(ota_device_t *dev, const ota_manifest_t *m)
{
    const ota__slot_t *running = &dev->state.slots[dev->state.active_slot - 'a'];
    char part[4096];
    ota__part_meta_t meta;
    struct stat st;
    if (!m->has_delta)
        return false;
    if (running->sha256[0] == '\0' || strcmp(running->sha256, m->delta.from_sha256) != 0) {
        dev_log(dev, "delta: not from the running image; downloading the full image");
        return false;
    }
    if (ota__part_meta_load(dev->dir, OTA__PART_META, &meta) == OTA_OK && ota__part_meta_matches(&meta, m) &&
        ota__path(part, sizeof part, dev->dir, OTA__PART_FILE) == OTA_OK && stat(part, &st) == 0 && st.st_size > 0) {
        dev_log(dev, "delta: a download of the full image is under way; continuing it instead");
        return false;
    }
    return true;
}

/* Downloads the delta into delta.part (resuming the same delta) and checks it against the signed manifest. */
static way_t fetch_delta(apply_ctx_t *ctx, ota_device_result_t *res, const char *path, bool *corrupt, ota_err_t *rc,
                         char *why, size_t cap)
{
    ota_device_t *dev = ctx->dev;
    const ota_manifest_t *m = &ctx->manifest;
    ota__part_meta_t meta;
    ota__dl_result_t dl;
    if (ota__part_meta_load(dev->dir, OTA__DELTA_META, &meta) != OTA_OK || !ota__delta_meta_matches(&meta, m)) {
        drop_delta(dev);
        ota__delta_meta_of(m, &meta);
        if (ota__part_meta_save(dev->dir, OTA__DELTA_META, &meta) != OTA_OK) {
            snprintf(why, cap, "cannot write " OTA__DELTA_META);
            return WAY_FAILED;
        }
    }
    if ((*rc = download(ctx, path, m->delta.size, ctx->manifest.delta.url, sizeof ctx->manifest.delta.url, res, &dl)) !=
        OTA_OK) {
        fail(dev, *rc, "%s", dl.why);
        result_incomplete(dev, res, m, dl.why);
        return WAY_PAUSED;
    }
    if (dl.status == OTA__DL_STOPPED || (dl.status == OTA__DL_GAVE_UP && ctx->ended)) {
        result_incomplete(dev, res, m, ctx->ended ? ctx->ended_why : dl.why);
        return WAY_PAUSED;
    }
    if (dl.status != OTA__DL_DONE) {
        snprintf(why, cap, "its download: %.200s", dl.why);
        return WAY_FAILED;
    }
    dev_log(dev, "delta: downloaded, %" PRIu64 " bytes", dl.bytes);
    corrupt_once(dev, corrupt, path, "delta");
    if (ota__verify_file(path, m->delta.size, m->delta.sha256, why, cap) != OTA_OK)
        return WAY_FAILED;
    return WAY_GOT;
}

/*
 * The image from the delta: the running slot checked as its base, the delta downloaded and checked, applied into
 * download.part, and the result checked as a downloaded image is. WAY_FAILED: fall back (why in `why`).
 */
static way_t delta_image(apply_ctx_t *ctx, ota_device_result_t *res, bool *corrupt, ota_err_t *rc, char *why,
                         size_t cap)
{
    ota_device_t *dev = ctx->dev;
    const ota_manifest_t *m = &ctx->manifest;
    const ota__slot_t *running = &dev->state.slots[dev->state.active_slot - 'a'];
    char slot[4096], dpath[4096], part[4096], reason[OTA_DEVICE_ERROR_MAX + 1] = "";
    res->delta = OTA_DEVICE_DELTA_USED;
    res->total = m->delta.size;
    if (ota__path(slot, sizeof slot, dev->dir, ota__slot_file(dev->state.active_slot)) != OTA_OK ||
        ota__path(dpath, sizeof dpath, dev->dir, OTA__DELTA_FILE) != OTA_OK ||
        ota__path(part, sizeof part, dev->dir, OTA__PART_FILE) != OTA_OK) {
        snprintf(why, cap, "state directory path too long");
        return WAY_FAILED;
    }
    if (ota__verify_file(slot, running->size, m->delta.from_sha256, reason, sizeof reason) != OTA_OK) {
        snprintf(why, cap, "the running slot is not the delta's base (%.200s)", reason);
        return WAY_FAILED;
    }
    dev_log(dev, "delta: %" PRIu64 " bytes instead of %" PRIu64 ", from the running image", m->delta.size, m->size);
    way_t way = fetch_delta(ctx, res, dpath, corrupt, rc, reason, sizeof reason);
    if (way != WAY_GOT) {
        snprintf(why, cap, "%s", reason);
        return way;
    }
    /* No download.json for it: an image cut short by a crash is then not taken for a download to continue. */
    drop_part(dev);
    if (ota__delta_apply(slot, dpath, part, m->size, reason, sizeof reason) != OTA_OK) {
        snprintf(why, cap, "applying it: %.200s", reason);
        return WAY_FAILED;
    }
    drop_delta(dev);
    if (ota__verify_image(part, m, reason, sizeof reason) != OTA_OK) {
        snprintf(why, cap, "the image it made: %.200s", reason);
        return WAY_FAILED;
    }
    res->bytes = res->total;
    dev_log(dev, "delta: applied; the image it made has the manifest's size, crc32 and sha256");
    return WAY_GOT;
}

ota_err_t ota_device_apply(ota_device_t *dev, const ota_manifest_t *m, ota_device_result_t *res)
{
    char reason[OTA_DEVICE_ERROR_MAX + 1] = "";
    ota_err_t rc = OTA_OK;
    apply_ctx_t *ctx = NULL;

    if (dev == NULL || m == NULL || res == NULL)
        return OTA_ERR_INVALID;
    memset(res, 0, sizeof *res);
    res->total = m->size;
    dev->errmsg[0] = '\0';
    if ((ctx = calloc(1, sizeof *ctx)) == NULL) {
        result_incomplete(dev, res, m, "out of memory");
        rc = fail(dev, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
    ctx->dev = dev;
    ctx->manifest = *m;
    ctx->res = res;
    if (dev->last_beat_ms == 0)
        dev->last_beat_ms = ota__now_ms(); /* progress heartbeats: one interval after the start at the earliest */
    dev_log(dev, "update: %s -> %s (assignment %s, %" PRIu64 " bytes)", dev->state.version, m->version,
            m->assignment_id, m->size);

    /* 1. The manifest itself, and whether it is for this device now. */
    ota__verify_device_t self = verify_device(dev);
    if ((rc = ota__verify_manifest(m, &self, reason, sizeof reason)) != OTA_OK) {
        if (rc == OTA_ERR_NOMEM) {
            result_incomplete(dev, res, m, "out of memory");
            fail(dev, rc, "out of memory");
            goto Exit;
        }
        rc = OTA_OK;
        result_failed(dev, res, m, reason);
        goto Exit;
    }

    /* 2. The image into download.part, checked: from the delta when one applies, else (or when it fails) whole. */
    bool corrupt = dev->faults.corrupt;
    way_t way = WAY_FAILED;
    if (delta_applies(dev, m)) {
        way = delta_image(ctx, res, &corrupt, &rc, reason, sizeof reason);
        if (way == WAY_PAUSED)
            goto Exit;
        if (way == WAY_FAILED) {
            dev_log(dev, "delta: failed: %s; downloading the full image instead", reason);
            drop_delta(dev);
            drop_part(dev);
            res->delta = OTA_DEVICE_DELTA_FAILED;
            res->bytes = 0;
            rc = OTA_OK;
        }
    }
    if (way != WAY_GOT && (way = full_image(ctx, res, &corrupt, &rc)) != WAY_GOT)
        goto Exit;
    dev_log(dev, "verify: size, crc32 and sha256 match; signature valid");

    /* 3. Install, switch, reboot. */
    char slot_before = dev->state.active_slot;
    if ((rc = install(dev, m, reason, sizeof reason)) != OTA_OK) {
        fail(dev, rc, "%s", reason);
        if (strcmp(dev->state.version, m->version) == 0 && dev->state.active_slot != slot_before) {
            res->outcome = OTA_DEVICE_APPLIED; /* switched; only the re-read failed */
            memset(&dev->report, 0, sizeof dev->report);
        } else if (rc == OTA_ERR_NOMEM) {
            result_incomplete(dev, res, m, reason); /* nothing changed: the complete download stays */
        } else {
            drop_part(dev);
            result_failed(dev, res, m, reason);
        }
        goto Exit;
    }
    res->outcome = OTA_DEVICE_APPLIED;
    memset(&dev->report, 0, sizeof dev->report);
Exit:
    free(ctx);
    return rc;
}

/* ---- trial and confirmation ------------------------------------------------------- */

bool ota_device_on_trial(const ota_device_t *dev)
{
    return dev->state.trial;
}

ota_err_t ota_device_confirm(ota_device_t *dev)
{
    ota__state_t next = dev->state;
    dev->errmsg[0] = '\0';
    if (!next.trial)
        return OTA_OK;
    ota__state_confirm(&next);
    ota_err_t rc = ota__state_save(dev->dir, &next, dev->errmsg, sizeof dev->errmsg);
    if (rc != OTA_OK)
        return rc == OTA_ERR_NOMEM ? fail(dev, rc, "out of memory") : rc;
    dev->state = next;
    dev_log(dev, "confirm: %s in slot %c confirmed itself; the bootloader keeps it", next.version, next.active_slot);
    return OTA_OK;
}

ota_err_t ota_device_restart(ota_device_t *dev, bool *fell_back)
{
    bool gave_up = false;
    dev->errmsg[0] = '\0';
    ota_err_t rc = boot(dev, &gave_up, dev->errmsg, sizeof dev->errmsg);
    if (fell_back != NULL)
        *fell_back = gave_up;
    if (rc == OTA_OK)
        dev_log(dev, "restart: running %s from slot %c", dev->state.version, dev->state.active_slot);
    return rc;
}
