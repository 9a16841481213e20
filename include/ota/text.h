#ifndef OTA_TEXT_H
#define OTA_TEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "ota/err.h"

/**
 * A text written piece by piece into a capped buffer: the caller's fixed
 * array, or a heap buffer that grows up to a most. The first write that does
 * not fit (or cannot allocate) sets `err` and is not stored; every later
 * write is ignored too, so the caller checks `err` once, at the end. `len`
 * keeps counting every write all the same: after OTA_ERR_TOO_LARGE it is the
 * length the whole text needs (measuring is a fixed text of no room). While
 * `err` is OTA_OK the text is NUL-terminated at `len` (once anything was
 * written, for a heap text). Allocates only in a heap text, never aborts.
 * Not thread-safe: one writer at a time.
 */
typedef struct ota_text {
    char *base;    /**< the bytes: the caller's array, or the heap text's (NULL until its first write) */
    size_t len;    /**< bytes written, stored or not (without the NUL) */
    size_t cap;    /**< bytes of `base`, the NUL included */
    size_t max;    /**< a heap text's most bytes (without the NUL); 0 for a fixed text */
    ota_err_t err; /**< OTA_OK, or the first failure: OTA_ERR_TOO_LARGE or OTA_ERR_NOMEM */
} ota_text_t;

/**
 * Starts `t` on the caller's `buf` of `cap` bytes, which stays the caller's (nothing to free). Holds up to
 * `cap` - 1 bytes and the NUL; more is OTA_ERR_TOO_LARGE. With `cap` 0 (`buf` may then be NULL) it only
 * measures: `err` is OTA_ERR_TOO_LARGE from the start and `len` counts.
 */
void ota_text_fixed(ota_text_t *t, char *buf, size_t cap);

/**
 * Starts `t` as an empty heap text of at most `max` bytes (without the NUL): more is OTA_ERR_TOO_LARGE, a failed
 * allocation OTA_ERR_NOMEM. Its buffer belongs to `t` until ota_text_free; a caller may take `base` instead
 * (then it frees `base` itself and does not call ota_text_free).
 */
void ota_text_heap(ota_text_t *t, size_t max);

/** Frees a heap text's buffer (a fixed text's is left alone) and leaves `t` an empty text of the same kind. */
void ota_text_free(ota_text_t *t);

/** Empties `t` for reuse, keeping its buffer, and clears `err`. */
void ota_text_reset(ota_text_t *t);

/** Appends `n` bytes at `p` when no failure came before and the room suffices (or, for a heap text, grows). */
static inline void ota_text_put(ota_text_t *t, const void *p, size_t n);

/** Appends the NUL-terminated `s` (without its NUL), as ota_text_put. */
static inline void ota_text_puts(ota_text_t *t, const char *s);

/** Appends `v` in decimal. */
void ota_text_put_u64(ota_text_t *t, uint64_t v);

/** Appends what printf would write for `fmt`; a vsnprintf failure (an encoding error) is ignored. */
void ota_text_printf(ota_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** ota_text_printf with a va_list. */
void ota_text_vprintf(ota_text_t *t, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/** The slow path of ota_text_put: growing, failures, counting after them. Not for callers. */
void ota__text_put_slow(ota_text_t *t, const void *p, size_t n);

/* Inline: the manifest encoder and the S3 signer append hundreds of short runs per heartbeat. */
static inline void ota_text_put(ota_text_t *t, const void *p, size_t n)
{
    if (t->err == OTA_OK && n < t->cap - t->len) {
        memcpy(t->base + t->len, p, n);
        t->len += n;
        t->base[t->len] = '\0';
        return;
    }
    ota__text_put_slow(t, p, n);
}

static inline void ota_text_puts(ota_text_t *t, const char *s)
{
    ota_text_put(t, s, strlen(s));
}

#endif
