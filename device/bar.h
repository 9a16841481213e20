#ifndef OTA_DEVICE_BAR_H
#define OTA_DEVICE_BAR_H

/*
 * The download progress bar of the ota-device program: drawn on one line of
 * a terminal, redrawn at most every 100 ms; nothing at all when the stream
 * is not a terminal (logs and test captures stay clean).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ota_bar {
    FILE *out;
    bool enabled;    /* `out` is a terminal */
    bool drawn;      /* a bar is on the current line */
    int64_t last_ms; /* when it was last drawn */
} ota_bar_t;

/** Draws on `out` if it is a terminal. */
void ota_bar_init(ota_bar_t *bar, FILE *out);

/** Shows `bytes` of `total`. */
void ota_bar_update(ota_bar_t *bar, uint64_t bytes, uint64_t total);

/** Erases the bar (before other output on the same stream). */
void ota_bar_clear(ota_bar_t *bar);

/** Formats `bytes of total` as the bar does ("[#####-----]  50%  29.3 KiB / 58.6 KiB") into `out` (`cap` bytes). */
void ota_bar_format(uint64_t bytes, uint64_t total, int width, char *out, size_t cap);

#endif
