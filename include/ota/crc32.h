#ifndef OTA_CRC32_H
#define OTA_CRC32_H

#include <stddef.h>
#include <stdint.h>

/**
 * CRC-32 of IEEE 802.3 (reflected, polynomial 0xEDB88320, initial value and
 * final XOR 0xFFFFFFFF): the value of zlib's crc32() and of the `crc32`
 * field of an artifact. Shared by the server and the device client: it
 * allocates nothing, keeps no state between calls and is safe from any thread.
 */

/**
 * Returns the CRC-32 of the bytes already summed into `crc` followed by the
 * `len` bytes at `data`. Start with `crc` = 0 (the CRC of no bytes) and feed
 * each result to the next call: ota_crc32_update(ota_crc32_update(0, a, n), b, m)
 * is the CRC-32 of a followed by b. `data` may be NULL when `len` is 0.
 */
uint32_t ota_crc32_update(uint32_t crc, const void *data, size_t len);

#endif
