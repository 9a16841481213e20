#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

ota_err_t ota__copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (cap == 0)
        return OTA_ERR_TOO_LARGE;
    if (n >= cap) {
        dst[0] = '\0';
        return OTA_ERR_TOO_LARGE;
    }
    memcpy(dst, src, n + 1);
    return OTA_OK;
}

ota_err_t ota__fmt(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? OTA_ERR_TOO_LARGE : OTA_OK;
}

ota_err_t ota__path(char *dst, size_t cap, const char *dir, const char *name)
{
    return ota__fmt(dst, cap, "%s/%s", dir, name);
}

ota_err_t ota__read_file(const char *path, size_t cap, char **out, size_t *len)
{
    ota_err_t rc = OTA_OK;
    char *buf = NULL;
    size_t used = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? OTA_ERR_NOT_FOUND : OTA_ERR_IO;
        goto Exit;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = OTA_ERR_IO;
        goto Exit;
    }
    if ((uint64_t)st.st_size > cap) {
        rc = OTA_ERR_TOO_LARGE;
        goto Exit;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    while (used < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + used, (size_t)st.st_size - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = OTA_ERR_IO;
            goto Exit;
        }
        used += (size_t)n;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    buf = NULL;
Exit:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

ota_err_t ota__fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return OTA_ERR_IO;
    int r = fsync(fd);
    close(fd);
    return r == 0 ? OTA_OK : OTA_ERR_IO;
}

ota_err_t ota__write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
    char path[4096], tmp[4096];
    ota_err_t rc = OTA_OK;
    int fd = -1;
    bool created = false;
    if (ota__path(path, sizeof path, dir, name) != OTA_OK || ota__fmt(tmp, sizeof tmp, "%s.tmp", path) != OTA_OK)
        return OTA_ERR_TOO_LARGE;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = OTA_ERR_IO;
        goto Exit;
    }
    created = true;
    if (fchmod(fd, mode) != 0 || !ota__pwrite_all(fd, data, len, 0) || fsync(fd) != 0) {
        rc = OTA_ERR_IO;
        goto Exit;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = OTA_ERR_IO;
        goto Exit;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = OTA_ERR_IO;
        goto Exit;
    }
    created = false;
    rc = ota__fsync_dir(dir);
Exit:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    return rc;
}

ota_err_t ota__remove(const char *dir, const char *name)
{
    char path[4096];
    if (ota__path(path, sizeof path, dir, name) != OTA_OK)
        return OTA_ERR_TOO_LARGE;
    if (unlink(path) != 0 && errno != ENOENT)
        return OTA_ERR_IO;
    return OTA_OK;
}

bool ota__pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return true;
}

int64_t ota__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ota__sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool ota__uuid_valid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[36] == '\0';
}

bool ota__token_valid(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e || n >= max)
            return false;
    return n > 0;
}
