/*
 * libFuzzer driver for the manifest codec. The input is JSON text for
 * ota_manifest_decode. A manifest that decodes must validate, encode within
 * OTA_MANIFEST_JSON_MAX, decode back to the same struct, and have a canonical
 * form within OTA_MANIFEST_CANONICAL_MAX that jansson reads back as the eleven
 * signed members (device_id, not_after and downgrade among them), and a
 * twelfth, the delta's three signed members, when it has a delta.
 *
 * With memory to spare no input may come out OTA_ERR_NOMEM: the decoder
 * tells memory from a bad text by how jansson reports its failure, and no
 * bad text may look like the one failure of memory that jansson reports as a
 * syntax error. Every input is also decoded with no memory for jansson at all: it
 * cannot start, so NOMEM unless the text is refused before it runs. Memory
 * is not cut off half-way through a parse: jansson 2.14's lexer then asserts
 * (akheron/jansson#362), which is jansson's bug, not the decoder's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ota/manifest.h"

static long allocs_left;

#include <stdio.h>

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_manifest.c:%d: check failed\n", line);
        abort();
    }
}

static void *failing_malloc(size_t size)
{
    if (allocs_left <= 0)
        return NULL;
    allocs_left--;
    return malloc(size);
}

static void check_string_member(json_t *obj, const char *key, const char *value)
{
    json_t *v = json_object_get(obj, key);
    check(json_is_string(v) && strcmp(json_string_value(v), value) == 0);
}

static void check_integer_member(json_t *obj, const char *key, uint64_t value)
{
    json_t *v = json_object_get(obj, key);
    check(json_is_integer(v) && (uint64_t)json_integer_value(v) == value);
}

/* The canonical form's "delta": absent without one; with one, exactly its three signed members. */
static void check_delta(json_t *obj, const ota_manifest_t *m)
{
    json_t *delta = json_object_get(obj, "delta");
    if (!m->has_delta) {
        check(delta == NULL);
        return;
    }
    check(json_is_object(delta) && json_object_size(delta) == 3);
    check_string_member(delta, "from_sha256", m->delta.from_sha256);
    check_string_member(delta, "sha256", m->delta.sha256);
    check_integer_member(delta, "size", m->delta.size);
}

static void check_canonical(const ota_manifest_t *m)
{
    char buf[OTA_MANIFEST_CANONICAL_MAX];
    size_t len = 0, need = 0;
    json_t *obj;

    check(ota_manifest_canonical(m, buf, sizeof buf, &len) == OTA_OK);
    check(len < sizeof buf && strlen(buf) == len);
    check(memchr(buf, ' ', len) == NULL && memchr(buf, '\n', len) == NULL);
    check(ota_manifest_canonical(m, buf, len, &need) == OTA_ERR_TOO_LARGE && need == len);
    check(ota_manifest_canonical(m, buf, sizeof buf, &len) == OTA_OK);
    obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    check(obj != NULL && json_object_size(obj) == (m->has_delta ? 12u : 11u));
    check_delta(obj, m);
    check_string_member(obj, "artifact", m->artifact);
    check_string_member(obj, "assignment_id", m->assignment_id);
    check_integer_member(obj, "crc32", m->crc32);
    check_string_member(obj, "device_id", m->device_id);
    check(json_is_boolean(json_object_get(obj, "downgrade")) &&
          json_is_true(json_object_get(obj, "downgrade")) == m->downgrade);
    check_string_member(obj, "model", m->model);
    check_string_member(obj, "not_after", m->not_after);
    check_string_member(obj, "release_id", m->release_id);
    check_string_member(obj, "sha256", m->sha256);
    check_integer_member(obj, "size", m->size);
    check_string_member(obj, "version", m->version);
    json_decref(obj);
}

static void check_round_trip(const ota_manifest_t *m)
{
    static char buf[OTA_MANIFEST_JSON_MAX];
    ota_manifest_t back;
    size_t len = 0;

    check(ota_manifest_validate(m) == OTA_OK);
    check(ota_manifest_encode(m, buf, sizeof buf, &len) == OTA_OK);
    check(len < sizeof buf && strlen(buf) == len);
    check(ota_manifest_decode(buf, len, &back) == OTA_OK);
    check(memcmp(&back, m, sizeof back) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of its own, so ASan sees any read past the end. */
    char *json = malloc(size > 0 ? size : 1);
    ota_manifest_t m, again;
    ota_err_t rc, rc2;

    check(json != NULL);
    if (size > 0)
        memcpy(json, data, size);
    memset(&m, 0, sizeof m);
    rc = ota_manifest_decode(json, size, &m);
    check(rc == OTA_OK || rc == OTA_ERR_INVALID || rc == OTA_ERR_TOO_LARGE);
    if (rc == OTA_OK) {
        check_round_trip(&m);
        check_canonical(&m);
    }

    json_set_alloc_funcs(failing_malloc, free);
    allocs_left = 0;
    rc2 = ota_manifest_decode(json, size, &again);
    json_set_alloc_funcs(malloc, free);
    if (size > OTA_MANIFEST_DECODE_MAX)
        check(rc2 == OTA_ERR_TOO_LARGE);
    else if (memchr(json, '\0', size) != NULL)
        check(rc2 == OTA_ERR_INVALID);
    else
        check(rc2 == OTA_ERR_NOMEM);

    free(json);
    return 0;
}
