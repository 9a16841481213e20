#include "http/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/respond.h"
#include "ota/hex.h"
#include "ota/utf8.h"

/* Percent-decodes `len` bytes into `out`; false on a bad escape, a NUL, overflow, or a value that is not UTF-8. */
static bool decode(const char *s, size_t len, char out[OTA_QUERY_VALUE_MAX])
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len)
                return false;
            int hi = ota_hex_value(s[i + 1]), lo = ota_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || n + 1 >= OTA_QUERY_VALUE_MAX)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    /* A value goes into JSON answers and into text columns, both of which take UTF-8 only. */
    return ota_utf8_valid(out, n);
}

ota_query_result_t ota__query_next(const char *query, size_t len, const char *name, size_t *pos,
                                   char out[OTA_QUERY_VALUE_MAX])
{
    size_t name_len = strlen(name);
    const char *p = query + *pos, *end = query + len;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq != NULL ? eq : pair_end;
        *pos = (size_t)(pair_end - query) + (amp != NULL);
        if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *value = eq != NULL ? eq + 1 : pair_end;
            return decode(value, (size_t)(pair_end - value), out) ? OTA_QUERY_FOUND : OTA_QUERY_INVALID;
        }
        p = pair_end + 1;
    }
    *pos = len;
    return OTA_QUERY_ABSENT;
}

ota_query_result_t ota__query_get(const char *query, size_t len, const char *name, char out[OTA_QUERY_VALUE_MAX])
{
    size_t pos = 0;
    ota_query_result_t result = ota__query_next(query, len, name, &pos, out);
    if (result != OTA_QUERY_FOUND)
        return result;
    char again[OTA_QUERY_VALUE_MAX];
    /* Given twice is ambiguous for a parameter that takes one value. */
    return ota__query_next(query, len, name, &pos, again) == OTA_QUERY_ABSENT ? OTA_QUERY_FOUND : OTA_QUERY_INVALID;
}

void ota__query_string(ota_call_t *call, const char **query, size_t *len)
{
    h2o_req_t *req = call->req;
    if (req->query_at == SIZE_MAX) {
        *query = "";
        *len = 0;
        return;
    }
    *query = req->path.base + req->query_at + 1;
    *len = req->path.len - req->query_at - 1;
}

bool ota__query_param(ota_call_t *call, const char *name, char out[OTA_QUERY_VALUE_MAX], bool *present)
{
    const char *query;
    size_t len;
    ota__query_string(call, &query, &len);
    ota_query_result_t r = ota__query_get(query, len, name, out);
    *present = (r == OTA_QUERY_FOUND);
    if (r == OTA_QUERY_INVALID) {
        ota__respond_error(call, 400, "bad_request", NULL, "query parameter '%s' is malformed or repeated", name);
        return false;
    }
    return true;
}

/* A decimal integer in [1, OTA_PAGE_MAX], digits only. */
static bool parse_limit(const char *s, int *out)
{
    int value = 0;
    if (*s == '\0' || strlen(s) > 4)
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        value = value * 10 + (*s - '0');
    }
    if (value < 1 || value > OTA_PAGE_MAX)
        return false;
    *out = value;
    return true;
}

bool ota__page_read(ota_call_t *call, ota_page_t *page)
{
    char value[OTA_QUERY_VALUE_MAX];
    bool present;

    page->limit = OTA_PAGE_DEFAULT;
    snprintf(page->after_ts, sizeof page->after_ts, "infinity");
    snprintf(page->after_id, sizeof page->after_id, "ffffffff-ffff-ffff-ffff-ffffffffffff");

    if (!ota__query_param(call, "limit", value, &present))
        return false;
    if (present && !parse_limit(value, &page->limit)) {
        ota__respond_error(call, 400, "bad_request", NULL, "limit must be an integer from 1 to %d", OTA_PAGE_MAX);
        return false;
    }
    if (!ota__query_param(call, "after", value, &present))
        return false;
    if (present && !ota__cursor_decode(value, strlen(value), page->after_ts, page->after_id)) {
        ota__respond_error(call, 400, "bad_request", NULL, "after is not a cursor this server made");
        return false;
    }
    snprintf(page->limit_plus_one, sizeof page->limit_plus_one, "%d", page->limit + 1);
    call->page_limit = page->limit;
    return true;
}
