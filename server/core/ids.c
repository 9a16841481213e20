#include "core/ids.h"

#include <ctype.h>
#include <uuid/uuid.h>

void ota__uuid_new(char out[OTA_UUID_LEN + 1])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

bool ota__uuid_parse(const char *s, size_t len, char out[OTA_UUID_LEN + 1])
{
    if (len != OTA_UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        unsigned char c = (unsigned char)s[i];
        if (dash ? c != '-' : !isxdigit(c))
            return false;
        out[i] = (char)tolower(c);
    }
    out[len] = '\0';
    return true;
}

bool ota__slug_valid(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-');
        if (!ok)
            return false;
    }
    return true;
}
