/*
 * libFuzzer driver for the multipart/form-data parser. The first input byte
 * picks the mode: even, the rest is a body with the boundary "XyZ" (short,
 * so the fuzzer finds it); odd, the bytes up to the first '\n' are a
 * Content-Type value for ota__multipart_boundary and the rest is the body.
 * A body that parses is checked (parts inside the body, in order, strings
 * terminated), written out again in a canonical form, and must parse back to
 * the same parts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/multipart.h"

#define MAX_PARTS 8

typedef struct out {
    char *buf;
    size_t len;
    size_t cap;
} out_t;

static void check(int ok)
{
    if (!ok)
        abort();
}

static void append(out_t *o, const void *p, size_t n)
{
    check(o->len + n <= o->cap);
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void append_str(out_t *o, const char *s)
{
    append(o, s, strlen(s));
}

/* `s` as a quoted-string. */
static void append_quoted(out_t *o, const char *s)
{
    append_str(o, "\"");
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            append_str(o, "\\");
        append(o, s, 1);
    }
    append_str(o, "\"");
}

static void check_string(const char *s, size_t cap)
{
    check(memchr(s, '\0', cap) != NULL);
}

static void check_parts(const char *body, size_t len, const ota_multipart_part_t *parts, size_t n)
{
    const char *prev_end = body;

    check(n >= 1 && n <= MAX_PARTS);
    for (size_t i = 0; i < n; i++) {
        const ota_multipart_part_t *p = &parts[i];
        check(p->data >= prev_end && p->data <= body + len && p->data_len <= (size_t)(body + len - p->data));
        prev_end = p->data + p->data_len;
        check_string(p->name, sizeof p->name);
        check_string(p->filename, sizeof p->filename);
        check_string(p->content_type, sizeof p->content_type);
        check(p->name[0] != '\0');
        check(p->has_filename || p->filename[0] == '\0');
        check(p->has_content_type == (p->content_type[0] != '\0'));
    }
}

static void write_part(out_t *o, const char *boundary, const ota_multipart_part_t *p)
{
    append_str(o, "--");
    append_str(o, boundary);
    append_str(o, "\r\nContent-Disposition: form-data; name=");
    append_quoted(o, p->name);
    if (p->has_filename) {
        append_str(o, "; filename=");
        append_quoted(o, p->filename);
    }
    if (p->has_content_type) {
        append_str(o, "\r\nContent-Type: ");
        append_str(o, p->content_type);
    }
    append_str(o, "\r\n\r\n");
    append(o, p->data, p->data_len);
    append_str(o, "\r\n");
}

static void round_trip(const char *boundary, const ota_multipart_part_t *parts, size_t n)
{
    ota_multipart_part_t again[MAX_PARTS];
    size_t n2 = 0;
    out_t o = {NULL, 0, 64};

    for (size_t i = 0; i < n; i++)
        o.cap += parts[i].data_len + 4 * OTA_MULTIPART_VALUE_MAX + 128;
    o.buf = malloc(o.cap);
    check(o.buf != NULL);
    for (size_t i = 0; i < n; i++)
        write_part(&o, boundary, &parts[i]);
    append_str(&o, "--");
    append_str(&o, boundary);
    append_str(&o, "--\r\n");

    check(ota__multipart_parse(o.buf, o.len, boundary, again, MAX_PARTS, &n2) == OTA_OK);
    check(n2 == n);
    for (size_t i = 0; i < n; i++) {
        check(strcmp(again[i].name, parts[i].name) == 0);
        check(strcmp(again[i].filename, parts[i].filename) == 0);
        check(strcmp(again[i].content_type, parts[i].content_type) == 0);
        check(again[i].has_filename == parts[i].has_filename);
        check(again[i].has_content_type == parts[i].has_content_type);
        check(again[i].data_len == parts[i].data_len);
        check(memcmp(again[i].data, parts[i].data, parts[i].data_len) == 0);
    }
    free(o.buf);
}

/* The boundary of the Content-Type in [data, nl), in a copy of its own so ASan sees over-reads. */
static int boundary_of(const uint8_t *data, size_t len, char *out, size_t cap)
{
    char *ct = malloc(len > 0 ? len : 1);
    int ok;

    check(ct != NULL);
    memcpy(ct, data, len);
    ok = ota__multipart_boundary(ct, len, out, cap) == OTA_OK;
    if (ok) {
        size_t blen = strlen(out);
        char small[OTA_MULTIPART_BOUNDARY_MAX + 1];
        check(blen >= 1 && blen <= OTA_MULTIPART_BOUNDARY_MAX);
        check(ota__multipart_boundary(ct, len, small, blen) == OTA_ERR_TOO_LARGE);
        check(ota__multipart_boundary(ct, len, small, blen + 1) == OTA_OK && strcmp(small, out) == 0);
    }
    free(ct);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char boundary[OTA_MULTIPART_BOUNDARY_MAX + 1] = "XyZ";
    ota_multipart_part_t parts[MAX_PARTS];
    size_t n = 0;

    if (size == 0)
        return 0;
    data++, size--;
    if (data[-1] & 1) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t ct_len = nl != NULL ? (size_t)(nl - data) : size;
        if (!boundary_of(data, ct_len, boundary, sizeof boundary) || nl == NULL)
            return 0;
        size -= ct_len + 1;
        data = nl + 1;
    }
    /* libFuzzer's buffer ends exactly at the end of the body, so an over-read is caught. */
    const char *body = (const char *)data;
    if (ota__multipart_parse(body, size, boundary, parts, MAX_PARTS, &n) == OTA_OK) {
        check_parts(body, size, parts, n);
        round_trip(boundary, parts, n);
    }
    return 0;
}
