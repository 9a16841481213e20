#ifndef OTA_SERVER_IDS_H
#define OTA_SERVER_IDS_H

#include <stdbool.h>
#include <stddef.h>

/** Length of a UUID in text form (8-4-4-4-12), without the NUL. */
#define OTA_UUID_LEN 36

/** Writes a new random (v4) UUID, lower case, NUL-terminated, into `out`. */
void ota__uuid_new(char out[OTA_UUID_LEN + 1]);

/**
 * Checks that `len` bytes of `s` are a UUID in the hyphenated text form (any
 * case) and writes its lower-case form into `out`. Returns false otherwise.
 */
bool ota__uuid_parse(const char *s, size_t len, char out[OTA_UUID_LEN + 1]);

/** True when `len` bytes of `s` are a model id: [a-z0-9][a-z0-9-]{0,62}. */
bool ota__slug_valid(const char *s, size_t len);

#endif
