/*
 * libFuzzer driver for the Range header parser. The first eight input bytes
 * are the object's size (little-endian, at most 2^63 - 1; when the first
 * byte is odd, under 4096, where the edges are), the rest is the
 * header value. A partial range must lie within the object, first <= last;
 * a suffix range ends at the last byte; an unsatisfiable one starts past the
 * end; and a value of canonical form "bytes=first-last" must read back as
 * itself.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/range.h"

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_range.c:%d: check failed\n", line);
        abort();
    }
}

/* The range written out again and read back: the same bytes. */
static void check_canonical(uint64_t size, uint64_t first, uint64_t last)
{
    char value[64];
    uint64_t f2 = 0, l2 = 0;
    int n = snprintf(value, sizeof value, "bytes=%" PRIu64 "-%" PRIu64, first, last);
    check(n > 0 && (size_t)n < sizeof value);
    check(ota__range_parse(value, (size_t)n, size, &f2, &l2) == OTA_RANGE_PARTIAL);
    check(f2 == first && l2 == last);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    uint64_t size = 0, first = UINT64_MAX, last = UINT64_MAX;
    if (len < 8)
        return 0;
    for (int i = 7; i >= 0; i--)
        size = size << 8 | data[i];
    size &= (uint64_t)INT64_MAX; /* a file's size is an off_t */
    if (data[0] & 1)             /* small objects: where the edges are */
        size = (size >> 1) % 4096;
    data += 8;
    len -= 8;

    /* A copy of its own, so ASan sees any read past the end. */
    char *value = malloc(len > 0 ? len : 1);
    check(value != NULL);
    if (len > 0)
        memcpy(value, data, len);
    ota_range_result_t r = ota__range_parse(value, len, size, &first, &last);
    switch (r) {
    case OTA_RANGE_PARTIAL:
        check(size > 0 && first <= last && last < size);
        if (len > 6 && value[6] == '-')
            check(last == size - 1);
        check_canonical(size, first, last);
        break;
    case OTA_RANGE_UNSATISFIABLE:
        check(first == UINT64_MAX && last == UINT64_MAX);
        break;
    case OTA_RANGE_NONE:
        check(first == UINT64_MAX && last == UINT64_MAX);
        break;
    default:
        check(0);
    }
    free(value);
    return 0;
}
