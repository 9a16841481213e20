/*
 * libota-device: the resumable download engine (device/download.c) against
 * an in-process HTTP stub: resume with Range after a dropped connection,
 * servers that ignore Range, fresh URLs after 403, retry limits and backoff,
 * permanent refusals, too many bytes, stopping; and the small parsers.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "download.h"
#include "test_device_stub.h"

#define IMAGE_LEN 100000

typedef struct fixture {
    stub_t *stub;
    CURL *curl;
    char dir[64];
    char part[128];
    char url[OTA_MANIFEST_URL_MAX + 1];
    unsigned char image[IMAGE_LEN];
    bool cut_done;
    uint64_t received;
    int refreshes_asked;
    bool refresh_fails;
    int stop_after_calls; /* progress hook: stop on this call (0: never) */
    long stop_at_ms;      /* progress hook: stop from this monotonic time on (0: never) */
    int progress_calls;
    char log[8192];
} fixture_t;

static ota_err_t refresh(void *arg, char *url, size_t cap, char *why, size_t why_cap)
{
    fixture_t *f = arg;
    f->refreshes_asked++;
    if (f->refresh_fails) {
        snprintf(why, why_cap, "no manifest");
        return OTA_ERR_UNAVAILABLE;
    }
    snprintf(url, cap, "%s/img?fresh=%d", stub_url(f->stub), f->refreshes_asked);
    return OTA_OK;
}

static int progress(void *arg, uint64_t bytes, uint64_t total)
{
    fixture_t *f = arg;
    assert_true(bytes <= total);
    f->progress_calls++;
    if (f->stop_at_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= f->stop_at_ms)
            return 1;
    }
    return f->stop_after_calls > 0 && f->progress_calls >= f->stop_after_calls;
}

static void logline(void *arg, const char *line)
{
    fixture_t *f = arg;
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof f->log - n, "%s\n", line);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ota-dl-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->part, sizeof f->part, "%s/download.part", f->dir);
    for (size_t i = 0; i < IMAGE_LEN; i++)
        f->image[i] = (unsigned char)(i * 7 + i / 251);
    f->stub = stub_start();
    stub_set_image(f->stub, f->image, IMAGE_LEN);
    snprintf(f->url, sizeof f->url, "%s/img", stub_url(f->stub));
    f->curl = curl_easy_init();
    assert_non_null(f->curl);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    curl_easy_cleanup(f->curl);
    stub_stop(f->stub);
    unlink(f->part);
    rmdir(f->dir);
    free(f);
    return 0;
}

static ota__dl_job_t job_of(fixture_t *f)
{
    ota__dl_job_t job = {
        .path = f->part,
        .size = IMAGE_LEN,
        .url = f->url,
        .url_cap = sizeof f->url,
        .max_retries = 10,
        .backoff_initial_ms = 1,
        .backoff_max_ms = 4,
        .connect_timeout_ms = 2000,
        .stall_s = 5,
        .cut_done = &f->cut_done,
        .received = &f->received,
        .refresh = refresh,
        .progress = progress,
        .log = logline,
        .arg = f,
    };
    return job;
}

/* The part file holds exactly the image. */
static void expect_image(fixture_t *f)
{
    FILE *fp = fopen(f->part, "rb");
    assert_non_null(fp);
    unsigned char *buf = malloc(IMAGE_LEN + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, IMAGE_LEN + 1, fp);
    fclose(fp);
    assert_int_equal(n, IMAGE_LEN);
    assert_memory_equal(buf, f->image, IMAGE_LEN);
    free(buf);
}

static void write_part(fixture_t *f, const void *data, size_t len)
{
    FILE *fp = fopen(f->part, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static void test_plain(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(r.bytes, IMAGE_LEN);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.retries, 0);
    assert_int_equal(stub_range_start(f->stub, 0), -1);
    assert_true(f->progress_calls > 0);
    expect_image(f);
}

/* The simulated fault: one cut after N bytes, then Range from byte N. Once only. */
static void test_cut_resumes(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    job.cut_after = 30000;
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.retries, 1);
    assert_int_equal(r.resumes, 1);
    assert_int_equal(stub_range_start(f->stub, 1), 30000);
    assert_true(f->cut_done);
    assert_non_null(strstr(f->log, "connection dropped after 30000 bytes (simulated); retry 1 of 10"));
    assert_non_null(strstr(f->log, "resuming at byte 30000 (HTTP 206)"));
    expect_image(f);

    /* The fault has struck: the next download of the device goes through in one piece. */
    unlink(f->part);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.attempts, 1);
    expect_image(f);
}

/* The server closes early, three times: each retry continues where the last stopped. */
static void test_server_drops_resume(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    stub_faults_t faults = stub_faults_none();
    long at = 0;
    for (int i = 0; i < 3; i++) {
        faults.drop_after = 20000;
        stub_set_faults(f->stub, &faults);
        job.max_retries = 0; /* one attempt per call: the part file carries the bytes across calls */
        assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
        assert_int_equal(r.status, OTA__DL_GAVE_UP);
        at += 20000;
        assert_int_equal(r.bytes, at);
        assert_non_null(strstr(r.why, "gave up after 0 retries: connection lost"));
    }
    job.max_retries = 10;
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(stub_range_start(f->stub, 3), 60000);
    expect_image(f);
}

/* A server that ignores Range: the bytes start over from 0 and the file still ends up right. */
static void test_ignored_range(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    stub_faults_t faults = stub_faults_none();
    faults.ignore_range = true;
    stub_set_faults(f->stub, &faults);
    write_part(f, f->image, 5000);
    memset(f->image, 0xee, 10); /* what the server sends from byte 0 now differs from the part */
    stub_set_image(f->stub, f->image, IMAGE_LEN);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(stub_range_start(f->stub, 0), 5000);
    assert_int_equal(r.resumes, 0);
    assert_non_null(strstr(f->log, "ignored Range"));
    expect_image(f);
}

/* A part longer than the image is from something else: start over. A complete part needs no request. */
static void test_part_too_long_or_complete(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    unsigned char *big = calloc(1, IMAGE_LEN + 10);
    assert_non_null(big);
    write_part(f, big, IMAGE_LEN + 10);
    free(big);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(stub_range_start(f->stub, 0), -1);
    expect_image(f);

    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(stub_image_requests(f->stub), 1);
}

/* 403 (an expired URL): a fresh URL from the hook, and the download continues from the same byte. */
static void test_forbidden_refreshes(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    stub_faults_t faults = stub_faults_none();
    faults.refuse_path_old = true;
    stub_set_faults(f->stub, &faults);
    snprintf(f->url, sizeof f->url, "%s/img?old", stub_url(f->stub));
    write_part(f, f->image, 12345);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(r.refreshes, 1);
    assert_int_equal(f->refreshes_asked, 1);
    assert_int_equal(stub_range_start(f->stub, 0), 12345);
    assert_int_equal(stub_range_start(f->stub, 1), 12345);
    assert_non_null(strstr(f->log, "refused (HTTP 403: Request has expired); asking the server for a fresh one"));
    assert_non_null(strstr(f->url, "fresh=1"));
    expect_image(f);
}

static void test_forbidden_without_fresh_url_gives_up(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    stub_faults_t faults = stub_faults_none();
    faults.status_next = 403;
    faults.status_count = 1;
    stub_set_faults(f->stub, &faults);
    f->refresh_fails = true;
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_GAVE_UP);
    assert_non_null(strstr(r.why, "no fresh one came: no manifest"));
}

/* 503 twice: retried with backoff, then done. */
static void test_unavailable_retried(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    stub_faults_t faults = stub_faults_none();
    faults.status_next = 503;
    faults.status_count = 2;
    stub_set_faults(f->stub, &faults);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_int_equal(r.retries, 2);
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr(f->log, "HTTP 503 (no); retry 2 of 10"));
    expect_image(f);
}

/* Nothing listening: max_retries retries, then it gives up (and keeps what it has). */
static void test_gives_up_after_max_retries(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    char url[64];
    int port = atoi(strrchr(stub_url(f->stub), ':') + 1);
    stub_stop(f->stub); /* the port is closed now */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/img", port);
    snprintf(f->url, sizeof f->url, "%s", url);
    write_part(f, f->image, 777);
    job.max_retries = 10;
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_GAVE_UP);
    assert_int_equal(r.attempts, 11);
    assert_int_equal(r.retries, 11);
    assert_int_equal(r.bytes, 777);
    assert_non_null(strstr(r.why, "gave up after 10 retries: connection lost at byte 777"));
    f->stub = stub_start(); /* for the teardown */
}

/* Errors that no retry can fix. */
static void test_refused(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    stub_faults_t faults = stub_faults_none();
    faults.status_next = 404;
    faults.status_count = 1;
    stub_set_faults(f->stub, &faults);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_REFUSED);
    assert_string_equal(r.why, "download failed: HTTP 404 (no)");
    assert_int_equal(r.attempts, 1);

    faults = stub_faults_none();
    faults.extra = 1;
    stub_set_faults(f->stub, &faults);
    unlink(f->part);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_REFUSED);
    assert_non_null(strstr(r.why, "size mismatch: the server sent more than the 100000 bytes"));
}

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_stop(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    f->stop_after_calls = 1;
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_STOPPED);

    /* Also during the pause between retries: a 60 s pause ends as soon as the hook says stop. */
    stub_faults_t faults = stub_faults_none();
    faults.status_next = 503;
    faults.status_count = 5;
    stub_set_faults(f->stub, &faults);
    f->stop_after_calls = 0;
    f->stop_at_ms = mono_ms() + 300;
    job.backoff_initial_ms = job.backoff_max_ms = 60000;
    long t0 = mono_ms();
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    assert_int_equal(r.status, OTA__DL_STOPPED);
    assert_int_equal(r.attempts, 1);
    assert_true(mono_ms() - t0 < 5000);
}

/* The throttle: 100 kB at 250 kB/s take about 0.4 s. */
static void test_throttle(void **state)
{
    fixture_t *f = *state;
    ota__dl_job_t job = job_of(f);
    ota__dl_result_t r;
    struct timespec a, b;
    job.throttle_bps = 250000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(ota__download(f->curl, &job, &r), OTA_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_int_equal(r.status, OTA__DL_DONE);
    assert_true(ms >= 350);
    expect_image(f);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(ota__backoff_ms(1, 200, 5000), 200);
    assert_int_equal(ota__backoff_ms(2, 200, 5000), 400);
    assert_int_equal(ota__backoff_ms(3, 200, 5000), 800);
    assert_int_equal(ota__backoff_ms(5, 200, 5000), 3200);
    assert_int_equal(ota__backoff_ms(6, 200, 5000), 5000);
    assert_int_equal(ota__backoff_ms(10, 200, 5000), 5000);
    assert_int_equal(ota__backoff_ms(1000, 200, 5000), 5000);
    assert_int_equal(ota__backoff_ms(1, 0, 5000), 0);
}

static void test_content_range(void **state)
{
    (void)state;
    uint64_t a, b, t;
    assert_true(ota__content_range(" bytes 30000-99999/100000\r\n", &a, &b, &t));
    assert_int_equal(a, 30000);
    assert_int_equal(b, 99999);
    assert_int_equal(t, 100000);
    assert_true(ota__content_range("bytes 0-0/*", &a, &b, &t));
    assert_true(t == UINT64_MAX);
    assert_false(ota__content_range("bytes 5-4/10", &a, &b, &t));
    assert_false(ota__content_range("bytes 0-10/10", &a, &b, &t));
    assert_false(ota__content_range("items 0-1/10", &a, &b, &t));
    assert_false(ota__content_range("bytes -1/10", &a, &b, &t));
    assert_false(ota__content_range("bytes 0-1/10x", &a, &b, &t));
    assert_false(ota__content_range("bytes 99999999999999999999-1/10", &a, &b, &t));
    assert_false(ota__content_range("", &a, &b, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_drops_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ignored_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_part_too_long_or_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forbidden_refreshes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forbidden_without_fresh_url_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gives_up_after_max_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_content_range),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
