#ifndef OTA_SERVER_HTTP_TAGS_H
#define OTA_SERVER_HTTP_TAGS_H

#include <stdbool.h>
#include <jansson.h>

#include "http/validate.h"

/*
 * Device tags: short labels an operator puts on devices (eu, beta,
 * site:lyon) to select them by (http/fleet_filter.h). A tag is
 * [a-z0-9][a-z0-9._:-]{0,63}; a device has at most OTA_TAGS_MAX of them.
 * Tags are kept distinct and in byte order (strcmp), in the API and in the
 * database alike (the devices.tags column's collation is "C"), so a list
 * given twice in another order, or with repeats, is the same list.
 */

/** Longest tag, in bytes. */
#define OTA_TAG_MAX_LEN 64
/** Most tags on one device, and in one list of a request. */
#define OTA_TAGS_MAX 32

/** True when `s` is a tag. */
bool ota__tag_valid(const char *s);

/** The problem recorded for a malformed tag (shared by the body and query readers). */
#define OTA_TAG_PROBLEM "each tag must match [a-z0-9][a-z0-9._:-]{0,63}"

/**
 * Reads `value`, the JSON value of field `field` (NULL when absent), as a
 * list of tags: a new array of the same tags, distinct and in byte order.
 * NULL when `value` is NULL or JSON null. Also NULL, with the problem
 * recorded in `v` under `field`, when it is not an array of strings (400),
 * or holds a malformed tag or more than OTA_TAGS_MAX distinct ones (422).
 */
json_t *ota__tags_read(ota_validate_t *v, json_t *value, const char *field);

#endif
