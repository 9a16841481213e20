#ifndef OTA_HEX_H
#define OTA_HEX_H

#include <stddef.h>

/*
 * Hexadecimal, as hashes and percent-escapes use it. Shared by the server
 * and the device client; no allocation.
 */

/** Writes `len` bytes of `src` as 2 * `len` lower-case hex digits and a NUL into `dst`. */
void ota_hex_encode(const void *src, size_t len, char *dst);

/** The value of hex digit `c` (either case), or -1 when it is not one. */
int ota_hex_value(char c);

#endif
