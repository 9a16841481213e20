#include "core/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

ota_err_t ota__read_file(const char *path, size_t max, unsigned char **data, size_t *len)
{
    struct stat st;
    unsigned char *buf = NULL;
    ota_err_t rc = OTA_ERR_IO;
    size_t got = 0;

    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? OTA_ERR_NOT_FOUND : OTA_ERR_IO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto Exit;
    if ((uint64_t)st.st_size > max) {
        rc = OTA_ERR_TOO_LARGE;
        goto Exit;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = OTA_ERR_NOMEM;
        goto Exit;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto Exit;
        got += (size_t)n;
    }
    *data = buf;
    *len = got;
    buf = NULL;
    rc = OTA_OK;

Exit:
    free(buf);
    close(fd);
    return rc;
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
