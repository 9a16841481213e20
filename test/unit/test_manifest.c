#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "ota/manifest.h"

/* RFC 8032 section 7.1, TEST 1: private key (seed) and public key. */
static const unsigned char RFC8032_SEED[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};
static const unsigned char RFC8032_PUBLIC[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};

#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SAMPLE_URL                                                                                                     \
    "https://s3.example.com/ota/blobs/ab/"                                                                             \
    "cd?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature=0123abcd"

/* The canonical form of sample(), written by hand from the header's rules. */
static const char SAMPLE_CANONICAL[] =
    "{\"artifact\":\"bin\",\"assignment_id\":\"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e\",\"crc32\":3735928559,"
    "\"device_id\":\"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f\",\"downgrade\":false,\"model\":\"bota-pin\","
    "\"not_after\":\"2026-11-22T10:00:00Z\",\"release_id\":\"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4\","
    "\"sha256\":\"" SHA256_EMPTY "\",\"size\":42892,\"version\":\"1.2.0-rc.1+build.7\"}";

/*
 * Ed25519 with the RFC 8032 TEST 1 seed over SAMPLE_CANONICAL, computed once with python3
 * `cryptography` (Ed25519PrivateKey.from_private_bytes(seed).sign(canonical)) and cross-checked
 * with a pure-Python implementation of RFC 8032 section 6.
 */
#define SAMPLE_SIGNATURE "sXYAHfaoaXKqkce2NZJjZgtoq8tK79PpuInzAN2btomLneQZIGFmHvdP2QUGnLmbqHF+9IsFbMDwyMmiiHYhBw=="

static void sample(ota_manifest_t *m)
{
    memset(m, 0, sizeof *m);
    strcpy(m->assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e");
    strcpy(m->device_id, "0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f");
    strcpy(m->release_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(m->model, "bota-pin");
    strcpy(m->version, "1.2.0-rc.1+build.7");
    strcpy(m->artifact, "bin");
    strcpy(m->url, SAMPLE_URL);
    strcpy(m->url_expires_at, "2026-11-21T10:15:00Z");
    strcpy(m->not_after, "2026-11-22T10:00:00Z");
    m->size = 42892;
    m->crc32 = 3735928559u;
    strcpy(m->sha256, SHA256_EMPTY);
    strcpy(m->signature, SAMPLE_SIGNATURE);
}

/* ---- JSON text of a manifest, member by member, for the decoder tests ---- */

enum {
    F_ASSIGNMENT,
    F_DEVICE,
    F_RELEASE,
    F_MODEL,
    F_VERSION,
    F_DOWNGRADE,
    F_ARTIFACT,
    F_URL,
    F_EXPIRES,
    F_NOT_AFTER,
    F_SIZE,
    F_CRC,
    F_SHA,
    F_SIG,
    F_COUNT
};

static const char *const KEYS[F_COUNT] = {"assignment_id", "device_id", "release_id", "model",          "version",
                                          "downgrade",     "artifact",  "url",        "url_expires_at", "not_after",
                                          "size",          "crc32",     "sha256",     "signature"};

static const char *const VALUES[F_COUNT] = {
    "\"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e\"",
    "\"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f\"",
    "\"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4\"",
    "\"bota-pin\"",
    "\"1.2.0-rc.1+build.7\"",
    "false",
    "\"bin\"",
    "\"" SAMPLE_URL "\"",
    "\"2026-11-21T10:15:00Z\"",
    "\"2026-11-22T10:00:00Z\"",
    "42892",
    "3735928559",
    "\"" SHA256_EMPTY "\"",
    "\"" SAMPLE_SIGNATURE "\"",
};

static char text[2 * OTA_MANIFEST_DECODE_MAX];

/* The sample as JSON with member `field` given as `raw` JSON (NULL: left out); `field` -1 changes nothing. */
static const char *json_with(int field, const char *raw)
{
    size_t len = 0;

    text[len++] = '{';
    for (int i = 0; i < F_COUNT; i++) {
        const char *v = i == field ? raw : VALUES[i];
        if (v == NULL)
            continue;
        len += (size_t)snprintf(text + len, sizeof text - len, "%s\"%s\":%s", len > 1 ? "," : "", KEYS[i], v);
        assert_true(len < sizeof text - 2);
    }
    text[len++] = '}';
    text[len] = '\0';
    return text;
}

static ota_err_t decode_str(const char *json, ota_manifest_t *m)
{
    return ota_manifest_decode(json, strlen(json), m);
}

static ota_err_t decode_with(int field, const char *raw)
{
    ota_manifest_t m;
    return decode_str(json_with(field, raw), &m);
}

/* Accepted or refused as `expect` says, as JSON text and as a jansson object. */
static void expect_field(int field, const char *raw, ota_err_t expect)
{
    const char *json = json_with(field, raw);
    ota_manifest_t m;
    json_t *obj;

    if (decode_str(json, &m) != expect)
        fail_msg("%s = %s: expected %s", KEYS[field], raw, ota_strerror(expect));
    obj = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
    if (obj != NULL) {
        assert_int_equal(ota_manifest_decode_json(obj, &m), expect);
        json_decref(obj);
    } else {
        assert_int_not_equal(expect, OTA_OK);
    }
}

static void reject(int field, const char *raw)
{
    expect_field(field, raw, OTA_ERR_INVALID);
}

static void accept(int field, const char *raw)
{
    expect_field(field, raw, OTA_OK);
}

static char *quoted_repeat(char c, size_t n, const char *prefix)
{
    size_t plen = strlen(prefix);
    char *s = malloc(plen + n + 3);
    assert_non_null(s);
    s[0] = '"';
    memcpy(s + 1, prefix, plen);
    memset(s + 1 + plen, c, n);
    s[1 + plen + n] = '"';
    s[2 + plen + n] = '\0';
    return s;
}

/* ---- canonical form ---- */

static void test_canonical_exact(void **state)
{
    ota_manifest_t m;
    char buf[OTA_MANIFEST_CANONICAL_MAX];
    size_t len = 0, need = 0;
    (void)state;

    sample(&m);
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_string_equal(buf, SAMPLE_CANONICAL);
    assert_int_equal(len, strlen(SAMPLE_CANONICAL));

    /* url, url_expires_at and signature are not part of it. */
    strcpy(m.url, "http://other.example/x");
    strcpy(m.url_expires_at, "2030-01-01T00:00:00Z");
    m.signature[0] = '\0';
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_string_equal(buf, SAMPLE_CANONICAL);

    /* Zero and the largest values in decimal. */
    m.crc32 = 0;
    m.size = UINT64_MAX;
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_non_null(strstr(buf, ",\"crc32\":0,\"device_id\""));

    /* downgrade is the literal true or false. */
    m.downgrade = true;
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_non_null(strstr(buf, ",\"downgrade\":true,\"model\""));
    assert_non_null(strstr(buf, ",\"size\":18446744073709551615,\"version\""));

    /* Too small a buffer: the length needed is reported; exactly length + 1 fits. */
    sample(&m);
    len = strlen(SAMPLE_CANONICAL);
    assert_int_equal(ota_manifest_canonical(&m, NULL, 0, &need), OTA_ERR_TOO_LARGE);
    assert_int_equal(need, len);
    assert_int_equal(ota_manifest_canonical(&m, buf, len, &need), OTA_ERR_TOO_LARGE);
    assert_int_equal(need, len);
    memset(buf, 'z', sizeof buf);
    assert_int_equal(ota_manifest_canonical(&m, buf, len + 1, &need), OTA_OK);
    assert_string_equal(buf, SAMPLE_CANONICAL);
    assert_int_equal(buf[len + 1], 'z');
}

static void test_canonical_escapes(void **state)
{
    ota_manifest_t m;
    char buf[OTA_MANIFEST_CANONICAL_MAX];
    size_t len = 0;
    (void)state;

    sample(&m);
    /* Not a valid model, but the serializer escapes whatever it is given. */
    strcpy(m.model, "a\"b\\c/\b\t\n\f\r\x01\x1f\x7f\xc3\xa9");
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_non_null(strstr(buf, ",\"model\":\"a\\\"b\\\\c/\\b\\t\\n\\f\\r\\u0001\\u001f\x7f\xc3\xa9\",\"not_after\""));
    assert_int_equal(len, strlen(buf));

    /* A string without its NUL inside the array is refused, not over-read. */
    sample(&m);
    memset(m.version, '1', sizeof m.version);
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_ERR_INVALID);
    sample(&m);
    memset(m.artifact, 'b', sizeof m.artifact);
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_ERR_INVALID);
}

/* The longest valid manifest fits the documented buffers. */
static void test_max_sizes(void **state)
{
    ota_manifest_t m, back;
    static char buf[OTA_MANIFEST_JSON_MAX + 16];
    size_t len = 0;
    (void)state;

    sample(&m);
    memset(m.model, 'm', OTA_MANIFEST_MODEL_MAX);
    m.model[OTA_MANIFEST_MODEL_MAX] = '\0';
    memset(m.version, '9', OTA_SEMVER_MAX);
    memcpy(m.version, "1.2.3-", 6);
    m.version[OTA_SEMVER_MAX] = '\0';
    memcpy(m.url, "https://", 8);
    memset(m.url + 8, 'u', OTA_MANIFEST_URL_MAX - 8);
    m.url[OTA_MANIFEST_URL_MAX] = '\0';
    m.size = OTA_MANIFEST_SIZE_MAX;
    m.crc32 = UINT32_MAX;
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_int_equal(ota_manifest_validate(&m), OTA_OK);

    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_true(len < OTA_MANIFEST_CANONICAL_MAX);
    assert_int_equal(ota_manifest_encode(&m, buf, OTA_MANIFEST_JSON_MAX, &len), OTA_OK);
    assert_true(len < OTA_MANIFEST_JSON_MAX);
    assert_non_null(strstr(buf, "\"size\":9007199254740991,\"crc32\":4294967295,"));
    assert_int_equal(ota_manifest_decode(buf, len, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
    assert_int_equal(ota_manifest_verify(&back, RFC8032_PUBLIC), OTA_OK);

    /* One byte more in the url is not valid, so encode refuses it. */
    sample(&m);
    memset(m.url + 8, 'u', OTA_MANIFEST_URL_MAX - 8);
    m.url[OTA_MANIFEST_URL_MAX] = 'u';
    assert_int_equal(ota_manifest_validate(&m), OTA_ERR_INVALID);
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_ERR_INVALID);
}

/* ---- the optional delta ---- */

#define DELTA_FROM "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define DELTA_SHA "aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55aa55"
#define DELTA_URL "https://s3.example.com/ota/releases/r/delta-f?X-Amz-Signature=99"

static void sample_delta(ota_manifest_t *m)
{
    sample(m);
    m->has_delta = true;
    strcpy(m->delta.from_sha256, DELTA_FROM);
    strcpy(m->delta.url, DELTA_URL);
    strcpy(m->delta.url_expires_at, "2026-11-21T10:16:00Z");
    m->delta.size = 4321;
    strcpy(m->delta.sha256, DELTA_SHA);
}

/* The canonical form with a delta, by hand from the header's rules: a twelfth member between crc32 and device_id. */
static void test_delta_canonical(void **state)
{
    static const char expected[] =
        "{\"artifact\":\"bin\",\"assignment_id\":\"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e\",\"crc32\":3735928559,"
        "\"delta\":{\"from_sha256\":\"" DELTA_FROM "\",\"sha256\":\"" DELTA_SHA "\",\"size\":4321},"
        "\"device_id\":\"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f\",\"downgrade\":false,\"model\":\"bota-pin\","
        "\"not_after\":\"2026-11-22T10:00:00Z\",\"release_id\":\"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4\","
        "\"sha256\":\"" SHA256_EMPTY "\",\"size\":42892,\"version\":\"1.2.0-rc.1+build.7\"}";
    ota_manifest_t m;
    char buf[OTA_MANIFEST_CANONICAL_MAX];
    size_t len = 0;
    (void)state;

    sample_delta(&m);
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_string_equal(buf, expected);
    /* The delta's url and url_expires_at are not signed. */
    strcpy(m.delta.url, "http://other.example/d");
    strcpy(m.delta.url_expires_at, "2030-01-01T00:00:00Z");
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_string_equal(buf, expected);
    /* Without a delta the form is the one without it, whatever the delta fields hold. */
    m.has_delta = false;
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_string_equal(buf, SAMPLE_CANONICAL);
}

/* Every signed delta field, and the delta's presence, is covered by the signature. */
static void test_delta_signed(void **state)
{
    ota_manifest_t m, t;
    (void)state;

    sample_delta(&m);
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_string_not_equal(m.signature, SAMPLE_SIGNATURE);
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);

    t = m;
    t.delta.from_sha256[0] = '1';
    assert_int_equal(ota_manifest_verify(&t, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
    t = m;
    t.delta.sha256[63] = 'b';
    assert_int_equal(ota_manifest_verify(&t, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
    t = m;
    t.delta.size++;
    assert_int_equal(ota_manifest_verify(&t, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
    /* A delta added to a manifest signed without one, or dropped from one signed with it. */
    t = m;
    t.has_delta = false;
    assert_int_equal(ota_manifest_verify(&t, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
    sample(&t);
    t.has_delta = true;
    t.delta = m.delta;
    assert_int_equal(ota_manifest_verify(&t, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
    /* Its url and expiry are not signed. */
    t = m;
    strcpy(t.delta.url, "http://mirror.example/d");
    strcpy(t.delta.url_expires_at, "2031-02-03T04:05:06Z");
    assert_int_equal(ota_manifest_verify(&t, RFC8032_PUBLIC), OTA_OK);
}

static void test_delta_round_trip(void **state)
{
    ota_manifest_t m, back;
    static char buf[OTA_MANIFEST_JSON_MAX];
    size_t len = 0;
    (void)state;

    sample_delta(&m);
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_OK);
    assert_non_null(strstr(buf, "\",\"delta\":{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
                                "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":4321,\"sha256\":\"" DELTA_SHA
                                "\"}}"));
    memset(&back, 0x55, sizeof back);
    assert_int_equal(ota_manifest_decode(buf, len, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
    assert_int_equal(ota_manifest_verify(&back, RFC8032_PUBLIC), OTA_OK);

    /* Both URLs at their longest still fit the documented buffers. */
    memcpy(m.url, "https://", 8);
    memset(m.url + 8, 'u', OTA_MANIFEST_URL_MAX - 8);
    m.url[OTA_MANIFEST_URL_MAX] = '\0';
    memcpy(m.delta.url, m.url, sizeof m.url);
    memset(m.model, 'm', OTA_MANIFEST_MODEL_MAX);
    m.model[OTA_MANIFEST_MODEL_MAX] = '\0';
    memset(m.version, '9', OTA_SEMVER_MAX);
    memcpy(m.version, "1.2.3-", 6);
    m.version[OTA_SEMVER_MAX] = '\0';
    m.size = m.delta.size = OTA_MANIFEST_SIZE_MAX;
    m.crc32 = UINT32_MAX;
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_int_equal(ota_manifest_canonical(&m, buf, sizeof buf, &len), OTA_OK);
    assert_true(len < OTA_MANIFEST_CANONICAL_MAX);
    assert_int_equal(ota_manifest_encode(&m, buf, OTA_MANIFEST_JSON_MAX, &len), OTA_OK);
    assert_true(len < OTA_MANIFEST_JSON_MAX);
    assert_int_equal(ota_manifest_decode(buf, len, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
}

/* A delta member that is present must be whole and well formed. */
static void test_delta_decode_refusals(void **state)
{
    static const char *const bad[] = {
        "null",
        "[]",
        "\"x\"",
        "{}",
        "{\"url\":\"" DELTA_URL "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA
        "\"}",
        "{\"from_sha256\":\"" DELTA_FROM
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL "\",\"size\":1,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1}",
        "{\"from_sha256\":\"ABC\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM
        "\",\"url\":\"ftp://x\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-02-30T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":0,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1.5,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":9007199254740992,\"sha256\":\"" DELTA_SHA "\"}",
        "{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
        "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA "0\"}",
    };
    ota_manifest_t m, back;
    char base[OTA_MANIFEST_JSON_MAX], buf[OTA_MANIFEST_JSON_MAX + 1024];
    size_t len = 0;
    (void)state;

    sample(&m);
    assert_int_equal(ota_manifest_encode(&m, base, sizeof base, &len), OTA_OK);
    base[len - 1] = '\0'; /* without its closing brace */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, "%s,\"delta\":%s}", base, bad[i]);
        assert_int_equal(decode_str(buf, &back), OTA_ERR_INVALID);
    }
    /* The same frame with a good delta decodes, and an unknown member inside the delta is ignored. */
    snprintf(buf, sizeof buf,
             "%s,\"delta\":{\"from_sha256\":\"" DELTA_FROM "\",\"url\":\"" DELTA_URL
             "\",\"url_expires_at\":\"2026-11-21T10:16:00Z\",\"size\":1,\"sha256\":\"" DELTA_SHA "\",\"x\":[1]}}",
             base);
    assert_int_equal(decode_str(buf, &back), OTA_OK);
    assert_true(back.has_delta);
    assert_int_equal(back.delta.size, 1);
}

/* ---- sign and verify ---- */

static void test_fixed_vector(void **state)
{
    ota_manifest_t m;
    unsigned char pub[32];
    (void)state;

    assert_int_equal(ota_ed25519_public_from_seed(RFC8032_SEED, pub), OTA_OK);
    assert_memory_equal(pub, RFC8032_PUBLIC, 32);

    sample(&m);
    memset(m.signature, 'x', sizeof m.signature);
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_string_equal(m.signature, SAMPLE_SIGNATURE);
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);

    /* Deterministic: signing again gives the same bytes. */
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_string_equal(m.signature, SAMPLE_SIGNATURE);
}

/* A signer makes the same signature as ota_manifest_sign, again and again, and refuses what it refuses. */
static void test_signer(void **state)
{
    ota_manifest_t m;
    (void)state;

    assert_null(ota_manifest_signer_new(NULL));
    ota_manifest_signer_free(NULL);
    ota_manifest_signer_t *signer = ota_manifest_signer_new(RFC8032_SEED);
    assert_non_null(signer);
    for (int i = 0; i < 3; i++) {
        sample(&m);
        memset(m.signature, 'x', sizeof m.signature - 1);
        assert_int_equal(ota_manifest_sign_with(&m, signer), OTA_OK);
        assert_string_equal(m.signature, SAMPLE_SIGNATURE);
        assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);
    }
    assert_int_equal(ota_manifest_sign_with(&m, NULL), OTA_ERR_INVALID);
    assert_int_equal(ota_manifest_sign_with(NULL, signer), OTA_ERR_INVALID);
    m.version[0] = '\0'; /* a signed field that is not valid */
    strcpy(m.signature, SAMPLE_SIGNATURE);
    assert_int_equal(ota_manifest_sign_with(&m, signer), OTA_ERR_INVALID);
    assert_string_equal(m.signature, SAMPLE_SIGNATURE); /* untouched on an error */
    ota_manifest_signer_free(signer);
}

static void test_sign_verify_other_key(void **state)
{
    unsigned char seed[32], pub[32];
    ota_manifest_t m;
    (void)state;

    for (int i = 0; i < 32; i++)
        seed[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(ota_ed25519_public_from_seed(seed, pub), OTA_OK);
    assert_memory_not_equal(pub, RFC8032_PUBLIC, 32);
    sample(&m);
    assert_int_equal(ota_manifest_sign(&m, seed), OTA_OK);
    assert_string_not_equal(m.signature, SAMPLE_SIGNATURE);
    assert_int_equal(ota_manifest_verify(&m, pub), OTA_OK);
    /* Wrong public key, either way round. */
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
    sample(&m);
    assert_int_equal(ota_manifest_verify(&m, pub), OTA_ERR_CRYPTO);
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);
}

/* Flips one hex digit (or letter) at s[i] to another of the same kind. */
static void bump(char *s, size_t i)
{
    s[i] = s[i] == 'f' ? 'e' : s[i] == '9' ? '8' : s[i] == 'z' ? 'y' : (char)(s[i] + 1);
}

static void test_tamper_signed_fields(void **state)
{
    (void)state;

    for (int f = 0; f < 13; f++) {
        ota_manifest_t m;
        sample(&m);
        assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);
        switch (f) {
        case 0:
            bump(m.assignment_id, 35);
            break;
        case 1:
            bump(m.release_id, 0);
            break;
        case 2:
            bump(m.model, 3); /* "botb-pin" */
            break;
        case 3:
            bump(m.version, 4); /* "1.2.1-rc.1+build.7" */
            break;
        case 4:
            bump(m.sha256, 17);
            break;
        case 5:
            m.size++;
            break;
        case 6:
            m.size--;
            break;
        case 7:
            m.crc32 ^= 1;
            break;
        case 8:
            strcpy(m.artifact, "ufw");
            break;
        case 9:
            bump(m.device_id, 35); /* the manifest of another device */
            break;
        case 10:
            bump(m.not_after, 3); /* "2027-...": a later deadline */
            break;
        case 11:
            bump(m.not_after, 18); /* one second later */
            break;
        case 12:
            m.downgrade = true;
            break;
        }
        /* Still a well-formed manifest: the signature alone gives it away. */
        assert_int_equal(ota_manifest_validate(&m), OTA_OK);
        if (ota_manifest_verify(&m, RFC8032_PUBLIC) != OTA_ERR_CRYPTO)
            fail_msg("tampering %d went unnoticed", f);
    }
}

static void test_unsigned_fields(void **state)
{
    ota_manifest_t m;
    (void)state;

    sample(&m);
    strcpy(m.url, "http://cdn.example.net/elsewhere?sig=1");
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);
    strcpy(m.url_expires_at, "2031-01-01T00:00:00Z");
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);
    /* Even an invalid url does not matter to the signature. */
    m.url[0] = '\0';
    m.url_expires_at[0] = '\0';
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_OK);
}

static void test_bad_signature_field(void **state)
{
    ota_manifest_t m;
    (void)state;

    /* A valid encoding of other 64 bytes: a bad signature, not a malformed one. */
    sample(&m);
    m.signature[10] = m.signature[10] == 'A' ? 'B' : 'A';
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_CRYPTO);

    sample(&m);
    m.signature[87] = '\0'; /* truncated */
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    m.signature[84] = '\0'; /* 62 bytes, well padded: wrong length */
    memcpy(m.signature + 80, "AAA=", 4);
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    m.signature[0] = '\0';
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    m.signature[5] = '*'; /* outside the alphabet */
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    m.signature[5] = '-'; /* base64url, not standard */
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    m.signature[86] = 'A'; /* 66 bytes, unpadded */
    m.signature[87] = 'A';
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    m.signature[85] = 'D'; /* "Cw==" -> "CD==": bits left over in the last symbol */
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    sample(&m);
    memset(m.signature, 'A', sizeof m.signature); /* no NUL */
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);

    /* A malformed signed field is INVALID too, and sign refuses it. */
    sample(&m);
    strcpy(m.model, "Bota");
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_INVALID);
    strcpy(m.signature, "unchanged");
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_ERR_INVALID);
    assert_string_equal(m.signature, "unchanged");
    sample(&m);
    m.size = 0;
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_ERR_INVALID);
    /* sign ignores url and the old signature. */
    sample(&m);
    m.url[0] = '\0';
    m.signature[0] = '\0';
    assert_int_equal(ota_manifest_sign(&m, RFC8032_SEED), OTA_OK);
    assert_string_equal(m.signature, SAMPLE_SIGNATURE);
}

/* ---- encode and decode ---- */

static void test_round_trip(void **state)
{
    ota_manifest_t m, back;
    char buf[OTA_MANIFEST_JSON_MAX];
    size_t len = 0, need = 0;
    (void)state;

    sample(&m);
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_OK);
    /* The 14 members in the documented order, compact. */
    assert_string_equal(buf, json_with(-1, NULL));
    assert_int_equal(len, strlen(buf));

    memset(&back, 0x55, sizeof back);
    assert_int_equal(ota_manifest_decode(buf, len, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
    assert_int_equal(ota_manifest_verify(&back, RFC8032_PUBLIC), OTA_OK);

    /* Not NUL-terminated input: only `len` bytes are read. */
    buf[len] = 'x';
    assert_int_equal(ota_manifest_decode(buf, len, &back), OTA_OK);
    assert_int_equal(ota_manifest_decode(buf, len - 1, &back), OTA_ERR_INVALID);

    assert_int_equal(ota_manifest_encode(&m, buf, len, &need), OTA_ERR_TOO_LARGE);
    assert_int_equal(need, len);
    assert_int_equal(ota_manifest_encode(&m, buf, len + 1, &need), OTA_OK);

    /* The encoder writes validated strings unescaped: every punctuation mark a URL may hold comes back. */
    memset(m.url, 0, sizeof m.url);
    strcpy(m.url, "https://[::1]:9000/b/k~1_(x)!$'*+,;=@-.%2F?a=b&c#frag");
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_OK);
    assert_int_equal(ota_manifest_decode(buf, len, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
    sample(&m);

    /* Whitespace and member order do not matter to the decoder. */
    const char *spaced = "{ \"signature\" : \"" SAMPLE_SIGNATURE "\",\n \"sha256\": \"" SHA256_EMPTY "\","
                         " \"crc32\": 3735928559, \"not_after\": \"2026-11-22T10:00:00Z\", \"downgrade\": false,"
                         " \"size\": 42892, \"url_expires_at\": \"2026-11-21T10:15:00Z\", \"url\": \"" SAMPLE_URL "\","
                         " \"device_id\": \"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f\","
                         " \"artifact\": \"bin\", \"version\": \"1.2.0-rc.1+build.7\", \"model\": \"bota-pin\","
                         " \"release_id\": \"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4\","
                         " \"assignment_id\": \"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e\" }\n";
    memset(&back, 0x55, sizeof back);
    assert_int_equal(decode_str(spaced, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
}

static void test_unknown_members_ignored(void **state)
{
    ota_manifest_t m, back;
    char json[OTA_MANIFEST_JSON_MAX + 256];
    size_t len = 0;
    (void)state;

    static const char extra[] = "{\"future\":{\"x\":[1,2,{\"y\":null}]},\"note\":\"hi\",";
    size_t n = strlen(extra);
    sample(&m);
    memcpy(json, extra, n);
    /* The encoder's '{' is overwritten by the last ',' of `extra`. */
    assert_int_equal(ota_manifest_encode(&m, json + n - 1, sizeof json - n + 1, &len), OTA_OK);
    json[n - 1] = ',';
    memset(&back, 0, sizeof back);
    assert_int_equal(ota_manifest_decode(json, n - 1 + len, &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
    /* Also at the end, and an unknown member that looks like a known one. */
    strcpy(json, json_with(-1, NULL));
    strcpy(json + strlen(json) - 1, ",\"Size\":-1,\"signature_v2\":[]}");
    assert_int_equal(ota_manifest_decode(json, strlen(json), &back), OTA_OK);
    assert_memory_equal(&back, &m, sizeof m);
}

static void test_encode_refuses_invalid(void **state)
{
    ota_manifest_t m;
    char buf[OTA_MANIFEST_JSON_MAX];
    size_t len = 0;
    (void)state;

    sample(&m);
    strcpy(m.url_expires_at, "2026-11-21 10:15:00Z");
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_ERR_INVALID);
    sample(&m);
    m.signature[0] = '\0';
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_ERR_INVALID);
    sample(&m);
    m.size = OTA_MANIFEST_SIZE_MAX + 1;
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_ERR_INVALID);
    sample(&m);
    assert_int_equal(ota_manifest_encode(&m, buf, sizeof buf, &len), OTA_OK);
}

/*
 * Each of the 255 non-NUL byte values after "https://h/": a manifest is valid exactly when the byte is one
 * of RFC 3986's (unreserved, reserved, '%'), spelled out here independently of the validator's table.
 */
static void test_url_every_byte_value(void **state)
{
    static const char RFC3986[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                  "-._~:/?#[]@!$&'()*+,;=%";
    ota_manifest_t m;
    (void)state;

    for (int c = 1; c < 256; c++) {
        sample(&m);
        snprintf(m.url, sizeof m.url, "https://h/%c", c);
        int expected = strchr(RFC3986, c) != NULL;
        int valid = ota_manifest_validate(&m) == OTA_OK;
        if (valid != expected)
            fail_msg("byte 0x%02x in a url: %s", c, valid ? "accepted" : "rejected");
    }
}

static void test_decode_missing_members(void **state)
{
    (void)state;
    assert_int_equal(decode_with(-1, NULL), OTA_OK);
    for (int f = 0; f < F_COUNT; f++) {
        if (decode_with(f, NULL) != OTA_ERR_INVALID)
            fail_msg("a manifest without %s was accepted", KEYS[f]);
    }
}

static void test_decode_wrong_types(void **state)
{
    (void)state;
    for (int f = 0; f < F_COUNT; f++) {
        reject(f, "null");
        if (f != F_DOWNGRADE)
            reject(f, "true");
        reject(f, "[]");
        reject(f, "{}");
    }
    accept(F_DOWNGRADE, "true");
    reject(F_DOWNGRADE, "\"true\"");
    reject(F_DOWNGRADE, "\"false\"");
    reject(F_DOWNGRADE, "0");
    reject(F_DOWNGRADE, "1");
    reject(F_DEVICE, "1");
    reject(F_NOT_AFTER, "1795342500");
    reject(F_SIZE, "\"42892\"");
    reject(F_CRC, "\"3735928559\"");
    reject(F_ASSIGNMENT, "1");
    reject(F_RELEASE, "6");
    reject(F_MODEL, "7");
    reject(F_VERSION, "1.2");
    reject(F_ARTIFACT, "0");
    reject(F_URL, "1");
    reject(F_EXPIRES, "1795342500");
    reject(F_SHA, "0");
    reject(F_SIG, "[\"a8l\"]");
}

static void test_decode_ids_and_strings(void **state)
{
    char *s;
    (void)state;

    accept(F_ASSIGNMENT, "\"00000000-0000-0000-0000-000000000000\"");
    reject(F_ASSIGNMENT, "\"1C0E7F2A-0B4E-4C5E-9D8E-3F5A6B7C8D9E\""); /* upper case */
    reject(F_RELEASE, "\"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3C4\"");
    reject(F_RELEASE, "\"6f1d2c3b4a594687b7c8d9e0f1a2b3c4\"");      /* no hyphens */
    reject(F_RELEASE, "\"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c\"");   /* 35 */
    reject(F_RELEASE, "\"6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4a\""); /* 37 */
    reject(F_RELEASE, "\"6f1d2c3g-4a59-4687-b7c8-d9e0f1a2b3c4\"");  /* not hex */
    reject(F_RELEASE, "\"6f1d2c3b-4a5-94687-b7c8-d9e0f1a2b3c4\"");  /* hyphen misplaced */
    reject(F_RELEASE, "\"{6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c}\"");
    reject(F_RELEASE, "\"\"");
    accept(F_DEVICE, "\"ffffffff-ffff-4fff-bfff-ffffffffffff\"");
    reject(F_DEVICE, "\"0B7F3E1C-2D4A-4E6B-8C9D-0A1B2C3D4E5F\""); /* upper case */
    reject(F_DEVICE, "\"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5\"");  /* 35 */
    reject(F_DEVICE, "\"\"");

    accept(F_SHA, "\"" SHA256_EMPTY "\"");
    reject(F_SHA, "\"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\"");
    reject(F_SHA, "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\""); /* 63 */
    reject(F_SHA, "\"" SHA256_EMPTY "0\"");                                               /* 65 */
    reject(F_SHA, "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g\"");
    reject(F_SHA, "\"\"");

    accept(F_MODEL, "\"a\"");
    accept(F_MODEL, "\"0-\"");
    reject(F_MODEL, "\"Bota-pin\"");
    reject(F_MODEL, "\"-bota\"");
    reject(F_MODEL, "\"bota_pin\"");
    reject(F_MODEL, "\"\"");
    accept(F_MODEL, s = quoted_repeat('m', 63, ""));
    free(s);
    reject(F_MODEL, s = quoted_repeat('m', 64, ""));
    free(s);

    accept(F_VERSION, "\"0.0.0\"");
    reject(F_VERSION, "\"v1.2.0\""); /* only the normalized form */
    reject(F_VERSION, "\"1.2\"");
    reject(F_VERSION, "\"01.2.3\"");
    reject(F_VERSION, "\"1.2.3-\"");
    reject(F_VERSION, "\"\"");
    accept(F_VERSION, s = quoted_repeat('9', OTA_SEMVER_MAX - 6, "1.2.3-"));
    free(s);
    reject(F_VERSION, s = quoted_repeat('9', OTA_SEMVER_MAX - 5, "1.2.3-"));
    free(s);

    accept(F_ARTIFACT, "\"ufw\"");
    reject(F_ARTIFACT, "\"BIN\"");
    reject(F_ARTIFACT, "\"exe\"");
    reject(F_ARTIFACT, "\"bin \"");
    reject(F_ARTIFACT, "\"\"");

    /* An embedded NUL (jansson refuses \u0000 unless asked to allow it). */
    reject(F_MODEL, "\"bota\\u0000pin\"");
    json_t *obj = json_loads(json_with(F_MODEL, "\"bota\\u0000pin\""), JSON_ALLOW_NUL, NULL);
    ota_manifest_t m;
    assert_non_null(obj);
    assert_int_equal(ota_manifest_decode_json(obj, &m), OTA_ERR_INVALID);
    json_decref(obj);
}

static void test_decode_numbers(void **state)
{
    (void)state;

    accept(F_SIZE, "1");
    accept(F_SIZE, "9007199254740991");
    reject(F_SIZE, "0");
    reject(F_SIZE, "-1");
    reject(F_SIZE, "-42892");
    reject(F_SIZE, "42892.0");
    reject(F_SIZE, "42892.5");
    reject(F_SIZE, "4.2892e4");
    reject(F_SIZE, "1e3");
    reject(F_SIZE, "9007199254740992");     /* 2^53 */
    reject(F_SIZE, "9223372036854775807");  /* INT64_MAX */
    reject(F_SIZE, "18446744073709551615"); /* UINT64_MAX: over jansson's range */
    reject(F_SIZE, "99999999999999999999999");
    reject(F_SIZE, "042892");

    accept(F_CRC, "0");
    accept(F_CRC, "4294967295");
    reject(F_CRC, "4294967296");
    reject(F_CRC, "-1");
    reject(F_CRC, "3.0");
    reject(F_CRC, "1e2");
}

static void test_decode_url_and_time(void **state)
{
    char *s;
    (void)state;

    accept(F_URL, "\"http://127.0.0.1:8080/blobs/x?a=b&c=%2F\"");
    accept(F_URL, "\"https://[::1]:9000/b/k~1_(x)!$'*+,;=@#frag\"");
    accept(F_URL, "\"https:\\/\\/host\\/a\""); /* JSON's \/ is just '/' */
    reject(F_URL, "\"ftp://host/x\"");
    reject(F_URL, "\"HTTPS://host/x\"");
    reject(F_URL, "\"https://\"");
    reject(F_URL, "\"/relative/path\"");
    reject(F_URL, "\"https://host/a b\"");
    reject(F_URL, "\"https://host/a\\\"b\"");
    reject(F_URL, "\"https://host/a\\\\b\"");
    reject(F_URL, "\"https://host/a<b>\"");
    reject(F_URL, "\"https://host/\\u00e9\"");
    reject(F_URL, "\"https://host/a\\nb\"");
    reject(F_URL, "\"\"");
    accept(F_URL, s = quoted_repeat('u', OTA_MANIFEST_URL_MAX - 8, "https://"));
    free(s);
    reject(F_URL, s = quoted_repeat('u', OTA_MANIFEST_URL_MAX - 7, "https://")); /* 4097 bytes */
    free(s);
    reject(F_URL, s = quoted_repeat('u', 60000, "https://"));
    free(s);

    accept(F_EXPIRES, "\"2028-02-29T23:59:59Z\""); /* leap year */
    accept(F_EXPIRES, "\"2000-02-29T00:00:00Z\"");
    accept(F_EXPIRES, "\"2026-12-31T00:00:00Z\"");
    reject(F_EXPIRES, "\"2026-02-29T00:00:00Z\"");
    reject(F_EXPIRES, "\"1900-02-29T00:00:00Z\"");
    reject(F_EXPIRES, "\"2026-04-31T00:00:00Z\"");
    reject(F_EXPIRES, "\"2026-13-01T00:00:00Z\"");
    reject(F_EXPIRES, "\"2026-00-01T00:00:00Z\"");
    reject(F_EXPIRES, "\"2026-01-00T00:00:00Z\"");
    reject(F_EXPIRES, "\"2026-11-21T24:00:00Z\"");
    reject(F_EXPIRES, "\"2026-11-21T10:60:00Z\"");
    reject(F_EXPIRES, "\"2026-11-21T10:15:60Z\"");
    reject(F_EXPIRES, "\"2026-11-21T10:15:00\"");
    reject(F_EXPIRES, "\"2026-11-21T10:15:00z\"");
    reject(F_EXPIRES, "\"2026-11-21t10:15:00Z\"");
    reject(F_EXPIRES, "\"2026-11-21 10:15:00Z\"");
    reject(F_EXPIRES, "\"2026-11-21T10:15:00+00:00\"");
    reject(F_EXPIRES, "\"2026-11-21T10:15:00.5Z\"");
    reject(F_EXPIRES, "\"2026-11-21T10:15:0xZ\"");
    reject(F_EXPIRES, "\"+2026-11-21T10:15:00Z\"");
    reject(F_EXPIRES, "\"\"");

    /* not_after has the same format. */
    accept(F_NOT_AFTER, "\"2028-02-29T23:59:59Z\"");
    reject(F_NOT_AFTER, "\"2026-02-29T00:00:00Z\"");
    reject(F_NOT_AFTER, "\"2026-11-22T10:00:00+00:00\"");
    reject(F_NOT_AFTER, "\"2026-11-22T10:00:00.5Z\"");
    reject(F_NOT_AFTER, "\"\"");
}

static void test_decode_signature_form(void **state)
{
    (void)state;
    reject(F_SIG, "\"a8l/a60PMZDqjgBB+7KJxwEl45eBk26tN96tCf7Z3KVJ80w4b7yE954AFSVmd+GhC7+y+9HxxdjKTLwhHkT2Cw=\"");
    reject(F_SIG, "\"a8l/a60PMZDqjgBB+7KJxwEl45eBk26tN96tCf7Z3KVJ80w4b7yE954AFSVmd+GhC7+y+9HxxdjKTLwhHkT2Cw\"");
    reject(F_SIG, "\"a8l_a60PMZDqjgBB-7KJxwEl45eBk26tN96tCf7Z3KVJ80w4b7yE954AFSVmd-GhC7-y-9HxxdjKTLwhHkT2Cw==\"");
    reject(F_SIG, "\"a8l/a60PMZDqjgBB+7KJxwEl45eBk26tN96tCf7Z3KVJ80w4b7yE954AFSVmd+GhC7+y+9HxxdjKTLwhHkT2Cw==AAAA\"");
    reject(F_SIG, "\"\"");
    /* Right form, wrong signature: decoding accepts it, verification does not. */
    accept(F_SIG, "\"A8l/a60PMZDqjgBB+7KJxwEl45eBk26tN96tCf7Z3KVJ80w4b7yE954AFSVmd+GhC7+y+9HxxdjKTLwhHkT2Cw==\"");
    ota_manifest_t m;
    assert_int_equal(decode_str(text, &m), OTA_OK);
    assert_int_equal(ota_manifest_verify(&m, RFC8032_PUBLIC), OTA_ERR_CRYPTO);
}

static void test_decode_not_a_manifest(void **state)
{
    static const char *const bad[] = {
        "", " ", "[]", "null", "42", "\"manifest\"", "{", "{}", "{\"assignment_id\":}", "[{\"size\":1}]",
    };
    ota_manifest_t m, before;
    char json[OTA_MANIFEST_JSON_MAX];
    size_t len;
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (decode_str(bad[i], &m) != OTA_ERR_INVALID)
            fail_msg("accepted: %s", bad[i]);
    }
    assert_int_equal(ota_manifest_decode(NULL, 0, &m), OTA_ERR_INVALID);
    assert_int_equal(ota_manifest_decode_json(NULL, &m), OTA_ERR_INVALID);
    json_t *arr = json_array();
    assert_int_equal(ota_manifest_decode_json(arr, &m), OTA_ERR_INVALID);
    json_decref(arr);

    /* Truncated, trailing garbage, trailing comma, a second document. */
    strcpy(json, json_with(-1, NULL));
    len = strlen(json);
    assert_int_equal(decode_str(json, &m), OTA_OK);
    memset(&before, 0x33, sizeof before);
    m = before;
    assert_int_equal(ota_manifest_decode(json, len - 1, &m), OTA_ERR_INVALID);
    assert_memory_equal(&m, &before, sizeof m); /* untouched on failure */
    strcpy(json + len, " x");
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
    strcpy(json + len, "{}");
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
    strcpy(json + len - 1, ",}");
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
    /* A NUL byte, even where jansson would skip it (after a number). */
    strcpy(json, json_with(F_SIZE, "42892 "));
    len = strlen(json);
    assert_int_equal(ota_manifest_decode(json, len, &m), OTA_OK);
    json[strstr(json, "42892 ") - json + 5] = '\0';
    assert_int_equal(ota_manifest_decode(json, len, &m), OTA_ERR_INVALID);
    /* Not UTF-8. */
    strcpy(json, json_with(F_URL, "\"https://host/\xff\""));
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
}

static void test_decode_duplicates(void **state)
{
    ota_manifest_t m;
    char json[OTA_MANIFEST_JSON_MAX];
    size_t len;
    (void)state;

    strcpy(json, json_with(-1, NULL));
    len = strlen(json);
    /* The same value twice is as refused as two different ones. */
    strcpy(json + len - 1, ",\"size\":42892}");
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
    strcpy(json + len - 1, ",\"size\":1}");
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
    strcpy(json + len - 1, ",\"signature\":\"" SAMPLE_SIGNATURE "\"}");
    assert_int_equal(decode_str(json, &m), OTA_ERR_INVALID);
    strcpy(json + len - 1, "}");
    assert_int_equal(decode_str(json, &m), OTA_OK);
}

static void test_decode_too_large(void **state)
{
    ota_manifest_t m;
    char *json = malloc(OTA_MANIFEST_DECODE_MAX + 2);
    size_t len;
    (void)state;

    assert_non_null(json);
    /* Padded with whitespace to exactly the cap: accepted; one byte more: refused. */
    strcpy(json, json_with(-1, NULL));
    len = strlen(json);
    memset(json + len, ' ', OTA_MANIFEST_DECODE_MAX + 1 - len);
    assert_int_equal(ota_manifest_decode(json, OTA_MANIFEST_DECODE_MAX, &m), OTA_OK);
    assert_int_equal(ota_manifest_decode(json, OTA_MANIFEST_DECODE_MAX + 1, &m), OTA_ERR_TOO_LARGE);
    free(json);
}

/* ---- out of memory: the decoder reports it, never aborts ---- */

static long allocs_left;

static void *failing_malloc(size_t size)
{
    if (allocs_left <= 0)
        return NULL;
    allocs_left--;
    return malloc(size);
}

/* Decodes `json` with 0, 1, 2, ... allocations allowed: NOMEM until enough, then `final`, never anything else. */
static void decode_under_memory_pressure(const char *json, ota_err_t final)
{
    ota_manifest_t m;
    int saw_nomem = 0, done = 0;

    json_set_alloc_funcs(failing_malloc, free);
    for (long n = 0; n < 10000 && !done; n++) {
        allocs_left = n;
        ota_err_t rc = decode_str(json, &m);
        if (rc == OTA_ERR_NOMEM)
            saw_nomem = 1;
        else if (rc == final)
            done = 1;
        else
            fail_msg("after %ld allocations: %s", n, ota_strerror(rc));
    }
    json_set_alloc_funcs(malloc, free);
    assert_true(saw_nomem);
    assert_true(done);
}

static void test_decode_out_of_memory(void **state)
{
    char json[OTA_MANIFEST_JSON_MAX + 512];
    size_t len;
    (void)state;

    decode_under_memory_pressure(json_with(-1, NULL), OTA_OK);

    /* With unknown members of every kind, so every part of the parser runs out in turn. */
    strcpy(json, json_with(-1, NULL));
    len = strlen(json);
    strcpy(json + len - 1, ",\"x\":[1,-2.5e3,true,false,null,{\"k\\u00e9\":\"\\ud83d\\ude00\\n\"}],\"y\":{}}");
    decode_under_memory_pressure(json, OTA_OK);

    /* A well-formed JSON object that is not a manifest. */
    decode_under_memory_pressure(json_with(F_SIZE, "\"big\""), OTA_ERR_INVALID);
}

/*
 * Fills stack below the caller with error codes jansson might leave behind, so a
 * decoder that trusts an error code jansson never wrote sees a wrong one.
 */
__attribute__((noinline)) static void dirty_stack(void)
{
    volatile unsigned char junk[32768];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)json_error_numeric_overflow;
}

/* Texts that are not a JSON object (or not JSON), and well-formed objects that are not manifests. */
static const char *const NOT_MANIFESTS[] = {
    "{}",
    " \t\r\n{ } \n",
    "{\"a\":[]}",
    "{\"a\":[1,[2,[3,{}]]],\"b\":{\"c\":{\"d\":null}}}",
    "{\"a\":true,\"b\":false,\"c\":null}",
    "{\"n\":[0,-0,1,-1,0.5,-0.5,1e3,1E+3,1e-3,12.34e56,0E0]}",
    "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\\uffff\"}",
    "{\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"}",
    "{\"\":\"\"}",
    "{\"a\" : 1 , \"b\" : [ 1 , 2 ] }",
    /* not objects, or not JSON */
    "",
    " ",
    "[]",
    "[{}]",
    "null",
    "1",
    "\"a\"",
    "{",
    "}",
    "{]",
    "[}",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\" 1}",
    "{,}",
    "{\"a\":1,}",
    "{\"a\":[1,]}",
    "{\"a\":[,1]}",
    "{\"a\":[1 2]}",
    "{\"a\":1 \"b\":2}",
    "{\"a\":{]}",
    "{\"a\":[}]",
    "{} {}",
    "{}x",
    "{'a':1}",
    "{a:1}",
    "{\"a\":01}",
    "{\"a\":-01}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":-}",
    "{\"a\":+1}",
    "{\"a\":1e}",
    "{\"a\":1e+}",
    "{\"a\":0x10}",
    "{\"a\":NaN}",
    "{\"a\":Infinity}",
    "{\"a\":tru}",
    "{\"a\":truex}",
    "{\"a\":nul}",
    "{\"a\":True}",
    "{\"a\":\"\\ud800\"}",
    "{\"a\":\"\\udc00\"}",
    "{\"a\":\"\\ud800\\u0041\"}",
    "{\"a\":\"\\ud800\\\"}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\u12\"}",
    "{\"a\":\"\\u12G4\"}",
    "{\"a\":\"\\\"}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\t\"}",
    "{\"a\":\"\xc0\xaf\"}",
    "{\"a\":\"\xe0\x80\xaf\"}",
    "{\"a\":\"\xe0\x9f\xbf\"}",
    "{\"a\":\"\xf0\x8f\xbf\xbf\"}",
    "{\"a\":\"\xe0\xa0\x80\xf0\x90\x80\x80\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xff\"}",
    "{\"a\":\"\xc3\"}",
    "{\"a\":\"\xe2\x82\"}",
    "{\"a\":\"abc}",
    "{\"a\":\"abc\"",
    "{\"a\":[1,2}",
    "{\"a\":{\"b\":1}",
    "{\"a\":1}}",
    "{\"a\":1}]",
    "{\"a\":1\x0b}",
    "\xef\xbb\xbf{}",
};

/*
 * Malformed texts whose error comes right after a string, where jansson also reports a string it could not copy
 * for want of memory: with memory to spare they must be INVALID, never NOMEM.
 */
static const char *const BAD_AFTER_STRING[] = {
    "\"a\"",
    "{\"a\" \"b\"}",
    "{\"a\":\"b\" \"c\":1}",
    "{\"a\":1 \"b\":2}",
    "{\"a\":\"x\"]",
    "{\"a\":[\"x\" \"y\"]}",
    "{\"a\":[\"x\"}",
    "{\"a\":{\"b\"}}",
    "{\"a\":\"b\"}\"c\"",
    "[\"a\" \"b\"]",
    "{\"a\":\"\\ud800\"}",
    "{\"a\":\"\\u0000\"}",
    "{\"\\u0000\":1}",
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

/*
 * jansson's own verdict decides, and never looks like memory: every input of both lists is INVALID, even with the
 * stack below the call full of error codes jansson might leave behind.
 */
static void test_decode_invalid_is_never_nomem(void **state)
{
    ota_manifest_t m;
    (void)state;

    for (size_t i = 0; i < COUNT(NOT_MANIFESTS) + COUNT(BAD_AFTER_STRING); i++) {
        const char *input = i < COUNT(NOT_MANIFESTS) ? NOT_MANIFESTS[i] : BAD_AFTER_STRING[i - COUNT(NOT_MANIFESTS)];
        dirty_stack();
        ota_err_t rc = ota_manifest_decode(input, strlen(input), &m);
        if (rc != OTA_ERR_INVALID)
            fail_msg("input %zu (%s): %s", i, input, ota_strerror(rc));
    }

    /* A NUL byte after the object, or inside a string. */
    assert_int_equal(ota_manifest_decode("{}\0", 3, &m), OTA_ERR_INVALID);
    assert_int_equal(ota_manifest_decode("{\"a\":\"\0\"}", 8, &m), OTA_ERR_INVALID);

    /* Nesting: jansson takes 2048 levels, not 2049. */
    static char deep[2 * 2049 + 16];
    size_t len = 0;
    memcpy(deep, "{\"a\":", 5);
    len += 5;
    for (int k = 1; k < 2049; k++)
        deep[len++] = '[';
    for (int k = 1; k < 2049; k++)
        deep[len++] = ']';
    deep[len++] = '}';
    assert_int_equal(ota_manifest_decode(deep, len, &m), OTA_ERR_INVALID);
}

/*
 * Under memory pressure a malformed text is NOMEM or INVALID, never accepted, never an abort. With no memory at
 * all jansson cannot start: NOMEM whatever the text, except what is refused before it runs.
 */
static void test_decode_invalid_out_of_memory(void **state)
{
    ota_manifest_t m;
    (void)state;

    for (size_t i = 0; i < COUNT(BAD_AFTER_STRING); i++)
        decode_under_memory_pressure(BAD_AFTER_STRING[i], OTA_ERR_INVALID);
    decode_under_memory_pressure("{\"a\":[1,\"x\",{\"b\":\"c\"}],\"d\":tru}", OTA_ERR_INVALID);

    json_set_alloc_funcs(failing_malloc, free);
    allocs_left = 0;
    assert_int_equal(ota_manifest_decode("{}", 2, &m), OTA_ERR_NOMEM);
    assert_int_equal(ota_manifest_decode("not json", 8, &m), OTA_ERR_NOMEM);
    assert_int_equal(ota_manifest_decode("{}\0", 3, &m), OTA_ERR_INVALID);
    json_set_alloc_funcs(malloc, free);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_exact),
        cmocka_unit_test(test_canonical_escapes),
        cmocka_unit_test(test_max_sizes),
        cmocka_unit_test(test_fixed_vector),
        cmocka_unit_test(test_sign_verify_other_key),
        cmocka_unit_test(test_tamper_signed_fields),
        cmocka_unit_test(test_unsigned_fields),
        cmocka_unit_test(test_bad_signature_field),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unknown_members_ignored),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_url_every_byte_value),
        cmocka_unit_test(test_decode_missing_members),
        cmocka_unit_test(test_decode_wrong_types),
        cmocka_unit_test(test_decode_ids_and_strings),
        cmocka_unit_test(test_decode_numbers),
        cmocka_unit_test(test_decode_url_and_time),
        cmocka_unit_test(test_decode_signature_form),
        cmocka_unit_test(test_decode_not_a_manifest),
        cmocka_unit_test(test_decode_duplicates),
        cmocka_unit_test(test_decode_too_large),
        cmocka_unit_test(test_decode_out_of_memory),
        cmocka_unit_test(test_signer),
        cmocka_unit_test(test_decode_invalid_is_never_nomem),
        cmocka_unit_test(test_decode_invalid_out_of_memory),
        cmocka_unit_test(test_delta_canonical),
        cmocka_unit_test(test_delta_signed),
        cmocka_unit_test(test_delta_round_trip),
        cmocka_unit_test(test_delta_decode_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
