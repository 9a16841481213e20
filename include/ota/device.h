#ifndef OTA_DEVICE_H
#define OTA_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ota/err.h"
#include "ota/manifest.h"

/**
 * libota-device: the device side of the OTA service (openapi.yaml, the heartbeat),
 * small enough to embed in firmware and used by the `ota-device` program,
 * the test suite and load runs as a fleet (one state directory per device).
 *
 * What a device does with it:
 *
 *   ota_device_register()   once, at the factory: creates the device on the
 *                           server (or checks the token of one an operator
 *                           created) and its state directory (below)
 *   ota_device_new()        opens the state directory
 *   ota_device_heartbeat()  reports presence, conditions and the outcome of
 *                           the last update; may answer with a manifest
 *   ota_device_apply()      downloads the manifest's image (Range resume,
 *                           retries, a fresh URL when the old one expired),
 *                           checks its size, CRC-32, SHA-256 and the
 *                           manifest's Ed25519 signature, writes the
 *                           inactive slot, switches to it and "reboots"
 *                           into it, on trial
 *   ota_device_heartbeat()  again: reports the new version (the server then
 *                           marks the assignment applied) or the failure
 *   ota_device_confirm()    the new firmware works: it confirms itself, and
 *                           the bootloader keeps it; or ota_device_restart()
 *                           without confirming, and the bootloader falls back
 *                           to the previous slot, whose version the next
 *                           heartbeat reports (the server then marks the
 *                           assignment rolled_back)
 *   ota_device_free()
 *
 * Memory: the library never aborts on out-of-memory. Every allocation (its
 * own, jansson's, libcurl's, OpenSSL's) is checked and reported as
 * OTA_ERR_NOMEM.
 *
 * Globals and threads: the library keeps no global state of its own; all of
 * it lives in an ota_device_t (and on disk in its state directory). Distinct
 * devices may be used from distinct threads at once; one device is used by
 * one thread at a time. libcurl must be initialized once per process, before
 * any other call here, with curl_global_init(CURL_GLOBAL_DEFAULT) (the
 * `ota-device` program does it first thing in main), and cleaned up with
 * curl_global_cleanup() after the last device is freed.
 *
 * The state directory (one per device; ota_device_new holds an exclusive
 * lock on DIR/lock while the device is open, so two processes never drive
 * one device):
 *
 *   state.json     server URL, device id, token, serial, model, the pinned
 *                  public key, the running version, the active slot ("a" or
 *                  "b"), whether that slot is on trial and how often it was
 *                  booted so (a file without these: confirmed), and what
 *                  each slot holds. Mode 0600 (it holds the
 *                  token). Replaced atomically (write a temporary file,
 *                  fsync, rename, fsync the directory): switching slots is
 *                  that one rename, so a crash leaves the old or the new
 *                  state, never a mix.
 *   slot-a.bin, slot-b.bin   the A/B firmware slots (simulated flash); the
 *                  factory image is a placeholder in slot a.
 *   download.part  the image being downloaded, and download.json, which
 *                  image it is (assignment id, version, size, SHA-256): a
 *                  download resumes only into the same image.
 *   delta.part     the delta being downloaded, and delta.json, which delta
 *                  it is (its size and SHA-256): it resumes only into the
 *                  same delta, and both go once the delta is applied or
 *                  failed (the image it makes goes into download.part,
 *                  with no download.json: one cut short by a crash is
 *                  never continued).
 *
 * Trust: every signed manifest names the device it was made for, a
 * deadline (not_after) and whether it may go back to an older version
 * (downgrade): ota_device_apply refuses one for another device, one past
 * its deadline by the device's clock, and an older version without
 * downgrade, so a manifest kept by anyone on the path cannot be replayed to
 * another device, later, or to push this one back to a vulnerable version.
 * ota_device_register fetches the server's Ed25519 manifest key
 * (GET /v1/signing-key) and pins it in state.json (trust on first use, at
 * provisioning, as a factory would flash it). The key is never fetched
 * again: a server (or anyone answering in its name) that later sends
 * manifests signed with another key is refused, so a compromise of the
 * server's answers cannot swap the key. A key rotation on the server means
 * provisioning the device again.
 */

#define OTA_DEVICE_URL_MAX 1024            /**< longest server base URL, in bytes */
#define OTA_DEVICE_TOKEN_MAX 128           /**< longest device token, in bytes */
#define OTA_DEVICE_SERIAL_MAX 128          /**< longest serial number, in bytes */
#define OTA_DEVICE_ERROR_MAX 255           /**< longest failure reason kept and reported, in bytes */
#define OTA_DEVICE_DEFERRED_MAX 31         /**< longest "deferred" reason kept from an answer */
#define OTA_DEVICE_MAX_RETRIES 10          /**< default: download retries without progress before giving up */
#define OTA_DEVICE_BACKOFF_INITIAL_MS 200L /**< default: first retry delay, doubled on each retry */
#define OTA_DEVICE_BACKOFF_MAX_MS 5000L    /**< default: longest retry delay */
#define OTA_DEVICE_TIMEOUT_MS 30000L       /**< default: time limit of one API request */

/** An open device. Opaque; made by ota_device_new, freed by ota_device_free. */
typedef struct ota_device ota_device_t;

/**
 * What the device reports about itself in each heartbeat. Strings are
 * borrowed for the duration of the call that takes them; the library keeps
 * copies.
 */
typedef struct ota_device_conditions {
    const char *connectivity;  /**< "wifi" or "cellular"; NULL: "wifi" */
    bool recording;            /**< the device is recording (the server defers delivery) */
    int battery_percent;       /**< 0..100, or -1: not reported */
    const char *battery_state; /**< "usb", "high", "normal", "low", "dead", or NULL: not reported */
} ota_device_conditions_t;

/**
 * Simulated faults, for tests and load runs. All off when zero.
 */
typedef struct ota_device_faults {
    uint64_t cut_after;    /**< drop the download's connection once, after this many bytes (0: never) */
    bool corrupt;          /**< flip one bit (the middle byte's) of the first thing downloaded before it is checked:
                                the delta when one is used (its check fails and the full image follows), else the image */
    uint64_t throttle_bps; /**< limit the download to this many bytes per second (0: no limit) */
    int64_t clock_skew_s;  /**< the device's clock runs this many seconds ahead (negative: behind) */
} ota_device_faults_t;

/**
 * Called while an image (or the delta that makes it) downloads, and between
 * retries, with the bytes of it on disk and its total size. Return 0 to go on, anything else to stop: the
 * download then ends as OTA_DEVICE_INCOMPLETE, keeping what it has.
 */
typedef int (*ota_device_progress_cb)(void *arg, uint64_t bytes, uint64_t total);

/** Receives one line of the library's log (no newline), e.g. "download: resuming at byte 30000 (HTTP 206)". */
typedef void (*ota_device_log_cb)(void *arg, const char *line);

/**
 * How to open a device. Fill it with ota_device_config_init, then set what
 * differs. The library copies what it keeps; nothing here needs to outlive
 * ota_device_new.
 */
typedef struct ota_device_config {
    const char *state_dir;              /**< the device's state directory (required) */
    ota_device_conditions_t conditions; /**< initial conditions (see ota_device_set_conditions) */
    ota_device_faults_t faults;         /**< simulated faults (default: none) */
    int max_retries;                    /**< download retries without progress (default OTA_DEVICE_MAX_RETRIES) */
    long backoff_initial_ms;            /**< first retry delay (default OTA_DEVICE_BACKOFF_INITIAL_MS) */
    long backoff_max_ms;                /**< longest retry delay (default OTA_DEVICE_BACKOFF_MAX_MS) */
    long timeout_ms;                    /**< time limit of one API request (default OTA_DEVICE_TIMEOUT_MS) */
    ota_device_progress_cb on_progress; /**< may be NULL */
    void *progress_arg;                 /**< passed to on_progress */
    ota_device_log_cb on_log;           /**< may be NULL: no log */
    void *log_arg;                      /**< passed to on_log */
} ota_device_config_t;

/** What a heartbeat answered. A plain value: nothing to free. */
typedef struct ota_device_answer {
    long interval_s;                            /**< heartbeat_interval_s: when to send the next one */
    char server_time[32];                       /**< as the server sent it */
    bool has_manifest;                          /**< an update was delivered: `manifest` holds it */
    ota_manifest_t manifest;                    /**< decoded, not yet verified (ota_device_apply verifies it) */
    char deferred[OTA_DEVICE_DEFERRED_MAX + 1]; /**< why delivery waits ("recording", "battery", ...), or "" */
} ota_device_answer_t;

/** How ota_device_apply ended. */
typedef enum ota_device_outcome {
    OTA_DEVICE_APPLIED = 0, /**< the image is in the other slot, the device switched to it and runs its version */
    OTA_DEVICE_FAILED,      /**< a check failed (see `error`); the current slot stays; the next heartbeat reports it */
    OTA_DEVICE_INCOMPLETE,  /**< the download did not finish (retries spent, stopped, no fresh URL); what was
                                 downloaded is kept and resumes on the next delivery of the same image */
} ota_device_outcome_t;

/**
 * Whether ota_device_apply used the manifest's delta (include/ota/manifest.h: the bytes that turn the running
 * image into the new one). It does when the delta applies to the running image (its from_sha256 is the running
 * slot's SHA-256, and the slot file still has it) and no download of the full image has begun yet.
 */
typedef enum ota_device_delta {
    OTA_DEVICE_DELTA_NONE = 0, /**< not used: the manifest had none, or one from another image */
    OTA_DEVICE_DELTA_USED,     /**< the image was made from the delta (or the delta's download is incomplete) */
    OTA_DEVICE_DELTA_FAILED,   /**< the delta failed (base changed, its download refused or given up, its
                                    SHA-256, applying it, or the image it made failed its checks); the device
                                    then downloaded the full image in the same call */
} ota_device_delta_t;

/** What ota_device_apply did. A plain value. */
typedef struct ota_device_result {
    ota_device_outcome_t outcome;
    ota_device_delta_t delta; /**< whether the delta was used (the heartbeat's ota.delta says the same) */
    char error[OTA_DEVICE_ERROR_MAX +
               1];     /**< FAILED: the reason reported (e.g. "crc32 mismatch: ..."); INCOMPLETE: why */
    uint64_t bytes;    /**< bytes on disk at the end of what was downloaded last: the delta (USED) or the image */
    uint64_t total;    /**< its size: the delta's (USED) or the image's */
    int retries;       /**< failed download attempts */
    int resumes;       /**< attempts that continued with HTTP Range from a byte > 0 */
    int url_refreshes; /**< fresh URLs fetched after the old one was refused */
} ota_device_result_t;

/**
 * What to provision. Borrowed for the call. Give either `api_key` (the
 * device is created) or `device_id` and `token` (an operator created it
 * already with POST /v1/devices, whose answer showed the token once), not
 * both.
 */
typedef struct ota_device_registration {
    const char *state_dir; /**< created (mode 0700) if missing; must not hold a state.json yet */
    const char *server;    /**< base URL, http:// or https://, e.g. "http://127.0.0.1:8080" */
    const char *api_key;   /**< an admin API key, or NULL with device_id and token */
    const char *device_id; /**< the id of a device created already (a lower-case UUID), or NULL with api_key */
    const char *token;     /**< that device's token (otd_..., up to OTA_DEVICE_TOKEN_MAX bytes), or NULL */
    const char *serial;    /**< 1..OTA_DEVICE_SERIAL_MAX bytes; with device_id, the server's must be the same */
    const char *model;     /**< the device's model id; with device_id, the server's must be the same */
    const char *version;   /**< the firmware it ships with (a semantic version) */
    long timeout_ms;       /**< per request; <= 0: OTA_DEVICE_TIMEOUT_MS */
} ota_device_registration_t;

/** Fills `cfg` with the defaults: no state_dir, wifi, not recording, battery not reported, no faults, no callbacks. */
void ota_device_config_init(ota_device_config_t *cfg);

/**
 * Provisions a device: pins the server's signing key (GET /v1/signing-key),
 * then either creates the device (POST /v1/devices with `api_key`) or, given
 * `device_id` and `token`, checks that the token is that device's and that
 * the server knows it with this serial and model (GET /v1/devices/{id} with
 * the token), and writes the state directory with the id and token, the
 * version in slot a. When an argument or the server refuses, nothing is
 * written (a directory it created is removed again). Returns OTA_OK, or
 * OTA_ERR_INVALID (bad argument, already registered, refused by the
 * server, another device's token, another serial or model),
 * OTA_ERR_UNAVAILABLE (server unreachable or 5xx), OTA_ERR_IO,
 * OTA_ERR_NOMEM, and writes why into `errmsg` (`cap` bytes, NUL-terminated;
 * may be NULL when `cap` is 0).
 */
ota_err_t ota_device_register(const ota_device_registration_t *reg, char *errmsg, size_t cap);

/**
 * Opens the device whose state directory is cfg->state_dir. Opening is the
 * device's power-on: the bootloader boots the active slot, or gives up a
 * slot on trial that already had its boot without confirming itself and
 * falls back to the other one (see ota_device_restart). Returns the
 * device (free it with ota_device_free) or NULL, with the reason in `*err`
 * (may be NULL): OTA_ERR_INVALID (bad config, unreadable or malformed
 * state), OTA_ERR_NOT_FOUND (no state.json: not registered),
 * OTA_ERR_UNAVAILABLE (another process has the device open), OTA_ERR_IO,
 * OTA_ERR_NOMEM.
 */
ota_device_t *ota_device_new(const ota_device_config_t *cfg, ota_err_t *err);

/** Closes the device and frees it (NULL is fine). */
void ota_device_free(ota_device_t *dev);

/**
 * Replaces the conditions reported by the next heartbeats (strings are
 * copied). OTA_ERR_INVALID when a value is not one the API allows; the old
 * conditions then stay.
 */
ota_err_t ota_device_set_conditions(ota_device_t *dev, const ota_device_conditions_t *cond);

/**
 * Sends one heartbeat: the running version, the conditions, and the state of
 * an update in progress or the failure of the last one (sent once). Fills
 * `answer` on OTA_OK. Errors: OTA_ERR_UNAVAILABLE (unreachable, timeout, 429
 * or 5xx: try again later), OTA_ERR_INVALID (the server refused the request
 * or the token: 4xx; or answered something that is not the contract),
 * OTA_ERR_NOT_FOUND (404: the device is gone), OTA_ERR_TOO_LARGE (an answer
 * over 1 MiB), OTA_ERR_NOMEM. ota_device_errmsg says more.
 */
ota_err_t ota_device_heartbeat(ota_device_t *dev, ota_device_answer_t *answer);

/**
 * Installs the update `m` (from a heartbeat answer): verifies its signature
 * with the pinned key, its model and artifact, that it was made for this
 * device id, that the device's clock is not past its not_after, and that
 * its version is newer than the running one (or older with downgrade
 * true); a manifest that fails any of these is refused (FAILED) before a
 * byte is downloaded. Then it downloads its URL into
 * download.part (resuming what an earlier call left of the same image; up to
 * max_retries retries without progress, with doubling backoff; on HTTP 403,
 * an expired URL, a heartbeat asks for a fresh one); checks size, CRC-32 and
 * SHA-256; moves the image into the inactive slot and switches to it in one
 * atomic state replace; then "reboots" (reads the state back from disk)
 * into the new slot, which is on trial until ota_device_confirm.
 *
 * With a delta (m->has_delta) from the image the running slot holds (its
 * SHA-256 as state.json records it, which every heartbeat reports as
 * firmware_sha256), and no download of the full image begun, it first
 * checks that the slot file still has that SHA-256, downloads the delta
 * into delta.part (resumed, retried and refreshed as the image is; a fresh
 * URL comes from the fresh manifest's delta), checks its size and SHA-256
 * against the signed manifest, applies it to the running slot into
 * download.part and checks the result as a downloaded image. Any failure
 * on that way drops the delta and downloads the full image in the same
 * call (result->delta FAILED); only a download stopped or cut short for
 * good reason (the progress callback, the server ending the delivery, a
 * disk error) ends the call INCOMPLETE with the delta kept. The heartbeats
 * meanwhile report ota.delta "used" (bytes and total of the delta), then
 * "failed" (of the full image).
 *
 * Fills `result` and returns OTA_OK whatever the outcome; a FAILED outcome is
 * reported by the next heartbeat (ota.state "failed", ota.error = the
 * reason). Returns an error only when the device could not do its part:
 * OTA_ERR_INVALID (NULL argument; `result` is then untouched), OTA_ERR_IO
 * (the state directory cannot be written; the current slot stays),
 * OTA_ERR_TOO_LARGE (the state directory's path is too long), OTA_ERR_NOMEM
 * (nothing is lost: what was downloaded stays); `result` then says
 * INCOMPLETE or FAILED with why.
 */
ota_err_t ota_device_apply(ota_device_t *dev, const ota_manifest_t *m, ota_device_result_t *result);

/**
 * Whether the running firmware is on trial: an update switched to its slot,
 * and it has not confirmed itself yet. Such a slot gets one boot; found
 * unconfirmed at the next, the bootloader falls back to the other slot.
 */
bool ota_device_on_trial(const ota_device_t *dev);

/**
 * The running firmware confirms itself, once it knows it works (the
 * bundled client: once a heartbeat reporting its version was answered), as
 * with MCUboot's boot_set_confirmed: its slot is no longer on trial, and
 * the bootloader keeps booting it. Written to state.json atomically. OTA_OK
 * also when not on trial; OTA_ERR_IO, OTA_ERR_NOMEM (nothing changed then).
 */
ota_err_t ota_device_confirm(ota_device_t *dev);

/**
 * Restarts the device: it comes back with what is on disk, nothing of
 * memory, and the bootloader boots the active slot; or, when that slot is
 * on trial and already had its boot without confirming itself (its
 * firmware failed a health check, crashed or hung), gives it up and falls
 * back to the other slot, which held the firmware that ran before the
 * update, as A/B bootloaders do (U-Boot's bootcount, RAUC, MCUboot). The
 * next heartbeat reports that firmware's version. `*fell_back` (may be
 * NULL) says whether it fell back. Errors: OTA_ERR_INVALID (state.json
 * unreadable), OTA_ERR_IO, OTA_ERR_NOMEM.
 */
ota_err_t ota_device_restart(ota_device_t *dev, bool *fell_back);

/** The version the device runs (normalized semver). Borrowed from `dev`; valid until the next call on it. */
const char *ota_device_version(const ota_device_t *dev);

/** The device id (a UUID). Borrowed from `dev`. */
const char *ota_device_id(const ota_device_t *dev);

/** The active slot: 'a' or 'b'. */
char ota_device_active_slot(const ota_device_t *dev);

/** A description of the last error of a call on `dev` ("" when there was none). Borrowed from `dev`. */
const char *ota_device_errmsg(const ota_device_t *dev);

/** A static name of `o` ("applied", "failed", "incomplete"). */
const char *ota_device_outcome_name(ota_device_outcome_t o);

/** A static name of `d` ("none", "used", "failed"), as the heartbeat's ota.delta and `ota-device` say it. */
const char *ota_device_delta_name(ota_device_delta_t d);

#endif
