#ifndef OTA_SERVER_SECRET_H
#define OTA_SERVER_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include "ota/err.h"

/*
 * Bearer secrets (API keys, device tokens). A secret is a prefix naming its
 * kind ("ota_" API key, "otd_" device token) and 32 random bytes in
 * base64url. Only its SHA-256 is stored: the secret carries 256 bits of
 * entropy, so a slow password hash would add cost and no safety.
 */

#define OTA_SECRET_RANDOM_BYTES 32
#define OTA_SECRET_HASH_LEN 32
/** Room for any secret this module makes, with its NUL. */
#define OTA_SECRET_MAX 64
/** Room for a hash as PostgreSQL bytea hex input ("\x" + 64 hex digits + NUL). */
#define OTA_SECRET_HASH_PG_LEN (2 + 2 * OTA_SECRET_HASH_LEN + 1)

#define OTA_API_KEY_PREFIX "ota_"
#define OTA_DEVICE_TOKEN_PREFIX "otd_"
/** Longest name of an API key, in bytes (the CHECK on api_keys.name). */
#define OTA_API_KEY_NAME_MAX 200

/** Makes a new secret `prefix` + base64url(random) into `out` (OTA_SECRET_MAX bytes). */
ota_err_t ota__secret_new(const char *prefix, char out[OTA_SECRET_MAX]);

/** SHA-256 of `len` bytes of `secret`, written as "\x<hex>" (bytea input syntax) into `out`. */
void ota__secret_hash_pg(const char *secret, size_t len, char out[OTA_SECRET_HASH_PG_LEN]);

/**
 * Compares two hashes in PostgreSQL bytea hex form in constant time
 * (CRYPTO_memcmp), so the time taken says nothing of where they differ.
 * Strings of other lengths are unequal.
 */
bool ota__secret_hash_equal(const char *a, const char *b);

#endif
