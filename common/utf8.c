#include "ota/utf8.h"

size_t ota_utf8_sequence(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0; /* a continuation byte, or a lead byte only overlong forms or values past U+10FFFF have */
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* The second byte tells the rest of the overlong forms, the surrogates and what lies past U+10FFFF. */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90) ||
        (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

bool ota_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if ((n = ota_utf8_sequence(s + i, len - i)) == 0)
            return false;
    return true;
}

size_t ota_utf8_scrub(char *s, size_t len)
{
    size_t replaced = 0;
    for (size_t i = 0, n; i < len; i += n) {
        if ((n = ota_utf8_sequence(s + i, len - i)) == 0) {
            s[i] = '?';
            n = 1;
            replaced++;
        }
    }
    return replaced;
}
