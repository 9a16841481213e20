#include "ota/hex.h"

void ota_hex_encode(const void *src, size_t len, char *dst)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *in = src;
    for (size_t i = 0; i < len; i++) {
        dst[2 * i] = digits[in[i] >> 4];
        dst[2 * i + 1] = digits[in[i] & 15];
    }
    dst[2 * len] = '\0';
}

int ota_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
