#include "test_delta_maker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <zstd.h>

void test_make_delta(const unsigned char *old, size_t old_len, const unsigned char *new, size_t new_len, int checksum,
                     unsigned char **out, size_t *out_len)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    unsigned wlog = 10;
    while ((1ull << wlog) < old_len + new_len)
        wlog++;
    size_t cap = ZSTD_compressBound(new_len);
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, (int)wlog)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum)));
    if (old_len > 0)
        assert_false(ZSTD_isError(ZSTD_CCtx_refPrefix(c, old, old_len)));
    size_t n = ZSTD_compress2(c, buf, cap, new, new_len);
    assert_false(ZSTD_isError(n));
    ZSTD_freeCCtx(c);
    *out = buf;
    *out_len = n;
}
