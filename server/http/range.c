#include "http/range.h"

#include <stdbool.h>
#include <string.h>

/* A decimal number without sign; false when empty, not digits, or over 2^63 - 1. */
static bool parse_number(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > (uint64_t)INT64_MAX)
            return false;
    }
    *out = v;
    return true;
}

ota_range_result_t ota__range_parse(const char *value, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
    static const char unit[] = "bytes=";
    if (len <= sizeof unit - 1 || memcmp(value, unit, sizeof unit - 1) != 0)
        return OTA_RANGE_NONE;
    const char *spec = value + sizeof unit - 1;
    size_t n = len - (sizeof unit - 1);
    const char *dash = memchr(spec, '-', n);
    if (dash == NULL || memchr(spec, ',', n) != NULL)
        return OTA_RANGE_NONE;
    size_t left = (size_t)(dash - spec), right = n - left - 1;
    uint64_t a, b;

    if (left == 0) { /* the last b bytes */
        if (!parse_number(dash + 1, right, &b))
            return OTA_RANGE_NONE;
        if (b == 0 || size == 0)
            return OTA_RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return OTA_RANGE_PARTIAL;
    }
    if (!parse_number(spec, left, &a))
        return OTA_RANGE_NONE;
    if (right == 0) {
        b = UINT64_MAX;
    } else if (!parse_number(dash + 1, right, &b) || b < a) {
        return OTA_RANGE_NONE;
    }
    if (a >= size)
        return OTA_RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return OTA_RANGE_PARTIAL;
}
