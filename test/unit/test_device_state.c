/*
 * libota-device: the state directory (device/state.c) and the heartbeat's
 * wire forms (device/answer.c): state.json round trip and atomic replace,
 * strict decoding (a file from before trials: confirmed), A/B slot
 * switching, the bootloader's one trial boot and fallback, which download
 * may resume from where; and that every codec reports OTA_ERR_NOMEM, never
 * aborts, when jansson cannot allocate.
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "answer.h"
#include "json.h"
#include "state.h"
#include "util.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/ota-state-test-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static void rm(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rmdir(path);
    else
        unlink(path);
}

static int teardown(void **state)
{
    (void)state;
    rm("state.json");
    rm("state.json.tmp");
    rm("download.json");
    rm("download.json.tmp");
    rmdir(g_dir);
    return 0;
}

static void sample(ota__state_t *st)
{
    memset(st, 0, sizeof *st);
    strcpy(st->server, "http://127.0.0.1:8080");
    strcpy(st->device_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(st->token, "otd_abcDEF-_123");
    strcpy(st->serial, "SN 0001/\"quoted\"");
    strcpy(st->model, "bota-pin");
    for (int i = 0; i < OTA_ED25519_PUBLIC_LEN; i++)
        st->public_key[i] = (unsigned char)(i * 9 + 1);
    strcpy(st->version, "1.0.0");
    st->active_slot = 'a';
    st->slots[0].present = true;
    strcpy(st->slots[0].version, "1.0.0");
    st->slots[0].size = 20;
    strcpy(st->slots[0].sha256, "4af78b010bb0b633e0f1d9bae9358b720621cc3a55aaa72389bf86bc0dbcb909");
}

static void manifest(ota_manifest_t *m, const char *version, uint64_t size, const char *sha)
{
    memset(m, 0, sizeof *m);
    strcpy(m->assignment_id, "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e");
    strcpy(m->release_id, "6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4");
    strcpy(m->model, "bota-pin");
    strcpy(m->version, version);
    strcpy(m->artifact, "bin");
    m->size = size;
    strcpy(m->sha256, sha);
}

static void expect_same(const ota__state_t *a, const ota__state_t *b)
{
    assert_string_equal(a->server, b->server);
    assert_string_equal(a->device_id, b->device_id);
    assert_string_equal(a->token, b->token);
    assert_string_equal(a->serial, b->serial);
    assert_string_equal(a->model, b->model);
    assert_memory_equal(a->public_key, b->public_key, sizeof a->public_key);
    assert_string_equal(a->version, b->version);
    assert_int_equal(a->active_slot, b->active_slot);
    assert_int_equal(a->trial, b->trial);
    assert_int_equal(a->trial_boots, b->trial_boots);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a->slots[i].present, b->slots[i].present);
        assert_string_equal(a->slots[i].version, b->slots[i].version);
        assert_int_equal(a->slots[i].size, b->slots[i].size);
        assert_string_equal(a->slots[i].sha256, b->slots[i].sha256);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    ota__state_t st, back;
    char why[200] = "", path[256];
    struct stat sb;
    sample(&st);
    assert_int_equal(ota__state_save(g_dir, &st, why, sizeof why), OTA_OK);
    snprintf(path, sizeof path, "%s/state.json", g_dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600); /* it holds the token */
    snprintf(path, sizeof path, "%s/state.json.tmp", g_dir);
    assert_int_not_equal(stat(path, &sb), 0);
    memset(&back, 0x55, sizeof back);
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    expect_same(&st, &back);

    /* Both slots, slot b active, on trial, then booted once. */
    ota_manifest_t m;
    manifest(&m, "2.0.0-rc.1+b7", 4096, "a1671a4c72a4d782d247bfb90248a6ce014fc019be922999ba676efad720ae46");
    ota__state_switch(&st, &m);
    assert_int_equal(ota__state_save(g_dir, &st, why, sizeof why), OTA_OK);
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    expect_same(&st, &back);
    assert_false(ota__state_boot(&st));
    assert_int_equal(ota__state_save(g_dir, &st, why, sizeof why), OTA_OK);
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    expect_same(&st, &back);
    assert_true(back.trial);
    assert_int_equal(back.trial_boots, 1);
}

/* A state.json written before slots could be on trial (no "trial", no "trial_boots"): the active slot is confirmed. */
static void test_decode_without_trial(void **state)
{
    (void)state;
    ota__state_t st, out;
    char *text = NULL, why[200] = "";
    sample(&st);
    assert_int_equal(ota__state_encode(&st, &text), OTA_OK);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(j);
    assert_int_equal(json_object_del(j, "trial"), 0);
    assert_int_equal(json_object_del(j, "trial_boots"), 0);
    text = json_dumps(j, 0);
    json_decref(j);
    memset(&out, 0x55, sizeof out);
    assert_int_equal(ota__state_decode(text, strlen(text), &out, why, sizeof why), OTA_OK);
    free(text);
    assert_false(out.trial);
    assert_int_equal(out.trial_boots, 0);
    expect_same(&st, &out);
}

/*
 * The bootloader (ota__state_boot): a confirmed slot boots; a slot on trial boots once, and found unconfirmed at
 * the next boot is given up for the other slot; a confirmed one boots on and on.
 */
static void test_boot_and_confirm(void **state)
{
    (void)state;
    ota__state_t st;
    ota_manifest_t m;
    char why[200];
    sample(&st);
    assert_false(ota__state_boot(&st));
    assert_false(st.trial);
    assert_int_equal(st.active_slot, 'a');

    manifest(&m, "1.1.0", 100, "1111111111111111111111111111111111111111111111111111111111111111");
    ota__state_switch(&st, &m);
    assert_true(st.trial);
    assert_int_equal(st.trial_boots, 0);
    assert_false(ota__state_boot(&st)); /* its one boot */
    assert_int_equal(st.trial_boots, 1);
    assert_string_equal(st.version, "1.1.0");
    assert_int_equal(ota__state_validate(&st, why, sizeof why), OTA_OK);
    ota__state_t confirmed = st;
    assert_true(ota__state_boot(&st)); /* never confirmed: given up */
    assert_int_equal(st.active_slot, 'a');
    assert_string_equal(st.version, "1.0.0");
    assert_false(st.trial);
    assert_int_equal(st.trial_boots, 0);
    assert_string_equal(st.slots[1].version, "1.1.0"); /* the image stays in its slot */
    assert_int_equal(ota__state_validate(&st, why, sizeof why), OTA_OK);

    ota__state_confirm(&confirmed);
    assert_false(confirmed.trial);
    assert_int_equal(confirmed.trial_boots, 0);
    for (int i = 0; i < 3; i++) {
        assert_false(ota__state_boot(&confirmed));
        assert_string_equal(confirmed.version, "1.1.0");
        assert_int_equal(confirmed.active_slot, 'b');
    }
}

/* A save that fails leaves the old state.json; a leftover temporary file from a crash is harmless. */
static void test_atomic_replace(void **state)
{
    (void)state;
    ota__state_t a, b, back;
    char why[200] = "", tmp[256];
    sample(&a);
    b = a;
    strcpy(b.version, "9.9.9");
    strcpy(b.slots[0].version, "9.9.9");
    assert_int_equal(ota__state_save(g_dir, &a, why, sizeof why), OTA_OK);

    /* The temporary file cannot be created (a directory is in its way): the save fails, nothing changes. */
    snprintf(tmp, sizeof tmp, "%s/state.json.tmp", g_dir);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(ota__state_save(g_dir, &b, why, sizeof why), OTA_ERR_IO);
    assert_non_null(strstr(why, "cannot write"));
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    assert_string_equal(back.version, "1.0.0");
    assert_int_equal(rmdir(tmp), 0);

    /* A half-written temporary file left by a crash: ignored by load, replaced by the next save. */
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("{\"server\": \"http://ha", f);
    fclose(f);
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    assert_string_equal(back.version, "1.0.0");
    assert_int_equal(ota__state_save(g_dir, &b, why, sizeof why), OTA_OK);
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    assert_string_equal(back.version, "9.9.9");

    /* An invalid state is never written. */
    b.active_slot = 'c';
    assert_int_equal(ota__state_save(g_dir, &b, why, sizeof why), OTA_ERR_INVALID);
    assert_int_equal(ota__state_load(g_dir, &back, why, sizeof why), OTA_OK);
    assert_string_equal(back.version, "9.9.9");
}

static void test_load_missing(void **state)
{
    (void)state;
    ota__state_t st;
    char why[200] = "";
    assert_int_equal(ota__state_load(g_dir, &st, why, sizeof why), OTA_ERR_NOT_FOUND);
    assert_int_equal(ota__state_load("/nonexistent/ota", &st, why, sizeof why), OTA_ERR_NOT_FOUND);
}

/* Decodes `text` after replacing `from` by `to` in the encoding of sample(): OTA_ERR_INVALID naming `field`. */
static void expect_refused(const char *from, const char *to, const char *field)
{
    ota__state_t st, out;
    char *text = NULL, why[200] = "", buf[4096];
    sample(&st);
    assert_int_equal(ota__state_encode(&st, &text), OTA_OK);
    char *at = strstr(text, from);
    assert_non_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    free(text);
    assert_int_equal(ota__state_decode(buf, strlen(buf), &out, why, sizeof why), OTA_ERR_INVALID);
    if (field != NULL && strstr(why, field) == NULL)
        fail_msg("decoding with %s -> %s: want the reason to name %s, got \"%s\"", from, to, field, why);
}

static void test_decode_strict(void **state)
{
    (void)state;
    ota__state_t out;
    char why[200];
    expect_refused("\"server\": \"http://127.0.0.1:8080\"", "\"server\": \"ftp://x\"", "server");
    expect_refused("\"server\": \"http://127.0.0.1:8080\"", "\"server\": \"http://x/\"", "server");
    expect_refused("\"server\": \"http://127.0.0.1:8080\"", "\"server\": 1", "server");
    expect_refused("6f1d2c3b-4a59-4687-b7c8-d9e0f1a2b3c4", "6F1D2C3B-4a59-4687-b7c8-d9e0f1a2b3c4", "device_id");
    expect_refused("\"token\": \"otd_abcDEF-_123\"", "\"token\": \"has space\"", "token");
    expect_refused("\"token\": \"otd_abcDEF-_123\"", "\"token\": \"\"", "token");
    expect_refused("\"model\": \"bota-pin\"", "\"model\": \"Bota\"", "model");
    expect_refused("\"version\": \"1.0.0\",\n  \"active", "\"version\": \"v1.0.0\",\n  \"active", "version");
    expect_refused("\"active_slot\": \"a\"", "\"active_slot\": \"b\"", "active slot");
    expect_refused("\"active_slot\": \"a\"", "\"active_slot\": \"ab\"", "active_slot");
    expect_refused("\"public_key\": \"", "\"public_key\": \"AAAA", "public_key");
    expect_refused("\"slots\": {", "\"slots\": 3, \"x\": {", "slots");
    expect_refused("\"a\": {", "\"a\": 7, \"c\": {", "slots.a");
    expect_refused("\"size\": 20", "\"size\": -1", "slots.a");
    expect_refused("\"size\": 20", "\"size\": 20, \"size\": 21", NULL); /* duplicate member */
    expect_refused("\"device_id\"", "\"device\"", "device_id");
    expect_refused("\"trial\": false", "\"trial\": 0", "trial");
    expect_refused("\"trial_boots\": 0", "\"trial_boots\": \"0\"", "trial");
    expect_refused("\"trial_boots\": 0", "\"trial_boots\": -1", "trial");
    expect_refused("\"trial_boots\": 0", "\"trial_boots\": 1", "trial_boots"); /* boots count only on trial */
    /* On trial with nothing in the other slot to fall back to. */
    expect_refused("\"trial\": false", "\"trial\": true", "trial");
    assert_int_equal(ota__state_decode("[]", 2, &out, why, sizeof why), OTA_ERR_INVALID);
    assert_int_equal(ota__state_decode("{", 1, &out, why, sizeof why), OTA_ERR_INVALID);
    assert_int_equal(ota__state_decode("", 0, &out, why, sizeof why), OTA_ERR_INVALID);

    /* Unknown members are fine (a newer client may add some). */
    ota__state_t st;
    char *text = NULL, buf[4096];
    sample(&st);
    assert_int_equal(ota__state_encode(&st, &text), OTA_OK);
    snprintf(buf, sizeof buf, "{\"future\": [1, 2], %s", text + 1);
    free(text);
    assert_int_equal(ota__state_decode(buf, strlen(buf), &out, why, sizeof why), OTA_OK);
    expect_same(&st, &out);
}

/* Installing flips between the slots; the slot not installed into keeps what it had. */
static void test_slot_switching(void **state)
{
    (void)state;
    ota__state_t st;
    ota_manifest_t m1, m2, m3;
    char why[200];
    sample(&st);
    manifest(&m1, "1.1.0", 100, "1111111111111111111111111111111111111111111111111111111111111111");
    manifest(&m2, "1.2.0", 200, "2222222222222222222222222222222222222222222222222222222222222222");
    manifest(&m3, "1.0.5", 300, "3333333333333333333333333333333333333333333333333333333333333333");
    assert_int_equal(ota__state_inactive(&st), 'b');
    assert_string_equal(ota__slot_file('a'), "slot-a.bin");
    assert_string_equal(ota__slot_file('b'), "slot-b.bin");

    ota__state_switch(&st, &m1);
    assert_int_equal(st.active_slot, 'b');
    assert_string_equal(st.version, "1.1.0");
    assert_true(st.slots[1].present);
    assert_string_equal(st.slots[1].version, "1.1.0");
    assert_int_equal(st.slots[1].size, 100);
    assert_string_equal(st.slots[1].sha256, m1.sha256);
    assert_string_equal(st.slots[0].version, "1.0.0");
    assert_int_equal(ota__state_validate(&st, why, sizeof why), OTA_OK);

    ota__state_switch(&st, &m2);
    assert_int_equal(st.active_slot, 'a');
    assert_string_equal(st.version, "1.2.0");
    assert_string_equal(st.slots[0].sha256, m2.sha256);
    assert_string_equal(st.slots[1].version, "1.1.0");

    ota__state_switch(&st, &m3); /* a downgrade is an update like any other */
    assert_int_equal(st.active_slot, 'b');
    assert_string_equal(st.version, "1.0.5");
    assert_string_equal(st.slots[0].version, "1.2.0");
    assert_int_equal(ota__state_validate(&st, why, sizeof why), OTA_OK);
}

static void test_resume_offset(void **state)
{
    (void)state;
    assert_int_equal(ota__resume_offset(true, 0, 1000), 0);
    assert_int_equal(ota__resume_offset(true, 400, 1000), 400);
    assert_int_equal(ota__resume_offset(true, 1000, 1000), 1000); /* complete: only verification left */
    assert_int_equal(ota__resume_offset(true, 1001, 1000), 0);    /* longer than the image: not it */
    assert_int_equal(ota__resume_offset(false, 400, 1000), 0);    /* another image */
}

static void test_part_meta(void **state)
{
    (void)state;
    ota_manifest_t m, other;
    ota__part_meta_t meta, back;
    manifest(&m, "1.1.0", 5000, "1111111111111111111111111111111111111111111111111111111111111111");
    assert_int_equal(ota__part_meta_load(g_dir, OTA__PART_META, &back), OTA_ERR_NOT_FOUND);
    ota__part_meta_of(&m, &meta);
    assert_int_equal(ota__part_meta_save(g_dir, OTA__PART_META, &meta), OTA_OK);
    assert_int_equal(ota__part_meta_load(g_dir, OTA__PART_META, &back), OTA_OK);
    assert_string_equal(back.assignment_id, m.assignment_id);
    assert_string_equal(back.version, "1.1.0");
    assert_int_equal(back.size, 5000);
    assert_true(ota__part_meta_matches(&back, &m));

    /* Another assignment of the same bytes may continue them; other bytes may not. */
    other = m;
    strcpy(other.assignment_id, "00000000-0000-4000-8000-000000000001");
    assert_true(ota__part_meta_matches(&back, &other));
    other = m;
    other.sha256[0] = '2';
    assert_false(ota__part_meta_matches(&back, &other));
    other = m;
    other.size = 5001;
    assert_false(ota__part_meta_matches(&back, &other));

    char path[256];
    snprintf(path, sizeof path, "%s/download.json", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"assignment_id\": \"x\", \"version\": \"1\", \"size\": 3, \"sha256\": \"zz\"}", f);
    fclose(f);
    assert_int_equal(ota__part_meta_load(g_dir, OTA__PART_META, &back), OTA_ERR_INVALID);
}

static void test_report_encode(void **state)
{
    (void)state;
    char *text = NULL;
    ota__report_t r = {.version = "1.0.0", .connectivity = "wifi", .recording = false, .battery_percent = -1};
    assert_int_equal(ota__report_encode(&r, &text), OTA_OK);
    assert_string_equal(text, "{\"firmware_version\":\"1.0.0\",\"connectivity\":\"wifi\",\"recording\":false}");
    free(text);

    r.recording = true;
    r.battery_percent = 10;
    r.battery_state = "low";
    r.ota_assignment = "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e";
    r.ota_state = "failed";
    r.ota_bytes = 28672;
    r.ota_total = 42892;
    r.ota_error = "crc32 mismatch: got 1, expected 2";
    assert_int_equal(ota__report_encode(&r, &text), OTA_OK);
    assert_string_equal(text,
                        "{\"firmware_version\":\"1.0.0\",\"connectivity\":\"wifi\",\"recording\":true,"
                        "\"battery\":{\"percent\":10,\"state\":\"low\"},"
                        "\"ota\":{\"assignment_id\":\"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e\",\"state\":\"failed\","
                        "\"bytes\":28672,\"total\":42892,\"error\":\"crc32 mismatch: got 1, expected 2\"}}");
    free(text);
}

#define SIG "a8l/a60PMZDqjgBB+7KJxwEl45eBk26tN96tCf7Z3KVJ80w4b7yE954AFSVmd+GhC7+y+9HxxdjKTLwhHkT2Cw=="
#define MANIFEST_JSON                                                                                                  \
    "{\"assignment_id\":\"1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e\",\"release_id\":\"6f1d2c3b-4a59-4687-b7c8-"            \
    "d9e0f1a2b3c4\",\"device_id\":\"0b7f3e1c-2d4a-4e6b-8c9d-0a1b2c3d4e5f\",\"downgrade\":false,"                       \
    "\"model\":\"bota-pin\",\"version\":\"1.2.0\",\"artifact\":\"bin\",\"url\":\"http://127.0.0.1:9/img?x=1\","        \
    "\"url_expires_at\":\"2026-11-21T10:15:00Z\",\"not_after\":\"2026-11-22T10:00:00Z\",\"size\":42892,\"crc32\":"     \
    "3735928559,"                                                                                                      \
    "\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\"signature\":\"" SIG "\"}"

static void test_answer_decode(void **state)
{
    (void)state;
    ota_device_answer_t a;
    char why[200] = "";
    const char *none = "{\"server_time\":\"2026-11-21T10:00:00Z\",\"heartbeat_interval_s\":60,\"ota\":null,"
                       "\"deferred\":null}";
    assert_int_equal(ota__answer_decode(none, strlen(none), &a, why, sizeof why), OTA_OK);
    assert_int_equal(a.interval_s, 60);
    assert_false(a.has_manifest);
    assert_string_equal(a.deferred, "");
    assert_string_equal(a.server_time, "2026-11-21T10:00:00Z");

    const char *deferred = "{\"server_time\":\"x\",\"heartbeat_interval_s\":5,\"ota\":null,\"deferred\":\"recording\"}";
    assert_int_equal(ota__answer_decode(deferred, strlen(deferred), &a, why, sizeof why), OTA_OK);
    assert_string_equal(a.deferred, "recording");

    const char *with =
        "{\"server_time\":\"x\",\"heartbeat_interval_s\":60,\"ota\":" MANIFEST_JSON ",\"deferred\":null}";
    assert_int_equal(ota__answer_decode(with, strlen(with), &a, why, sizeof why), OTA_OK);
    assert_true(a.has_manifest);
    assert_int_equal(a.manifest.size, 42892);
    assert_int_equal(a.manifest.crc32, 3735928559u);
    assert_string_equal(a.manifest.url, "http://127.0.0.1:9/img?x=1");

    static const char *const bad[] = {
        "",
        "[]",
        "{\"heartbeat_interval_s\":0}",
        "{\"heartbeat_interval_s\":\"60\"}",
        "{\"heartbeat_interval_s\":60,\"deferred\":7}",
        "{\"heartbeat_interval_s\":60,\"ota\":{}}",
        "{\"heartbeat_interval_s\":60,\"ota\":3}",
        "{\"heartbeat_interval_s\":60,\"heartbeat_interval_s\":61}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&a, 0, sizeof a);
        if (ota__answer_decode(bad[i], strlen(bad[i]), &a, why, sizeof why) != OTA_ERR_INVALID)
            fail_msg("accepted the answer %s", bad[i]);
    }
}

/* The allocation-free syntax check agrees with jansson (which decides what is JSON for us). */
static void test_json_syntax(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool ok;
    } cases[] = {
        {"{}", true},
        {" [ ] \n", true},
        {"{\"a\": [1, -0, 0.5, 1e3, 2E-7, -12.5e+3, true, false, null, \"x\"]}", true},
        {"{\"\\u00e9\\ud83d\\ude00\\n\\/\": \"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", true},
        {"[[[[[[[[[[1]]]]]]]]]]", true},
        {"", false},
        {"   ", false},
        {"1", false}, /* jansson takes objects and arrays only */
        {"\"x\"", false},
        {"{", false},
        {"{}}", false},
        {"{} x", false},
        {"[1,]", false},
        {"[,1]", false},
        {"{\"a\" 1}", false},
        {"{\"a\": }", false},
        {"{a: 1}", false},
        {"[01]", false},
        {"[1.]", false},
        {"[.5]", false},
        {"[1e]", false},
        {"[-]", false},
        {"[+1]", false},
        {"[tru]", false},
        {"[nul]", false},
        {"[\"\\x\"]", false},
        {"[\"\\u12\"]", false},
        {"[\"\\u0000\"]", false},
        {"[\"\\udc00\"]", false}, /* lone low surrogate */
        {"[\"\\ud800\"]", false}, /* high surrogate without its pair */
        {"[\"\\ud800\\u0041\"]", false},
        {"[\"a\tb\"]", false},             /* raw control character */
        {"[\"\xc3\"]", false},             /* cut UTF-8 */
        {"[\"\xc0\xaf\"]", false},         /* overlong */
        {"[\"\xed\xa0\x80\"]", false},     /* encoded surrogate */
        {"[\"\xf4\x90\x80\x80\"]", false}, /* past U+10FFFF */
        {"[\"\xff\"]", false},
        {"[\"unterminated]", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text;
        bool ok = ota__json_syntax_ok(t, strlen(t));
        if (ok != cases[i].ok)
            fail_msg("syntax check of %s: %d, want %d", t, ok, cases[i].ok);
        json_error_t err;
        json_t *j = json_loadb(t, strlen(t), 0, &err);
        if ((j != NULL) != ok)
            fail_msg("jansson disagrees about %s", t);
        json_decref(j);
        json_t *out = NULL;
        ota_err_t rc = ota__json_parse(t, strlen(t), &out, NULL, 0);
        assert_int_equal(rc, ok ? OTA_OK : OTA_ERR_INVALID);
        json_decref(out);
    }
    /* Depth: jansson's limit is 2048. */
    char deep[2 * 2049 + 1];
    for (int n = 2048; n <= 2049; n++) {
        memset(deep, '[', (size_t)n);
        memset(deep + n, ']', (size_t)n);
        assert_int_equal(ota__json_syntax_ok(deep, 2 * (size_t)n), n == 2048);
    }
    /* Duplicates are well-formed but refused: INVALID, not NOMEM. */
    json_t *out = NULL;
    assert_int_equal(ota__json_parse("{\"a\":1,\"a\":2}", 13, &out, NULL, 0), OTA_ERR_INVALID);
}

/* ---- out of memory: jansson's allocator fails after N allocations ---- */

static long g_allocs_left = -1; /* -1: no limit */

static void *failing_malloc(size_t n)
{
    if (g_allocs_left == 0)
        return NULL;
    if (g_allocs_left > 0)
        g_allocs_left--;
    return malloc(n);
}

/* Runs `op` with jansson failing its Nth allocation, for every N until it succeeds: only OK or NOMEM, no crash. */
#define EXPECT_NOMEM_SAFE(op)                                                                                          \
    do {                                                                                                               \
        long n_;                                                                                                       \
        int nomem_ = 0;                                                                                                \
        for (n_ = 0; n_ < 10000; n_++) {                                                                               \
            g_allocs_left = n_;                                                                                        \
            ota_err_t rc_ = (op);                                                                                      \
            g_allocs_left = -1;                                                                                        \
            if (rc_ == OTA_OK)                                                                                         \
                break;                                                                                                 \
            if (rc_ != OTA_ERR_NOMEM)                                                                                  \
                fail_msg("%s with %ld allocations: %s, want NOMEM", #op, n_, ota_strerror(rc_));                       \
            nomem_++;                                                                                                  \
        }                                                                                                              \
        assert_true(nomem_ > 0);                                                                                       \
        assert_true(n_ < 10000);                                                                                       \
    } while (0)

static ota_err_t encode_state(void)
{
    ota__state_t st;
    char *text = NULL;
    sample(&st);
    ota_err_t rc = ota__state_encode(&st, &text);
    free(text);
    return rc;
}

static char *g_text;

static ota_err_t decode_state_text(void)
{
    ota__state_t out;
    char why[200];
    return ota__state_decode(g_text, strlen(g_text), &out, why, sizeof why);
}

static ota_err_t encode_report(void)
{
    char *text = NULL;
    ota__report_t r = {.version = "1.0.0",
                       .connectivity = "wifi",
                       .battery_percent = 50,
                       .battery_state = "normal",
                       .ota_assignment = "1c0e7f2a-0b4e-4c5e-9d8e-3f5a6b7c8d9e",
                       .ota_state = "failed",
                       .ota_error = "sha256 mismatch"};
    ota_err_t rc = ota__report_encode(&r, &text);
    free(text);
    return rc;
}

static ota_err_t decode_answer(void)
{
    static const char with[] =
        "{\"server_time\":\"x\",\"heartbeat_interval_s\":60,\"ota\":" MANIFEST_JSON ",\"deferred\":null}";
    ota_device_answer_t a;
    char why[200];
    return ota__answer_decode(with, strlen(with), &a, why, sizeof why);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    ota__state_t st;
    sample(&st);
    assert_int_equal(ota__state_encode(&st, &g_text), OTA_OK);
    json_set_alloc_funcs(failing_malloc, free);
    EXPECT_NOMEM_SAFE(encode_state());
    EXPECT_NOMEM_SAFE(decode_state_text());
    EXPECT_NOMEM_SAFE(encode_report());
    EXPECT_NOMEM_SAFE(decode_answer());
    json_set_alloc_funcs(malloc, free);
    free(g_text);
    g_text = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_missing, setup, teardown),
        cmocka_unit_test(test_decode_strict),
        cmocka_unit_test(test_decode_without_trial),
        cmocka_unit_test(test_boot_and_confirm),
        cmocka_unit_test(test_slot_switching),
        cmocka_unit_test(test_resume_offset),
        cmocka_unit_test_setup_teardown(test_part_meta, setup, teardown),
        cmocka_unit_test(test_report_encode),
        cmocka_unit_test(test_answer_decode),
        cmocka_unit_test(test_json_syntax),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
