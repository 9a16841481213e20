#ifndef OTA_DEVICE_STATE_H
#define OTA_DEVICE_STATE_H

/*
 * The device's state directory (internal; the layout is described in
 * include/ota/device.h): state.json, the A/B slots, the download in
 * progress (download.part + download.json) and the delta being downloaded
 * (delta.part + delta.json).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/device.h"
#include "ota/err.h"
#include "ota/manifest.h"
#include "ota/semver.h"

#define OTA__STATE_FILE "state.json"
#define OTA__LOCK_FILE "lock"
#define OTA__PART_FILE "download.part"
#define OTA__PART_META "download.json"
#define OTA__DELTA_FILE "delta.part"
#define OTA__DELTA_META "delta.json"
#define OTA__STATE_MAX (64 * 1024) /* largest state.json or download.json we read */
/* Boots a slot on trial gets: found unconfirmed at the boot after, it is given up (U-Boot's bootlimit). */
#define OTA__TRIAL_BOOTS 1

/** What one slot holds. */
typedef struct ota__slot {
    bool present; /* the slot file holds an image we know */
    char version[OTA_SEMVER_MAX + 1];
    uint64_t size;                                /* 0 for the factory placeholder */
    char sha256[OTA_MANIFEST_SHA256_HEX_LEN + 1]; /* "" for the factory placeholder */
} ota__slot_t;

/** The contents of state.json. A plain value. */
typedef struct ota__state {
    char server[OTA_DEVICE_URL_MAX + 1]; /* base URL, no trailing '/' */
    char device_id[OTA_MANIFEST_UUID_LEN + 1];
    char token[OTA_DEVICE_TOKEN_MAX + 1];
    char serial[OTA_DEVICE_SERIAL_MAX + 1];
    char model[OTA_MANIFEST_MODEL_MAX + 1];
    unsigned char public_key[OTA_ED25519_PUBLIC_LEN]; /* the pinned manifest key */
    char version[OTA_SEMVER_MAX + 1];                 /* the running version, normalized */
    char active_slot;                                 /* 'a' or 'b' */
    /* An update switched to the active slot and the firmware in it has not confirmed itself yet; the other slot
       holds what ran before, for the bootloader to fall back to. A state.json without it: false (confirmed). */
    bool trial;
    int trial_boots;      /* boots of the active slot on trial (0 when not on trial) */
    ota__slot_t slots[2]; /* [0]: a, [1]: b */
} ota__state_t;

/** Which image download.part holds (download.json), or which delta delta.part holds (delta.json: its size and SHA-256).
 */
typedef struct ota__part_meta {
    char assignment_id[OTA_MANIFEST_UUID_LEN + 1];
    char version[OTA_SEMVER_MAX + 1];
    uint64_t size;
    char sha256[OTA_MANIFEST_SHA256_HEX_LEN + 1];
} ota__part_meta_t;

/** The slot file name of slot 'a' or 'b' ("slot-a.bin"). */
const char *ota__slot_file(char slot);

/** The slot that is not active. */
char ota__state_inactive(const ota__state_t *st);

/**
 * Checks every field of `st` (URL form, UUID, token characters, model slug,
 * semver, slot letter, slot contents). OTA_OK or OTA_ERR_INVALID with the
 * field named in `why` (`cap` bytes).
 */
ota_err_t ota__state_validate(const ota__state_t *st, char *why, size_t cap);

/** Encodes `st` (which must validate) as JSON into a malloc'ed string `*out` (the caller frees it). OTA_ERR_NOMEM. */
ota_err_t ota__state_encode(const ota__state_t *st, char **out);

/**
 * Decodes state.json text. OTA_ERR_INVALID (why in `why`) for malformed
 * JSON, a missing or wrong member or a failed validation; OTA_ERR_NOMEM.
 * `*out` is written only on success. Unknown members are ignored.
 */
ota_err_t ota__state_decode(const char *text, size_t len, ota__state_t *out, char *why, size_t cap);

/** Reads `dir`/state.json. As ota__state_decode, and OTA_ERR_NOT_FOUND, OTA_ERR_IO, OTA_ERR_TOO_LARGE. */
ota_err_t ota__state_load(const char *dir, ota__state_t *out, char *why, size_t cap);

/** Replaces `dir`/state.json with `st` atomically (mode 0600). A failure leaves the old file. */
ota_err_t ota__state_save(const char *dir, const ota__state_t *st, char *why, size_t cap);

/**
 * The state after installing `m` into the inactive slot: that slot holds
 * m's image and becomes active, on trial (not confirmed, not booted yet),
 * and the version is m's. Pure.
 */
void ota__state_switch(ota__state_t *st, const ota_manifest_t *m);

/**
 * The bootloader's choice at a boot, as A/B bootloaders make it (U-Boot's
 * bootcount, RAUC, MCUboot's test and confirm). A confirmed slot boots. A
 * slot on trial boots OTA__TRIAL_BOOTS times; found still unconfirmed at the
 * boot after, it is given up: the other slot, which ran before the update,
 * is active again and confirmed, and the version is its version. Returns
 * whether it fell back. Pure.
 */
bool ota__state_boot(ota__state_t *st);

/** The running firmware confirms itself: its slot is no longer on trial. Pure. */
void ota__state_confirm(ota__state_t *st);

/** The download.json of `m`. */
void ota__part_meta_of(const ota_manifest_t *m, ota__part_meta_t *out);

/**
 * Reads `dir`/`name` (OTA__PART_META or OTA__DELTA_META). OTA_ERR_NOT_FOUND when there is none; OTA_ERR_INVALID
 * when it is malformed.
 */
ota_err_t ota__part_meta_load(const char *dir, const char *name, ota__part_meta_t *out);

/** Replaces `dir`/`name` (OTA__PART_META or OTA__DELTA_META) with `meta` atomically. */
ota_err_t ota__part_meta_save(const char *dir, const char *name, const ota__part_meta_t *meta);

/** download.part was begun for the same image as `m` (same size and SHA-256; the assignment may differ). */
bool ota__part_meta_matches(const ota__part_meta_t *meta, const ota_manifest_t *m);

/** The delta.json of m's delta (m->has_delta): its size and SHA-256. */
void ota__delta_meta_of(const ota_manifest_t *m, ota__part_meta_t *out);

/** delta.part was begun for the same delta as m's (same size and SHA-256). */
bool ota__delta_meta_matches(const ota__part_meta_t *meta, const ota_manifest_t *m);

/**
 * Where to resume: `part_size` bytes are in download.part, of an image of
 * `size` bytes; `same_image` says whether download.json names the image now
 * wanted. Returns the byte to continue from, or 0 to start over (another
 * image, or more bytes than the image has). `size` means the image is
 * complete (only verification is left).
 */
uint64_t ota__resume_offset(bool same_image, uint64_t part_size, uint64_t size);

#endif
