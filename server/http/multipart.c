/*
 * Why the parser looks the way it does: the body is wholly in memory, so a
 * part ends at the first delimiter (CRLF "--" boundary) after its start, and
 * its data is whatever bytes lie between its empty line and that delimiter
 * (CR, LF, NUL, the boundary text not preceded by CRLF "--"). As in the RFC
 * 2046 grammar, the CRLF of the empty line may also be the delimiter's, so
 * data that would start with "--boundary" is a delimiter. RFC 2046 forbids
 * the delimiter inside a part "on a line by itself or as the prefix of any
 * line", so any delimiter found must end its line (or close the body): a
 * prefix match followed by other bytes is refused rather than guessed at.
 * Every read is bounded by the end of the body, every copy by the size of
 * its destination.
 */
#include "http/multipart.h"

#include <string.h>
#include <strings.h>

/* A cursor over the bytes [p, end). */
typedef struct cur {
    const char *p;
    const char *end;
} cur_t;

/* A parameter wanted by the caller; its unquoted value goes to `dst` (`cap` bytes with the NUL). */
typedef struct slot {
    const char *name;
    char *dst;
    size_t cap;
    bool seen;
} slot_t;

/* The body being parsed, by its end, and its boundary. */
typedef struct scan {
    const char *end;
    const char *boundary;
    size_t blen;
} scan_t;

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 bchars (space included; the caller checks it is not last). */
static bool is_bchar(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

/* RFC 9110 field content: visible ASCII, obs-text, space and tab. */
static bool is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool valid_boundary(const char *b, size_t len)
{
    if (len == 0 || len > OTA_MULTIPART_BOUNDARY_MAX || b[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_bchar((unsigned char)b[i]))
            return false;
    return true;
}

/* Whether the `len` bytes at `s` are `lit`, ignoring ASCII case. */
static bool equals_ci(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

static void skip_ows(cur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static bool eat(cur_t *c, char ch)
{
    if (c->p == c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/* Moves past a token; returns its length (0: none there). */
static size_t token(cur_t *c)
{
    const char *start = c->p;

    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - start);
}

/* Appends `ch` to the `*n` bytes in `dst` (NULL: keeps nothing), keeping room for the NUL. */
static ota_err_t put(char *dst, size_t cap, size_t *n, char ch)
{
    if (dst == NULL)
        return OTA_OK;
    if (*n + 1 >= cap)
        return OTA_ERR_TOO_LARGE;
    dst[(*n)++] = ch;
    return OTA_OK;
}

/* The rest of a quoted-string whose opening quote is consumed, unescaped into `dst`. */
static ota_err_t quoted(cur_t *c, char *dst, size_t cap, size_t *n)
{
    ota_err_t err;

    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return OTA_OK;
        if (ch == '\\') {
            if (c->p == c->end)
                break;
            ch = (unsigned char)*c->p++;
        }
        if (!is_field_char(ch))
            return OTA_ERR_INVALID;
        if ((err = put(dst, cap, n, (char)ch)) != OTA_OK)
            return err;
    }
    return OTA_ERR_INVALID;
}

/* A parameter value (token or quoted-string) into `dst`, NUL-terminated; NULL `dst`: checked only. */
static ota_err_t param_value(cur_t *c, char *dst, size_t cap)
{
    size_t n = 0;
    ota_err_t err = OTA_OK;

    if (eat(c, '"')) {
        err = quoted(c, dst, cap, &n);
    } else {
        const char *start = c->p;
        size_t len = token(c);
        if (len == 0)
            return OTA_ERR_INVALID;
        for (size_t i = 0; i < len && err == OTA_OK; i++)
            err = put(dst, cap, &n, start[i]);
    }
    if (err == OTA_OK && dst != NULL)
        dst[n] = '\0';
    return err;
}

static slot_t *find_slot(slot_t *slots, size_t nslots, const char *name, size_t len)
{
    for (size_t i = 0; i < nslots; i++)
        if (equals_ci(name, len, slots[i].name))
            return &slots[i];
    return NULL;
}

/*
 * `*( OWS ";" OWS name "=" value ) OWS` up to the end of `c`. The values of
 * the names in `slots` go to their buffers; one of them given twice is refused.
 */
static ota_err_t parse_params(cur_t *c, slot_t *slots, size_t nslots)
{
    ota_err_t err;

    for (;;) {
        skip_ows(c);
        if (c->p == c->end)
            return OTA_OK;
        if (!eat(c, ';'))
            return OTA_ERR_INVALID;
        skip_ows(c);
        const char *name = c->p;
        size_t len = token(c);
        if (len == 0 || !eat(c, '='))
            return OTA_ERR_INVALID;
        slot_t *s = find_slot(slots, nslots, name, len);
        if (s != NULL && s->seen)
            return OTA_ERR_INVALID;
        if (s != NULL)
            s->seen = true;
        if ((err = param_value(c, s != NULL ? s->dst : NULL, s != NULL ? s->cap : 0)) != OTA_OK)
            return err;
    }
}

ota_err_t ota__multipart_boundary(const char *content_type, size_t len, char *out, size_t cap)
{
    char b[OTA_MULTIPART_BOUNDARY_MAX + 1];
    slot_t slot = {"boundary", b, sizeof b, false};
    cur_t c;

    if (content_type == NULL)
        return OTA_ERR_INVALID;
    c = (cur_t){content_type, content_type + len};
    skip_ows(&c);
    const char *type = c.p;
    size_t type_len = token(&c);
    if (!equals_ci(type, type_len, "multipart") || !eat(&c, '/'))
        return OTA_ERR_INVALID;
    const char *sub = c.p;
    if (!equals_ci(sub, token(&c), "form-data"))
        return OTA_ERR_INVALID;
    /* Too long for `b` is over the 70 characters RFC 2046 allows: malformed, not a cap. */
    if (parse_params(&c, &slot, 1) != OTA_OK || !slot.seen || !valid_boundary(b, strlen(b)))
        return OTA_ERR_INVALID;
    size_t blen = strlen(b);
    if (blen + 1 > cap)
        return OTA_ERR_TOO_LARGE;
    memcpy(out, b, blen + 1);
    return OTA_OK;
}

/* The first delimiter (CRLF "--" boundary) at or after `from`, or NULL. */
static const char *find_delimiter(const scan_t *s, const char *from)
{
    size_t dlen = s->blen + 4;
    const char *p = from;

    while ((size_t)(s->end - p) >= dlen) {
        p = memchr(p, '\r', (size_t)(s->end - p) - dlen + 1);
        if (p == NULL)
            return NULL;
        if (p[1] == '\n' && p[2] == '-' && p[3] == '-' && memcmp(p + 4, s->boundary, s->blen) == 0)
            return p;
        p++;
    }
    return NULL;
}

/*
 * What follows a dash-boundary at `p`: "--" closes the body, and then only
 * transport padding may follow, or padding, CRLF and an epilogue; otherwise
 * transport padding and CRLF, and the next part starts at `*next`.
 */
static ota_err_t delimiter_end(const char *p, const char *end, const char **next, bool *closing)
{
    *closing = end - p >= 2 && p[0] == '-' && p[1] == '-';
    if (*closing)
        p += 2;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (*closing && p == end) {
        *next = p;
        return OTA_OK;
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return OTA_ERR_INVALID;
    *next = p + 2;
    return OTA_OK;
}

/* The first delimiter: at the very start of the body, or after a preamble and its CRLF. */
static ota_err_t open_body(const scan_t *s, const char *body, const char **next, bool *closing)
{
    const char *p;

    if ((size_t)(s->end - body) >= s->blen + 2 && body[0] == '-' && body[1] == '-' &&
        memcmp(body + 2, s->boundary, s->blen) == 0)
        p = body + 2 + s->blen;
    else if ((p = find_delimiter(s, body)) != NULL)
        p += 4 + s->blen;
    else
        return OTA_ERR_INVALID;
    return delimiter_end(p, s->end, next, closing);
}

/* Finds the CR of the CRLF ending the header line at `p`. */
static ota_err_t line_end(const char *p, const char *end, const char **eol)
{
    const char *q = p;

    for (; q < end && *q != '\r'; q++) {
        if (q - p == OTA_MULTIPART_HEADER_LINE)
            return OTA_ERR_TOO_LARGE;
        if (!is_field_char((unsigned char)*q))
            return OTA_ERR_INVALID;
    }
    if (end - q < 2 || q[1] != '\n')
        return OTA_ERR_INVALID;
    *eol = q;
    return OTA_OK;
}

/* Copies a non-empty field value into `dst` (`cap` bytes with the NUL). */
static ota_err_t copy_value(const cur_t *v, char *dst, size_t cap)
{
    size_t len = (size_t)(v->end - v->p);

    if (len == 0)
        return OTA_ERR_INVALID;
    if (len + 1 > cap)
        return OTA_ERR_TOO_LARGE;
    memcpy(dst, v->p, len);
    dst[len] = '\0';
    return OTA_OK;
}

/* `form-data; name="…"[; filename="…"]`, other parameters allowed and ignored. */
static ota_err_t content_disposition(cur_t *c, ota_multipart_part_t *part)
{
    slot_t slots[2] = {
        {"name", part->name, sizeof part->name, false},
        {"filename", part->filename, sizeof part->filename, false},
    };
    const char *type = c->p;
    ota_err_t err;

    if (!equals_ci(type, token(c), "form-data"))
        return OTA_ERR_INVALID;
    if ((err = parse_params(c, slots, 2)) != OTA_OK)
        return err;
    if (!slots[0].seen || part->name[0] == '\0')
        return OTA_ERR_INVALID;
    part->has_filename = slots[1].seen;
    return OTA_OK;
}

/* Values that leave the bytes as they are. */
static bool identity_encoding(const cur_t *v)
{
    size_t len = (size_t)(v->end - v->p);

    return equals_ci(v->p, len, "binary") || equals_ci(v->p, len, "8bit") || equals_ci(v->p, len, "7bit");
}

/* The header field `name: value` in [p, eol). */
static ota_err_t header_field(const char *p, const char *eol, ota_multipart_part_t *part, bool *disposition)
{
    cur_t c = {p, eol};
    size_t name_len = token(&c);

    if (name_len == 0 || !eat(&c, ':'))
        return OTA_ERR_INVALID;
    skip_ows(&c);
    while (c.end > c.p && (c.end[-1] == ' ' || c.end[-1] == '\t'))
        c.end--;
    if (equals_ci(p, name_len, "content-disposition")) {
        if (*disposition)
            return OTA_ERR_INVALID;
        *disposition = true;
        return content_disposition(&c, part);
    }
    if (equals_ci(p, name_len, "content-type")) {
        if (part->has_content_type)
            return OTA_ERR_INVALID;
        part->has_content_type = true;
        return copy_value(&c, part->content_type, sizeof part->content_type);
    }
    if (equals_ci(p, name_len, "content-transfer-encoding"))
        return identity_encoding(&c) ? OTA_OK : OTA_ERR_INVALID;
    return OTA_OK;
}

/*
 * The header lines of a part from `p`, then its data up to `delim`. The
 * empty line after the headers may be the CRLF of the delimiter itself (a
 * part without data), so header lines may run up to `delim` + 2.
 */
static ota_err_t parse_headers(const char *p, const char *delim, ota_multipart_part_t *part)
{
    bool disposition = false;
    const char *eol;
    ota_err_t err;

    for (int lines = 0;; lines++) {
        if ((err = line_end(p, delim + 2, &eol)) != OTA_OK)
            return err;
        if (eol == p)
            break;
        if (eol == delim)
            return OTA_ERR_INVALID; /* a field ended by the delimiter's CRLF: no empty line */
        if (lines == OTA_MULTIPART_HEADER_LINES)
            return OTA_ERR_TOO_LARGE;
        if ((err = header_field(p, eol, part, &disposition)) != OTA_OK)
            return err;
        p = eol + 2;
    }
    part->data = eol == delim ? delim : eol + 2;
    part->data_len = (size_t)(delim - part->data);
    return disposition ? OTA_OK : OTA_ERR_INVALID;
}

/*
 * The part starting at `*p`; `*p` then points past the delimiter that ends
 * it. The delimiter is found first, so no header line can hide one. The
 * search starts at the CRLF just before `*p` (the end of the previous
 * delimiter line), so a part starting with "--boundary" is caught.
 */
static ota_err_t parse_part(const scan_t *s, const char **p, ota_multipart_part_t *part, bool *closing)
{
    const char *delim = find_delimiter(s, *p - 2);
    ota_err_t err;

    if (delim == NULL)
        return OTA_ERR_INVALID;
    memset(part, 0, sizeof *part);
    if ((err = parse_headers(*p, delim, part)) != OTA_OK)
        return err;
    return delimiter_end(delim + 4 + s->blen, s->end, p, closing);
}

ota_err_t ota__multipart_parse(const char *body, size_t len, const char *boundary, ota_multipart_part_t *parts,
                               size_t max_parts, size_t *nparts)
{
    scan_t s;
    const char *p;
    bool closing;
    size_t n = 0;
    ota_err_t err;

    if (body == NULL || boundary == NULL)
        return OTA_ERR_INVALID;
    s = (scan_t){body + len, boundary, strnlen(boundary, OTA_MULTIPART_BOUNDARY_MAX + 1)};
    if (!valid_boundary(boundary, s.blen))
        return OTA_ERR_INVALID;
    if ((err = open_body(&s, body, &p, &closing)) != OTA_OK)
        return err;
    if (closing)
        return OTA_ERR_INVALID;
    for (; !closing; n++) {
        if (n == max_parts)
            return OTA_ERR_TOO_LARGE;
        if ((err = parse_part(&s, &p, &parts[n], &closing)) != OTA_OK)
            return err;
    }
    *nparts = n;
    return OTA_OK;
}
