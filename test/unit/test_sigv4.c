#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "storage/sigv4.h"

/* The credentials, bucket and time of the examples in the Amazon S3 API reference (SigV4). */
#define DOC_AK "AKIAIOSFODNN7EXAMPLE"
#define DOC_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_DATE "20130524T000000Z"
#define DOC_TIME ((time_t)1369353600) /* 2013-05-24T00:00:00Z */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define URL_MAX 4096

static const ota_sigv4_signer_t DOC_SIGNER = {DOC_AK, DOC_SK, NULL, "us-east-1"};

/* "Example: GET Object" of the presigned-URL (query parameters) page. */
static const char DOC_PRESIGNED_URL[] =
    "https://examplebucket.s3.amazonaws.com/test.txt"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

static const char DOC_PRESIGN_CREQ[] =
    "GET\n/test.txt\n"
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
    "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD";

static const char DOC_PRESIGN_STS[] = "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                                      "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04";

/* "Example: GET Object" of the Authorization-header page (with a Range header). */
static const char DOC_GET_CREQ[] = "GET\n/test.txt\n\n"
                                   "host:examplebucket.s3.amazonaws.com\n"
                                   "range:bytes=0-9\n"
                                   "x-amz-content-sha256:" EMPTY_SHA256 "\n"
                                   "x-amz-date:20130524T000000Z\n\n"
                                   "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256;

static const char DOC_GET_AUTH[] =
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

static ota_sigv4_request_t doc_request(void)
{
    return (ota_sigv4_request_t){
        .signer = &DOC_SIGNER,
        .method = "GET",
        .scheme = "https",
        .host = "examplebucket.s3.amazonaws.com",
        .path = "/test.txt",
        .amz_date = DOC_DATE,
    };
}

static void sha256_hex(const char *s, char out[65])
{
    uint8_t md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- the AWS documentation's examples ---- */

static void test_doc_presigned_url(void **state)
{
    (void)state;
    char url[URL_MAX];
    size_t len = 0;
    ota_sigv4_request_t req = doc_request();

    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), &len), OTA_OK);
    assert_string_equal(url, DOC_PRESIGNED_URL);
    assert_int_equal(len, strlen(DOC_PRESIGNED_URL));

    req.amz_date = NULL; /* the same instant as a time_t */
    req.now = DOC_TIME;
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    assert_string_equal(url, DOC_PRESIGNED_URL);

    req.host = "examplebucket.s3.amazonaws.com:443"; /* default port: kept in the URL, not signed */
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    assert_non_null(strstr(url, "https://examplebucket.s3.amazonaws.com:443/test.txt?"));
    assert_non_null(strstr(url, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"));
}

static void test_doc_presign_pieces(void **state)
{
    (void)state;
    char hash[65], sts[256], sig[65];
    uint8_t key[OTA_SIGV4_KEY_LEN];

    sha256_hex(DOC_PRESIGN_CREQ, hash);
    assert_string_equal(hash, "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
    assert_int_equal(ota__sigv4_string_to_sign(DOC_DATE, "us-east-1", hash, sts, sizeof(sts)), OTA_OK);
    assert_string_equal(sts, DOC_PRESIGN_STS);
    assert_int_equal(ota__sigv4_signing_key(DOC_SK, "20130524", "us-east-1", key), OTA_OK);
    assert_int_equal(ota__sigv4_signature(key, sts, sig), OTA_OK);
    assert_string_equal(sig, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

static void test_doc_get_object_headers(void **state)
{
    (void)state;
    char creq[1024], hash[65];
    ota_sigv4_signed_t out;
    ota_sigv4_header_t range = {"range", "bytes=0-9"};
    ota_sigv4_request_t req = doc_request();
    req.payload_sha256 = EMPTY_SHA256;
    req.extra = &range;
    req.n_extra = 1;

    assert_int_equal(ota__sigv4_canonical_request(&req, creq, sizeof(creq)), OTA_OK);
    assert_string_equal(creq, DOC_GET_CREQ);
    sha256_hex(creq, hash);
    assert_string_equal(hash, "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");

    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_OK);
    assert_string_equal(out.authorization, DOC_GET_AUTH);
    assert_string_equal(out.amz_date, DOC_DATE);
    assert_string_equal(out.content_sha256, EMPTY_SHA256);
    assert_null(out.security_token);

    range.value = "  bytes=0-9 \t"; /* signed trimmed */
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_OK);
    assert_string_equal(out.authorization, DOC_GET_AUTH);
}

/* The request of the botocore session-token vectors below, signed by `signer`. */
static ota_sigv4_request_t botocore_put(const ota_sigv4_signer_t *signer)
{
    return (ota_sigv4_request_t){
        .signer = signer,
        .method = "PUT",
        .scheme = "http",
        .host = "127.0.0.1:4569",
        .path = "/my-bucket/fw/a b+c.bin",
        .now = 1709251198,
        .query = "partNumber=2&uploadId=xyz",
        .payload_sha256 = EMPTY_SHA256,
    };
}

/* botocore 1.29 and 1.43, S3SigV4Auth.add_auth on PUT http://127.0.0.1:4569/my-bucket/fw/a%20b%2Bc.bin
 * ?partNumber=2&uploadId=xyz, empty body, 2024-02-29T23:59:58Z, eu-central-1, with a session token. */
static void test_headers_botocore_token(void **state)
{
    (void)state;
    const ota_sigv4_signer_t signer = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                       "FQoGZXIvYXdzE+token/==", "eu-central-1"};
    ota_sigv4_request_t req = botocore_put(&signer);
    ota_sigv4_signed_t out;

    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_OK);
    assert_string_equal(out.authorization,
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-central-1/s3/aws4_request, "
                        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
                        "Signature=af5cc8f2ce0ba0f49d711e9c4bacd78fffa403bd6a5d4576dda8257dc94405a2");
    assert_string_equal(out.amz_date, "20240229T235958Z");
    assert_ptr_equal(out.security_token, signer.session_token);
}

/* The same request with an 8,184-character session token (the longest allowed is 8,191): its canonical request (8,776
 * bytes) outgrows the stack buffer it is
 * usually hashed from (sigv4.c, hash_canonical) and is hashed from the heap. botocore 1.43.11 signs it so. */
static void test_headers_botocore_long_token(void **state)
{
    (void)state;
    static const char PIECE[] = "FQoGZXIvYXdzE+token/==";
    char *token = malloc(372 * (sizeof PIECE - 1) + 1);
    assert_non_null(token);
    token[0] = '\0';
    for (int i = 0; i < 372; i++)
        strcat(token, PIECE);
    const ota_sigv4_signer_t signer = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token, "eu-central-1"};
    ota_sigv4_request_t req = botocore_put(&signer);
    ota_sigv4_signed_t out;

    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_OK);
    assert_string_equal(out.authorization,
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-central-1/s3/aws4_request, "
                        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
                        "Signature=8887bb86e3dc72e4df68b7af6aef16da497de5e6e09485f028649978221f387b");
    free(token);
}

static void test_headers_invalid(void **state)
{
    (void)state;
    ota_sigv4_signed_t out;
    ota_sigv4_header_t bad_name = {"Range", "bytes=0-9"};
    ota_sigv4_header_t reserved = {"x-amz-date", "x"};
    ota_sigv4_header_t crlf = {"range", "bytes=0-9\r\nx: y"};
    ota_sigv4_header_t twice[2] = {{"range", "a"}, {"range", "b"}};
    ota_sigv4_request_t req = doc_request();

    req.payload_sha256 = NULL;
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_ERR_INVALID);
    req.payload_sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_ERR_INVALID);
    req.payload_sha256 = OTA_SIGV4_UNSIGNED_PAYLOAD;
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_OK);
    assert_string_equal(out.content_sha256, OTA_SIGV4_UNSIGNED_PAYLOAD);

    const ota_sigv4_header_t *cases[] = {&bad_name, &reserved, &crlf};
    for (size_t i = 0; i < 3; i++) {
        req.extra = cases[i];
        req.n_extra = 1;
        assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_ERR_INVALID);
    }
    req.extra = twice;
    req.n_extra = 2;
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_ERR_INVALID);
    req.n_extra = OTA_SIGV4_EXTRA_MAX + 1;
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_ERR_INVALID);
    req.extra = NULL;
    req.n_extra = 0;
    req.method = "PATCH";
    assert_int_equal(ota__sigv4_sign_headers(&req, &out), OTA_ERR_INVALID);
    assert_string_equal(out.authorization, "");
}

/* ---- keys ---- */

static void test_signing_key(void **state)
{
    (void)state;
    uint8_t key[OTA_SIGV4_KEY_LEN];
    char hex[65];
    /* Computed independently (Python hmac) for the documentation's secret, day and region. */
    static const char expected[] = "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378";

    assert_int_equal(ota__sigv4_signing_key(DOC_SK, "20130524", "us-east-1", key), OTA_OK);
    for (size_t i = 0; i < sizeof(key); i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    assert_string_equal(hex, expected);

    assert_int_equal(ota__sigv4_signing_key("", "20130524", "us-east-1", key), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_signing_key(DOC_SK, "2013052", "us-east-1", key), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_signing_key(DOC_SK, "2013052x", "us-east-1", key), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_signing_key(DOC_SK, "20130524", "", key), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_signing_key(DOC_SK, "20130524", "us/east", key), OTA_ERR_INVALID);
}

static void test_key_cache(void **state)
{
    (void)state;
    char url[URL_MAX];
    ota_sigv4_key_t cache = {0};
    ota_sigv4_request_t req = doc_request();
    req.key = &cache;

    assert_int_equal(ota__sigv4_key_refresh(&cache, &DOC_SIGNER, DOC_TIME + 3600), OTA_OK);
    assert_string_equal(cache.date8, "20130524");
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    assert_string_equal(url, DOC_PRESIGNED_URL);

    /* A key of the same day is trusted (proof that it is used)... */
    memset(cache.bytes, 0xAA, sizeof(cache.bytes));
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    assert_string_not_equal(url, DOC_PRESIGNED_URL);
    /* ...and refreshing within the day keeps it. */
    assert_int_equal(ota__sigv4_key_refresh(&cache, &DOC_SIGNER, DOC_TIME + 86399), OTA_OK);
    assert_int_equal(cache.bytes[0], 0xAA);

    /* A key of another day is ignored. */
    memcpy(cache.date8, "20130523", 9);
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    assert_string_equal(url, DOC_PRESIGNED_URL);
    assert_int_equal(ota__sigv4_key_refresh(&cache, &DOC_SIGNER, DOC_TIME), OTA_OK);
    assert_string_equal(cache.date8, "20130524");
    assert_int_not_equal(cache.bytes[0], 0xAA);
}

/* ---- dates ---- */

static void test_dates(void **state)
{
    (void)state;
    char s[OTA_SIGV4_DATE_LEN + 1];
    time_t t = 0;

    assert_int_equal(ota__sigv4_format_date(DOC_TIME, s), OTA_OK);
    assert_string_equal(s, DOC_DATE);
    assert_int_equal(ota__sigv4_parse_date("20240229T235958Z", &t), OTA_OK);
    assert_int_equal(t, 1709251198);

    static const char *const bad[] = {"",
                                      "20130524",
                                      "20130524T000000",
                                      "20130524T000000z",
                                      "20130524 000000Z",
                                      "20130230T000000Z",
                                      "20130524T240000Z",
                                      "20130524T000060Z",
                                      "2013-5-24T000000Z",
                                      "20130524T000000ZZ",
                                      "20231301T000000Z",
                                      "+0130524T000000Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ota__sigv4_parse_date(bad[i], &t), OTA_ERR_INVALID);
}

/* ---- encoding ---- */

static void test_uri_encode(void **state)
{
    (void)state;
    char out[256];
    size_t len = 0;
    const char *key = "/folder/a b+c=d&e~(f)/\xc3\xbc/\xe6\x97\xa5\xe6\x9c\xac.bin!*'@:$,;?#[]%";

    assert_int_equal(ota__sigv4_uri_encode(key, strlen(key), true, out, sizeof(out), &len), OTA_OK);
    assert_string_equal(out, "/folder/a%20b%2Bc%3Dd%26e~%28f%29/%C3%BC/%E6%97%A5%E6%9C%AC.bin"
                             "%21%2A%27%40%3A%24%2C%3B%3F%23%5B%5D%25");
    assert_int_equal(len, strlen(out));
    assert_int_equal(ota__sigv4_uri_encode("a/b c", 5, false, out, sizeof(out), NULL), OTA_OK);
    assert_string_equal(out, "a%2Fb%20c");
    assert_int_equal(ota__sigv4_uri_encode("AZaz09-._~", 10, false, out, sizeof(out), NULL), OTA_OK);
    assert_string_equal(out, "AZaz09-._~");
    assert_int_equal(ota__sigv4_uri_encode("a b", 3, true, out, 5, NULL), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota__sigv4_uri_encode("a b", 3, true, out, 6, NULL), OTA_OK);

    /* Every byte: kept exactly when unreserved (or '/' in a path), else %XX. */
    for (int c = 1; c < 256; c++) {
        char in = (char)c, want[4];
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || c == '/';
        if (keep)
            snprintf(want, sizeof(want), "%c", c);
        else
            snprintf(want, sizeof(want), "%%%02X", (unsigned)c);
        assert_int_equal(ota__sigv4_uri_encode(&in, 1, true, out, sizeof(out), NULL), OTA_OK);
        assert_string_equal(out, want);
    }
}

static void test_uri_decode(void **state)
{
    (void)state;
    char out[64];
    size_t len = 0;

    assert_int_equal(ota__sigv4_uri_decode("/a%20b%2Bc+%c3%BC", 17, out, sizeof(out), &len), OTA_OK);
    assert_string_equal(out, "/a b+c+\xc3\xbc");
    assert_int_equal(len, 9);
    static const char *const bad[] = {"%", "%4", "%zz", "%4g", "%00", "a%0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ota__sigv4_uri_decode(bad[i], strlen(bad[i]), out, sizeof(out), NULL), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_uri_decode("a\0b", 3, out, sizeof(out), NULL), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_uri_decode("abcd", 4, out, 4, NULL), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota__sigv4_uri_decode("abcd", 4, out, 5, NULL), OTA_OK);
}

/* ---- presigning: botocore's output for awkward keys, argument checks ---- */

/* Printed by botocore 1.29.27 (Debian) and 1.43.11 for these inputs (generate_presigned_url). */
static void test_presign_botocore_vectors(void **state)
{
    (void)state;
    char url[URL_MAX];
    ota_sigv4_signer_t signer = DOC_SIGNER;
    ota_sigv4_request_t req = {
        .signer = &signer,
        .method = "PUT",
        .scheme = "http",
        .host = "127.0.0.1:4569",
        .path = "/examplebucket/a b+c=d&e~(f)/\xc3\xbc/\xe6\x97\xa5\xe6\x9c\xac.bin",
        .amz_date = DOC_DATE,
    };
    const char *prefix = "http://127.0.0.1:4569/examplebucket/a%20b%2Bc%3Dd%26e~%28f%29/%C3%BC/%E6%97%A5%E6%9C%AC.bin"
                         "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                         "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                         "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host";
    char want[URL_MAX];

    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    snprintf(want, sizeof(want), "%s%s", prefix,
             "&X-Amz-Signature=63e900b84e67ea430b4c2e2f3ee09fc31b5cdee4226d7c82dcb6d604e31164f0");
    assert_string_equal(url, want);

    signer.session_token = "TOK/EN+==";
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    snprintf(want, sizeof(want), "%s%s", prefix,
             "&X-Amz-Security-Token=TOK%2FEN%2B%3D%3D"
             "&X-Amz-Signature=e207f1bf2f625aa6f29cd027dd6b187c9a4e668f90f6869d213504f537c7442a");
    assert_string_equal(url, want);

    req.method = "GET";
    req.scheme = "https";
    req.host = "examplebucket.s3.amazonaws.com";
    req.path = "/test.txt";
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, sizeof(url), NULL), OTA_OK);
    assert_non_null(strstr(url, "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=TOK%2FEN%2B%3D%3D&X-Amz-Signature="
                                "a077cdbf5cc35fad61c0658604392aa9d2e9c285e4bbf2fd6acbe63a73a7e48f"));
}

static void test_presign_expiry_bounds(void **state)
{
    (void)state;
    char url[URL_MAX];
    ota_sigv4_request_t req = doc_request();
    static const long bad[] = {-1, 0, OTA_SIGV4_EXPIRES_MAX + 1, 1L << 40};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(url, sizeof(url), "x");
        assert_int_equal(ota__sigv4_presign(&req, bad[i], url, sizeof(url), NULL), OTA_ERR_INVALID);
        assert_string_equal(url, "");
    }
    assert_int_equal(ota__sigv4_presign(&req, 1, url, sizeof(url), NULL), OTA_OK);
    assert_non_null(strstr(url, "&X-Amz-Expires=1&"));
    assert_int_equal(ota__sigv4_presign(&req, OTA_SIGV4_EXPIRES_MAX, url, sizeof(url), NULL), OTA_OK);
    assert_non_null(strstr(url, "&X-Amz-Expires=604800&"));
}

static void expect_invalid(ota_sigv4_request_t req)
{
    char url[URL_MAX];
    assert_int_equal(ota__sigv4_presign(&req, 900, url, sizeof(url), NULL), OTA_ERR_INVALID);
}

static void test_presign_invalid_args(void **state)
{
    (void)state;
    ota_sigv4_request_t r;
    ota_sigv4_signer_t no_secret = {DOC_AK, "", NULL, "us-east-1"};
    ota_sigv4_header_t range = {"range", "bytes=0-1"};

    static const char *const methods[] = {"POST", "get", "PATCH", "", NULL};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        r = doc_request();
        r.method = methods[i];
        expect_invalid(r);
    }
    r = doc_request(), r.scheme = "ftp", expect_invalid(r);
    r = doc_request(), r.scheme = NULL, expect_invalid(r);
    r = doc_request(), r.host = "", expect_invalid(r);
    r = doc_request(), r.host = "a b", expect_invalid(r);
    r = doc_request(), r.host = "evil.com/x", expect_invalid(r);
    r = doc_request(), r.path = "test.txt", expect_invalid(r);
    r = doc_request(), r.path = "", expect_invalid(r);
    r = doc_request(), r.amz_date = "20130230T000000Z", expect_invalid(r);
    r = doc_request(), r.query = "a=b", expect_invalid(r);
    r = doc_request(), r.extra = &range, r.n_extra = 1, expect_invalid(r);
    r = doc_request(), r.signer = &no_secret, expect_invalid(r);
    r = doc_request(), r.signer = NULL, expect_invalid(r);
    static const ota_sigv4_signer_t bad_signers[] = {
        {"AK/IA", DOC_SK, NULL, "us-east-1"},   {"AK IA", DOC_SK, NULL, "us-east-1"},
        {"", DOC_SK, NULL, "us-east-1"},        {DOC_AK, DOC_SK, "tok\r\nX: y", "us-east-1"},
        {DOC_AK, DOC_SK, NULL, "us-east-1/s3"}, {DOC_AK, DOC_SK, NULL, ""},
        {NULL, DOC_SK, NULL, "us-east-1"},      {DOC_AK, NULL, NULL, "us-east-1"},
    };
    for (size_t i = 0; i < sizeof(bad_signers) / sizeof(bad_signers[0]); i++)
        r = doc_request(), r.signer = &bad_signers[i], expect_invalid(r);
    assert_int_equal(ota__sigv4_presign(NULL, 900, (char[8]){0}, 8, NULL), OTA_ERR_INVALID);
}

static void test_presign_too_large(void **state)
{
    (void)state;
    char url[URL_MAX];
    ota_sigv4_request_t req = doc_request();
    size_t need = strlen(DOC_PRESIGNED_URL);

    assert_int_equal(ota__sigv4_presign(&req, 86400, url, need, NULL), OTA_ERR_TOO_LARGE);
    assert_string_equal(url, "");
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, 0, NULL), OTA_ERR_TOO_LARGE);
    assert_int_equal(ota__sigv4_presign(&req, 86400, url, need + 1, NULL), OTA_OK);
    assert_string_equal(url, DOC_PRESIGNED_URL);
}

/* ---- addressing ---- */

static void test_s3_target(void **state)
{
    (void)state;
    ota_sigv4_target_t t;

    assert_int_equal(ota__sigv4_s3_target("http://127.0.0.1:4569", "my-bucket", "a/b c.bin", true, &t), OTA_OK);
    assert_string_equal(t.scheme, "http");
    assert_string_equal(t.host, "127.0.0.1:4569");
    assert_string_equal(t.path, "/my-bucket/a/b c.bin");

    assert_int_equal(ota__sigv4_s3_target("https://s3.eu-west-1.amazonaws.com/", "my-bucket", "k", false, &t), OTA_OK);
    assert_string_equal(t.scheme, "https");
    assert_string_equal(t.host, "my-bucket.s3.eu-west-1.amazonaws.com");
    assert_string_equal(t.path, "/k");

    /* Not a DNS label: path-style, as botocore falls back. */
    static const char *const not_labels[] = {"my.bucket", "ab", "My-Bucket", "-bucket", "bucket-", "under_score"};
    for (size_t i = 0; i < sizeof(not_labels) / sizeof(not_labels[0]); i++) {
        assert_int_equal(ota__sigv4_s3_target("https://s3.example.com", not_labels[i], "k", false, &t), OTA_OK);
        assert_string_equal(t.host, "s3.example.com");
    }

    static const char *const bad_endpoints[] = {
        "ftp://h", "http://", "http:///", "http://h/prefix", "http://u@h", "h:9000", "http://h?x", "HTTP://h", ""};
    for (size_t i = 0; i < sizeof(bad_endpoints) / sizeof(bad_endpoints[0]); i++)
        assert_int_equal(ota__sigv4_s3_target(bad_endpoints[i], "bucket", "k", true, &t), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_s3_target("http://h", "", "k", true, &t), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_s3_target("http://h", "a/b", "k", true, &t), OTA_ERR_INVALID);
    assert_int_equal(ota__sigv4_s3_target("http://h", "bucket", "", true, &t), OTA_ERR_INVALID);

    char long_key[OTA_SIGV4_PATH_MAX];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(ota__sigv4_s3_target("http://h", "bucket", long_key, true, &t), OTA_ERR_TOO_LARGE);
}

/* ---- verification ---- */

#define V_HOST "files.example.com:8080"
#define V_PATH "/blobs/fw 1/\xc3\xbc+(x).bin"
#define V_TIME ((time_t)1709251198)
#define V_EXPIRES 900

static const ota_sigv4_signer_t V_SIGNER = {"OTAFSKEY", "fs-secret/+=", NULL, "local"};

typedef struct url_parts {
    char url[URL_MAX];
    char method[16];
    char host[256];
    char path[1024];
    char query[2048];
} url_parts_t;

/* Presigns with `signer` at V_TIME and splits the URL as a server receives it. */
static void presign_parts(const ota_sigv4_signer_t *signer, const char *method, url_parts_t *u)
{
    ota_sigv4_request_t req = {
        .signer = signer, .method = method, .scheme = "http", .host = V_HOST, .path = V_PATH, .now = V_TIME};
    assert_int_equal(ota__sigv4_presign(&req, V_EXPIRES, u->url, sizeof(u->url), NULL), OTA_OK);
    const char *host = u->url + strlen("http://");
    const char *path = strchr(host, '/');
    const char *query = strchr(path, '?');
    snprintf(u->method, sizeof(u->method), "%s", method);
    snprintf(u->host, sizeof(u->host), "%.*s", (int)(path - host), host);
    snprintf(u->path, sizeof(u->path), "%.*s", (int)(query - path), path);
    snprintf(u->query, sizeof(u->query), "%s", query + 1);
}

static ota_sigv4_verdict_t verify(const ota_sigv4_signer_t *signer, const url_parts_t *u, time_t now)
{
    ota_sigv4_received_t rcv = {u->method, strlen(u->method), u->host,  strlen(u->host),
                                u->path,   strlen(u->path),   u->query, strlen(u->query)};
    return ota__sigv4_verify(signer, &rcv, now, NULL);
}

/* Replaces the first `from` in `s` (cap bytes) by `to`. */
static void replace(char *s, size_t cap, const char *from, const char *to)
{
    char *at = strstr(s, from);
    assert_non_null(at);
    char rest[4096];
    snprintf(rest, sizeof(rest), "%s", at + strlen(from));
    snprintf(at, cap - (size_t)(at - s), "%s%s", to, rest);
}

static void test_verify_accepts_own(void **state)
{
    (void)state;
    url_parts_t u;
    static const char *const methods[] = {"GET", "PUT", "HEAD", "DELETE"};

    for (size_t i = 0; i < 4; i++) {
        presign_parts(&V_SIGNER, methods[i], &u);
        assert_int_equal(verify(&V_SIGNER, &u, V_TIME + 10), OTA_SIGV4_VALID);
    }
    presign_parts(&V_SIGNER, "GET", &u);
    assert_string_equal(u.path, "/blobs/fw%201/%C3%BC%2B%28x%29.bin");
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME), OTA_SIGV4_VALID);

    /* The same bytes spelled otherwise (lower-case hex, needless escapes) are the same path. */
    snprintf(u.path, sizeof(u.path), "%s", "/blob%73/fw%201/%c3%bc%2b%28x%29.bin");
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME), OTA_SIGV4_VALID);

    /* A cached key of the day is used. */
    ota_sigv4_key_t key = {0};
    assert_int_equal(ota__sigv4_key_refresh(&key, &V_SIGNER, V_TIME), OTA_OK);
    ota_sigv4_received_t rcv = {u.method, 3, u.host, strlen(u.host), u.path, strlen(u.path), u.query, strlen(u.query)};
    assert_int_equal(ota__sigv4_verify(&V_SIGNER, &rcv, V_TIME, &key), OTA_SIGV4_VALID);
    key.bytes[0] ^= 1;
    assert_int_equal(ota__sigv4_verify(&V_SIGNER, &rcv, V_TIME, &key), OTA_SIGV4_MISMATCH);
}

static void test_verify_default_port(void **state)
{
    (void)state;
    url_parts_t u;
    char url[URL_MAX];
    ota_sigv4_request_t req = {.signer = &V_SIGNER,
                               .method = "GET",
                               .scheme = "http",
                               .host = "files.example.com",
                               .path = "/k",
                               .now = V_TIME};

    assert_int_equal(ota__sigv4_presign(&req, V_EXPIRES, url, sizeof(url), NULL), OTA_OK);
    memset(&u, 0, sizeof(u));
    snprintf(u.method, sizeof(u.method), "GET");
    snprintf(u.path, sizeof(u.path), "/k");
    snprintf(u.query, sizeof(u.query), "%s", strchr(url, '?') + 1);
    static const char *const hosts[] = {"files.example.com", "files.example.com:80", "Files.Example.COM"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(u.host, sizeof(u.host), "%s", hosts[i]);
        assert_int_equal(verify(&V_SIGNER, &u, V_TIME), OTA_SIGV4_VALID);
    }
    snprintf(u.host, sizeof(u.host), "files.example.com:8080");
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME), OTA_SIGV4_MISMATCH);
}

static void test_verify_time(void **state)
{
    (void)state;
    url_parts_t u;
    presign_parts(&V_SIGNER, "GET", &u);

    assert_int_equal(verify(&V_SIGNER, &u, V_TIME + V_EXPIRES), OTA_SIGV4_VALID);
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME + V_EXPIRES + 1), OTA_SIGV4_EXPIRED);
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME + 86400 * 30), OTA_SIGV4_EXPIRED);
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME - OTA_SIGV4_SKEW_MAX), OTA_SIGV4_VALID);
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME - OTA_SIGV4_SKEW_MAX - 1), OTA_SIGV4_NOT_YET_VALID);
    assert_int_equal(verify(&V_SIGNER, &u, 0), OTA_SIGV4_NOT_YET_VALID);
}

static void test_verify_tampered(void **state)
{
    (void)state;
    url_parts_t u, t;
    presign_parts(&V_SIGNER, "GET", &u);
    char *sig = strstr(u.query, "X-Amz-Signature=") + strlen("X-Amz-Signature=");

    t = u, t.query[sig - u.query] = *sig == '0' ? '1' : '0';
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);

    t = u, replace(t.path, sizeof(t.path), "fw%201", "fw%202");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);
    t = u, replace(t.path, sizeof(t.path), "/blobs/", "/blobs//");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);
    t = u, replace(t.query, sizeof(t.query), "X-Amz-Expires=900", "X-Amz-Expires=901");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);
    t = u, replace(t.query, sizeof(t.query), "X-Amz-Date=20240229T235958Z", "X-Amz-Date=20240229T235959Z");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);
    t = u, snprintf(t.method, sizeof(t.method), "PUT");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);
    t = u, snprintf(t.method, sizeof(t.method), "HEAD");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);
    t = u, snprintf(t.host, sizeof(t.host), "evil.example.com:8080");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MISMATCH);

    /* The time checks come after the signature: a forged URL is a mismatch, not "expired". */
    t = u, replace(t.query, sizeof(t.query), "X-Amz-Expires=900", "X-Amz-Expires=604800");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME + 86400), OTA_SIGV4_MISMATCH);
}

static void test_verify_wrong_key(void **state)
{
    (void)state;
    url_parts_t u;
    presign_parts(&V_SIGNER, "GET", &u);
    ota_sigv4_signer_t other = V_SIGNER;

    other.secret_key = "fs-secret/+=x";
    assert_int_equal(verify(&other, &u, V_TIME), OTA_SIGV4_MISMATCH);
    other = V_SIGNER, other.access_key = "OTHERKEY";
    assert_int_equal(verify(&other, &u, V_TIME), OTA_SIGV4_MALFORMED);
    other = V_SIGNER, other.region = "us-east-1";
    assert_int_equal(verify(&other, &u, V_TIME), OTA_SIGV4_MALFORMED);
    other = V_SIGNER, other.session_token = "tok";
    assert_int_equal(verify(&other, &u, V_TIME), OTA_SIGV4_MALFORMED);
}

static void test_verify_token(void **state)
{
    (void)state;
    url_parts_t u;
    ota_sigv4_signer_t with = V_SIGNER;
    with.session_token = "sess/ion+token==";
    presign_parts(&with, "GET", &u);

    assert_non_null(strstr(u.query, "&X-Amz-Security-Token=sess%2Fion%2Btoken%3D%3D&X-Amz-Signature="));
    assert_int_equal(verify(&with, &u, V_TIME), OTA_SIGV4_VALID);
    assert_int_equal(verify(&V_SIGNER, &u, V_TIME), OTA_SIGV4_MALFORMED);
    ota_sigv4_signer_t other = with;
    other.session_token = "sess/ion+token=!";
    assert_int_equal(verify(&other, &u, V_TIME), OTA_SIGV4_MISMATCH);
}

static void test_verify_malformed(void **state)
{
    (void)state;
    url_parts_t u, t;
    presign_parts(&V_SIGNER, "GET", &u);

    static const char *const edits[][2] = {
        {"X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1"},
        {"X-Amz-Algorithm=AWS4-HMAC-SHA256&", ""},
        {"X-Amz-Date=20240229T235958Z&", ""},
        {"X-Amz-Date=20240229T235958Z", "X-Amz-Date=20240230T235958Z"},
        {"X-Amz-Expires=900", "X-Amz-Expires=604801"},
        {"X-Amz-Expires=900", "X-Amz-Expires=0"},
        {"X-Amz-Expires=900", "X-Amz-Expires=0900"},
        {"X-Amz-Expires=900", "X-Amz-Expires=-900"},
        {"X-Amz-Expires=900", "X-Amz-Expires="},
        {"X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Brange"},
        {"X-Amz-SignedHeaders=host&", ""},
        {"OTAFSKEY%2F20240229", "OTAFSKEY%2F20240228"},
        {"%2Flocal%2Fs3%2F", "%2Flocal%2Fsts%2F"},
        {"aws4_request", "aws4_reques"},
        {"X-Amz-Signature=", "X-Amz-Signature=0"},
        {"X-Amz-Signature=", "x-amz-signature="},
        {"X-Amz-Date=", "X-Amz-Date=20240229T235958Z&X-Amz-Date="},
        {"X-Amz-Date=", "foo=bar&X-Amz-Date="},
        {"X-Amz-Date=", "foo&X-Amz-Date="},
        {"X-Amz-Date=", "&X-Amz-Date="},
        {"X-Amz-Credential=OTAFSKEY", "X-Amz-Credential=OTAFSKEY%"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        t = u;
        replace(t.query, sizeof(t.query), edits[i][0], edits[i][1]);
        assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    }
    /* Upper-case hex signature */
    t = u;
    for (char *p = strstr(t.query, "X-Amz-Signature=") + 16; *p != '\0'; p++)
        *p = (*p >= 'a' && *p <= 'f') ? (char)(*p - 32) : *p;
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);

    t = u, t.query[strlen(t.query)] = '&';
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, t.query[0] = '\0';
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, snprintf(t.method, sizeof(t.method), "POST");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, snprintf(t.method, sizeof(t.method), "get");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, t.host[0] = '\0';
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, replace(t.path, sizeof(t.path), "%20", "%2G");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, replace(t.path, sizeof(t.path), "%20", "%00");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);
    t = u, snprintf(t.path, sizeof(t.path), "blobs");
    assert_int_equal(verify(&V_SIGNER, &t, V_TIME), OTA_SIGV4_MALFORMED);

    ota_sigv4_received_t rcv = {"GET", 3, "h", 1, "/k", 2, u.query, strlen(u.query)};
    assert_int_equal(ota__sigv4_verify(&V_SIGNER, NULL, V_TIME, NULL), OTA_SIGV4_MALFORMED);
    assert_int_equal(ota__sigv4_verify(NULL, &rcv, V_TIME, NULL), OTA_SIGV4_MALFORMED);
}

static void test_verdict_names(void **state)
{
    (void)state;
    assert_string_equal(ota__sigv4_verdict_name(OTA_SIGV4_VALID), "valid");
    assert_string_equal(ota__sigv4_verdict_name(OTA_SIGV4_MALFORMED), "malformed");
    assert_string_equal(ota__sigv4_verdict_name(OTA_SIGV4_MISMATCH), "signature mismatch");
    assert_string_equal(ota__sigv4_verdict_name(OTA_SIGV4_EXPIRED), "expired");
    assert_string_equal(ota__sigv4_verdict_name(OTA_SIGV4_NOT_YET_VALID), "not yet valid");
    assert_string_equal(ota__sigv4_verdict_name((ota_sigv4_verdict_t)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_presigned_url),
        cmocka_unit_test(test_doc_presign_pieces),
        cmocka_unit_test(test_doc_get_object_headers),
        cmocka_unit_test(test_headers_botocore_token),
        cmocka_unit_test(test_headers_botocore_long_token),
        cmocka_unit_test(test_headers_invalid),
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_key_cache),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_uri_decode),
        cmocka_unit_test(test_presign_botocore_vectors),
        cmocka_unit_test(test_presign_expiry_bounds),
        cmocka_unit_test(test_presign_invalid_args),
        cmocka_unit_test(test_presign_too_large),
        cmocka_unit_test(test_s3_target),
        cmocka_unit_test(test_verify_accepts_own),
        cmocka_unit_test(test_verify_default_port),
        cmocka_unit_test(test_verify_time),
        cmocka_unit_test(test_verify_tampered),
        cmocka_unit_test(test_verify_wrong_key),
        cmocka_unit_test(test_verify_token),
        cmocka_unit_test(test_verify_malformed),
        cmocka_unit_test(test_verdict_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
