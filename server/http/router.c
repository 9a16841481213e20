#include "http/router.h"

#include <string.h>

/* Matches one pattern against a path, segment by segment, capturing parameters. */
static bool match_pattern(const char *pattern, const char *path, size_t path_len, ota_route_match_t *m)
{
    const char *p = pattern, *s = path, *end = path + path_len;
    int nparams = 0;

    while (*p != '\0') {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *seg_end = memchr(s, '/', (size_t)(end - s));
            if (close == NULL || nparams == OTA_ROUTE_MAX_PARAMS)
                return false;
            if (seg_end == NULL)
                seg_end = end;
            if (seg_end == s)
                return false; /* an empty segment never matches a parameter */
            m->params[nparams].base = s;
            m->params[nparams].len = (size_t)(seg_end - s);
            m->params[nparams].is_uuid = (close - p == 5 && memcmp(p, "{uuid", 5) == 0);
            nparams++;
            p = close + 1;
            s = seg_end;
            continue;
        }
        if (s == end || *s != *p)
            return false;
        p++;
        s++;
    }
    if (s != end)
        return false;
    m->nparams = nparams;
    return true;
}

static void append_allow(ota_route_match_t *m, const char *method)
{
    size_t used = strlen(m->allow);
    if (strstr(m->allow, method) != NULL)
        return; /* each method once; no method name is a prefix of another we use */
    size_t need = strlen(method) + (used ? 2 : 0);
    if (used + need + 1 > sizeof m->allow)
        return;
    if (used)
        memcpy(m->allow + used, ", ", 2), used += 2;
    memcpy(m->allow + used, method, strlen(method) + 1);
}

static bool method_is(const char *name, const char *method, size_t method_len)
{
    return strlen(name) == method_len && memcmp(name, method, method_len) == 0;
}

ota_route_result_t ota__route_match(const ota_route_t *routes, size_t n, const char *method, size_t method_len,
                                    const char *path, size_t path_len, ota_route_match_t *m)
{
    bool path_known = false;
    memset(m, 0, sizeof *m);
    if (method_is("HEAD", method, method_len)) {
        method = "GET";
        method_len = 3;
    }

    for (size_t i = 0; i < n; i++) {
        ota_route_match_t candidate;
        memset(&candidate, 0, sizeof candidate);
        if (!match_pattern(routes[i].pattern, path, path_len, &candidate))
            continue;
        path_known = true;
        if (method_is(routes[i].method, method, method_len)) {
            *m = candidate;
            m->route = &routes[i];
            m->index = i;
            return OTA_ROUTE_FOUND;
        }
    }
    if (!path_known)
        return OTA_ROUTE_NOT_FOUND;
    for (size_t i = 0; i < n; i++) {
        ota_route_match_t candidate;
        memset(&candidate, 0, sizeof candidate);
        if (match_pattern(routes[i].pattern, path, path_len, &candidate))
            append_allow(m, routes[i].method);
    }
    return OTA_ROUTE_METHOD_NOT_ALLOWED;
}
