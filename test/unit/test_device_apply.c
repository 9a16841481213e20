/*
 * libota-device: the public API (include/ota/device.h) against the
 * in-process HTTP stub standing in for the server and the storage: what the
 * heartbeats say (conditions, progress, a failure once), applying an update
 * (slot switch, state on disk), the new slot on trial (confirmed, or given
 * up at the next restart or power-on), failures that keep the slot, a
 * download continued across calls, a fresh URL after 403, the state
 * directory lock.
 * The real server is in test/integration/it_device_e2e.c.
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
#include <jansson.h>
#include <openssl/evp.h>

#include "ota/hex.h"
#include "ota/crc32.h"
#include "ota/device.h"
#include "state.h"
#include "test_delta_maker.h"
#include "test_device_stub.h"
#include "util.h"

static const unsigned char SEED[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

#define IMAGE_LEN 80000
#define DEVICE_ID "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4"

typedef struct fixture {
    stub_t *stub;
    char dir[64];
    unsigned char image[IMAGE_LEN];
    unsigned char delta[IMAGE_LEN]; /* the delta from the base image (provision_base) to `image` */
    size_t delta_len;
    ota_device_config_t cfg;
    ota_device_t *dev;
    char log[16384];
} fixture_t;

static void logline(void *arg, const char *line)
{
    fixture_t *f = arg;
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof f->log - n, "%s\n", line);
}

static void path_in(const fixture_t *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static bool exists(const fixture_t *f, const char *name)
{
    char path[256];
    struct stat st;
    path_in(f, name, path, sizeof path);
    return stat(path, &st) == 0;
}

/* A registered device whose server is the stub, on 1.0.0 in slot a. */
static void provision(fixture_t *f, const char *server)
{
    ota__state_t st;
    char why[200];
    memset(&st, 0, sizeof st);
    snprintf(st.server, sizeof st.server, "%s", server);
    strcpy(st.device_id, DEVICE_ID);
    strcpy(st.token, "otd_test");
    strcpy(st.serial, "SN-1");
    strcpy(st.model, "bota-pin");
    assert_int_equal(ota_ed25519_public_from_seed(SEED, st.public_key), OTA_OK);
    strcpy(st.version, "1.0.0");
    st.active_slot = 'a';
    st.slots[0].present = true;
    strcpy(st.slots[0].version, "1.0.0");
    assert_int_equal(ota__write_atomic(f->dir, "slot-a.bin", "factory\n", 8, 0644), OTA_OK);
    assert_int_equal(ota__state_save(f->dir, &st, why, sizeof why), OTA_OK);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ota-apply-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (size_t i = 0; i < IMAGE_LEN; i++)
        f->image[i] = (unsigned char)(i * 13 + (i >> 9));
    f->stub = stub_start();
    stub_set_image(f->stub, f->image, IMAGE_LEN);
    provision(f, stub_url(f->stub));
    ota_device_config_init(&f->cfg);
    f->cfg.state_dir = f->dir;
    f->cfg.backoff_initial_ms = 1;
    f->cfg.backoff_max_ms = 2;
    f->cfg.timeout_ms = 5000;
    f->cfg.on_log = logline;
    f->cfg.log_arg = f;
    *state = f;
    return 0;
}

static void rm(const fixture_t *f, const char *name)
{
    char path[256];
    path_in(f, name, path, sizeof path);
    unlink(path);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ota_device_free(f->dev);
    stub_stop(f->stub);
    static const char *const files[] = {"state.json",    "state.json.tmp", "slot-a.bin", "slot-b.bin", "download.part",
                                        "download.json", "lock",           "delta.part", "delta.json", NULL};
    for (const char *const *p = files; *p != NULL; p++)
        rm(f, *p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void open_device(fixture_t *f)
{
    ota_err_t err = OTA_ERR_IO;
    ota_device_free(f->dev);
    f->dev = ota_device_new(&f->cfg, &err);
    assert_int_equal(err, OTA_OK);
    assert_non_null(f->dev);
}

/* A manifest of the stub's image, signed with SEED, its URL at the stub's `path`. */
static void manifest(fixture_t *f, ota_manifest_t *m, const char *assignment, const char *version, const char *path)
{
    unsigned char md[32];
    unsigned int n = 0;
    memset(m, 0, sizeof *m);
    strcpy(m->assignment_id, assignment);
    strcpy(m->device_id, DEVICE_ID);
    strcpy(m->not_after, "2099-12-31T23:59:59Z"); /* the deadline is test_device_verify's */
    strcpy(m->release_id, "11111111-2222-4333-8444-555555555555");
    strcpy(m->model, "bota-pin");
    snprintf(m->version, sizeof m->version, "%s", version);
    strcpy(m->artifact, "bin");
    snprintf(m->url, sizeof m->url, "%s%s", stub_url(f->stub), path);
    strcpy(m->url_expires_at, "2026-11-21T10:15:00Z");
    m->size = IMAGE_LEN;
    m->crc32 = ota_crc32_update(0, f->image, IMAGE_LEN);
    assert_int_equal(EVP_Digest(f->image, IMAGE_LEN, md, &n, EVP_sha256(), NULL), 1);
    ota_hex_encode(md, 32, m->sha256);
    assert_int_equal(ota_manifest_sign(m, SEED), OTA_OK);
}

/* Queues a heartbeat answer carrying `m` (NULL: none) and `deferred` (NULL: null). */
static void queue(fixture_t *f, const ota_manifest_t *m, const char *deferred)
{
    char json[OTA_MANIFEST_JSON_MAX], body[OTA_MANIFEST_JSON_MAX + 256];
    size_t len = 0;
    if (m != NULL)
        assert_int_equal(ota_manifest_encode(m, json, sizeof json, &len), OTA_OK);
    snprintf(body, sizeof body,
             "{\"server_time\":\"2026-11-21T10:00:00Z\",\"heartbeat_interval_s\":60,\"ota\":%s,"
             "\"deferred\":%s%s%s}",
             m != NULL ? json : "null", deferred ? "\"" : "", deferred ? deferred : "null", deferred ? "\"" : "");
    stub_queue_answer(f->stub, body);
}

/* Heartbeat `i`'s body, parsed (the caller json_decref's it). */
static json_t *beat(fixture_t *f, int i)
{
    const char *body = stub_heartbeat_body(f->stub, i);
    assert_non_null(body);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *str(json_t *obj, const char *path1, const char *path2)
{
    json_t *v = json_object_get(obj, path1);
    if (path2 != NULL)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

static json_int_t num(json_t *obj, const char *path1, const char *path2)
{
    return json_integer_value(json_object_get(json_object_get(obj, path1), path2));
}

static void expect_file(fixture_t *f, const char *name, const unsigned char *data, size_t len)
{
    char path[256];
    size_t n = 0;
    char *bytes = NULL;
    path_in(f, name, path, sizeof path);
    assert_int_equal(ota__read_file(path, 1 << 20, &bytes, &n), OTA_OK);
    assert_int_equal(n, len);
    assert_memory_equal(bytes, data, len);
    free(bytes);
}

static void test_heartbeat_reports_conditions(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    f->cfg.conditions.connectivity = "cellular";
    f->cfg.conditions.recording = true;
    f->cfg.conditions.battery_percent = 9;
    f->cfg.conditions.battery_state = "low";
    open_device(f);
    queue(f, NULL, "recording");
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    assert_false(a.has_manifest);
    assert_string_equal(a.deferred, "recording");
    assert_int_equal(a.interval_s, 60);
    json_t *b = beat(f, 0);
    assert_string_equal(str(b, "firmware_version", NULL), "1.0.0");
    assert_string_equal(str(b, "connectivity", NULL), "cellular");
    assert_true(json_is_true(json_object_get(b, "recording")));
    assert_int_equal(num(b, "battery", "percent"), 9);
    assert_string_equal(str(b, "battery", "state"), "low");
    assert_null(json_object_get(b, "ota"));
    json_decref(b);

    ota_device_conditions_t c = {.connectivity = NULL, .recording = false, .battery_percent = -1};
    assert_int_equal(ota_device_set_conditions(f->dev, &c), OTA_OK);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    b = beat(f, 1);
    assert_string_equal(str(b, "connectivity", NULL), "wifi");
    assert_true(json_is_false(json_object_get(b, "recording")));
    assert_null(json_object_get(b, "battery"));
    json_decref(b);

    ota_device_conditions_t bad = {.connectivity = "lte", .battery_percent = -1};
    assert_int_equal(ota_device_set_conditions(f->dev, &bad), OTA_ERR_INVALID);
    bad.connectivity = NULL;
    bad.battery_state = "empty";
    assert_int_equal(ota_device_set_conditions(f->dev, &bad), OTA_ERR_INVALID);
    bad.battery_state = NULL;
    bad.battery_percent = 101;
    assert_int_equal(ota_device_set_conditions(f->dev, &bad), OTA_ERR_INVALID);
}

static void test_apply_switches_slot(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    ota_device_result_t r;
    ota_manifest_t m;
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000001", "1.2.0", "/img");
    queue(f, &m, NULL);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    assert_true(a.has_manifest);
    assert_int_equal(ota_device_apply(f->dev, &a.manifest, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.bytes, IMAGE_LEN);
    assert_int_equal(r.total, IMAGE_LEN);
    assert_string_equal(ota_device_version(f->dev), "1.2.0");
    assert_int_equal(ota_device_active_slot(f->dev), 'b');
    assert_string_equal(ota_device_id(f->dev), DEVICE_ID);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
    expect_file(f, "slot-a.bin", (const unsigned char *)"factory\n", 8);
    assert_false(exists(f, "download.part"));
    assert_false(exists(f, "download.json"));
    assert_non_null(strstr(f->log, "reboot: running 1.2.0 from slot b"));

    /* On disk, for whoever opens the directory next. */
    ota__state_t st;
    char why[200];
    assert_int_equal(ota__state_load(f->dir, &st, why, sizeof why), OTA_OK);
    assert_string_equal(st.version, "1.2.0");
    assert_int_equal(st.active_slot, 'b');
    assert_string_equal(st.slots[1].sha256, m.sha256);

    /* The next heartbeat reports the new version, and no ota progress. */
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    json_t *b = beat(f, 1);
    assert_string_equal(str(b, "firmware_version", NULL), "1.2.0");
    assert_null(json_object_get(b, "ota"));
    json_decref(b);
}

static void test_failure_reported_once(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    ota_device_result_t r;
    ota_manifest_t m;
    f->cfg.faults.corrupt = true;
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000002", "1.2.0", "/img");
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_FAILED);
    assert_non_null(strstr(r.error, "crc32 mismatch"));
    assert_string_equal(ota_device_version(f->dev), "1.0.0");
    assert_int_equal(ota_device_active_slot(f->dev), 'a');
    assert_false(exists(f, "slot-b.bin"));
    assert_false(exists(f, "download.part"));

    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    json_t *b = beat(f, 0);
    assert_string_equal(str(b, "firmware_version", NULL), "1.0.0");
    assert_string_equal(str(b, "ota", "assignment_id"), m.assignment_id);
    assert_string_equal(str(b, "ota", "state"), "failed");
    assert_non_null(strstr(str(b, "ota", "error"), "crc32 mismatch"));
    json_decref(b);
    b = beat(f, 1);
    assert_null(json_object_get(b, "ota"));
    json_decref(b);
}

/* A manifest not signed by the pinned key: refused before any download. */
static void test_foreign_manifest_refused(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    static const unsigned char other[32] = {7};
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000003", "1.2.0", "/img");
    assert_int_equal(ota_manifest_sign(&m, other), OTA_OK);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_FAILED);
    assert_non_null(strstr(r.error, "signature invalid"));
    assert_int_equal(stub_image_requests(f->stub), 0);

    strcpy(m.model, "bota-max");
    assert_int_equal(ota_manifest_sign(&m, SEED), OTA_OK);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_FAILED);
    assert_non_null(strstr(r.error, "model mismatch"));
    assert_int_equal(stub_image_requests(f->stub), 0);
}

/* Refused before a byte is downloaded and reported as a failure with the reason. */
static void expect_refused_and_reported(fixture_t *f, const ota_manifest_t *m, const char *reason)
{
    ota_device_answer_t a;
    ota_device_result_t r;
    assert_int_equal(ota_device_apply(f->dev, m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_FAILED);
    if (strstr(r.error, reason) == NULL)
        fail_msg("want \"%s\" in \"%s\"", reason, r.error);
    assert_int_equal(r.bytes, 0);
    assert_int_equal(stub_image_requests(f->stub), 0);
    assert_false(exists(f, "download.part"));
    assert_false(exists(f, "download.json"));
    assert_string_equal(ota_device_version(f->dev), "1.0.0");
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    json_t *b = beat(f, stub_heartbeats(f->stub) - 1);
    assert_string_equal(str(b, "ota", "assignment_id"), m->assignment_id);
    assert_string_equal(str(b, "ota", "state"), "failed");
    assert_non_null(strstr(str(b, "ota", "error"), reason));
    json_decref(b);
}

/*
 * Manifests signed right but replayed: another device's, one past its deadline by this device's clock, an older
 * version without downgrade, the version it runs. None downloads a byte; each is reported failed with its reason.
 * An older version signed with downgrade goes through.
 */
static void test_replayed_manifest_refused(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    open_device(f);

    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000013", "1.2.0", "/img");
    strcpy(m.device_id, "00000000-0000-4000-8000-0000000000bb");
    assert_int_equal(ota_manifest_sign(&m, SEED), OTA_OK);
    expect_refused_and_reported(f, &m, "device mismatch");

    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000014", "1.2.0", "/img");
    strcpy(m.not_after, "2020-01-01T00:00:00Z");
    assert_int_equal(ota_manifest_sign(&m, SEED), OTA_OK);
    expect_refused_and_reported(f, &m, "expired: the manifest was valid until 2020-01-01T00:00:00Z");

    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000015", "0.9.0", "/img");
    expect_refused_and_reported(f, &m, "downgrade refused: the manifest names 0.9.0, older than the running 1.0.0");

    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000016", "1.0.0", "/img");
    expect_refused_and_reported(f, &m, "already running: this device runs 1.0.0 already");

    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000017", "0.9.0", "/img");
    m.downgrade = true;
    assert_int_equal(ota_manifest_sign(&m, SEED), OTA_OK);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_string_equal(ota_device_version(f->dev), "0.9.0");
}

/* The device's clock decides the deadline: one running a day ahead refuses what the server still delivers. */
static void test_clock_ahead_refuses(void **state)
{
    fixture_t *f = *state;
    ota_manifest_t m;
    time_t in_an_hour = time(NULL) + 3600;
    struct tm tm;
    f->cfg.faults.clock_skew_s = 86400;
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000018", "1.2.0", "/img");
    assert_non_null(gmtime_r(&in_an_hour, &tm));
    assert_true(strftime(m.not_after, sizeof m.not_after, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
    assert_int_equal(ota_manifest_sign(&m, SEED), OTA_OK);
    expect_refused_and_reported(f, &m, "expired");
}

/* Retries spent: the bytes stay, heartbeats report the progress, and a later delivery of the same image continues. */
static void test_download_continues_across_calls(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    ota_device_result_t r;
    ota_manifest_t m, m2;
    stub_faults_t faults = stub_faults_none();
    f->cfg.max_retries = 0;
    open_device(f);
    faults.drop_after = 30000;
    stub_set_faults(f->stub, &faults);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000004", "1.2.0", "/img");
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_INCOMPLETE);
    assert_int_equal(r.bytes, 30000);
    assert_non_null(strstr(r.error, "gave up after 0 retries"));
    assert_true(exists(f, "download.part"));
    assert_true(exists(f, "download.json"));
    assert_string_equal(ota_device_version(f->dev), "1.0.0");

    queue(f, &m, NULL);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    json_t *b = beat(f, 0);
    assert_string_equal(str(b, "ota", "state"), "downloading");
    assert_int_equal(num(b, "ota", "bytes"), 30000);
    assert_int_equal(num(b, "ota", "total"), IMAGE_LEN);
    json_decref(b);

    /* A reopened device (a reboot meanwhile), another assignment of the same image: Range from byte 30000. */
    open_device(f);
    manifest(f, &m2, "aaaaaaaa-0000-4000-8000-000000000005", "1.2.0", "/img");
    assert_int_equal(ota_device_apply(f->dev, &m2, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.resumes, 1);
    assert_int_equal(stub_range_start(f->stub, 1), 30000);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
}

/* A download.part of another image is not continued. */
static void test_part_of_other_image_discarded(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    ota__part_meta_t meta;
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000006", "1.2.0", "/img");
    ota__part_meta_of(&m, &meta);
    memset(meta.sha256, 'f', 64);
    assert_int_equal(ota__part_meta_save(f->dir, OTA__PART_META, &meta), OTA_OK);
    assert_int_equal(ota__write_atomic(f->dir, "download.part", "junkjunk", 8, 0644), OTA_OK);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(stub_range_start(f->stub, 0), -1);
}

/* 403 on the URL: a heartbeat (reporting the progress) brings a fresh URL and the download goes on. */
static void test_expired_url_refreshed(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m, fresh;
    stub_faults_t faults = stub_faults_none();
    faults.refuse_path_old = true;
    stub_set_faults(f->stub, &faults);
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000007", "1.2.0", "/img?old");
    fresh = m;
    snprintf(fresh.url, sizeof fresh.url, "%s/img?new", stub_url(f->stub));
    strcpy(fresh.url_expires_at, "2026-11-21T10:30:00Z");
    queue(f, &fresh, NULL);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.url_refreshes, 1);
    assert_int_equal(stub_heartbeats(f->stub), 1);
    json_t *b = beat(f, 0);
    assert_string_equal(str(b, "ota", "state"), "downloading");
    assert_string_equal(str(b, "ota", "assignment_id"), m.assignment_id);
    json_decref(b);
    assert_non_null(strstr(f->log, "fresh URL (valid until 2026-11-21T10:30:00Z)"));
}

/* 403, and the server no longer delivers the update (canceled): incomplete, with why. */
static void test_expired_url_canceled(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    stub_faults_t faults = stub_faults_none();
    faults.refuse_path_old = true;
    stub_set_faults(f->stub, &faults);
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000008", "1.2.0", "/img?old");
    queue(f, NULL, NULL);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_INCOMPLETE);
    assert_non_null(strstr(r.error, "no longer delivers"));

    /* A fresh manifest whose signed fields differ is not taken as a fresh URL. */
    ota_manifest_t other;
    manifest(f, &other, "aaaaaaaa-0000-4000-8000-000000000008", "1.2.1", "/img?new");
    queue(f, &other, NULL);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_INCOMPLETE);
    assert_non_null(strstr(r.error, "differs"));
}

/* A long download keeps the heartbeat going (every heartbeat_interval_s) with its progress. */
static void test_progress_heartbeats(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    ota_device_result_t r;
    ota_manifest_t m;
    char body[OTA_MANIFEST_JSON_MAX + 256], json[OTA_MANIFEST_JSON_MAX];
    size_t len = 0;
    f->cfg.faults.throttle_bps = 32000; /* 80 kB: 2.5 s */
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000009", "1.2.0", "/img");
    assert_int_equal(ota_manifest_encode(&m, json, sizeof json, &len), OTA_OK);
    snprintf(body, sizeof body, "{\"server_time\":\"x\",\"heartbeat_interval_s\":1,\"ota\":%s,\"deferred\":null}",
             json);
    for (int i = 0; i < 6; i++)
        stub_queue_answer(f->stub, body);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    assert_int_equal(a.interval_s, 1);
    assert_int_equal(ota_device_apply(f->dev, &a.manifest, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    int beats = stub_heartbeats(f->stub);
    assert_true(beats >= 2);
    json_t *b = beat(f, 1);
    assert_string_equal(str(b, "ota", "state"), "downloading");
    assert_true(num(b, "ota", "bytes") > 0 && num(b, "ota", "bytes") < IMAGE_LEN);
    assert_int_equal(num(b, "ota", "total"), IMAGE_LEN);
    json_decref(b);
    assert_int_equal(ota_device_confirm(f->dev), OTA_OK); /* 1.2.0 works: it stays when the device opens again */

    /* The server stops delivering meanwhile (canceled): the download stops, what it has stays. */
    stub_clear_answers(f->stub);
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-00000000000a", "1.3.0", "/img");
    assert_int_equal(ota_manifest_encode(&m, json, sizeof json, &len), OTA_OK);
    snprintf(body, sizeof body, "{\"server_time\":\"x\",\"heartbeat_interval_s\":1,\"ota\":%s,\"deferred\":null}",
             json);
    stub_queue_answer(f->stub, body);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    stub_queue_answer(f->stub, "{\"server_time\":\"x\",\"heartbeat_interval_s\":1,\"ota\":null,\"deferred\":null}");
    assert_int_equal(ota_device_apply(f->dev, &a.manifest, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_INCOMPLETE);
    assert_non_null(strstr(r.error, "no longer delivers"));
    assert_true(r.bytes > 0 && r.bytes < IMAGE_LEN);
    assert_string_equal(ota_device_version(f->dev), "1.2.0");
}

/* Applies 1.2.0 from the stub: slot b is on trial, booted once (at the install's reboot), not confirmed. */
static void apply_on_trial(fixture_t *f)
{
    ota_device_result_t r;
    ota_manifest_t m;
    ota__state_t st;
    char why[200];
    open_device(f);
    manifest(f, &m, "aaaaaaaa-0000-4000-8000-00000000000b", "1.2.0", "/img");
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_true(ota_device_on_trial(f->dev));
    assert_non_null(strstr(f->log, "boot: slot b (1.2.0) is on trial (boot 1 of 1)"));
    assert_int_equal(ota__state_load(f->dir, &st, why, sizeof why), OTA_OK);
    assert_true(st.trial);
    assert_int_equal(st.trial_boots, 1);
}

/* The state on disk: `version` running from `slot`, on trial or not. */
static void expect_disk(fixture_t *f, const char *version, char slot, bool trial)
{
    ota__state_t st;
    char why[200];
    assert_int_equal(ota__state_load(f->dir, &st, why, sizeof why), OTA_OK);
    assert_string_equal(st.version, version);
    assert_int_equal(st.active_slot, slot);
    assert_int_equal(st.trial, trial);
}

/* The new firmware confirms itself: restarts and power-ons keep it. */
static void test_confirmed_firmware_stays(void **state)
{
    fixture_t *f = *state;
    bool fell_back = true;
    apply_on_trial(f);
    assert_int_equal(ota_device_confirm(f->dev), OTA_OK);
    assert_false(ota_device_on_trial(f->dev));
    assert_non_null(strstr(f->log, "confirm: 1.2.0 in slot b confirmed itself"));
    expect_disk(f, "1.2.0", 'b', false);
    assert_int_equal(ota_device_confirm(f->dev), OTA_OK); /* nothing on trial: nothing to do */
    assert_int_equal(ota_device_restart(f->dev, &fell_back), OTA_OK);
    assert_false(fell_back);
    open_device(f);
    assert_string_equal(ota_device_version(f->dev), "1.2.0");
    assert_int_equal(ota_device_active_slot(f->dev), 'b');
}

/* Unconfirmed, the new firmware is given up at the next boot: the old slot runs, and the heartbeat says so. */
static void test_unconfirmed_firmware_falls_back(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    bool fell_back = false;
    apply_on_trial(f);
    queue(f, NULL, NULL);
    queue(f, NULL, NULL);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    assert_int_equal(ota_device_restart(f->dev, &fell_back), OTA_OK);
    assert_true(fell_back);
    assert_false(ota_device_on_trial(f->dev));
    assert_string_equal(ota_device_version(f->dev), "1.0.0");
    assert_int_equal(ota_device_active_slot(f->dev), 'a');
    assert_non_null(strstr(f->log, "boot: slot b (1.2.0) is on trial and did not confirm itself; falling back to "
                                   "slot a (1.0.0)"));
    expect_disk(f, "1.0.0", 'a', false);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN); /* the given-up image stays where it was */
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    json_t *b = beat(f, 0);
    assert_string_equal(str(b, "firmware_version", NULL), "1.2.0");
    json_decref(b);
    b = beat(f, 1);
    assert_string_equal(str(b, "firmware_version", NULL), "1.0.0");
    json_decref(b);
}

/* Opening the device is its power-on: a slot on trial gets one boot in all, whichever way the device came up. */
static void test_power_on_boots_trial_once(void **state)
{
    fixture_t *f = *state;
    ota__state_t st;
    char why[200];
    apply_on_trial(f);
    open_device(f); /* the device lost power before the firmware confirmed itself */
    assert_string_equal(ota_device_version(f->dev), "1.0.0");
    assert_false(ota_device_on_trial(f->dev));
    expect_disk(f, "1.0.0", 'a', false);

    /* Switched but never booted (power lost between the switch and the reboot): the next power-on is its boot. */
    assert_int_equal(ota__state_load(f->dir, &st, why, sizeof why), OTA_OK);
    st.active_slot = 'b';
    strcpy(st.version, "1.2.0");
    st.trial = true;
    st.trial_boots = 0;
    assert_int_equal(ota__state_save(f->dir, &st, why, sizeof why), OTA_OK);
    open_device(f);
    assert_string_equal(ota_device_version(f->dev), "1.2.0");
    assert_true(ota_device_on_trial(f->dev));
    open_device(f);
    assert_string_equal(ota_device_version(f->dev), "1.0.0");
    assert_int_equal(ota_device_active_slot(f->dev), 'a');
}

static void test_open_errors_and_lock(void **state)
{
    fixture_t *f = *state;
    ota_err_t err = OTA_OK;
    open_device(f);
    /* One process (one handle) per device at a time. */
    assert_null(ota_device_new(&f->cfg, &err));
    assert_int_equal(err, OTA_ERR_UNAVAILABLE);
    ota_device_free(f->dev);
    f->dev = NULL;
    open_device(f);

    ota_device_config_t cfg = f->cfg;
    cfg.state_dir = "/nonexistent/ota-device";
    assert_null(ota_device_new(&cfg, &err));
    assert_int_equal(err, OTA_ERR_NOT_FOUND);
    cfg.state_dir = NULL;
    assert_null(ota_device_new(&cfg, &err));
    assert_int_equal(err, OTA_ERR_INVALID);
    assert_null(ota_device_new(NULL, &err));
    assert_int_equal(err, OTA_ERR_INVALID);
    cfg = f->cfg;
    cfg.conditions.battery_state = "full";
    assert_null(ota_device_new(&cfg, &err));
    assert_int_equal(err, OTA_ERR_INVALID);
    ota_device_free(NULL);
    assert_string_equal(ota_device_outcome_name(OTA_DEVICE_INCOMPLETE), "incomplete");
}

static void test_unreachable_server(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    char url[64];
    int port = atoi(strrchr(stub_url(f->stub), ':') + 1);
    stub_stop(f->stub);
    rm(f, "state.json");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    provision(f, url);
    open_device(f);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_ERR_UNAVAILABLE);
    assert_non_null(strstr(ota_device_errmsg(f->dev), "heartbeat: POST"));
    f->stub = stub_start();
}

static void test_register_refuses_bad_input(void **state)
{
    fixture_t *f = *state;
    char err[300];
    ota_device_registration_t reg = {.state_dir = f->dir,
                                     .server = stub_url(f->stub),
                                     .api_key = "ota_key",
                                     .serial = "SN-2",
                                     .model = "bota-pin",
                                     .version = "1.0.0"};
    /* The directory holds a device already. */
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "registered already"));
    reg.version = "one";
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "not a semantic version"));
    reg.version = "1.0.0";
    reg.server = "ftp://x";
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "server"));
    reg.server = stub_url(f->stub);
    reg.model = "Bad Model";
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    reg.model = NULL;
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_int_equal(ota_device_register(NULL, NULL, 0), OTA_ERR_INVALID);
    /* A device created already: its id and token instead of the API key, both well-formed, never with the key. */
    reg.model = "bota-pin";
    reg.device_id = "0b7e4c1a-58e2-4f0e-9d55-2f1c7a3e9b10";
    reg.token = "otd_abc";
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "either api_key"));
    reg.api_key = NULL;
    reg.token = NULL;
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "go together"));
    reg.token = "otd_abc";
    reg.device_id = "0B7E4C1A-58E2-4F0E-9D55-2F1C7A3E9B10";
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "not a UUID"));
    reg.device_id = "0b7e4c1a-58e2-4f0e-9d55-2f1c7a3e9b10";
    const char *bad_tokens[] = {"ota_an_api_key", "otd_a b", ""};
    for (size_t i = 0; i < sizeof bad_tokens / sizeof bad_tokens[0]; i++) {
        reg.token = bad_tokens[i];
        assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
        assert_non_null(strstr(err, "malformed device token"));
    }
    /* Well-formed: refused only because the directory holds a device already. */
    reg.token = "otd_abc";
    assert_int_equal(ota_device_register(&reg, err, sizeof err), OTA_ERR_INVALID);
    assert_non_null(strstr(err, "registered already"));
}

/* ---- deltas ------------------------------------------------------------------------ */

/* The running image a delta applies to: the new image with a stretch changed. */
static void base_image(const fixture_t *f, unsigned char *out)
{
    memcpy(out, f->image, IMAGE_LEN);
    for (size_t i = 20000; i < 24000; i++)
        out[i] = (unsigned char)(i * 7);
}

static void sha256_hex(const unsigned char *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    ota_hex_encode(md, 32, hex);
}

/* Slot a holds the base image (1.0.0, its SHA-256 in state.json, as after an update); the stub serves the delta. */
static void provision_base(fixture_t *f)
{
    unsigned char base[IMAGE_LEN], *delta = NULL;
    size_t len = 0;
    ota__state_t st;
    char why[200];
    base_image(f, base);
    assert_int_equal(ota__write_atomic(f->dir, "slot-a.bin", base, IMAGE_LEN, 0644), OTA_OK);
    assert_int_equal(ota__state_load(f->dir, &st, why, sizeof why), OTA_OK);
    st.slots[0].size = IMAGE_LEN;
    sha256_hex(base, IMAGE_LEN, st.slots[0].sha256);
    assert_int_equal(ota__state_save(f->dir, &st, why, sizeof why), OTA_OK);
    test_make_delta(base, IMAGE_LEN, f->image, IMAGE_LEN, 1, &delta, &len);
    assert_true(len < 8000);
    stub_set_delta(f->stub, delta, len);
    memcpy(f->delta, delta, len);
    f->delta_len = len;
    free(delta);
}

/* A device whose running slot is the delta's base, open; the stub serves the delta (403 for ?old URLs: refuse_old). */
static void delta_device(fixture_t *f, bool refuse_old)
{
    stub_faults_t faults = stub_faults_none();
    faults.refuse_path_old = refuse_old;
    stub_set_faults(f->stub, &faults);
    provision_base(f);
    open_device(f);
}

/* A manifest of the image with a delta of `len` bytes at the stub's `path` (SHA-256 of `delta`), re-signed. */
static void delta_manifest(fixture_t *f, ota_manifest_t *m, const char *assignment, const char *path,
                           const unsigned char *delta, size_t len)
{
    unsigned char base[IMAGE_LEN];
    manifest(f, m, assignment, "1.2.0", "/img");
    base_image(f, base);
    m->has_delta = true;
    sha256_hex(base, IMAGE_LEN, m->delta.from_sha256);
    snprintf(m->delta.url, sizeof m->delta.url, "%s%s", stub_url(f->stub), path);
    strcpy(m->delta.url_expires_at, "2026-11-21T10:15:00Z");
    m->delta.size = len;
    sha256_hex(delta, len, m->delta.sha256);
    assert_int_equal(ota_manifest_sign(m, SEED), OTA_OK);
}

/* The delta is downloaded instead of the image, applied to the running slot, checked and installed. */
static void test_delta_used(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    ota_device_result_t r;
    ota_manifest_t m;
    char base_sha[65];
    delta_device(f, false);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000101", "/delta", f->delta, f->delta_len);
    queue(f, &m, NULL);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    assert_true(a.manifest.has_delta);
    json_t *b = beat(f, 0);
    snprintf(base_sha, sizeof base_sha, "%s", m.delta.from_sha256);
    assert_string_equal(str(b, "firmware_sha256", NULL), base_sha);
    json_decref(b);

    assert_int_equal(ota_device_apply(f->dev, &a.manifest, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_USED);
    assert_string_equal(ota_device_delta_name(r.delta), "used");
    assert_int_equal(r.total, f->delta_len);
    assert_int_equal(stub_image_requests(f->stub), 0);
    assert_int_equal(stub_delta_requests(f->stub), 1);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
    assert_false(exists(f, "delta.part"));
    assert_false(exists(f, "delta.json"));
    assert_false(exists(f, "download.part"));
    assert_false(exists(f, "download.json"));

    /* The next heartbeat reports the new image's SHA-256 and no ota progress. */
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    b = beat(f, 1);
    assert_string_equal(str(b, "firmware_sha256", NULL), m.sha256);
    assert_null(json_object_get(b, "ota"));
    json_decref(b);
}

/* While the delta downloads, the progress says "delta": "used" with the delta's bytes; a fresh URL is the delta's. */
static void test_delta_progress_and_fresh_url(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m, fresh;
    delta_device(f, true);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000102", "/delta?old", f->delta, f->delta_len);
    delta_manifest(f, &fresh, "aaaaaaaa-0000-4000-8000-000000000102", "/delta?new", f->delta, f->delta_len);
    queue(f, &fresh, NULL);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_USED);
    assert_int_equal(r.url_refreshes, 1);
    assert_int_equal(stub_image_requests(f->stub), 0);
    assert_int_equal(stub_delta_requests(f->stub), 2);
    json_t *b = beat(f, 0);
    assert_string_equal(str(b, "ota", "state"), "downloading");
    assert_string_equal(str(b, "ota", "delta"), "used");
    assert_int_equal(num(b, "ota", "total"), (json_int_t)f->delta_len);
    json_decref(b);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
}

/* A fresh manifest without the delta: the device falls back to the full image, whose progress says "failed". */
static void test_delta_gone_from_fresh_manifest(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m, fresh;
    delta_device(f, true);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000103", "/delta?old", f->delta, f->delta_len);
    strcpy(m.url, stub_url(f->stub));
    strcat(m.url, "/img?old");
    /* The delta's 403: no delta any more, and the image's fresh URL (which the fallback starts with: 403 again). */
    manifest(f, &fresh, "aaaaaaaa-0000-4000-8000-000000000103", "1.2.0", "/img?older");
    queue(f, &fresh, NULL);
    manifest(f, &fresh, "aaaaaaaa-0000-4000-8000-000000000103", "1.2.0", "/img?new");
    queue(f, &fresh, NULL); /* the image's 403 */
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_FAILED);
    assert_int_equal(r.total, IMAGE_LEN);
    assert_non_null(strstr(f->log, "no longer offers this delta"));
    assert_int_equal(stub_image_requests(f->stub), 2); /* /img?older, then /img?new: never /img?old */
    json_t *b = beat(f, 1);
    assert_string_equal(str(b, "ota", "state"), "downloading");
    assert_string_equal(str(b, "ota", "delta"), "failed");
    assert_int_equal(num(b, "ota", "total"), IMAGE_LEN);
    json_decref(b);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
    assert_false(exists(f, "delta.part"));
    assert_false(exists(f, "delta.json"));
}

/* --corrupt strikes the delta: its SHA-256 check fails and the full image, clean, is installed. */
static void test_delta_corrupt_falls_back(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    f->cfg.faults.corrupt = true;
    delta_device(f, false);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000104", "/delta", f->delta, f->delta_len);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_FAILED);
    assert_non_null(strstr(f->log, "delta: failed: sha256 mismatch"));
    assert_int_equal(stub_image_requests(f->stub), 1);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
}

/* A delta that is not what it should make (the server's mistake, its SHA-256 signed all the same), or a running
   slot that is no longer the base: the full image. */
static void test_delta_bad_or_base_changed_falls_back(void **state)
{
    fixture_t *f = *state;
    unsigned char junk[3000];
    ota_device_result_t r;
    ota_manifest_t m;
    provision_base(f);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 31 + 7);
    stub_set_delta(f->stub, junk, sizeof junk);
    open_device(f);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000105", "/delta", junk, sizeof junk);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_FAILED);
    assert_non_null(strstr(f->log, "delta: failed: applying it: delta invalid"));
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);

    /* Back on slot a's record, its file changed behind it: the delta is not even downloaded. */
    fixture_t *g = f;
    ota_device_free(g->dev);
    g->dev = NULL;
    rm(g, "slot-b.bin");
    provision_base(g);
    assert_int_equal(ota__write_atomic(g->dir, "slot-a.bin", "changed", 7, 0644), OTA_OK);
    open_device(g);
    int before = stub_delta_requests(g->stub);
    delta_manifest(g, &m, "aaaaaaaa-0000-4000-8000-000000000106", "/delta", f->delta, f->delta_len);
    assert_int_equal(ota_device_apply(g->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_FAILED);
    assert_non_null(strstr(g->log, "not the delta's base"));
    assert_int_equal(stub_delta_requests(g->stub), before);
}

/* A delta from another image (or a running image of unknown SHA-256, the factory's): the full image, no delta. */
static void test_delta_from_another_image_ignored(void **state)
{
    fixture_t *f = *state;
    ota_device_answer_t a;
    ota_device_result_t r;
    ota_manifest_t m;
    open_device(f);
    assert_int_equal(ota_device_heartbeat(f->dev, &a), OTA_OK);
    json_t *b = beat(f, 0);
    assert_null(json_object_get(b, "firmware_sha256")); /* the factory placeholder: unknown */
    json_decref(b);
    ota_device_free(f->dev);
    f->dev = NULL;
    delta_device(f, false);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000107", "/delta", f->delta, f->delta_len);
    memset(m.delta.from_sha256, 'e', 64);
    assert_int_equal(ota_manifest_sign(&m, SEED), OTA_OK);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_NONE);
    assert_int_equal(stub_delta_requests(f->stub), 0);
    assert_int_equal(stub_image_requests(f->stub), 1);
}

static int stop_at_once(void *arg, uint64_t bytes, uint64_t total)
{
    (void)arg;
    (void)bytes;
    (void)total;
    return 1;
}

/* A delta download stopped by the caller stays (INCOMPLETE) and resumes; one given up on falls back. */
static void test_delta_stopped_resumes(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    provision_base(f);
    f->cfg.on_progress = stop_at_once;
    open_device(f);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000108", "/delta", f->delta, f->delta_len);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_INCOMPLETE);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_USED);
    assert_true(exists(f, "delta.part"));
    assert_true(exists(f, "delta.json"));
    f->cfg.on_progress = NULL;
    open_device(f);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_USED);
    assert_int_equal(stub_image_requests(f->stub), 0);
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
    assert_false(exists(f, "delta.part"));
}

static void test_delta_given_up_falls_back(void **state)
{
    fixture_t *f = *state;
    ota_device_result_t r;
    ota_manifest_t m;
    f->cfg.max_retries = 0;
    provision_base(f);
    stub_faults_t faults = stub_faults_none();
    faults.drop_after = 10;
    stub_set_faults(f->stub, &faults);
    open_device(f);
    delta_manifest(f, &m, "aaaaaaaa-0000-4000-8000-000000000109", "/delta", f->delta, f->delta_len);
    assert_int_equal(ota_device_apply(f->dev, &m, &r), OTA_OK);
    assert_int_equal(r.outcome, OTA_DEVICE_APPLIED);
    assert_int_equal(r.delta, OTA_DEVICE_DELTA_FAILED);
    assert_non_null(strstr(f->log, "delta: failed: its download"));
    assert_false(exists(f, "delta.part"));
    assert_false(exists(f, "delta.json"));
    expect_file(f, "slot-b.bin", f->image, IMAGE_LEN);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_heartbeat_reports_conditions),
        T(test_apply_switches_slot),
        T(test_failure_reported_once),
        T(test_foreign_manifest_refused),
        T(test_replayed_manifest_refused),
        T(test_clock_ahead_refuses),
        T(test_download_continues_across_calls),
        T(test_part_of_other_image_discarded),
        T(test_expired_url_refreshed),
        T(test_expired_url_canceled),
        T(test_progress_heartbeats),
        T(test_confirmed_firmware_stays),
        T(test_unconfirmed_firmware_falls_back),
        T(test_power_on_boots_trial_once),
        T(test_open_errors_and_lock),
        T(test_unreachable_server),
        T(test_register_refuses_bad_input),
        T(test_delta_used),
        T(test_delta_progress_and_fresh_url),
        T(test_delta_gone_from_fresh_manifest),
        T(test_delta_corrupt_falls_back),
        T(test_delta_bad_or_base_changed_falls_back),
        T(test_delta_from_another_image_ignored),
        T(test_delta_stopped_resumes),
        T(test_delta_given_up_falls_back),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
