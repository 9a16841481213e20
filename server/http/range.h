#ifndef OTA_SERVER_HTTP_RANGE_H
#define OTA_SERVER_HTTP_RANGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The HTTP Range header of a GET, read as S3 reads it: one byte range
 * ("bytes=first-last", "bytes=first-", "bytes=-suffix"); the last byte is
 * clipped to the object; a range starting past the end is unsatisfiable
 * (416); anything malformed, or several ranges, is ignored (the whole object,
 * 200).
 */
typedef enum ota_range_result {
    OTA_RANGE_NONE,          /**< no usable range: send everything */
    OTA_RANGE_PARTIAL,       /**< send bytes first..last (inclusive) with 206 */
    OTA_RANGE_UNSATISFIABLE, /**< 416 */
} ota_range_result_t;

/** Reads `len` bytes of the header value `value` for an object of `size` bytes. */
ota_range_result_t ota__range_parse(const char *value, size_t len, uint64_t size, uint64_t *first, uint64_t *last);

#endif
