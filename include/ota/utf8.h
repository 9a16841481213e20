#ifndef OTA_UTF8_H
#define OTA_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Well-formed UTF-8 (RFC 3629), as JSON text and PostgreSQL text take it:
 * no stray or missing continuation bytes, no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing past U+10FFFF. Shared by the server and the
 * device client; no allocation.
 */

/** Bytes of the well-formed UTF-8 sequence at the start of `len` (> 0) bytes of `s`; 0 when there is none. */
size_t ota_utf8_sequence(const char *s, size_t len);

/** True when all `len` bytes of `s` are well-formed UTF-8 (NUL counts as U+0000). */
bool ota_utf8_valid(const char *s, size_t len);

/** Replaces with '?' every byte of the `len` bytes at `s` that starts no well-formed sequence, so that all of them
 * are UTF-8 afterwards; returns how many it replaced. */
size_t ota_utf8_scrub(char *s, size_t len);

#endif
