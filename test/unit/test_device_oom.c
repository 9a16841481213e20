/*
 * libota-device never aborts on out-of-memory: every allocation, its own
 * (malloc, calloc and realloc are wrapped at link time, -Wl,--wrap) and
 * those of libcurl (curl_global_init_mem), jansson (json_set_alloc_funcs)
 * and OpenSSL (CRYPTO_set_mem_functions), fails from the Nth one on, for
 * every N until the operation succeeds. Each time the call must return
 * (OTA_ERR_NOMEM, or a network error where libcurl reports its own
 * allocation failure as one), free what it took (LeakSanitizer watches in
 * the sanitizer build), and leave the state directory either as it was or
 * fully switched.
 *
 * The budget is per thread, so the HTTP stub's thread allocates freely.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ota/hex.h"
#include "ota/crc32.h"
#include "ota/device.h"
#include "state.h"
#include "test_device_stub.h"
#include "util.h"

/* ---- failing allocators -------------------------------------------------------- */

static __thread long t_left = -1; /* allocations still allowed on this thread; -1: no limit */

static bool allow(void)
{
    if (t_left == 0)
        return false;
    if (t_left > 0)
        t_left--;
    return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    return allow() ? __real_malloc(n) : NULL;
}

void *__wrap_calloc(size_t n, size_t m)
{
    return allow() ? __real_calloc(n, m) : NULL;
}

void *__wrap_realloc(void *p, size_t n)
{
    return allow() ? __real_realloc(p, n) : NULL;
}

static void *lib_malloc(size_t n)
{
    return allow() ? __real_malloc(n) : NULL;
}

static void *lib_calloc(size_t n, size_t m)
{
    return allow() ? __real_calloc(n, m) : NULL;
}

static void *lib_realloc(void *p, size_t n)
{
    return allow() ? __real_realloc(p, n) : NULL;
}

static char *lib_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lib_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static void *ssl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return lib_malloc(n);
}

static void *ssl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return lib_realloc(p, n);
}

static void ssl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

/* ---- the device under test -------------------------------------------------------- */

static const unsigned char SEED[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

#define IMAGE_LEN 3000
#define LIMIT 20000 /* allocations: more than any of the operations needs */

static stub_t *g_stub;
static char g_dir[64];
static unsigned char g_image[IMAGE_LEN];
static ota_manifest_t g_manifest;
static char g_answer[OTA_MANIFEST_JSON_MAX + 256];

static void rm(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    unlink(path);
}

static void provision(void)
{
    ota__state_t st;
    char why[200];
    static const char *const files[] = {"state.json", "slot-b.bin", "download.part", "download.json", NULL};
    for (const char *const *p = files; *p != NULL; p++)
        rm(*p);
    memset(&st, 0, sizeof st);
    snprintf(st.server, sizeof st.server, "%s", stub_url(g_stub));
    strcpy(st.device_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(st.token, "otd_test");
    strcpy(st.serial, "SN-1");
    strcpy(st.model, "bota-pin");
    assert_int_equal(ota_ed25519_public_from_seed(SEED, st.public_key), OTA_OK);
    strcpy(st.version, "1.0.0");
    st.active_slot = 'a';
    st.slots[0].present = true;
    strcpy(st.slots[0].version, "1.0.0");
    assert_int_equal(ota__write_atomic(g_dir, "slot-a.bin", "factory\n", 8, 0644), OTA_OK);
    assert_int_equal(ota__state_save(g_dir, &st, why, sizeof why), OTA_OK);
}

static int group_setup(void **state)
{
    (void)state;
    unsigned char md[32];
    unsigned int n = 0;
    char json[OTA_MANIFEST_JSON_MAX];
    size_t len = 0;
    snprintf(g_dir, sizeof g_dir, "/tmp/ota-oom-test-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    for (size_t i = 0; i < IMAGE_LEN; i++)
        g_image[i] = (unsigned char)(i * 5);
    g_stub = stub_start();
    stub_set_image(g_stub, g_image, IMAGE_LEN);
    ota_manifest_t *m = &g_manifest;
    strcpy(m->assignment_id, "aaaaaaaa-0000-4000-8000-000000000001");
    strcpy(m->device_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4"); /* provision()'s */
    strcpy(m->not_after, "2099-12-31T23:59:59Z");
    strcpy(m->release_id, "11111111-2222-4333-8444-555555555555");
    strcpy(m->model, "bota-pin");
    strcpy(m->version, "1.2.0");
    strcpy(m->artifact, "bin");
    snprintf(m->url, sizeof m->url, "%s/img", stub_url(g_stub));
    strcpy(m->url_expires_at, "2026-11-21T10:15:00Z");
    m->size = IMAGE_LEN;
    m->crc32 = ota_crc32_update(0, g_image, IMAGE_LEN);
    assert_int_equal(EVP_Digest(g_image, IMAGE_LEN, md, &n, EVP_sha256(), NULL), 1);
    ota_hex_encode(md, 32, m->sha256);
    assert_int_equal(ota_manifest_sign(m, SEED), OTA_OK);
    assert_int_equal(ota_manifest_encode(m, json, sizeof json, &len), OTA_OK);
    snprintf(g_answer, sizeof g_answer,
             "{\"server_time\":\"2026-11-21T10:00:00Z\",\"heartbeat_interval_s\":60,\"ota\":%s,\"deferred\":null}",
             json);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stub_stop(g_stub);
    static const char *const files[] = {"state.json",    "slot-a.bin", "slot-b.bin", "download.part",
                                        "download.json", "lock",       NULL};
    for (const char *const *p = files; *p != NULL; p++)
        rm(*p);
    rmdir(g_dir);
    return 0;
}

static void config(ota_device_config_t *cfg)
{
    ota_device_config_init(cfg);
    cfg->state_dir = g_dir;
    cfg->backoff_initial_ms = 1;
    cfg->backoff_max_ms = 1;
    cfg->max_retries = 2;
    cfg->timeout_ms = 5000;
}

static void test_new(void **state)
{
    (void)state;
    ota_device_config_t cfg;
    long n;
    int nomem = 0;
    provision();
    config(&cfg);
    for (n = 0; n < LIMIT; n++) {
        ota_err_t err = OTA_OK;
        t_left = n;
        ota_device_t *dev = ota_device_new(&cfg, &err);
        t_left = -1;
        if (dev != NULL) {
            ota_device_free(dev);
            break;
        }
        if (err != OTA_ERR_NOMEM)
            fail_msg("ota_device_new with %ld allocations: %s", n, ota_strerror(err));
        nomem++;
    }
    assert_true(n < LIMIT && nomem > 0);
}

static void test_heartbeat(void **state)
{
    (void)state;
    ota_device_config_t cfg;
    ota_device_answer_t a;
    long n;
    int nomem = 0;
    provision();
    config(&cfg);
    ota_device_t *dev = ota_device_new(&cfg, NULL);
    assert_non_null(dev);
    for (n = 0; n < LIMIT; n++) {
        stub_clear_answers(g_stub);
        stub_queue_answer(g_stub, g_answer);
        t_left = n;
        ota_err_t rc = ota_device_heartbeat(dev, &a);
        t_left = -1;
        if (rc == OTA_OK) {
            assert_true(a.has_manifest);
            assert_string_equal(a.manifest.sha256, g_manifest.sha256);
            break;
        }
        /* libcurl reports some of its allocation failures as transfer errors. */
        if (rc != OTA_ERR_NOMEM && rc != OTA_ERR_UNAVAILABLE)
            fail_msg("heartbeat with %ld allocations: %s (%s)", n, ota_strerror(rc), ota_device_errmsg(dev));
        nomem += rc == OTA_ERR_NOMEM;
    }
    ota_device_free(dev);
    assert_true(n < LIMIT && nomem > 0);
}

static void test_apply(void **state)
{
    (void)state;
    ota_device_config_t cfg;
    ota_device_result_t r;
    long n;
    int nomem = 0;
    char why[200];
    config(&cfg);
    for (n = 0; n < LIMIT; n++) {
        provision();
        ota_device_t *dev = ota_device_new(&cfg, NULL);
        assert_non_null(dev);
        t_left = n;
        ota_err_t rc = ota_device_apply(dev, &g_manifest, &r);
        t_left = -1;
        ota_device_free(dev);

        /* Whatever happened, the state on disk is whole: the old slot, or the new one. */
        ota__state_t st;
        assert_int_equal(ota__state_load(g_dir, &st, why, sizeof why), OTA_OK);
        bool switched = strcmp(st.version, "1.2.0") == 0 && st.active_slot == 'b';
        bool kept = strcmp(st.version, "1.0.0") == 0 && st.active_slot == 'a';
        assert_true(switched || kept);
        if (rc == OTA_OK && r.outcome == OTA_DEVICE_APPLIED) {
            assert_true(switched);
            break;
        }
        assert_false(switched && r.outcome != OTA_DEVICE_APPLIED);
        if (rc == OTA_ERR_NOMEM)
            nomem++;
        else if (!(rc == OTA_OK && r.outcome == OTA_DEVICE_INCOMPLETE))
            fail_msg("apply with %ld allocations: %s, outcome %s (%s)", n, ota_strerror(rc),
                     ota_device_outcome_name(r.outcome), r.error);
    }
    assert_true(n < LIMIT && nomem > 0);
    print_message("apply: %ld allocations needed; %d earlier runs ended in OTA_ERR_NOMEM\n", n, nomem);
}

int main(void)
{
    /* Before anything allocates with them. */
    if (CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free) != 1) {
        fprintf(stderr, "cannot set OpenSSL's allocators\n");
        return 1;
    }
    json_set_alloc_funcs(lib_malloc, free);
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, lib_malloc, free, lib_realloc, lib_strdup, lib_calloc) != CURLE_OK) {
        fprintf(stderr, "cannot initialize libcurl\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_apply),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
