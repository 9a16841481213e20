#ifndef OTA_DEVICE_DOWNLOAD_H
#define OTA_DEVICE_DOWNLOAD_H

/*
 * The resumable image download (internal).
 *
 * Why it looks like this: a device on a bad link must not start over after
 * every dropped connection, and a presigned URL may expire in the middle of
 * a long download. So the bytes go straight into a file (download.part) at
 * their offset; each attempt asks with HTTP Range for what is missing; a
 * dropped connection is retried with doubling backoff (an attempt that
 * brought bytes resets the count, so a slow but moving link is never given
 * up on); an HTTP 403 (S3's answer to an expired URL) asks the caller for a
 * fresh URL (a heartbeat) and continues from the same byte. A server that
 * ignores Range (200) is followed from byte 0; bytes that do not add up (a
 * 206 for another range, a 416: the object changed) are dropped and the
 * next attempt starts from byte 0.
 *
 * The engine knows nothing of heartbeats or manifests: the caller gives it a
 * file, a size, a URL and hooks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#include "ota/device.h"
#include "ota/err.h"

/** How a download ended. */
typedef enum ota__dl_status {
    OTA__DL_DONE,    /* the transfer ended cleanly; the file holds `bytes` (verification decides the rest) */
    OTA__DL_GAVE_UP, /* retries spent, or no fresh URL: resume later */
    OTA__DL_STOPPED, /* the progress hook asked to stop */
    OTA__DL_REFUSED, /* it cannot succeed: a permanent HTTP error, or more bytes than the size */
} ota__dl_status_t;

/** What to download and how. */
typedef struct ota__dl_job {
    const char *path;        /* the part file: created if missing, continued if it has bytes */
    uint64_t size;           /* the image's size */
    char *url;               /* in: the URL to start with; fresh URLs are written here */
    size_t url_cap;          /* bytes at url */
    int max_retries;         /* failed attempts without progress before giving up */
    long backoff_initial_ms; /* delay before the first retry, doubled for each further one */
    long backoff_max_ms;     /* longest delay */
    long connect_timeout_ms;
    long stall_s;          /* an attempt receiving nothing for this long is a lost connection */
    uint64_t throttle_bps; /* 0: no limit */
    uint64_t cut_after;    /* simulated fault: abort the connection once after this many bytes (0: never) */
    bool *cut_done;        /* in/out: the cut happened already (the fault strikes once per device) */
    uint64_t *received;    /* in/out: bytes received so far (what cut_after counts) */
    /** A fresh URL into `url` (`cap` bytes) after a 403; an error (why in `why`) gives up. */
    ota_err_t (*refresh)(void *arg, char *url, size_t cap, char *why, size_t why_cap);
    /** Bytes on disk of `total`; nonzero stops the download. May be NULL. */
    int (*progress)(void *arg, uint64_t bytes, uint64_t total);
    /** One log line. May be NULL. */
    void (*log)(void *arg, const char *line);
    void *arg; /* passed to the hooks */
} ota__dl_job_t;

/** What a download did. */
typedef struct ota__dl_result {
    ota__dl_status_t status;
    uint64_t bytes;                     /* in the file at the end */
    int attempts;                       /* HTTP requests made */
    int retries;                        /* failed attempts */
    int resumes;                        /* 206 answers from a byte > 0 */
    int refreshes;                      /* fresh URLs used */
    char why[OTA_DEVICE_ERROR_MAX + 1]; /* GAVE_UP, STOPPED, REFUSED: why */
} ota__dl_result_t;

/**
 * Runs `job` on the easy handle `c` (reset first). OTA_OK with `res` filled,
 * whatever the status; OTA_ERR_IO when the part file cannot be written (why
 * in res->why), OTA_ERR_NOMEM.
 */
ota_err_t ota__download(CURL *c, const ota__dl_job_t *job, ota__dl_result_t *res);

/** The delay before retry number `retry` (1, 2, ...): initial * 2^(retry-1), at most `max`. */
long ota__backoff_ms(int retry, long initial, long max);

/**
 * Parses a Content-Range value "bytes FIRST-LAST/TOTAL" (TOTAL may be "*").
 * False when it is not of that form or FIRST > LAST. `*total` is UINT64_MAX for "*".
 */
bool ota__content_range(const char *value, uint64_t *first, uint64_t *last, uint64_t *total);

#endif
