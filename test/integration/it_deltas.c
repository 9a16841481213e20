/*
 * Integration: deltas between releases (releases/delta_builder.h, GET /v1/releases/{id}/deltas) against the
 * real ota-server on a throwaway PostgreSQL cluster.
 *
 * One source, two programs: it_deltas_fs (the fs backend) and it_deltas_s3 (OTA_IT_S3 defined: a real s3rver
 * started in the group setup). The images are slices of the ota-server binary (realistic bytes: code, tables,
 * strings), changed a little; the test patches the old image with the stored delta, as a device does (libzstd's
 * refPrefix), and compares the result with the new image.
 *
 * Objects are looked at where each backend keeps them: the fs backend's OTA_STORAGE_DIR
 * (<cluster dir>/blobs-<pg port>) or, for S3, over s3rver's HTTP API (it lets unsigned requests through).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "checks.h"

#ifdef OTA_IT_S3
static h_s3_t g_s3;
#define S3_BUCKET "ota-deltas"
#endif

/* How long a build may take to show up as done: a few hundred KiB take well under a second. */
#define BUILD_WAIT_MS 15000
#define IMAGE_LEN (320 * 1024)

static unsigned char *g_binary; /* the ota-server binary: the source of realistic bytes */
static size_t g_binary_len;

/* ---- images and releases ------------------------------------------------------------------------ */

/* `len` bytes of the ota-server binary from `offset`. */
static unsigned char *binary_slice(size_t offset, size_t len)
{
    CHECK(offset + len <= g_binary_len, "the server binary has %zu bytes, fewer than %zu", g_binary_len, offset + len);
    unsigned char *p = malloc(len);
    CHECK(p != NULL, "out of memory");
    memcpy(p, g_binary + offset, len);
    return p;
}

/* POSTs a release of `model` / `version` with `bin` as its image; its id goes to `id`. */
static void make_release(const char *model, const char *version, const unsigned char *bin, size_t len, char id[40])
{
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    CHECK(b64 != NULL, "out of memory");
    EVP_EncodeBlock((unsigned char *)b64, bin, (int)len);
    h_resp_t r = {0};
    h_json(&h_g_srv, "POST", "/v1/releases", h_g_srv.admin_key, &r, "{s:s, s:s, s:{s:s}}", "version", version, "model",
           model, "bin", "blob", b64);
    free(b64);
    EXPECT_STATUS(&r, 201);
    snprintf(id, 40, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

/* GET /v1/releases/{id}/deltas with `key`: the items array (a new reference). */
static json_t *deltas_with(const char *release_id, const char *key)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/releases/%s/deltas", release_id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    CHECK(json_is_array(items), "items: %s", BODY(&r));
    json_incref(items);
    h_resp_free(&r);
    return items;
}

/* The deltas of `release_id` once `count` of them exist and none is building (polls). */
static json_t *deltas_built(const char *release_id, size_t count)
{
    for (long waited = 0;; waited += 100) {
        json_t *items = deltas_with(release_id, h_g_srv.admin_key);
        size_t i, building = 0;
        json_t *d;
        json_array_foreach(items, i, d) building += h_streq(h_jstr(d, "status"), "building");
        if (json_array_size(items) == count && building == 0)
            return items;
        char *text = json_dumps(items, JSON_COMPACT);
        json_decref(items);
        if (waited >= BUILD_WAIT_MS) {
            CHECK(false, "release %s: expected %zu built deltas, have %s", release_id, count, text);
        }
        free(text);
        h_sleep_ms(100);
    }
}

/* The item of `items` made from `from_id`, checked to have `status`. */
static json_t *item_from(json_t *items, const char *from_id, const char *status)
{
    size_t i;
    json_t *d;
    json_array_foreach(items, i, d)
    {
        if (h_streq(h_jstr(d, "from_release_id"), from_id)) {
            CHECK(h_streq(h_jstr(d, "status"), status), "delta from %s: expected %s: %s", from_id, status,
                  json_dumps(d, JSON_COMPACT));
            return d;
        }
    }
    CHECK(false, "no delta from %s in %s", from_id, json_dumps(items, JSON_COMPACT));
    return NULL;
}

/* ---- objects in storage ------------------------------------------------------------------------- */

#ifdef OTA_IT_S3
static size_t on_bytes(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* An unsigned request to s3rver (which lets them through) for the object at `key`: its status. */
static long s3_request(const char *method, const char *key, const void *body, size_t len)
{
    char url[512];
    snprintf(url, sizeof url, "%s/%s/%s", g_s3.endpoint, g_s3.bucket, key);
    CURL *c = curl_easy_init();
    CHECK(c != NULL, "curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_bytes);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}
#else
static void blob_path(const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs-%d/%s", h_g_pg.dir, h_g_pg.port, key);
}
#endif

/* The object at `key` (malloc'ed into *out), or false when there is none. */
static bool object_get(const char *key, unsigned char **out, size_t *len)
{
#ifdef OTA_IT_S3
    char url[512];
    snprintf(url, sizeof url, "%s/%s/%s", g_s3.endpoint, g_s3.bucket, key);
    h_buf_t b;
    long status = h_download(url, &b);
    if (status != 200) {
        free(b.p);
        return false;
    }
    *out = b.p;
    *len = b.len;
    return true;
#else
    char path[600];
    blob_path(key, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    CHECK(fseek(f, 0, SEEK_END) == 0, "seek %s", path);
    long n = ftell(f);
    rewind(f);
    *out = malloc((size_t)n + 1);
    CHECK(*out != NULL && fread(*out, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    fclose(f);
    *len = (size_t)n;
    return true;
#endif
}

static bool object_exists(const char *key)
{
    unsigned char *p = NULL;
    size_t len = 0;
    bool found = object_get(key, &p, &len);
    free(p);
    return found;
}

/* Removes the object at `key` behind the server's back. */
static void object_remove(const char *key)
{
#ifdef OTA_IT_S3
    long status = s3_request("DELETE", key, NULL, 0);
    CHECK(status == 204 || status == 200, "DELETE %s from s3rver: %ld", key, status);
#else
    char path[600];
    blob_path(key, path, sizeof path);
    CHECK(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
#endif
    CHECK(!object_exists(key), "%s is still there", key);
}

/* Puts `len` bytes at `key` behind the server's back. */
static void object_put(const char *key, const void *data, size_t len)
{
#ifdef OTA_IT_S3
    long status = s3_request("PUT", key, data, len);
    CHECK(status == 200, "PUT %s to s3rver: %ld", key, status);
#else
    char path[600];
    blob_path(key, path, sizeof path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
    *slash = '/';
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL && fwrite(data, 1, len, f) == len && fclose(f) == 0, "write %s", path);
#endif
}

/* Applies the delta to `from` as a device does; the result must be `to`. */
static void expect_patch(const unsigned char *from, size_t from_len, const unsigned char *delta, size_t delta_len,
                         const unsigned char *to, size_t to_len)
{
    unsigned char *out = malloc(to_len + 1);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    CHECK(out != NULL && dctx != NULL, "out of memory");
    CHECK(ZSTD_getFrameContentSize(delta, delta_len) == to_len, "the delta does not declare the new image's size");
    CHECK(!ZSTD_isError(ZSTD_DCtx_refPrefix(dctx, from, from_len)), "refPrefix");
    size_t n = ZSTD_decompressDCtx(dctx, out, to_len + 1, delta, delta_len);
    CHECK(!ZSTD_isError(n), "patching: %s", ZSTD_getErrorName(n));
    CHECK(n == to_len && memcmp(out, to, to_len) == 0, "patching gives %zu bytes that are not the new image", n);
    ZSTD_freeDCtx(dctx);
    free(out);
}

/* The environment of the program's servers: the backend's (S3), then `extra` (NULL-terminated). */
static void server_env(const char **env, size_t cap, const char *const *extra)
{
    const char *const *lists[] = {
#ifdef OTA_IT_S3
        h_s3_env(&g_s3),
#endif
        extra};
    size_t n = 0;
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        for (const char *const *p = lists[l]; *p != NULL && n + 1 < cap; p++)
            env[n++] = *p;
    env[n] = NULL;
}

/* ---- tests -------------------------------------------------------------------------------------- */

/*
 * A small change: the delta is ready, small, stored, listed to any key, and patches A into B; deleting B removes
 * its delta object.
 */
static void test_small_change_ready(void **state)
{
    (void)state;
    char model[64], a_id[40], b_id[40], key[200];
    h_make_model(model, sizeof model, "delta small change");
    unsigned char *a = binary_slice(0, IMAGE_LEN), *b = binary_slice(0, IMAGE_LEN);
    memcpy(b + IMAGE_LEN / 3, "a changed string, as a rebuild makes", 36);
    memset(b + 2 * IMAGE_LEN / 3, 0x90, 48);
    long long ready_before = h_metric("ota_delta_builds_total{status=\"ready\"}");
    make_release(model, "1.0.0", a, IMAGE_LEN, a_id);
    make_release(model, "1.1.0", b, IMAGE_LEN, b_id);

    json_t *items = deltas_built(b_id, 1);
    json_t *d = item_from(items, a_id, "ready");
    CHECK(h_streq(h_jstr(d, "from_version"), "1.0.0"), "from_version: %s", json_dumps(d, 0));
    json_int_t size = h_jint(d, "size");
    CHECK(size > 0 && size < IMAGE_LEN * 6 / 10, "size %lld of %d", (long long)size, IMAGE_LEN);
    CHECK(h_jnull(d, "error") && h_jstr(d, "finished_at") != NULL, "%s", json_dumps(d, 0));

    snprintf(key, sizeof key, "releases/%s/delta-%s", b_id, a_id);
    unsigned char *delta = NULL;
    size_t delta_len = 0;
    CHECK(object_get(key, &delta, &delta_len), "no object at %s", key);
    char sum[65];
    h_sha256_hex(delta, delta_len, sum);
    CHECK((json_int_t)delta_len == size && h_streq(h_jstr(d, "sha256"), sum), "the stored delta is not the listed one");
    expect_patch(a, IMAGE_LEN, delta, delta_len, b, IMAGE_LEN);
    free(delta);
    json_decref(items);
    CHECK(h_metric("ota_delta_builds_total{status=\"ready\"}") == ready_before + 1, "ready builds counted");

    /* A has no older release: nothing into it. Any API key may look. */
    char viewer[128];
    h_cli_api_key("viewer", viewer);
    items = deltas_with(a_id, viewer);
    CHECK(json_array_size(items) == 0, "deltas into A: %s", json_dumps(items, 0));
    json_decref(items);
    items = deltas_with(b_id, viewer);
    CHECK(json_array_size(items) == 1, "the viewer sees B's delta");
    json_decref(items);

    /* Deleting B removes its delta object (after the rows, on a job thread). */
    char path[128];
    snprintf(path, sizeof path, "/v1/releases/%s", b_id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "DELETE", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_STATUS(&r, 204);
    h_resp_free(&r);
    for (long waited = 0; object_exists(key) && waited < 5000; waited += 50)
        h_sleep_ms(50);
    CHECK(!object_exists(key), "%s outlived its release", key);
    free(a);
    free(b);
}

/* Random bytes share nothing with A: the delta is as large as the image, not worth offering, and not stored. */
static void test_random_not_worth_it(void **state)
{
    (void)state;
    char model[64], a_id[40], c_id[40], key[200];
    h_make_model(model, sizeof model, "delta random");
    unsigned char *a = binary_slice(0, IMAGE_LEN), *c = h_random_bytes(IMAGE_LEN);
    make_release(model, "1.0.0", a, IMAGE_LEN, a_id);
    make_release(model, "2.0.0", c, IMAGE_LEN, c_id);
    json_t *items = deltas_built(c_id, 1);
    json_t *d = item_from(items, a_id, "not_worth_it");
    CHECK(h_jint(d, "size") >= IMAGE_LEN * 6 / 10 && h_jstr(d, "sha256") != NULL, "%s", json_dumps(d, 0));
    snprintf(key, sizeof key, "releases/%s/delta-%s", c_id, a_id);
    CHECK(!object_exists(key), "a delta not worth it was stored");
    CHECK(h_metric("ota_delta_builds_total{status=\"not_worth_it\"}") >= 1, "not_worth_it counted");
    json_decref(items);
    free(a);
    free(c);
}

/*
 * From the model's three newest releases older than the new one, by semver precedence (a pre-release is below its
 * release), listed newest first.
 */
static void test_three_newest_older(void **state)
{
    (void)state;
    static const char *const VERSIONS[] = {"1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.2", "2.0.0-rc.1", "3.0.0"};
    char model[64], ids[6][40], new_id[40];
    h_make_model(model, sizeof model, "delta three newest");
    size_t len = 32 * 1024;
    for (int i = 0; i < 6; i++) {
        unsigned char *img = binary_slice((size_t)i * 1024, len);
        make_release(model, VERSIONS[i], img, len, ids[i]);
        free(img);
    }
    unsigned char *img = binary_slice(8 * 1024, len);
    make_release(model, "2.0.0", img, len, new_id);
    free(img);
    json_t *items = deltas_built(new_id, 3);
    static const int WANT[] = {3, 4, 1}; /* 2.0.0-rc.2, 2.0.0-rc.1, 1.10.0 (numbers compare as numbers) */
    for (int i = 0; i < 3; i++) {
        json_t *d = json_array_get(items, (size_t)i);
        CHECK(h_streq(h_jstr(d, "from_release_id"), ids[WANT[i]]) &&
                  h_streq(h_jstr(d, "from_version"), VERSIONS[WANT[i]]),
              "item %d: expected %s: %s", i, VERSIONS[WANT[i]], json_dumps(items, 0));
    }
    json_decref(items);
}

/* Starts h_g_srv again on the program's cluster and storage, with `extra` ("NAME=value", NULL-terminated). */
static void restart_server(const char *const *extra)
{
    h_server_stop(&h_g_srv);
    const char *env[24];
    server_env(env, sizeof env / sizeof env[0], extra);
    h_server_start(&h_g_srv, &h_g_pg, env);
    CHECK(h_wait_ready(&h_g_srv), "the restarted server is not ready");
}

/*
 * A build that fails (A's image gone from storage) is marked failed with the reason, and stays so: neither a
 * restart nor a later release builds it again, even once the image is back. The object sweeper, meanwhile, keeps
 * the objects of ready deltas.
 */
static void test_failed_stays_failed(void **state)
{
    (void)state;
    static const char *const SWEEPING[] = {"OTA_GC_INTERVAL_S=1", "OTA_GC_GRACE_S=2", NULL};
    char model[64], a_id[40], x_id[40], d_id[40], e_id[40], a_key[200], dx_key[200], orphan[200], rid[40];
    h_make_model(model, sizeof model, "delta failed");
    unsigned char *a = binary_slice(0, IMAGE_LEN), *x = binary_slice(0, IMAGE_LEN), *d = binary_slice(0, IMAGE_LEN),
                  *e = binary_slice(0, IMAGE_LEN);
    x[500] ^= 0xff;
    d[1000] ^= 0xff;
    e[2000] ^= 0xff;
    make_release(model, "1.0.0", a, IMAGE_LEN, a_id);
    make_release(model, "1.5.0", x, IMAGE_LEN, x_id);
    json_decref(deltas_built(x_id, 1));
    snprintf(a_key, sizeof a_key, "releases/%s/bin", a_id);
    object_remove(a_key);
    make_release(model, "2.0.0", d, IMAGE_LEN, d_id);
    json_t *items = deltas_built(d_id, 2);
    item_from(items, x_id, "ready");
    json_t *f = item_from(items, a_id, "failed");
    CHECK(h_jnull(f, "size") && h_jnull(f, "sha256") && strstr(h_jstr(f, "error"), "missing") != NULL, "%s",
          json_dumps(f, 0));
    char finished[64];
    snprintf(finished, sizeof finished, "%s", h_jstr(f, "finished_at"));
    json_decref(items);
    CHECK(h_metric("ota_delta_builds_total{status=\"failed\"}") >= 1, "failed builds counted");

    /* A's image back, an object nothing names, and a restart with a sweep every second. */
    object_put(a_key, a, IMAGE_LEN);
    h_random_uuid(rid, sizeof rid);
    snprintf(orphan, sizeof orphan, "releases/%s/bin", rid);
    object_put(orphan, "orphan", 6);
    restart_server(SWEEPING);
    for (long waited = 0; object_exists(orphan) && waited < 15000; waited += 100)
        h_sleep_ms(100);
    CHECK(!object_exists(orphan), "no sweep came");
    snprintf(dx_key, sizeof dx_key, "releases/%s/delta-%s", d_id, x_id);
    CHECK(object_exists(dx_key), "the sweeper removed a ready delta's object");

    make_release(model, "3.0.0", e, IMAGE_LEN, e_id);
    items = deltas_built(e_id, 3);
    item_from(items, d_id, "ready");
    item_from(items, a_id, "ready"); /* the image is back: a new pair builds */
    json_decref(items);
    items = deltas_with(d_id, h_g_srv.admin_key);
    f = item_from(items, a_id, "failed");
    CHECK(h_streq(h_jstr(f, "finished_at"), finished), "the failed pair was built again: %s", json_dumps(f, 0));
    json_decref(items);
    free(a);
    free(x);
    free(d);
    free(e);
}

static void test_unknown_release(void **state)
{
    (void)state;
    char id[40], path[128];
    h_random_uuid(id, sizeof id);
    snprintf(path, sizeof path, "/v1/releases/%s/deltas", id);
    h_resp_t r = {0};
    h_http(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 404, "not_found");
    h_resp_free(&r);
    h_http(&h_g_srv, "GET", path, NULL, NULL, 0, NULL, &r);
    EXPECT_ERROR(&r, 401, "unauthorized");
    h_resp_free(&r);
}

/* ---- setup -------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    FILE *f = fopen(OTA_SERVER_BIN, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0)
        return -1;
    g_binary_len = (size_t)ftell(f);
    rewind(f);
    g_binary = malloc(g_binary_len);
    if (g_binary == NULL || fread(g_binary, 1, g_binary_len, f) != g_binary_len)
        return -1;
    fclose(f);
    h_pg_start(&h_g_pg);
#ifdef OTA_IT_S3
    h_s3_start(&g_s3, S3_BUCKET);
#endif
    static const char *const NO_SWEEPS[] = {"OTA_GC_INTERVAL_S=0", NULL};
    const char *env[24];
    server_env(env, sizeof env / sizeof env[0], NO_SWEEPS);
    h_server_start(&h_g_srv, &h_g_pg, env);
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    h_server_stop(&h_g_srv);
#ifdef OTA_IT_S3
    h_s3_stop(&g_s3);
#endif
    h_pg_destroy(&h_g_pg);
    free(g_binary);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_change_ready), cmocka_unit_test(test_random_not_worth_it),
        cmocka_unit_test(test_three_newest_older), cmocka_unit_test(test_failed_stays_failed),
        cmocka_unit_test(test_unknown_release),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
