#ifndef OTA_SERVER_UTC_TIME_H
#define OTA_SERVER_UTC_TIME_H

#include <stdbool.h>
#include <time.h>

/** Length of "YYYY-MM-DDTHH:MM:SSZ", without the NUL. */
#define OTA_UTC_TEXT_LEN 20

/**
 * Writes `t` as "YYYY-MM-DDTHH:MM:SSZ" (UTC), the form of every time in the
 * API, into `out`. False, with `out` empty, for a year outside 0000-9999
 * (never one from the clock).
 *
 * Why not strftime: a delivering heartbeat writes two of these, and
 * strftime's format interpreter cost ~1,000 instructions each (callgrind);
 * writing the digits costs a tenth of that.
 */
bool ota__utc_text(time_t t, char out[OTA_UTC_TEXT_LEN + 1]);

#endif
