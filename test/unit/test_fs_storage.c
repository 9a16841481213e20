/* nftw(), symlink(), mkdtemp() */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/file_io.h"
#include "storage/fs.h"
#include "storage/sigv4.h"
#include "storage/storage.h"

#define SECRET_FILE ".presign-secret"
#define SECRET_LEN 43
#define URL_MAX 4096
/* 2024-03-01T12:00:00Z */
#define NOW ((time_t)1709294400)

typedef struct {
    char dir[PATH_MAX];
    ota_config_t cfg;
    ota_storage_t *st;
} fixture_t;

static char cfg_storage[] = "fs", cfg_public_url[] = "http://127.0.0.1:1", cfg_region[] = "us-east-1";

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fill_config(ota_config_t *cfg, char *dir)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->storage = cfg_storage;
    cfg->storage_dir = dir;
    cfg->public_url = cfg_public_url;
    cfg->s3_region = cfg_region;
}

static ota_storage_t *open_fs(ota_config_t *cfg)
{
    char err[256] = "";
    ota_storage_t *st = ota__storage_open(cfg, err, sizeof err);
    if (st == NULL)
        fail_msg("ota__storage_open(%s): %s", cfg->storage_dir, err);
    return st;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ota-test-fs-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    fill_config(&f->cfg, f->dir);
    f->st = open_fs(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ota__storage_close(f->st);
    remove_tree(f->dir);
    free(f);
    return 0;
}

static void put_ok(ota_storage_t *st, const char *key, const void *data, size_t len)
{
    char err[256] = "";
    ota_err_t rc = ota__storage_put(st, key, data, len, err, sizeof err);
    if (rc != OTA_OK)
        fail_msg("put %s: %s (%s)", key, ota_strerror(rc), err);
}

static void expect_get(ota_storage_t *st, const char *key, size_t max, const void *want, size_t want_len)
{
    char err[256] = "";
    unsigned char *data = NULL;
    size_t len = 999;
    ota_err_t rc = ota__storage_get(st, key, max, &data, &len, err, sizeof err);
    if (rc != OTA_OK)
        fail_msg("get %s: %s (%s)", key, ota_strerror(rc), err);
    assert_int_equal(len, want_len);
    if (want_len > 0) {
        assert_non_null(data);
        assert_memory_equal(data, want, want_len);
    }
    free(data);
}

static void expect_get_error(ota_storage_t *st, const char *key, size_t max, ota_err_t want)
{
    char err[256] = "";
    unsigned char *data = NULL;
    size_t len = 999;
    ota_err_t rc = ota__storage_get(st, key, max, &data, &len, err, sizeof err);
    if (rc != want) {
        free(data);
        fail_msg("get %s: %s, expected %s", key, ota_strerror(rc), ota_strerror(want));
    }
    assert_null(data);
}

static void object_path(const fixture_t *f, const char *key, char *out)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", f->dir, key);
    assert_true(n > 0 && n < PATH_MAX);
}

/* --- put and get --- */

static void test_backend(void **state)
{
    fixture_t *f = *state;
    assert_true(ota__storage_is_fs(f->st));
    assert_string_equal(ota__storage_fs_root(f->st), f->dir);
    assert_non_null(ota__storage_fs_signer(f->st));
}

static void test_round_trip_binary(void **state)
{
    fixture_t *f = *state;
    unsigned char all[256 * 4];
    char path[PATH_MAX];
    struct stat sb;
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)(i * 7 + 3);
    all[0] = 0;
    all[1] = '\n';
    all[2] = '\r';

    put_ok(f->st, "a.bin", all, sizeof all);
    expect_get(f->st, "a.bin", sizeof all, all, sizeof all);
    expect_get(f->st, "a.bin", 1 << 20, all, sizeof all);

    /* One file per object, with exactly the bytes. */
    object_path(f, "a.bin", path);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_size, sizeof all);
}

static void test_round_trip_empty(void **state)
{
    fixture_t *f = *state;
    put_ok(f->st, "empty.bin", "", 0);
    expect_get(f->st, "empty.bin", 0, "", 0);
    expect_get(f->st, "empty.bin", 10, "", 0);
}

static void test_overwrite(void **state)
{
    fixture_t *f = *state;
    put_ok(f->st, "o.bin", "first version, longer", 21);
    expect_get(f->st, "o.bin", 100, "first version, longer", 21);
    put_ok(f->st, "o.bin", "second", 6);
    expect_get(f->st, "o.bin", 100, "second", 6);
    put_ok(f->st, "o.bin", "", 0);
    expect_get(f->st, "o.bin", 100, "", 0);
}

static void test_get_missing(void **state)
{
    fixture_t *f = *state;
    expect_get_error(f->st, "missing.bin", 100, OTA_ERR_NOT_FOUND);
    expect_get_error(f->st, "no/such/folder.bin", 100, OTA_ERR_NOT_FOUND);
    put_ok(f->st, "file.bin", "x", 1);
    expect_get_error(f->st, "file.bin/below", 100, OTA_ERR_NOT_FOUND); /* a file used as a folder */
}

static void test_get_too_large(void **state)
{
    fixture_t *f = *state;
    put_ok(f->st, "big.bin", "0123456789", 10);
    expect_get_error(f->st, "big.bin", 9, OTA_ERR_TOO_LARGE);
    expect_get_error(f->st, "big.bin", 0, OTA_ERR_TOO_LARGE);
    expect_get(f->st, "big.bin", 10, "0123456789", 10);
}

static void test_delete(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    put_ok(f->st, "d/x.bin", "x", 1);
    expect_get(f->st, "d/x.bin", 10, "x", 1);
    assert_int_equal(ota__storage_delete(f->st, "d/x.bin", err, sizeof err), OTA_OK);
    expect_get_error(f->st, "d/x.bin", 10, OTA_ERR_NOT_FOUND);
    /* Deleting what is not there succeeds, twice, and in a folder that never existed. */
    assert_int_equal(ota__storage_delete(f->st, "d/x.bin", err, sizeof err), OTA_OK);
    assert_int_equal(ota__storage_delete(f->st, "never.bin", err, sizeof err), OTA_OK);
    assert_int_equal(ota__storage_delete(f->st, "no/such/folder/x.bin", err, sizeof err), OTA_OK);
    /* A put after a delete works again. */
    put_ok(f->st, "d/x.bin", "y", 1);
    expect_get(f->st, "d/x.bin", 10, "y", 1);
}

static void test_delete_leaves_others(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    put_ok(f->st, "k/1.bin", "one", 3);
    put_ok(f->st, "k/2.bin", "two", 3);
    assert_int_equal(ota__storage_delete(f->st, "k/1.bin", err, sizeof err), OTA_OK);
    expect_get_error(f->st, "k/1.bin", 10, OTA_ERR_NOT_FOUND);
    expect_get(f->st, "k/2.bin", 10, "two", 3);
}

static void test_nested_keys(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX];
    struct stat sb;
    put_ok(f->st, "releases/bota-pin/1.2.3/bin/image.bin", "nested", 6);
    expect_get(f->st, "releases/bota-pin/1.2.3/bin/image.bin", 10, "nested", 6);
    object_path(f, "releases/bota-pin/1.2.3/bin", path);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    object_path(f, "releases/bota-pin/1.2.3/bin/image.bin", path);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    /* A sibling in an existing folder. */
    put_ok(f->st, "releases/bota-pin/1.2.3/ufw/image.ufw", "u", 1);
    expect_get(f->st, "releases/bota-pin/1.2.3/ufw/image.ufw", 10, "u", 1);
    expect_get(f->st, "releases/bota-pin/1.2.3/bin/image.bin", 10, "nested", 6);
}

static int tmp_files;

static int count_tmp(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (strstr(path + ftw->base, ".tmp-") != NULL)
        tmp_files++;
    return 0;
}

static void test_no_temp_files_left(void **state)
{
    fixture_t *f = *state;
    char big[64 * 1024];
    memset(big, 'z', sizeof big);
    put_ok(f->st, "t.bin", "a", 1);
    put_ok(f->st, "t.bin", "bb", 2);
    put_ok(f->st, "deep/er/t.bin", big, sizeof big);
    put_ok(f->st, "zero.bin", "", 0);
    tmp_files = 0;
    assert_int_equal(nftw(f->dir, count_tmp, 16, FTW_PHYS), 0);
    assert_int_equal(tmp_files, 0);
}

/* --- keys --- */

static void expect_key(const char *key, int want)
{
    if (!!ota__storage_key_valid(key, strlen(key)) != want)
        fail_msg("key \"%s\": expected %s", key, want ? "valid" : "invalid");
}

static void test_key_valid(void **state)
{
    static const char *const good[] = {
        "a/b.bin", "a",       "A-Z_0.9", "releases/bota-pin/1.2.3/bin/image.bin",        "...",
        "a/...b",  ".hidden", "a..b",    "uploads/3f2c1b9e-0d4a-4f6b-8a7e-1c2d3e4f5a6b",
    };
    static const char *const bad[] = {
        "",         "/a",   "a/",  "a//b",  "a/../b", ".",    "..",   "a/./b", "./a", "a/.", "../a", "a/..", "a b",
        "\xc3\xbc", "a\\b", "a?b", "a%2fb", "a:b",    "a\tb", "a\nb", "a+b",   "~a",  "a*",  "//",   "/",    "a/b/",
    };
    char key[600];
    (void)state;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect_key(good[i], 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_key(bad[i], 0);

    memset(key, 'k', 512);
    key[512] = '\0';
    expect_key(key, 1);
    memset(key, 'k', 513);
    key[513] = '\0';
    expect_key(key, 0);

    /* Only `len` bytes count. */
    assert_true(ota__storage_key_valid("a/b.bin/../x", 7));
    assert_false(ota__storage_key_valid("a/b.bin", 2)); /* "a/" */
    assert_false(ota__storage_key_valid("a\0b", 3));
}

/* --- presigning --- */

static void presign_ok(ota_storage_t *st, const char *method, const char *key, time_t now, int ttl, char *url)
{
    ota_err_t rc = ota__storage_presign(st, method, key, now, ttl, url, URL_MAX);
    if (rc != OTA_OK)
        fail_msg("presign %s %s: %s", method, key, ota_strerror(rc));
}

/* Splits "http://host/path?query" the way a server receives it. */
static ota_sigv4_received_t received(const char *method, const char *url)
{
    ota_sigv4_received_t r;
    memset(&r, 0, sizeof r);
    assert_true(strncmp(url, "http://", 7) == 0);
    const char *host = url + 7;
    const char *path = strchr(host, '/');
    assert_non_null(path);
    const char *q = strchr(path, '?');
    assert_non_null(q);
    r.method = method;
    r.method_len = strlen(method);
    r.host = host;
    r.host_len = (size_t)(path - host);
    r.path = path;
    r.path_len = (size_t)(q - path);
    r.query = q + 1;
    r.query_len = strlen(q + 1);
    return r;
}

static void expect_verdict(const ota_storage_t *st, const char *method, const char *url, time_t now,
                           ota_sigv4_verdict_t want)
{
    ota_sigv4_received_t r = received(method, url);
    ota_sigv4_verdict_t v = ota__sigv4_verify(ota__storage_fs_signer(st), &r, now, NULL);
    if (v != want)
        fail_msg("%s %s at %lld: %s, expected %s", method, url, (long long)now, ota__sigv4_verdict_name(v),
                 ota__sigv4_verdict_name(want));
}

static void test_presign_shape(void **state)
{
    fixture_t *f = *state;
    char url[URL_MAX];
    presign_ok(f->st, "GET", "releases/m/1.0.0/bin/image.bin", NOW, 900, url);
    const char *prefix = "http://127.0.0.1:1/blobs/releases/m/1.0.0/bin/image.bin?";
    assert_memory_equal(url, prefix, strlen(prefix));
    assert_non_null(strstr(url, "X-Amz-Algorithm=AWS4-HMAC-SHA256"));
    assert_non_null(strstr(url, "X-Amz-Credential=ota-fs%2F20240301%2Fus-east-1%2Fs3%2Faws4_request"));
    assert_non_null(strstr(url, "X-Amz-Date=20240301T120000Z"));
    assert_non_null(strstr(url, "X-Amz-Expires=900"));
    assert_non_null(strstr(url, "X-Amz-Signature="));
}

static void test_presign_verifies(void **state)
{
    fixture_t *f = *state;
    char url[URL_MAX], put_url[URL_MAX], other[URL_MAX];
    const int ttl = 900;

    presign_ok(f->st, "GET", "releases/m/1.0.0/bin/image.bin", NOW, ttl, url);
    expect_verdict(f->st, "GET", url, NOW, OTA_SIGV4_VALID);
    expect_verdict(f->st, "GET", url, NOW + ttl, OTA_SIGV4_VALID);
    expect_verdict(f->st, "GET", url, NOW + ttl + 1, OTA_SIGV4_EXPIRED);
    expect_verdict(f->st, "GET", url, NOW + 86400 * 30, OTA_SIGV4_EXPIRED);
    expect_verdict(f->st, "GET", url, NOW - 3600, OTA_SIGV4_NOT_YET_VALID);
    /* Another method with the same URL. */
    expect_verdict(f->st, "PUT", url, NOW, OTA_SIGV4_MISMATCH);
    expect_verdict(f->st, "DELETE", url, NOW, OTA_SIGV4_MISMATCH);
    expect_verdict(f->st, "HEAD", url, NOW, OTA_SIGV4_MISMATCH);

    /* A PUT URL is good for PUT only. */
    presign_ok(f->st, "PUT", "uploads/u1", NOW, ttl, put_url);
    expect_verdict(f->st, "PUT", put_url, NOW, OTA_SIGV4_VALID);
    expect_verdict(f->st, "GET", put_url, NOW, OTA_SIGV4_MISMATCH);
    expect_verdict(f->st, "PUT", put_url, NOW + ttl + 1, OTA_SIGV4_EXPIRED);

    /* The signature of one key does not open another. */
    presign_ok(f->st, "GET", "releases/m/1.0.0/bin/other.bin", NOW, ttl, other);
    const char *sig = strstr(other, "?");
    char forged[URL_MAX];
    snprintf(forged, sizeof forged, "http://127.0.0.1:1/blobs/releases/m/1.0.0/bin/image.bin%s", sig);
    expect_verdict(f->st, "GET", other, NOW, OTA_SIGV4_VALID);
    expect_verdict(f->st, "GET", forged, NOW, OTA_SIGV4_MISMATCH);
}

static void test_presign_other_folder_other_secret(void **state)
{
    fixture_t *f = *state;
    char dir2[PATH_MAX], url1[URL_MAX], url2[URL_MAX];
    ota_config_t cfg2;
    snprintf(dir2, sizeof dir2, "/tmp/ota-test-fs2-XXXXXX");
    assert_non_null(mkdtemp(dir2));
    fill_config(&cfg2, dir2);
    ota_storage_t *st2 = open_fs(&cfg2);

    presign_ok(f->st, "GET", "a.bin", NOW, 60, url1);
    presign_ok(st2, "GET", "a.bin", NOW, 60, url2);
    assert_string_not_equal(url1, url2);
    /* Each verifies with its own signer only. */
    expect_verdict(f->st, "GET", url1, NOW, OTA_SIGV4_VALID);
    expect_verdict(st2, "GET", url2, NOW, OTA_SIGV4_VALID);
    expect_verdict(st2, "GET", url1, NOW, OTA_SIGV4_MISMATCH);
    expect_verdict(f->st, "GET", url2, NOW, OTA_SIGV4_MISMATCH);

    ota__storage_close(st2);
    remove_tree(dir2);
}

static void read_secret(const char *dir, char *out, struct stat *sb)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, SECRET_FILE);
    assert_int_equal(stat(path, sb), 0);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(out, 1, SECRET_LEN + 1, fp);
    fclose(fp);
    assert_int_equal(n, SECRET_LEN);
    out[n] = '\0';
}

static void test_secret_file(void **state)
{
    fixture_t *f = *state;
    char secret1[SECRET_LEN + 2], secret2[SECRET_LEN + 2], url1[URL_MAX], url2[URL_MAX];
    struct stat sb1, sb2;

    read_secret(f->dir, secret1, &sb1);
    assert_true(S_ISREG(sb1.st_mode));
    assert_int_equal(sb1.st_mode & 07777, 0600);
    /* 32 random bytes in base64url. */
    assert_int_equal(strspn(secret1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), SECRET_LEN);
    assert_string_equal(ota__storage_fs_signer(f->st)->secret_key, secret1);
    assert_string_equal(ota__storage_fs_signer(f->st)->region, "us-east-1");

    /* A second instance on the same folder reuses it. */
    ota_storage_t *st2 = open_fs(&f->cfg);
    read_secret(f->dir, secret2, &sb2);
    assert_string_equal(secret1, secret2);
    assert_int_equal(sb1.st_ino, sb2.st_ino);
    assert_int_equal(sb2.st_mode & 07777, 0600);
    assert_string_equal(ota__storage_fs_signer(st2)->secret_key, secret1);

    presign_ok(f->st, "GET", "r/a.bin", NOW, 300, url1);
    presign_ok(st2, "GET", "r/a.bin", NOW, 300, url2);
    assert_string_equal(url1, url2);
    expect_verdict(st2, "GET", url1, NOW, OTA_SIGV4_VALID);
    ota__storage_close(st2);

    /* Reopened after a close, still the same. */
    st2 = open_fs(&f->cfg);
    presign_ok(st2, "GET", "r/a.bin", NOW, 300, url2);
    assert_string_equal(url1, url2);
    ota__storage_close(st2);
}

/* A folder of its own, holding `name` with `len` bytes of `data` before the storage is opened. */
static void fresh_dir_with(char *dir, size_t cap, const char *name, const char *data, size_t len)
{
    char path[PATH_MAX];
    snprintf(dir, cap, "/tmp/ota-test-fs4-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* A first start killed while making the secret leaves at most its temporary file: the next start is not stopped. */
static void test_secret_killed_first_start(void **state)
{
    char dir[64], secret[SECRET_LEN + 2];
    struct stat sb;
    ota_config_t cfg;
    (void)state;
    fresh_dir_with(dir, sizeof dir, SECRET_FILE ".tmp-0b7e1f0a-2c3d-4e5f-8a9b-0c1d2e3f4a5b", "abc", 3);
    fill_config(&cfg, dir);
    ota_storage_t *st = open_fs(&cfg);
    read_secret(dir, secret, &sb);
    assert_string_equal(ota__storage_fs_signer(st)->secret_key, secret);
    ota__storage_close(st);
    remove_tree(dir);
}

/*
 * An empty secret file is never made by this version; an older one, killed while writing it in place, left it.
 * Refused with a message that says what to do, and left as it is (not replaced behind the operator's back).
 */
static void test_secret_empty_refused(void **state)
{
    char dir[64], err[512] = "", path[PATH_MAX];
    struct stat sb;
    ota_config_t cfg;
    (void)state;
    fresh_dir_with(dir, sizeof dir, SECRET_FILE, "", 0);
    fill_config(&cfg, dir);
    assert_null(ota__storage_open(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "Delete the file"));
    snprintf(path, sizeof path, "%s/%s", dir, SECRET_FILE);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    remove_tree(dir);
}

/* --- copy, list, durable writes --- */

static void test_copy(void **state)
{
    fixture_t *f = *state;
    char err[256] = "", path[PATH_MAX];
    struct stat sb;
    put_ok(f->st, "uploads/u/bin", "first", 5);
    /* The upload was written long ago; the copy is dated by when it was made (the sweeper judges that). */
    object_path(f, "uploads/u/bin", path);
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    time_t before = time(NULL);
    assert_int_equal(ota__storage_copy(f->st, "uploads/u/bin", "releases/r/bin", err, sizeof err), OTA_OK);
    object_path(f, "releases/r/bin", path);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_mtime >= before);
    /* Writing the upload again does not reach the copy. */
    put_ok(f->st, "uploads/u/bin", "second", 6);
    expect_get(f->st, "releases/r/bin", 100, "first", 5);
    expect_get(f->st, "uploads/u/bin", 100, "second", 6);
    assert_int_equal(ota__storage_copy(f->st, "uploads/none/bin", "releases/r2/bin", err, sizeof err),
                     OTA_ERR_NOT_FOUND);
    expect_get_error(f->st, "releases/r2/bin", 100, OTA_ERR_NOT_FOUND);
}

typedef struct listed {
    char keys[8][128];
    int n;
    int stop_after;
} listed_t;

static int on_listed(const char *key, uint64_t size, time_t modified, void *arg)
{
    listed_t *l = arg;
    (void)size;
    assert_true(modified > 0);
    if (l->n < 8)
        snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
    l->n++;
    return l->stop_after != 0 && l->n >= l->stop_after;
}

static bool was_listed(const listed_t *l, const char *key)
{
    for (int i = 0; i < l->n && i < 8; i++)
        if (strcmp(l->keys[i], key) == 0)
            return true;
    return false;
}

static void test_list(void **state)
{
    fixture_t *f = *state;
    char err[256] = "", path[PATH_MAX];
    put_ok(f->st, "releases/a/bin", "a", 1);
    put_ok(f->st, "releases/b/ufw", "b", 1);
    put_ok(f->st, "uploads/c/bin", "c", 1);
    /* The temporary file of a write cut short is listed too: the sweeper removes old ones. */
    object_path(f, "releases/a/bin.tmp-x", path);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fclose(fp);

    listed_t l = {0};
    assert_int_equal(ota__storage_list(f->st, "releases/", on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 3);
    assert_true(was_listed(&l, "releases/a/bin") && was_listed(&l, "releases/b/ufw") &&
                was_listed(&l, "releases/a/bin.tmp-x"));
    memset(&l, 0, sizeof l);
    assert_int_equal(ota__storage_list(f->st, "uploads/", on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.keys[0], "uploads/c/bin");
    /* Nothing there: nothing listed, no error. */
    memset(&l, 0, sizeof l);
    assert_int_equal(ota__storage_list(f->st, "nothing/", on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 0);
    /* The whole folder, but never the hidden presigning secret; and a callback may stop the listing. */
    memset(&l, 0, sizeof l);
    assert_int_equal(ota__storage_list(f->st, "", on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 4);
    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    assert_int_equal(ota__storage_list(f->st, "", on_listed, &l, err, sizeof err), OTA_OK);
    assert_int_equal(l.n, 2);
}

/* Presigned PUTs reach uploads only: no URL handed out can write a release's bytes. */
static void test_presign_put_uploads_only(void **state)
{
    fixture_t *f = *state;
    char url[URL_MAX];
    assert_int_equal(ota__storage_presign(f->st, "PUT", "releases/r/bin", NOW, 300, url, sizeof url), OTA_ERR_INVALID);
    assert_int_equal(ota__storage_presign(f->st, "PUT", "r/a.bin", NOW, 300, url, sizeof url), OTA_ERR_INVALID);
    assert_int_equal(ota__storage_presign(f->st, "PUT", "uploads/u/bin", NOW, 300, url, sizeof url), OTA_OK);
    assert_int_equal(ota__storage_presign(f->st, "GET", "releases/r/bin", NOW, 300, url, sizeof url), OTA_OK);
}

/* The durable write: replace, or (create) keep what is there; never a temporary file left after it. */
static void test_write_file_durable(void **state)
{
    fixture_t *f = *state;
    char path[PATH_MAX], err[256] = "";
    unsigned char *data = NULL;
    size_t len = 0;
    object_path(f, "durable.txt", path);
    assert_int_equal(ota__write_file_durable(path, "one", 3, 0600, OTA_WRITE_CREATE, err, sizeof err), OTA_OK);
    assert_int_equal(ota__write_file_durable(path, "two", 3, 0600, OTA_WRITE_CREATE, err, sizeof err), OTA_ERR_INVALID);
    assert_int_equal(ota__read_file(path, 10, &data, &len), OTA_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "one", 3);
    free(data);
    assert_int_equal(ota__write_file_durable(path, "three", 5, 0600, OTA_WRITE_REPLACE, err, sizeof err), OTA_OK);
    assert_int_equal(ota__read_file(path, 10, &data, &len), OTA_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "three", 5);
    free(data);
    tmp_files = 0;
    assert_int_equal(nftw(f->dir, count_tmp, 16, FTW_PHYS), 0);
    assert_int_equal(tmp_files, 0);
}

static void test_open_creates_folder(void **state)
{
    char base[64], dir[PATH_MAX];
    ota_config_t cfg;
    (void)state;
    snprintf(base, sizeof base, "/tmp/ota-test-fs3-XXXXXX");
    assert_non_null(mkdtemp(base));
    snprintf(dir, sizeof dir, "%s/blobs", base);
    fill_config(&cfg, dir);
    ota_storage_t *st = open_fs(&cfg);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    put_ok(st, "x.bin", "x", 1);
    expect_get(st, "x.bin", 1, "x", 1);
    ota__storage_close(st);
    remove_tree(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_leaves_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_temp_files_left, setup, teardown),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test_setup_teardown(test_presign_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presign_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presign_other_folder_other_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
        cmocka_unit_test(test_secret_killed_first_start),
        cmocka_unit_test(test_secret_empty_refused),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presign_put_uploads_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_durable, setup, teardown),
        cmocka_unit_test(test_open_creates_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
