#include "filter_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ids.h"
#include "core/version_range.h"
#include "http/fleet_filter.h"

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "filter_check.c:%d: check failed\n", line);
        abort();
    }
}

/* An array of strings in strictly increasing byte order (so distinct), each passing `valid`. */
static void check_sorted(json_t *list, size_t max, int (*valid)(json_t *))
{
    size_t i;
    json_t *item;
    check(json_is_array(list) && json_array_size(list) >= 1 && json_array_size(list) <= max);
    json_array_foreach(list, i, item)
    {
        check(json_is_string(item) && valid(item));
        if (i > 0)
            check(strcmp(json_string_value(json_array_get(list, i - 1)), json_string_value(item)) < 0);
    }
}

static int tag_ok(json_t *tag)
{
    return ota__tag_valid(json_string_value(tag));
}

static int id_ok(json_t *id)
{
    char lower[OTA_UUID_LEN + 1];
    return ota__uuid_parse(json_string_value(id), json_string_length(id), lower) &&
           strcmp(lower, json_string_value(id)) == 0;
}

void ota_fuzz_check_tags(json_t *tags)
{
    if (json_array_size(tags) > 0)
        check_sorted(tags, OTA_TAGS_MAX, tag_ok);
    else
        check(json_is_array(tags));
}

void ota_fuzz_check_filter(json_t *filter, int from_query)
{
    const char *key;
    json_t *value;
    check(json_is_object(filter));
    json_object_foreach(filter, key, value)
    {
        if (strcmp(key, "tags_all") == 0 || strcmp(key, "tags_any") == 0) {
            check_sorted(value, OTA_TAGS_MAX, tag_ok);
        } else if (strcmp(key, "ids") == 0) {
            check(!from_query);
            check_sorted(value, OTA_FLEET_IDS_MAX, id_ok);
        } else if (strcmp(key, "version") == 0) {
            char again[OTA_VERSION_RANGE_MAX];
            check(json_is_string(value) && ota__version_range_normalize(json_string_value(value), again));
            check(strcmp(again, json_string_value(value)) == 0);
        } else if (strcmp(key, "serial_prefix") == 0) {
            check(json_is_string(value) && json_string_length(value) >= 1);
            check(json_string_length(value) <= OTA_SERIAL_PREFIX_MAX);
        } else if (strcmp(key, "model") == 0) {
            check(json_is_string(value));
            check(from_query || ota__slug_valid(json_string_value(value), json_string_length(value)));
        } else {
            check(from_query && strcmp(key, "ota_status") == 0 && json_is_string(value));
        }
    }
    char *text = json_dumps(filter, JSON_COMPACT);
    check(text != NULL);
    free(text);
}
