#include "core/digest.h"

#include <pthread.h>
#include <string.h>

#include "ota/crc32.h"
#include "ota/hex.h"

/* Finishes one hash into `hex`, which has room for 2 * `expect` + 1 characters. */
static ota_err_t finish(EVP_MD_CTX *md, size_t expect, char *hex)
{
    unsigned char bin[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (EVP_DigestFinal_ex(md, bin, &len) != 1 || len != expect)
        return OTA_ERR_CRYPTO;
    ota_hex_encode(bin, len, hex);
    return OTA_OK;
}

ota_err_t ota__digest_init(ota_digest_ctx_t *ctx)
{
    ota_err_t err = OTA_OK;

    memset(ctx, 0, sizeof *ctx);
    ctx->sha256 = EVP_MD_CTX_new();
    ctx->md5 = EVP_MD_CTX_new();
    if (ctx->sha256 == NULL || ctx->md5 == NULL) {
        err = OTA_ERR_NOMEM;
        goto Exit;
    }
    if (EVP_DigestInit_ex(ctx->sha256, EVP_sha256(), NULL) != 1 || EVP_DigestInit_ex(ctx->md5, EVP_md5(), NULL) != 1)
        err = OTA_ERR_CRYPTO;

Exit:
    if (err != OTA_OK)
        ota__digest_dispose(ctx);
    return err;
}

ota_err_t ota__digest_update(ota_digest_ctx_t *ctx, const void *data, size_t len)
{
    if (len == 0)
        return OTA_OK;
    if (EVP_DigestUpdate(ctx->sha256, data, len) != 1 || EVP_DigestUpdate(ctx->md5, data, len) != 1)
        return OTA_ERR_CRYPTO;
    ctx->crc32 = ota_crc32_update(ctx->crc32, data, len);
    ctx->size += len;
    return OTA_OK;
}

ota_err_t ota__digest_final(ota_digest_ctx_t *ctx, ota_digest_t *out)
{
    ota_err_t err;

    memset(out, 0, sizeof *out);
    if ((err = finish(ctx->sha256, OTA_DIGEST_SHA256_HEX_LEN / 2, out->sha256)) != OTA_OK ||
        (err = finish(ctx->md5, OTA_DIGEST_MD5_HEX_LEN / 2, out->md5)) != OTA_OK)
        goto Exit;
    out->size = ctx->size;
    out->crc32 = ctx->crc32;

Exit:
    if (err != OTA_OK)
        memset(out, 0, sizeof *out);
    ota__digest_dispose(ctx);
    return err;
}

void ota__digest_dispose(ota_digest_ctx_t *ctx)
{
    EVP_MD_CTX_free(ctx->sha256);
    EVP_MD_CTX_free(ctx->md5);
    ctx->sha256 = NULL;
    ctx->md5 = NULL;
}

ota_err_t ota__digest_buffer(const void *data, size_t len, ota_digest_t *out)
{
    ota_digest_ctx_t ctx;
    ota_err_t err;

    if ((err = ota__digest_init(&ctx)) == OTA_OK && (err = ota__digest_update(&ctx, data, len)) == OTA_OK)
        return ota__digest_final(&ctx, out);
    ota__digest_dispose(&ctx);
    memset(out, 0, sizeof *out);
    return err;
}

static EVP_MD *sha256_impl; /* fetched once, shared by all threads (OpenSSL allows that), never freed */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_impl = EVP_MD_fetch(NULL, "SHA256", NULL);
}

ota_err_t ota__sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    pthread_once(&sha256_once, fetch_sha256);
    if (sha256_impl == NULL || EVP_Digest(data != NULL ? data : "", len, out, &n, sha256_impl, NULL) != 1 || n != 32)
        return OTA_ERR_CRYPTO;
    return OTA_OK;
}
