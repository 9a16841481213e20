/*
 * Integration: the device client on a hostile network. A proxy (proxy.h)
 * stands between the device and the real ota-server (throwaway PostgreSQL, fs
 * storage) and, round after round, replays manifests (another device's, a
 * withdrawn release's, the device's own older ones), rewrites the manifest's
 * url, mutates the heartbeat answers (bytes flipped, cut short, a signed field
 * changed), lies in Content-Range, answers 200 to a Range request, trickles,
 * truncates, pads and corrupts the download, and runs the device's clock two
 * days ahead so that every manifest is past its not_after. Meanwhile the test
 * keeps real updates coming: an upgrade, then a downgrade assigned with
 * allow_downgrade, and so on.
 *
 * After every round: no install of anything but an image the server signed
 * for this device whose version is newer than the one the device ran, or a
 * signed downgrade (the proxy keeps every manifest the server really sent,
 * before it tampers, and the slot must hold that manifest's bytes); the state
 * directory holds only the files docs/device.md lists. Under ASan and UBSan
 * (ctest in the sanitizer build) any memory error or undefined behaviour
 * aborts the program.
 *
 * Why rounds run in this process, on libota-device: the ota-device program is
 * main.c over the same library, and starting it costs tens of milliseconds
 * (more under ASan) before it sends a byte, while a round on the library
 * costs a few milliseconds: 2,000 rounds take about 15 s, in the Release and
 * the ASan build alike (a round mostly waits on the server), 20 s with the
 * server's start. Every ROUNDS / BINARY_ROUNDS-th round runs the real
 * `ota-device run --once` instead, so the program's own code meets the same
 * proxy. The state directory is in /dev/shm when there is one: an install
 * fsyncs it several times, which on a busy disk costs more than the round's
 * network, and durability is not what this test is about. A round: a
 * heartbeat; when it carries a manifest, ota_device_apply (with short retry
 * delays, so a cut download costs milliseconds); after an install the
 * heartbeat that reports it and the confirmation. Attacks are drawn from a
 * seeded PRNG (OTA_TEST_SEED to repeat a run; the seed is printed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "checks.h"
#include "ota/device.h"
#include "ota/hex.h"
#include "ota/manifest.h"
#include "ota/semver.h"
#include "proxy.h"

#ifndef OTA_DEVICE_BIN
#error "OTA_DEVICE_BIN must be defined to the path of the ota-device binary"
#endif

extern char **environ;

#define ROUNDS 2000
#define BINARY_ROUNDS 10 /* of them, run by the ota-device program */
#define GENUINE_MAX 64

/* What the proxy does in a round. */
typedef enum attack {
    A_NONE,            /* pass through */
    A_OTHER_DEVICE,    /* "ota" is another device's manifest */
    A_WITHDRAWN,       /* "ota" is this device's manifest of a release since withdrawn (older than what it runs) */
    A_OWN_OLD,         /* "ota" is one of this device's earlier manifests */
    A_URL_OTHER_IMAGE, /* the manifest's url points to another release's image */
    A_URL_MISSING,     /* the manifest's url points to nothing (404) */
    A_FIELD,           /* a signed field of the manifest changed (signature kept) */
    A_FLIP,            /* random bytes of the heartbeat answer flipped */
    A_CUT_ANSWER,      /* the heartbeat answer cut short */
    A_RANGE_LIE,       /* downloads: a Content-Range that is not the range asked for */
    A_RANGE_IGNORED,   /* downloads: 200 with the whole image to a Range request (upstream asked without it) */
    A_TRICKLE,         /* downloads: a few bytes at a time */
    A_TRUNCATE,        /* downloads: the round's first closes half-way (Content-Length says more); the resume goes */
    A_PAD,             /* downloads: bytes beyond the image */
    A_GARBAGE,         /* downloads: bytes of the same length that are not the image */
    A_EXPIRED,         /* the device's clock runs two days ahead: past every not_after */
    A_COUNT
} attack_t;

static const char *const ATTACK_NAMES[A_COUNT] = {
    "none",       "other_device", "withdrawn",     "own_old", "url_other_image", "url_missing", "field",   "flip",
    "cut_answer", "range_lie",    "range_ignored", "trickle", "truncate",        "pad",         "garbage", "expired"};

/* Shared by the test and the proxy's thread (under `lock`). */
typedef struct world {
    pthread_mutex_t lock;
    attack_t attack;
    unsigned long long rng;
    char device_id[40];
    json_t *other_manifest;              /* another device's */
    json_t *withdrawn_manifest;          /* this device's, of a release withdrawn since */
    char other_image_path[600];          /* path and query of another release's image on the server */
    ota_manifest_t genuine[GENUINE_MAX]; /* every manifest the server sent this device, untouched */
    int genuine_n;
    bool upstream_idle; /* the last heartbeat answer from the server had no manifest and no deferral */
    bool truncated;     /* a download was cut short in this round */
    char proxy_origin[64];
    char server_origin[64];
} world_t;

static world_t g_w = {.lock = PTHREAD_MUTEX_INITIALIZER};
static char g_tmp[256];

static unsigned long long next_rand(world_t *w)
{
    /* splitmix64 */
    unsigned long long z = (w->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- the proxy's side ------------------------------------------------------------------------ */

/* Keeps `m` (the server's own, for this device) among the genuine manifests, once. */
static void keep_genuine(world_t *w, json_t *ota)
{
    ota_manifest_t m;
    if (ota_manifest_decode_json(ota, &m) != OTA_OK || strcmp(m.device_id, w->device_id) != 0)
        return;
    for (int i = 0; i < w->genuine_n; i++)
        if (strcmp(w->genuine[i].assignment_id, m.assignment_id) == 0)
            return;
    if (w->genuine_n < GENUINE_MAX)
        w->genuine[w->genuine_n++] = m;
}

/* The manifest's url made to go through the proxy (the fs storage serves images from the server's origin). */
static void route_through_proxy(world_t *w, json_t *ota)
{
    const char *url = h_jstr(ota, "url");
    size_t n = strlen(w->server_origin);
    char via[OTA_MANIFEST_URL_MAX + 64];
    if (url != NULL && strncmp(url, w->server_origin, n) == 0 &&
        snprintf(via, sizeof via, "%s%s", w->proxy_origin, url + n) < (int)sizeof via)
        json_object_set_new(ota, "url", json_string(via));
}

/* Changes one signed field of the manifest `ota`, keeping its signature. */
static void change_field(world_t *w, json_t *ota)
{
    switch (next_rand(w) % 6) {
    case 0:
        json_object_set_new(ota, "device_id", json_string("00000000-0000-4000-8000-000000000000"));
        break;
    case 1:
        json_object_set_new(ota, "not_after", json_string("2099-01-01T00:00:00Z"));
        break;
    case 2:
        json_object_set_new(ota, "downgrade", json_boolean(!json_is_true(json_object_get(ota, "downgrade"))));
        break;
    case 3:
        json_object_set_new(ota, "version", json_string("99.0.0"));
        break;
    case 4:
        json_object_set_new(ota, "size", json_integer(json_integer_value(json_object_get(ota, "size")) + 1));
        break;
    default:
        json_object_set_new(ota, "downgrade", json_string("true"));
        break;
    }
}

/* A heartbeat answer: the genuine manifest kept, then tampered with as the round's attack says. */
static void on_heartbeat(world_t *w, h_proxy_exchange_t *x)
{
    json_t *answer = x->status == 200 ? json_loads(x->body, 0, NULL) : NULL;
    if (answer == NULL)
        return;
    json_t *ota = json_object_get(answer, "ota");
    w->upstream_idle = !json_is_object(ota) && json_is_null(json_object_get(answer, "deferred"));
    if (json_is_object(ota)) {
        keep_genuine(w, ota);
        route_through_proxy(w, ota);
    }
    json_t *replace = NULL;
    switch (w->attack) {
    case A_OTHER_DEVICE:
        replace = w->other_manifest;
        break;
    case A_WITHDRAWN:
        replace = w->withdrawn_manifest;
        break;
    case A_OWN_OLD:
        if (w->genuine_n > 0) {
            char text[OTA_MANIFEST_JSON_MAX];
            size_t len = 0;
            ota_manifest_t m = w->genuine[next_rand(w) % (unsigned)w->genuine_n];
            if (ota_manifest_encode(&m, text, sizeof text, &len) == OTA_OK)
                replace = json_loadb(text, len, 0, NULL);
            if (replace != NULL) {
                route_through_proxy(w, replace);
                json_object_set_new(answer, "ota", replace);
                replace = NULL;
            }
        }
        break;
    case A_URL_OTHER_IMAGE:
    case A_URL_MISSING:
        if (json_is_object(ota)) {
            char url[800];
            snprintf(url, sizeof url, "%s%s", w->proxy_origin,
                     w->attack == A_URL_MISSING ? "/blobs/nothing-here" : w->other_image_path);
            json_object_set_new(ota, "url", json_string(url));
        }
        break;
    case A_FIELD:
        if (json_is_object(ota))
            change_field(w, ota);
        break;
    default:
        break;
    }
    if (replace != NULL) {
        json_t *copy = json_deep_copy(replace);
        route_through_proxy(w, copy);
        json_object_set_new(answer, "ota", copy);
    }
    free(x->body);
    x->body = json_dumps(answer, JSON_COMPACT);
    x->len = strlen(x->body);
    json_decref(answer);
    if (w->attack == A_FLIP && x->len > 0) {
        for (int i = 0; i < 3; i++)
            x->body[next_rand(w) % x->len] ^= (char)(1u << (next_rand(w) % 7));
    } else if (w->attack == A_CUT_ANSWER) {
        x->len = (size_t)(next_rand(w) % (x->len + 1));
        x->body[x->len] = '\0';
    }
}

/* An image download, lied about as the round's attack says. */
static void on_download(world_t *w, h_proxy_exchange_t *x)
{
    if (x->status != 200 && x->status != 206)
        return;
    switch (w->attack) {
    case A_RANGE_LIE:
        if (x->status == 206 && x->len > 1) {
            /* Says it starts a byte later than it does, or claims another total. */
            snprintf(x->content_range, sizeof x->content_range, next_rand(w) % 2 ? "bytes 1-%zu/%zu" : "bytes 0-%zu/1",
                     x->len, x->len + 1);
        } else if (x->status == 200 && x->len > 2) {
            x->status = 206;
            snprintf(x->content_range, sizeof x->content_range, "bytes 2-%zu/%zu", x->len - 1, x->len);
        }
        break;
    case A_TRICKLE:
        x->trickle_ms = 1;
        x->trickle_chunk = 1 + x->len / 16;
        break;
    case A_TRUNCATE:
        /* Once a round: cut every answer in half and a download takes a dozen resumes, each a round trip. */
        if (!w->truncated)
            x->send_max = x->len / 2;
        w->truncated = true;
        break;
    case A_PAD: {
        char *more = realloc(x->body, x->len + 100 + 1);
        if (more != NULL) {
            memset(more + x->len, 'p', 100);
            x->len += 100;
            more[x->len] = '\0';
            x->body = more;
        }
        break;
    }
    case A_GARBAGE:
        for (size_t i = 0; i < x->len; i++)
            x->body[i] = (char)next_rand(w);
        break;
    default:
        break;
    }
}

/* Before upstream is asked: to answer 200 with the whole image to a Range request, upstream is asked without it. */
static bool before_upstream(void *arg, h_proxy_exchange_t *x)
{
    world_t *w = arg;
    pthread_mutex_lock(&w->lock);
    if (w->attack == A_RANGE_IGNORED)
        x->range = NULL;
    pthread_mutex_unlock(&w->lock);
    return true;
}

static void hook(void *arg, h_proxy_exchange_t *x)
{
    world_t *w = arg;
    pthread_mutex_lock(&w->lock);
    if (strcmp(x->method, "POST") == 0 && strstr(x->path, "/heartbeat") != NULL)
        on_heartbeat(w, x);
    else if (strncmp(x->path, "/blobs/", 7) == 0)
        on_download(w, x);
    pthread_mutex_unlock(&w->lock);
}

/* ---- the test's side --------------------------------------------------------------------------- */

static void sha256_file(const char *path, char hex[65])
{
    unsigned char md[32], buf[65536];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    FILE *f = fopen(path, "rb");
    CHECK(ctx != NULL && f != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1, "cannot hash %s", path);
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(ctx, buf, got);
    fclose(f);
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    ota_hex_encode(md, 32, hex);
}

/* The state directory holds only what docs/device.md lists. */
static void expect_documented_files(const char *dir, int round)
{
    static const char *const DOCUMENTED[] = {"state.json",    "slot-a.bin",    "slot-b.bin",
                                             "download.part", "download.json", "delta.part",
                                             "delta.json",    "lock",          NULL};
    DIR *d = opendir(dir);
    struct dirent *e;
    CHECK(d != NULL, "cannot list %s", dir);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        bool known = false;
        for (const char *const *p = DOCUMENTED; *p != NULL; p++)
            known = known || strcmp(*p, e->d_name) == 0;
        CHECK(known, "round %d: %s/%s is not a documented file", round, dir, e->d_name);
    }
    closedir(d);
}

/*
 * The device went from `before` to `now`: allowed only to an image the server signed for this device, newer, or a
 * signed downgrade; the active slot holds exactly that image.
 */
static void expect_allowed_install(world_t *w, const char *dir, const char *before, ota_device_t *dev, int round)
{
    const char *now = ota_device_version(dev);
    if (strcmp(before, now) == 0)
        return;
    char slot_path[400], sha[65];
    snprintf(slot_path, sizeof slot_path, "%s/slot-%c.bin", dir, ota_device_active_slot(dev));
    sha256_file(slot_path, sha);
    ota_semver_t a, b;
    CHECK(ota_semver_parse(before, strlen(before), &a) == OTA_OK && ota_semver_parse(now, strlen(now), &b) == OTA_OK,
          "round %d: versions %s, %s", round, before, now);
    bool newer = ota_semver_compare(&b, &a) > 0;
    pthread_mutex_lock(&w->lock);
    bool found = false;
    for (int i = 0; i < w->genuine_n && !found; i++) {
        const ota_manifest_t *m = &w->genuine[i];
        found = strcmp(m->version, now) == 0 && strcmp(m->sha256, sha) == 0 && (newer || m->downgrade);
    }
    pthread_mutex_unlock(&w->lock);
    CHECK(found,
          "round %d (%s): installed %s over %s (slot sha256 %s), which the server did not sign for this "
          "device as %s",
          round, ATTACK_NAMES[w->attack], now, before, sha, newer ? "an upgrade" : "a downgrade");
}

/* `ota-device --state DIR run --once` with `extra` options; its exit status (killed after 60 s: -1). */
static int run_binary(const char *dir, const char *extra)
{
    char log[400];
    snprintf(log, sizeof log, "%s/binary.log", g_tmp);
    const char *argv[] = {OTA_DEVICE_BIN, "--state", dir, "run", "--once", extra, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid;
    CHECK(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) == 0, "cannot start %s", argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 10) {
        if (waited > 60000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        h_sleep_ms(10);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The library's log, with a millisecond clock, when OTA_TEST_LOG is set (to see what a round did). */
static void print_log(void *arg, const char *line)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "%ld.%03ld device: %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000, line);
}

static ota_device_t *open_device(const char *dir, int64_t clock_skew)
{
    ota_device_config_t cfg;
    ota_err_t err;
    ota_device_config_init(&cfg);
    cfg.state_dir = dir;
    cfg.max_retries = 2;
    cfg.backoff_initial_ms = 1;
    cfg.backoff_max_ms = 2;
    cfg.timeout_ms = 5000;
    cfg.faults.clock_skew_s = clock_skew;
    if (getenv("OTA_TEST_LOG") != NULL)
        cfg.on_log = print_log;
    ota_device_t *dev = ota_device_new(&cfg, &err);
    CHECK(dev != NULL, "cannot open the device in %s: %s", dir, ota_strerror(err));
    return dev;
}

/* One round on the library: a heartbeat, the update it brings, the heartbeat that reports it. */
static void library_round(ota_device_t *dev)
{
    ota_device_answer_t answer;
    ota_device_result_t res;
    if (ota_device_heartbeat(dev, &answer) != OTA_OK || !answer.has_manifest)
        return;
    if (ota_device_apply(dev, &answer.manifest, &res) != OTA_OK || res.outcome != OTA_DEVICE_APPLIED)
        return;
    ota_device_heartbeat(dev, &answer);
    ota_device_confirm(dev);
}

static void set_attack(world_t *w, attack_t a)
{
    pthread_mutex_lock(&w->lock);
    w->attack = a;
    w->truncated = false;
    pthread_mutex_unlock(&w->lock);
}

/* A new assignment when the server has none for the device: the other release, as a downgrade when it is older. */
static void keep_updates_coming(world_t *w, ota_device_t *dev, const h_release_t *v11, const h_release_t *v12)
{
    pthread_mutex_lock(&w->lock);
    bool idle = w->upstream_idle;
    w->upstream_idle = false;
    pthread_mutex_unlock(&w->lock);
    if (!idle)
        return;
    h_resp_t r = {0};
    if (strcmp(ota_device_version(dev), "1.2.0") == 0)
        h_assign_downgrade(w->device_id, v11->id, &r);
    else
        h_assign(w->device_id, v12->id, &r);
    CHECK(r.status == 201 || r.status == 409, "assign: %ld %s", r.status, BODY(&r));
    h_resp_free(&r);
}

/* The heartbeat answer of `d` (reporting `firmware`) carries a manifest: kept (caller decrefs). */
static json_t *capture_manifest(const h_device_t *d, const char *firmware)
{
    h_resp_t r = {0};
    h_heartbeat_fw(d, firmware, &r);
    json_t *m = json_incref(json_object_get(r.json, "ota"));
    CHECK(json_is_object(m), "no manifest for %s: %s", d->id, BODY(&r));
    h_resp_free(&r);
    return m;
}

static void test_hostile_network(void **state)
{
    (void)state;
    world_t *w = &g_w;
    char model[32], path[400], aid[40], dir[300];
    h_device_t me, other;
    h_release_t v105, v11, v12;
    h_resp_t r = {0};
    const char *seed_text = getenv("OTA_TEST_SEED");
    w->rng = seed_text != NULL ? strtoull(seed_text, NULL, 10) : (unsigned long long)time(NULL);
    fprintf(stderr, "it_hostile_network: OTA_TEST_SEED=%llu\n", w->rng);

    h_make_model(model, sizeof model, "Hostile");
    h_make_release(model, "1.0.5", 3000, &v105);
    h_make_release(model, "1.1.0", 5000, &v11);
    h_make_release(model, "1.2.0", 7000, &v12);
    h_make_device(model, "1.0.0", &me);
    h_make_device(model, "1.0.0", &other);
    snprintf(w->device_id, sizeof w->device_id, "%s", me.id);

    /* Another device's manifest, and one of this device's for 1.0.5, canceled and withdrawn since. */
    h_assign_ok(&other, &v12, aid);
    w->other_manifest = capture_manifest(&other, "1.0.0");
    h_assign_ok(&me, &v105, aid);
    w->withdrawn_manifest = capture_manifest(&me, "1.0.0");
    snprintf(path, sizeof path, "/v1/assignments/%s/cancel", aid);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, &r, NULL);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/releases/%s", v105.id);
    h_json(&h_g_srv, "PATCH", path, h_g_srv.admin_key, &r, "{s:s}", "status", "withdrawn");
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    const char *other_url = h_jstr(w->other_manifest, "url");
    snprintf(w->other_image_path, sizeof w->other_image_path, "%s", other_url + strlen(h_g_srv.base_url));
    snprintf(w->server_origin, sizeof w->server_origin, "%s", h_g_srv.base_url);

    /* The device, registered with its token, talks to the proxy from now on. */
    h_proxy_t *proxy = h_proxy_start(h_g_srv.base_url, hook, before_upstream, w);
    pthread_mutex_lock(&w->lock);
    snprintf(w->proxy_origin, sizeof w->proxy_origin, "%s", h_proxy_url(proxy));
    pthread_mutex_unlock(&w->lock);
    snprintf(dir, sizeof dir, "%s/device", g_tmp);
    char err[300];
    ota_device_registration_t reg = {.state_dir = dir,
                                     .server = h_proxy_url(proxy),
                                     .device_id = me.id,
                                     .token = me.token,
                                     .serial = me.serial,
                                     .model = model,
                                     .version = "1.0.0"};
    CHECK(ota_device_register(&reg, err, sizeof err) == OTA_OK, "register: %s", err);

    /* First an honest update to 1.2.0: from then on the withdrawn 1.0.5 is older than what the device runs. */
    ota_device_t *dev = open_device(dir, 0);
    h_assign_ok(&me, &v12, aid);
    library_round(dev);
    CHECK(h_streq(ota_device_version(dev), "1.2.0"), "the honest update did not apply: %s", ota_device_version(dev));

    int counts[A_COUNT] = {0}, installs = 0;
    double seconds[A_COUNT] = {0};
    struct timespec t0, t1, r0, r1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < ROUNDS; round++) {
        char before[OTA_SEMVER_MAX + 1];
        clock_gettime(CLOCK_MONOTONIC, &r0);
        bool binary = round % (ROUNDS / BINARY_ROUNDS) == ROUNDS / BINARY_ROUNDS - 1;
        attack_t a = (attack_t)(next_rand(w) % A_COUNT);
        /* The program retries with its default delays (200 ms doubling to 5 s, 10 times): a lie that fails every
           attempt would cost it half a minute. */
        if (binary && a == A_RANGE_LIE)
            a = A_RANGE_IGNORED;
        snprintf(before, sizeof before, "%s", ota_device_version(dev));
        set_attack(w, a);
        counts[a]++;
        if (getenv("OTA_TEST_LOG") != NULL)
            fprintf(stderr, "round %d: %s, running %s\n", round, ATTACK_NAMES[a], before);
        if (binary) {
            /* The program itself, on the same proxy (the library lets go of the state directory meanwhile). Should the
               program install and not get to confirm (the heartbeat that reports it tampered with), the next open is
               a boot that falls back to the slot that ran before: the version is then what it was. */
            ota_device_free(dev);
            int status = run_binary(dir, a == A_EXPIRED ? "--clock-skew=172800" : NULL);
            CHECK(status >= 0 && status != 2, "round %d: ota-device ended with %d (see %s/binary.log)", round, status,
                  g_tmp);
            dev = open_device(dir, 0);
        } else if (a == A_EXPIRED) {
            ota_device_free(dev);
            dev = open_device(dir, 2 * 86400);
            library_round(dev);
            ota_device_free(dev);
            dev = open_device(dir, 0);
        } else {
            library_round(dev);
        }
        set_attack(w, A_NONE);
        expect_allowed_install(w, dir, before, dev, round);
        installs += strcmp(before, ota_device_version(dev)) != 0;
        expect_documented_files(dir, round);
        keep_updates_coming(w, dev, &v11, &v12);
        clock_gettime(CLOCK_MONOTONIC, &r1);
        seconds[a] += (double)(r1.tv_sec - r0.tv_sec) + (double)(r1.tv_nsec - r0.tv_nsec) / 1e9;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "it_hostile_network: %d rounds in %.1f s, %d installs (each checked), %d requests through the proxy\n",
            ROUNDS, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, installs,
            h_proxy_requests(proxy));
    for (int i = 0; i < A_COUNT; i++)
        fprintf(stderr, "  %-16s %4d rounds, %5.2f s\n", ATTACK_NAMES[i], counts[i], seconds[i]);
    CHECK(installs >= 10, "only %d installs in %d rounds: the honest updates did not get through", installs, ROUNDS);

    ota_device_free(dev);
    h_proxy_stop(proxy);
    json_decref(w->other_manifest);
    json_decref(w->withdrawn_manifest);
    h_release_free(&v105);
    h_release_free(&v11);
    h_release_free(&v12);
}

/* ---- the program ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    /* In memory when it can be (see the top of this file). */
    snprintf(g_tmp, sizeof g_tmp, "/dev/shm/ota-hostile-XXXXXX");
    if (mkdtemp(g_tmp) == NULL) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/ota-hostile-XXXXXX");
        if (mkdtemp(g_tmp) == NULL)
            return -1;
    }
    return h_group_setup(state);
}

static int teardown(void **state)
{
    h_group_teardown(state);
    const char *keep = getenv("OTA_TEST_KEEP");
    if (keep == NULL || *keep == '\0' || strcmp(keep, "0") == 0)
        h_remove_tmp_dir(g_tmp);
    return 0;
}

int main(void)
{
    /* One device runs 2,000 rounds in about 15 s, far more than the 10 requests in 10 s a device may send;
       it_rate_limit tests the limit itself. */
    h_server_env_all = "OTA_DEVICE_RATE_LIMIT=1000000";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_network),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
