/*
 * Integration: the portal's files as the real ota-server serves them (GET /
 * and GET /portal/{name}): media types, the Content-Security-Policy on every
 * one (scripts from the server only, no inline script), revalidation by
 * ETag, 404 for anything else, and a page whose every script and stylesheet
 * is served. With the s3 storage, the CSP lets the page connect to the
 * storage's origin too, where the presigned uploads are.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checks.h"

/* The CSP with the fs storage; with s3, the storage's origin comes between the two halves. */
#define CSP_HEAD "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'"
#define CSP_TAIL "; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define CSP CSP_HEAD CSP_TAIL

/* A second server, with the s3 storage. */
static h_server_t g_other;

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

/* GET `path` on `srv`, with If-None-Match: `etag` unless NULL. */
static void fetch(const h_server_t *srv, const char *path, const char *etag, page_t *p)
{
    char url[256], condition[128];
    memset(p, 0, sizeof *p);
    snprintf(url, sizeof url, "%s%s", srv->base_url, path);
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
    fetch(&h_g_srv, path, NULL, p);
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
    fetch(&h_g_srv, path, etag, &again);
    CHECK(again.status == 304 && again.body_len == 0, "GET %s with its ETag: %ld", path, again.status);
    free(again.body);
    fetch(&h_g_srv, path, "\"another\"", &again);
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

/* ---- with the s3 storage ---------------------------------------------------------------------- */

/*
 * The server reaches no storage at start, nor to serve the portal or to presign, so these endpoints need not
 * exist: what is checked is the origin the server derives from its configuration.
 */

/* A test's teardown: stops g_other when the test started it (h_server_stop zeroes its pid). */
static int stop_other(void **state)
{
    (void)state;
    if (g_other.pid > 0)
        h_server_stop(&g_other);
    return 0;
}

/* Starts g_other with the s3 storage at `endpoint`, bucket "firmware", path-style or virtual-hosted. */
static void start_s3_server(const char *endpoint, bool path_style)
{
    char endpoint_env[160];
    snprintf(endpoint_env, sizeof endpoint_env, "OTA_S3_ENDPOINT=%s", endpoint);
    const char *const env[] = {"OTA_STORAGE=s3",
                               endpoint_env,
                               "OTA_S3_BUCKET=firmware",
                               "OTA_S3_ACCESS_KEY=" H_S3_ACCESS_KEY,
                               "OTA_S3_SECRET_KEY=" H_S3_SECRET_KEY,
                               path_style ? "OTA_S3_PATH_STYLE=1" : "OTA_S3_PATH_STYLE=0",
                               NULL};
    h_server_start(&g_other, &h_g_pg, env);
    CHECK(h_wait_ready(&g_other), "the server with the s3 storage did not become ready");
}

/* Every portal file g_other serves carries the CSP `want`. */
static void expect_csp(const char *want)
{
    static const char *const paths[] = {"/", "/portal/app.js", "/portal/style.css"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        page_t p;
        char value[1024] = "";
        fetch(&g_other, paths[i], NULL, &p);
        CHECK(p.status == 200, "GET %s: %ld", paths[i], p.status);
        CHECK(header_value(&p, "content-security-policy", value, sizeof value) && strcmp(value, want) == 0,
              "GET %s: CSP \"%s\", want \"%s\"", paths[i], value, want);
        free(p.body);
    }
}

/* The presigned upload URL g_other hands out is on `origin`: where a browser PUTs is what the CSP names. */
static void expect_upload_on(const char *origin)
{
    h_resp_t r = {0};
    h_json(&g_other, "POST", "/v1/uploads", g_other.admin_key, &r, "{s:s, s:i}", "artifact", "bin", "size", 1000);
    EXPECT_STATUS(&r, 201);
    const char *url = h_jstr(r.json, "url");
    size_t len = strlen(origin);
    CHECK(url != NULL && strncmp(url, origin, len) == 0 && url[len] == '/', "the upload URL %s is not on %s",
          url != NULL ? url : "(none)", origin);
    h_resp_free(&r);
}

/* The server's log so far has a line holding `text`. */
static bool log_has(const h_server_t *srv, const char *text)
{
    FILE *f = fopen(srv->log_path, "r");
    if (f == NULL)
        return false;
    bool found = false;
    char line[4096];
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

/* Path-style (MinIO): the endpoint's own origin. */
static void test_csp_with_path_style_s3(void **state)
{
    (void)state;
    start_s3_server("http://minio:9000", true);
    expect_csp(CSP_HEAD " http://minio:9000" CSP_TAIL);
    expect_upload_on("http://minio:9000");
}

/* Virtual-hosted (AWS): the bucket is in the host, so in the origin too. */
static void test_csp_with_virtual_hosted_s3(void **state)
{
    (void)state;
    start_s3_server("https://s3.eu-west-1.amazonaws.com", false);
    expect_csp(CSP_HEAD " https://firmware.s3.eu-west-1.amazonaws.com" CSP_TAIL);
    expect_upload_on("https://firmware.s3.eu-west-1.amazonaws.com");
}

/* An endpoint the S3 client takes, with a byte that would add a directive: left out, and the log says why. */
static void test_csp_refuses_a_strange_endpoint(void **state)
{
    (void)state;
    start_s3_server("http://minio;script-src:9000", true);
    expect_csp(CSP);
    CHECK(log_has(&g_other, "left out of the portal's CSP"), "no warning in %s", g_other.log_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_and_its_files),
        cmocka_unit_test(test_unknown_files),
        cmocka_unit_test_teardown(test_csp_with_path_style_s3, stop_other),
        cmocka_unit_test_teardown(test_csp_with_virtual_hosted_s3, stop_other),
        cmocka_unit_test_teardown(test_csp_refuses_a_strange_endpoint, stop_other),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
