#include "core/signing_key.h"

#include "core/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "ota/base64.h"

/* A creator that lost the file to a concurrent deletion is retried this many times, no more. */
#define CREATE_ATTEMPTS 3
#define RETRY_SLEEP_MS 10

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * Reads the file at `path` into `buf` (OTA_SIGNING_KEY_FILE_MAX + 1 bytes,
 * NUL-terminated on success). Sets *missing instead of failing when there is no file.
 */
static ota_err_t read_key_file(const char *path, char *buf, size_t *len, int *missing, char *err, size_t cap)
{
    struct stat st;
    size_t got = 0;
    ota_err_t rc = OTA_ERR_IO;
    int fd;

    *missing = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = 1;
            return OTA_OK;
        }
        snprintf(err, cap, "signing key %s: cannot open: %s", path, strerror(errno));
        return OTA_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, cap, "signing key %s: not a regular file", path);
        goto Exit;
    }
    /* One byte more than the cap, to tell a file at the cap from one over it. */
    while (got <= OTA_SIGNING_KEY_FILE_MAX) {
        ssize_t n = read(fd, buf + got, OTA_SIGNING_KEY_FILE_MAX + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, cap, "signing key %s: cannot read: %s", path, strerror(errno));
            goto Exit;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > OTA_SIGNING_KEY_FILE_MAX) {
        snprintf(err, cap, "signing key %s: larger than %d bytes, not a key", path, OTA_SIGNING_KEY_FILE_MAX);
        rc = OTA_ERR_TOO_LARGE;
        goto Exit;
    }
    buf[got] = '\0';
    *len = got;
    rc = OTA_OK;
Exit:
    close(fd);
    return rc;
}

/* Refuses to prompt on the terminal for a passphrase: encrypted keys just fail. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Parses `len` bytes of PEM at `pem` (NUL-terminated) as an Ed25519 private key. */
static ota_err_t parse_key(const char *path, const char *pem, size_t len, ota_signing_key_t *key, char *err, size_t cap)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    size_t seed_len = sizeof key->seed, pub_len = sizeof key->public_key;
    ota_err_t rc = OTA_ERR_INVALID;

    if (len == 0) {
        /* Never made by this version (it links whole files into place): a start of an older one was killed. */
        snprintf(err, cap,
                 "signing key %s: the file is empty (left by an older version killed while writing it); delete it "
                 "to have a new key made",
                 path);
        return OTA_ERR_INVALID;
    }
    if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL) {
        snprintf(err, cap, "signing key %s: encrypted keys are not supported", path);
        return OTA_ERR_INVALID;
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
        snprintf(err, cap, "signing key %s: out of memory", path);
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
        snprintf(err, cap, "signing key %s: not a PEM private key (expected an Ed25519 PKCS#8 \"PRIVATE KEY\")", path);
        goto Exit;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        const char *type = EVP_PKEY_get0_type_name(pkey);
        snprintf(err, cap, "signing key %s: a %s key, expected Ed25519", path, type != NULL ? type : "non-Ed25519");
        goto Exit;
    }
    if (EVP_PKEY_get_raw_private_key(pkey, key->seed, &seed_len) != 1 || seed_len != sizeof key->seed ||
        EVP_PKEY_get_raw_public_key(pkey, key->public_key, &pub_len) != 1 || pub_len != sizeof key->public_key) {
        snprintf(err, cap, "signing key %s: cannot extract the raw Ed25519 key", path);
        rc = OTA_ERR_CRYPTO;
        goto Exit;
    }
    ota_base64_encode(key->public_key, sizeof key->public_key, key->public_base64);
    rc = OTA_OK;
Exit:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

/*
 * Writes a new random key to `path` unless a file is already there (*exists
 * is then set and nothing written). The key is written whole to a temporary
 * file and linked into place (core/file_io.h): a start killed at any moment
 * leaves no key file or a whole one, never an empty or partial one.
 */
static ota_err_t create_key(const char *path, int *exists, char *err, size_t cap)
{
    unsigned char seed[OTA_ED25519_SEED_LEN];
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len;
    ota_err_t rc = OTA_ERR_CRYPTO;

    *exists = 0;
    if (RAND_priv_bytes(seed, sizeof seed) != 1 ||
        (pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed)) == NULL ||
        (bio = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (pem_len = BIO_get_mem_data(bio, &pem)) <= 0) {
        snprintf(err, cap, "signing key %s: cannot make a new Ed25519 key", path);
        goto Exit;
    }
    rc = ota__write_file_durable(path, pem, (size_t)pem_len, 0600, OTA_WRITE_CREATE, err, cap);
    if (rc == OTA_ERR_INVALID) { /* another instance made it first */
        *exists = 1;
        rc = OTA_OK;
    } else if (rc != OTA_OK) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", err);
        snprintf(err, cap, "signing key %s: %s", path, reason);
    }
Exit:
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    OPENSSL_cleanse(seed, sizeof seed);
    return rc;
}

ota_err_t ota__signing_key_load(const char *path, ota_signing_key_t *key, char *err, size_t cap)
{
    char scratch[1];
    char buf[OTA_SIGNING_KEY_FILE_MAX + 1];
    long long deadline = now_ms() + OTA_SIGNING_KEY_WAIT_MS;
    int creates = 0;
    size_t len = 0;
    ota_err_t rc;

    if (err == NULL || cap == 0) {
        err = scratch;
        cap = sizeof scratch;
    }
    err[0] = '\0';
    if (path == NULL || path[0] == '\0' || key == NULL) {
        snprintf(err, cap, "signing key: no path given");
        return OTA_ERR_INVALID;
    }
    memset(key, 0, sizeof *key);
    ERR_set_mark();
    for (;;) {
        int missing = 0, exists = 0;
        if ((rc = read_key_file(path, buf, &len, &missing, err, cap)) != OTA_OK)
            goto Exit;
        if (missing) {
            if (++creates > CREATE_ATTEMPTS) {
                snprintf(err, cap, "signing key %s: the file keeps disappearing", path);
                rc = OTA_ERR_IO;
                goto Exit;
            }
            if ((rc = create_key(path, &exists, err, cap)) != OTA_OK)
                goto Exit;
            continue;
        }
        if ((rc = parse_key(path, buf, len, key, err, cap)) == OTA_OK)
            break;
        /* Empty or without its final newline: another instance may still be writing it. */
        if ((len == 0 || buf[len - 1] != '\n') && now_ms() < deadline) {
            sleep_ms(RETRY_SLEEP_MS);
            continue;
        }
        goto Exit;
    }
    err[0] = '\0';
Exit:
    if (rc != OTA_OK)
        OPENSSL_cleanse(key, sizeof *key);
    OPENSSL_cleanse(buf, sizeof buf);
    ERR_pop_to_mark();
    return rc;
}
