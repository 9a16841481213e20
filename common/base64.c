#include "ota/base64.h"

#include <stdint.h>

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ota_base64_encoded_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? 4 : 0);
}

size_t ota_base64url_encoded_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

/* Writes the symbols of `len` bytes without padding; returns the end of the output. */
static char *encode(const unsigned char *s, size_t len, char *dst, const char *alphabet)
{
    for (; len >= 3; s += 3, len -= 3) {
        uint32_t v = (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2];
        *dst++ = alphabet[v >> 18];
        *dst++ = alphabet[v >> 12 & 63];
        *dst++ = alphabet[v >> 6 & 63];
        *dst++ = alphabet[v & 63];
    }
    if (len > 0) {
        uint32_t v = (uint32_t)s[0] << 16 | (len == 2 ? (uint32_t)s[1] << 8 : 0);
        *dst++ = alphabet[v >> 18];
        *dst++ = alphabet[v >> 12 & 63];
        if (len == 2)
            *dst++ = alphabet[v >> 6 & 63];
    }
    return dst;
}

void ota_base64_encode(const void *src, size_t len, char *dst)
{
    char *end = encode(src, len, dst, std_alphabet);
    while ((size_t)(end - dst) % 4 != 0)
        *end++ = '=';
    *end = '\0';
}

void ota_base64url_encode(const void *src, size_t len, char *dst)
{
    char *end = encode(src, len, dst, url_alphabet);
    *end = '\0';
}

/* The value of symbol `c`, or -1; `extra` holds the symbols for 62 and 63. */
static int sextet(char c, const char *extra)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == extra[0])
        return 62;
    if (c == extra[1])
        return 63;
    return -1;
}

static ota_err_t decode_symbols(const char *src, size_t len, unsigned char *dst, const char *extra)
{
    uint32_t acc = 0;
    unsigned bits = 0;

    for (size_t i = 0; i < len; i++) {
        int v = sextet(src[i], extra);
        if (v < 0)
            return OTA_ERR_INVALID;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *dst++ = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Bits left over in the last symbol must be zero, or two inputs would decode alike. */
    return acc == 0 ? OTA_OK : OTA_ERR_INVALID;
}

/* Decodes `len` symbols (padding already stripped). */
static ota_err_t decode(const char *src, size_t len, void *dst, size_t cap, size_t *out_len, const char *extra)
{
    if (len % 4 == 1)
        return OTA_ERR_INVALID;
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (n > cap)
        return OTA_ERR_TOO_LARGE;
    ota_err_t err = decode_symbols(src, len, dst, extra);
    if (err == OTA_OK)
        *out_len = n;
    return err;
}

ota_err_t ota_base64_decode(const char *src, size_t len, void *dst, size_t cap, size_t *out_len)
{
    size_t pad = 0;

    if (len % 4 != 0)
        return OTA_ERR_INVALID;
    if (len > 0 && src[len - 1] == '=')
        pad = src[len - 2] == '=' ? 2 : 1;
    return decode(src, len - pad, dst, cap, out_len, "+/");
}

ota_err_t ota_base64url_decode(const char *src, size_t len, void *dst, size_t cap, size_t *out_len)
{
    return decode(src, len, dst, cap, out_len, "-_");
}
