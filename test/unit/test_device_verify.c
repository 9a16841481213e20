/*
 * libota-device: the checks before a switch (device/verify.c). The manifest:
 * Ed25519 signature with the pinned key (another key, any signed field
 * changed), model, artifact; then whether it is for this device now: its
 * device id, its deadline (not_after) by the device's clock, and the version
 * order (older only with downgrade, never the version it runs). The image: size, CRC-32, SHA-256, each named in
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
#include <time.h>
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

#define DEVICE_ID "0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f"
#define OTHER_DEVICE_ID "0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e60"
#define NOT_AFTER "2026-11-22T10:00:00Z"
#define NOT_AFTER_T ((time_t)1795341600) /* NOT_AFTER as seconds since the epoch */

/* A manifest of g_image for DEVICE_ID, version 1.2.0, valid until NOT_AFTER, signed with SEED. */
static void signed_manifest(ota_manifest_t *m)
{
    unsigned char md[32];
    unsigned int n = 0;
    memset(m, 0, sizeof *m);
    strcpy(m->assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e");
    strcpy(m->device_id, DEVICE_ID);
    strcpy(m->release_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(m->model, "bota-pin");
    strcpy(m->version, "1.2.0");
    strcpy(m->artifact, "bin");
    strcpy(m->url, "http://127.0.0.1:9/blobs/x?X-Amz-Expires=900");
    strcpy(m->url_expires_at, "2026-11-21T10:15:00Z");
    strcpy(m->not_after, NOT_AFTER);
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

static unsigned char g_pub[32];

/* The device signed_manifest is for: bota-pin DEVICE_ID running 1.1.0, its clock a minute before NOT_AFTER. */
static ota__verify_device_t the_device(void)
{
    public_key(SEED, g_pub);
    return (ota__verify_device_t){
        .public_key = g_pub, .model = "bota-pin", .device_id = DEVICE_ID, .version = "1.1.0", .now = NOT_AFTER_T - 60};
}

static void expect_accepted(const ota_manifest_t *m, const ota__verify_device_t *dev)
{
    char reason[300] = "";
    if (ota__verify_manifest(m, dev, reason, sizeof reason) != OTA_OK)
        fail_msg("refused: %s", reason);
}

static void expect_refused(const ota_manifest_t *m, const ota__verify_device_t *dev, const char *reason_start)
{
    char reason[300] = "";
    assert_int_equal(ota__verify_manifest(m, dev, reason, sizeof reason), OTA_ERR_CRYPTO);
    if (strncmp(reason, reason_start, strlen(reason_start)) != 0)
        fail_msg("want a reason starting with \"%s\", got \"%s\"", reason_start, reason);
}

static void test_manifest_checks(void **state)
{
    (void)state;
    ota_manifest_t m, t;
    unsigned char other[32];
    ota__verify_device_t dev = the_device(), d;
    public_key(OTHER_SEED, other);
    signed_manifest(&m);
    expect_accepted(&m, &dev);

    /* The URL is not signed: a fresh one changes nothing. */
    t = m;
    strcpy(t.url, "https://cdn.example.com/other?sig=1");
    strcpy(t.url_expires_at, "2027-01-01T00:00:00Z");
    expect_accepted(&t, &dev);

    /* Another key. */
    d = dev;
    d.public_key = other;
    expect_refused(&m, &d, "signature invalid: the manifest is not signed by the pinned");

    /* Every signed field is covered. */
    t = m;
    t.size++;
    expect_refused(&t, &dev, "signature invalid");
    t = m;
    t.crc32 ^= 1;
    expect_refused(&t, &dev, "signature invalid");
    t = m;
    t.sha256[0] = t.sha256[0] == 'a' ? 'b' : 'a';
    expect_refused(&t, &dev, "signature invalid");
    t = m;
    strcpy(t.version, "1.2.1");
    expect_refused(&t, &dev, "signature invalid");
    t = m;
    strcpy(t.assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9f");
    expect_refused(&t, &dev, "signature invalid");
    t = m;
    strcpy(t.model, "bota-max");
    d = dev;
    d.model = "bota-max";
    expect_refused(&t, &d, "signature invalid");
    t = m;
    t.signature[5] = t.signature[5] == 'A' ? 'B' : 'A';
    expect_refused(&t, &dev, "signature invalid");
    t = m;
    strcpy(t.signature, "not base64");
    expect_refused(&t, &dev, "signature invalid: malformed manifest");

    /* The fields that bind it to one device, a deadline and the version order are signed too: rewriting them to
       suit the device gives the forgery away. */
    t = m;
    strcpy(t.device_id, OTHER_DEVICE_ID);
    d = dev;
    d.device_id = OTHER_DEVICE_ID;
    expect_refused(&t, &d, "signature invalid");
    t = m;
    strcpy(t.not_after, "2030-01-01T00:00:00Z");
    d = dev;
    d.now = NOT_AFTER_T + 3600;
    expect_refused(&t, &d, "signature invalid");
    t = m;
    t.downgrade = true;
    expect_refused(&t, &dev, "signature invalid");

    /* Signed, but not for this device, or not an HTTP image. */
    d = dev;
    d.model = "bota-max";
    expect_refused(&m, &d, "model mismatch: the manifest is for bota-pin, this device is bota-max");
    t = m;
    strcpy(t.artifact, "ufw");
    assert_int_equal(ota_manifest_sign(&t, SEED), OTA_OK);
    expect_refused(&t, &dev, "artifact mismatch");
}

/* Signed right, but replayed: to another device, after its deadline, or to take the device back. */
static void test_replay_checks(void **state)
{
    (void)state;
    ota_manifest_t m, t;
    ota__verify_device_t dev = the_device(), d;
    signed_manifest(&m);

    /* Another device's manifest. */
    d = dev;
    d.device_id = OTHER_DEVICE_ID;
    expect_refused(&m, &d,
                   "device mismatch: the manifest is for device " DEVICE_ID ", this device is " OTHER_DEVICE_ID);

    /* The deadline: still good at the very second, refused one second after (by the device's clock). */
    d = dev;
    d.now = NOT_AFTER_T;
    expect_accepted(&m, &d);
    d.now = NOT_AFTER_T + 1;
    expect_refused(
        &m, &d, "expired: the manifest was valid until " NOT_AFTER ", this device's clock says 2026-11-22T10:00:01Z");
    d.now = NOT_AFTER_T + 86400 * 400;
    expect_refused(&m, &d, "expired: ");

    /* The version order, by semver precedence. */
    d = dev;
    d.version = "1.10.0"; /* newer than 1.2.0, though "1.10.0" < "1.2.0" as text */
    expect_refused(&m, &d, "downgrade refused: the manifest names 1.2.0, older than the running 1.10.0");
    d.version = "1.2.0-rc.1"; /* a pre-release comes before its release */
    expect_accepted(&m, &d);
    d.version = "1.2.0+build.5"; /* the same precedence, another build: not older */
    expect_accepted(&m, &d);

    /* The version it runs already: nothing to download. */
    d.version = "1.2.0";
    expect_refused(&m, &d, "already running: this device runs 1.2.0 already");

    /* An older version signed with downgrade: true goes; the same version still does not. */
    t = m;
    t.downgrade = true;
    assert_int_equal(ota_manifest_sign(&t, SEED), OTA_OK);
    d.version = "1.10.0";
    expect_accepted(&t, &d);
    d.version = "1.2.0";
    expect_refused(&t, &d, "already running");

    /* The checks come in order: a manifest wrong in every way is named for the device first. */
    d = dev;
    d.device_id = OTHER_DEVICE_ID;
    d.now = NOT_AFTER_T + 1;
    d.version = "9.0.0";
    expect_refused(&m, &d, "device mismatch");
    d.device_id = DEVICE_ID;
    expect_refused(&m, &d, "expired");
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
        cmocka_unit_test(test_replay_checks),
        cmocka_unit_test_setup_teardown(test_image_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
