#include "http/tags.h"

#include <string.h>

#include "core/json_util.h"

static bool tag_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!first && strchr("._:-", c) != NULL);
}

bool ota__tag_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > OTA_TAG_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!tag_char(s[i], i == 0))
            return false;
    return true;
}

json_t *ota__tags_read(ota_validate_t *v, json_t *value, const char *field)
{
    size_t i;
    json_t *tag;
    if (value == NULL || json_is_null(value))
        return NULL;
    if (!ota__validate_string_array(v, value, field))
        return NULL;
    json_array_foreach(value, i, tag)
    {
        if (!ota__tag_valid(json_string_value(tag))) {
            ota__validate_fail(v, field, OTA_TAG_PROBLEM);
            return NULL;
        }
    }
    json_t *sorted = ota__json_strings_sorted(value);
    if (json_array_size(sorted) > OTA_TAGS_MAX) {
        json_decref(sorted);
        ota__validate_fail(v, field, "at most 32 distinct tags");
        return NULL;
    }
    return sorted;
}
