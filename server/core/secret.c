#include "core/secret.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "core/digest.h"
#include "ota/base64.h"
#include "ota/hex.h"

ota_err_t ota__secret_new(const char *prefix, char out[OTA_SECRET_MAX])
{
    unsigned char raw[OTA_SECRET_RANDOM_BYTES];
    size_t plen = strlen(prefix);
    if (plen + ota_base64url_encoded_len(sizeof(raw)) + 1 > OTA_SECRET_MAX)
        return OTA_ERR_INVALID;
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return OTA_ERR_CRYPTO;
    memcpy(out, prefix, plen);
    ota_base64url_encode(raw, sizeof(raw), out + plen);
    OPENSSL_cleanse(raw, sizeof(raw));
    return OTA_OK;
}

void ota__secret_hash_pg(const char *secret, size_t len, char out[OTA_SECRET_HASH_PG_LEN])
{
    unsigned char digest[OTA_SECRET_HASH_LEN];
    if (ota__sha256(secret, len, digest) != OTA_OK)
        memset(digest, 0, sizeof digest); /* matches no stored hash: the token is refused */
    out[0] = '\\';
    out[1] = 'x';
    ota_hex_encode(digest, OTA_SECRET_HASH_LEN, out + 2);
}

bool ota__secret_hash_equal(const char *a, const char *b)
{
    size_t len = OTA_SECRET_HASH_PG_LEN - 1;
    if (a == NULL || b == NULL || strlen(a) != len || strlen(b) != len)
        return false;
    return CRYPTO_memcmp(a, b, len) == 0;
}
