/*
 * The S3 backend's blocking client (server/storage/s3.h) against a real
 * S3-compatible server (s3rver 4.x, which checks SigV4 and presigned-URL
 * expiry and serves Range): round trips, awkward keys, errors and their
 * mapping, and the presigned URLs a device would fetch.
 *
 * One s3rver serves the whole program; every test makes its own keys.
 * libcurl's global init is done by the harness (h_s3_start), as the server's
 * main() does it for the real thing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "harness.h"
#include "storage/s3.h"

#define BUCKET "ota-artifacts"
#define FETCH_CAP (8u * 1024 * 1024)
#define URL_CAP 16384
#define THREADS 4
#define ROUNDS 5

static h_s3_t s3srv;
static ota_s3_t *client;

/* ---- helpers ------------------------------------------------------------ */

static ota_s3_t *open_client(const char *endpoint, const char *bucket, const char *access, const char *secret,
                             const char *token, char *err, size_t cap)
{
    ota_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.s3_endpoint = (char *)endpoint;
    cfg.s3_bucket = (char *)bucket;
    cfg.s3_region = (char *)H_S3_REGION;
    cfg.s3_access_key = (char *)access;
    cfg.s3_secret_key = (char *)secret;
    cfg.s3_session_token = (char *)token;
    cfg.s3_path_style = 1;
    return ota__s3_open(&cfg, err, cap);
}

/* A key no other test uses: "<test>/<random>/<tail>". */
static void unique_key(char *out, size_t cap, const char *test, const char *tail)
{
    char hex[17];
    h_random_hex(hex, 16);
    snprintf(out, cap, "%s/%s/%s", test, hex, tail);
}

/* Deterministic bytes with every value, NULs and CR/LF included. */
static unsigned char *make_bytes(size_t len, uint32_t seed)
{
    unsigned char *p = malloc(len ? len : 1);
    assert_non_null(p);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(i % 7 == 0 ? i : x);
    }
    return p;
}

static void put_ok(ota_s3_t *c, const char *key, const void *data, size_t len)
{
    char err[512] = "";
    ota_err_t rc = ota__s3_put(c, key, data, len, err, sizeof err);
    if (rc != OTA_OK)
        fail_msg("put %s: %s (%s)", key, ota_strerror(rc), err);
}

static void get_equals(ota_s3_t *c, const char *key, const unsigned char *want, size_t want_len)
{
    char err[512] = "";
    unsigned char *data = NULL;
    size_t len = 0;
    ota_err_t rc = ota__s3_get(c, key, want_len, &data, &len, err, sizeof err);
    if (rc != OTA_OK)
        fail_msg("get %s: %s (%s)", key, ota_strerror(rc), err);
    assert_non_null(data);
    assert_int_equal(len, want_len);
    if (want_len > 0)
        assert_memory_equal(data, want, want_len);
    free(data);
}

static ota_err_t get_rc(ota_s3_t *c, const char *key, size_t max, char *err, size_t cap)
{
    unsigned char *data = (unsigned char *)"not touched";
    size_t len = 1;
    ota_err_t rc = ota__s3_get(c, key, max, &data, &len, err, cap);
    if (rc != OTA_OK) {
        assert_null(data);
        assert_int_equal(len, 0);
    }
    free(data);
    return rc;
}

typedef struct fetched {
    long status;
    unsigned char *body;
    size_t len;
} fetched_t;

static size_t on_fetch(char *ptr, size_t size, size_t nmemb, void *arg)
{
    fetched_t *f = arg;
    size_t n = size * nmemb;
    if (n > FETCH_CAP - f->len)
        return 0;
    unsigned char *p = realloc(f->body, f->len + n + 1);
    if (p == NULL)
        return 0;
    f->body = p;
    memcpy(f->body + f->len, ptr, n);
    f->len += n;
    f->body[f->len] = '\0';
    return n;
}

/* What a device does with a presigned URL: `method` it (with `range`, or NULL), body `up` for a PUT. */
static fetched_t fetch(const char *method, const char *url, const char *range, const void *up, size_t up_len)
{
    fetched_t f = {0};
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_fetch);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
    if (range != NULL)
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, up);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)up_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (f.body == NULL)
        f.body = calloc(1, 1);
    return f;
}

static void presign(const char *method, const char *key, time_t now, int ttl, char *url)
{
    ota_err_t rc = ota__s3_presign(client, method, key, now, ttl, url, URL_CAP);
    if (rc != OTA_OK)
        fail_msg("presign %s %s: %s", method, key, ota_strerror(rc));
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* ---- fixtures ----------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    char err[512] = "";
    h_s3_start(&s3srv, BUCKET);
    client = open_client(s3srv.endpoint, BUCKET, H_S3_ACCESS_KEY, H_S3_SECRET_KEY, NULL, err, sizeof err);
    if (client == NULL) {
        fprintf(stderr, "ota__s3_open: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ota__s3_close(client);
    h_s3_stop(&s3srv);
    return 0;
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip_binary(void **state)
{
    (void)state;
    /* S3 allows empty objects, so the client must too. */
    static const size_t sizes[] = {0, 1, 4096, 300001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char key[128];
        unique_key(key, sizeof key, "roundtrip", "blob.bin");
        unsigned char *data = make_bytes(sizes[i], (uint32_t)i + 7);
        put_ok(client, key, data, sizes[i]);
        get_equals(client, key, data, sizes[i]);
        free(data);
    }
}

static void test_put_replaces(void **state)
{
    (void)state;
    char key[128];
    unique_key(key, sizeof key, "replace", "x.bin");
    put_ok(client, key, "first version, longer", 21);
    put_ok(client, key, "second", 6);
    get_equals(client, key, (const unsigned char *)"second", 6);
}

static void test_odd_keys(void **state)
{
    (void)state;
    static const char *const tails[] = {
        "with space.bin",
        "plus+equals=and&amp.bin",
        "nested/folders/deep/down/file.bin",
        ("utf8-\xc3\xbcnic\xc3\xb8" /* one string: the split ends the \x escape */
         "de/\xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab.bin"),
        "punct!'()*~-_.bin",
        "percent%20not-an-escape.bin",
        "semi;colon,comma:colon@at$dollar.bin",
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char key[256], url[URL_CAP];
        unique_key(key, sizeof key, "keys", tails[i]);
        unsigned char *data = make_bytes(1000 + i, (uint32_t)i + 100);
        put_ok(client, key, data, 1000 + i);
        get_equals(client, key, data, 1000 + i);

        uint64_t size = 0;
        char err[512] = "";
        assert_int_equal(ota__s3_head(client, key, &size, err, sizeof err), OTA_OK);
        assert_int_equal(size, 1000 + i);

        presign("GET", key, time(NULL), 60, url);
        fetched_t f = fetch("GET", url, NULL, NULL, 0);
        if (f.status != 200)
            fail_msg("presigned GET of \"%s\": %ld %s", key, f.status, (char *)f.body);
        assert_int_equal(f.len, 1000 + i);
        assert_memory_equal(f.body, data, f.len);
        free(f.body);

        assert_int_equal(ota__s3_delete(client, key, err, sizeof err), OTA_OK);
        assert_int_equal(get_rc(client, key, 1 << 20, err, sizeof err), OTA_ERR_NOT_FOUND);
        free(data);
    }
}

/* ---- errors ------------------------------------------------------------- */

static void test_get_missing(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    unique_key(key, sizeof key, "missing", "nothing.bin");
    assert_int_equal(get_rc(client, key, 1024, err, sizeof err), OTA_ERR_NOT_FOUND);
    assert_contains(err, "404");
    assert_contains(err, "NoSuchKey");
}

static void test_get_too_large(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    unique_key(key, sizeof key, "toolarge", "big.bin");
    unsigned char *data = make_bytes(100000, 3);
    put_ok(client, key, data, 100000);
    assert_int_equal(get_rc(client, key, 99999, err, sizeof err), OTA_ERR_TOO_LARGE);
    assert_contains(err, "larger than 99999");
    assert_int_equal(get_rc(client, key, 10, err, sizeof err), OTA_ERR_TOO_LARGE);
    assert_int_equal(get_rc(client, key, 0, err, sizeof err), OTA_ERR_TOO_LARGE);
    get_equals(client, key, data, 100000); /* max == size is fine */
    free(data);
}

static void test_delete(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    unique_key(key, sizeof key, "delete", "gone.bin");
    put_ok(client, key, "abc", 3);
    assert_int_equal(ota__s3_delete(client, key, err, sizeof err), OTA_OK);
    assert_int_equal(get_rc(client, key, 1024, err, sizeof err), OTA_ERR_NOT_FOUND);
    /* Deleting what is not there succeeds, as in S3. */
    assert_int_equal(ota__s3_delete(client, key, err, sizeof err), OTA_OK);
}

static void test_head(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    uint64_t size = 99;
    unique_key(key, sizeof key, "head", "h.bin");
    unsigned char *data = make_bytes(12345, 9);
    put_ok(client, key, data, 12345);
    assert_int_equal(ota__s3_head(client, key, &size, err, sizeof err), OTA_OK);
    assert_int_equal(size, 12345);
    free(data);

    unique_key(key, sizeof key, "head", "empty.bin");
    put_ok(client, key, "", 0);
    assert_int_equal(ota__s3_head(client, key, &size, err, sizeof err), OTA_OK);
    assert_int_equal(size, 0);

    unique_key(key, sizeof key, "head", "missing.bin");
    assert_int_equal(ota__s3_head(client, key, &size, err, sizeof err), OTA_ERR_NOT_FOUND);
    assert_contains(err, "404");
}

static void test_wrong_secret(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    ota_s3_t *bad = open_client(s3srv.endpoint, BUCKET, H_S3_ACCESS_KEY, "not-the-secret", NULL, err, sizeof err);
    assert_non_null(bad);
    unique_key(key, sizeof key, "wrongsecret", "x.bin");
    assert_int_equal(ota__s3_put(bad, key, "x", 1, err, sizeof err), OTA_ERR_CRYPTO);
    assert_contains(err, "403");
    assert_contains(err, "SignatureDoesNotMatch");
    /* Not stored: the good client does not find it. */
    assert_int_equal(get_rc(client, key, 1024, err, sizeof err), OTA_ERR_NOT_FOUND);

    put_ok(client, key, "y", 1);
    assert_int_equal(get_rc(bad, key, 1024, err, sizeof err), OTA_ERR_CRYPTO);
    assert_int_equal(ota__s3_delete(bad, key, err, sizeof err), OTA_ERR_CRYPTO);
    ota__s3_close(bad);
}

static void test_unknown_access_key(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    ota_s3_t *bad = open_client(s3srv.endpoint, BUCKET, "NOSUCHKEY", "whatever", NULL, err, sizeof err);
    assert_non_null(bad);
    unique_key(key, sizeof key, "unknownkey", "x.bin");
    assert_int_equal(ota__s3_put(bad, key, "x", 1, err, sizeof err), OTA_ERR_CRYPTO);
    assert_contains(err, "InvalidAccessKeyId");
    ota__s3_close(bad);
}

/* s3rver does not check a token, but it does check that the signed x-amz-security-token header matches. */
static void test_session_token(void **state)
{
    (void)state;
    char key[128], err[512] = "";
    ota_s3_t *tok = open_client(s3srv.endpoint, BUCKET, H_S3_ACCESS_KEY, H_S3_SECRET_KEY, "FwoGZXIvYXdzE/tok+en==", err,
                                sizeof err);
    assert_non_null(tok);
    unique_key(key, sizeof key, "token", "t.bin");
    put_ok(tok, key, "token", 5);
    get_equals(tok, key, (const unsigned char *)"token", 5);
    ota__s3_close(tok);
}

static void test_missing_bucket(void **state)
{
    (void)state;
    char err[512] = "";
    ota_s3_t *other =
        open_client(s3srv.endpoint, "no-such-bucket", H_S3_ACCESS_KEY, H_S3_SECRET_KEY, NULL, err, sizeof err);
    assert_non_null(other);
    assert_int_equal(get_rc(other, "a.bin", 1024, err, sizeof err), OTA_ERR_NOT_FOUND);
    assert_contains(err, "NoSuchBucket");
    assert_int_equal(ota__s3_put(other, "a.bin", "a", 1, err, sizeof err), OTA_ERR_NOT_FOUND);
    /* A missing bucket is not a missing key: deleting in it fails. */
    assert_int_equal(ota__s3_delete(other, "a.bin", err, sizeof err), OTA_ERR_NOT_FOUND);
    ota__s3_close(other);
}

static void test_unreachable(void **state)
{
    (void)state;
    char err[512] = "";
    /* Port 1 on loopback: nothing listens there, so the connection is refused at once. */
    ota_s3_t *off = open_client("http://127.0.0.1:1", BUCKET, H_S3_ACCESS_KEY, H_S3_SECRET_KEY, NULL, err, sizeof err);
    assert_non_null(off);
    assert_int_equal(ota__s3_put(off, "a.bin", "a", 1, err, sizeof err), OTA_ERR_UNAVAILABLE);
    assert_true(err[0] != '\0');
    assert_int_equal(get_rc(off, "a.bin", 1024, err, sizeof err), OTA_ERR_UNAVAILABLE);
    ota__s3_close(off);
}

static void test_bad_config(void **state)
{
    (void)state;
    char err[512] = "";
    assert_null(open_client(s3srv.endpoint, NULL, H_S3_ACCESS_KEY, H_S3_SECRET_KEY, NULL, err, sizeof err));
    assert_contains(err, "OTA_S3_BUCKET");
    assert_null(open_client(s3srv.endpoint, BUCKET, NULL, H_S3_SECRET_KEY, NULL, err, sizeof err));
    assert_contains(err, "OTA_S3_ACCESS_KEY");
    assert_null(open_client(s3srv.endpoint, BUCKET, H_S3_ACCESS_KEY, "", NULL, err, sizeof err));
    assert_contains(err, "OTA_S3_SECRET_KEY");
    assert_null(open_client("ftp://127.0.0.1:21", BUCKET, H_S3_ACCESS_KEY, H_S3_SECRET_KEY, NULL, err, sizeof err));
    assert_contains(err, "OTA_S3_ENDPOINT");

    /* No endpoint: AWS (https://s3.<region>.amazonaws.com), here virtual-hosted (s3_path_style 0). */
    char url[URL_CAP];
    ota_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.s3_bucket = (char *)"my-bucket";
    cfg.s3_region = (char *)"eu-west-1";
    cfg.s3_access_key = (char *)"AKIAIOSFODNN7EXAMPLE";
    cfg.s3_secret_key = (char *)"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    ota_s3_t *aws = ota__s3_open(&cfg, err, sizeof err);
    assert_non_null(aws);
    assert_int_equal(ota__s3_presign(aws, "GET", "a/b.bin", 1700000000, 60, url, sizeof url), OTA_OK);
    assert_contains(url, "https://my-bucket.s3.eu-west-1.amazonaws.com/a/b.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256");
    assert_contains(url, "%2Feu-west-1%2Fs3%2Faws4_request");
    assert_int_equal(ota__s3_presign(aws, "GET", "a/b.bin", 1700000000, 0, url, sizeof url), OTA_ERR_INVALID);
    assert_int_equal(ota__s3_presign(aws, "GET", "a/b.bin", 1700000000, 60, url, 40), OTA_ERR_TOO_LARGE);
    ota__s3_close(aws);
    ota__s3_close(NULL);
}

/* ---- presigned URLs ----------------------------------------------------- */

static void test_presigned_get(void **state)
{
    (void)state;
    char key[128], url[URL_CAP];
    unique_key(key, sizeof key, "presign", "image v1.bin");
    unsigned char *data = make_bytes(50000, 11);
    put_ok(client, key, data, 50000);
    presign("GET", key, time(NULL), 300, url);
    fetched_t f = fetch("GET", url, NULL, NULL, 0);
    assert_int_equal(f.status, 200);
    assert_int_equal(f.len, 50000);
    assert_memory_equal(f.body, data, 50000);
    free(f.body);
    free(data);
}

static void test_presigned_flipped_signature(void **state)
{
    (void)state;
    char key[128], url[URL_CAP];
    unique_key(key, sizeof key, "presign", "flip.bin");
    put_ok(client, key, "secret bytes", 12);
    presign("GET", key, time(NULL), 300, url);
    size_t n = strlen(url);
    url[n - 1] = url[n - 1] == '0' ? '1' : '0'; /* the last hex digit of X-Amz-Signature */
    fetched_t f = fetch("GET", url, NULL, NULL, 0);
    assert_int_equal(f.status, 403);
    assert_contains((char *)f.body, "SignatureDoesNotMatch");
    assert_null(strstr((char *)f.body, "secret bytes"));
    free(f.body);
}

static void test_presigned_other_key(void **state)
{
    (void)state;
    char key[128], other[128], url[URL_CAP], tampered[URL_CAP];
    unique_key(key, sizeof key, "presign", "mine.bin");
    unique_key(other, sizeof other, "presign", "theirs.bin");
    put_ok(client, other, "theirs", 6);
    presign("GET", key, time(NULL), 300, url);
    /* The same query on another object's path. */
    const char *q = strchr(url, '?');
    assert_non_null(q);
    snprintf(tampered, sizeof tampered, "%s/%s/%s%s", s3srv.endpoint, BUCKET, other, q);
    fetched_t f = fetch("GET", tampered, NULL, NULL, 0);
    assert_int_equal(f.status, 403);
    free(f.body);
}

static void test_presigned_expired(void **state)
{
    (void)state;
    char key[128], url[URL_CAP];
    unique_key(key, sizeof key, "presign", "old.bin");
    put_ok(client, key, "old", 3);

    /* Signed an hour ago for a minute. */
    presign("GET", key, time(NULL) - 3600, 60, url);
    fetched_t f = fetch("GET", url, NULL, NULL, 0);
    assert_int_equal(f.status, 403);
    assert_contains((char *)f.body, "Request has expired");
    free(f.body);

    /* Valid for three seconds from the current whole second (so for at least two): works now, not four
       seconds later. One second was too short on a loaded machine: signed at x.9 s, it had 0.1 s left. */
    presign("GET", key, time(NULL), 3, url);
    f = fetch("GET", url, NULL, NULL, 0);
    assert_int_equal(f.status, 200);
    free(f.body);
    sleep(4);
    f = fetch("GET", url, NULL, NULL, 0);
    assert_int_equal(f.status, 403);
    assert_contains((char *)f.body, "Request has expired");
    free(f.body);
}

static void test_presigned_range(void **state)
{
    (void)state;
    char key[128], url[URL_CAP];
    unique_key(key, sizeof key, "presign", "ranged.bin");
    unsigned char *data = make_bytes(10000, 13);
    put_ok(client, key, data, 10000);
    presign("GET", key, time(NULL), 300, url);

    fetched_t f = fetch("GET", url, "1000-1999", NULL, 0);
    assert_int_equal(f.status, 206);
    assert_int_equal(f.len, 1000);
    assert_memory_equal(f.body, data + 1000, 1000);
    free(f.body);

    /* Resuming from an offset to the end, as the device client does. */
    f = fetch("GET", url, "9990-", NULL, 0);
    assert_int_equal(f.status, 206);
    assert_int_equal(f.len, 10);
    assert_memory_equal(f.body, data + 9990, 10);
    free(f.body);
    free(data);
}

static void test_presigned_put(void **state)
{
    (void)state;
    char key[128], url[URL_CAP];
    unique_key(key, sizeof key, "presign", "uploaded.bin");
    unsigned char *data = make_bytes(7777, 17);
    presign("PUT", key, time(NULL), 300, url);
    fetched_t f = fetch("PUT", url, NULL, data, 7777);
    assert_int_equal(f.status, 200);
    free(f.body);
    get_equals(client, key, data, 7777);

    /* A presigned GET does not allow a PUT. */
    presign("GET", key, time(NULL), 300, url);
    f = fetch("PUT", url, NULL, "overwrite", 9);
    assert_int_equal(f.status, 403);
    free(f.body);
    get_equals(client, key, data, 7777);
    free(data);
}

/* ---- copy and list ------------------------------------------------------ */

static void test_copy(void **state)
{
    (void)state;
    char src[128], dst[128], err[512] = "";
    /* The copy source header is encoded; s3rver decodes it with decodeURI, which leaves "%2B" alone, so no '+'. */
    unique_key(src, sizeof src, "copy", "a b~c.bin");
    unique_key(dst, sizeof dst, "copy", "dst.bin");
    unsigned char *first = make_bytes(5000, 3), *second = make_bytes(5000, 4);
    put_ok(client, src, first, 5000);
    if (ota__s3_copy(client, src, dst, err, sizeof err) != OTA_OK)
        fail_msg("copy %s: %s", src, err);
    get_equals(client, dst, first, 5000);
    put_ok(client, src, second, 5000); /* the copy is an object of its own */
    get_equals(client, dst, first, 5000);
    unique_key(src, sizeof src, "copy", "missing.bin");
    assert_int_equal(ota__s3_copy(client, src, dst, err, sizeof err), OTA_ERR_NOT_FOUND);
    get_equals(client, dst, first, 5000);
    free(first);
    free(second);
}

#define LISTED 1003 /* more than one page of ListObjectsV2 (1000 keys) */

typedef struct listing {
    const char *prefix;
    int n, bad, stop_after;
    time_t now;
} listing_t;

static int on_listed(const char *key, uint64_t size, time_t modified, void *arg)
{
    listing_t *l = arg;
    l->n++;
    if (strncmp(key, l->prefix, strlen(l->prefix)) != 0 || size != 1 || modified < l->now - 600 ||
        modified > l->now + 600)
        l->bad++;
    return l->stop_after != 0 && l->n >= l->stop_after;
}

static void test_list_pages(void **state)
{
    (void)state;
    char prefix[64], key[128], hex[17], err[512] = "";
    h_random_hex(hex, 16);
    snprintf(prefix, sizeof prefix, "list-%s/", hex);
    for (int i = 0; i < LISTED; i++) {
        snprintf(key, sizeof key, "%s%04d/bin", prefix, i);
        put_ok(client, key, "x", 1);
    }
    listing_t l = {.prefix = prefix, .now = time(NULL)};
    if (ota__s3_list(client, prefix, on_listed, &l, err, sizeof err) != OTA_OK) {
        h_s3_dump_log(&s3srv);
        fail_msg("list %s (after %d keys): %s", prefix, l.n, err);
    }
    assert_int_equal(l.n, LISTED);
    assert_int_equal(l.bad, 0);
    /* A callback may stop the listing; another prefix lists nothing. */
    l = (listing_t){.prefix = prefix, .now = time(NULL), .stop_after = 5};
    assert_int_equal(ota__s3_list(client, prefix, on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 5);
    snprintf(prefix, sizeof prefix, "list-%s-none/", hex);
    l = (listing_t){.prefix = prefix, .now = time(NULL)};
    assert_int_equal(ota__s3_list(client, prefix, on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 0);
}

/* ---- threads ------------------------------------------------------------ */

/*
 * Each thread has its own top-level folder: s3rver's filesystem store removes
 * emptied folders after a DELETE without a lock, so concurrent deletes under
 * one shared folder can make it answer 500 (a limitation of the test server).
 */
typedef struct worker {
    pthread_t thread;
    int index;
    char prefix[40];
    int failures;
    char last_err[256];
} worker_t;

static bool worker_round(worker_t *w, int round)
{
    char key[128], err[256] = "";
    snprintf(key, sizeof key, "%s/%d.bin", w->prefix, round);
    size_t len = 20000 + (size_t)(w->index * 1000 + round);
    unsigned char *data = malloc(len), *got = NULL;
    size_t got_len = 0;
    if (data == NULL)
        return false;
    memset(data, 'a' + w->index, len);
    bool ok = ota__s3_put(client, key, data, len, err, sizeof err) == OTA_OK &&
              ota__s3_get(client, key, len, &got, &got_len, err, sizeof err) == OTA_OK && got_len == len &&
              memcmp(got, data, len) == 0 && ota__s3_delete(client, key, err, sizeof err) == OTA_OK;
    if (!ok)
        snprintf(w->last_err, sizeof w->last_err, "%s", err);
    free(got);
    free(data);
    return ok;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int round = 0; round < ROUNDS; round++)
        if (!worker_round(w, round))
            w->failures++;
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    worker_t workers[THREADS];
    memset(workers, 0, sizeof workers);
    for (int i = 0; i < THREADS; i++) {
        char hex[17];
        h_random_hex(hex, 16);
        workers[i].index = i;
        snprintf(workers[i].prefix, sizeof workers[i].prefix, "threads-%s-%d", hex, i);
        assert_int_equal(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < THREADS; i++)
        if (workers[i].failures != 0)
            fail_msg("thread %d: %d failed rounds (%s)", i, workers[i].failures, workers[i].last_err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_binary),
        cmocka_unit_test(test_put_replaces),
        cmocka_unit_test(test_odd_keys),
        cmocka_unit_test(test_get_missing),
        cmocka_unit_test(test_get_too_large),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_unknown_access_key),
        cmocka_unit_test(test_session_token),
        cmocka_unit_test(test_missing_bucket),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_presigned_get),
        cmocka_unit_test(test_presigned_flipped_signature),
        cmocka_unit_test(test_presigned_other_key),
        cmocka_unit_test(test_presigned_expired),
        cmocka_unit_test(test_presigned_range),
        cmocka_unit_test(test_presigned_put),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_list_pages),
        cmocka_unit_test(test_concurrent_calls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
