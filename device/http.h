#ifndef OTA_DEVICE_HTTP_H
#define OTA_DEVICE_HTTP_H

/*
 * One JSON request to the OTA API over a libcurl easy handle (internal).
 * The handle is reused (keep-alive) and reset before each request.
 */

#include <stddef.h>
#include <curl/curl.h>

#include "ota/err.h"

#define OTA__API_BODY_MAX (1024 * 1024) /* largest API answer we accept */

/** An answer. */
typedef struct ota__http_resp {
    long status; /* the HTTP status */
    char *body;  /* malloc'ed, NUL-terminated (never NULL after OTA_OK); free with ota__http_resp_free */
    size_t len;  /* bytes of body without the NUL */
} ota__http_resp_t;

/**
 * Sends `method` to `url` with `Authorization: Bearer <bearer>` when
 * `bearer` is not NULL and the NUL-terminated JSON `json` as the body when it
 * is not NULL; waits at most `timeout_ms`. OTA_OK when an answer came (any
 * status; `out` filled); OTA_ERR_UNAVAILABLE when none did (why in `why`);
 * OTA_ERR_TOO_LARGE for a body over OTA__API_BODY_MAX; OTA_ERR_NOMEM.
 */
ota_err_t ota__http_request(CURL *c, const char *method, const char *url, const char *bearer, const char *json,
                            long timeout_ms, ota__http_resp_t *out, char *why, size_t cap);

/** Frees what `r` holds (not `r`). */
void ota__http_resp_free(ota__http_resp_t *r);

/**
 * A one-line description of a failed answer for messages: "HTTP 403: <the
 * contract's error.message, or the start of the body>", into `out` (`cap` bytes).
 */
void ota__http_describe(const ota__http_resp_t *r, char *out, size_t cap);

/** The error class of an answer's status: OTA_OK (2xx), OTA_ERR_NOT_FOUND (404), OTA_ERR_UNAVAILABLE (408, 429, 5xx),
 * else OTA_ERR_INVALID. */
ota_err_t ota__http_status_err(long status);

#endif
