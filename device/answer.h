#ifndef OTA_DEVICE_ANSWER_H
#define OTA_DEVICE_ANSWER_H

/*
 * The heartbeat's wire forms on the device side (internal): the request
 * body (openapi.yaml, the heartbeat) and the decoding of the answer, manifest
 * included (with the codec shared with the server, include/ota/manifest.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/device.h"
#include "ota/err.h"

/** What one heartbeat reports. Strings are borrowed; NULL leaves a member out. */
typedef struct ota__report {
    const char *version;         /* firmware_version (required) */
    const char *firmware_sha256; /* SHA-256 of the running image (64 hex digits); NULL: left out (not known) */
    const char *connectivity;    /* "wifi" | "cellular" */
    bool recording;
    int battery_percent;        /* -1: left out */
    const char *battery_state;  /* NULL: left out (the whole "battery" goes when both are) */
    const char *ota_assignment; /* NULL: no "ota" member */
    const char *ota_state;      /* "downloading", "verifying", "installing", "failed" */
    uint64_t ota_bytes, ota_total;
    const char *ota_error; /* NULL: left out */
    const char *ota_delta; /* "used" | "failed"; NULL: left out (a plain full download) */
} ota__report_t;

/** The request body of `r` as compact JSON, malloc'ed into `*out` (the caller frees it). OTA_ERR_NOMEM. */
ota_err_t ota__report_encode(const ota__report_t *r, char **out);

/**
 * Decodes a 200 answer {"server_time", "heartbeat_interval_s", "ota": manifest|null, "deferred": string|null}
 * into `out` (written only on success). OTA_ERR_INVALID with why in `why` (`cap` bytes) when it is not that,
 * the manifest included (its signature is not checked here); OTA_ERR_NOMEM.
 */
ota_err_t ota__answer_decode(const char *text, size_t len, ota_device_answer_t *out, char *why, size_t cap);

#endif
