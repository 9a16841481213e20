/*
 * The integration programs' shared checks and helpers (see checks.h).
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

h_pg_t h_g_pg;
h_server_t h_g_srv;

void h_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: check failed: %s\n    ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    h_server_dump_log(&h_g_srv);
}

bool h_error_shape_ok(const h_resp_t *r, const char *code)
{
    if (!json_is_object(r->json))
        return false;
    json_t *e = json_object_get(r->json, "error");
    if (!json_is_object(e))
        return false;
    json_t *c = json_object_get(e, "code"), *m = json_object_get(e, "message");
    if (!json_is_string(c) || !json_is_string(m))
        return false;
    return code == NULL || strcmp(json_string_value(c), code) == 0;
}

bool h_error_shape_strict(const h_resp_t *r, const char *code)
{
    if (strncasecmp(r->content_type, "application/json", 16) != 0 || !h_error_shape_ok(r, code))
        return false;
    json_t *e = json_object_get(r->json, "error");
    json_t *d = json_object_get(e, "details");
    return json_string_length(json_object_get(e, "message")) > 0 && (d == NULL || json_is_object(d));
}

bool h_field_error(const h_resp_t *r, const char *name)
{
    json_t *fields = json_object_get(json_object_get(json_object_get(r->json, "error"), "details"), "fields");
    return json_is_object(fields) && json_object_get(fields, name) != NULL;
}

const char *h_jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool h_streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

bool h_rfc3339_utc(const char *s, time_t *out)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (s == NULL || strlen(s) < sizeof shape)
        return false;
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    const char *p = s + sizeof shape - 1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0)
        return false;
    struct tm tm = {0};
    if (strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
        return false;
    *out = timegm(&tm);
    return true;
}

void h_unique(char *out, size_t cap, const char *prefix)
{
    char hex[17];
    h_random_hex(hex, 16);
    snprintf(out, cap, "%s%s", prefix, hex);
}

void h_random_uuid(char *out, size_t cap)
{
    char hex[33];
    h_random_hex(hex, 32);
    snprintf(out, cap, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15, hex + 18);
}

void h_request(h_server_t *srv, const char *method, const char *path, const char *token, const char *body,
               h_resp_t *out)
{
    h_http(srv, method, path, token, body, body != NULL ? strlen(body) : 0, NULL, out);
}

void h_make_model(char *id, size_t cap, const char *name)
{
    h_unique(id, cap, "m-");
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/models", h_g_srv.admin_key, &r, "{s:s, s:s}", "id", id, "name", name);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

bool h_wait_ready(h_server_t *srv)
{
    for (int i = 0; i < 200; i++) {
        h_resp_t r = {0};
        h_http(srv, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
        long status = r.status;
        h_resp_free(&r);
        if (status == 200)
            return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "GET /readyz did not answer 200 within 10 s of the server's start\n");
    h_server_dump_log(srv);
    return false;
}

int h_group_setup(void **state)
{
    (void)state;
    h_pg_start(&h_g_pg);
    h_server_start(&h_g_srv, &h_g_pg, NULL);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

int h_group_teardown(void **state)
{
    (void)state;
    h_server_stop(&h_g_srv);
    h_pg_destroy(&h_g_pg);
    return 0;
}
