/*
 * ota-device: the bundled device client (docs/device.md), on libota-device.
 *
 *   ota-device --state DIR register --server URL --api-key K --serial S --model M --version V
 *   ota-device --state DIR register --server URL --device-id ID --token T --serial S --model M --version V
 *   ota-device --state DIR run [--once] [conditions and faults]
 *   ota-device --state DIR status
 *
 * Log lines go to stderr ("ota-device: ..."), the progress bar too (only on
 * a terminal); standard output carries one JSON line per update outcome
 * (and, with --once, one line saying what the run did), for scripts.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bar.h"
#include "ota/base64.h"
#include "ota/device.h"
#include "state.h"
#include "util.h"

/* Exit statuses. */
enum {
    EXIT_OK = 0,         /* done (for --once: no update, deferred, or applied) */
    EXIT_ERROR = 1,      /* could not do it (server unreachable, refused, state unreadable) */
    EXIT_USAGE = 2,      /* bad command line */
    EXIT_FAILED = 3,     /* --once: the update failed a check or its first boot (reported to the server) */
    EXIT_INCOMPLETE = 4, /* --once: the download did not finish (kept; resumes next time) */
};

static volatile sig_atomic_t g_stop; /* SIGINT/SIGTERM: finish what is safe, then exit */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct options {
    const char *state, *command;
    const char *server, *api_key, *device_id, *token, *serial, *model, *version; /* register */
    bool once, recording, corrupt, fail_boot;                                    /* run */
    const char *battery;
    uint64_t cut_after, throttle, max_heartbeats;
    int64_t clock_skew;
    bool run_only_given; /* an option only `run` takes */
} options_t;

typedef struct program {
    ota_bar_t bar;
} program_t;

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  ota-device --state DIR register --server URL --api-key KEY --serial S --model M --version V\n"
          "  ota-device --state DIR register --server URL --device-id ID --token TOKEN\n"
          "                                  --serial S --model M --version V\n"
          "  ota-device --state DIR run [--once] [--max-heartbeats N]\n"
          "                             [--recording] [--battery usb|high|normal|low|dead]\n"
          "                             [--cut-after BYTES] [--corrupt] [--throttle BYTES_PER_S] [--fail-boot]\n"
          "                             [--clock-skew SECONDS]\n"
          "  ota-device --state DIR status\n"
          "\n"
          "register   pin the server's signing key, provision the device and create DIR\n"
          "  --api-key KEY      create the device on the server (an admin API key)\n"
          "  --device-id ID     or take a device an operator created (POST /v1/devices) with its token,\n"
          "  --token TOKEN      checked with the server, which must know it by --serial and --model\n"
          "run        heartbeat loop: download, verify and install what the server assigns\n"
          "  --once             one heartbeat and what it leads to, then the heartbeat that reports it\n"
          "  --max-heartbeats N stop after N heartbeats (tests)\n"
          "  --recording        report recording (the server defers updates)\n"
          "  --battery STATE    report this battery state (default normal, 80%)\n"
          "  --cut-after BYTES  drop the download's connection once after BYTES bytes\n"
          "  --corrupt          flip a bit of the downloaded image (the delta, when one is used) before it is\n"
          "                     checked\n"
          "  --throttle BPS     download at most BPS bytes per second (a slow link)\n"
          "  --fail-boot        a new firmware fails its health check after its first heartbeat, before it\n"
          "                     confirms itself: the device restarts and the bootloader falls back to the old slot\n"
          "  --clock-skew S     the device's clock runs S seconds ahead (negative: behind), as its manifest\n"
          "                     deadline (not_after) check sees it\n"
          "status     print the state as JSON\n"
          "\n"
          "exit status: 0 ok; 1 error; 2 usage; with --once also 3 update failed (a check or its first boot),\n"
          "             4 download incomplete\n",
          f);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

/* A number of seconds, with an optional '-', within +-100 years (a clock, not an overflow). */
static bool parse_i64(const char *s, int64_t *out)
{
    uint64_t magnitude;
    bool negative = s != NULL && *s == '-';
    if (!parse_u64(negative ? s + 1 : s, &magnitude) || magnitude > UINT64_C(3155760000))
        return false;
    *out = negative ? -(int64_t)magnitude : (int64_t)magnitude;
    return true;
}

/* register takes the device's description and one of two credentials: --api-key, or --device-id with --token. */
static int check_register(const options_t *o)
{
    if (!o->server || !o->serial || !o->model || !o->version) {
        fprintf(stderr, "ota-device: register needs --server, --serial, --model and --version\n");
        return -1;
    }
    bool adopt = o->device_id != NULL || o->token != NULL;
    if (o->api_key != NULL && adopt) {
        fprintf(stderr, "ota-device: register takes --api-key or --device-id and --token, not both\n");
        return -1;
    }
    if (o->api_key == NULL && (o->device_id == NULL || o->token == NULL)) {
        fprintf(stderr, "ota-device: register needs --api-key (to create the device) or --device-id and --token "
                        "(a device created already)\n");
        return -1;
    }
    return 0;
}

/* Options may come before or after the command; "--name value" or "--name=value". */
static int parse_args(int argc, char **argv, options_t *o)
{
    static const char *const valued[] = {"--state",    "--server",         "--api-key",    "--device-id", "--token",
                                         "--serial",   "--model",          "--version",    "--battery",   "--cut-after",
                                         "--throttle", "--max-heartbeats", "--clock-skew", NULL};
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        char name[32];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            exit(EXIT_OK);
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (o->command != NULL) {
                fprintf(stderr, "ota-device: unexpected argument \"%s\"\n", arg);
                return -1;
            }
            o->command = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (n >= sizeof name) {
            fprintf(stderr, "ota-device: unknown option %s\n", arg);
            return -1;
        }
        memcpy(name, arg, n);
        name[n] = '\0';
        bool takes_value = false;
        for (const char *const *v = valued; *v != NULL; v++)
            takes_value = takes_value || strcmp(*v, name) == 0;
        if (takes_value) {
            if (eq != NULL)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                fprintf(stderr, "ota-device: %s needs a value\n", name);
                return -1;
            }
        } else if (eq != NULL) {
            fprintf(stderr, "ota-device: %s takes no value\n", name);
            return -1;
        }
        if (strcmp(name, "--state") == 0)
            o->state = value;
        else if (strcmp(name, "--server") == 0)
            o->server = value;
        else if (strcmp(name, "--api-key") == 0)
            o->api_key = value;
        else if (strcmp(name, "--device-id") == 0)
            o->device_id = value;
        else if (strcmp(name, "--token") == 0)
            o->token = value;
        else if (strcmp(name, "--serial") == 0)
            o->serial = value;
        else if (strcmp(name, "--model") == 0)
            o->model = value;
        else if (strcmp(name, "--version") == 0)
            o->version = value;
        else if (strcmp(name, "--battery") == 0)
            o->battery = value, o->run_only_given = true;
        else if (strcmp(name, "--once") == 0)
            o->once = true, o->run_only_given = true;
        else if (strcmp(name, "--recording") == 0)
            o->recording = true, o->run_only_given = true;
        else if (strcmp(name, "--corrupt") == 0)
            o->corrupt = true, o->run_only_given = true;
        else if (strcmp(name, "--fail-boot") == 0)
            o->fail_boot = true, o->run_only_given = true;
        else if (strcmp(name, "--cut-after") == 0 || strcmp(name, "--throttle") == 0 ||
                 strcmp(name, "--max-heartbeats") == 0) {
            uint64_t *dst = name[2] == 'c' ? &o->cut_after : name[2] == 't' ? &o->throttle : &o->max_heartbeats;
            if (!parse_u64(value, dst)) {
                fprintf(stderr, "ota-device: %s needs a non-negative integer, not \"%s\"\n", name, value);
                return -1;
            }
            o->run_only_given = true;
        } else if (strcmp(name, "--clock-skew") == 0) {
            if (!parse_i64(value, &o->clock_skew)) {
                fprintf(stderr, "ota-device: %s needs an integer number of seconds, not \"%s\"\n", name, value);
                return -1;
            }
            o->run_only_given = true;
        } else {
            fprintf(stderr, "ota-device: unknown option %s\n", name);
            return -1;
        }
    }
    if (o->command == NULL) {
        fprintf(stderr, "ota-device: no command (register, run or status)\n");
        return -1;
    }
    if (o->state == NULL) {
        fprintf(stderr, "ota-device: --state DIR is required\n");
        return -1;
    }
    bool reg = strcmp(o->command, "register") == 0, run = strcmp(o->command, "run") == 0;
    if (!reg && !run && strcmp(o->command, "status") != 0) {
        fprintf(stderr, "ota-device: unknown command \"%s\"\n", o->command);
        return -1;
    }
    if (!run && o->run_only_given) {
        fprintf(stderr, "ota-device: --once, --max-heartbeats and the test conditions are options of run\n");
        return -1;
    }
    if (!reg && (o->server || o->api_key || o->device_id || o->token || o->serial || o->model || o->version)) {
        fprintf(stderr, "ota-device: --server, --api-key, --device-id, --token, --serial, --model and --version are "
                        "options of register\n");
        return -1;
    }
    return reg ? check_register(o) : 0;
}

/* Prints `j` (stolen) as one line on stdout. */
static void print_json(json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text == NULL) {
        fprintf(stderr, "ota-device: out of memory\n");
    } else {
        printf("%s\n", text);
        fflush(stdout);
    }
    free(text);
    json_decref(j);
}

/* ---- register --------------------------------------------------------------- */

static int cmd_register(const options_t *o)
{
    char err[512];
    ota_device_registration_t reg = {
        .state_dir = o->state,
        .server = o->server,
        .api_key = o->api_key,
        .device_id = o->device_id,
        .token = o->token,
        .serial = o->serial,
        .model = o->model,
        .version = o->version,
    };
    if (ota_device_register(&reg, err, sizeof err) != OTA_OK) {
        fprintf(stderr, "ota-device: register: %s\n", err);
        return EXIT_ERROR;
    }
    ota__state_t st;
    if (ota__state_load(o->state, &st, err, sizeof err) != OTA_OK) {
        fprintf(stderr, "ota-device: register: %s\n", err);
        return EXIT_ERROR;
    }
    fprintf(stderr, "ota-device: registered device %s (%s, %s %s) in %s\n", st.device_id, st.serial, st.model,
            st.version, o->state);
    print_json(json_pack("{s:s, s:s, s:s, s:s}", "device_id", st.device_id, "serial", st.serial, "model", st.model,
                         "version", st.version));
    return EXIT_OK;
}

/* ---- status ------------------------------------------------------------------- */

static json_t *slot_json(const ota__slot_t *s)
{
    if (!s->present)
        return json_null();
    return json_pack("{s:s, s:I, s:s}", "version", s->version, "size", (json_int_t)s->size, "sha256", s->sha256);
}

static int cmd_status(const options_t *o)
{
    char err[512], key[64], part[4096];
    char slot[2];
    ota__state_t st;
    ota__part_meta_t meta;
    struct stat sb;
    if (ota__state_load(o->state, &st, err, sizeof err) != OTA_OK) {
        fprintf(stderr, "ota-device: status: %s\n", err);
        return EXIT_ERROR;
    }
    ota_base64_encode(st.public_key, sizeof st.public_key, key);
    slot[0] = st.active_slot;
    slot[1] = '\0';
    json_t *download = json_null();
    if (ota__part_meta_load(o->state, OTA__PART_META, &meta) == OTA_OK &&
        ota__path(part, sizeof part, o->state, OTA__PART_FILE) == OTA_OK) {
        json_decref(download);
        download =
            json_pack("{s:s, s:s, s:I, s:I}", "assignment_id", meta.assignment_id, "version", meta.version, "bytes",
                      (json_int_t)(stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0), "total", (json_int_t)meta.size);
    }
    print_json(json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:{s:o, s:o}, s:s, s:o}", "device_id", st.device_id,
                         "version", st.version, "active_slot", slot, "trial", st.trial, "serial", st.serial, "model",
                         st.model, "server", st.server, "slots", "a", slot_json(&st.slots[0]), "b",
                         slot_json(&st.slots[1]), "public_key", key, "download", download));
    return EXIT_OK;
}

/* ---- run ------------------------------------------------------------------------- */

static int on_progress(void *arg, uint64_t bytes, uint64_t total)
{
    program_t *p = arg;
    ota_bar_update(&p->bar, bytes, total);
    return g_stop ? 1 : 0;
}

static void on_log(void *arg, const char *line)
{
    program_t *p = arg;
    ota_bar_clear(&p->bar);
    fprintf(stderr, "ota-device: %s\n", line);
}

static int battery_percent(const char *state)
{
    static const struct {
        const char *state;
        int percent;
    } table[] = {{"usb", 100}, {"high", 90}, {"normal", 80}, {"low", 10}, {"dead", 0}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].state, state) == 0)
            return table[i].percent;
    return -1;
}

/* Sleeps `s` seconds or until a signal asks to stop. */
static void wait_interval(long s)
{
    int64_t until = ota__now_ms() + (int64_t)s * 1000;
    while (!g_stop) {
        int64_t left = until - ota__now_ms();
        if (left <= 0)
            return;
        ota__sleep_ms(left < 200 ? (long)left : 200L);
    }
}

static void print_outcome(const ota_device_t *dev, const char *outcome, const ota_manifest_t *m,
                          const ota_device_result_t *r, const char *deferred)
{
    char slot[2] = {ota_device_active_slot(dev), '\0'};
    json_t *j =
        json_pack("{s:s, s:s, s:s}", "outcome", outcome, "version", ota_device_version(dev), "active_slot", slot);
    if (j == NULL) {
        print_json(NULL);
        return;
    }
    if (m != NULL) {
        json_object_set_new(j, "assignment_id", json_string(m->assignment_id));
        json_object_set_new(j, "target_version", json_string(m->version));
    }
    if (r != NULL) {
        if (r->error[0] != '\0')
            json_object_set_new(j, "error", json_string(r->error));
        json_object_set_new(j, "bytes", json_integer((json_int_t)r->bytes));
        json_object_set_new(j, "total", json_integer((json_int_t)r->total));
        json_object_set_new(j, "retries", json_integer(r->retries));
        json_object_set_new(j, "resumes", json_integer(r->resumes));
        json_object_set_new(j, "url_refreshes", json_integer(r->url_refreshes));
        json_object_set_new(j, "delta", json_string(ota_device_delta_name(r->delta)));
    }
    if (deferred != NULL)
        json_object_set_new(j, "deferred", json_string(deferred));
    print_json(j);
}

/*
 * Once a heartbeat was answered, a firmware on trial knows it runs and reaches the server: the end of its health
 * check. It confirms itself; with --fail-boot it fails before confirming, the device restarts, and the bootloader
 * falls back to the previous slot (outcome rolled_back). Returns 1 when it fell back, 0 when not, -1 on an error
 * (ota_device_errmsg says which).
 */
static int check_health(program_t *p, ota_device_t *dev, const options_t *o)
{
    char tried[OTA_SEMVER_MAX + 1], slot[2] = {0};
    bool fell_back = false;
    if (!ota_device_on_trial(dev))
        return 0;
    if (!o->fail_boot)
        return ota_device_confirm(dev) == OTA_OK ? 0 : -1;
    snprintf(tried, sizeof tried, "%s", ota_device_version(dev));
    on_log(p, "health check failed (--fail-boot): restarting before the firmware confirms itself");
    if (ota_device_restart(dev, &fell_back) != OTA_OK)
        return -1;
    if (!fell_back)
        return 0;
    slot[0] = ota_device_active_slot(dev);
    print_json(json_pack("{s:s, s:s, s:s, s:s}", "outcome", "rolled_back", "version", ota_device_version(dev),
                         "active_slot", slot, "failed_version", tried));
    return 1;
}

/* A heartbeat and the health check it may end; a fallback is told at once, by one more heartbeat. */
static ota_err_t beat(program_t *p, ota_device_t *dev, const options_t *o, ota_device_answer_t *answer, uint64_t *beats,
                      bool *fell_back)
{
    *fell_back = false;
    ota_err_t rc = ota_device_heartbeat(dev, answer);
    (*beats)++;
    if (rc != OTA_OK)
        return rc;
    int health = check_health(p, dev, o);
    if (health <= 0)
        return health < 0 ? OTA_ERR_IO : OTA_OK;
    *fell_back = true;
    rc = ota_device_heartbeat(dev, answer);
    (*beats)++;
    return rc;
}

static int cmd_run(const options_t *o)
{
    program_t prog;
    ota_device_config_t cfg;
    ota_err_t rc;
    int status = EXIT_OK;
    uint64_t beats = 0;
    ota_device_answer_t *answer = NULL;
    ota_device_result_t result;
    ota_device_t *dev = NULL;

    ota_bar_init(&prog.bar, stderr);
    ota_device_config_init(&cfg);
    cfg.state_dir = o->state;
    cfg.conditions.connectivity = "wifi";
    cfg.conditions.recording = o->recording;
    cfg.conditions.battery_state = o->battery != NULL ? o->battery : "normal";
    cfg.conditions.battery_percent = battery_percent(cfg.conditions.battery_state);
    if (cfg.conditions.battery_percent < 0) {
        fprintf(stderr, "ota-device: --battery must be usb, high, normal, low or dead\n");
        return EXIT_USAGE;
    }
    cfg.faults.cut_after = o->cut_after;
    cfg.faults.corrupt = o->corrupt;
    cfg.faults.throttle_bps = o->throttle;
    cfg.faults.clock_skew_s = o->clock_skew;
    cfg.on_progress = on_progress;
    cfg.progress_arg = &prog;
    cfg.on_log = on_log;
    cfg.log_arg = &prog;

    if ((dev = ota_device_new(&cfg, &rc)) == NULL) {
        fprintf(stderr, "ota-device: cannot open the device in %s: %s%s\n", o->state, ota_strerror(rc),
                rc == OTA_ERR_NOT_FOUND     ? " (not registered: run register first)"
                : rc == OTA_ERR_UNAVAILABLE ? " (another ota-device has it open)"
                                            : "");
        return EXIT_ERROR;
    }
    if ((answer = malloc(sizeof *answer)) == NULL) {
        fprintf(stderr, "ota-device: out of memory\n");
        status = EXIT_ERROR;
        goto Exit;
    }
    long interval = 60;
    bool fell_back;
    while (!g_stop) {
        rc = beat(&prog, dev, o, answer, &beats, &fell_back);
        if (rc != OTA_OK) {
            on_log(&prog, ota_device_errmsg(dev));
            if (o->once || rc == OTA_ERR_INVALID || rc == OTA_ERR_NOT_FOUND) {
                status = EXIT_ERROR; /* refused: a device that the server does not accept cannot go on */
                goto Exit;
            }
        } else if (fell_back && o->once) {
            status = EXIT_FAILED;
            goto Exit;
        } else {
            interval = answer->interval_s;
            if (answer->has_manifest) {
                ota_manifest_t *m = &answer->manifest;
                rc = ota_device_apply(dev, m, &result);
                ota_bar_clear(&prog.bar);
                if (rc != OTA_OK)
                    on_log(&prog, ota_device_errmsg(dev));
                print_outcome(dev, ota_device_outcome_name(result.outcome), m, &result, NULL);
                if (o->once)
                    status = result.outcome == OTA_DEVICE_APPLIED  ? EXIT_OK
                             : result.outcome == OTA_DEVICE_FAILED ? EXIT_FAILED
                                                                   : EXIT_INCOMPLETE;
                /* The heartbeat that tells the server: the new version (and, should the new firmware fail its
                   health check, the old one), or the failure, or the progress. */
                ota_device_answer_t *next = malloc(sizeof *next);
                if (next == NULL) {
                    on_log(&prog, "out of memory");
                    status = EXIT_ERROR;
                    goto Exit;
                }
                rc = beat(&prog, dev, o, next, &beats, &fell_back);
                free(next);
                if (rc != OTA_OK) {
                    on_log(&prog, ota_device_errmsg(dev));
                    if (o->once) {
                        status = EXIT_ERROR;
                        goto Exit;
                    }
                }
                if (o->once) {
                    if (fell_back)
                        status = EXIT_FAILED;
                    goto Exit;
                }
            } else if (o->once) {
                print_outcome(dev, answer->deferred[0] != '\0' ? "deferred" : "none", NULL, NULL,
                              answer->deferred[0] != '\0' ? answer->deferred : NULL);
                goto Exit;
            }
        }
        if (o->max_heartbeats > 0 && beats >= o->max_heartbeats)
            break;
        wait_interval(interval);
    }
Exit:
    free(answer);
    ota_device_free(dev);
    return status;
}

int main(int argc, char **argv)
{
    options_t o;
    int status;
    struct sigaction sa;
    if (parse_args(argc, argv, &o) != 0) {
        fputs("(ota-device --help shows the usage)\n", stderr);
        return EXIT_USAGE;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* libota-device needs libcurl initialized once per process, before anything else. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ota-device: cannot initialize libcurl\n");
        return EXIT_ERROR;
    }
    if (strcmp(o.command, "register") == 0)
        status = cmd_register(&o);
    else if (strcmp(o.command, "status") == 0)
        status = cmd_status(&o);
    else
        status = cmd_run(&o);
    curl_global_cleanup();
    return status;
}
