#ifndef OTA_DEVICE_JSON_H
#define OTA_DEVICE_JSON_H

/*
 * Parsing JSON with jansson, with out-of-memory told apart from bad input
 * (internal).
 *
 * Why: jansson 2.14 reports many allocation failures inside its parser as
 * syntax errors (json_error_invalid_syntax, or json_error_unknown with no
 * text), so its error code alone would make a device that is short of
 * memory believe that its state file or the server's answer is corrupt.
 * When jansson fails, a second opinion that allocates nothing (a strict RFC
 * 8259 syntax check, UTF-8 included, with jansson's own limits) decides: if
 * the text is well-formed, the failure was memory.
 */

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "ota/err.h"

/**
 * Parses `len` bytes of `text` as a JSON object or array (duplicate member
 * names refused) into `*out` (the caller json_decref's it). OTA_OK;
 * OTA_ERR_INVALID when it is not such JSON (why in `why`, `cap` bytes, may
 * be NULL when `cap` is 0); OTA_ERR_NOMEM.
 */
ota_err_t ota__json_parse(const char *text, size_t len, json_t **out, char *why, size_t cap);

/**
 * True when `len` bytes of `text` are one JSON object or array (RFC 8259:
 * whitespace around it allowed, strings valid UTF-8 without \u0000, nesting
 * at most 2048 deep, as jansson takes them). Allocates nothing.
 */
bool ota__json_syntax_ok(const char *text, size_t len);

#endif
