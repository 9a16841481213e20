/*
 * libFuzzer driver for the paging cursors. The first input byte picks the
 * mode: even, the rest is a cursor as a client sends it (?after=); odd, the
 * rest is "<key>,<id>" for the encoder. A cursor that decodes must encode
 * again and decode to the same key and id, and when its id was lower case
 * the encoding must be the very cursor given (base64url is strict, so every
 * cursor has one spelling). A key and id that encode must decode back.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/cursor.h"
#include "ota/base64.h"

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_cursor.c:%d: check failed\n", line);
        abort();
    }
}

static void check_id(const char *id)
{
    check(strlen(id) == 36);
    for (size_t i = 0; i < 36; i++)
        check(id[i] == '-' || isdigit((unsigned char)id[i]) || (id[i] >= 'a' && id[i] <= 'f'));
}

static void check_decoded(const char *s, size_t len, const char *ts, const char *id)
{
    char out[OTA_CURSOR_MAX], ts2[OTA_CURSOR_TS_MAX], id2[37];
    unsigned char plain[OTA_CURSOR_MAX];
    size_t plain_len = 0, ts_len = strlen(ts);

    check(ts_len > 0 && ts_len < OTA_CURSOR_TS_MAX);
    check_id(id);
    check(ota__cursor_encode(ts, id, out));
    check(strlen(out) < OTA_CURSOR_MAX);
    check(ota__cursor_decode(out, strlen(out), ts2, id2) && strcmp(ts, ts2) == 0 && strcmp(id, id2) == 0);

    check(ota_base64url_decode(s, len, plain, sizeof plain, &plain_len) == OTA_OK);
    check(plain_len == ts_len + 1 + 36);
    if (memcmp(plain + ts_len + 1, id, 36) == 0)
        check(strlen(out) == len && memcmp(out, s, len) == 0);
}

static void encode_mode(const char *in, size_t len)
{
    char ts[OTA_CURSOR_TS_MAX + 64], id[64], out[OTA_CURSOR_MAX], ts2[OTA_CURSOR_TS_MAX], id2[37];
    const char *comma = memchr(in, ',', len);
    if (comma == NULL || (size_t)(comma - in) >= sizeof ts || len - (size_t)(comma - in) - 1 >= sizeof id)
        return;
    size_t ts_len = (size_t)(comma - in), id_len = len - ts_len - 1;
    memcpy(ts, in, ts_len);
    ts[ts_len] = '\0';
    memcpy(id, comma + 1, id_len);
    id[id_len] = '\0';
    if (!ota__cursor_encode(ts, id, out))
        return;
    check(ota__cursor_decode(out, strlen(out), ts2, id2));
    check(strcmp(ts, ts2) == 0 && strlen(id) == 36);
    for (size_t i = 0; i < 36; i++)
        check(tolower((unsigned char)id[i]) == id2[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ts[OTA_CURSOR_TS_MAX], id[37];
    if (size == 0)
        return 0;
    int encode = data[0] & 1;
    data++, size--;
    /* A copy of its own, so ASan sees any read past the end. */
    char *s = malloc(size > 0 ? size : 1);
    check(s != NULL);
    if (size > 0)
        memcpy(s, data, size);
    if (encode)
        encode_mode(s, size);
    else if (ota__cursor_decode(s, size, ts, id))
        check_decoded(s, size, ts, id);
    free(s);
    return 0;
}
