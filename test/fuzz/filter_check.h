#ifndef OTA_TEST_FUZZ_FILTER_CHECK_H
#define OTA_TEST_FUZZ_FILTER_CHECK_H

#include <jansson.h>

/*
 * What every fleet filter that reads (http/fleet_filter.h) must be, from a
 * body or from a query: normalized. Aborts, naming the line, when it is not.
 */

/** Checks `filter` (borrowed): known members only (`from_query` adds ota_status, takes no ids), tag lists of valid
 * tags, sorted and distinct (tags_any not empty), a version range in normal form, ids lower-case UUIDs, sorted and
 * distinct. */
void ota_fuzz_check_filter(json_t *filter, int from_query);

/** Checks that `tags` (borrowed) is an array of at most OTA_TAGS_MAX valid tags, sorted and distinct. */
void ota_fuzz_check_tags(json_t *tags);

#endif
