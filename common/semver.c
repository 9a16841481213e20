#include "ota/semver.h"

#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_ident_char(char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
}

static int all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return 0;
    }
    return 1;
}

/* Reads a MAJOR, MINOR or PATCH at s[*pos], advancing *pos past it. */
static int parse_number(const char *s, size_t len, size_t *pos, uint64_t *out)
{
    size_t i = *pos;
    uint64_t n = 0;

    if (i >= len || !is_digit(s[i]))
        return 0;
    if (s[i] == '0' && i + 1 < len && is_digit(s[i + 1]))
        return 0;
    for (; i < len && is_digit(s[i]); i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (n > ((uint64_t)INT64_MAX - d) / 10)
            return 0;
        n = n * 10 + d;
    }
    *pos = i;
    *out = n;
    return 1;
}

static int skip_dot(const char *s, size_t len, size_t *pos)
{
    if (*pos >= len || s[*pos] != '.')
        return 0;
    (*pos)++;
    return 1;
}

static int parse_core(const char *s, size_t len, size_t *pos, ota_semver_t *v)
{
    return parse_number(s, len, pos, &v->major) && skip_dot(s, len, pos) && parse_number(s, len, pos, &v->minor) &&
           skip_dot(s, len, pos) && parse_number(s, len, pos, &v->patch);
}

/* Checks a dot-separated identifier list; pre-release numbers may not have leading zeros. */
static int valid_idents(const char *s, size_t len, int is_pre)
{
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_ident_char(s[i]))
                return 0;
            continue;
        }
        if (i == start)
            return 0;
        if (is_pre && i - start > 1 && s[start] == '0' && all_digits(s + start, i - start))
            return 0;
        start = i + 1;
    }
    return 1;
}

/* Parses the optional "-pre" and "+build" that follow the core at s[pos]. */
static int parse_suffix(const char *s, size_t len, size_t pos, ota_semver_t *v)
{
    if (pos < len && s[pos] == '-') {
        const char *plus = memchr(s + pos, '+', len - pos);
        size_t end = plus ? (size_t)(plus - s) : len;
        if (!valid_idents(s + pos + 1, end - pos - 1, 1))
            return 0;
        v->pre_off = pos + 1;
        v->pre_len = end - pos - 1;
        pos = end;
    }
    if (pos < len && s[pos] == '+') {
        if (!valid_idents(s + pos + 1, len - pos - 1, 0))
            return 0;
        v->build_off = pos + 1;
        v->build_len = len - pos - 1;
        pos = len;
    }
    return pos == len;
}

ota_err_t ota_semver_parse(const char *str, size_t len, ota_semver_t *out)
{
    ota_semver_t v = {0};
    size_t pos = 0;

    if (str == NULL || out == NULL)
        return OTA_ERR_INVALID;
    if (len > 0 && (str[0] == 'v' || str[0] == 'V')) {
        str++;
        len--;
    }
    if (len > OTA_SEMVER_MAX || !parse_core(str, len, &pos, &v) || !parse_suffix(str, len, pos, &v))
        return OTA_ERR_INVALID;
    memcpy(v.text, str, len);
    v.text[len] = '\0';
    *out = v;
    return OTA_OK;
}

static int sign(int c)
{
    return (c > 0) - (c < 0);
}

static int cmp_size(size_t a, size_t b)
{
    return (a > b) - (a < b);
}

/* Numeric identifiers have no leading zeros, so the longer one is the larger. */
static int cmp_ident(const char *a, size_t alen, const char *b, size_t blen)
{
    int anum = all_digits(a, alen);
    int bnum = all_digits(b, blen);

    if (anum && bnum) {
        if (alen != blen)
            return cmp_size(alen, blen);
        return sign(memcmp(a, b, alen));
    }
    if (anum != bnum)
        return anum ? -1 : 1;
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? sign(c) : cmp_size(alen, blen);
}

static size_t ident_len(const char *s, size_t len)
{
    const char *dot = memchr(s, '.', len);
    return dot ? (size_t)(dot - s) : len;
}

static int cmp_pre(const char *a, size_t alen, const char *b, size_t blen)
{
    /* A version without a pre-release ranks above any with one. */
    if (alen == 0 || blen == 0)
        return cmp_size(blen, alen);
    for (;;) {
        size_t ai = ident_len(a, alen);
        size_t bi = ident_len(b, blen);
        int c = cmp_ident(a, ai, b, bi);
        if (c != 0)
            return c;
        if (ai == alen || bi == blen)
            return cmp_size(alen - ai, blen - bi);
        a += ai + 1;
        alen -= ai + 1;
        b += bi + 1;
        blen -= bi + 1;
    }
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

int ota_semver_compare(const ota_semver_t *a, const ota_semver_t *b)
{
    int c = cmp_u64(a->major, b->major);
    if (c == 0)
        c = cmp_u64(a->minor, b->minor);
    if (c == 0)
        c = cmp_u64(a->patch, b->patch);
    if (c == 0)
        c = cmp_pre(a->text + a->pre_off, a->pre_len, b->text + b->pre_off, b->pre_len);
    return c;
}
