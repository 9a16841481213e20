#include "storage/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/file_io.h"
#include "ota/base64.h"
#include "storage/fs.h"
#include "storage/s3.h"

/* The fs backend presigns with this access key and a secret kept beside the blobs. */
#define FS_ACCESS_KEY "ota-fs"
#define FS_SECRET_FILE ".presign-secret"
/* 32 random bytes in base64url */
#define FS_SECRET_LEN 43
/* The path under which the server serves fs blobs (see api/blobs.c). */
#define FS_URL_BUCKET "blobs"

struct ota_storage {
    ota_s3_t *s3; /* NULL for fs */
    char *root;
    char *public_url;
    char *region;
    char secret[FS_SECRET_LEN + 1];
    ota_sigv4_signer_t signer;
    ota_sigv4_key_cache_t key; /* fs only */
};

int ota__storage_key_valid(const char *key, size_t len)
{
    size_t seg = 0;
    if (len == 0 || len > 512)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? key[i] : '/';
        if (c == '/') {
            /* no empty segment, no "." or ".." segment */
            if (seg == 0 || (seg == 1 && key[i - 1] == '.') || (seg == 2 && key[i - 1] == '.' && key[i - 2] == '.'))
                return 0;
            seg = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok)
            return 0;
        seg++;
    }
    return 1;
}

/*
 * Reads the fs presigning secret, creating it on first use. It is written whole to a temporary file and linked
 * into place (core/file_io.h), so of several instances starting at once the first wins, and a start killed at any
 * moment leaves no file or the whole secret. A short file can only be left by an older version, which wrote the
 * file in place: it is refused with a message that says what to do, never replaced behind the operator's back.
 */
static ota_err_t load_fs_secret(ota_storage_t *st, char *err, size_t cap)
{
    char path[1024];
    unsigned char random[32];
    char encoded[FS_SECRET_LEN + 1];
    snprintf(path, sizeof path, "%s/%s", st->root, FS_SECRET_FILE);

    if (access(path, F_OK) != 0 && errno == ENOENT) {
        if (RAND_bytes(random, sizeof random) != 1) {
            snprintf(err, cap, "no randomness for the fs presigning secret");
            return OTA_ERR_CRYPTO;
        }
        ota_base64url_encode(random, sizeof random, encoded);
        OPENSSL_cleanse(random, sizeof random);
        ota_err_t rc = ota__write_file_durable(path, encoded, FS_SECRET_LEN, 0600, OTA_WRITE_CREATE, err, cap);
        OPENSSL_cleanse(encoded, sizeof encoded);
        if (rc != OTA_OK && rc != OTA_ERR_INVALID) /* INVALID: another instance made it first */
            return rc;
    }
    /* An older version of the server may be writing it in place right now: retry briefly until it is whole. */
    ssize_t n = 0;
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, cap, "cannot read %s: %s", path, strerror(errno));
            return OTA_ERR_IO;
        }
        n = read(fd, st->secret, FS_SECRET_LEN);
        close(fd);
        if (n == FS_SECRET_LEN) {
            st->secret[FS_SECRET_LEN] = '\0';
            return OTA_OK;
        }
        usleep(20 * 1000);
    }
    snprintf(err, cap,
             "%s holds %zd bytes, not a %d-character secret: a start of an older version was killed while writing "
             "it. Delete the file and start again (a new secret is made; presigned URLs given out before stop "
             "working)",
             path, n < 0 ? (ssize_t)0 : n, FS_SECRET_LEN);
    return OTA_ERR_IO;
}

static ota_err_t open_fs(ota_storage_t *st, const ota_config_t *cfg, char *err, size_t cap)
{
    if (mkdir(cfg->storage_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, cap, "cannot create OTA_STORAGE_DIR %s: %s", cfg->storage_dir, strerror(errno));
        return OTA_ERR_IO;
    }
    st->root = strdup(cfg->storage_dir);
    st->public_url = strdup(cfg->public_url);
    st->region = strdup(cfg->s3_region);
    ota_err_t rc = load_fs_secret(st, err, cap);
    if (rc != OTA_OK)
        return rc;
    st->signer = (ota_sigv4_signer_t){FS_ACCESS_KEY, st->secret, NULL, st->region};
    return OTA_OK;
}

ota_storage_t *ota__storage_open(const ota_config_t *cfg, char *err, size_t cap)
{
    ota_storage_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    ota__sigv4_key_cache_init(&st->key);
    if (strcmp(cfg->storage, "s3") == 0) {
        st->s3 = ota__s3_open(cfg, err, cap);
        if (st->s3 != NULL)
            return st;
    } else if (open_fs(st, cfg, err, cap) == OTA_OK) {
        return st;
    }
    ota__storage_close(st);
    return NULL;
}

void ota__storage_close(ota_storage_t *st)
{
    if (st == NULL)
        return;
    if (st->s3 != NULL)
        ota__s3_close(st->s3);
    ota__sigv4_key_cache_dispose(&st->key);
    free(st->root);
    free(st->public_url);
    free(st->region);
    free(st);
}

ota_err_t ota__storage_put(ota_storage_t *st, const char *key, const void *data, size_t len, char *err, size_t cap)
{
    if (st->s3 != NULL)
        return ota__s3_put(st->s3, key, data, len, err, cap);
    return ota__fs_put(st->root, key, data, len, err, cap);
}

ota_err_t ota__storage_get(ota_storage_t *st, const char *key, size_t max, unsigned char **data, size_t *len,
                           char *err, size_t cap)
{
    if (st->s3 != NULL)
        return ota__s3_get(st->s3, key, max, data, len, err, cap);
    return ota__fs_get(st->root, key, max, data, len, err, cap);
}

ota_err_t ota__storage_copy(ota_storage_t *st, const char *src, const char *dst, char *err, size_t cap)
{
    if (st->s3 != NULL)
        return ota__s3_copy(st->s3, src, dst, err, cap);
    return ota__fs_copy(st->root, src, dst, err, cap);
}

ota_err_t ota__storage_list(ota_storage_t *st, const char *prefix, ota_storage_list_cb cb, void *arg, char *err,
                            size_t cap)
{
    if (st->s3 != NULL)
        return ota__s3_list(st->s3, prefix, cb, arg, err, cap);
    return ota__fs_list(st->root, prefix, cb, arg, err, cap);
}

ota_err_t ota__storage_delete(ota_storage_t *st, const char *key, char *err, size_t cap)
{
    if (st->s3 != NULL)
        return ota__s3_delete(st->s3, key, err, cap);
    return ota__fs_delete(st->root, key, err, cap);
}

ota_err_t ota__storage_presign(ota_storage_t *st, const char *method, const char *key, time_t now, int ttl, char *url,
                               size_t cap)
{
    if (strcmp(method, "GET") != 0 &&
        strncmp(key, OTA_STORAGE_UPLOADS_PREFIX, sizeof OTA_STORAGE_UPLOADS_PREFIX - 1) != 0)
        return OTA_ERR_INVALID;
    return ota__storage_presign_any(st, method, key, now, ttl, url, cap);
}

ota_err_t ota__storage_presign_any(ota_storage_t *st, const char *method, const char *key, time_t now, int ttl,
                                   char *url, size_t cap)
{
    if (st->s3 != NULL)
        return ota__s3_presign(st->s3, method, key, now, ttl, url, cap);

    ota_sigv4_target_t target;
    ota_sigv4_key_t signing_key;
    ota_err_t rc = ota__sigv4_s3_target(st->public_url, FS_URL_BUCKET, key, true, &target);
    if (rc != OTA_OK)
        return rc;
    ota__sigv4_key_cache_get(&st->key, &st->signer, now, &signing_key);
    ota_sigv4_request_t req = {.signer = &st->signer,
                               .method = method,
                               .scheme = target.scheme,
                               .host = target.host,
                               .path = target.path,
                               .now = now,
                               .key = &signing_key};
    rc = ota__sigv4_presign(&req, ttl, url, cap, NULL);
    OPENSSL_cleanse(&signing_key, sizeof signing_key);
    return rc;
}

int ota__storage_is_fs(const ota_storage_t *st)
{
    return st->s3 == NULL;
}

const char *ota__storage_fs_root(const ota_storage_t *st)
{
    return st->s3 == NULL ? st->root : NULL;
}

const ota_sigv4_signer_t *ota__storage_fs_signer(const ota_storage_t *st)
{
    return st->s3 == NULL ? &st->signer : NULL;
}
