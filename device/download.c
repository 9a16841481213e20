#include "download.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

#define ERRBODY_MAX 1024 /* bytes kept of an error answer */

/* One HTTP request of the download. */
typedef struct attempt {
    CURL *c;
    const ota__dl_job_t *job;
    ota__dl_result_t *res;
    int fd;
    uint64_t start;   /* where this attempt began */
    uint64_t offset;  /* bytes in the file */
    long status;      /* known once the body begins */
    bool checked;     /* status and Content-Range looked at */
    bool range_wrong; /* 206 for another range than asked */
    bool too_long;    /* more bytes than the size */
    bool io_error;
    bool cut;         /* the simulated fault struck */
    bool stopped;     /* the progress hook said stop */
    int64_t first_ms; /* when the first body byte came (for the throttle) */
    int64_t hook_ms;  /* when the progress hook was last called from on_body */
    uint64_t got;     /* body bytes taken in this attempt */
    char content_range[128];
    char errbody[ERRBODY_MAX + 1];
    size_t errlen;
} attempt_t;

__attribute__((format(printf, 2, 3))) static void logf_(const ota__dl_job_t *job, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (job->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    job->log(job->arg, line);
}

long ota__backoff_ms(int retry, long initial, long max)
{
    long d = initial > 0 ? initial : 0;
    for (int i = 1; i < retry && d < max; i++)
        d = d > max / 2 ? max : d * 2;
    return d < max ? d : max;
}

static bool parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return true;
}

bool ota__content_range(const char *value, uint64_t *first, uint64_t *last, uint64_t *total)
{
    const char *p = value;
    uint64_t f, l, t = UINT64_MAX;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "bytes ", 6) != 0)
        return false;
    p += 6;
    while (*p == ' ')
        p++;
    if (!parse_u64(&p, &f) || *p++ != '-' || !parse_u64(&p, &l) || *p++ != '/')
        return false;
    if (*p == '*')
        p++;
    else if (!parse_u64(&p, &t) || l >= t)
        return false;
    while (*p == ' ' || *p == '\r' || *p == '\n')
        p++;
    if (*p != '\0' || f > l)
        return false;
    *first = f;
    *last = l;
    *total = t;
    return true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    attempt_t *a = arg;
    size_t len = size * nmemb;
    static const char name[] = "content-range:";
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        a->content_range[0] = '\0'; /* a new answer (after a 100 Continue) */
    } else if (len > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
        size_t n = len - (sizeof name - 1);
        if (n >= sizeof a->content_range)
            n = sizeof a->content_range - 1;
        memcpy(a->content_range, line + sizeof name - 1, n);
        a->content_range[n] = '\0';
    }
    return len;
}

/* The first bytes of the body: decides where they go. False aborts the attempt. */
static bool check_answer(attempt_t *a)
{
    a->checked = true;
    curl_easy_getinfo(a->c, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status == 206) {
        uint64_t first, last, total;
        if (!ota__content_range(a->content_range, &first, &last, &total) || first != a->offset) {
            a->range_wrong = true;
            return false;
        }
        if (a->offset > 0) {
            a->res->resumes++;
            logf_(a->job, "download: resuming at byte %" PRIu64 " (HTTP 206)", a->offset);
        }
    } else if (a->status == 200) {
        if (a->offset > 0) {
            logf_(a->job, "download: the server ignored Range (HTTP 200); starting over from byte 0");
            if (ftruncate(a->fd, 0) != 0) {
                a->io_error = true;
                return false;
            }
            a->offset = a->start = 0;
        } else {
            logf_(a->job, "download: %" PRIu64 " bytes (HTTP 200)", a->job->size);
        }
    }
    return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    attempt_t *a = arg;
    const ota__dl_job_t *job = a->job;
    size_t n = size * nmemb;
    if (!a->checked && !check_answer(a))
        return 0;
    if (a->status != 200 && a->status != 206) {
        size_t keep = n < ERRBODY_MAX - a->errlen ? n : ERRBODY_MAX - a->errlen;
        memcpy(a->errbody + a->errlen, data, keep);
        a->errlen += keep;
        a->errbody[a->errlen] = '\0';
        return n;
    }
    if (n > job->size - a->offset) {
        a->too_long = true;
        return 0;
    }
    size_t take = n;
    if (job->cut_after > 0 && !*job->cut_done && *job->received + n >= job->cut_after) {
        take = (size_t)(job->cut_after - *job->received);
        *job->cut_done = true;
        a->cut = true;
    }
    if (take > 0 && !ota__pwrite_all(a->fd, data, take, a->offset)) {
        a->io_error = true;
        return 0;
    }
    a->offset += take;
    *job->received += take;
    if (job->throttle_bps > 0) {
        /* A slow link: hold each chunk until the average rate is down to the limit (TCP pushes back meanwhile). */
        if (a->got == 0)
            a->first_ms = ota__now_ms();
        a->got += take;
        int64_t due = a->first_ms + (int64_t)(a->got * 1000 / job->throttle_bps), t = ota__now_ms();
        if (due > t)
            ota__sleep_ms((long)(due - t));
    }
    /* curl reads many chunks per progress update on a fast link; the hook also hears from here, 10 times a second. */
    int64_t now = ota__now_ms();
    if (job->progress != NULL && now - a->hook_ms >= 100) {
        a->hook_ms = now;
        if (job->progress(job->arg, a->offset, job->size) != 0) {
            a->stopped = true;
            return 0;
        }
    }
    return a->cut ? 0 : n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    attempt_t *a = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (a->job->progress != NULL && a->job->progress(a->job->arg, a->offset, a->job->size) != 0) {
        a->stopped = true;
        return 1;
    }
    return 0;
}

/* The <Message> of an S3 XML error, else the start of the body, on one line. */
static void error_text(const attempt_t *a, char *out, size_t cap)
{
    const char *m = strstr(a->errbody, "<Message>"), *end = m != NULL ? strstr(m, "</Message>") : NULL;
    if (m != NULL && end != NULL)
        snprintf(out, cap, "%.*s", (int)(end - m - 9), m + 9);
    else
        snprintf(out, cap, "%.120s", a->errbody);
    for (char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

/* Sleeps `ms`, asking the progress hook between slices; false when it says stop. */
static bool nap(const ota__dl_job_t *job, uint64_t bytes, long ms)
{
    int64_t until = ota__now_ms() + ms;
    for (;;) {
        if (job->progress != NULL && job->progress(job->arg, bytes, job->size) != 0)
            return false;
        int64_t left = until - ota__now_ms();
        if (left <= 0)
            return true;
        ota__sleep_ms(left < 100 ? (long)left : 100L);
    }
}

static ota_err_t setup(attempt_t *a, char *errbuf, char *range, size_t range_cap)
{
    CURL *c = a->c;
    const ota__dl_job_t *job = a->job;
    curl_easy_reset(c);
    if (curl_easy_setopt(c, CURLOPT_URL, job->url) != CURLE_OK)
        return OTA_ERR_NOMEM;
    if (a->offset > 0) {
        snprintf(range, range_cap, "%" PRIu64 "-", a->offset);
        if (curl_easy_setopt(c, CURLOPT_RANGE, range) != CURLE_OK)
            return OTA_ERR_NOMEM;
    }
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, job->connect_timeout_ms > 0 ? job->connect_timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, job->stall_s > 0 ? job->stall_s : 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (job->throttle_bps > 0)
        curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 1024L); /* small chunks: an even pace (see on_body) */
    return OTA_OK;
}

/* The handle must keep no pointer into this call's stack. */
static void unhook(CURL *c)
{
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, NULL);
    curl_easy_setopt(c, CURLOPT_RANGE, NULL);
}

ota_err_t ota__download(CURL *c, const ota__dl_job_t *job, ota__dl_result_t *res)
{
    ota_err_t rc = OTA_OK;
    int consecutive = 0;
    struct stat st;
    char failure[300];
    memset(res, 0, sizeof *res);

    int fd = open(job->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(res->why, sizeof res->why, "cannot open %s: %s", job->path, strerror(errno));
        rc = OTA_ERR_IO;
        goto Exit;
    }
    uint64_t offset = ota__resume_offset(true, (uint64_t)st.st_size, job->size);
    if (offset != (uint64_t)st.st_size && ftruncate(fd, (off_t)offset) != 0) {
        snprintf(res->why, sizeof res->why, "cannot truncate %s: %s", job->path, strerror(errno));
        rc = OTA_ERR_IO;
        goto Exit;
    }

    for (;;) {
        char errbuf[CURL_ERROR_SIZE] = "", range[32], text[200];
        attempt_t a = {.c = c, .job = job, .res = res, .fd = fd, .start = offset, .offset = offset};
        res->bytes = offset;
        if (offset == job->size) {
            res->status = OTA__DL_DONE; /* nothing left to fetch */
            goto Exit;
        }
        if ((rc = setup(&a, errbuf, range, sizeof range)) != OTA_OK) {
            unhook(c);
            snprintf(res->why, sizeof res->why, "out of memory");
            goto Exit;
        }
        res->attempts++;
        CURLcode cc = curl_easy_perform(c);
        unhook(c);
        offset = a.offset;
        res->bytes = offset;
        if (cc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
        res->last_status = a.status;

        if (a.io_error) {
            snprintf(res->why, sizeof res->why, "cannot write %s: %s", job->path, strerror(errno));
            rc = OTA_ERR_IO;
            goto Exit;
        }
        if (cc == CURLE_OUT_OF_MEMORY) {
            snprintf(res->why, sizeof res->why, "out of memory");
            rc = OTA_ERR_NOMEM;
            goto Exit;
        }
        if (a.stopped) {
            res->status = OTA__DL_STOPPED;
            snprintf(res->why, sizeof res->why, "stopped at byte %" PRIu64, offset);
            goto Exit;
        }
        if (a.too_long) {
            res->status = OTA__DL_REFUSED;
            snprintf(res->why, sizeof res->why, "size mismatch: the server sent more than the %" PRIu64 " bytes",
                     job->size);
            goto Exit;
        }
        if (a.range_wrong) {
            snprintf(failure, sizeof failure, "HTTP 206 for another range (Content-Range %.60s); starting over",
                     a.content_range);
            if (ftruncate(fd, 0) != 0) {
                snprintf(res->why, sizeof res->why, "cannot truncate %s: %s", job->path, strerror(errno));
                rc = OTA_ERR_IO;
                goto Exit;
            }
            offset = 0;
        } else if (a.cut) {
            snprintf(failure, sizeof failure, "connection dropped after %" PRIu64 " bytes (simulated)", offset);
        } else if (cc != CURLE_OK) {
            snprintf(failure, sizeof failure, "connection lost at byte %" PRIu64 " (%s)", offset,
                     errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        } else if (a.status == 200 || a.status == 206) {
            res->status = OTA__DL_DONE; /* a short body is for the size check to judge */
            goto Exit;
        } else if (a.status == 403) {
            error_text(&a, text, sizeof text);
            logf_(job, "download: the URL was refused (HTTP 403: %s); asking the server for a fresh one", text);
            char why[256] = "";
            if (job->refresh == NULL || job->refresh(job->arg, job->url, job->url_cap, why, sizeof why) != OTA_OK) {
                res->status = OTA__DL_GAVE_UP;
                snprintf(res->why, sizeof res->why, "the URL was refused (HTTP 403: %.100s) and no fresh one came: %s",
                         text, why);
                goto Exit;
            }
            res->refreshes++;
            res->retries++;
            if (++consecutive > job->max_retries) {
                res->status = OTA__DL_GAVE_UP;
                snprintf(res->why, sizeof res->why, "gave up after %d retries: HTTP 403 (%.100s)", job->max_retries,
                         text);
                goto Exit;
            }
            continue;
        } else if (a.status == 416) {
            snprintf(failure, sizeof failure, "HTTP 416 from byte %" PRIu64 "; starting over", offset);
            if (ftruncate(fd, 0) != 0) {
                snprintf(res->why, sizeof res->why, "cannot truncate %s: %s", job->path, strerror(errno));
                rc = OTA_ERR_IO;
                goto Exit;
            }
            offset = 0;
        } else if (a.status == 408 || a.status == 429 || a.status >= 500) {
            error_text(&a, text, sizeof text);
            snprintf(failure, sizeof failure, "HTTP %ld (%s)", a.status, text);
        } else {
            error_text(&a, text, sizeof text);
            res->status = OTA__DL_REFUSED;
            snprintf(res->why, sizeof res->why, "download failed: HTTP %ld (%s)", a.status, text);
            goto Exit;
        }

        /* A failed attempt: retry after a pause, unless it was the last allowed. */
        res->retries++;
        if (a.offset > a.start)
            consecutive = 0;
        if (++consecutive > job->max_retries) {
            res->status = OTA__DL_GAVE_UP;
            snprintf(res->why, sizeof res->why, "gave up after %d retries: %.200s", job->max_retries, failure);
            goto Exit;
        }
        long delay = ota__backoff_ms(consecutive, job->backoff_initial_ms, job->backoff_max_ms);
        logf_(job, "download: %s; retry %d of %d in %ld ms", failure, consecutive, job->max_retries, delay);
        if (!nap(job, offset, delay)) {
            res->status = OTA__DL_STOPPED;
            snprintf(res->why, sizeof res->why, "stopped at byte %" PRIu64, offset);
            goto Exit;
        }
    }
Exit:
    if (fd >= 0 && fsync(fd) != 0 && rc == OTA_OK) {
        snprintf(res->why, sizeof res->why, "cannot sync %s: %s", job->path, strerror(errno));
        rc = OTA_ERR_IO;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}
