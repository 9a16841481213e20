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

/*
 * The value of each of the 62 symbols both alphabets share, plus one (0: not
 * one of them), by byte value. A table, not comparisons: a manifest's
 * signature is decoded on every delivery.
 */
/* clang-format off */
static const unsigned char SHARED_VALUE_PLUS_1[256] = {
    ['A'] = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    ['a'] = 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
    ['0'] = 53, 54, 55, 56, 57, 58, 59, 60, 61, 62};
/* clang-format on */

/* The value of symbol `c`, or -1; `extra` holds the symbols for 62 and 63. */
static int sextet(char c, const char *extra)
{
    unsigned char shared = SHARED_VALUE_PLUS_1[(unsigned char)c];
    if (shared != 0)
        return shared - 1;
    if (c == extra[0])
        return 62;
    if (c == extra[1])
        return 63;
    return -1;
}

/* The 24 bits of `n` (2 to 4) symbols, the first highest, missing ones zero; -1 if one is not a symbol. */
static int32_t group_bits(const char *src, size_t n, const char *extra)
{
    int a = sextet(src[0], extra), b = sextet(src[1], extra);
    int c = n > 2 ? sextet(src[2], extra) : 0, d = n > 3 ? sextet(src[3], extra) : 0;
    if ((a | b | c | d) < 0)
        return -1;
    return a << 18 | b << 12 | c << 6 | d;
}

/*
 * Decodes `len` symbols (len % 4 != 1) into `dst`: each group of four is
 * three bytes, as encode() made them; a last group of two or three symbols is
 * one or two bytes, and the bits after those must be zero, or two inputs
 * would decode alike.
 */
static ota_err_t decode_symbols(const char *src, size_t len, unsigned char *dst, const char *extra)
{
    for (; len >= 4; src += 4, len -= 4) {
        int32_t v = group_bits(src, 4, extra);
        if (v < 0)
            return OTA_ERR_INVALID;
        *dst++ = (unsigned char)(v >> 16);
        *dst++ = (unsigned char)(v >> 8);
        *dst++ = (unsigned char)v;
    }
    if (len > 0) {
        int32_t v = group_bits(src, len, extra);
        if (v < 0 || (v & (len == 2 ? 0xffff : 0xff)) != 0)
            return OTA_ERR_INVALID;
        *dst++ = (unsigned char)(v >> 16);
        if (len == 3)
            *dst = (unsigned char)(v >> 8);
    }
    return OTA_OK;
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
