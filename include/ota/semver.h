#ifndef OTA_SEMVER_H
#define OTA_SEMVER_H

#include <stddef.h>
#include <stdint.h>
#include "ota/err.h"

/** Longest version string accepted, in bytes (without the NUL and the dropped 'v'). */
#define OTA_SEMVER_MAX 128

/**
 * A parsed semantic version (https://semver.org, 2.0.0). `text` is the
 * normalized form (without a leading 'v'), owned by the struct. The
 * pre-release and build parts are given as offsets into `text`, not
 * pointers, so the struct may be copied by value.
 */
typedef struct ota_semver {
    uint64_t major, minor, patch; /**< each at most INT64_MAX */
    char text[OTA_SEMVER_MAX + 1]; /**< NUL-terminated */
    size_t pre_off;   /**< pre-release part (after '-') at text + pre_off */
    size_t pre_len;   /**< its length; 0 when there is none */
    size_t build_off; /**< build metadata (after '+') at text + build_off */
    size_t build_len; /**< its length; 0 when there is none */
} ota_semver_t;

/**
 * Parses `len` bytes of `str` as MAJOR.MINOR.PATCH[-pre][+build], with one
 * optional leading 'v' or 'V' that is dropped. Strict: no leading zeros in
 * MAJOR, MINOR, PATCH or numeric pre-release identifiers, no empty
 * identifiers, only [0-9A-Za-z-] in identifiers, MAJOR, MINOR and PATCH up
 * to 2^63-1 (numeric pre-release identifiers have no limit), at most
 * OTA_SEMVER_MAX bytes after the 'v'. Returns OTA_ERR_INVALID otherwise,
 * leaving `*out` untouched.
 */
ota_err_t ota_semver_parse(const char *str, size_t len, ota_semver_t *out);

/**
 * Compares by semver precedence (semver.org section 11): -1, 0 or 1.
 * Build metadata is ignored, so "1.0.0+a" and "1.0.0+b" compare equal.
 */
int ota_semver_compare(const ota_semver_t *a, const ota_semver_t *b);

#endif
