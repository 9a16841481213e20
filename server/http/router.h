#ifndef OTA_SERVER_HTTP_ROUTER_H
#define OTA_SERVER_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Route matching, independent of h2o so that it can be tested alone.
 *
 * A pattern is a path whose segments are literal text or a parameter:
 * `{uuid}` (must be a UUID; the dispatcher answers 400 otherwise) or
 * `{name}` (any non-empty segment). Example: "/v1/devices/{uuid}/token".
 * The path handed to the matcher carries no query string.
 */

/** Most parameters a pattern may have. */
#define OTA_ROUTE_MAX_PARAMS 4

/** Who may call a route (checked before its handler runs). */
typedef enum ota_access {
    OTA_ACCESS_PUBLIC,        /**< no credentials */
    OTA_ACCESS_API,           /**< an API key: admin, or viewer for GET */
    OTA_ACCESS_ADMIN,         /**< an admin API key, whatever the method */
    OTA_ACCESS_DEVICE_OR_API, /**< the token of the device named by the first parameter, or an API key */
    OTA_ACCESS_DEVICE,        /**< the token of the device named by the first parameter only */
} ota_access_t;

/** How a route reads its request body. */
typedef enum ota_body_kind {
    OTA_BODY_NONE,   /**< a body is ignored */
    OTA_BODY_JSON,   /**< JSON, at most OTA_MAX_JSON_BODY bytes */
    OTA_BODY_JSON_BULK, /**< JSON, at most OTA_MAX_BULK_JSON_BODY bytes: a fleet filter's ids */
    OTA_BODY_UPLOAD, /**< any content type, at most OTA_MAX_BODY bytes */
} ota_body_kind_t;

struct ota_call;
/** Handles one request; it must end, now or later, in exactly one ota__respond_* call. */
typedef void (*ota_handler_fn)(struct ota_call *call);

/** One entry of the route table. */
typedef struct ota_route {
    const char *method;  /**< "GET", "POST", ... */
    const char *pattern; /**< see above */
    ota_access_t access;
    ota_body_kind_t body;
    ota_handler_fn handler;
    const char *name; /**< a stable label for logs and metrics, e.g. "devices.get" */
} ota_route_t;

/** A parameter taken from the path: points into the matched path, not NUL-terminated. */
typedef struct ota_route_param {
    const char *base;
    size_t len;
    bool is_uuid; /**< the pattern said {uuid} */
} ota_route_param_t;

/** The outcome of matching one request. */
typedef enum ota_route_result {
    OTA_ROUTE_FOUND,
    OTA_ROUTE_NOT_FOUND,          /**< no pattern matches the path */
    OTA_ROUTE_METHOD_NOT_ALLOWED, /**< some pattern matches, none with this method */
} ota_route_result_t;

typedef struct ota_route_match {
    const ota_route_t *route; /**< when FOUND */
    size_t index;             /**< when FOUND: the route's index in the table */
    ota_route_param_t params[OTA_ROUTE_MAX_PARAMS];
    int nparams;
    char allow[96]; /**< when METHOD_NOT_ALLOWED: the methods the path accepts, "GET, POST" */
} ota_route_match_t;

/**
 * Matches `method` and `path` (lengths given) against `n` routes in order.
 * HEAD is matched as GET. Fills `m` and returns the outcome.
 */
ota_route_result_t ota__route_match(const ota_route_t *routes, size_t n, const char *method, size_t method_len,
                                    const char *path, size_t path_len, ota_route_match_t *m);

#endif
