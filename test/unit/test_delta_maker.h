#ifndef OTA_TEST_DELTA_MAKER_H
#define OTA_TEST_DELTA_MAKER_H

/*
 * Deltas for the device tests, made with libzstd as the server makes them:
 * the old image as the frame's prefix, long-distance matching, a window
 * over both images, the content size and (with `checksum`) a checksum in
 * the frame. Aborts the test on any libzstd error.
 */

#include <stddef.h>

/** The delta from `old` (`old_len` bytes, may be 0) to `new`, malloc'ed into *out (the caller frees it). */
void test_make_delta(const unsigned char *old, size_t old_len, const unsigned char *new, size_t new_len, int checksum,
                     unsigned char **out, size_t *out_len);

#endif
