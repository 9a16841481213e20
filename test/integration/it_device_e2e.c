/*
 * Integration: the bundled device client (build/ota-device, OTA_DEVICE_BIN)
 * end to end against the real ota-server on a throwaway PostgreSQL cluster:
 * upload a release, assign it, let `ota-device run --once` download,
 * verify and install it, and check what the server recorded (the
 * assignment's status, reason and deliveries) and what the device's state
 * directory holds (version, active slot, whether it is on trial, slot
 * bytes). With --fail-boot the new firmware never confirms itself, the
 * bootloader falls back, and the server records the rollback. Signed
 * manifests replayed through a proxy (proxy.h) to another device, after the
 * device moved on, or past their deadline by the device's clock are refused
 * before a byte is downloaded, and reported. Devices are
 * registered both ways: created by the client with the admin key, or
 * created first through the API by an operator and taken over by the
 * client with their id and token.
 *
 * One source, two programs: it_device_e2e_fs (the fs backend: the server
 * serves the blobs itself) and it_device_e2e_s3 (OTA_IT_S3: a real s3rver,
 * which checks presigned-URL expiry and serves Range). Each test makes its
 * own model and devices.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <pthread.h>

#include "checks.h"
#include "ota/crc32.h"
#include "ota/manifest.h"
#include "proxy.h"

#ifndef OTA_DEVICE_BIN
#error "OTA_DEVICE_BIN must be defined to the path of the ota-device binary"
#endif

#ifdef OTA_IT_S3
static h_s3_t g_s3;
#define S3_BUCKET "ota-device-e2e"
#endif

extern char **environ;

static char g_tmp[256]; /* /tmp/ota-dev-XXXXXX: one state directory per device, the clients' output */

/* A second server some tests start with other settings; stopped by the test's teardown, even after a failure. */
static h_server_t g_other;
static bool g_other_up;

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define RUN_TIMEOUT_MS 120000L
#define OUT_CAP (256 * 1024)

/* ---- small utilities ------------------------------------------------------------ */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static unsigned char *random_bytes(size_t n)
{
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "out of memory");
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(p + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        CHECK(k > 0, "getrandom: %s", strerror(errno));
        got += (size_t)k;
    }
    return p;
}

/* The whole file (malloc'ed, NUL-terminated) or NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL, "out of memory");
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL, "out of memory");
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        if (k == 0)
            break;
        n += k;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- the device client as a child process -------------------------------------------- */

typedef struct run {
    int status;   /* exit status, or -1 when it was killed or timed out */
    long ms;      /* how long it ran */
    char *out;    /* its stdout (malloc'ed) */
    char *err;    /* its stderr (malloc'ed) */
    json_t *json; /* the last line of stdout, parsed, or NULL */
} run_t;

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Fails the test when `cond` is false, showing the client's output too. */
#define CHECK_RUN(r, cond, ...)                                                                                        \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "---- ota-device (exit %d, %ld ms) stdout:\n%s---- stderr:\n%s----\n", (r)->status,        \
                    (r)->ms, (r)->out != NULL ? (r)->out : "", (r)->err != NULL ? (r)->err : "");                      \
            CHECK(cond, __VA_ARGS__);                                                                                  \
        }                                                                                                              \
    } while (0)

/* Runs OTA_DEVICE_BIN with `args` (NULL-terminated, argv[0] excluded) and waits for it (at most RUN_TIMEOUT_MS). */
static void run_device(run_t *r, const char *const *args)
{
    static int seq;
    char out_path[400], err_path[400];
    const char *argv[40];
    size_t n = 0;
    memset(r, 0, sizeof *r);
    argv[n++] = OTA_DEVICE_BIN;
    for (; *args != NULL && n + 1 < ELEMS(argv); args++)
        argv[n++] = *args;
    argv[n] = NULL;
    seq++;
    snprintf(out_path, sizeof out_path, "%s/run-%d.out", g_tmp, seq);
    snprintf(err_path, sizeof err_path, "%s/run-%d.err", g_tmp, seq);

    long start = now_ms();
    pid_t parent = getpid();
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || in < 0 || out < 0 || err < 0 ||
            dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(127);
        execve(argv[0], (char *const *)argv, environ);
        _exit(127);
    }
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (now_ms() - start > RUN_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        sleep_ms(20);
    }
    r->ms = now_ms() - start;
    r->status = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->out = read_file(out_path, NULL);
    r->err = read_file(err_path, NULL);
    if (r->out == NULL)
        r->out = strdup("");
    if (r->err == NULL)
        r->err = strdup("");
    /* The last line of stdout is the JSON summary. */
    size_t len = strlen(r->out);
    while (len > 0 && r->out[len - 1] == '\n')
        len--;
    size_t start_line = len;
    while (start_line > 0 && r->out[start_line - 1] != '\n')
        start_line--;
    if (len > start_line)
        r->json = json_loadb(r->out + start_line, len - start_line, 0, NULL);
}

static const char *rj_str(const run_t *r, const char *key)
{
    return h_jstr(r->json, key);
}

static long long rj_int(const run_t *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* ---- what the tests set up on the server --------------------------------------------- */

typedef struct image {
    unsigned char *data;
    size_t len;
    char release_id[40];
    char version[32];
} image_t;

/* POSTs a JSON release of the `len` bytes at `data` (base64 blob; `img` takes them) for `model`: 201. */
static void make_release_of(h_server_t *srv, const char *model, const char *version, unsigned char *data, size_t len,
                            image_t *img)
{
    memset(img, 0, sizeof *img);
    img->data = data;
    img->len = len;
    snprintf(img->version, sizeof img->version, "%s", version);
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    CHECK(b64 != NULL, "out of memory");
    EVP_EncodeBlock((unsigned char *)b64, img->data, (int)len);
    h_resp_t r = {0};
    h_json(srv, "POST", "/v1/releases", srv->admin_key, &r, "{s:s, s:s, s:{s:s}}", "version", version, "model", model,
           "bin", "blob", b64);
    free(b64);
    EXPECT_STATUS(&r, 201);
    snprintf(img->release_id, sizeof img->release_id, "%s", h_jstr(r.json, "id"));
    json_t *bin = json_object_get(json_object_get(r.json, "artifacts"), "bin");
    CHECK(json_integer_value(json_object_get(bin, "crc32")) == (json_int_t)ota_crc32_update(0, img->data, len),
          "the server's crc32 differs: %s", BODY(&r));
    h_resp_free(&r);
}

/* POSTs a JSON release of `len` random bytes for `model`: 201. */
static void make_release(h_server_t *srv, const char *model, const char *version, size_t len, image_t *img)
{
    make_release_of(srv, model, version, random_bytes(len), len, img);
}

static void image_free(image_t *img)
{
    free(img->data);
    img->data = NULL;
}

typedef struct device {
    char dir[300];
    char id[40];
    char serial[40];
} device_t;

/* A fresh state directory and serial in `d`; nothing registered yet. */
static void new_device(device_t *d)
{
    static int seq;
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s/dev-%d", g_tmp, ++seq);
    h_unique(d->serial, sizeof d->serial, "SN-");
}

/* `ota-device --state DIR register ...` against `srv`: exit 0, and the state directory names the device. */
static void register_device(h_server_t *srv, const char *model, const char *version, device_t *d)
{
    run_t r;
    new_device(d);
    const char *args[] = {"--state",  d->dir,    "register", "--server", srv->base_url, "--api-key", srv->admin_key,
                          "--serial", d->serial, "--model",  model,      "--version",   version,     NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0, "register: exit %d", r.status);
    CHECK_RUN(&r, rj_str(&r, "device_id") != NULL, "register printed no device_id");
    snprintf(d->id, sizeof d->id, "%s", rj_str(&r, "device_id"));
    run_free(&r);
}

/*
 * A device an operator created on h_g_srv with the admin key, running 1.0.0 (the answer shows its token once), and
 * in `d` a fresh state directory for it, with its id and serial; not registered yet.
 */
static void make_device(const char *model, h_device_t *made, device_t *d)
{
    h_make_device(model, "1.0.0", made);
    new_device(d);
    snprintf(d->id, sizeof d->id, "%s", made->id);
    snprintf(d->serial, sizeof d->serial, "%s", made->serial);
}

/* `ota-device --state DIR register --device-id --token` for the device of `d`, on 1.0.0; the caller checks `r`. */
static void register_by_token(const device_t *d, const char *token, const char *serial, const char *model, run_t *r)
{
    const char *args[] = {"--state", d->dir,      "register", "--server", h_g_srv.base_url, "--device-id",
                          d->id,     "--token",   token,      "--serial", serial,           "--model",
                          model,     "--version", "1.0.0",    NULL};
    run_device(r, args);
}

/* POST /v1/devices/{id}/assignments: 201; its id goes to `id`. */
static void assign(h_server_t *srv, const device_t *d, const image_t *img, char *id, size_t cap)
{
    char path[200];
    h_resp_t r = {0};
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", d->id);
    h_json(srv, "POST", path, srv->admin_key, &r, "{s:s}", "release_id", img->release_id);
    EXPECT_STATUS(&r, 201);
    snprintf(id, cap, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

/* GET /v1/assignments/{id}: 200 (the caller frees `r`). */
static void get_assignment(const char *id, h_resp_t *r)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/assignments/%s", id);
    h_request(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, r);
    EXPECT_STATUS(r, 200);
}

static void expect_assignment(const char *id, const char *status, const char *reason_part, long min_deliveries,
                              long max_deliveries)
{
    h_resp_t r = {0};
    get_assignment(id, &r);
    /* Re-delivery counts are written every OTA_DEFERRED_WRITE_MS (server/heartbeat/deferred_writes.h). */
    for (long waited = 0; waited < H_DEFERRED_WRITE_WAIT_MS; waited += 100) {
        json_int_t n = json_integer_value(json_object_get(r.json, "deliveries"));
        if (n >= min_deliveries && n <= max_deliveries)
            break;
        h_resp_free(&r);
        h_sleep_ms(100);
        get_assignment(id, &r);
    }
    CHECK(h_streq(h_jstr(r.json, "status"), status), "assignment %s: want status %s: %s", id, status, BODY(&r));
    if (reason_part != NULL) {
        const char *reason = h_jstr(r.json, "reason");
        CHECK(reason != NULL && strstr(reason, reason_part) != NULL, "assignment %s: want a reason with \"%s\": %s", id,
              reason_part, BODY(&r));
    }
    json_int_t deliveries = json_integer_value(json_object_get(r.json, "deliveries"));
    CHECK(deliveries >= min_deliveries && deliveries <= max_deliveries, "assignment %s: want %ld..%ld deliveries: %s",
          id, min_deliveries, max_deliveries, BODY(&r));
    h_resp_free(&r);
}

/* state.json of `d`: version and active slot as expected, and confirmed (no slot left on trial). */
static void expect_state(const device_t *d, const char *version, const char *slot)
{
    char path[400];
    snprintf(path, sizeof path, "%s/state.json", d->dir);
    char *text = read_file(path, NULL);
    CHECK(text != NULL, "cannot read %s", path);
    json_t *j = json_loads(text, 0, NULL);
    CHECK(h_streq(h_jstr(j, "version"), version) && h_streq(h_jstr(j, "active_slot"), slot),
          "%s: want version %s in slot %s: %s", path, version, slot, text);
    CHECK(h_streq(h_jstr(j, "device_id"), d->id), "%s: device_id: %s", path, text);
    CHECK(json_is_false(json_object_get(j, "trial")) && json_integer_value(json_object_get(j, "trial_boots")) == 0,
          "%s: a slot on trial: %s", path, text);
    json_decref(j);
    free(text);
}

/* The slot file holds exactly the image's bytes. */
static void expect_slot(const device_t *d, const char *slot, const image_t *img)
{
    char path[400];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/slot-%s.bin", d->dir, slot);
    char *bytes = read_file(path, &len);
    CHECK(bytes != NULL, "cannot read %s", path);
    CHECK(len == img->len && memcmp(bytes, img->data, len) == 0, "%s: %zu bytes that are not the %zu of the image",
          path, len, img->len);
    free(bytes);
}

/* No state.json in `dir`: nothing was registered there. */
static void expect_no_state(const char *dir)
{
    char path[400];
    snprintf(path, sizeof path, "%s/state.json", dir);
    CHECK(!file_exists(path), "%s was written", path);
}

static void expect_no_download(const device_t *d)
{
    char path[400];
    snprintf(path, sizeof path, "%s/download.part", d->dir);
    CHECK(!file_exists(path), "%s is still there", path);
}

/* GET /v1/devices/{id}: firmware_version as expected. */
static void expect_server_version(const device_t *d, const char *version)
{
    char path[200];
    h_resp_t r = {0};
    snprintf(path, sizeof path, "/v1/devices/%s", d->id);
    h_request(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(h_streq(h_jstr(r.json, "firmware_version"), version), "device %s: want firmware_version %s: %s", d->id,
          version, BODY(&r));
    h_resp_free(&r);
}

/* Starts g_other on the program's cluster (same database and blobs) with the backend's environment and `extra`. */
static h_server_t *start_other(const char *const *extra)
{
    const char *env[24];
    size_t n = 0;
#ifdef OTA_IT_S3
    for (const char *const *p = h_s3_env(&g_s3); *p != NULL; p++)
        env[n++] = *p;
#endif
    for (; extra != NULL && *extra != NULL && n + 1 < ELEMS(env); extra++)
        env[n++] = *extra;
    env[n] = NULL;
    h_server_start(&g_other, &h_g_pg, env);
    g_other_up = true;
    CHECK(h_wait_ready(&g_other), "the second server did not become ready");
    return &g_other;
}

static int stop_other(void **state)
{
    (void)state;
    if (g_other_up) {
        h_server_stop(&g_other);
        g_other_up = false;
    }
    return 0;
}

/* A fresh model named after `name`, a device registered on 1.0.0, a release `version` of `len` bytes assigned to it. */
static void assigned_device(const char *name, const char *version, size_t len, device_t *d, image_t *img, char id[40])
{
    char model[32];
    h_make_model(model, sizeof model, name);
    register_device(&h_g_srv, model, "1.0.0", d);
    make_release(&h_g_srv, model, version, len, img);
    assign(&h_g_srv, d, img, id, 40);
}

/* POST /v1/devices/{id}/assignments with "allow_downgrade": true: 201; its id goes to `id`. */
static void assign_downgrade(const device_t *d, const image_t *img, char *id, size_t cap)
{
    char path[200];
    h_resp_t r = {0};
    snprintf(path, sizeof path, "/v1/devices/%s/assignments", d->id);
    h_json(&h_g_srv, "POST", path, h_g_srv.admin_key, &r, "{s:s, s:b}", "release_id", img->release_id,
           "allow_downgrade", 1);
    EXPECT_STATUS(&r, 201);
    snprintf(id, cap, "%s", h_jstr(r.json, "id"));
    h_resp_free(&r);
}

/* Sets members of the device's state.json: "server" (NULL: unchanged) and, with `version`, the running version. */
static void edit_state(const device_t *d, const char *server, const char *version)
{
    char path[400];
    snprintf(path, sizeof path, "%s/state.json", d->dir);
    char *text = read_file(path, NULL);
    CHECK(text != NULL, "cannot read %s", path);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    CHECK(json_is_object(j), "state.json is not an object");
    if (server != NULL)
        json_object_set_new(j, "server", json_string(server));
    if (version != NULL) {
        json_object_set_new(j, "version", json_string(version));
        json_t *slot = json_object_get(json_object_get(j, "slots"), h_jstr(j, "active_slot"));
        json_object_set_new(slot, "version", json_string(version));
    }
    CHECK(json_dump_file(j, path, 0) == 0, "cannot write %s", path);
    json_decref(j);
}

/*
 * What the proxy in front of the server does to heartbeat answers: replaces "ota" with `replay` (when set),
 * keeps the last manifest the server sent in `seen`, and counts the heartbeats (`beats`, the last one's body in
 * `last_beat`) and the other requests (`others`: downloads).
 */
typedef struct replayer {
    pthread_mutex_t lock;
    json_t *replay;
    json_t *seen;
    int beats, others;
    json_t *last_beat;
} replayer_t;

static void replay_hook(void *arg, h_proxy_exchange_t *x)
{
    replayer_t *rp = arg;
    pthread_mutex_lock(&rp->lock);
    if (strcmp(x->method, "POST") != 0 || strstr(x->path, "/heartbeat") == NULL) {
        rp->others++;
        goto Exit;
    }
    rp->beats++;
    json_decref(rp->last_beat);
    rp->last_beat = json_loads(x->req_body, 0, NULL);
    json_t *answer = x->status == 200 ? json_loads(x->body, 0, NULL) : NULL;
    if (answer == NULL)
        goto Exit;
    json_t *ota = json_object_get(answer, "ota");
    if (json_is_object(ota)) {
        json_decref(rp->seen);
        rp->seen = json_incref(ota);
    }
    if (rp->replay != NULL) {
        json_object_set(answer, "ota", rp->replay);
        free(x->body);
        x->body = json_dumps(answer, JSON_COMPACT);
        x->len = strlen(x->body);
    }
    json_decref(answer);
Exit:
    pthread_mutex_unlock(&rp->lock);
}

static void replayer_free(replayer_t *rp)
{
    json_decref(rp->replay);
    json_decref(rp->seen);
    json_decref(rp->last_beat);
    pthread_mutex_destroy(&rp->lock);
}

/*
 * `ota-device run --once` for `d` through the proxy, which answers its heartbeats with `manifest` (another
 * device's, or an old one): refused before a byte is downloaded with a reason that contains `reason`, and
 * the refusal reported in the next heartbeat (forwarded to the server).
 */
static void expect_replay_refused(const device_t *d, replayer_t *rp, json_t *manifest, const char *reason)
{
    run_t r;
    const char *args[] = {"--state", d->dir, "run", "--once", NULL};
    pthread_mutex_lock(&rp->lock);
    json_decref(rp->replay);
    rp->replay = json_incref(manifest);
    rp->beats = rp->others = 0;
    pthread_mutex_unlock(&rp->lock);
    run_device(&r, args);
    CHECK_RUN(&r,
              r.status == 3 && h_streq(rj_str(&r, "outcome"), "failed") && rj_int(&r, "bytes") == 0 &&
                  rj_str(&r, "error") != NULL && strstr(rj_str(&r, "error"), reason) != NULL,
              "a replayed manifest: want failed (%s), nothing downloaded", reason);
    run_free(&r);
    pthread_mutex_lock(&rp->lock);
    json_t *ota = json_object_get(rp->last_beat, "ota");
    CHECK(rp->others == 0, "%d downloads of a replayed manifest", rp->others);
    CHECK(rp->beats == 2 && h_streq(h_jstr(ota, "state"), "failed") &&
              h_streq(h_jstr(ota, "assignment_id"), h_jstr(manifest, "assignment_id")) &&
              h_jstr(ota, "error") != NULL && strstr(h_jstr(ota, "error"), reason) != NULL,
          "the refusal was not reported: %d heartbeats, the last %s", rp->beats,
          rp->last_beat != NULL ? json_dumps(rp->last_beat, JSON_COMPACT) : "none");
    json_decref(rp->replay);
    rp->replay = NULL;
    pthread_mutex_unlock(&rp->lock);
    expect_no_download(d);
}

/* ---- the tests ----------------------------------------------------------------------- */

/* Upload, assign, apply: the assignment is applied, the device runs the new version from the other slot. Twice. */
static void test_apply_and_switch_back(void **state)
{
    (void)state;
    char model[32], a1[40], a2[40];
    device_t d;
    image_t v11, v12;
    run_t r;
    h_make_model(model, sizeof model, "Apply");
    register_device(&h_g_srv, model, "v1.0.0", &d);
    expect_state(&d, "1.0.0", "a");
    expect_server_version(&d, "1.0.0");
    make_release(&h_g_srv, model, "1.1.0", 70001, &v11);
    make_release(&h_g_srv, model, "1.2.0", 4096, &v12);

    /* Nothing assigned: one heartbeat, nothing to do. */
    const char *args[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "none"), "want outcome none");
    run_free(&r);

    assign(&h_g_srv, &d, &v11, a1, sizeof a1);
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0, "run --once: exit %d", r.status);
    CHECK_RUN(&r,
              h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "version"), "1.1.0") &&
                  h_streq(rj_str(&r, "active_slot"), "b") && h_streq(rj_str(&r, "assignment_id"), a1) &&
                  rj_int(&r, "bytes") == 70001 && rj_int(&r, "retries") == 0,
              "want applied 1.1.0 in slot b");
    CHECK_RUN(&r, strstr(r.err, "reboot: running 1.1.0 from slot b") != NULL, "no reboot line");
    CHECK_RUN(&r, strstr(r.err, "confirm: 1.1.0 in slot b confirmed itself") != NULL, "no confirm line");
    run_free(&r);
    expect_assignment(a1, "applied", NULL, 1, 1);
    expect_state(&d, "1.1.0", "b");
    expect_slot(&d, "b", &v11);
    expect_no_download(&d);
    expect_server_version(&d, "1.1.0");

    /* status prints the state. */
    const char *status_args[] = {"--state", d.dir, "status", NULL};
    run_device(&r, status_args);
    CHECK_RUN(&r,
              r.status == 0 && h_streq(rj_str(&r, "device_id"), d.id) && h_streq(rj_str(&r, "version"), "1.1.0") &&
                  h_streq(rj_str(&r, "active_slot"), "b") && json_is_null(json_object_get(r.json, "download")) &&
                  json_object_get(r.json, "token") == NULL,
              "status: want device, 1.1.0, slot b, no download, no token");
    run_free(&r);

    /* The next update goes into slot a, the one not running. */
    assign(&h_g_srv, &d, &v12, a2, sizeof a2);
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied"), "second update: want applied");
    run_free(&r);
    expect_assignment(a2, "applied", NULL, 1, 1);
    expect_state(&d, "1.2.0", "a");
    expect_slot(&d, "a", &v12);
    expect_slot(&d, "b", &v11);
    image_free(&v11);
    image_free(&v12);
}

/* --corrupt: the CRC-32 check fails, the server records why, the device stays where it was. */
static void test_corrupt_image_fails(void **state)
{
    (void)state;
    char model[32], id[40];
    device_t d;
    image_t img;
    run_t r;
    h_make_model(model, sizeof model, "Corrupt");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "2.0.0", 50000, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);

    const char *args[] = {"--state", d.dir, "run", "--once", "--corrupt", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 3, "run --once --corrupt: want exit 3 (failed), got %d", r.status);
    CHECK_RUN(&r,
              h_streq(rj_str(&r, "outcome"), "failed") && rj_str(&r, "error") != NULL &&
                  strstr(rj_str(&r, "error"), "crc32 mismatch") != NULL && h_streq(rj_str(&r, "version"), "1.0.0"),
              "want failed with crc32 mismatch");
    run_free(&r);
    expect_assignment(id, "failed", "crc32 mismatch", 1, 1);
    expect_state(&d, "1.0.0", "a");
    expect_no_download(&d);
    expect_server_version(&d, "1.0.0");

    /* The failure was reported once; the next run has nothing to do. */
    const char *again[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, again);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "none"), "after the failure: want outcome none");
    run_free(&r);
    image_free(&img);
}

/* A manifest signed by another key than the one pinned at registration is refused before any download. */
static void test_foreign_signature_fails(void **state)
{
    (void)state;
    char model[32], id[40], path[400];
    device_t d;
    image_t img;
    run_t r;
    h_make_model(model, sizeof model, "Pinned");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "1.0.1", 1000, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);

    /* Pin another key (32 bytes of 0x42): as if the server's answers came from an impostor. */
    snprintf(path, sizeof path, "%s/state.json", d.dir);
    char *text = read_file(path, NULL);
    CHECK(text != NULL, "cannot read %s", path);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    CHECK(json_is_object(j), "state.json is not an object");
    json_object_set_new(j, "public_key", json_string("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="));
    CHECK(json_dump_file(j, path, 0) == 0, "cannot write %s", path);
    json_decref(j);

    const char *args[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, args);
    CHECK_RUN(&r,
              r.status == 3 && h_streq(rj_str(&r, "outcome"), "failed") && rj_int(&r, "bytes") == 0 &&
                  strstr(rj_str(&r, "error"), "signature invalid") != NULL,
              "want failed: signature invalid, nothing downloaded");
    run_free(&r);
    expect_assignment(id, "failed", "signature invalid", 1, 1);
    expect_state(&d, "1.0.0", "a");
    image_free(&img);
}

/*
 * Device A's manifest, signed and valid, replayed to device B of the same model (through a proxy that answers B's
 * heartbeats with it): B refuses it before downloading ("device mismatch") and reports it; the report, about an
 * assignment that is not B's, changes nothing on the server: A's assignment is still delivered.
 */
static void test_replay_to_other_device_refused(void **state)
{
    (void)state;
    char model[32], aid[40];
    h_device_t made_a;
    device_t a, b;
    image_t img;
    h_resp_t resp = {0};
    replayer_t rp = {.lock = PTHREAD_MUTEX_INITIALIZER};
    h_make_model(model, sizeof model, "Replay");
    make_device(model, &made_a, &a);
    make_release(&h_g_srv, model, "1.1.0", 5000, &img);
    assign(&h_g_srv, &a, &img, aid, sizeof aid);
    h_heartbeat_fw(&made_a, "1.0.0", &resp);
    json_t *manifest = json_incref(json_object_get(resp.json, "ota"));
    CHECK(json_is_object(manifest) && h_streq(h_jstr(manifest, "device_id"), a.id), "no manifest for A: %s",
          BODY(&resp));
    h_resp_free(&resp);

    register_device(&h_g_srv, model, "1.0.0", &b);
    h_proxy_t *proxy = h_proxy_start(h_g_srv.base_url, replay_hook, NULL, &rp);
    edit_state(&b, h_proxy_url(proxy), NULL);
    expect_replay_refused(&b, &rp, manifest, "device mismatch: the manifest is for device ");
    h_proxy_stop(proxy);
    expect_state(&b, "1.0.0", "a");
    expect_assignment(aid, "delivered", NULL, 1, 1);
    json_decref(manifest);
    replayer_free(&rp);
    image_free(&img);
}

/*
 * A device's own manifests replayed after it moved on: the one it applied ("already running"), then, once it runs
 * a newer release, the older one ("downgrade refused"). An older release assigned with allow_downgrade carries
 * "downgrade": true, signed, and is installed.
 */
static void test_replay_of_old_manifest_refused(void **state)
{
    (void)state;
    char model[32], a1[40], a2[40], a3[40];
    device_t d;
    image_t v11, v12;
    run_t r;
    replayer_t rp = {.lock = PTHREAD_MUTEX_INITIALIZER};
    const char *args[] = {"--state", d.dir, "run", "--once", NULL};
    h_make_model(model, sizeof model, "OldManifest");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "1.1.0", 6000, &v11);
    make_release(&h_g_srv, model, "1.2.0", 7000, &v12);
    h_proxy_t *proxy = h_proxy_start(h_g_srv.base_url, replay_hook, NULL, &rp);
    edit_state(&d, h_proxy_url(proxy), NULL);

    assign(&h_g_srv, &d, &v11, a1, sizeof a1);
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied"), "1.1.0: want applied");
    run_free(&r);
    pthread_mutex_lock(&rp.lock);
    json_t *old = json_incref(rp.seen);
    pthread_mutex_unlock(&rp.lock);
    CHECK(h_streq(h_jstr(old, "version"), "1.1.0") && json_is_false(json_object_get(old, "downgrade")),
          "the proxy kept no manifest of 1.1.0");
    expect_replay_refused(&d, &rp, old, "already running: this device runs 1.1.0 already");
    expect_state(&d, "1.1.0", "b");

    assign(&h_g_srv, &d, &v12, a2, sizeof a2);
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied"), "1.2.0: want applied");
    run_free(&r);
    expect_replay_refused(&d, &rp, old, "downgrade refused: the manifest names 1.1.0, older than the running 1.2.0");
    expect_state(&d, "1.2.0", "a");
    expect_assignment(a2, "applied", NULL, 1, 1);

    /* Asked for: the same release back, signed as a downgrade. */
    assign_downgrade(&d, &v11, a3, sizeof a3);
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "version"), "1.1.0"),
              "a signed downgrade to 1.1.0: want applied");
    run_free(&r);
    pthread_mutex_lock(&rp.lock);
    CHECK(json_is_true(json_object_get(rp.seen, "downgrade")) && h_streq(h_jstr(rp.seen, "assignment_id"), a3),
          "the downgrade's manifest does not say \"downgrade\": true");
    pthread_mutex_unlock(&rp.lock);
    expect_assignment(a3, "applied", NULL, 1, 1);
    expect_state(&d, "1.1.0", "b");
    h_proxy_stop(proxy);
    json_decref(old);
    replayer_free(&rp);
    image_free(&v11);
    image_free(&v12);
}

/* A device whose clock is past the manifest's not_after (two days ahead; the apply timeout is one) refuses it. */
static void test_expired_manifest_refused(void **state)
{
    (void)state;
    char id[40];
    device_t d;
    image_t img;
    run_t r;
    assigned_device("Expired", "1.0.1", 3000, &d, &img, id);

    const char *args[] = {"--state", d.dir, "run", "--once", "--clock-skew", "172800", NULL};
    run_device(&r, args);
    CHECK_RUN(&r,
              r.status == 3 && h_streq(rj_str(&r, "outcome"), "failed") && rj_int(&r, "bytes") == 0 &&
                  strstr(rj_str(&r, "error"), "expired: the manifest was valid until ") != NULL,
              "want failed: expired, nothing downloaded");
    run_free(&r);
    expect_assignment(id, "failed", "expired", 1, 1);
    expect_state(&d, "1.0.0", "a");
    expect_no_download(&d);
    image_free(&img);
}

/*
 * The server delivers a release that is older than what the device runs (the device runs 3.0.0, which the server
 * learns only from the heartbeat that gets the manifest): without "downgrade": true, refused and reported.
 */
static void test_unsigned_downgrade_refused(void **state)
{
    (void)state;
    char id[40];
    device_t d;
    image_t img;
    run_t r;
    assigned_device("Downgrade", "1.1.0", 3000, &d, &img, id);
    edit_state(&d, NULL, "3.0.0");

    const char *args[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, args);
    CHECK_RUN(&r,
              r.status == 3 && h_streq(rj_str(&r, "outcome"), "failed") && rj_int(&r, "bytes") == 0 &&
                  strstr(rj_str(&r, "error"), "downgrade refused: the manifest names 1.1.0, older than the running "
                                              "3.0.0") != NULL,
              "want failed: downgrade refused");
    run_free(&r);
    expect_assignment(id, "failed", "downgrade refused", 1, 1);
    expect_state(&d, "3.0.0", "a");
    image_free(&img);
}

/* --cut-after: the connection drops once; the client resumes with Range from the bytes it has. */
static void test_cut_download_resumes(void **state)
{
    (void)state;
    char model[32], id[40];
    device_t d;
    image_t img;
    run_t r;
    h_make_model(model, sizeof model, "Cut");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "1.0.1", 90000, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);

    const char *args[] = {"--state", d.dir, "run", "--once", "--cut-after", "30000", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied"), "want applied after the cut");
    CHECK_RUN(&r, rj_int(&r, "retries") == 1 && rj_int(&r, "resumes") == 1 && rj_int(&r, "url_refreshes") == 0,
              "want one retry that resumed");
    CHECK_RUN(&r, strstr(r.err, "connection dropped after 30000 bytes") != NULL, "no line about the cut");
    CHECK_RUN(&r, strstr(r.err, "resuming at byte 30000 (HTTP 206)") != NULL, "no Range resume from byte 30000");
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 1);
    expect_state(&d, "1.0.1", "b");
    expect_slot(&d, "b", &img);
    image_free(&img);
}

/*
 * The URL expires in the middle of the download (OTA_URL_TTL=1 and a slow link): the retry gets 403, a heartbeat
 * fetches a fresh URL, and the download continues from where it was.
 */
static void test_expired_url_is_replaced(void **state)
{
    (void)state;
    static const char *const extra[] = {"OTA_URL_TTL=1", NULL};
    char model[32], id[40];
    device_t d;
    image_t img;
    run_t r;
    h_server_t *srv = start_other(extra);
    h_make_model(model, sizeof model, "Expiry");
    register_device(srv, model, "1.0.0", &d);
    make_release(srv, model, "1.1.0", 40000, &img);
    assign(srv, &d, &img, id, sizeof id);

    /* 20000 bytes at 10 kB/s take 2 s: the first URL (valid for 1 to 2 s) is dead when the retry comes. */
    const char *args[] = {"--state", d.dir, "run", "--once", "--cut-after", "20000", "--throttle", "10000", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied"), "want applied after a fresh URL");
    CHECK_RUN(&r, rj_int(&r, "url_refreshes") >= 1, "want at least one fresh URL");
    CHECK_RUN(&r, strstr(r.err, "(HTTP 403") != NULL && strstr(r.err, "asking the server for a fresh one") != NULL,
              "no line about the refused URL");
    CHECK_RUN(&r, strstr(r.err, "resuming at byte 20000 (HTTP 206)") != NULL, "the fresh URL did not resume");
    run_free(&r);
    /* One delivery for the first heartbeat and one for each fresh URL. */
    expect_assignment(id, "applied", NULL, 2, 10);
    expect_state(&d, "1.1.0", "b");
    expect_slot(&d, "b", &img);
    image_free(&img);
}

/* While the device records, delivery waits; once it stops, the update goes through. Likewise a low battery. */
static void test_recording_and_battery_defer(void **state)
{
    (void)state;
    char model[32], id[40];
    device_t d;
    image_t img;
    run_t r;
    h_make_model(model, sizeof model, "Defer");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "1.0.1", 3000, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);

    const char *recording[] = {"--state", d.dir, "run", "--once", "--recording", NULL};
    run_device(&r, recording);
    CHECK_RUN(
        &r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "deferred") && h_streq(rj_str(&r, "deferred"), "recording"),
        "want deferred: recording");
    run_free(&r);
    expect_assignment(id, "pending", NULL, 0, 0);
    expect_state(&d, "1.0.0", "a");
    expect_no_download(&d);

    const char *low[] = {"--state", d.dir, "run", "--once", "--battery", "low", NULL};
    run_device(&r, low);
    CHECK_RUN(&r,
              r.status == 0 && h_streq(rj_str(&r, "outcome"), "deferred") && h_streq(rj_str(&r, "deferred"), "battery"),
              "want deferred: battery");
    run_free(&r);
    expect_assignment(id, "pending", NULL, 0, 0);

    /* Not recording, battery normal (the client always reports both, so nothing stale stays on the server). */
    const char *free_[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, free_);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied"), "want applied once recording stopped");
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 1);
    expect_state(&d, "1.0.1", "b");
    image_free(&img);
}

/*
 * --fail-boot: the new firmware boots and reports its version (the assignment is applied), then fails its health
 * check before it confirms itself; the bootloader falls back to the old slot and the device reports the old version,
 * so the server rolls the assignment back.
 */
static void test_fail_boot_rolls_back(void **state)
{
    (void)state;
    char model[32], id[40];
    device_t d;
    image_t img;
    run_t r;
    h_resp_t a = {0};
    h_make_model(model, sizeof model, "FailBoot");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "1.1.0", 20000, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);

    const char *args[] = {"--state", d.dir, "run", "--once", "--fail-boot", NULL};
    run_device(&r, args);
    CHECK_RUN(&r,
              r.status == 3 && h_streq(rj_str(&r, "outcome"), "rolled_back") &&
                  h_streq(rj_str(&r, "version"), "1.0.0") && h_streq(rj_str(&r, "active_slot"), "a") &&
                  h_streq(rj_str(&r, "failed_version"), "1.1.0"),
              "want exit 3 and outcome rolled_back to 1.0.0 in slot a");
    CHECK_RUN(&r, strstr(r.out, "\"outcome\":\"applied\"") != NULL, "no applied outcome before the fallback");
    CHECK_RUN(&r, strstr(r.err, "falling back to slot a (1.0.0)") != NULL, "no fallback line");
    run_free(&r);

    expect_assignment(id, "rolled_back", "reported 1.0.0", 1, 1);
    get_assignment(id, &a);
    json_t *events = json_object_get(a.json, "events");
    json_t *last = json_array_get(events, json_array_size(events) - 1);
    CHECK(json_array_size(events) == 4 && h_streq(h_jstr(last, "from"), "applied") &&
              h_streq(h_jstr(last, "to"), "rolled_back"),
          "events: want applied -> rolled_back last: %s", BODY(&a));
    h_resp_free(&a);
    expect_state(&d, "1.0.0", "a");
    expect_slot(&d, "b", &img); /* the given-up image stays in its slot */
    expect_server_version(&d, "1.0.0");

    /* Nothing more to do: the old firmware runs on. */
    const char *again[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, again);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "none") && h_streq(rj_str(&r, "version"), "1.0.0"),
              "after the fallback: want outcome none on 1.0.0");
    run_free(&r);
    image_free(&img);
}

/*
 * A rollout across several devices, each its own ota-device process and state: they run `run --once` in rounds,
 * the devices of a closed wave get nothing, and the rollout opens its second wave once the first has applied,
 * then completes with every device on the new version.
 */
static void test_rollout_across_devices(void **state)
{
    (void)state;
    enum { N = 4 };
    char model[32], id[40];
    device_t d[N];
    image_t img;
    h_make_model(model, sizeof model, "RolledOut");
    for (int i = 0; i < N; i++)
        register_device(&h_g_srv, model, "1.0.0", &d[i]);
    make_release(&h_g_srv, model, "1.1.0", 30000, &img);
    json_decref(h_create_rollout(img.release_id, "\"waves\": [50, 100], \"success\": {\"min_percent\": 100}", id));

    json_t *r = NULL;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            run_t run;
            const char *args[] = {"--state", d[i].dir, "run", "--once", NULL};
            run_device(&run, args);
            CHECK_RUN(&run, run.status == 0, "device %d, round %d: want exit 0", i, round);
            run_free(&run);
        }
        json_decref(r);
        r = h_get_rollout(id);
        if (h_streq(h_jstr(r, "status"), "completed"))
            break;
        sleep_ms(300); /* the engine's tick: the gate opens wave 2 */
    }
    json_t *counts = json_object_get(r, "counts");
    CHECK(h_streq(h_jstr(r, "status"), "completed") && h_jint(counts, "applied") == N && h_jint(r, "current_wave") == 2,
          "the rollout did not complete: %s", json_dumps(r, 0));
    json_decref(r);
    for (int i = 0; i < N; i++) {
        expect_state(&d[i], "1.1.0", "b");
        expect_server_version(&d[i], "1.1.0");
    }
    image_free(&img);
}

/* ---- delta updates ---------------------------------------------------------------- */

#define DELTA_IMAGE_LEN 300000
#define DELTA_CHANGED 3000 /* bytes of the next build that differ from the one before, a third of the way in */

/* A copy of `from` (over 3 * DELTA_CHANGED bytes) with DELTA_CHANGED bytes changed: the next build of a firmware. */
static unsigned char *next_build(const image_t *from)
{
    CHECK(from->len > 3 * DELTA_CHANGED, "an image of %zu bytes is too small", from->len);
    unsigned char *b = malloc(from->len);
    CHECK(b != NULL, "out of memory");
    memcpy(b, from->data, from->len);
    unsigned char *noise = random_bytes(DELTA_CHANGED);
    memcpy(b + from->len / 3, noise, DELTA_CHANGED);
    free(noise);
    return b;
}

/* Waits (at most 20 s) until GET /v1/releases/{to}/deltas shows the delta from `from` ready; its size. */
static long long wait_delta_ready(const image_t *to, const image_t *from)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/releases/%s/deltas", to->release_id);
    for (int i = 0; i < 200; i++) {
        h_resp_t r = {0};
        h_request(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, &r);
        EXPECT_STATUS(&r, 200);
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(r.json, "items"), k, item)
        {
            if (!h_streq(h_jstr(item, "from_release_id"), from->release_id))
                continue;
            const char *status = h_jstr(item, "status");
            CHECK(h_streq(status, "ready") || h_streq(status, "building"), "the delta is %s: %s", status, BODY(&r));
            if (h_streq(status, "ready")) {
                long long size = (long long)json_integer_value(json_object_get(item, "size"));
                h_resp_free(&r);
                return size;
            }
        }
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    CHECK(false, "the delta from %s to %s is not ready after 20 s", from->version, to->version);
    return -1;
}

/* A device registered on 1.0.0 that then installed `a` from the server (a full download): it runs a known image. */
static void device_running(const char *model, const image_t *a, device_t *d)
{
    char id[40];
    run_t r;
    register_device(&h_g_srv, model, "1.0.0", d);
    assign(&h_g_srv, d, a, id, sizeof id);
    const char *args[] = {"--state", d->dir, "run", "--once", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "delta"), "none"),
              "want %s applied from the full image (the factory image has no SHA-256 to make a delta from)",
              a->version);
    run_free(&r);
}

/* Where the downloads are logged: the server's own log (fs: it serves the blobs) or s3rver's. */
static const char *download_log(void)
{
#ifdef OTA_IT_S3
    return g_s3.log_path;
#else
    return h_g_srv.log_path;
#endif
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* What was appended to the file at `path` since it had `from` bytes (malloc'ed). */
static char *appended(const char *path, long from)
{
    size_t len = 0;
    char *all = read_file(path, &len);
    CHECK(all != NULL, "cannot read %s", path);
    size_t start = from > 0 && (size_t)from <= len ? (size_t)from : 0;
    memmove(all, all + start, len - start + 1);
    return all;
}

/* A small change between two builds: the device downloads the delta, not the image, and installs the new build. */
static void test_delta_update(void **state)
{
    (void)state;
    char model[32], id[40], object[160];
    device_t d;
    image_t a, b;
    run_t r;
    h_make_model(model, sizeof model, "Delta");
    make_release(&h_g_srv, model, "1.1.0", DELTA_IMAGE_LEN, &a);
    device_running(model, &a, &d);
    make_release_of(&h_g_srv, model, "1.2.0", next_build(&a), a.len, &b);
    long long delta_size = wait_delta_ready(&b, &a);
    CHECK(delta_size > 0 && delta_size < (long long)b.len / 10, "a delta of %lld bytes for %d changed bytes",
          delta_size, DELTA_CHANGED);

    long long offers = h_metric("ota_delta_offers_total");
    long log_at = file_size(download_log());
    assign(&h_g_srv, &d, &b, id, sizeof id);
    const char *args[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "delta"), "used"),
              "want 1.2.0 applied from the delta");
    char line[96];
    snprintf(line, sizeof line, "delta: downloaded, %lld bytes", delta_size);
    CHECK_RUN(&r, strstr(r.err, line) != NULL, "no \"%s\" line", line);
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 1);
    expect_state(&d, "1.2.0", "a");
    expect_slot(&d, "a", &b);
    expect_slot(&d, "b", &a);
    expect_no_download(&d);
    CHECK(h_metric("ota_delta_offers_total") > offers, "the server counted no manifest with a delta");

    /* What was downloaded, as the server (fs) or the S3 server logged it: the delta object, not the image. */
    char *log = appended(download_log(), log_at);
    snprintf(object, sizeof object, "releases/%s/delta-%s", b.release_id, a.release_id);
    CHECK(strstr(log, object) != NULL, "the delta object %s was not fetched:\n%s", object, log);
    snprintf(object, sizeof object, "releases/%s/bin", b.release_id);
    CHECK(strstr(log, object) == NULL, "the full image %s was fetched too:\n%s", object, log);
    free(log);
    image_free(&a);
    image_free(&b);
}

/*
 * Every way a delta can fail ends with the new build installed from the full image, never a bad slot: the delta
 * corrupted on the way (--corrupt strikes the delta), a running slot that is no longer the image the delta was made
 * from; and a delta download cut short resumes with Range, as an image's does.
 */
static void test_delta_failures_fall_back(void **state)
{
    (void)state;
    char model[32], id[40], path[400];
    device_t corrupt, lost, cut;
    image_t a, b;
    run_t r;
    h_make_model(model, sizeof model, "DeltaFail");
    make_release(&h_g_srv, model, "2.0.0", DELTA_IMAGE_LEN, &a);
    device_running(model, &a, &corrupt);
    device_running(model, &a, &lost);
    device_running(model, &a, &cut);
    make_release_of(&h_g_srv, model, "2.0.1", next_build(&a), a.len, &b);
    long long delta_size = wait_delta_ready(&b, &a);

    assign(&h_g_srv, &corrupt, &b, id, sizeof id);
    const char *corrupt_args[] = {"--state", corrupt.dir, "run", "--once", "--corrupt", NULL};
    run_device(&r, corrupt_args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "delta"), "failed"),
              "--corrupt on the delta: want applied from the full image");
    CHECK_RUN(&r, strstr(r.err, "downloading the full image instead") != NULL, "no fallback line");
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 2);
    expect_slot(&corrupt, "a", &b);

    /* The running slot's bytes changed behind the device's back: state.json still names the old image. */
    snprintf(path, sizeof path, "%s/slot-b.bin", lost.dir);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL, "cannot open %s", path);
    fputs("not the image any more", f);
    fclose(f);
    assign(&h_g_srv, &lost, &b, id, sizeof id);
    const char *lost_args[] = {"--state", lost.dir, "run", "--once", NULL};
    run_device(&r, lost_args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "delta"), "failed"),
              "a changed base: want applied from the full image");
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 2);
    expect_slot(&lost, "a", &b);

    assign(&h_g_srv, &cut, &b, id, sizeof id);
    char cut_at[24];
    snprintf(cut_at, sizeof cut_at, "%lld", delta_size / 2);
    const char *cut_args[] = {"--state", cut.dir, "run", "--once", "--cut-after", cut_at, NULL};
    run_device(&r, cut_args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "delta"), "used"),
              "a cut delta download: want applied from the delta");
    char line[96];
    snprintf(line, sizeof line, "resuming at byte %s (HTTP 206)", cut_at);
    CHECK_RUN(&r, strstr(r.err, line) != NULL, "no Range resume of the delta from byte %s", cut_at);
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 1);
    expect_slot(&cut, "a", &b);
    expect_slot(&cut, "b", &a);
    image_free(&a);
    image_free(&b);
}

/* A heartbeat of `dev` that says it runs `version` with the image `sha256` (NULL: not said); the answer's "ota". */
static json_t *beat_with_sha(const h_device_t *dev, const char *version, const char *sha256, h_resp_t *r)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/devices/%s/heartbeat", dev->id);
    if (sha256 != NULL)
        h_json(&h_g_srv, "POST", path, dev->token, r, "{s:s, s:s}", "firmware_version", version, "firmware_sha256",
               sha256);
    else
        h_json(&h_g_srv, "POST", path, dev->token, r, "{s:s}", "firmware_version", version);
    EXPECT_STATUS(r, 200);
    json_t *ota = json_object_get(r->json, "ota");
    CHECK(json_is_object(ota), "no manifest: %s", BODY(r));
    return ota;
}

/*
 * The server builds a delta on first need: a device runs a release older than the three that release creation makes
 * deltas from. Its first delivery goes without one and asks for it; once built, a later delivery carries it, signed
 * (the stored signature is the one of the manifest with it). A SHA-256 that no release has gets no delta and asks for
 * none; a malformed one is 422.
 */
static void test_delta_on_first_need(void **state)
{
    (void)state;
    char model[32], sha[65], path[200];
    image_t old, mid[3], next;
    h_device_t dev;
    h_resp_t r = {0};
    h_make_model(model, sizeof model, "DeltaNeed");
    make_release(&h_g_srv, model, "3.0.0", 100000, &old);
    static const char *const versions[] = {"3.1.0", "3.2.0", "3.3.0"};
    for (int i = 0; i < 3; i++)
        make_release(&h_g_srv, model, versions[i], 1000, &mid[i]);
    make_release_of(&h_g_srv, model, "3.4.0", next_build(&old), old.len, &next);
    h_make_device(model, "3.0.0", &dev);
    h_sha256_hex(old.data, old.len, sha);
    char assignment[40];
    device_t d = {0};
    snprintf(d.id, sizeof d.id, "%s", dev.id);
    assign(&h_g_srv, &d, &next, assignment, sizeof assignment);

    /* A malformed SHA-256 is refused; an unknown one gets the manifest without a delta, and nothing is built. */
    snprintf(path, sizeof path, "/v1/devices/%s/heartbeat", dev.id);
    h_json(&h_g_srv, "POST", path, dev.token, &r, "{s:s, s:s}", "firmware_version", "3.0.0", "firmware_sha256", "ABC");
    EXPECT_ERROR(&r, 422, "validation_failed");
    h_resp_free(&r);
    char unknown[65];
    memset(unknown, 'e', 64);
    unknown[64] = '\0';
    json_t *ota = beat_with_sha(&dev, "3.0.0", unknown, &r);
    CHECK(json_object_get(ota, "delta") == NULL, "a delta for an unknown image: %s", BODY(&r));
    h_resp_free(&r);

    /* The image of 3.0.0: the first delivery asks, a later one carries the delta. */
    snprintf(path, sizeof path, "/v1/releases/%s/deltas", next.release_id);
    h_request(&h_g_srv, "GET", path, h_g_srv.admin_key, NULL, &r);
    EXPECT_STATUS(&r, 200);
    CHECK(json_array_size(json_object_get(r.json, "items")) == 3, "want the three newest older releases only: %s",
          BODY(&r));
    h_resp_free(&r);
    ota = beat_with_sha(&dev, "3.0.0", sha, &r);
    CHECK(json_object_get(ota, "delta") == NULL, "the first need already has a delta: %s", BODY(&r));
    h_resp_free(&r);
    long long size = wait_delta_ready(&next, &old);
    ota = beat_with_sha(&dev, "3.0.0", sha, &r);
    json_t *delta = json_object_get(ota, "delta");
    CHECK(json_is_object(delta) && h_streq(h_jstr(delta, "from_sha256"), sha) &&
              json_integer_value(json_object_get(delta, "size")) == size,
          "want the delta from 3.0.0's image: %s", BODY(&r));
    char *text = json_dumps(ota, JSON_COMPACT);
    ota_manifest_t m;
    CHECK(text != NULL && ota_manifest_decode(text, strlen(text), &m) == OTA_OK && m.has_delta,
          "the manifest does not decode: %s", text);
    free(text);
    h_resp_free(&r);
    h_request(&h_g_srv, "GET", "/v1/signing-key", NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    unsigned char key[64];
    int n = EVP_DecodeBlock(key, (const unsigned char *)h_jstr(r.json, "public_key"),
                            (int)strlen(h_jstr(r.json, "public_key")));
    CHECK(n >= 32, "the signing key: %s", BODY(&r));
    h_resp_free(&r);
    CHECK(ota_manifest_verify(&m, key) == OTA_OK, "the manifest with a delta does not verify");

    /* Without firmware_sha256 the same delivery goes without the delta. */
    ota = beat_with_sha(&dev, "3.0.0", NULL, &r);
    CHECK(json_object_get(ota, "delta") == NULL, "a delta without firmware_sha256: %s", BODY(&r));
    h_resp_free(&r);
    image_free(&old);
    image_free(&next);
    for (int i = 0; i < 3; i++)
        image_free(&mid[i]);
}

/*
 * A device of a rollout whose new image fails its first boot ends rolled_back, and that counts against the gate:
 * the rollout pauses, and the other device's undelivered assignment is taken back. (A rollback after the last
 * target finished is counted too, but a completed rollout has nothing left to pause.)
 */
static void test_rollout_rollback_counts(void **state)
{
    (void)state;
    char model[32], id[40];
    device_t d, other;
    image_t img;
    run_t run;
    h_make_model(model, sizeof model, "RolledBack");
    register_device(&h_g_srv, model, "1.0.0", &d);
    register_device(&h_g_srv, model, "1.0.0", &other);
    make_release(&h_g_srv, model, "1.1.0", 20000, &img);
    json_decref(h_create_rollout(img.release_id, "\"failure\": {\"max_percent\": 0, \"min_failures\": 1}", id));
    for (int waited = 0;; waited += 100) { /* the engine admits both targets */
        json_t *r = h_get_rollout(id);
        json_int_t pending = h_jint(json_object_get(r, "counts"), "pending");
        json_decref(r);
        if (pending == 2)
            break;
        CHECK(waited < 10000, "the targets were never admitted");
        sleep_ms(100);
    }
    const char *args[] = {"--state", d.dir, "run", "--once", "--fail-boot", NULL};
    run_device(&run, args);
    CHECK_RUN(&run, run.status == 3 && h_streq(rj_str(&run, "outcome"), "rolled_back"), "want a rollback");
    run_free(&run);
    json_t *r = h_get_rollout(id);
    json_t *counts = json_object_get(r, "counts");
    CHECK(h_jint(counts, "rolled_back") == 1 && h_jint(counts, "applied") == 0 &&
              h_streq(h_jstr(r, "status"), "paused") && h_streq(h_jstr(r, "paused_reason"), "failure_threshold"),
          "a rollback must count as a failure: %s", json_dumps(r, 0));
    json_decref(r);
    expect_state(&d, "1.0.0", "a");
    /* The other device's assignment was never delivered: the pause takes it back, and the device gets nothing. */
    for (int waited = 0;; waited += 100) {
        r = h_get_rollout(id);
        json_int_t blocked = h_jint(json_object_get(r, "counts"), "blocked");
        json_decref(r);
        if (blocked == 1)
            break;
        CHECK(waited < 10000, "the pause did not take back the other assignment");
        sleep_ms(100);
    }
    const char *other_args[] = {"--state", other.dir, "run", "--once", NULL};
    run_device(&run, other_args);
    CHECK_RUN(&run, run.status == 0, "want exit 0");
    run_free(&run);
    expect_state(&other, "1.0.0", "a");
    image_free(&img);
}

static void test_run_loop(void **state)
{
    (void)state;
    char model[32], id[40];
    device_t d;
    image_t img;
    run_t r;
    h_make_model(model, sizeof model, "Loop");
    register_device(&h_g_srv, model, "1.0.0", &d);
    make_release(&h_g_srv, model, "3.0.0-rc.1", 12345, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);
    const char *args[] = {"--state", d.dir, "run", "--max-heartbeats", "2", NULL};
    run_device(&r, args);
    CHECK_RUN(
        &r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "version"), "3.0.0-rc.1"),
        "run: want applied");
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 1);
    expect_state(&d, "3.0.0-rc.1", "b");
    image_free(&img);
}

/*
 * The device was created beforehand (an operator's POST /v1/devices, which showed its token once): register takes its
 * id and token instead of an API key, checks them with the server, and the device then updates like any other.
 */
static void test_register_created_device(void **state)
{
    (void)state;
    char model[32], id[40];
    h_device_t made;
    device_t d;
    image_t img;
    run_t r;
    h_make_model(model, sizeof model, "Created");
    make_device(model, &made, &d);
    register_by_token(&d, made.token, d.serial, model, &r);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "device_id"), made.id), "register --device-id: want exit 0");
    run_free(&r);
    expect_state(&d, "1.0.0", "a");

    make_release(&h_g_srv, model, "1.1.0", 30000, &img);
    assign(&h_g_srv, &d, &img, id, sizeof id);
    const char *args[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, args);
    CHECK_RUN(&r, r.status == 0 && h_streq(rj_str(&r, "outcome"), "applied") && h_streq(rj_str(&r, "version"), "1.1.0"),
              "run --once: want applied 1.1.0");
    run_free(&r);
    expect_assignment(id, "applied", NULL, 1, 1);
    expect_state(&d, "1.1.0", "b");
    expect_slot(&d, "b", &img);
    expect_server_version(&d, "1.1.0");
    image_free(&img);
}

/*
 * register --device-id --token refuses, with exit 1 and nothing written, a token that is not the device's (another
 * device's, an unknown one, a malformed one) and a serial or model other than the server's; with exit 2 both
 * credentials at once, or half of the second. The right token still works afterwards.
 */
static void test_register_by_token_refusals(void **state)
{
    (void)state;
    char model[32], unknown[64];
    h_device_t made, other;
    device_t d;
    run_t r;
    h_make_model(model, sizeof model, "Refused");
    make_device(model, &made, &d);
    h_make_device(model, "1.0.0", &other);
    h_unique(unknown, sizeof unknown, "otd_");
    const struct {
        const char *token, *serial, *model, *says;
    } refused[] = {
        {other.token, d.serial, model, "HTTP 403"},
        {unknown, d.serial, model, "HTTP 401"},
        {"otd_not a token", d.serial, model, "malformed device token"},
        {made.token, "SN-someone-else", model, "not serial \"SN-someone-else\""},
        {made.token, d.serial, "another-model", "of model another-model"},
    };
    for (size_t i = 0; i < ELEMS(refused); i++) {
        register_by_token(&d, refused[i].token, refused[i].serial, refused[i].model, &r);
        CHECK_RUN(&r, r.status == 1 && strstr(r.err, refused[i].says) != NULL, "refusal %zu: want exit 1 and \"%s\"", i,
                  refused[i].says);
        run_free(&r);
        expect_no_state(d.dir);
        CHECK(!file_exists(d.dir), "refusal %zu: %s was left behind", i, d.dir);
    }

    const char *both[] = {"--state",         d.dir,         "register", "--server",  h_g_srv.base_url, "--api-key",
                          h_g_srv.admin_key, "--device-id", d.id,       "--token",   made.token,       "--serial",
                          d.serial,          "--model",     model,      "--version", "1.0.0",          NULL};
    run_device(&r, both);
    CHECK_RUN(&r, r.status == 2 && strstr(r.err, "not both") != NULL, "--api-key with --token: want exit 2");
    run_free(&r);
    const char *half[] = {"--state",  d.dir,    "register", "--server", h_g_srv.base_url, "--device-id", d.id,
                          "--serial", d.serial, "--model",  model,      "--version",      "1.0.0",       NULL};
    run_device(&r, half);
    CHECK_RUN(&r, r.status == 2, "--device-id without --token: want exit 2");
    run_free(&r);
    expect_no_state(d.dir);

    register_by_token(&d, made.token, d.serial, model, &r);
    CHECK_RUN(&r, r.status == 0, "the device's own token: want exit 0");
    run_free(&r);
    expect_state(&d, "1.0.0", "a");
}

/* The command line's refusals. */
static void test_command_line_errors(void **state)
{
    (void)state;
    char model[32], dir[320];
    device_t d;
    run_t r;
    h_make_model(model, sizeof model, "Cli");
    register_device(&h_g_srv, model, "1.0.0", &d);

    /* The same state directory twice: refused, the first registration intact. */
    const char *again[] = {
        "--state",  d.dir,      "register", "--server", h_g_srv.base_url, "--api-key", h_g_srv.admin_key,
        "--serial", "SN-other", "--model",  model,      "--version",      "1.0.0",     NULL};
    run_device(&r, again);
    CHECK_RUN(&r, r.status == 1 && strstr(r.err, "registered already") != NULL, "second register: want exit 1");
    run_free(&r);
    expect_state(&d, "1.0.0", "a");

    /* A wrong API key: the server refuses, nothing is written. */
    snprintf(dir, sizeof dir, "%s/never", g_tmp);
    const char *badkey[] = {"--state",  dir,    "register", "--server", h_g_srv.base_url, "--api-key", "ota_wrong",
                            "--serial", "SN-x", "--model",  model,      "--version",      "1.0.0",     NULL};
    run_device(&r, badkey);
    CHECK_RUN(&r, r.status == 1 && strstr(r.err, "HTTP 401") != NULL, "bad key: want exit 1 with HTTP 401");
    run_free(&r);
    expect_no_state(dir);

    /* Not registered. */
    const char *unregistered[] = {"--state", dir, "run", "--once", NULL};
    run_device(&r, unregistered);
    CHECK_RUN(&r, r.status == 1 && strstr(r.err, "not registered") != NULL, "unregistered run: want exit 1");
    run_free(&r);

    /* Usage. */
    const char *usage1[] = {"--state", d.dir, "status", "--once", NULL};
    const char *usage2[] = {"run", "--once", NULL};
    const char *usage3[] = {"--state", d.dir, "run", "--cut-after", "lots", NULL};
    const char *usage4[] = {"--state", d.dir, "fly", NULL};
    const char *usage5[] = {"--state", d.dir, "run", "--clock-skew", "1h", NULL};
    const char *usage6[] = {"--state", d.dir, "run", "--clock-skew", "-99999999999", NULL};
    const char *usage7[] = {"--state", d.dir, "status", "--clock-skew", "60", NULL};
    const char *const *usages[] = {usage1, usage2, usage3, usage4, usage5, usage6, usage7};
    for (size_t i = 0; i < ELEMS(usages); i++) {
        run_device(&r, usages[i]);
        CHECK_RUN(&r, r.status == 2, "usage error %zu: want exit 2", i);
        run_free(&r);
    }

    /* A device deleted on the server: its token stops working; run --once says so. */
    char dpath[200];
    h_resp_t resp = {0};
    snprintf(dpath, sizeof dpath, "/v1/devices/%s", d.id);
    h_request(&h_g_srv, "DELETE", dpath, h_g_srv.admin_key, NULL, &resp);
    EXPECT_STATUS(&resp, 204);
    h_resp_free(&resp);
    const char *run_args[] = {"--state", d.dir, "run", "--once", NULL};
    run_device(&r, run_args);
    CHECK_RUN(&r, r.status == 1 && strstr(r.err, "heartbeat refused") != NULL, "deleted device: want exit 1");
    run_free(&r);
}

/* ---- the program ---------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ota-dev-XXXXXX");
    if (mkdtemp(g_tmp) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    h_pg_start(&h_g_pg);
#ifdef OTA_IT_S3
    h_s3_start(&g_s3, S3_BUCKET);
    h_server_start(&h_g_srv, &h_g_pg, h_s3_env(&g_s3));
#else
    h_server_start(&h_g_srv, &h_g_pg, NULL);
#endif
    return h_wait_ready(&h_g_srv) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    h_server_stop(&h_g_srv);
#ifdef OTA_IT_S3
    h_s3_stop(&g_s3);
#endif
    h_pg_destroy(&h_g_pg);
    const char *keep = getenv("OTA_TEST_KEEP");
    if (strncmp(g_tmp, "/tmp/ota-dev-", 13) == 0 && (keep == NULL || *keep == '\0' || strcmp(keep, "0") == 0))
        nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_and_switch_back),
        cmocka_unit_test(test_corrupt_image_fails),
        cmocka_unit_test(test_foreign_signature_fails),
        cmocka_unit_test(test_replay_to_other_device_refused),
        cmocka_unit_test(test_replay_of_old_manifest_refused),
        cmocka_unit_test(test_expired_manifest_refused),
        cmocka_unit_test(test_unsigned_downgrade_refused),
        cmocka_unit_test(test_cut_download_resumes),
        cmocka_unit_test(test_delta_update),
        cmocka_unit_test(test_delta_failures_fall_back),
        cmocka_unit_test(test_delta_on_first_need),
        cmocka_unit_test_teardown(test_expired_url_is_replaced, stop_other),
        cmocka_unit_test(test_recording_and_battery_defer),
        cmocka_unit_test(test_fail_boot_rolls_back),
        cmocka_unit_test(test_rollout_across_devices),
        cmocka_unit_test(test_rollout_rollback_counts),
        cmocka_unit_test(test_run_loop),
        cmocka_unit_test(test_command_line_errors),
        cmocka_unit_test(test_register_created_device),
        cmocka_unit_test(test_register_by_token_refusals),
    };
    /* OTA_TEST_FILTER=<glob> runs some tests only (while debugging). */
    cmocka_set_test_filter(getenv("OTA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
