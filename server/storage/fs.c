#include "storage/fs.h"

#include <errno.h>
#include <fcntl.h>
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

/* Creates every missing folder above the file at `path`. */
static ota_err_t make_parents(char *path)
{
    for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return OTA_ERR_IO;
    }
    return OTA_OK;
}

ota_err_t ota__fs_put(const char *root, const char *key, const void *data, size_t len, char *err, size_t cap)
{
    char path[1024], tmp[1100], suffix[OTA_UUID_LEN + 1];
    ota_err_t rc = OTA_ERR_IO;
    int fd = -1;

    ota__uuid_new(suffix);
    if (ota__fs_path(root, key, path, sizeof path) != OTA_OK ||
        snprintf(tmp, sizeof tmp, "%s.tmp-%s", path, suffix) >= (int)sizeof tmp) {
        snprintf(err, cap, "object path too long");
        return OTA_ERR_TOO_LARGE;
    }
    if (make_parents(path) != OTA_OK) {
        snprintf(err, cap, "cannot create folders for %s: %s", path, strerror(errno));
        return OTA_ERR_IO;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, cap, "cannot create %s: %s", tmp, strerror(errno));
        goto Exit;
    }
    if (ota__write_all(fd, data, len) != OTA_OK || fsync(fd) != 0) {
        snprintf(err, cap, "cannot write %s: %s", tmp, strerror(errno));
        goto Exit;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, cap, "cannot write %s: %s", tmp, strerror(errno));
        goto Exit;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, cap, "cannot rename %s: %s", tmp, strerror(errno));
        goto Exit;
    }
    rc = OTA_OK;

Exit:
    if (fd >= 0)
        close(fd);
    if (rc != OTA_OK)
        unlink(tmp);
    return rc;
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
