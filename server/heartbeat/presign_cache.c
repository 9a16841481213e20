#include "heartbeat/presign_cache.h"

#include <stdint.h>
#include <string.h>

static size_t slot_of(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *key != '\0'; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h % OTA_PRESIGN_CACHE_SLOTS;
}

static ota_err_t copy_out(const char *from, char *url, size_t cap)
{
    size_t len = strlen(from);
    if (len >= cap)
        return OTA_ERR_TOO_LARGE;
    memcpy(url, from, len + 1);
    return OTA_OK;
}

ota_err_t ota__presign_cache_get(ota_presign_cache_t *cache, ota_presign_fn presign, void *arg, const char *key,
                                 time_t now, int ttl, char *url, size_t cap)
{
    if (strlen(key) > OTA_PRESIGN_CACHE_KEY_MAX)
        return presign(arg, key, now, ttl, url, cap);
    ota_presign_cache_slot_t *slot = &cache->slots[slot_of(key)];
    if (slot->at == now && slot->ttl == ttl && strcmp(slot->key, key) == 0)
        return copy_out(slot->url, url, cap);
    ota_err_t rc = presign(arg, key, now, ttl, slot->url, sizeof slot->url);
    if (rc != OTA_OK) {
        slot->at = 0;
        return rc;
    }
    slot->at = now;
    slot->ttl = ttl;
    memcpy(slot->key, key, strlen(key) + 1);
    return copy_out(slot->url, url, cap);
}
