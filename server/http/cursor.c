#include "http/cursor.h"

#include <string.h>

#include "core/ids.h"
#include "ota/base64.h"

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ": fixed width, as ota_ts_us() in SQL writes it. */
static bool timestamp_valid(const char *ts, size_t len)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (len != sizeof shape - 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != shape[i])
            return false;
    }
    return true;
}

/* A number from 0 to 32767 (a wave: SQL smallint) without leading zeros. */
static bool number_valid(const char *s, size_t len)
{
    long value = 0;
    if (len < 1 || len > 5 || (s[0] == '0' && len > 1))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        value = value * 10 + (s[i] - '0');
    }
    return value <= 32767;
}

static bool key_valid(const char *key, size_t len)
{
    return timestamp_valid(key, len) || number_valid(key, len);
}

bool ota__cursor_encode(const char *ts, const char *id, char out[OTA_CURSOR_MAX])
{
    char plain[OTA_CURSOR_TS_MAX + 1 + 37], checked_id[OTA_UUID_LEN + 1];
    size_t ts_len = strlen(ts), id_len = strlen(id);
    if (!key_valid(ts, ts_len) || !ota__uuid_parse(id, id_len, checked_id))
        return false;
    id = checked_id;
    memcpy(plain, ts, ts_len);
    plain[ts_len] = ',';
    memcpy(plain + ts_len + 1, id, id_len);
    size_t plain_len = ts_len + 1 + id_len;
    if (ota_base64url_encoded_len(plain_len) + 1 > OTA_CURSOR_MAX)
        return false;
    ota_base64url_encode(plain, plain_len, out);
    return true;
}

bool ota__cursor_decode(const char *s, size_t len, char ts[OTA_CURSOR_TS_MAX], char id[37])
{
    unsigned char plain[OTA_CURSOR_MAX];
    size_t plain_len = 0;
    if (len == 0 || len >= OTA_CURSOR_MAX)
        return false;
    if (ota_base64url_decode(s, len, plain, sizeof plain, &plain_len) != OTA_OK)
        return false;
    const unsigned char *comma = memchr(plain, ',', plain_len);
    if (comma == NULL)
        return false;
    size_t ts_len = (size_t)(comma - plain);
    if (!key_valid((const char *)plain, ts_len))
        return false;
    if (!ota__uuid_parse((const char *)comma + 1, plain_len - ts_len - 1, id))
        return false;
    memcpy(ts, plain, ts_len);
    ts[ts_len] = '\0';
    return true;
}
