#define _GNU_SOURCE /* AT_FDCWD with utimensat */
#include "storage/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file_io.h"
#include "core/ids.h"

ota_err_t ota__fs_path(const char *root, const char *key, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", root, key);
    return (n < 0 || (size_t)n >= cap) ? OTA_ERR_TOO_LARGE : OTA_OK;
}

/* Creates every missing folder above the file at `path`; each new folder's entry is made durable in its parent. */
static ota_err_t make_parents(char *path)
{
    for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0755);
        int saved = errno;
        if (rc == 0)
            ota__fsync_parent(path);
        *p = '/';
        if (rc != 0 && saved != EEXIST) {
            errno = saved;
            return OTA_ERR_IO;
        }
    }
    return OTA_OK;
}

ota_err_t ota__fs_put(const char *root, const char *key, const void *data, size_t len, char *err, size_t cap)
{
    char path[1024];
    if (ota__fs_path(root, key, path, sizeof path) != OTA_OK) {
        snprintf(err, cap, "object path too long");
        return OTA_ERR_TOO_LARGE;
    }
    if (make_parents(path) != OTA_OK) {
        snprintf(err, cap, "cannot create folders for %s: %s", path, strerror(errno));
        return OTA_ERR_IO;
    }
    return ota__write_file_durable(path, data, len, 0644, OTA_WRITE_REPLACE, err, cap);
}

/*
 * A hard link: objects are never written in place (a put renames a new file over the name), so the link keeps
 * the bytes it was made with whatever later happens to `src`. Its time (shared with `src`) is set to now, so that
 * the sweeper judges the new object by when it was made, not by when `src` was written.
 */
ota_err_t ota__fs_copy(const char *root, const char *src, const char *dst, char *err, size_t cap)
{
    char from[1024], to[1024], tmp[1100], suffix[OTA_UUID_LEN + 1];
    ota_err_t rc = OTA_ERR_IO;
    ota__uuid_new(suffix);
    if (ota__fs_path(root, src, from, sizeof from) != OTA_OK || ota__fs_path(root, dst, to, sizeof to) != OTA_OK ||
        snprintf(tmp, sizeof tmp, "%s" OTA_TEMP_SUFFIX "%s", to, suffix) >= (int)sizeof tmp) {
        snprintf(err, cap, "object path too long");
        return OTA_ERR_TOO_LARGE;
    }
    if (make_parents(to) != OTA_OK) {
        snprintf(err, cap, "cannot create folders for %s: %s", to, strerror(errno));
        return OTA_ERR_IO;
    }
    /* The time is set before the link, so that not even the temporary name looks old to the sweeper. */
    if (utimensat(AT_FDCWD, from, NULL, 0) != 0 || link(from, tmp) != 0) {
        rc = errno == ENOENT ? OTA_ERR_NOT_FOUND : OTA_ERR_IO;
        snprintf(err, cap, "cannot link %s: %s", from, strerror(errno));
        return rc;
    }
    if (rename(tmp, to) != 0 || ota__fsync_parent(to) != OTA_OK) {
        snprintf(err, cap, "cannot copy %s to %s: %s", from, to, strerror(errno));
        unlink(tmp);
        return OTA_ERR_IO;
    }
    return OTA_OK;
}

ota_err_t ota__fs_get(const char *root, const char *key, size_t max, unsigned char **data, size_t *len, char *err,
                      size_t cap)
{
    char path[1024];
    *data = NULL;
    *len = 0;
    if (ota__fs_path(root, key, path, sizeof path) != OTA_OK)
        return OTA_ERR_NOT_FOUND;
    ota_err_t rc = ota__read_file(path, max, data, len);
    if (rc != OTA_OK)
        snprintf(err, cap, "cannot read %s: %s", path, ota_strerror(rc));
    return rc;
}

ota_err_t ota__fs_delete(const char *root, const char *key, char *err, size_t cap)
{
    char path[1024];
    if (ota__fs_path(root, key, path, sizeof path) != OTA_OK)
        return OTA_OK;
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, cap, "cannot delete %s: %s", path, strerror(errno));
        return OTA_ERR_IO;
    }
    return OTA_OK;
}

/* Lists the folder `path` (the key `key`, "" for the root) and every folder below it. */
static ota_err_t list_dir(const char *path, const char *key, ota_storage_list_cb cb, void *arg, bool *stop, char *err,
                          size_t cap)
{
    DIR *dir = opendir(path);
    if (dir == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return OTA_OK;
        snprintf(err, cap, "cannot list %s: %s", path, strerror(errno));
        return OTA_ERR_IO;
    }
    ota_err_t rc = OTA_OK;
    struct dirent *e;
    while (rc == OTA_OK && !*stop && (e = readdir(dir)) != NULL) {
        char sub_path[1024], sub_key[1024];
        struct stat st;
        if (e->d_name[0] == '.') /* ".", "..", and the presigning secret: never an object */
            continue;
        if (snprintf(sub_path, sizeof sub_path, "%s/%s", path, e->d_name) >= (int)sizeof sub_path ||
            snprintf(sub_key, sizeof sub_key, "%s%s%s", key, key[0] ? "/" : "", e->d_name) >= (int)sizeof sub_key)
            continue;
        if (lstat(sub_path, &st) != 0)
            continue; /* removed meanwhile */
        if (S_ISDIR(st.st_mode))
            rc = list_dir(sub_path, sub_key, cb, arg, stop, err, cap);
        else if (S_ISREG(st.st_mode) && cb(sub_key, (uint64_t)st.st_size, st.st_mtime, arg) != 0)
            *stop = true;
    }
    closedir(dir);
    return rc;
}

ota_err_t ota__fs_list(const char *root, const char *prefix, ota_storage_list_cb cb, void *arg, char *err, size_t cap)
{
    char path[1024], key[512];
    size_t n = strlen(prefix);
    /* the folder the prefix names ("releases/" or "releases") */
    if (snprintf(key, sizeof key, "%.*s", (int)(n > 0 && prefix[n - 1] == '/' ? n - 1 : n), prefix) >=
            (int)sizeof key ||
        ota__fs_path(root, key, path, sizeof path) != OTA_OK) {
        snprintf(err, cap, "prefix too long");
        return OTA_ERR_TOO_LARGE;
    }
    bool stop = false;
    return list_dir(key[0] ? path : root, key, cb, arg, &stop, err, cap);
}
