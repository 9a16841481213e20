/* nftw(), symlink(), mkdtemp() */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/config.h"
#include "ota/base64.h"
#include "releases/release_source.h"
#include "storage/storage.h"

/* --- helpers --- */

/* A temp folder with an import folder inside, and what the tests put around it. */
static char base[PATH_MAX]; /* realpath of the mkdtemp folder */
static char imp[PATH_MAX];  /* base/imp: the import folder */

static void join(char *out, const char *a, const char *b)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    assert_true(n > 0 && n < PATH_MAX);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len > 0)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

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

static ota_source_t source(ota_source_kind_t kind, const char *text)
{
    ota_source_t s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.text = text;
    s.len = text != NULL ? strlen(text) : 0;
    return s;
}

/* Fetches `src` and checks the outcome; on OK also the bytes; on failure that nothing was handed out. */
static void expect_fetch(const ota_source_t *src, const char *import_dir, ota_storage_t *storage, size_t max,
                         ota_upload_error_t want, const void *want_data, size_t want_len)
{
    unsigned char *data = (unsigned char *)"sentinel";
    size_t len = 12345;
    ota_upload_error_t rc = ota__source_fetch(src, import_dir, storage, max, &data, &len);
    if (rc != want && rc == OTA_UPLOAD_OK)
        free(data);
    if (rc != want)
        fail_msg("source \"%.*s\" (kind %d): got %d (%s), expected %d (%s)", (int)src->len,
                 src->text != NULL ? src->text : "", (int)src->kind, (int)rc, ota__upload_error_message(rc), (int)want,
                 ota__upload_error_message(want));
    if (want == OTA_UPLOAD_OK) {
        assert_non_null(data);
        assert_int_equal(len, want_len);
        assert_memory_equal(data, want_data, want_len);
        free(data);
    } else {
        assert_null(data); /* nothing handed out on a failure */
    }
}

/* Opens `path` both ways (openat2, and the walk used where the kernel has none): the same answer, and on success
 * the file `want_resolved` itself. */
static void expect_path(const char *path, const char *import_dir, ota_upload_error_t want, const char *want_resolved)
{
    for (int walk = 0; walk <= 1; walk++) {
        int fd = -1;
        ota_upload_error_t rc = ota__source_file_open(path, import_dir, walk, &fd);
        if (rc != want)
            fail_msg("path %s in import dir %s (%s): got %d (%s), expected %d (%s)", path,
                     import_dir != NULL ? import_dir : "(null)", walk ? "walk" : "openat2", (int)rc,
                     ota__upload_error_message(rc), (int)want, ota__upload_error_message(want));
        if (rc != OTA_UPLOAD_OK) {
            assert_int_equal(fd, -1);
            continue;
        }
        struct stat got, expected;
        assert_int_equal(fstat(fd, &got), 0);
        close(fd);
        if (want_resolved != NULL) {
            assert_int_equal(stat(want_resolved, &expected), 0);
            assert_true(got.st_ino == expected.st_ino && got.st_dev == expected.st_dev);
        }
    }
}

/* --- the tree: base/{imp/{fw.bin, empty.bin, sub/{deep.bin}, dir/, alias -> fw.bin, evil -> ../secret.bin,
 * evil_abs -> base/secret.bin, evil_dir -> ../outside, dangling_out -> ../nope.bin}, imp_link -> imp,
 * import2/fw.bin, secret.bin, outside/x.bin} --- */

static const char FW[] = "\x7f"
                         "ELF firmware \x00\x01\x02\xff bytes";
#define FW_LEN (sizeof FW - 1)

static int setup_tree(void **state)
{
    char tmpl[] = "/tmp/ota-test-source-XXXXXX", p[PATH_MAX], q[PATH_MAX];
    (void)state;
    if (mkdtemp(tmpl) == NULL || realpath(tmpl, base) == NULL)
        return -1;
    join(imp, base, "imp");
    if (mkdir(imp, 0755) != 0)
        return -1;
    join(p, imp, "fw.bin");
    write_file(p, FW, FW_LEN);
    join(p, imp, "empty.bin");
    write_file(p, "", 0);
    join(p, imp, "sub");
    mkdir(p, 0755);
    join(p, imp, "sub/deep.bin");
    write_file(p, "deep", 4);
    join(p, imp, "dir");
    mkdir(p, 0755);
    join(p, imp, "alias");
    if (symlink("fw.bin", p) != 0)
        return -1;
    join(p, imp, "evil");
    if (symlink("../secret.bin", p) != 0)
        return -1;
    join(p, imp, "evil_abs");
    join(q, base, "secret.bin");
    if (symlink(q, p) != 0)
        return -1;
    join(p, imp, "evil_dir");
    if (symlink("../outside", p) != 0)
        return -1;
    join(p, imp, "dangling_out");
    if (symlink("../nope.bin", p) != 0)
        return -1;
    join(p, base, "imp_link");
    if (symlink("imp", p) != 0)
        return -1;
    join(p, base, "import2");
    mkdir(p, 0755);
    join(p, base, "import2/fw.bin");
    write_file(p, FW, FW_LEN);
    join(p, base, "secret.bin");
    write_file(p, "secret", 6);
    join(p, base, "outside");
    mkdir(p, 0755);
    join(p, base, "outside/x.bin");
    write_file(p, "x", 1);
    return 0;
}

static int teardown_tree(void **state)
{
    (void)state;
    remove_tree(base);
    return 0;
}

/* --- messages --- */

static void test_messages(void **state)
{
    (void)state;
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_INVALID_ARGUMENTS), "Invalid arguments");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_SCHEME_NOT_SUPPORTED), "Scheme not supported");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_FILE_NOT_FOUND), "File not found");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_ACCESS_DENIED), "Access denied");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_DOWNLOAD_FAILED), "Download failed");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_READ_FAILED), "Read failed");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_INVALID_BASE64), "Invalid base64 string");
    assert_string_equal(ota__upload_error_message(OTA_UPLOAD_UNSUPPORTED_CONTENT), "Unsupported content");
    /* Not one of the API's upload errors (answered 503), but still a message, and none of the 422 ones. */
    const char *storage = ota__upload_error_message(OTA_UPLOAD_STORAGE_FAILED);
    assert_non_null(storage);
    assert_true(strlen(storage) > 0);
    for (int e = OTA_UPLOAD_INVALID_ARGUMENTS; e <= OTA_UPLOAD_UNSUPPORTED_CONTENT; e++)
        assert_string_not_equal(storage, ota__upload_error_message((ota_upload_error_t)e));
    /* Every value has its own message. */
    for (int a = OTA_UPLOAD_OK; a <= OTA_UPLOAD_STORAGE_FAILED; a++)
        for (int b = a + 1; b <= OTA_UPLOAD_STORAGE_FAILED; b++)
            assert_string_not_equal(ota__upload_error_message((ota_upload_error_t)a),
                                    ota__upload_error_message((ota_upload_error_t)b));
}

/* --- the file:// access decision --- */

static void test_path_inside(void **state)
{
    char p[PATH_MAX], want[PATH_MAX];
    (void)state;
    join(p, imp, "fw.bin");
    expect_path(p, imp, OTA_UPLOAD_OK, p);
    join(p, imp, "sub/deep.bin");
    expect_path(p, imp, OTA_UPLOAD_OK, p);
    /* Dots that stay inside are fine, and the resolved path has none. */
    join(p, imp, "sub/../fw.bin");
    join(want, imp, "fw.bin");
    expect_path(p, imp, OTA_UPLOAD_OK, want);
    join(p, imp, "./sub//./deep.bin");
    join(want, imp, "sub/deep.bin");
    expect_path(p, imp, OTA_UPLOAD_OK, want);
}

static void test_path_missing_inside(void **state)
{
    char p[PATH_MAX];
    (void)state;
    join(p, imp, "nope.bin");
    expect_path(p, imp, OTA_UPLOAD_FILE_NOT_FOUND, NULL);
    join(p, imp, "nodir/nope.bin");
    expect_path(p, imp, OTA_UPLOAD_FILE_NOT_FOUND, NULL);
    join(p, imp, "fw.bin/below"); /* a file used as a folder */
    expect_path(p, imp, OTA_UPLOAD_FILE_NOT_FOUND, NULL);
}

static void test_path_dotdot_escape(void **state)
{
    char p[PATH_MAX];
    (void)state;
    join(p, imp, "../secret.bin"); /* exists */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "../nope.bin"); /* does not */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "../import2/fw.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "sub/../../secret.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "../../../../../../../../etc/passwd");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "../../../../../../../../nonexistent/file");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "..");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

static void test_path_absolute_outside(void **state)
{
    char p[PATH_MAX];
    (void)state;
    expect_path("/etc/passwd", imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    expect_path("/nonexistent/firmware.bin", imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, base, "secret.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, base, "nope.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    expect_path("/", imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    /* Relative paths name nothing. */
    expect_path("fw.bin", imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    expect_path("", imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

static void test_path_symlink_out(void **state)
{
    char p[PATH_MAX];
    (void)state;
    join(p, imp, "evil"); /* relative link to ../secret.bin */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "evil_abs"); /* absolute link to base/secret.bin */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "evil_dir/x.bin"); /* a folder link that leads out */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

/*
 * A link inside that leads out to something missing: outside "whether it exists or not" (openapi.yaml), so the answer
 * must not tell whether a file exists out there.
 */
static void test_path_symlink_out_missing_target(void **state)
{
    char p[PATH_MAX];
    (void)state;
    join(p, imp, "dangling_out"); /* -> ../nope.bin */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "evil_dir/nope.bin"); /* evil_dir -> ../outside, which exists; nope.bin does not */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

/*
 * Below the import folder no symbolic link is followed, even one that stays inside: a link is refused like a
 * path outside, whatever it points at, so that no link swapped in can ever lead out (docs/operations.md).
 */
static void test_path_symlink_inside(void **state)
{
    char p[PATH_MAX], q[PATH_MAX];
    (void)state;
    join(p, imp, "alias"); /* -> fw.bin */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(q, imp, "sub_alias");
    assert_int_equal(symlink("sub", q), 0);
    join(p, imp, "sub_alias/deep.bin"); /* a folder link on the way */
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, imp, "sub_alias/nope.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

/* A FIFO (or any file that is not a regular one) is refused at once, not read: no writer holds a thread. */
static void test_path_fifo(void **state)
{
    char p[PATH_MAX], url[PATH_MAX + 64];
    (void)state;
    join(p, imp, "pipe.bin");
    assert_int_equal(mkfifo(p, 0644), 0);
    snprintf(url, sizeof url, "file://%s", p);
    ota_source_t src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_READ_FAILED, NULL, 0);
}

static void test_path_no_import_dir(void **state)
{
    char p[PATH_MAX];
    (void)state;
    join(p, imp, "fw.bin");
    expect_path(p, NULL, OTA_UPLOAD_ACCESS_DENIED, NULL);
    expect_path("/etc/passwd", NULL, OTA_UPLOAD_ACCESS_DENIED, NULL);
    expect_path("/nonexistent", NULL, OTA_UPLOAD_ACCESS_DENIED, NULL);
    /* An import folder that does not exist lets nothing through either. */
    join(p, base, "no-such-import/fw.bin");
    char missing[PATH_MAX];
    join(missing, base, "no-such-import");
    expect_path(p, missing, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

static void test_path_import_dir_spellings(void **state)
{
    char p[PATH_MAX], dir[PATH_MAX], want[PATH_MAX];
    (void)state;
    join(want, imp, "fw.bin");

    /* With a trailing slash. */
    join(dir, imp, "");
    join(p, imp, "fw.bin");
    expect_path(p, dir, OTA_UPLOAD_OK, want);
    join(p, imp, "../secret.bin");
    expect_path(p, dir, OTA_UPLOAD_ACCESS_DENIED, NULL);

    /* Through a symbolic link: paths under the link and under the real folder both work. */
    join(dir, base, "imp_link");
    join(p, dir, "fw.bin");
    expect_path(p, dir, OTA_UPLOAD_OK, want);
    join(p, imp, "fw.bin");
    expect_path(p, dir, OTA_UPLOAD_OK, want);
    join(p, dir, "nope.bin");
    expect_path(p, dir, OTA_UPLOAD_FILE_NOT_FOUND, NULL);
    join(p, dir, "../secret.bin");
    expect_path(p, dir, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, dir, "evil");
    expect_path(p, dir, OTA_UPLOAD_ACCESS_DENIED, NULL);

    /* Through a link with a trailing slash. */
    join(dir, base, "imp_link/");
    join(p, base, "imp_link/fw.bin");
    expect_path(p, dir, OTA_UPLOAD_OK, want);
}

static void test_path_sibling_prefix(void **state)
{
    char p[PATH_MAX], dir[PATH_MAX];
    (void)state;
    /* base/imp is the import folder; base/import2 only starts with its name. */
    join(p, base, "import2/fw.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(p, base, "import2/nope.bin");
    expect_path(p, imp, OTA_UPLOAD_ACCESS_DENIED, NULL);
    join(dir, imp, "");
    join(p, base, "import2/fw.bin");
    expect_path(p, dir, OTA_UPLOAD_ACCESS_DENIED, NULL);
    /* Through the link: base/imp_link2 does not exist but shares the prefix. */
    join(dir, base, "imp_link");
    join(p, base, "imp_link2/fw.bin");
    expect_path(p, dir, OTA_UPLOAD_ACCESS_DENIED, NULL);
}

/* --- bytes and blob --- */

static void test_bytes(void **state)
{
    ota_source_t src = {.kind = OTA_SOURCE_BYTES, .text = FW, .len = FW_LEN};
    (void)state;
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, NULL, NULL, FW_LEN, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, NULL, NULL, FW_LEN - 1, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    src.len = 0;
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    src.len = 1;
    expect_fetch(&src, NULL, NULL, 1, OTA_UPLOAD_OK, FW, 1);
}

static void test_blob(void **state)
{
    char b64[128];
    ota_source_t src;
    (void)state;

    ota_base64_encode(FW, FW_LEN, b64);
    src = source(OTA_SOURCE_BLOB, b64);
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, NULL, NULL, FW_LEN, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, NULL, NULL, FW_LEN - 1, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);

    src = source(OTA_SOURCE_BLOB, "aGVsbG8=");
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_OK, "hello", 5);
    src = source(OTA_SOURCE_BLOB, "AA==");
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_OK, "\0", 1);

    /* The length counts, not a NUL. */
    src = source(OTA_SOURCE_BLOB, "aGVsbG8=garbage");
    src.len = 8;
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_OK, "hello", 5);
}

static void test_blob_invalid(void **state)
{
    static const char *const bad[] = {
        "aGVsbG8",                                 /* missing padding */
        "aGVsbG8*",                                /* outside the alphabet */
        "aGVs bG8=",                               /* a space */
        "aGVsbG8=\n", "a", "====", "aGVsbG8=aGVs", /* data after padding */
        "aGVsbG9=",                                /* non-zero leftover bits */
        "aGVsbG8_",                                /* base64url alphabet */
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ota_source_t src = source(OTA_SOURCE_BLOB, bad[i]);
        expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_INVALID_BASE64, NULL, 0);
    }
}

static void test_blob_empty(void **state)
{
    ota_source_t src = source(OTA_SOURCE_BLOB, "");
    (void)state;
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
}

/* --- file:// --- */

static void file_url(char *out, size_t cap, const char *scheme, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s%s/%s", scheme, dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static void test_file_url(void **state)
{
    char url[PATH_MAX + 64];
    ota_source_t src;
    (void)state;

    file_url(url, sizeof url, "file://", imp, "fw.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, imp, NULL, FW_LEN, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, imp, NULL, FW_LEN - 1, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);

    file_url(url, sizeof url, "file://localhost", imp, "sub/deep.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_OK, "deep", 4);

    file_url(url, sizeof url, "file://", imp, "alias"); /* a link, even to a file inside */
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);

    /* Only `len` bytes of the text count. */
    file_url(url, sizeof url, "file://", imp, "fw.binXYZ");
    src = source(OTA_SOURCE_FILE, url);
    src.len -= 3;
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
}

static void test_file_url_scheme_case(void **state)
{
    char url[PATH_MAX + 64];
    ota_source_t src;
    (void)state;
    file_url(url, sizeof url, "FILE://", imp, "fw.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    file_url(url, sizeof url, "File://", imp, "fw.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
}

static void test_file_url_errors(void **state)
{
    char url[PATH_MAX + 64];
    ota_source_t src;
    (void)state;

    file_url(url, sizeof url, "file://", imp, "empty.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);

    file_url(url, sizeof url, "file://", imp, "dir");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_READ_FAILED, NULL, 0);

    file_url(url, sizeof url, "file://", imp, "nope.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_FILE_NOT_FOUND, NULL, 0);

    file_url(url, sizeof url, "file://", imp, "../secret.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);

    file_url(url, sizeof url, "file://", imp, "evil");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);

    src = source(OTA_SOURCE_FILE, "file:///etc/passwd");
    expect_fetch(&src, imp, NULL, 1 << 20, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);
}

/* "every file:// when no import folder is set" is Access denied (openapi.yaml), however it is spelled. */
static void test_file_url_without_import_dir(void **state)
{
    static const char *const urls[] = {
        "file:///etc/passwd",       "file:///nonexistent.bin",     "file://localhost/etc/passwd", "file://",
        "file://relative/path.bin", "file://otherhost/etc/passwd",
    };
    char url[PATH_MAX + 64];
    ota_source_t src;
    (void)state;

    file_url(url, sizeof url, "file://", imp, "fw.bin");
    src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);
    int wrong = 0;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        unsigned char *data = NULL;
        size_t len = 0;
        src = source(OTA_SOURCE_FILE, urls[i]);
        ota_upload_error_t rc = ota__source_fetch(&src, NULL, NULL, 1 << 20, &data, &len);
        free(data);
        if (rc != OTA_UPLOAD_ACCESS_DENIED) {
            print_error("\"%s\" without an import folder: got %s, expected Access denied\n", urls[i],
                        ota__upload_error_message(rc));
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
}

static void test_scheme_not_supported(void **state)
{
    static const char *const urls[] = {
        "ftp://127.0.0.1/fw.bin",
        "gopher://127.0.0.1/",
        "file:/etc/passwd",
        "http:/x",
        "/etc/passwd",
        "fw.bin",
        "",
        "data:,hello",
        "scp://host/fw.bin",
        "httpx://host/",
    };
    (void)state;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        ota_source_t src = source(OTA_SOURCE_FILE, urls[i]);
        expect_fetch(&src, imp, NULL, 1024, OTA_UPLOAD_SCHEME_NOT_SUPPORTED, NULL, 0);
    }
}

/* --- http:// against a server in this process --- */

static int http_fd = -1;
static int http_port;
static pthread_t http_thread;
static atomic_bool http_stop;
static atomic_int http_requests;

#define BIG_LEN 5000

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, const char *status, const char *extra_headers, const char *body, size_t body_len)
{
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                     body_len, extra_headers);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, body_len);
}

static void serve_one(int fd)
{
    char req[4096], path[256];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    req[got] = '\0';
    if (sscanf(req, "GET %255s HTTP/1.", path) != 1)
        return;
    atomic_fetch_add(&http_requests, 1);

    if (strcmp(path, "/ok") == 0) {
        respond(fd, "200 OK", "Content-Type: application/octet-stream\r\n", FW, FW_LEN);
    } else if (strcmp(path, "/missing") == 0) {
        respond(fd, "404 Not Found", "", "not found", 9);
    } else if (strcmp(path, "/gone") == 0) {
        respond(fd, "410 Gone", "", "gone", 4);
    } else if (strcmp(path, "/forbidden") == 0) {
        respond(fd, "403 Forbidden", "", "forbidden", 9);
    } else if (strcmp(path, "/unauthorized") == 0) {
        respond(fd, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"x\"\r\n", "no", 2);
    } else if (strcmp(path, "/error") == 0) {
        respond(fd, "500 Internal Server Error", "", "oops", 4);
    } else if (strcmp(path, "/unavailable") == 0) {
        respond(fd, "503 Service Unavailable", "", "", 0);
    } else if (strcmp(path, "/empty") == 0) {
        respond(fd, "200 OK", "", "", 0);
    } else if (strcmp(path, "/big") == 0) {
        static char big[BIG_LEN];
        memset(big, 'B', sizeof big);
        respond(fd, "200 OK", "", big, sizeof big);
    } else if (strcmp(path, "/redirect") == 0) {
        respond(fd, "302 Found", "Location: /ok\r\n", "", 0);
    } else if (strcmp(path, "/redirect-file") == 0) {
        respond(fd, "302 Found", "Location: file:///etc/passwd\r\n", "", 0);
    } else {
        respond(fd, "404 Not Found", "", "", 0);
    }
}

static void *http_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(http_fd, NULL, NULL);
        if (atomic_load(&http_stop)) {
            if (c >= 0)
                close(c);
            return NULL;
        }
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        serve_one(c);
        shutdown(c, SHUT_WR);
        /* Drains what the client still sends so that close() does not reset the connection. */
        char sink[256];
        while (recv(c, sink, sizeof sink, 0) > 0)
            ;
        close(c);
    }
}

static int bound_socket(int *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof addr;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

static int setup_http(void **state)
{
    (void)state;
    atomic_store(&http_stop, false);
    if ((http_fd = bound_socket(&http_port)) < 0 || listen(http_fd, 16) != 0)
        return -1;
    return pthread_create(&http_thread, NULL, http_main, NULL) == 0 ? 0 : -1;
}

static int teardown_http(void **state)
{
    (void)state;
    atomic_store(&http_stop, true);
    /* Wakes the accept() with one last connection. */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c >= 0) {
        connect(c, (struct sockaddr *)&addr, sizeof addr);
        close(c);
    }
    pthread_join(http_thread, NULL);
    close(http_fd);
    return 0;
}

static void expect_http(const char *scheme, const char *path, size_t max, ota_upload_error_t want,
                        const void *want_data, size_t want_len)
{
    char url[256];
    snprintf(url, sizeof url, "%s127.0.0.1:%d%s", scheme, http_port, path);
    ota_source_t src = source(OTA_SOURCE_FILE, url);
    int before = atomic_load(&http_requests);
    expect_fetch(&src, NULL, NULL, max, want, want_data, want_len);
    assert_true(atomic_load(&http_requests) > before); /* it really asked the server */
}

static void test_http_ok(void **state)
{
    (void)state;
    expect_http("http://", "/ok", 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_http("http://", "/ok", FW_LEN, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_http("HTTP://", "/ok", 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_http("http://", "/redirect", 1024, OTA_UPLOAD_OK, FW, FW_LEN);
}

static void test_http_status(void **state)
{
    (void)state;
    expect_http("http://", "/missing", 1024, OTA_UPLOAD_FILE_NOT_FOUND, NULL, 0);
    expect_http("http://", "/gone", 1024, OTA_UPLOAD_FILE_NOT_FOUND, NULL, 0);
    expect_http("http://", "/forbidden", 1024, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);
    expect_http("http://", "/unauthorized", 1024, OTA_UPLOAD_ACCESS_DENIED, NULL, 0);
    expect_http("http://", "/error", 1024, OTA_UPLOAD_DOWNLOAD_FAILED, NULL, 0);
    expect_http("http://", "/unavailable", 1024, OTA_UPLOAD_DOWNLOAD_FAILED, NULL, 0);
}

static void test_http_content(void **state)
{
    (void)state;
    expect_http("http://", "/empty", 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    expect_http("http://", "/big", BIG_LEN - 1, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    expect_http("http://", "/big", 100, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    expect_http("http://", "/ok", FW_LEN - 1, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);

    char big[BIG_LEN];
    memset(big, 'B', sizeof big);
    expect_http("http://", "/big", BIG_LEN, OTA_UPLOAD_OK, big, BIG_LEN);
}

/* A redirect must not take a remote source to the local filesystem. */
static void test_http_redirect_to_file(void **state)
{
    (void)state;
    expect_http("http://", "/redirect-file", 1 << 20, OTA_UPLOAD_DOWNLOAD_FAILED, NULL, 0);
}

static void test_http_refused(void **state)
{
    int port = 0;
    char url[128];
    (void)state;
    /* Bound but not listening: connections to it are refused, and no one else can take the port meanwhile. */
    int fd = bound_socket(&port);
    assert_true(fd >= 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fw.bin", port);
    ota_source_t src = source(OTA_SOURCE_FILE, url);
    expect_fetch(&src, NULL, NULL, 1024, OTA_UPLOAD_DOWNLOAD_FAILED, NULL, 0);
    close(fd);
}

/* --- upload (object storage, fs backend) --- */

typedef struct {
    char dir[PATH_MAX];
    ota_config_t cfg;
    ota_storage_t *storage;
} upload_fixture_t;

static char cfg_storage[] = "fs", cfg_public_url[] = "http://127.0.0.1:1", cfg_region[] = "us-east-1";

static int setup_storage(void **state)
{
    upload_fixture_t *f = calloc(1, sizeof *f);
    char err[256] = "";
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ota-test-upload-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->cfg.storage = cfg_storage;
    f->cfg.storage_dir = f->dir;
    f->cfg.public_url = cfg_public_url;
    f->cfg.s3_region = cfg_region;
    f->storage = ota__storage_open(&f->cfg, err, sizeof err);
    if (f->storage == NULL) {
        print_error("ota__storage_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_storage(void **state)
{
    upload_fixture_t *f = *state;
    ota__storage_close(f->storage);
    remove_tree(f->dir);
    free(f);
    return 0;
}

static ota_source_t upload(const char *key, uint64_t size)
{
    ota_source_t s;
    memset(&s, 0, sizeof s);
    s.kind = OTA_SOURCE_UPLOAD;
    snprintf(s.upload_id, sizeof s.upload_id, "3f2c1b9e-0d4a-4f6b-8a7e-1c2d3e4f5a6b");
    snprintf(s.upload_key, sizeof s.upload_key, "%s", key);
    snprintf(s.copy_key, sizeof s.copy_key, "releases/r/bin");
    s.upload_size = size;
    return s;
}

static void test_upload(void **state)
{
    upload_fixture_t *f = *state;
    char err[256] = "";
    ota_source_t src;

    assert_int_equal(ota__storage_put(f->storage, "uploads/a.bin", FW, FW_LEN, err, sizeof err), OTA_OK);

    src = upload("uploads/a.bin", FW_LEN);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, NULL, f->storage, FW_LEN, OTA_UPLOAD_OK, FW, FW_LEN);
    expect_fetch(&src, NULL, f->storage, FW_LEN - 1, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);

    src = upload("uploads/a.bin", FW_LEN + 1);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    src = upload("uploads/a.bin", FW_LEN - 1);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
    src = upload("uploads/a.bin", 0);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);

    src = upload("uploads/missing.bin", FW_LEN);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_FILE_NOT_FOUND, NULL, 0);
    src = upload("nodir/missing.bin", FW_LEN);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_FILE_NOT_FOUND, NULL, 0);

    /* What is read is the copy at the release's own key: writing the upload again does not reach it. */
    src = upload("uploads/a.bin", FW_LEN);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_OK, FW, FW_LEN);
    assert_int_equal(ota__storage_put(f->storage, "uploads/a.bin", "other bytes", 11, err, sizeof err), OTA_OK);
    unsigned char *copy = NULL;
    size_t copy_len = 0;
    assert_int_equal(ota__storage_get(f->storage, "releases/r/bin", 1024, &copy, &copy_len, err, sizeof err), OTA_OK);
    assert_int_equal(copy_len, FW_LEN);
    assert_memory_equal(copy, FW, FW_LEN);
    free(copy);
}

/* An announced size of 0 never matches: an upload of nothing is not content. */
static void test_upload_empty_object(void **state)
{
    upload_fixture_t *f = *state;
    char err[256] = "";
    (void)state;
    assert_int_equal(ota__storage_put(f->storage, "uploads/empty.bin", "", 0, err, sizeof err), OTA_OK);
    ota_source_t src = upload("uploads/empty.bin", 0);
    expect_fetch(&src, NULL, f->storage, 1024, OTA_UPLOAD_UNSUPPORTED_CONTENT, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test_setup_teardown(test_path_inside, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_missing_inside, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_dotdot_escape, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_absolute_outside, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_symlink_out, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_symlink_out_missing_target, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_symlink_inside, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_fifo, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_no_import_dir, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_import_dir_spellings, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_path_sibling_prefix, setup_tree, teardown_tree),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_blob),
        cmocka_unit_test(test_blob_invalid),
        cmocka_unit_test(test_blob_empty),
        cmocka_unit_test_setup_teardown(test_file_url, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_file_url_scheme_case, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_file_url_errors, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_file_url_without_import_dir, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_scheme_not_supported, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_http_ok, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_http_status, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_http_content, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_http_redirect_to_file, setup_http, teardown_http),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test_setup_teardown(test_upload, setup_storage, teardown_storage),
        cmocka_unit_test_setup_teardown(test_upload_empty_object, setup_storage, teardown_storage),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
