#ifndef OTA_SERVER_HTTP_QUERY_H
#define OTA_SERVER_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "http/call.h"
#include "http/cursor.h"

/*
 * Query-string parameters and list paging (?limit=&after=).
 */

/** Longest value of one query parameter, decoded. */
#define OTA_QUERY_VALUE_MAX 256

/** The result of looking up one parameter. */
typedef enum ota_query_result {
    OTA_QUERY_ABSENT,
    OTA_QUERY_FOUND,
    OTA_QUERY_INVALID, /**< bad percent-encoding, not UTF-8, too long, or given twice */
} ota_query_result_t;

/**
 * Finds parameter `name` in `query` (`len` bytes after the '?', may be
 * empty) and writes its percent-decoded value ('+' is a space) into `out`;
 * a value that does not decode to UTF-8 is OTA_QUERY_INVALID.
 * Given more than once, it is OTA_QUERY_INVALID (for parameters that take
 * one value; ota__query_next reads repeatable ones).
 */
ota_query_result_t ota__query_get(const char *query, size_t len, const char *name, char out[OTA_QUERY_VALUE_MAX]);

/**
 * The next occurrence of parameter `name` in `query` at or after byte
 * `*pos` (start with 0): FOUND with its decoded value in `out` and `*pos`
 * moved past it, ABSENT when there is none left, INVALID when this one is
 * badly encoded or too long. For repeatable parameters (`tag=eu&tag=beta`).
 */
ota_query_result_t ota__query_next(const char *query, size_t len, const char *name, size_t *pos,
                                   char out[OTA_QUERY_VALUE_MAX]);

/** The query string of the call's request, without the '?' (empty when it has none). */
void ota__query_string(ota_call_t *call, const char **query, size_t *len);

/** Default and largest page size of a list. */
#define OTA_PAGE_DEFAULT 50
#define OTA_PAGE_MAX 500

/** Where a page starts and how long it is, as list statements take them. */
typedef struct ota_page {
    char after_ts[OTA_CURSOR_TS_MAX]; /**< "infinity" for the first page */
    char after_id[37];
    int limit;
    char limit_plus_one[16]; /**< limit + 1 as text: one row more tells whether a next page exists */
} ota_page_t;

/**
 * Reads `limit` (1..OTA_PAGE_MAX) and `after` (a cursor) from the call's
 * query string. On a bad value answers 400 `bad_request`, frees the call and
 * returns false.
 */
bool ota__page_read(ota_call_t *call, ota_page_t *page);

/**
 * Reads optional query parameter `name` into `out`; answers 400 and returns
 * false when it is malformed. `*present` tells whether it was given.
 */
bool ota__query_param(ota_call_t *call, const char *name, char out[OTA_QUERY_VALUE_MAX], bool *present);

#endif
