#ifndef OTA_SERVER_HTTP_CURSOR_H
#define OTA_SERVER_HTTP_CURSOR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Keyset pagination cursors. A list is ordered by a key and an id: newest
 * first by (created_at, id) for most lists, by (wave, device id) for a
 * rollout's targets. The cursor names the last row of a page as
 * base64url("<key>,<uuid>"), the key being a timestamp with microseconds or
 * a small number, so the next page is one index range scan whatever its
 * depth, and rows inserted meanwhile never shift a page. Clients treat the
 * cursor as opaque.
 */

/** Room for a cursor's key: a timestamp ("2026-11-21T10:00:00.123456Z" + NUL) or a number. */
#define OTA_CURSOR_TS_MAX 32
/** Room for an encoded cursor with its NUL. */
#define OTA_CURSOR_MAX 96

/** Encodes (`ts`, `id`) into `out`; `ts` is the key (a timestamp or a number). Returns false when they do not
 * fit or are malformed. */
bool ota__cursor_encode(const char *ts, const char *id, char out[OTA_CURSOR_MAX]);

/**
 * Decodes `len` bytes of `s`. Accepts only what ota__cursor_encode makes
 * (strict base64url, a timestamp of the form above, a UUID); writes the
 * timestamp and the lower-case id. Returns false for anything else.
 */
bool ota__cursor_decode(const char *s, size_t len, char ts[OTA_CURSOR_TS_MAX], char id[37]);

#endif
