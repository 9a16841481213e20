#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Debug lines are for a developer's build: a deploy logs from info up. */
static const ota_log_level_t min_level = OTA_LOG_INFO;
static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

/* Appends `s` to out[*pos..cap) as the inside of a JSON string. */
static void append_escaped(char *out, size_t cap, size_t *pos, const char *s)
{
    for (; *s != '\0' && *pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*pos)++] = '\\';
            out[(*pos)++] = (char)c;
        } else if (c < 0x20) {
            *pos += (size_t)snprintf(out + *pos, cap - *pos, "\\u%04x", c);
        } else {
            out[(*pos)++] = (char)c;
        }
    }
}

static void write_line(ota_log_level_t level, const char *msg, const char *const *kv);

void ota__log(ota_log_level_t level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    write_line(level, msg, NULL);
}

void ota__log_kv(ota_log_level_t level, const char *msg, const char *const *kv)
{
    if (level >= min_level)
        write_line(level, msg, kv);
}

static void write_line(ota_log_level_t level, const char *msg, const char *const *kv)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);

    char line[2048];
    size_t pos = strftime(line, sizeof(line), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
    pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ".%03ldZ\",\"level\":\"%s\",\"msg\":\"",
                            now.tv_nsec / 1000000, LEVEL_NAMES[level]);
    append_escaped(line, sizeof(line) - 4, &pos, msg);
    for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL && pos + 8 < sizeof(line) - 4; i += 2) {
        memcpy(line + pos, "\",\"", 3);
        pos += 3;
        append_escaped(line, sizeof(line) - 8, &pos, kv[i]);
        memcpy(line + pos, "\":\"", 3);
        pos += 3;
        append_escaped(line, sizeof(line) - 4, &pos, kv[i + 1]);
    }
    memcpy(line + pos, "\"}\n", 3);
    pos += 3;
    ssize_t ignored = write(STDERR_FILENO, line, pos);
    (void)ignored;
}
