#ifndef OTA_SERVER_LOG_H
#define OTA_SERVER_LOG_H

/** Log levels, in increasing severity. */
typedef enum ota_log_level { OTA_LOG_DEBUG, OTA_LOG_INFO, OTA_LOG_WARN, OTA_LOG_ERROR } ota_log_level_t;

/**
 * Writes one line of JSON to stderr (debug lines are dropped): {"ts": RFC 3339 with ms, "level", "msg"}.
 * The message is formatted printf-style, truncated at 1 KiB, and escaped.
 * Thread-safe (one write(2) per line).
 */
void ota__log(ota_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Writes one line of JSON with `msg` and the fields of `kv`, a NULL-terminated list of name, value pairs
 * (values are written as JSON strings). For access logs and other records that tools parse.
 */
void ota__log_kv(ota_log_level_t level, const char *msg, const char *const *kv);

#define ota_log_debug(...) ota__log(OTA_LOG_DEBUG, __VA_ARGS__)
#define ota_log_info(...) ota__log(OTA_LOG_INFO, __VA_ARGS__)
#define ota_log_warn(...) ota__log(OTA_LOG_WARN, __VA_ARGS__)
#define ota_log_error(...) ota__log(OTA_LOG_ERROR, __VA_ARGS__)

#endif
