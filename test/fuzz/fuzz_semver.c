/*
 * libFuzzer driver for the semver parser and its precedence order. The
 * input is up to three versions separated by '\n'. A version that parses
 * must parse again from its normalized text to the same version, compare
 * equal to itself and to itself without build metadata; a refused one
 * leaves the output untouched. The order must be antisymmetric and
 * transitive over the versions given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota/semver.h"

#define check(ok) check_at((ok), __LINE__)
#define MAX_VERSIONS 3

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_semver.c:%d: check failed\n", line);
        abort();
    }
}

static int same(const ota_semver_t *a, const ota_semver_t *b)
{
    return a->major == b->major && a->minor == b->minor && a->patch == b->patch && strcmp(a->text, b->text) == 0 &&
           a->pre_off == b->pre_off && a->pre_len == b->pre_len && a->build_off == b->build_off &&
           a->build_len == b->build_len;
}

static void check_parsed(const char *s, size_t len, const ota_semver_t *v)
{
    size_t text_len = strlen(v->text);
    ota_semver_t again, core;

    check(text_len <= OTA_SEMVER_MAX && (text_len == len || (text_len + 1 == len && (s[0] == 'v' || s[0] == 'V'))));
    check(memcmp(v->text, s + (len - text_len), text_len) == 0);
    check(v->major <= INT64_MAX && v->minor <= INT64_MAX && v->patch <= INT64_MAX);
    check(v->pre_len == 0 || (v->pre_off + v->pre_len <= text_len && v->text[v->pre_off - 1] == '-'));
    check(v->build_len == 0 || (v->build_off + v->build_len == text_len && v->text[v->build_off - 1] == '+'));
    check(ota_semver_parse(v->text, text_len, &again) == OTA_OK && same(&again, v));
    check(ota_semver_compare(v, v) == 0);
    /* Build metadata does not count. */
    if (v->build_len > 0) {
        check(ota_semver_parse(v->text, v->build_off - 1, &core) == OTA_OK && core.build_len == 0);
        check(ota_semver_compare(v, &core) == 0 && ota_semver_compare(&core, v) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ota_semver_t v[MAX_VERSIONS];
    size_t n = 0;

    while (n < MAX_VERSIONS) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t len = nl != NULL ? (size_t)(nl - data) : size;
        /* A copy of its own, so ASan sees any read past the end. */
        char *s = malloc(len > 0 ? len : 1);
        ota_semver_t untouched;
        check(s != NULL);
        if (len > 0)
            memcpy(s, data, len);
        memset(&v[n], 0xa5, sizeof v[n]);
        memset(&untouched, 0xa5, sizeof untouched);
        if (ota_semver_parse(s, len, &v[n]) == OTA_OK) {
            check_parsed(s, len, &v[n]);
            n++;
        } else {
            check(memcmp(&v[n], &untouched, sizeof untouched) == 0);
        }
        free(s);
        if (nl == NULL)
            break;
        size -= len + 1;
        data = nl + 1;
    }

    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = ota_semver_compare(&v[i], &v[j]);
            check(c >= -1 && c <= 1 && c == -ota_semver_compare(&v[j], &v[i]));
            for (size_t k = 0; k < n; k++) {
                if (c <= 0 && ota_semver_compare(&v[j], &v[k]) <= 0)
                    check(ota_semver_compare(&v[i], &v[k]) <= 0);
            }
        }
    }
    return 0;
}
