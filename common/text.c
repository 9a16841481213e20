#include "ota/text.h"

#include <stdio.h>
#include <stdlib.h>

/* A heap text's first buffer: most texts (answers, metrics) fit in a few doublings of it. */
#define HEAP_FIRST_CAP 1024

void ota_text_fixed(ota_text_t *t, char *buf, size_t cap)
{
    *t = (ota_text_t){.base = buf, .cap = cap, .err = cap == 0 ? OTA_ERR_TOO_LARGE : OTA_OK};
    if (cap > 0)
        buf[0] = '\0';
}

void ota_text_heap(ota_text_t *t, size_t max)
{
    *t = (ota_text_t){.max = max < SIZE_MAX ? max : SIZE_MAX - 1}; /* max + 1, the NUL's room, must not wrap */
}

void ota_text_free(ota_text_t *t)
{
    if (t->max == 0) {
        ota_text_fixed(t, t->base, t->cap);
        return;
    }
    free(t->base);
    ota_text_heap(t, t->max);
}

void ota_text_reset(ota_text_t *t)
{
    t->len = 0;
    t->err = t->max == 0 && t->cap == 0 ? OTA_ERR_TOO_LARGE : OTA_OK;
    if (t->cap > 0)
        t->base[0] = '\0';
}

/* Makes room in a heap text for `need` bytes and the NUL; false (and `err` set) when it cannot. */
static int grow(ota_text_t *t, size_t need)
{
    if (t->max == 0 || need > t->max) {
        t->err = OTA_ERR_TOO_LARGE;
        return 0;
    }
    size_t cap = t->cap > 0 ? t->cap : HEAP_FIRST_CAP;
    while (cap <= need && cap <= t->max / 2)
        cap *= 2;
    if (cap <= need || cap > t->max + 1)
        cap = t->max + 1; /* room for the most and its NUL, never more */
    char *bigger = realloc(t->base, cap);
    if (bigger == NULL) {
        t->err = OTA_ERR_NOMEM;
        return 0;
    }
    t->base = bigger;
    t->cap = cap;
    return 1;
}

void ota__text_put_slow(ota_text_t *t, const void *p, size_t n)
{
    size_t need = t->len + n;
    if (need < t->len) /* the count itself would wrap: nothing this large is ever stored */
        need = SIZE_MAX;
    if (t->err == OTA_OK && n > 0 && (need < t->cap || grow(t, need))) {
        memcpy(t->base + t->len, p, n);
        t->base[need] = '\0';
    }
    t->len = need;
}

void ota_text_put_u64(ota_text_t *t, uint64_t v)
{
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    ota_text_put(t, digits + i, sizeof digits - i);
}

void ota_text_vprintf(ota_text_t *t, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    size_t room = t->err == OTA_OK && t->cap > t->len ? t->cap - t->len : 0;
    int n = vsnprintf(room > 0 ? t->base + t->len : NULL, room, fmt, ap);
    if (n >= 0 && (size_t)n < room) {
        t->len += (size_t)n;
    } else if (n >= 0) {
        size_t need = t->len + (size_t)n;
        if (room > 0)
            t->base[t->len] = '\0'; /* the cut attempt is not part of the text */
        if (t->err == OTA_OK && grow(t, need))
            vsnprintf(t->base + t->len, t->cap - t->len, fmt, again);
        t->len = need;
    } else if (room > 0) {
        t->base[t->len] = '\0'; /* an encoding error: ignored, whatever vsnprintf left is dropped */
    }
    va_end(again);
}

void ota_text_printf(ota_text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ota_text_vprintf(t, fmt, ap);
    va_end(ap);
}
