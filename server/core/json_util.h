#ifndef OTA_SERVER_JSON_UTIL_H
#define OTA_SERVER_JSON_UTIL_H

#include <jansson.h>
#include <libpq-fe.h>

/*
 * Turning database columns (text format) into JSON values. Each returns a
 * new reference; SQL NULL becomes JSON null. The server aborts on
 * out-of-memory, so none returns NULL.
 */

/** The column as a JSON string. */
json_t *ota__json_col_string(const PGresult *res, int row, int col);
/** The column ('t'/'f') as a JSON boolean. */
json_t *ota__json_col_bool(const PGresult *res, int row, int col);
/** The column (a decimal integer) as a JSON integer. */
json_t *ota__json_col_int(const PGresult *res, int row, int col);

/** The column (JSON text made by SQL) parsed, or null. */
json_t *ota__json_col_json(const PGresult *res, int row, int col);

/** `value` itself, or aborts when it is NULL (jansson's only failure is out-of-memory). */
json_t *ota__json_checked(json_t *value);

/** The compact JSON text of `value` (any JSON value), malloc'ed; aborts on out-of-memory. */
char *ota__json_text(const json_t *value);

/**
 * The strings of `strings` (a JSON array of strings, not stolen) distinct and in byte order (strcmp), as a new
 * array: lists whose order and repeats do not matter (tags, ids) in one canonical form.
 */
json_t *ota__json_strings_sorted(json_t *strings);

#endif
