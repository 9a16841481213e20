#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/portal.h"

/* The origin that `url` starts with, as text. */
static void expect_origin(const char *url, const char *origin)
{
    size_t len = ota__url_origin_len(url);
    assert_int_equal(len, strlen(origin));
    assert_memory_equal(url, origin, len);
}

static void test_origin_of_presigned_urls(void **state)
{
    (void)state;
    /* path-style (MinIO), virtual-hosted (AWS), a default port kept as the URL has it */
    expect_origin("http://127.0.0.1:9000/firmware/uploads/x/bin?X-Amz-Algorithm=AWS4-HMAC-SHA256",
                  "http://127.0.0.1:9000");
    expect_origin("https://firmware.s3.eu-west-1.amazonaws.com/uploads/x/bin?X-Amz-Date=20260101T000000Z",
                  "https://firmware.s3.eu-west-1.amazonaws.com");
    expect_origin("https://s3.example.net:443/b/k", "https://s3.example.net:443");
    /* the authority ends at a query or a fragment too, or at the end */
    expect_origin("http://minio:9000?x=1", "http://minio:9000");
    expect_origin("http://minio:9000#f", "http://minio:9000");
    expect_origin("http://minio:9000", "http://minio:9000");
    /* not http(s)://host */
    assert_int_equal(ota__url_origin_len("ftp://minio/b/k"), 0);
    assert_int_equal(ota__url_origin_len("http:///b/k"), 0);
    assert_int_equal(ota__url_origin_len("https://"), 0);
    assert_int_equal(ota__url_origin_len("/blobs/k"), 0);
    assert_int_equal(ota__url_origin_len(""), 0);
}

static void test_csp_with_an_origin(void **state)
{
    (void)state;
    char csp[OTA_PORTAL_CSP_MAX];
    const char *origin = "https://firmware.s3.eu-west-1.amazonaws.com";
    assert_int_equal(ota__portal_csp_make(origin, strlen(origin), csp, sizeof csp), OTA_OK);
    assert_string_equal(csp, "default-src 'none'; script-src 'self'; style-src 'self'; "
                             "connect-src 'self' https://firmware.s3.eu-west-1.amazonaws.com; img-src 'self' data:; "
                             "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    /* only `len` bytes are read */
    assert_int_equal(ota__portal_csp_make("http://minio:9000/b/k", 17, csp, sizeof csp), OTA_OK);
    assert_non_null(strstr(csp, "connect-src 'self' http://minio:9000; img-src"));
    /* the fs policy is the same text without the origin */
    assert_string_equal(OTA_PORTAL_CSP, "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                        "img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                                        "frame-ancestors 'none'");
}

/* Bytes that could end a directive, add a source or a quoted keyword never enter the header. */
static void test_csp_refuses_other_bytes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "http://minio;script-src 'unsafe-inline'",
        "http://minio:9000,http://evil",
        "http://min io:9000",
        "http://'self'",
        "http://minio\r\nx-evil: 1",
        "http://user@minio:9000",
        "http://[::1]:9000",
        "http://minio\"",
        "http://*.example.net",
    };
    char csp[OTA_PORTAL_CSP_MAX];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ota__portal_csp_make(bad[i], strlen(bad[i]), csp, sizeof csp), OTA_ERR_INVALID);
    assert_int_equal(ota__portal_csp_make("http://minio", 0, csp, sizeof csp), OTA_ERR_INVALID);
    assert_int_equal(ota__portal_csp_make("http://mi\0nio", 12, csp, sizeof csp), OTA_ERR_INVALID);
}

static void test_csp_that_does_not_fit(void **state)
{
    (void)state;
    char csp[sizeof OTA_PORTAL_CSP + 8];
    const char *origin = "http://minio:9000";
    assert_int_equal(ota__portal_csp_make(origin, strlen(origin), csp, sizeof csp), OTA_ERR_TOO_LARGE);
    /* the longest host a presigned URL may have fits in OTA_PORTAL_CSP_MAX */
    char longest[sizeof "https://" + OTA_SIGV4_HOST_MAX], room[OTA_PORTAL_CSP_MAX];
    memcpy(longest, "https://", 8);
    memset(longest + 8, 'h', OTA_SIGV4_HOST_MAX - 1);
    assert_int_equal(ota__portal_csp_make(longest, 8 + OTA_SIGV4_HOST_MAX - 1, room, sizeof room), OTA_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_of_presigned_urls),
        cmocka_unit_test(test_csp_with_an_origin),
        cmocka_unit_test(test_csp_refuses_other_bytes),
        cmocka_unit_test(test_csp_that_does_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
