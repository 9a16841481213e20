#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ota/crc32.h"
#include "ota/semver.h"
#include "util.h"
#include "ota/hex.h"

#define CHUNK (64 * 1024)

/*
 * A manifest known to be signed right (RFC 8032 section 7.1 TEST 1 key; the same sample as test/unit/test_manifest.c),
 * to tell "this signature is wrong" from "OpenSSL cannot verify anything right now".
 */
static const unsigned char KNOWN_PUBLIC[OTA_ED25519_PUBLIC_LEN] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};
static const ota_manifest_t KNOWN = {
    .assignment_id = "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e",
    .device_id = "0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f",
    .release_id = "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4",
    .model = "bota-pin",
    .version = "1.2.0-rc.1+build.7",
    .artifact = "bin",
    .url = "https://s3.example.com/x",
    .url_expires_at = "2026-11-21T10:15:00Z",
    .not_after = "2026-11-22T10:00:00Z",
    .size = 42892,
    .crc32 = 3735928559u,
    .sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    .signature = "sXYAHfaoaXKqkce2NZJjZgtoq8tK79PpuInzAN2btomLneQZIGFmHvdP2QUGnLmbqHF+9IsFbMDwyMmiiHYhBw==",
};

/*
 * ota_manifest_verify, with allocation failures told apart from bad signatures: OpenSSL's Ed25519 verification
 * allocates, and when it cannot, the codec sees a failed verification (OTA_ERR_CRYPTO). A device must not report
 * a good update as forged because memory was short for a moment, so a failed verification is tried once more, and
 * if it fails again, a known-good signature is checked: when that fails too, nothing can be verified now
 * (OTA_ERR_NOMEM), and the verdict waits.
 */
static ota_err_t verify_signature(const ota_manifest_t *m, const unsigned char public_key[OTA_ED25519_PUBLIC_LEN])
{
    ota_err_t rc = ota_manifest_verify(m, public_key);
    if (rc != OTA_ERR_CRYPTO)
        return rc;
    if ((rc = ota_manifest_verify(m, public_key)) != OTA_ERR_CRYPTO)
        return rc;
    return ota_manifest_verify(&KNOWN, KNOWN_PUBLIC) == OTA_OK ? OTA_ERR_CRYPTO : OTA_ERR_NOMEM;
}

/* Signed, but for another model or not an HTTP image. */
static bool wrong_target(const ota_manifest_t *m, const char *model, char *reason, size_t cap)
{
    if (strcmp(m->model, model) != 0) {
        snprintf(reason, cap, "model mismatch: the manifest is for %s, this device is %s", m->model, model);
        return true;
    }
    if (strcmp(m->artifact, "bin") != 0) {
        snprintf(reason, cap, "artifact mismatch: \"%s\" is not an HTTP OTA image", m->artifact);
        return true;
    }
    return false;
}

/*
 * Signed, but not for this device now: made for another device (a manifest kept and sent again elsewhere), past
 * its deadline (kept and sent again later), or an older version than the running one that the operator did not ask
 * for (kept from an old release, to push the device back to it). Both times are "YYYY-MM-DDTHH:MM:SSZ", in which
 * text order is time order.
 */
static bool wrong_moment(const ota_manifest_t *m, const ota__verify_device_t *dev, char *reason, size_t cap)
{
    char now[OTA_MANIFEST_TIME_LEN + 1] = "an unknown time"; /* a clock past 9999 does not fit: past any not_after */
    struct tm tm;
    ota_semver_t offered, running;

    if (strcmp(m->device_id, dev->device_id) != 0) {
        snprintf(reason, cap, "device mismatch: the manifest is for device %s, this device is %s", m->device_id,
                 dev->device_id);
        return true;
    }
    if (gmtime_r(&dev->now, &tm) == NULL || strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 ||
        strcmp(now, m->not_after) > 0) {
        snprintf(reason, cap, "expired: the manifest was valid until %s, this device's clock says %s", m->not_after,
                 now);
        return true;
    }
    if (strcmp(m->version, dev->version) == 0) {
        snprintf(reason, cap, "already running: this device runs %s already", dev->version);
        return true;
    }
    /* The running version is valid (state.json is checked on load); were it not, only a signed downgrade goes. */
    bool older = ota_semver_parse(dev->version, strlen(dev->version), &running) != OTA_OK ||
                 (ota_semver_parse(m->version, strlen(m->version), &offered) == OTA_OK &&
                  ota_semver_compare(&offered, &running) < 0);
    if (older && !m->downgrade) {
        snprintf(reason, cap, "downgrade refused: the manifest names %s, older than the running %s, without downgrade",
                 m->version, dev->version);
        return true;
    }
    return false;
}

ota_err_t ota__verify_manifest(const ota_manifest_t *m, const ota__verify_device_t *dev, char *reason, size_t cap)
{
    ota_err_t rc = verify_signature(m, dev->public_key);
    if (rc == OTA_ERR_NOMEM) {
        snprintf(reason, cap, "out of memory");
        return rc;
    }
    if (rc != OTA_OK) {
        snprintf(reason, cap, "signature invalid: %s",
                 rc == OTA_ERR_CRYPTO ? "the manifest is not signed by the pinned server key" : "malformed manifest");
        return OTA_ERR_CRYPTO;
    }
    if (wrong_target(m, dev->model, reason, cap) || wrong_moment(m, dev, reason, cap))
        return OTA_ERR_CRYPTO;
    return OTA_OK;
}

/* Reads the file at `path` once: its size must be `size`; its CRC-32 and SHA-256 (hex) come out. */
static ota_err_t hash_file(const char *path, uint64_t size, uint32_t *crc, char hex[2 * EVP_MAX_MD_SIZE + 1],
                           char *reason, size_t cap)
{
    ota_err_t rc = OTA_OK;
    unsigned char *buf = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    uint64_t total = 0;
    struct stat st;
    EVP_MD_CTX *ctx = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *crc = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(reason, cap, "cannot read the image: %s", strerror(errno));
        rc = OTA_ERR_IO;
        goto Exit;
    }
    if ((uint64_t)st.st_size != size) {
        snprintf(reason, cap, "size mismatch: got %" PRIu64 " bytes, expected %" PRIu64, (uint64_t)st.st_size, size);
        rc = OTA_ERR_CRYPTO;
        goto Exit;
    }
    if ((buf = malloc(CHUNK)) == NULL || (ctx = EVP_MD_CTX_new()) == NULL) {
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = OTA_ERR_NOMEM; /* the only way a built-in digest fails to start */
        goto Exit;
    }
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(reason, cap, "cannot read the image: %s", strerror(errno));
            rc = OTA_ERR_IO;
            goto Exit;
        }
        if (n == 0)
            break;
        *crc = ota_crc32_update(*crc, buf, (size_t)n);
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            rc = OTA_ERR_NOMEM;
            goto Exit;
        }
        total += (uint64_t)n;
    }
    if (total != size) {
        snprintf(reason, cap, "size mismatch: read %" PRIu64 " bytes, expected %" PRIu64, total, size);
        rc = OTA_ERR_CRYPTO;
        goto Exit;
    }
    if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32) {
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    ota_hex_encode(md, md_len, hex);
Exit:
    if (rc == OTA_ERR_NOMEM)
        snprintf(reason, cap, "out of memory");
    EVP_MD_CTX_free(ctx);
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

ota_err_t ota__verify_image(const char *path, const ota_manifest_t *m, char *reason, size_t cap)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    uint32_t crc;
    ota_err_t rc = hash_file(path, m->size, &crc, hex, reason, cap);
    if (rc != OTA_OK)
        return rc;
    if (crc != m->crc32) {
        snprintf(reason, cap, "crc32 mismatch: got %" PRIu32 ", expected %" PRIu32, crc, m->crc32);
        return OTA_ERR_CRYPTO;
    }
    if (strcmp(hex, m->sha256) != 0) {
        snprintf(reason, cap, "sha256 mismatch: got %s, expected %s", hex, m->sha256);
        return OTA_ERR_CRYPTO;
    }
    return OTA_OK;
}

ota_err_t ota__verify_file(const char *path, uint64_t size, const char *sha256, char *reason, size_t cap)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    uint32_t crc;
    ota_err_t rc = hash_file(path, size, &crc, hex, reason, cap);
    if (rc == OTA_OK && strcmp(hex, sha256) != 0) {
        snprintf(reason, cap, "sha256 mismatch: got %s, expected %s", hex, sha256);
        rc = OTA_ERR_CRYPTO;
    }
    return rc;
}

ota_err_t ota__corrupt_file(const char *path)
{
    ota_err_t rc = OTA_ERR_IO;
    struct stat st;
    unsigned char byte;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0)
        goto Exit;
    off_t at = st.st_size / 2;
    if (pread(fd, &byte, 1, at) != 1)
        goto Exit;
    byte ^= 1;
    if (pwrite(fd, &byte, 1, at) != 1 || fsync(fd) != 0)
        goto Exit;
    rc = OTA_OK;
Exit:
    if (fd >= 0)
        close(fd);
    return rc;
}
