#ifndef OTA_SERVER_CORE_VERSION_RANGE_H
#define OTA_SERVER_CORE_VERSION_RANGE_H

#include <stdbool.h>

#include "ota/semver.h"

/*
 * Version ranges, as the fleet filter takes them (">=1.0.0 <1.2.0"):
 * comparators separated by spaces, all of which a version must satisfy by
 * semver precedence. A comparator is an operator (<, <=, >, >=, =) and a
 * semantic version (ota/semver.h, a leading 'v' allowed); a bare version
 * means =. The database resolves a normalized range to the versions devices
 * run (migrations/functions/ota_fleet_versions.sql).
 */

/** Most comparators in one range. */
#define OTA_VERSION_RANGE_MAX_COMPARATORS 8

/** Room for the longest normalized range, with its NUL. */
#define OTA_VERSION_RANGE_MAX (OTA_VERSION_RANGE_MAX_COMPARATORS * (2 + OTA_SEMVER_MAX + 1))

/**
 * Checks `in` and writes its normalized form into `out`: every operator
 * written out ("1.1.0" becomes "=1.1.0"), every version normalized (no
 * leading 'v'), one space between comparators, none around them; the
 * comparators stay in their order. False, with `out` empty, for anything
 * else: no comparator, more than OTA_VERSION_RANGE_MAX_COMPARATORS, an
 * operator without a version, a malformed version, a character other than
 * a space between comparators.
 */
bool ota__version_range_normalize(const char *in, char out[OTA_VERSION_RANGE_MAX]);

#endif
