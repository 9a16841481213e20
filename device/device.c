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
 * What the server hears: every heartbeat carries the running version (the
 * server marks an assignment applied when it equals the assignment's), and,
 * while an update is under way, ota {assignment_id, state "downloading",
 * bytes, total}; after a failed check, once, ota {state "failed", error}.
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

static void set_report(ota_device_t *dev, const char *state, const ota_manifest_t *m, uint64_t bytes, const char *error)
{
    report_t *r = &dev->report;
    memset(r, 0, sizeof *r);
    r->set = true;
    r->state = state;
    ota__copy(r->assignment_id, sizeof r->assignment_id, m->assignment_id);
    r->bytes = bytes;
    r->total = m->size;
    if (error != NULL)
        keep_reason(r->error, error);
}

ota_err_t ota_device_heartbeat(ota_device_t *dev, ota_device_answer_t *answer)
{
    char url[OTA_DEVICE_URL_MAX + 128], why[300] = "", *body = NULL;
    ota__http_resp_t resp = {0};
    ota_err_t rc;
    const report_t *r = &dev->report;
    ota__report_t rep = {
        .version = dev->state.version,
        .connectivity = dev->connectivity,
        .recording = dev->recording,
        .battery_percent = dev->battery_percent,
        .battery_state = dev->report_battery_state ? dev->battery_state : NULL,
        .ota_assignment = r->set ? r->assignment_id : NULL,
        .ota_state = r->state,
        .ota_bytes = r->bytes,
        .ota_total = r->total,
        .ota_error = r->set && r->error[0] != '\0' ? r->error : NULL,
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
    set_report(dev, "downloading", &ctx->manifest, ctx->bytes, NULL);
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

/* What a manifest is checked against: this device, its running version and its clock, now. */
static ota__verify_device_t verify_device(const ota_device_t *dev)
{
    return (ota__verify_device_t){.public_key = dev->state.public_key,
                                  .model = dev->state.model,
                                  .device_id = dev->state.device_id,
                                  .version = dev->state.version,
                                  .now = time(NULL) + (time_t)dev->faults.clock_skew_s};
}

static ota_err_t refresh_hook(void *arg, char *url, size_t cap, char *why, size_t why_cap)
{
    apply_ctx_t *ctx = arg;
    ota_device_t *dev = ctx->dev;
    char reason[OTA_DEVICE_ERROR_MAX + 1];
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
    if (ota__copy(url, cap, a->manifest.url) != OTA_OK)
        return OTA_ERR_TOO_LARGE; /* cannot happen: both are OTA_MANIFEST_URL_MAX + 1 */
    memcpy(ctx->manifest.url_expires_at, a->manifest.url_expires_at, sizeof ctx->manifest.url_expires_at);
    dev_log(dev, "download: fresh URL (valid until %s); continuing from byte %" PRIu64, a->manifest.url_expires_at,
            ctx->bytes);
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

static void result_failed(ota_device_t *dev, ota_device_result_t *res, const ota_manifest_t *m, const char *reason)
{
    res->outcome = OTA_DEVICE_FAILED;
    keep_reason(res->error, reason);
    set_report(dev, "failed", m, res->bytes, res->error);
    dev_log(dev, "update to %s failed: %s; staying on %s in slot %c", m->version, res->error, dev->state.version,
            dev->state.active_slot);
}

static void result_incomplete(ota_device_t *dev, ota_device_result_t *res, const ota_manifest_t *m, const char *why)
{
    res->outcome = OTA_DEVICE_INCOMPLETE;
    keep_reason(res->error, why);
    set_report(dev, "downloading", m, res->bytes, NULL);
    dev_log(dev, "download of %s paused at byte %" PRIu64 " of %" PRIu64 ": %s", m->version, res->bytes, m->size,
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

ota_err_t ota_device_apply(ota_device_t *dev, const ota_manifest_t *m, ota_device_result_t *res)
{
    char part[4096], reason[OTA_DEVICE_ERROR_MAX + 1] = "";
    ota__part_meta_t meta;
    ota__dl_result_t dl;
    ota_err_t rc = OTA_OK;
    apply_ctx_t *ctx = NULL;
    struct stat st;

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

    /* 2. Continue a download of the same image, or begin afresh. */
    if (ota__path(part, sizeof part, dev->dir, OTA__PART_FILE) != OTA_OK) {
        rc = fail(dev, OTA_ERR_TOO_LARGE, "state directory path too long");
        result_incomplete(dev, res, m, dev->errmsg);
        goto Exit;
    }
    if (ota__part_meta_load(dev->dir, &meta) == OTA_OK && ota__part_meta_matches(&meta, m)) {
        if (stat(part, &st) == 0 && st.st_size > 0)
            dev_log(dev, "download: %" PRIu64 " bytes of this image are already here", (uint64_t)st.st_size);
    } else {
        drop_part(dev);
        ota__part_meta_of(m, &meta);
        if ((rc = ota__part_meta_save(dev->dir, &meta)) != OTA_OK) {
            fail(dev, rc, "%s", rc == OTA_ERR_NOMEM ? "out of memory" : "cannot write " OTA__PART_META);
            result_incomplete(dev, res, m, dev->errmsg);
            goto Exit;
        }
    }

    /* 3. Download. */
    ota__dl_job_t job = {
        .path = part,
        .size = m->size,
        .url = ctx->manifest.url,
        .url_cap = sizeof ctx->manifest.url,
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
    set_report(dev, "downloading", m, 0, NULL);
    rc = ota__download(dev->dl, &job, &dl);
    res->bytes = dl.bytes;
    res->retries = dl.retries;
    res->resumes = dl.resumes;
    res->url_refreshes = dl.refreshes;
    if (rc != OTA_OK) {
        fail(dev, rc, "%s", dl.why);
        result_incomplete(dev, res, m, dl.why);
        goto Exit;
    }
    switch (dl.status) {
    case OTA__DL_DONE:
        break;
    case OTA__DL_REFUSED:
        drop_part(dev);
        result_failed(dev, res, m, dl.why);
        goto Exit;
    case OTA__DL_STOPPED:
        result_incomplete(dev, res, m, ctx->ended ? ctx->ended_why : dl.why);
        goto Exit;
    case OTA__DL_GAVE_UP:
        result_incomplete(dev, res, m, dl.why);
        goto Exit;
    }
    dev_log(dev, "download: complete, %" PRIu64 " bytes", dl.bytes);

    /* 4. The image. */
    if (dev->faults.corrupt) {
        if (ota__corrupt_file(part) == OTA_OK)
            dev_log(dev, "fault: flipped a bit in the middle of the downloaded image (--corrupt)");
        else
            dev_log(dev, "fault: could not corrupt the downloaded image");
    }
    if ((rc = ota__verify_image(part, m, reason, sizeof reason)) != OTA_OK) {
        if (rc == OTA_ERR_CRYPTO) {
            rc = OTA_OK;
            drop_part(dev);
            result_failed(dev, res, m, reason);
        } else {
            fail(dev, rc, "%s", reason);
            result_incomplete(dev, res, m, reason);
        }
        goto Exit;
    }
    dev_log(dev, "verify: size, crc32 and sha256 match; signature valid");

    /* 5. Install, switch, reboot. */
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
