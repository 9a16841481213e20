/*
 * Integration: the portal's files as the real ota-server serves them (GET /
 * and GET /portal/{name}): media types, the Content-Security-Policy on every
 * one (scripts from the server only, no inline script), revalidation by
 * ETag, 404 for anything else, and a page whose every script and stylesheet
 * is served.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checks.h"

#define CSP                                                                                                            \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "            \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* One answer with every header kept. */
typedef struct page {
    long status;
    char *body;
    size_t body_len;
    char headers[8192];
    size_t headers_len;
} page_t;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    page_t *p = arg;
    char *bigger = realloc(p->body, p->body_len + size * n + 1);
    CHECK(bigger != NULL, "out of memory");
    memcpy(bigger + p->body_len, data, size * n);
    p->body = bigger;
    p->body_len += size * n;
    p->body[p->body_len] = '\0';
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    page_t *p = arg;
    size_t len = size * n;
    if (p->headers_len + len < sizeof p->headers) {
        memcpy(p->headers + p->headers_len, data, len);
        p->headers_len += len;
        p->headers[p->headers_len] = '\0';
    }
    return len;
}

/* GET `path` on h_g_srv, with If-None-Match: `etag` unless NULL. */
static void fetch(const char *path, const char *etag, page_t *p)
{
    char url[256], condition[128];
    memset(p, 0, sizeof *p);
    snprintf(url, sizeof url, "%s%s", h_g_srv.base_url, path);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    if (etag != NULL) {
        snprintf(condition, sizeof condition, "If-None-Match: %s", etag);
        headers = curl_slist_append(headers, condition);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    CHECK(curl_easy_perform(curl) == CURLE_OK, "GET %s failed", path);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p->status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (p->body == NULL)
        p->body = strdup("");
}

/* The value of header `name` (the first), into `out`; false when absent. */
static bool header_value(const page_t *p, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    for (const char *line = p->headers; *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - line)), v);
            return true;
        }
        line += len + (end != NULL ? 2 : 0);
        if (end == NULL)
            break;
    }
    return false;
}

/* A portal file: 200, media type `type`, the CSP and the other safety headers, an ETag that revalidates. */
static void expect_file(const char *path, const char *type, page_t *p)
{
    char value[512], etag[128];
    fetch(path, NULL, p);
    CHECK(p->status == 200 && p->body_len > 0, "GET %s: %ld", path, p->status);
    CHECK(header_value(p, "content-type", value, sizeof value) && strcmp(value, type) == 0, "GET %s: type %s", path,
          value);
    CHECK(header_value(p, "content-security-policy", value, sizeof value) && strcmp(value, CSP) == 0,
          "GET %s: CSP %s", path, p->headers);
    CHECK(strstr(value, "unsafe") == NULL, "GET %s: the CSP allows something unsafe", path);
    CHECK(header_value(p, "x-content-type-options", value, sizeof value) && strcmp(value, "nosniff") == 0,
          "GET %s: %s", path, p->headers);
    CHECK(header_value(p, "cache-control", value, sizeof value) && strcmp(value, "no-cache") == 0, "GET %s: %s", path,
          p->headers);
    CHECK(header_value(p, "etag", etag, sizeof etag) && etag[0] == '"', "GET %s: no ETag: %s", path, p->headers);
    page_t again;
    fetch(path, etag, &again);
    CHECK(again.status == 304 && again.body_len == 0, "GET %s with its ETag: %ld", path, again.status);
    free(again.body);
    fetch(path, "\"another\"", &again);
    CHECK(again.status == 200, "GET %s with another ETag: %ld", path, again.status);
    free(again.body);
}

static void test_index_and_its_files(void **state)
{
    (void)state;
    page_t index;
    expect_file("/", "text/html; charset=utf-8", &index);
    /* No inline script: every <script> has a src, no element has an on... handler attribute. */
    for (const char *s = index.body; (s = strstr(s, "<script")) != NULL; s++) {
        const char *end = strchr(s, '>');
        CHECK(end != NULL && memmem(s, (size_t)(end - s), " src=", 5) != NULL, "an inline script: %s", s);
    }
    for (const char *s = index.body; (s = strstr(s, " on")) != NULL; s++) {
        const char *name_end = s + 3;
        while (*name_end >= 'a' && *name_end <= 'z')
            name_end++;
        CHECK(*name_end != '=' || name_end == s + 3, "an event handler attribute: %.40s", s);
    }
    /* Every file the page names is served, with its type. */
    static const struct {
        const char *path, *type;
    } files[] = {{"/portal/app.js", "text/javascript; charset=utf-8"}, {"/portal/style.css", "text/css; charset=utf-8"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        CHECK(strstr(index.body, files[i].path) != NULL, "the page does not name %s", files[i].path);
        page_t f;
        expect_file(files[i].path, files[i].type, &f);
        free(f.body);
    }
    page_t named;
    expect_file("/portal/index.html", "text/html; charset=utf-8", &named);
    CHECK(named.body_len == index.body_len && memcmp(named.body, index.body, index.body_len) == 0,
          "/ and /portal/index.html differ");
    free(named.body);
    free(index.body);
}

static void test_unknown_files(void **state)
{
    (void)state;
    static const char *const paths[] = {"/portal/nope.js", "/portal/..%2Findex.html", "/portal/%2e%2e", "/portal",
                                        "/portal/app.js/x", "/index.html"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        h_resp_t r = {0};
        h_http(&h_g_srv, "GET", paths[i], NULL, NULL, 0, NULL, &r);
        EXPECT_ERROR_AT(&r, 404, "not_found", "GET", paths[i]);
        h_resp_free(&r);
    }
    h_resp_t r = {0};
    h_http(&h_g_srv, "POST", "/", NULL, "{}", 2, NULL, &r);
    EXPECT_ERROR_AT(&r, 405, "method_not_allowed", "POST", "/");
    h_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_and_its_files),
        cmocka_unit_test(test_unknown_files),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
