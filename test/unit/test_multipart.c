#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/multipart.h"

#define MAX_PARTS 8
#define LIT(s) s, sizeof(s) - 1

/* What curl 7.88 sends for
 *   curl -F version=1.2.3 -F model=bota-pin -F $'notes=first line\nsecond' \
 *        -F 'bin=@fw.bin;filename=my firmware.bin' -F 'ufw=@fw.bin;type=application/x-ufw'
 * with fw.bin = "FW" 00 01 CR LF "--" FF (captured from the wire). */
#define CURL_CT "multipart/form-data; boundary=------------------------7aad36abc7ae3cd3"
#define CURL_B "------------------------7aad36abc7ae3cd3"
#define FW "FW\x00\x01\r\n--\xff"
static const char curl_body[] = "--" CURL_B "\r\n"
                                "Content-Disposition: form-data; name=\"version\"\r\n\r\n"
                                "1.2.3\r\n"
                                "--" CURL_B "\r\n"
                                "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
                                "bota-pin\r\n"
                                "--" CURL_B "\r\n"
                                "Content-Disposition: form-data; name=\"notes\"\r\n\r\n"
                                "first line\nsecond\r\n"
                                "--" CURL_B "\r\n"
                                "Content-Disposition: form-data; name=\"bin\"; filename=\"my firmware.bin\"\r\n"
                                "Content-Type: application/octet-stream\r\n\r\n" FW "\r\n"
                                "--" CURL_B "\r\n"
                                "Content-Disposition: form-data; name=\"ufw\"; filename=\"fw.bin\"\r\n"
                                "Content-Type: application/x-ufw\r\n\r\n" FW "\r\n"
                                "--" CURL_B "--\r\n";

typedef struct result {
    ota_err_t err;
    size_t n;
    ota_multipart_part_t parts[MAX_PARTS];
} result_t;

/* Parses a copy of exactly `len` bytes, so that ASan sees any read past the end. */
static ota_err_t parse_n(const char *body, size_t len, const char *boundary, result_t *r, size_t max)
{
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    r->n = 999;
    r->err = ota__multipart_parse(copy, len, boundary, r->parts, max, &r->n);
    if (r->err != OTA_OK)
        assert_int_equal(r->n, 999);
    /* Rebase the data pointers onto the original, so the copy can go. */
    for (size_t i = 0; r->err == OTA_OK && i < r->n; i++)
        r->parts[i].data = body + (r->parts[i].data - copy);
    free(copy);
    return r->err;
}

static ota_err_t parse(const char *body, size_t len, const char *boundary, result_t *r)
{
    return parse_n(body, len, boundary, r, MAX_PARTS);
}

static ota_err_t parse_str(const char *body, const char *boundary)
{
    result_t r;
    return parse(body, strlen(body), boundary, &r);
}

static void expect_part(const ota_multipart_part_t *p, const char *name, const char *filename, const char *type,
                        const char *data, size_t len)
{
    assert_string_equal(p->name, name);
    assert_int_equal(p->has_filename, filename != NULL);
    assert_string_equal(p->filename, filename != NULL ? filename : "");
    assert_int_equal(p->has_content_type, type != NULL);
    assert_string_equal(p->content_type, type != NULL ? type : "");
    assert_int_equal(p->data_len, len);
    assert_memory_equal(p->data, data, len);
}

static ota_err_t boundary_of(const char *ct, char *out, size_t cap)
{
    return ota__multipart_boundary(ct, strlen(ct), out, cap);
}

/* ---- boundary ---- */

static void test_boundary_curl(void **state)
{
    char b[OTA_MULTIPART_BOUNDARY_MAX + 1];
    (void)state;
    assert_int_equal(boundary_of(CURL_CT, b, sizeof b), OTA_OK);
    assert_string_equal(b, CURL_B);
}

static void test_boundary_forms(void **state)
{
    static const char *const ok[][2] = {
        {"multipart/form-data; boundary=abc", "abc"},
        {"Multipart/Form-Data;BOUNDARY=abc", "abc"},
        {"  multipart/form-data ; charset=utf-8 ;boundary=abc  ", "abc"},
        {"multipart/form-data; boundary=\"a b:c?d=e/f\"; charset=\"x\"", "a b:c?d=e/f"},
        {"multipart/form-data; boundary=\"----WebKitFormBoundary7MA4YWxkTrZu0gW\"",
         "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
        {"multipart/form-data; boundary=\"q\\uote\"", "quote"},
        {"multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789",
         "0123456789012345678901234567890123456789012345678901234567890123456789"},
    };
    char b[OTA_MULTIPART_BOUNDARY_MAX + 1];
    (void)state;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(boundary_of(ok[i][0], b, sizeof b), OTA_OK);
        assert_string_equal(b, ok[i][1]);
    }
}

static void test_boundary_rejected(void **state)
{
    static const char *const bad[] = {
        "",
        "application/json",
        "multipart/mixed; boundary=abc",
        "multipart/form-data",
        "multipart/form-data;",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=\"abc",
        "multipart/form-data; boundary=\"abc \"",
        "multipart/form-data; boundary=a@b",
        "multipart/form-data; boundary=\"a@b\"",
        "multipart/form-data; boundary=abc; boundary=abc",
        "multipart/form-data; boundary=abc junk",
        "multipart/form-data; boundary = abc",
        "multipart/form-data; boundary=abc;",
        "multipart/form-datax; boundary=abc",
        "multipart/form-data; boundary=01234567890123456789012345678901234567890123456789012345678901234567890",
        "multipart/form-data; boundary=\"01234567890123456789012345678901234567890123456789012345678901234567890\"",
    };
    char b[OTA_MULTIPART_BOUNDARY_MAX + 1];
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (boundary_of(bad[i], b, sizeof b) != OTA_ERR_INVALID)
            fail_msg("accepted: %s", bad[i]);
    }
    /* The length given counts, not a NUL: a NUL inside is a bad character, and the value may stop short. */
    assert_int_equal(ota__multipart_boundary(LIT("multipart/form-data; boundary=a\0b"), b, sizeof b), OTA_ERR_INVALID);
    assert_int_equal(ota__multipart_boundary("multipart/form-data; boundary=abcdef", 33, b, sizeof b), OTA_OK);
    assert_string_equal(b, "abc");
    assert_int_equal(ota__multipart_boundary(NULL, 0, b, sizeof b), OTA_ERR_INVALID);
}

static void test_boundary_cap(void **state)
{
    char b[4];
    (void)state;
    assert_int_equal(boundary_of("multipart/form-data; boundary=abcd", b, sizeof b), OTA_ERR_TOO_LARGE);
    assert_int_equal(boundary_of("multipart/form-data; boundary=abc", b, sizeof b), OTA_OK);
    assert_string_equal(b, "abc");
}

/* ---- bodies that parse ---- */

static void test_curl_body(void **state)
{
    result_t r;
    (void)state;

    assert_int_equal(parse(LIT(curl_body), CURL_B, &r), OTA_OK);
    assert_int_equal(r.n, 5);
    expect_part(&r.parts[0], "version", NULL, NULL, LIT("1.2.3"));
    expect_part(&r.parts[1], "model", NULL, NULL, LIT("bota-pin"));
    expect_part(&r.parts[2], "notes", NULL, NULL, LIT("first line\nsecond"));
    expect_part(&r.parts[3], "bin", "my firmware.bin", "application/octet-stream", LIT(FW));
    expect_part(&r.parts[4], "ufw", "fw.bin", "application/x-ufw", LIT(FW));
}

static void test_quoted_boundary_body(void **state)
{
    static const char body[] = "--a b:c?\r\n"
                               "content-disposition: FORM-DATA; NAME=version\r\n\r\n"
                               "1.0.0\r\n"
                               "--a b:c?--";
    char b[OTA_MULTIPART_BOUNDARY_MAX + 1];
    result_t r;
    (void)state;

    assert_int_equal(boundary_of("multipart/form-data; boundary=\"a b:c?\"", b, sizeof b), OTA_OK);
    assert_int_equal(parse(LIT(body), b, &r), OTA_OK);
    assert_int_equal(r.n, 1);
    expect_part(&r.parts[0], "version", NULL, NULL, LIT("1.0.0"));
}

/* Every byte value, CR LF pairs, and "--" lines that are not the delimiter. */
static void test_binary_payload(void **state)
{
    static const char head[] = "--B\r\nContent-Disposition: form-data; name=\"bin\"; filename=\"x\"\r\n\r\n";
    static const char tail[] = "\r\n--B--\r\n";
    unsigned char payload[512 + 16];
    char body[sizeof head + sizeof payload + sizeof tail];
    result_t r;
    (void)state;

    for (int i = 0; i < 512; i++)
        payload[i] = (unsigned char)i;
    memcpy(payload + 512, "\r\n\r\n--\r\n-B\r\n--A", 16);
    size_t len = 0;
    memcpy(body + len, head, sizeof head - 1), len += sizeof head - 1;
    memcpy(body + len, payload, sizeof payload), len += sizeof payload;
    memcpy(body + len, tail, sizeof tail - 1), len += sizeof tail - 1;

    assert_int_equal(parse(body, len, "B", &r), OTA_OK);
    assert_int_equal(r.n, 1);
    expect_part(&r.parts[0], "bin", "x", NULL, (const char *)payload, sizeof payload);
}

/* The boundary's text in the data, but never as CRLF "--" boundary. */
static void test_boundary_like_data(void **state)
{
    static const char data[] = "bound\r\n"
                               "boundary--boundary\r\n"
                               "x--boundary\n--boundary\r--boundary\r\n-boundary\r\n--boundarX\r\n"
                               "--Boundary\r\n---boundary";
    static const char body[] = "--boundary\r\nContent-Disposition: form-data; name=d\r\n\r\n"
                               "bound\r\n"
                               "boundary--boundary\r\n"
                               "x--boundary\n--boundary\r--boundary\r\n-boundary\r\n--boundarX\r\n"
                               "--Boundary\r\n---boundary"
                               "\r\n--boundary--\r\n";
    result_t r;
    (void)state;

    assert_int_equal(parse(LIT(body), "boundary", &r), OTA_OK);
    assert_int_equal(r.n, 1);
    expect_part(&r.parts[0], "d", NULL, NULL, LIT(data));
}

static void test_empty_parts(void **state)
{
    /* An empty line then the delimiter (what clients send), and, as RFC 2046 also allows,
     * the delimiter's CRLF serving as the empty line. */
    static const char body[] = "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
                               "--B\r\nContent-Disposition: form-data; name=b; filename=\"\"\r\n"
                               "Content-Type: application/octet-stream\r\n\r\n"
                               "--B\r\nContent-Disposition: form-data; name=c\r\n\r\nc\r\n"
                               "--B--";
    result_t r;
    (void)state;

    assert_int_equal(parse(LIT(body), "B", &r), OTA_OK);
    assert_int_equal(r.n, 3);
    expect_part(&r.parts[0], "a", NULL, NULL, "", 0);
    expect_part(&r.parts[1], "b", "", "application/octet-stream", "", 0);
    expect_part(&r.parts[2], "c", NULL, NULL, LIT("c"));
}

static void test_preamble_padding_epilogue(void **state)
{
    static const char body[] = "This is a preamble.\r\n--B-- not yet\r\nstill preamble\r\n"
                               "--B \t\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n"
                               "--B\t\r\nContent-Disposition: form-data; name=b\r\n\r\nB\r\n"
                               "--B-- \r\nan epilogue\r\n--B\r\nignored\r\n";
    result_t r;
    (void)state;

    /* A delimiter line may not hide in the preamble either. */
    assert_int_equal(parse(LIT(body), "B", &r), OTA_ERR_INVALID);

    static const char ok[] = "This is a preamble.\r\nstill preamble\r\n"
                             "--B \t\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n"
                             "--B\t\r\nContent-Disposition: form-data; name=b\r\n\r\nB\r\n"
                             "--B-- \r\nan epilogue\r\n--B\r\nignored\r\n";
    assert_int_equal(parse(LIT(ok), "B", &r), OTA_OK);
    assert_int_equal(r.n, 2);
    expect_part(&r.parts[0], "a", NULL, NULL, LIT("A"));
    expect_part(&r.parts[1], "b", NULL, NULL, LIT("B"));
    assert_int_equal(parse_str("\r\n--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--", "B"), OTA_OK);
    assert_int_equal(parse_str("--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--  ", "B"), OTA_OK);
}

static void test_header_details(void **state)
{
    static const char body[] = "--B\r\n"
                               "X-Ignored: whatever ; \"\r\n"
                               "Content-Transfer-Encoding: binary\r\n"
                               "content-type:  text/plain; charset=utf-8 \t\r\n"
                               "CONTENT-DISPOSITION:form-data ; name=\"a\\\"b\\\\c\" ;filename*=UTF-8''x;"
                               " filename=\"d\xc3\xa9j\xc3\xa0 vu.bin\"\r\n"
                               "\r\nX\r\n--B--\r\n";
    result_t r;
    (void)state;

    assert_int_equal(parse(LIT(body), "B", &r), OTA_OK);
    assert_int_equal(r.n, 1);
    expect_part(&r.parts[0], "a\"b\\c", "d\xc3\xa9j\xc3\xa0 vu.bin", "text/plain; charset=utf-8", LIT("X"));
}

/* ---- bodies refused ---- */

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        /* boundary not found, missing or broken closing delimiter */
        "",
        "no boundary here",
        "--B--\r\n",
        "--C\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--C--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B-",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--junk",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\n",
        /* a delimiter that does not end its line */
        "--Bx\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--Bx\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n--Bx\r\n--B--\r\n",
        "--B\n\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n",
        /* line endings */
        "--B\nContent-Disposition: form-data; name=a\n\nA\n--B--\n",
        "--B\r\nContent-Disposition: form-data; name=a\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\r\n\r\nA\r\n--B--\r\n",
        /* truncated or broken headers */
        "--B\r\nContent-Disposition: form-data; name=a\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\nA\r\n--B--\r\n",
        "--B\r\n\r\nA\r\n--B--\r\n",
        "--B\r\n--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\n continued\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition : form-data; name=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nno colon\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type:\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\x7f\r\n\r\nA\r\n--B--\r\n",
        /* Content-Disposition */
        "--B\r\nContent-Type: text/plain\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; filename=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: attachment; name=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a; filename=x; filename=y\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a;\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a b\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"a\"b\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"a\\\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: a/b\r\nContent-Type: a/b\r\n\r\nA\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: base64\r\n\r\nQQ==\r\n--B--\r\n",
    };
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_str(bad[i], "B") != OTA_ERR_INVALID)
            fail_msg("not refused as invalid (#%zu): %s", i, bad[i]);
    }
}

static void test_nul_in_header(void **state)
{
    static const char body[] = "--B\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nA\r\n--B--\r\n";
    result_t r;
    (void)state;
    assert_int_equal(parse(LIT(body), "B", &r), OTA_ERR_INVALID);
}

static void test_bad_boundary_argument(void **state)
{
    static const char body[] = "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nA\r\n--B--\r\n";
    result_t r;
    (void)state;

    assert_int_equal(parse(LIT(body), "", &r), OTA_ERR_INVALID);
    assert_int_equal(parse(LIT(body), "B ", &r), OTA_ERR_INVALID);
    assert_int_equal(parse(LIT(body), "B\r\n", &r), OTA_ERR_INVALID);
    assert_int_equal(parse(LIT(body), "0123456789012345678901234567890123456789012345678901234567890123456789x", &r),
                     OTA_ERR_INVALID);
    assert_int_equal(ota__multipart_parse(NULL, 0, "B", r.parts, MAX_PARTS, &r.n), OTA_ERR_INVALID);
}

/* ---- caps ---- */

/* A body of `n` parts named p0, p1, ... into `buf`; returns its length. */
static size_t n_parts(char *buf, size_t cap, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "--B\r\nContent-Disposition: form-data; name=p%zu\r\n\r\n%zu\r\n",
                                i, i);
    len += (size_t)snprintf(buf + len, cap - len, "--B--\r\n");
    assert_true(len < cap);
    return len;
}

static void test_too_many_parts(void **state)
{
    char buf[2048];
    result_t r;
    (void)state;

    size_t len = n_parts(buf, sizeof buf, MAX_PARTS);
    assert_int_equal(parse(buf, len, "B", &r), OTA_OK);
    assert_int_equal(r.n, MAX_PARTS);
    expect_part(&r.parts[MAX_PARTS - 1], "p7", NULL, NULL, LIT("7"));
    len = n_parts(buf, sizeof buf, MAX_PARTS + 1);
    assert_int_equal(parse(buf, len, "B", &r), OTA_ERR_TOO_LARGE);
    len = n_parts(buf, sizeof buf, 1);
    assert_int_equal(parse_n(buf, len, "B", &r, 0), OTA_ERR_TOO_LARGE);
}

/* A part whose Content-Disposition line carries a name of `name_len` characters, with `pad` more bytes
 * of parameter, after `extra` other header lines. */
static size_t part_with(char *buf, size_t cap, size_t name_len, size_t pad, size_t extra)
{
    size_t len = (size_t)snprintf(buf, cap, "--B\r\n");
    for (size_t i = 0; i < extra; i++)
        len += (size_t)snprintf(buf + len, cap - len, "X-Extra-%zu: y\r\n", i);
    len += (size_t)snprintf(buf + len, cap - len, "Content-Disposition: form-data; name=\"");
    memset(buf + len, 'n', name_len), len += name_len;
    len += (size_t)snprintf(buf + len, cap - len, "\"; x=\"");
    memset(buf + len, 'p', pad), len += pad;
    len += (size_t)snprintf(buf + len, cap - len, "\"\r\n\r\nA\r\n--B--\r\n");
    assert_true(len < cap);
    return len;
}

static void test_header_caps(void **state)
{
    /* "Content-Disposition: form-data; name=\"" + name + "\"; x=\"" + pad + "\"" */
    const size_t fixed = strlen("Content-Disposition: form-data; name=\"\"; x=\"\"");
    char buf[4096];
    result_t r;
    (void)state;

    assert_int_equal(parse(buf, part_with(buf, sizeof buf, 127, 0, 0), "B", &r), OTA_OK);
    assert_int_equal(strlen(r.parts[0].name), 127);
    assert_int_equal(parse(buf, part_with(buf, sizeof buf, 128, 0, 0), "B", &r), OTA_ERR_TOO_LARGE);

    assert_int_equal(parse(buf, part_with(buf, sizeof buf, 1, OTA_MULTIPART_HEADER_LINE - fixed - 1, 0), "B", &r),
                     OTA_OK);
    assert_int_equal(parse(buf, part_with(buf, sizeof buf, 1, OTA_MULTIPART_HEADER_LINE - fixed, 0), "B", &r),
                     OTA_ERR_TOO_LARGE);

    assert_int_equal(parse(buf, part_with(buf, sizeof buf, 1, 0, OTA_MULTIPART_HEADER_LINES - 1), "B", &r), OTA_OK);
    assert_int_equal(parse(buf, part_with(buf, sizeof buf, 1, 0, OTA_MULTIPART_HEADER_LINES), "B", &r),
                     OTA_ERR_TOO_LARGE);
}

static void test_value_caps(void **state)
{
    char ct[256], fn[256];
    char buf[1024];
    result_t r;
    (void)state;

    memset(ct, 'c', 127), ct[127] = '\0';
    snprintf(buf, sizeof buf, "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: %s\r\n\r\nA\r\n--B--",
             ct);
    assert_int_equal(parse_str(buf, "B"), OTA_OK);
    memset(ct, 'c', 128), ct[128] = '\0';
    snprintf(buf, sizeof buf, "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: %s\r\n\r\nA\r\n--B--",
             ct);
    assert_int_equal(parse_str(buf, "B"), OTA_ERR_TOO_LARGE);

    memset(fn, 'f', 127), fn[127] = '\0';
    snprintf(buf, sizeof buf, "--B\r\nContent-Disposition: form-data; name=a; filename=%s\r\n\r\nA\r\n--B--", fn);
    assert_int_equal(parse(buf, strlen(buf), "B", &r), OTA_OK);
    assert_string_equal(r.parts[0].filename, fn);
    memset(fn, 'f', 128), fn[128] = '\0';
    snprintf(buf, sizeof buf, "--B\r\nContent-Disposition: form-data; name=a; filename=%s\r\n\r\nA\r\n--B--", fn);
    assert_int_equal(parse_str(buf, "B"), OTA_ERR_TOO_LARGE);
}

/* ---- truncations ---- */

/* Whether `n` bytes may follow a close delimiter: transport padding, then nothing or CRLF and anything. */
static bool close_tail_ok(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i == n || (n - i >= 2 && p[i] == '\r' && p[i + 1] == '\n');
}

/*
 * Every prefix of a valid body is refused, up to the end of its closing "--B--"; past that, a
 * prefix is whole again wherever the rest of the close delimiter line allows it.
 */
static void every_truncation(const char *body, size_t len, const char *boundary, size_t nparts)
{
    char close[OTA_MULTIPART_BOUNDARY_MAX + 8];
    size_t clen = (size_t)snprintf(close, sizeof close, "\r\n--%s--", boundary);
    size_t closed = 0;
    result_t r;

    for (size_t i = 0; i + clen <= len; i++)
        if (memcmp(body + i, close, clen) == 0)
            closed = i + clen;
    assert_true(closed > 0);
    for (size_t cut = 0; cut <= len; cut++) {
        ota_err_t want = cut >= closed && close_tail_ok(body + closed, cut - closed) ? OTA_OK : OTA_ERR_INVALID;
        if (parse(body, cut, boundary, &r) != want)
            fail_msg("cut at %zu of %zu: got %d, want %d", cut, len, r.err, want);
        if (want == OTA_OK)
            assert_int_equal(r.n, nparts);
    }
}

static void test_every_truncation(void **state)
{
    static const char empty_parts[] = "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
                                      "--B\r\nContent-Disposition: form-data; name=b\r\n\r\n"
                                      "--B \r\nContent-Disposition: form-data; name=\"c\\\"\"\r\n\r\n\r\n\r\n"
                                      "--B--  \r\nepilogue";
    char buf[4096];
    (void)state;

    every_truncation(LIT(curl_body), CURL_B, 5);
    every_truncation(LIT(empty_parts), "B", 3);
    every_truncation(buf, n_parts(buf, sizeof buf, 3), "B", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_curl),     cmocka_unit_test(test_boundary_forms),
        cmocka_unit_test(test_boundary_rejected), cmocka_unit_test(test_boundary_cap),
        cmocka_unit_test(test_curl_body),         cmocka_unit_test(test_quoted_boundary_body),
        cmocka_unit_test(test_binary_payload),    cmocka_unit_test(test_boundary_like_data),
        cmocka_unit_test(test_empty_parts),       cmocka_unit_test(test_preamble_padding_epilogue),
        cmocka_unit_test(test_header_details),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_nul_in_header),     cmocka_unit_test(test_bad_boundary_argument),
        cmocka_unit_test(test_too_many_parts),    cmocka_unit_test(test_header_caps),
        cmocka_unit_test(test_value_caps),        cmocka_unit_test(test_every_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
