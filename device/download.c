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

/* How an attempt ended. Of two (a callback stops the transfer, then curl fails), the first in this order counts. */
typedef enum outcome {
    OUT_NONE,     /* not yet known */
    OUT_IO_ERROR, /* the part file could not be written or truncated */
    OUT_NO_MEMORY,
    OUT_STOPPED,       /* the progress hook said stop */
    OUT_TOO_LONG,      /* more bytes than the size */
    OUT_WRONG_RANGE,   /* 206 for another range than asked: the bytes here do not add up */
    OUT_CUT,           /* the simulated fault struck */
    OUT_LOST,          /* the connection failed or dropped */
    OUT_COMPLETE,      /* 200 or 206 to the end (a short body is for the size check to judge) */
    OUT_FRESH_URL,     /* 403 (an expired URL), and the refresh hook brought a fresh one */
    OUT_NO_FRESH_URL,  /* 403, and no fresh URL came */
    OUT_UNSATISFIABLE, /* 416: the object is shorter than the bytes here (it changed) */
    OUT_BUSY,          /* 408, 429, 5xx: worth another try */
    OUT_REFUSED,       /* any other status: no retry can help */
} outcome_t;

/* One HTTP request of the download. */
typedef struct attempt {
    CURL *c;
    const ota__dl_job_t *job;
    ota__dl_result_t *res;
    int fd;
    uint64_t start;      /* where this attempt began */
    uint64_t offset;     /* bytes in the file */
    outcome_t outcome;   /* see note() */
    CURLcode cc;         /* how the transfer ended */
    long status;         /* known once the body begins */
    bool checked;        /* status and Content-Range looked at */
    const char *io_verb; /* OUT_IO_ERROR: "write" or "truncate" (errno in io_errno) */
    int io_errno;
    int64_t first_ms; /* when the first body byte came (for the throttle) */
    int64_t hook_ms;  /* when the progress hook was last called from on_body */
    uint64_t got;     /* body bytes taken in this attempt */
    char range[32];
    char curl_error[CURL_ERROR_SIZE];
    char content_range[128];
    char errbody[ERRBODY_MAX + 1];
    size_t errlen;
    char text[200];   /* what an error answer says (error_text) */
    char no_url[256]; /* why the refresh hook brought no fresh URL */
} attempt_t;

typedef enum next { NEXT_END, NEXT_NOW, NEXT_AFTER_PAUSE } next_t; /* the download ends, or another attempt follows */

/* What follows an attempt. */
typedef struct decision {
    next_t next;
    bool from_zero;          /* drop the bytes in the file first (also when the download ends) */
    int failures;            /* failed attempts in a row, this one included (0: it did not fail) */
    ota__dl_status_t status; /* NEXT_END: how the download ended (res->why says why) */
    ota_err_t rc;            /* NEXT_END: what ota__download returns */
    char failure[300];       /* a failed attempt: what went wrong, for the log and a later "gave up" */
} decision_t;

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

/* Notes how the attempt ended; of two, the one first in outcome_t's order counts. */
static void note(attempt_t *a, outcome_t o)
{
    if (a->outcome == OUT_NONE || o < a->outcome)
        a->outcome = o;
}

static void io_failed(attempt_t *a, const char *verb)
{
    note(a, OUT_IO_ERROR);
    a->io_verb = verb;
    a->io_errno = errno;
}

/* Drops the bytes in the part file: the next ones come from byte 0. False (a->io_verb set) when it cannot. */
static bool start_over(attempt_t *a)
{
    if (ftruncate(a->fd, 0) != 0) {
        io_failed(a, "truncate");
        return false;
    }
    a->offset = a->start = 0;
    return true;
}

/* The first bytes of the body: decides where they go. False aborts the attempt. */
static bool check_answer(attempt_t *a)
{
    a->checked = true;
    curl_easy_getinfo(a->c, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status == 206) {
        uint64_t first, last, total;
        if (!ota__content_range(a->content_range, &first, &last, &total) || first != a->offset) {
            note(a, OUT_WRONG_RANGE);
            return false;
        }
        if (a->offset > 0) {
            a->res->resumes++;
            logf_(a->job, "download: resuming at byte %" PRIu64 " (HTTP 206)", a->offset);
        }
    } else if (a->status == 200) {
        if (a->offset == 0) {
            logf_(a->job, "download: %" PRIu64 " bytes (HTTP 200)", a->job->size);
            return true;
        }
        logf_(a->job, "download: the server ignored Range (HTTP 200); starting over from byte 0");
        return start_over(a);
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
        note(a, OUT_TOO_LONG);
        return 0;
    }
    size_t take = n;
    bool cut = job->cut_after > 0 && !*job->cut_done && *job->received + n >= job->cut_after;
    if (cut) {
        take = (size_t)(job->cut_after - *job->received);
        *job->cut_done = true;
    }
    if (take > 0 && !ota__pwrite_all(a->fd, data, take, a->offset)) {
        io_failed(a, "write");
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
            note(a, OUT_STOPPED);
            return 0;
        }
    }
    if (cut)
        note(a, OUT_CUT);
    return cut ? 0 : n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    attempt_t *a = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (a->job->progress != NULL && a->job->progress(a->job->arg, a->offset, a->job->size) != 0) {
        note(a, OUT_STOPPED);
        return 1;
    }
    return 0;
}

/* The <Message> of an S3 XML error, else the start of the body, on one line, into a->text. */
static void error_text(attempt_t *a)
{
    const char *m = strstr(a->errbody, "<Message>"), *end = m != NULL ? strstr(m, "</Message>") : NULL;
    if (m != NULL && end != NULL)
        snprintf(a->text, sizeof a->text, "%.*s", (int)(end - m - 9), m + 9);
    else
        snprintf(a->text, sizeof a->text, "%.120s", a->errbody);
    for (char *p = a->text; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

static ota_err_t setup(attempt_t *a)
{
    CURL *c = a->c;
    const ota__dl_job_t *job = a->job;
    curl_easy_reset(c);
    if (curl_easy_setopt(c, CURLOPT_URL, job->url) != CURLE_OK)
        return OTA_ERR_NOMEM;
    if (a->offset > 0) {
        snprintf(a->range, sizeof a->range, "%" PRIu64 "-", a->offset);
        if (curl_easy_setopt(c, CURLOPT_RANGE, a->range) != CURLE_OK)
            return OTA_ERR_NOMEM;
    }
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->curl_error);
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

/* The handle must keep no pointer into the attempt. */
static void unhook(CURL *c)
{
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, NULL);
    curl_easy_setopt(c, CURLOPT_RANGE, NULL);
}

/* A 403 is S3's answer to an expired URL: asks the caller for a fresh one (into job->url). */
static outcome_t refresh_url(attempt_t *a)
{
    const ota__dl_job_t *job = a->job;
    logf_(job, "download: the URL was refused (HTTP 403: %s); asking the server for a fresh one", a->text);
    if (job->refresh == NULL || job->refresh(job->arg, job->url, job->url_cap, a->no_url, sizeof a->no_url) != OTA_OK)
        return OUT_NO_FRESH_URL;
    a->res->refreshes++;
    return OUT_FRESH_URL;
}

/* How an answer that came to its end went, by its HTTP status; a 403 asks for a fresh URL first. */
static outcome_t outcome_of_status(attempt_t *a)
{
    curl_easy_getinfo(a->c, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status == 200 || a->status == 206)
        return OUT_COMPLETE;
    if (a->status == 403)
        return refresh_url(a);
    if (a->status == 416)
        return OUT_UNSATISFIABLE;
    if (a->status == 408 || a->status == 429 || a->status >= 500)
        return OUT_BUSY;
    return OUT_REFUSED;
}

/* One HTTP request for the bytes from a->offset on; how it ended. */
static outcome_t attempt(attempt_t *a)
{
    if (setup(a) != OTA_OK) {
        unhook(a->c);
        return OUT_NO_MEMORY;
    }
    a->res->attempts++;
    a->cc = curl_easy_perform(a->c);
    unhook(a->c);
    error_text(a);
    if (a->cc == CURLE_OUT_OF_MEMORY)
        note(a, OUT_NO_MEMORY);
    else if (a->cc != CURLE_OK)
        note(a, OUT_LOST);
    else
        note(a, outcome_of_status(a));
    return a->outcome;
}

/* Ends the download: status, return code and why (res->why). */
__attribute__((format(printf, 4, 5))) static decision_t end(const attempt_t *a, ota__dl_status_t status, ota_err_t rc,
                                                            const char *fmt, ...)
{
    decision_t d = {.next = NEXT_END, .status = status, .rc = rc};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->res->why, sizeof a->res->why, fmt, ap);
    va_end(ap);
    return d;
}

/*
 * A failed attempt (what went wrong: `fmt`): another follows (`next`), unless this was the last allowed.
 * `failures`: failed attempts in a row before this one; one that brought bytes resets the count, so a slow but
 * moving link is never given up on. `from_zero`: the bytes in the file are no good, whatever follows.
 */
__attribute__((format(printf, 5, 6))) static decision_t again(const attempt_t *a, int failures, next_t next,
                                                              bool from_zero, const char *fmt, ...)
{
    decision_t d = {.next = next, .from_zero = from_zero, .failures = a->offset > a->start ? 1 : failures + 1};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d.failure, sizeof d.failure, fmt, ap);
    va_end(ap);
    if (d.failures > a->job->max_retries) {
        d.next = NEXT_END;
        d.status = OTA__DL_GAVE_UP;
        snprintf(a->res->why, sizeof a->res->why, "gave up after %d retries: %.200s", a->job->max_retries, d.failure);
    }
    return d;
}

/* What follows an attempt: the one place that decides. `failures`: failed attempts in a row before this one. */
static decision_t decide(const attempt_t *a, outcome_t o, int failures)
{
    const ota__dl_job_t *job = a->job;
    switch (o) {
    case OUT_COMPLETE:
        return (decision_t){.next = NEXT_END, .status = OTA__DL_DONE};
    case OUT_IO_ERROR:
        return end(a, OTA__DL_DONE, OTA_ERR_IO, "cannot %s %s: %s", a->io_verb, job->path, strerror(a->io_errno));
    case OUT_NO_MEMORY:
        return end(a, OTA__DL_DONE, OTA_ERR_NOMEM, "out of memory");
    case OUT_STOPPED:
        return end(a, OTA__DL_STOPPED, OTA_OK, "stopped at byte %" PRIu64, a->offset);
    case OUT_TOO_LONG:
        return end(a, OTA__DL_REFUSED, OTA_OK, "size mismatch: the server sent more than the %" PRIu64 " bytes",
                   job->size);
    case OUT_NO_FRESH_URL:
        return end(a, OTA__DL_GAVE_UP, OTA_OK, "the URL was refused (HTTP 403: %.100s) and no fresh one came: %s",
                   a->text, a->no_url);
    case OUT_REFUSED:
        return end(a, OTA__DL_REFUSED, OTA_OK, "download failed: HTTP %ld (%s)", a->status, a->text);
    case OUT_FRESH_URL: /* at once: a fresh URL is no reason to wait */
        return again(a, failures, NEXT_NOW, false, "HTTP 403 (%.100s)", a->text);
    case OUT_WRONG_RANGE:
        return again(a, failures, NEXT_AFTER_PAUSE, true,
                     "HTTP 206 for another range (Content-Range %.60s); starting over", a->content_range);
    case OUT_UNSATISFIABLE:
        return again(a, failures, NEXT_AFTER_PAUSE, true, "HTTP 416 from byte %" PRIu64 "; starting over", a->offset);
    case OUT_CUT:
        return again(a, failures, NEXT_AFTER_PAUSE, false, "connection dropped after %" PRIu64 " bytes (simulated)",
                     a->offset);
    case OUT_BUSY:
        return again(a, failures, NEXT_AFTER_PAUSE, false, "HTTP %ld (%s)", a->status, a->text);
    case OUT_NONE: /* attempt() always knows; were it not, another try is the safe answer */
    case OUT_LOST:
        break;
    }
    return again(a, failures, NEXT_AFTER_PAUSE, false, "connection lost at byte %" PRIu64 " (%s)", a->offset,
                 a->curl_error[0] != '\0' ? a->curl_error : curl_easy_strerror(a->cc));
}

/* The pause before retry number `retry`, asking the progress hook between slices; false when it says stop. */
static bool back_off(const ota__dl_job_t *job, const char *failure, int retry, uint64_t bytes)
{
    long ms = ota__backoff_ms(retry, job->backoff_initial_ms, job->backoff_max_ms);
    logf_(job, "download: %s; retry %d of %d in %ld ms", failure, retry, job->max_retries, ms);
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

ota_err_t ota__download(CURL *c, const ota__dl_job_t *job, ota__dl_result_t *res)
{
    ota_err_t rc = OTA_OK;
    int failures = 0;
    struct stat st;
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
        res->bytes = offset;
        if (offset == job->size) {
            res->status = OTA__DL_DONE; /* nothing left to fetch */
            goto Exit;
        }
        attempt_t a = {.c = c, .job = job, .res = res, .fd = fd, .start = offset, .offset = offset};
        decision_t d = decide(&a, attempt(&a), failures);
        if (d.from_zero && !start_over(&a))
            d = decide(&a, OUT_IO_ERROR, failures);
        if (d.failures > 0) {
            res->retries++;
            failures = d.failures;
        }
        if (d.next == NEXT_AFTER_PAUSE && !back_off(job, d.failure, failures, a.offset))
            d = decide(&a, OUT_STOPPED, failures);
        offset = res->bytes = a.offset;
        if (d.next == NEXT_END) {
            res->status = d.status;
            rc = d.rc;
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
