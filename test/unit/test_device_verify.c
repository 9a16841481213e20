/*
 * libota-device: the checks before a switch (device/verify.c). The manifest:
 * Ed25519 signature with the pinned key (another key, any signed field
 * changed), model, artifact. The image: size, CRC-32, SHA-256, each named in
 * the reason; and the --corrupt fault flips exactly one bit.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "ota/hex.h"
#include "ota/crc32.h"
#include "util.h"
#include "verify.h"

/* RFC 8032 section 7.1, TEST 1 (the private key), and another key. */
static const unsigned char SEED[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};
static const unsigned char OTHER_SEED[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                             17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define IMAGE_LEN 70001

static char g_path[64];
static unsigned char g_image[IMAGE_LEN];

static void write_image(const unsigned char *data, size_t len)
{
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_path, sizeof g_path, "/tmp/ota-verify-XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    close(fd);
    for (size_t i = 0; i < IMAGE_LEN; i++)
        g_image[i] = (unsigned char)((i * 31) ^ (i >> 8));
    write_image(g_image, IMAGE_LEN);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_path);
    return 0;
}

/* A manifest of g_image, signed with SEED. */
static void signed_manifest(ota_manifest_t *m)
{
    unsigned char md[32];
    unsigned int n = 0;
    memset(m, 0, sizeof *m);
    strcpy(m->assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e");
    strcpy(m->release_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(m->model, "bota-pin");
    strcpy(m->version, "1.2.0");
    strcpy(m->artifact, "bin");
    strcpy(m->url, "http://127.0.0.1:9/blobs/x?X-Amz-Expires=900");
    strcpy(m->url_expires_at, "2026-11-21T10:15:00Z");
    m->size = IMAGE_LEN;
    m->crc32 = ota_crc32_update(0, g_image, IMAGE_LEN);
    assert_int_equal(EVP_Digest(g_image, IMAGE_LEN, md, &n, EVP_sha256(), NULL), 1);
    ota_hex_encode(md, 32, m->sha256);
    assert_int_equal(ota_manifest_sign(m, SEED), OTA_OK);
}

static void public_key(const unsigned char seed[32], unsigned char pub[32])
{
    assert_int_equal(ota_ed25519_public_from_seed(seed, pub), OTA_OK);
}

static void expect_manifest_refused(const ota_manifest_t *m, const unsigned char pub[32], const char *model,
                                    const char *reason_start)
{
    char reason[300] = "";
    assert_int_equal(ota__verify_manifest(m, pub, model, reason, sizeof reason), OTA_ERR_CRYPTO);
    if (strncmp(reason, reason_start, strlen(reason_start)) != 0)
        fail_msg("want a reason starting with \"%s\", got \"%s\"", reason_start, reason);
}

static void test_manifest_checks(void **state)
{
    (void)state;
    ota_manifest_t m, t;
    unsigned char pub[32], other[32];
    char reason[300] = "";
    public_key(SEED, pub);
    public_key(OTHER_SEED, other);
    signed_manifest(&m);
    assert_int_equal(ota__verify_manifest(&m, pub, "bota-pin", reason, sizeof reason), OTA_OK);

    /* The URL is not signed: a fresh one changes nothing. */
    t = m;
    strcpy(t.url, "https://cdn.example.com/other?sig=1");
    strcpy(t.url_expires_at, "2027-01-01T00:00:00Z");
    assert_int_equal(ota__verify_manifest(&t, pub, "bota-pin", reason, sizeof reason), OTA_OK);

    /* Another key. */
    expect_manifest_refused(&m, other, "bota-pin", "signature invalid: the manifest is not signed by the pinned");

    /* Every signed field is covered. */
    t = m;
    t.size++;
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid");
    t = m;
    t.crc32 ^= 1;
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid");
    t = m;
    t.sha256[0] = t.sha256[0] == 'a' ? 'b' : 'a';
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid");
    t = m;
    strcpy(t.version, "1.2.1");
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid");
    t = m;
    strcpy(t.assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9f");
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid");
    t = m;
    strcpy(t.model, "bota-max");
    expect_manifest_refused(&t, pub, "bota-max", "signature invalid");
    t = m;
    t.signature[5] = t.signature[5] == 'A' ? 'B' : 'A';
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid");
    t = m;
    strcpy(t.signature, "not base64");
    expect_manifest_refused(&t, pub, "bota-pin", "signature invalid: malformed manifest");

    /* Signed, but not for this device, or not an HTTP image. */
    expect_manifest_refused(&m, pub, "bota-max",
                            "model mismatch: the manifest is for bota-pin, this device is bota-max");
    t = m;
    strcpy(t.artifact, "ufw");
    assert_int_equal(ota_manifest_sign(&t, SEED), OTA_OK);
    expect_manifest_refused(&t, pub, "bota-pin", "artifact mismatch");
}

static void expect_image_refused(const ota_manifest_t *m, const char *reason_start)
{
    char reason[300] = "";
    assert_int_equal(ota__verify_image(g_path, m, reason, sizeof reason), OTA_ERR_CRYPTO);
    if (strncmp(reason, reason_start, strlen(reason_start)) != 0)
        fail_msg("want a reason starting with \"%s\", got \"%s\"", reason_start, reason);
}

static void test_image_checks(void **state)
{
    (void)state;
    ota_manifest_t m, t;
    char reason[300] = "";
    signed_manifest(&m);
    assert_int_equal(ota__verify_image(g_path, &m, reason, sizeof reason), OTA_OK);

    /* Size first: a short or long file is named as such. */
    write_image(g_image, IMAGE_LEN - 1);
    expect_image_refused(&m, "size mismatch: got 70000 bytes, expected 70001");
    write_image(g_image, IMAGE_LEN);

    /* Then CRC-32. */
    t = m;
    t.crc32 ^= 0x80000000u;
    expect_image_refused(&t, "crc32 mismatch");

    /* Then SHA-256 (bytes whose CRC-32 matches but are not the image: the manifest's hash differs). */
    t = m;
    t.sha256[63] = t.sha256[63] == '0' ? '1' : '0';
    expect_image_refused(&t, "sha256 mismatch: got ");

    /* Unreadable. */
    char saved[64];
    snprintf(saved, sizeof saved, "%s", g_path);
    snprintf(g_path, sizeof g_path, "/nonexistent/ota-image");
    assert_int_equal(ota__verify_image(g_path, &m, reason, sizeof reason), OTA_ERR_IO);
    assert_non_null(strstr(reason, "cannot read the image"));
    snprintf(g_path, sizeof g_path, "%s", saved);
}

/* --corrupt: one bit of one byte, in the middle; the size stays; the CRC-32 check catches it. */
static void test_corrupt(void **state)
{
    (void)state;
    ota_manifest_t m;
    unsigned char *back = malloc(IMAGE_LEN + 1);
    assert_non_null(back);
    signed_manifest(&m);
    assert_int_equal(ota__corrupt_file(g_path), OTA_OK);
    FILE *f = fopen(g_path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(back, 1, IMAGE_LEN + 1, f), IMAGE_LEN);
    fclose(f);
    int differing = 0;
    for (size_t i = 0; i < IMAGE_LEN; i++) {
        if (back[i] != g_image[i]) {
            differing++;
            assert_int_equal(i, IMAGE_LEN / 2);
            assert_int_equal(back[i] ^ g_image[i], 1);
        }
    }
    assert_int_equal(differing, 1);
    free(back);
    expect_image_refused(&m, "crc32 mismatch");
    assert_int_equal(ota__corrupt_file("/nonexistent/x"), OTA_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_checks),
        cmocka_unit_test_setup_teardown(test_image_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
