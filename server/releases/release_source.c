#include "releases/release_source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/log.h"
#include "ota/base64.h"
#include "core/file_io.h"

/* Remote sources: give up on a server that does not connect, or sends slower than 1 KiB/s for 30 s. */
#define FETCH_CONNECT_TIMEOUT_S 10L
#define FETCH_LOW_SPEED_BYTES 1024L
#define FETCH_LOW_SPEED_TIME_S 30L
#define FETCH_MAX_REDIRECTS 5L

const char *ota__upload_error_message(ota_upload_error_t e)
{
    switch (e) {
    case OTA_UPLOAD_OK: return "OK";
    case OTA_UPLOAD_INVALID_ARGUMENTS: return "Invalid arguments";
    case OTA_UPLOAD_SCHEME_NOT_SUPPORTED: return "Scheme not supported";
    case OTA_UPLOAD_FILE_NOT_FOUND: return "File not found";
    case OTA_UPLOAD_ACCESS_DENIED: return "Access denied";
    case OTA_UPLOAD_DOWNLOAD_FAILED: return "Download failed";
    case OTA_UPLOAD_READ_FAILED: return "Read failed";
    case OTA_UPLOAD_INVALID_BASE64: return "Invalid base64 string";
    case OTA_UPLOAD_UNSUPPORTED_CONTENT: return "Unsupported content";
    case OTA_UPLOAD_STORAGE_FAILED: return "Storage unavailable";
    }
    return "Read failed";
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(s, prefix, n) == 0;
}

/* --- file:// --- */

/*
 * Resolves "." and ".." of an absolute path as text, without touching the
 * filesystem, so that "/import/../etc/passwd" is judged as "/etc/passwd"
 * whether or not it exists.
 */
static bool normalize(const char *path, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = path;
    if (*p != '/' || cap < 2)
        return false;
    while (*p != '\0') {
        while (*p == '/')
            p++;
        const char *end = strchr(p, '/');
        size_t seg = end != NULL ? (size_t)(end - p) : strlen(p);
        if (seg == 0 || (seg == 1 && p[0] == '.')) {
            /* nothing */
        } else if (seg == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--; /* the '/' before the dropped segment */
        } else {
            if (n + 1 + seg + 1 > cap)
                return false;
            out[n++] = '/';
            memcpy(out + n, p, seg);
            n += seg;
        }
        p += seg;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return true;
}

/* True when `path` is `dir` itself or below it. */
static bool is_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n > 0 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Most symbolic links followed by hand while judging a missing path. */
#define LINK_DEPTH_MAX 8

static ota_upload_error_t judge_missing(const char *lexical, const char *dir_real, int depth);

/* A dangling link: judged by where it points. */
static ota_upload_error_t judge_link(const char *link, const char *dir_real, int depth)
{
    char target[PATH_MAX], joined[PATH_MAX], normal[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0 || (size_t)n > sizeof joined / 2 || depth >= LINK_DEPTH_MAX)
        return OTA_UPLOAD_ACCESS_DENIED;
    target[n] = '\0';
    int written;
    if (target[0] == '/') {
        written = snprintf(joined, sizeof joined, "%s", target);
    } else {
        const char *slash = strrchr(link, '/');
        int dir_len = slash != NULL ? (int)(slash - link) : 0;
        written = snprintf(joined, sizeof joined, "%.*s/%.*s", dir_len, link, (int)(sizeof joined / 2), target);
    }
    if (written < 0 || (size_t)written >= sizeof joined)
        return OTA_UPLOAD_ACCESS_DENIED;
    if (!normalize(joined, normal, sizeof normal) || !is_inside(normal, dir_real))
        return OTA_UPLOAD_ACCESS_DENIED;
    return judge_missing(normal, dir_real, depth + 1);
}

/*
 * For a path that does not resolve: judged by its deepest existing part, so
 * that a missing file behind a link leading out of the import folder is
 * "Access denied" like any other path outside, not "File not found".
 */
static ota_upload_error_t judge_missing(const char *lexical, const char *dir_real, int depth)
{
    char part[PATH_MAX], real[PATH_MAX];
    struct stat st;
    snprintf(part, sizeof part, "%s", lexical);
    for (;;) {
        if (lstat(part, &st) == 0 && S_ISLNK(st.st_mode) && realpath(part, real) == NULL)
            return judge_link(part, dir_real, depth);
        if (realpath(part, real) != NULL)
            return (strcmp(real, dir_real) == 0 || is_inside(real, dir_real)) ? OTA_UPLOAD_FILE_NOT_FOUND
                                                                              : OTA_UPLOAD_ACCESS_DENIED;
        char *slash = strrchr(part, '/');
        if (slash == NULL || slash == part)
            return OTA_UPLOAD_ACCESS_DENIED;
        *slash = '\0';
    }
}

ota_upload_error_t ota__source_file_path(const char *path, const char *import_dir, char *resolved, size_t cap)
{
    char lexical[PATH_MAX], dir_real[PATH_MAX], real[PATH_MAX];
    if (import_dir == NULL || realpath(import_dir, dir_real) == NULL)
        return OTA_UPLOAD_ACCESS_DENIED;
    if (!normalize(path, lexical, sizeof lexical))
        return OTA_UPLOAD_ACCESS_DENIED;
    if (!is_inside(lexical, dir_real) && !is_inside(lexical, import_dir))
        return OTA_UPLOAD_ACCESS_DENIED;
    if (realpath(lexical, real) == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return judge_missing(lexical, dir_real, 0);
        return OTA_UPLOAD_ACCESS_DENIED;
    }
    /* A symbolic link inside the folder must not lead out of it. */
    if (!is_inside(real, dir_real) || strlen(real) + 1 > cap)
        return OTA_UPLOAD_ACCESS_DENIED;
    memcpy(resolved, real, strlen(real) + 1);
    return OTA_UPLOAD_OK;
}

static ota_upload_error_t read_file(const char *path, size_t max, unsigned char **data, size_t *len)
{
    ota_err_t rc = ota__read_file(path, max, data, len);
    if (rc == OTA_OK && *len == 0) {
        free(*data);
        *data = NULL;
        return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    }
    switch (rc) {
    case OTA_OK: return OTA_UPLOAD_OK;
    case OTA_ERR_TOO_LARGE: return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    case OTA_ERR_NOT_FOUND: return OTA_UPLOAD_FILE_NOT_FOUND;
    default: return errno == EACCES || errno == EPERM ? OTA_UPLOAD_ACCESS_DENIED : OTA_UPLOAD_READ_FAILED;
    }
}

static ota_upload_error_t fetch_file(const char *url, size_t url_len, const char *import_dir, size_t max,
                                     unsigned char **data, size_t *len)
{
    char path[PATH_MAX], resolved[PATH_MAX];
    const char *p = url + strlen("file://");
    size_t n = url_len - strlen("file://");
    /* file:///abs/path, or file://localhost/abs/path */
    if (has_prefix(p, n, "localhost/")) {
        p += strlen("localhost");
        n -= strlen("localhost");
    }
    /* Without an import folder every file:// is refused; a path that is not absolute is never inside one. */
    if (import_dir == NULL || n == 0 || p[0] != '/' || n >= sizeof path || memchr(p, '\0', n) != NULL)
        return OTA_UPLOAD_ACCESS_DENIED;
    memcpy(path, p, n);
    path[n] = '\0';
    ota_upload_error_t rc = ota__source_file_path(path, import_dir, resolved, sizeof resolved);
    if (rc != OTA_UPLOAD_OK)
        return rc;
    return read_file(resolved, max, data, len);
}

/* --- http:// and https:// --- */

typedef struct download {
    unsigned char *buf;
    size_t len, cap, max;
    bool too_large;
} download_t;

static size_t on_body(char *chunk, size_t size, size_t count, void *arg)
{
    download_t *d = arg;
    size_t n = size * count;
    if (d->len + n > d->max) {
        d->too_large = true;
        return 0; /* aborts the transfer: never hold more than the limit */
    }
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64 * 1024;
        while (cap < d->len + n)
            cap *= 2;
        if (cap > d->max)
            cap = d->max;
        unsigned char *bigger = realloc(d->buf, cap);
        if (bigger == NULL)
            return 0;
        d->buf = bigger;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, chunk, n);
    d->len += n;
    return n;
}

static ota_upload_error_t fetch_http(const char *url, size_t url_len, size_t max, unsigned char **data, size_t *len)
{
    download_t d = {.max = max};
    ota_upload_error_t rc = OTA_UPLOAD_DOWNLOAD_FAILED;
    long status = 0;
    char *url_z = strndup(url, url_len);
    CURL *curl = curl_easy_init();
    if (url_z == NULL || curl == NULL)
        goto Exit;

    curl_easy_setopt(curl, CURLOPT_URL, url_z);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, FETCH_MAX_REDIRECTS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, FETCH_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, FETCH_LOW_SPEED_BYTES);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, FETCH_LOW_SPEED_TIME_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d);
    CURLcode res = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

    if (d.too_large) {
        rc = OTA_UPLOAD_UNSUPPORTED_CONTENT;
    } else if (res != CURLE_OK) {
        ota_log_warn("release source %s: %s", url_z, curl_easy_strerror(res));
    } else if (status == 404 || status == 410) {
        rc = OTA_UPLOAD_FILE_NOT_FOUND;
    } else if (status == 401 || status == 403) {
        rc = OTA_UPLOAD_ACCESS_DENIED;
    } else if (status < 200 || status > 299) {
        ota_log_warn("release source %s: HTTP %ld", url_z, status);
    } else if (d.len == 0) {
        rc = OTA_UPLOAD_UNSUPPORTED_CONTENT;
    } else {
        *data = d.buf;
        *len = d.len;
        d.buf = NULL;
        rc = OTA_UPLOAD_OK;
    }

Exit:
    if (curl != NULL)
        curl_easy_cleanup(curl);
    free(url_z);
    free(d.buf);
    return rc;
}

/* --- blob and upload --- */

static ota_upload_error_t decode_blob(const char *text, size_t text_len, size_t max, unsigned char **data, size_t *len)
{
    size_t cap = text_len / 4 * 3 + 3;
    unsigned char *buf = malloc(cap > 0 ? cap : 1);
    size_t n = 0;
    if (buf == NULL)
        return OTA_UPLOAD_READ_FAILED;
    if (ota_base64_decode(text, text_len, buf, cap, &n) != OTA_OK) {
        free(buf);
        return OTA_UPLOAD_INVALID_BASE64;
    }
    if (n == 0 || n > max) {
        free(buf);
        return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    }
    *data = buf;
    *len = n;
    return OTA_UPLOAD_OK;
}

static ota_upload_error_t read_upload(const ota_source_t *src, ota_storage_t *storage, size_t max,
                                      unsigned char **data, size_t *len)
{
    char err[256];
    ota_err_t rc = ota__storage_get(storage, src->upload_key, max, data, len, err, sizeof err);
    if (rc == OTA_ERR_NOT_FOUND)
        return OTA_UPLOAD_FILE_NOT_FOUND;
    if (rc == OTA_ERR_TOO_LARGE)
        return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    if (rc != OTA_OK) {
        ota_log_warn("reading upload %s: %s", src->upload_key, err);
        return OTA_UPLOAD_STORAGE_FAILED;
    }
    if (*len == 0 || *len != src->upload_size) { /* empty, or other bytes than the client announced */
        free(*data);
        *data = NULL;
        return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    }
    return OTA_UPLOAD_OK;
}

static ota_upload_error_t copy_bytes(const char *bytes, size_t n, size_t max, unsigned char **data, size_t *len)
{
    if (n == 0 || n > max)
        return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    if ((*data = malloc(n)) == NULL)
        return OTA_UPLOAD_READ_FAILED;
    memcpy(*data, bytes, n);
    *len = n;
    return OTA_UPLOAD_OK;
}

ota_upload_error_t ota__source_fetch(const ota_source_t *src, const char *import_dir, ota_storage_t *storage,
                                     size_t max, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    switch (src->kind) {
    case OTA_SOURCE_BYTES:
        return copy_bytes(src->text, src->len, max, data, len);
    case OTA_SOURCE_BLOB:
        return decode_blob(src->text, src->len, max, data, len);
    case OTA_SOURCE_UPLOAD:
        return read_upload(src, storage, max, data, len);
    case OTA_SOURCE_FILE:
        if (has_prefix(src->text, src->len, "file://"))
            return fetch_file(src->text, src->len, import_dir, max, data, len);
        if (has_prefix(src->text, src->len, "http://") || has_prefix(src->text, src->len, "https://"))
            return fetch_http(src->text, src->len, max, data, len);
        return OTA_UPLOAD_SCHEME_NOT_SUPPORTED;
    }
    return OTA_UPLOAD_INVALID_ARGUMENTS;
}
