#include "json.h"

#include <stdio.h>
#include <string.h>

#include "ota/utf8.h"

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct cursor {
    const unsigned char *p, *end;
} cursor_t;

static bool value(cursor_t *c, int depth);

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool literal(cursor_t *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static int hex(unsigned char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Four hex digits after "\u"; their value in *v. */
static bool hex4(cursor_t *c, unsigned *v)
{
    if (c->end - c->p < 4)
        return false;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex(c->p[i]);
        if (h < 0)
            return false;
        *v = *v * 16 + (unsigned)h;
    }
    c->p += 4;
    return true;
}

/* One UTF-8 sequence (not ASCII) at c->p, well-formed (no overlongs, surrogates or values past U+10FFFF). */
static bool utf8(cursor_t *c)
{
    size_t n = ota_utf8_sequence((const char *)c->p, (size_t)(c->end - c->p));
    c->p += n;
    return n > 0;
}

static bool string(cursor_t *c)
{
    if (c->p >= c->end || *c->p != '"')
        return false;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch >= 0x80) {
            if (!utf8(c))
                return false;
            continue;
        }
        c->p++;
        if (ch != '\\')
            continue;
        if (c->p >= c->end)
            return false;
        ch = *c->p++;
        if (ch == 'u') {
            unsigned v, low;
            if (!hex4(c, &v) || v == 0)
                return false;
            if (v >= 0xdc00 && v <= 0xdfff)
                return false; /* a lone low surrogate */
            if (v >= 0xd800 && v <= 0xdbff && (!literal(c, "\\u") || !hex4(c, &low) || low < 0xdc00 || low > 0xdfff))
                return false;
        } else if (strchr("\"\\/bfnrt", ch) == NULL || ch == '\0') {
            return false;
        }
    }
    return false;
}

static bool digits(cursor_t *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start;
}

static bool number(cursor_t *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (!digits(c))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c))
            return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!digits(c))
            return false;
    }
    return true;
}

/* An object or array (after its opening character was seen at c->p). */
static bool container(cursor_t *c, int depth)
{
    unsigned char close = *c->p == '{' ? '}' : ']';
    bool object = close == '}';
    if (depth > MAX_DEPTH)
        return false;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return true;
    }
    for (;;) {
        if (object) {
            if (!string(c))
                return false;
            skip_ws(c);
            if (c->p >= c->end || *c->p++ != ':')
                return false;
            skip_ws(c);
        }
        if (!value(c, depth))
            return false;
        skip_ws(c);
        if (c->p >= c->end)
            return false;
        if (*c->p == close) {
            c->p++;
            return true;
        }
        if (*c->p++ != ',')
            return false;
        skip_ws(c);
    }
}

static bool value(cursor_t *c, int depth)
{
    if (c->p >= c->end)
        return false;
    switch (*c->p) {
    case '{':
    case '[':
        return container(c, depth + 1);
    case '"':
        return string(c);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        return number(c);
    }
}

bool ota__json_syntax_ok(const char *text, size_t len)
{
    cursor_t c = {(const unsigned char *)text, (const unsigned char *)text + len};
    skip_ws(&c);
    if (c.p >= c.end || (*c.p != '{' && *c.p != '['))
        return false;
    if (!container(&c, 1))
        return false;
    skip_ws(&c);
    return c.p == c.end;
}

ota_err_t ota__json_parse(const char *text, size_t len, json_t **out, char *why, size_t cap)
{
    /* Zeroed: when an allocation fails before jansson has an error to tell, it leaves the code byte that
       json_error_code() reads unset, and stack garbage there once read as "duplicate key" (INVALID, not NOMEM). */
    json_error_t err;
    memset(&err, 0, sizeof err);
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (j != NULL) {
        *out = j;
        return OTA_OK;
    }
    switch (json_error_code(&err)) {
    case json_error_out_of_memory:
        return OTA_ERR_NOMEM;
    case json_error_duplicate_key:
    case json_error_numeric_overflow:
    case json_error_null_character:
        break; /* well-formed JSON that jansson refuses for what it says, not for memory */
    default:
        if (ota__json_syntax_ok(text, len))
            return OTA_ERR_NOMEM;
    }
    if (cap > 0)
        snprintf(why, cap, "%s", err.text[0] != '\0' ? err.text : "malformed JSON");
    return OTA_ERR_INVALID;
}
