#define _GNU_SOURCE /* O_PATH */
#include "core/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#include "core/ids.h"

ota_err_t ota__read_fd(int fd, size_t max, unsigned char **data, size_t *len)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;

    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0)
        return OTA_ERR_IO;
    if (!S_ISREG(st.st_mode))
        return OTA_ERR_INVALID;
    if ((uint64_t)st.st_size > max)
        return OTA_ERR_TOO_LARGE;
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        return OTA_ERR_NOMEM;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return OTA_ERR_IO;
        }
        got += (size_t)n;
    }
    *data = buf;
    *len = got;
    return OTA_OK;
}

ota_err_t ota__read_file(const char *path, size_t max, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? OTA_ERR_NOT_FOUND : OTA_ERR_IO;
    ota_err_t rc = ota__read_fd(fd, max, data, len);
    close(fd);
    return rc == OTA_ERR_INVALID ? OTA_ERR_IO : rc;
}

ota_err_t ota__write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *data = buf;
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return OTA_ERR_IO;
        data += n;
        len -= (size_t)n;
    }
    return OTA_OK;
}

ota_err_t ota__fsync_parent(const char *path)
{
    char copy[4096];
    if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy)
        return OTA_ERR_TOO_LARGE;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return OTA_ERR_IO;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? OTA_OK : OTA_ERR_IO;
}

/* Writes and fsyncs the new temporary file `tmp`. */
static ota_err_t write_temp(const char *tmp, const void *data, size_t len, mode_t mode, char *err, size_t cap)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, cap, "cannot create %s: %s", tmp, strerror(errno));
        return OTA_ERR_IO;
    }
    bool ok = ota__write_all(fd, data, len) == OTA_OK && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        snprintf(err, cap, "cannot write %s: %s", tmp, strerror(saved));
        return OTA_ERR_IO;
    }
    return OTA_OK;
}

ota_err_t ota__write_file_durable(const char *path, const void *data, size_t len, mode_t mode, ota_write_mode_t how,
                                  char *err, size_t cap)
{
    char tmp[4200], suffix[OTA_UUID_LEN + 1];
    ota__uuid_new(suffix);
    if (snprintf(tmp, sizeof tmp, "%s" OTA_TEMP_SUFFIX "%s", path, suffix) >= (int)sizeof tmp) {
        snprintf(err, cap, "path too long: %s", path);
        return OTA_ERR_TOO_LARGE;
    }
    ota_err_t rc = write_temp(tmp, data, len, mode, err, cap);
    if (rc != OTA_OK)
        goto Exit;
    /* link() never replaces: of several writers the first wins and the others see its whole file. */
    int moved = how == OTA_WRITE_REPLACE ? rename(tmp, path) : link(tmp, path);
    if (moved != 0) {
        rc = how == OTA_WRITE_CREATE && errno == EEXIST ? OTA_ERR_INVALID : OTA_ERR_IO;
        snprintf(err, cap, "cannot move %s into place: %s", tmp, strerror(errno));
        goto Exit;
    }
    if (how == OTA_WRITE_CREATE)
        unlink(tmp);
    if (ota__fsync_parent(path) != OTA_OK) {
        snprintf(err, cap, "cannot sync the folder of %s: %s", path, strerror(errno));
        rc = OTA_ERR_IO;
    }
Exit:
    if (rc != OTA_OK)
        unlink(tmp); /* a rename that failed left it; a rename that worked took its name away */
    return rc;
}

/* --- opening beneath a folder --- */

/* Why ENOTDIR on the way: a symbolic link (ELOOP) or a name that is no folder (ENOTDIR). */
static void explain_not_dir(int dirfd, const char *name)
{
    struct stat st;
    errno = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
}

static bool plain_name(const char *name)
{
    return name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* The walk for kernels without openat2: each folder opened O_PATH | O_NOFOLLOW from the one before. */
static int walk_beneath(int dirfd, const char *rel, int flags)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", rel) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int cur = dup(dirfd);
    char *name = path;
    for (char *slash = strchr(name, '/'); cur >= 0 && slash != NULL; slash = strchr(name, '/')) {
        *slash = '\0';
        if (!plain_name(name)) {
            close(cur);
            errno = EXDEV;
            return -1;
        }
        int next = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && (errno == ENOTDIR || errno == ELOOP))
            explain_not_dir(cur, name);
        int saved = errno;
        close(cur);
        errno = saved;
        cur = next;
        name = slash + 1;
    }
    if (cur < 0)
        return -1;
    if (!plain_name(name)) {
        close(cur);
        errno = EXDEV;
        return -1;
    }
    int fd = openat(cur, name, flags | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(cur);
    errno = saved;
    return fd;
}

int ota__open_beneath(int dirfd, const char *rel, int flags, bool walk)
{
    if (rel[0] == '\0' || rel[0] == '/') {
        errno = EXDEV;
        return -1;
    }
#ifdef SYS_openat2
    if (!walk) {
        struct open_how how = {.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS)
            return (int)fd;
    }
#endif
    return walk_beneath(dirfd, rel, flags);
}
