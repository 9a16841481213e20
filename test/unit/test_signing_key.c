#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ota/manifest.h"
#include "core/signing_key.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/ota-signing-key-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(const char *name, char *out, size_t cap)
{
    assert_true((size_t)snprintf(out, cap, "%s/%s", dir, name) < cap);
}

__attribute__((format(printf, 1, 2))) static void run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    if (system(cmd) != 0)
        fail_msg("failed: %s", cmd);
}

/* The first line of the output of the shell command `cmd`, without its newline. */
static void output_of(const char *cmd, char *out, size_t cap)
{
    FILE *p;

    p = popen(cmd, "r");
    assert_non_null(p);
    if (fgets(out, (int)cap, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    assert_int_equal(pclose(p), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    assert_non_null(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

/* The public key of the PEM at `path` as OpenSSL's command line sees it, in base64. */
static void openssl_public_base64(const char *path, char *out, size_t cap)
{
    char cmd[512];
    assert_true((size_t)snprintf(cmd, sizeof cmd,
                                 "openssl pkey -in '%s' -pubout -outform DER | tail -c 32 | base64 -w0",
                                 path) < sizeof cmd);
    output_of(cmd, out, cap);
}

static void check_consistent(const ota_signing_key_t *key)
{
    unsigned char pub[32];
    ota_manifest_t m;

    assert_int_equal(strlen(key->public_base64), OTA_SIGNING_KEY_PUBLIC_B64_LEN);
    assert_int_equal(ota_ed25519_public_from_seed(key->seed, pub), OTA_OK);
    assert_memory_equal(pub, key->public_key, 32);

    /* It signs manifests that its public key verifies. */
    memset(&m, 0, sizeof m);
    strcpy(m.assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e");
    strcpy(m.device_id, "0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f");
    strcpy(m.not_after, "2026-11-22T10:00:00Z");
    strcpy(m.release_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(m.model, "bota-pin");
    strcpy(m.version, "1.0.0");
    strcpy(m.artifact, "bin");
    m.size = 1;
    strcpy(m.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(ota_manifest_sign(&m, key->seed), OTA_OK);
    assert_int_equal(ota_manifest_verify(&m, key->public_key), OTA_OK);
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0)
            return 0;
    }
    return 1;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Counts the entries of the test folder whose name starts with `prefix`. */
static int count_entries(const char *prefix)
{
    char cmd[256], out[32];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^%s' || true", dir, prefix);
    output_of(cmd, out, sizeof out);
    return atoi(out);
}

/*
 * A start killed while making the key leaves at most a temporary file (the key is written whole beside its
 * place and linked into it), never an empty or partial key file: the next start makes the key as if nothing
 * had happened, and a successful start leaves no temporary file of its own.
 */
static void test_killed_first_start(void **state)
{
    char path[256], tmp[300], err[256];
    ota_signing_key_t key;
    (void)state;
    path_of("killed.pem", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp-0b7e1f0a-2c3d-4e5f-8a9b-0c1d2e3f4a5b", path);
    write_file(tmp, "-----BEGIN PRIVATE KEY-----\nMC4CAQAw", 36);
    assert_int_equal(ota__signing_key_load(path, &key, err, sizeof err), OTA_OK);
    check_consistent(&key);
    assert_int_equal(count_entries("killed.pem"), 2); /* the key, and the leftover (never read; may be deleted) */
    unlink(tmp);
    assert_int_equal(count_entries("killed.pem"), 1);
    assert_int_equal(ota__signing_key_load(path, &key, err, sizeof err), OTA_OK);
    assert_int_equal(count_entries("killed.pem"), 1);
}

static void test_create_then_load(void **state)
{
    char path[256], pem[4096], b64[128], err[256];
    ota_signing_key_t a, b;
    struct stat st;
    (void)state;

    path_of("new.pem", path, sizeof path);
    umask(022);
    assert_int_equal(ota__signing_key_load(path, &a, err, sizeof err), OTA_OK);
    assert_string_equal(err, "");
    check_consistent(&a);
    assert_false(all_zero(a.seed, sizeof a.seed));

    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    read_file(path, pem, sizeof pem);
    assert_memory_equal(pem, "-----BEGIN PRIVATE KEY-----\n", 28);
    assert_non_null(strstr(pem, "\n-----END PRIVATE KEY-----\n"));

    /* OpenSSL reads the file and finds the same public key. */
    openssl_public_base64(path, b64, sizeof b64);
    assert_string_equal(b64, a.public_base64);

    /* Loading again gives the same key and leaves the file as it was. */
    memset(&b, 0x77, sizeof b);
    assert_int_equal(ota__signing_key_load(path, &b, err, sizeof err), OTA_OK);
    assert_memory_equal(&a, &b, sizeof a);

    /* Another new file is another key. */
    path_of("other.pem", path, sizeof path);
    assert_int_equal(ota__signing_key_load(path, &b, NULL, 0), OTA_OK);
    assert_memory_not_equal(a.seed, b.seed, sizeof a.seed);
    assert_string_not_equal(a.public_base64, b.public_base64);
}

static void test_openssl_genpkey(void **state)
{
    char path[256], b64[128], err[256], pem[4096];
    ota_signing_key_t key;
    size_t n;
    (void)state;

    path_of("genpkey.pem", path, sizeof path);
    run("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null", path);
    assert_int_equal(ota__signing_key_load(path, &key, err, sizeof err), OTA_OK);
    check_consistent(&key);
    openssl_public_base64(path, b64, sizeof b64);
    assert_int_equal(strlen(b64), 44);
    assert_string_equal(key.public_base64, b64);

    /* Without its final newline (as some editors save it), it still loads, and at once. */
    n = read_file(path, pem, sizeof pem);
    assert_int_equal(pem[n - 1], '\n');
    path_of("no-newline.pem", path, sizeof path);
    write_file(path, pem, n - 1);
    ota_signing_key_t again;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ota__signing_key_load(path, &again, err, sizeof err), OTA_OK);
    assert_true(seconds_since(&t0) < 0.5);
    assert_memory_equal(&again, &key, sizeof key);
}

static void expect_error(const char *path, ota_err_t rc, const char *needle)
{
    ota_signing_key_t key;
    char err[512];

    memset(&key, 0x5a, sizeof key);
    memset(err, 0, sizeof err);
    assert_int_equal(ota__signing_key_load(path, &key, err, sizeof err), rc);
    if (strstr(err, needle) == NULL || strstr(err, path) == NULL)
        fail_msg("error \"%s\" does not name %s and \"%s\"", err, path, needle);
    assert_null(strchr(err, '\n'));
    assert_true(all_zero(&key, sizeof key));
}

static void test_wrong_key_types(void **state)
{
    char path[256];
    (void)state;

    path_of("rsa.pem", path, sizeof path);
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out '%s' 2>/dev/null", path);
    expect_error(path, OTA_ERR_INVALID, "RSA");
    expect_error(path, OTA_ERR_INVALID, "Ed25519");

    path_of("ec.pem", path, sizeof path);
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s' 2>/dev/null", path);
    expect_error(path, OTA_ERR_INVALID, "EC");

    /* Same size, other curve use: not a signing key. */
    path_of("x25519.pem", path, sizeof path);
    run("openssl genpkey -algorithm X25519 -out '%s' 2>/dev/null", path);
    expect_error(path, OTA_ERR_INVALID, "X25519");

    path_of("ed448.pem", path, sizeof path);
    run("openssl genpkey -algorithm ED448 -out '%s' 2>/dev/null", path);
    expect_error(path, OTA_ERR_INVALID, "ED448");

    /* A public key is not a private key. */
    char priv[256];
    path_of("genpkey2.pem", priv, sizeof priv);
    run("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null", priv);
    path_of("public.pem", path, sizeof path);
    run("openssl pkey -in '%s' -pubout -out '%s'", priv, path);
    expect_error(path, OTA_ERR_INVALID, "not a PEM private key");

    /* Encrypted: refused without prompting for a passphrase. */
    path_of("encrypted.pem", path, sizeof path);
    run("openssl genpkey -algorithm ed25519 -aes256 -pass pass:secret -out '%s' 2>/dev/null", path);
    expect_error(path, OTA_ERR_INVALID, "encrypted");
}

static void test_garbage(void **state)
{
    char path[256], pem[4096], *big;
    struct timespec t0;
    size_t n;
    (void)state;

    path_of("garbage.txt", path, sizeof path);
    write_file(path, "hello, world\n", 13);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_error(path, OTA_ERR_INVALID, "not a PEM private key");
    assert_true(seconds_since(&t0) < 0.5); /* a finished file: no waiting */

    /* A PEM frame around junk. */
    write_file(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 59);
    expect_error(path, OTA_ERR_INVALID, "not a PEM private key");

    /* A valid key cut short, as a crashed writer would leave it (waits, then gives up). */
    path_of("genpkey3.pem", path, sizeof path);
    run("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null", path);
    n = read_file(path, pem, sizeof pem);
    write_file(path, pem, n / 2);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_error(path, OTA_ERR_INVALID, "not a PEM private key");
    assert_true(seconds_since(&t0) >= OTA_SIGNING_KEY_WAIT_MS / 1000.0 * 0.9);

    /* Empty (only an older version, killed while writing in place, leaves one): waits for a writer, then says so
     * and what to do; the file is left alone. */
    path_of("empty.pem", path, sizeof path);
    write_file(path, "", 0);
    expect_error(path, OTA_ERR_INVALID, "empty");
    expect_error(path, OTA_ERR_INVALID, "delete it");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* Too large to be a key. */
    path_of("big.pem", path, sizeof path);
    big = malloc(OTA_SIGNING_KEY_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, '\n', OTA_SIGNING_KEY_FILE_MAX + 1);
    write_file(path, big, OTA_SIGNING_KEY_FILE_MAX + 1);
    expect_error(path, OTA_ERR_TOO_LARGE, "larger");
    free(big);

    /* Not a file; a folder that does not exist. */
    expect_error(dir, OTA_ERR_IO, "not a regular file");
    path_of("missing/key.pem", path, sizeof path);
    expect_error(path, OTA_ERR_IO, "cannot create");
    assert_int_equal(access(path, F_OK), -1);
}

/* ---- a writer that is slow to fill its file ---- */

typedef struct slow_writer {
    const char *path;
    const char *pem;
    size_t len;
} slow_writer_t;

static void *slow_write(void *arg)
{
    slow_writer_t *w = arg;
    struct timespec pause = {0, 300 * 1000000L};
    FILE *f;

    nanosleep(&pause, NULL);
    f = fopen(w->path, "r+b");
    if (f == NULL)
        return NULL;
    fwrite(w->pem, 1, w->len / 2, f);
    fflush(f);
    nanosleep(&pause, NULL);
    fwrite(w->pem + w->len / 2, 1, w->len - w->len / 2, f);
    fclose(f);
    return NULL;
}

static void test_waits_for_writer(void **state)
{
    char src[256], path[256], pem[4096], b64[128], err[256];
    ota_signing_key_t key;
    slow_writer_t w;
    pthread_t t;
    (void)state;

    path_of("genpkey4.pem", src, sizeof src);
    run("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null", src);
    w.len = read_file(src, pem, sizeof pem);
    w.pem = pem;
    path_of("slow.pem", path, sizeof path);
    w.path = path;
    write_file(path, "", 0); /* created, not yet written: what the loser of a race sees */

    assert_int_equal(pthread_create(&t, NULL, slow_write, &w), 0);
    assert_int_equal(ota__signing_key_load(path, &key, err, sizeof err), OTA_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    openssl_public_base64(src, b64, sizeof b64);
    assert_string_equal(key.public_base64, b64);
}

/* ---- several instances starting at once ---- */

#define RACERS 4

typedef struct racer {
    pthread_barrier_t *barrier;
    const char *path;
    ota_signing_key_t key;
    ota_err_t rc;
    char err[256];
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->barrier);
    r->rc = ota__signing_key_load(r->path, &r->key, r->err, sizeof r->err);
    return NULL;
}

static void test_concurrent_creation(void **state)
{
    (void)state;

    for (int round = 0; round < 25; round++) {
        pthread_barrier_t barrier;
        pthread_t threads[RACERS];
        racer_t racers[RACERS];
        char path[256], name[32], b64[128];
        struct stat st;

        snprintf(name, sizeof name, "race-%d.pem", round);
        path_of(name, path, sizeof path);
        assert_int_equal(pthread_barrier_init(&barrier, NULL, RACERS), 0);
        for (int i = 0; i < RACERS; i++) {
            memset(&racers[i], 0, sizeof racers[i]);
            racers[i].barrier = &barrier;
            racers[i].path = path;
            assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
        }
        for (int i = 0; i < RACERS; i++)
            assert_int_equal(pthread_join(threads[i], NULL), 0);
        pthread_barrier_destroy(&barrier);

        for (int i = 0; i < RACERS; i++) {
            if (racers[i].rc != OTA_OK)
                fail_msg("round %d, racer %d: %s", round, i, racers[i].err);
            assert_memory_equal(&racers[i].key, &racers[0].key, sizeof racers[0].key);
        }
        check_consistent(&racers[0].key);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        if (round == 0) {
            openssl_public_base64(path, b64, sizeof b64);
            assert_string_equal(b64, racers[0].key.public_base64);
        }
    }
}

static void test_bad_arguments(void **state)
{
    ota_signing_key_t key;
    char err[128];
    (void)state;

    assert_int_equal(ota__signing_key_load(NULL, &key, err, sizeof err), OTA_ERR_INVALID);
    assert_string_not_equal(err, "");
    assert_int_equal(ota__signing_key_load("", &key, err, sizeof err), OTA_ERR_INVALID);
    assert_int_equal(ota__signing_key_load("/tmp/x.pem", NULL, err, sizeof err), OTA_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_load), cmocka_unit_test(test_openssl_genpkey),
        cmocka_unit_test(test_wrong_key_types),  cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_waits_for_writer), cmocka_unit_test(test_concurrent_creation),
        cmocka_unit_test(test_bad_arguments),    cmocka_unit_test(test_killed_first_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
