#define _GNU_SOURCE /* O_PATH */
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

/* True when `path` is below `dir`; then *rel is the part after it (no leading '/'). */
static bool is_inside(const char *path, const char *dir, const char **rel)
{
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/')
        n--;
    if (strncmp(path, dir, n) != 0 || path[n] != '/' || path[n + 1] == '\0')
        return false;
    *rel = path + n + 1;
    return true;
}

static ota_upload_error_t open_error(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return OTA_UPLOAD_FILE_NOT_FOUND;
    case ELOOP: /* a symbolic link on the way: never followed below the import folder */
    case EXDEV:
    case EACCES:
    case EPERM:
        return OTA_UPLOAD_ACCESS_DENIED;
    default:
        return OTA_UPLOAD_READ_FAILED;
    }
}

/*
 * The import folder itself is the operator's setting and may be reached through symbolic links; below it
 * nothing is followed. The path is judged as text first ("..", and whether it is below the folder at all, so
 * that a path outside is refused whether it exists or not), then opened beneath the folder's descriptor with no
 * symbolic link followed at any level (ota__open_beneath). What is judged is what is opened: no link swapped in
 * between a check and the open can lead out. O_NONBLOCK: a FIFO does not hold a job thread waiting for a writer.
 */
ota_upload_error_t ota__source_file_open(const char *path, const char *import_dir, bool walk, int *fd)
{
    char lexical[PATH_MAX], dir_real[PATH_MAX];
    const char *rel = NULL;
    *fd = -1;
    if (import_dir == NULL || realpath(import_dir, dir_real) == NULL)
        return OTA_UPLOAD_ACCESS_DENIED;
    if (!normalize(path, lexical, sizeof lexical))
        return OTA_UPLOAD_ACCESS_DENIED;
    if (!is_inside(lexical, dir_real, &rel) && !is_inside(lexical, import_dir, &rel))
        return OTA_UPLOAD_ACCESS_DENIED;
    int dir = open(dir_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return OTA_UPLOAD_ACCESS_DENIED;
    *fd = ota__open_beneath(dir, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, walk);
    int err = errno;
    close(dir);
    return *fd >= 0 ? OTA_UPLOAD_OK : open_error(err);
}

static ota_upload_error_t read_fd(int fd, size_t max, unsigned char **data, size_t *len)
{
    ota_err_t rc = ota__read_fd(fd, max, data, len);
    if (rc == OTA_OK && *len == 0) {
        free(*data);
        *data = NULL;
        return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    }
    switch (rc) {
    case OTA_OK: return OTA_UPLOAD_OK;
    case OTA_ERR_TOO_LARGE: return OTA_UPLOAD_UNSUPPORTED_CONTENT;
    default:
        return OTA_UPLOAD_READ_FAILED; /* not a regular file (a folder, a FIFO, a device), or a read error */
    }
}

static ota_upload_error_t fetch_file(const char *url, size_t url_len, const char *import_dir, size_t max,
                                     unsigned char **data, size_t *len)
{
    char path[PATH_MAX];
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
    int fd;
    ota_upload_error_t rc = ota__source_file_open(path, import_dir, false, &fd);
    if (rc != OTA_UPLOAD_OK)
        return rc;
    rc = read_fd(fd, max, data, len);
    close(fd);
    return rc;
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

/*
 * The upload's presigned PUT URL stays valid after a release names it, so the release never uses the upload's
 * object: it is copied to the release's own key first, and what is read, checked and hashed is the copy.
 */
static ota_upload_error_t read_upload(const ota_source_t *src, ota_storage_t *storage, size_t max,
                                      unsigned char **data, size_t *len)
{
    char err[256];
    ota_err_t rc = ota__storage_copy(storage, src->upload_key, src->copy_key, err, sizeof err);
    if (rc == OTA_OK)
        rc = ota__storage_get(storage, src->copy_key, max, data, len, err, sizeof err);
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
