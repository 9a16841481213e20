#ifndef OTA_SERVER_HTTP_FLEET_FILTER_H
#define OTA_SERVER_HTTP_FLEET_FILTER_H

#include <stddef.h>
#include <jansson.h>

#include "http/call.h"
#include "http/tags.h"
#include "http/validate.h"

/*
 * The fleet filter: which devices a device list, a bulk tag change or a
 * rollout is about. One JSON object,
 *
 *     {"model"?, "tags_all"?: [...], "tags_any"?: [...], "version"?: "<range>",
 *      "serial_prefix"?, "ids"?: [...]}
 *
 * in which every member given must hold; {} is every device. It is read
 * here, from a request body or from a list's query parameters, checked, and
 * normalized, and only the normalized form goes to the database, which turns
 * it into SQL (migrations/functions/ota_fleet_where.sql):
 *
 *   - tags_all, tags_any: tags (http/tags.h), distinct and in byte order, at
 *     most OTA_TAGS_MAX each; an empty tags_all is left out (it holds for
 *     every device), an empty tags_any is refused (it would hold for none);
 *   - version: a range, normalized (core/version_range.h);
 *   - serial_prefix: 1 to OTA_SERIAL_PREFIX_MAX bytes, compared byte for byte;
 *   - ids: 1 to OTA_FLEET_IDS_MAX UUIDs, lower case, distinct, in byte order;
 *   - model: a model id (a body's must be a slug; an unknown one matches nothing);
 *   - a member not given, or given as JSON null, is absent.
 *
 * A body's filter that names a member this server does not know is refused
 * (422), so that a misspelt member never widens a bulk change to the whole
 * fleet. Device lists also take ota_status, from their query only.
 */

/** Most ids in one filter. */
#define OTA_FLEET_IDS_MAX 10000
/** Longest serial_prefix, in bytes (the longest serial). */
#define OTA_SERIAL_PREFIX_MAX 128

/** How many values devices.ota_status takes, and the values, in the order of the assignment states. */
#define OTA_STATUS_COUNT 7
extern const char *const ota__ota_statuses[OTA_STATUS_COUNT];

/**
 * Reads the filter in member `field` of the body `v` checks: a new
 * normalized filter, or NULL when the member is absent or JSON null. Also
 * NULL when it is malformed, with every problem recorded in `v` under
 * "<field>.<member>" ("filter.tags_all"): a wrong JSON type is a 400, a bad
 * value a 422, as ota__validate_done answers them. A caller that requires
 * the filter records "is required" when the member is absent.
 */
json_t *ota__fleet_filter_read(ota_validate_t *v, const char *field);

/**
 * The filter of a device list's query string (`len` bytes of `query`,
 * without the '?'): model=, ota_status=, tag= (repeatable: every one must be
 * on the device, as tags_all), tag_any= (repeatable: one of them, as
 * tags_any), version=, serial_prefix=. A new normalized filter, {} when
 * none is given. NULL for a malformed one, with the problem in `err` (`cap`
 * bytes), for a 400.
 */
json_t *ota__fleet_filter_from_query(const char *query, size_t len, char *err, size_t cap);

/** ota__fleet_filter_from_query on the call's query string; on NULL it has answered 400 and freed the call. */
json_t *ota__fleet_filter_query(ota_call_t *call);

#endif
