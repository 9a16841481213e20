/*
 * Integration test harness (see harness.h).
 *
 * Why it looks the way it does:
 * - Every child is started with fork + execvpe and an explicit argv, never
 *   through a shell, so paths and SQL need no quoting.
 * - Children get the caller's environment minus every OTA_* and PG*
 *   variable, so a developer's exported settings cannot leak into a test.
 * - Everything started is recorded in static tables (copies, not pointers to
 *   the caller's structs, which may live on a stack that is gone by then).
 *   An atexit handler kills leftover servers, stops leftover clusters and
 *   removes the temporary directories (kept when OTA_TEST_KEEP is set); a
 *   handler for SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGABRT does the async-signal-safe
 *   part (SIGKILL the servers, SIGQUIT the postmasters). Servers also get
 *   PR_SET_PDEATHSIG so they die with the test even on SIGKILL.
 * - The fs blob directory and the manifest signing key live in the cluster's
 *   directory, not the server's, so a server restarted on the same cluster
 *   (or a second instance) sees the same state, as in a real deployment.
 * - OTA_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99") is put in front of
 *   every ota-server command line; the server timeouts grow WRAPPER_SLOWDOWN
 *   times then.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef OTA_SERVER_BIN
#error "OTA_SERVER_BIN must be defined to the path of the ota-server binary"
#endif

extern char **environ;

#define BODY_CAP (16u * 1024 * 1024)
#define REQUEST_TIMEOUT_MS 10000L
#define SERVER_START_MS 20000L
#define SERVER_STOP_MS 10000L
#define COMMAND_TIMEOUT_MS 120000L
#define PG_COMMAND_MS 90000L
#define HEALTH_PROBE_MS 1000L
#define LOG_DUMP_BYTES (1L << 20)
#define DEFAULT_PG_BINDIR "/usr/lib/postgresql/15/bin"
#define WRAPPER_SLOWDOWN 6 /* valgrind and friends start slowly */
#define MAX_CLUSTERS 16
#define MAX_SERVERS 64
#define MAX_WRAPPER_WORDS 16

typedef struct cluster_slot {
    bool used;
    bool running;
    char dir[256];
    char pidfile[300]; /* precomputed: read from a signal handler */
} cluster_slot_t;

typedef struct server_slot {
    bool used;
    pid_t pid; /* 0 once reaped */
    char log_path[300];
} server_slot_t;

static cluster_slot_t clusters[MAX_CLUSTERS];
static server_slot_t servers[MAX_SERVERS];
static pid_t owner_pid;
static char wrapper_buf[512];
static const char *wrapper_words[MAX_WRAPPER_WORDS];
static int wrapper_count;
static volatile sig_atomic_t in_fatal_signal;

/* ---- small utilities ---------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("harness: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(EXIT_FAILURE);
}

/** snprintf that dies instead of truncating. */
__attribute__((format(printf, 3, 4))) static void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, cap, f, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        die("internal: string too long for its buffer (%zu bytes)", cap);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

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

static bool is_root(void)
{
    return geteuid() == 0;
}

static bool keep_files(void)
{
    const char *k = getenv("OTA_TEST_KEEP");
    return k != NULL && *k != '\0' && strcmp(k, "0") != 0;
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    return fd;
}

/** Copies the last `tail` bytes of a file to stderr between banners. */
static void dump_file(const char *title, const char *path, long tail)
{
    FILE *f = fopen(path, "r");
    fprintf(stderr, "----- %s (%s) -----\n", title, path);
    if (f == NULL) {
        fprintf(stderr, "(cannot open: %s)\n", strerror(errno));
    } else {
        if (fseek(f, 0, SEEK_END) == 0) {
            long size = ftell(f);
            if (size > tail) {
                fseek(f, size - tail, SEEK_SET);
                fputs("[...]\n", stderr);
            } else {
                fseek(f, 0, SEEK_SET);
            }
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
    }
    fprintf(stderr, "----- end of %s -----\n", title);
    fflush(stderr);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "harness: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir[0] == '\0' || (strncmp(dir, "/tmp/ota-", 9) != 0 && strncmp(dir, "/dev/shm/ota-", 13) != 0))
        return; /* only ever what the tests created */
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void h_remove_tmp_dir(const char *dir)
{
    rm_rf(dir);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

void h_random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned char buf[64];
        size_t want = (n - i + 1) / 2;
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t got = getrandom(buf, want, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            die("getrandom: %s", strerror(errno));
        }
        for (ssize_t j = 0; j < got && i < n; j++) {
            out[i++] = digits[buf[j] >> 4];
            if (i < n)
                out[i++] = digits[buf[j] & 15];
        }
    }
    out[n] = '\0';
}

__attribute__((format(printf, 1, 2))) static char *xstrdupf(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (n < 0)
        die("internal: bad format \"%s\"", f);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static long scaled(long ms)
{
    return wrapper_count > 0 ? ms * WRAPPER_SLOWDOWN : ms;
}

/* ---- string vectors (argv, envp) ---------------------------------------- */

typedef struct strv {
    const char **v; /* NULL-terminated once anything was added */
    size_t n;
    size_t cap;
} strv_t;

static void strv_add(strv_t *s, const char *str)
{
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL)
            die("out of memory");
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

static void strv_addv(strv_t *s, const char *const *list)
{
    for (; list != NULL && *list != NULL; list++)
        strv_add(s, *list);
}

static void strv_free(strv_t *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq != NULL ? (size_t)(eq - entry) : strlen(entry);
}

static bool same_name(const char *a, const char *b)
{
    size_t n = name_len(a);
    return n == name_len(b) && memcmp(a, b, n) == 0;
}

static bool inherited(const char *entry)
{
    return strncmp(entry, "OTA_", 4) != 0 && strncmp(entry, "PG", 2) != 0;
}

/** The caller's environment minus OTA_* and PG*, then `defaults`, then `extra`; a later entry wins. */
static void env_build(strv_t *env, const char *const *defaults, const char *const *extra)
{
    for (char **e = environ; e != NULL && *e != NULL; e++)
        if (inherited(*e))
            strv_add(env, *e);
    strv_addv(env, defaults);
    for (; extra != NULL && *extra != NULL; extra++) {
        if (strchr(*extra, '=') == NULL)
            die("environment entry \"%s\" is not NAME=value", *extra);
        strv_add(env, *extra);
    }
    size_t kept = 0;
    for (size_t i = 0; i < env->n; i++) {
        bool replaced = false;
        for (size_t j = i + 1; j < env->n && !replaced; j++)
            replaced = same_name(env->v[i], env->v[j]);
        if (!replaced)
            env->v[kept++] = env->v[i];
    }
    env->n = kept;
    if (env->v != NULL)
        env->v[kept] = NULL;
}

static const char *env_get(const strv_t *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp(env->v[i], name, n) == 0 && env->v[i][n] == '=')
            return env->v[i] + n + 1;
    return NULL;
}

/** Wrapper words, the server binary, then `args`. */
static void server_argv(strv_t *argv, const char *const *args)
{
    for (int i = 0; i < wrapper_count; i++)
        strv_add(argv, wrapper_words[i]);
    strv_add(argv, OTA_SERVER_BIN);
    strv_addv(argv, args);
}

/* ---- child processes ---------------------------------------------------- */

enum { FD_NULL = -1, FD_INHERIT = -2 };

typedef struct child_spec {
    const char *const *argv;
    const char *const *envp;
    int out_fd; /* a descriptor, FD_NULL or FD_INHERIT */
    int err_fd;
    bool chdir_root; /* PostgreSQL's programs run as `postgres`, who may not reach our cwd */
} child_spec_t;

/** In the child: makes `target` refer to `fd`. */
static void redirect(int fd, int target)
{
    if (fd == FD_INHERIT)
        return;
    if (fd == FD_NULL)
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0 || dup2(fd, target) < 0)
        _exit(127);
}

/** fork + execvpe; returns the pid, or -1 (errno set) when fork fails. The child dies with us. */
static pid_t spawn(const child_spec_t *c)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    redirect(FD_NULL, STDIN_FILENO);
    redirect(c->out_fd, STDOUT_FILENO);
    redirect(c->err_fd, STDERR_FILENO);
    if (c->chdir_root && chdir("/") != 0)
        _exit(127);
    execvpe(c->argv[0], (char *const *)c->argv, (char *const *)c->envp);
    dprintf(STDERR_FILENO, "harness: cannot run %s: %s\n", c->argv[0], strerror(errno));
    _exit(127);
}

static int reap(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

/** Waits up to `timeout_ms` for `pid`; true (and its status) once it has exited. */
static bool wait_for(pid_t pid, long timeout_ms, int *status)
{
    long deadline = now_ms() + timeout_ms;
    long nap = 1;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR) {
            *status = W_EXITCODE(127, 0);
            return true;
        }
        if (now_ms() >= deadline)
            return false;
        sleep_ms(nap);
        if (nap < 20)
            nap *= 2;
    }
}

static const char *describe(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "wait status %#x", (unsigned)status);
    return buf;
}

/** Waits for a child; its exit code, or -1 when it was killed or timed out (then it is killed). */
static int finish(pid_t pid, const char *what, long timeout_ms)
{
    int status;
    if (!wait_for(pid, timeout_ms, &status)) {
        fprintf(stderr, "harness: %s still running after %ld ms; killing it\n", what, timeout_ms);
        kill(pid, SIGKILL);
        reap(pid);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/** Runs a command (as `postgres` when asked and root); its exit code or -1. */
static int run_cmd(const char *const *argv, bool as_postgres, int out_fd, int err_fd, long timeout_ms)
{
    strv_t av = {0}, env = {0};
    if (as_postgres && is_root()) {
        static const char *const runuser[] = {"runuser", "-u", "postgres", "--", NULL};
        strv_addv(&av, runuser);
    }
    strv_addv(&av, argv);
    env_build(&env, NULL, NULL);
    child_spec_t spec = {.argv = av.v, .envp = env.v, .out_fd = out_fd, .err_fd = err_fd, .chdir_root = as_postgres};
    pid_t pid = spawn(&spec);
    int saved = errno;
    strv_free(&av);
    strv_free(&env);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(saved));
        return -1;
    }
    return finish(pid, argv[0], timeout_ms);
}

/** Reads `fd` to its end into `out` (at most cap-1 bytes kept, NUL-terminated; the rest is dropped).
 *  False when `deadline` passed first. */
static bool drain(int fd, char *out, size_t cap, long deadline)
{
    size_t len = 0;
    bool done = false;
    char junk[4096];
    for (;;) {
        long left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        bool keep = out != NULL && len + 1 < cap;
        ssize_t n = read(fd, keep ? out + len : junk, keep ? cap - 1 - len : sizeof junk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            done = true;
            break;
        }
        if (keep)
            len += (size_t)n;
    }
    if (out != NULL && cap > 0)
        out[len] = '\0';
    return done;
}

/** Runs `spec` with its stdout captured into `out`; its exit code or -1. */
static int capture(const child_spec_t *spec, char *out, size_t cap, long timeout_ms)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe: %s", strerror(errno));
    child_spec_t s = *spec;
    s.out_fd = p[1];
    long deadline = now_ms() + timeout_ms;
    pid_t pid = spawn(&s);
    int saved = errno;
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        if (out != NULL && cap > 0)
            out[0] = '\0';
        fprintf(stderr, "harness: fork: %s\n", strerror(saved));
        return -1;
    }
    bool done = drain(p[0], out, cap, deadline);
    close(p[0]);
    long left = deadline - now_ms();
    return finish(pid, s.argv[0], done && left > 0 ? left : 0);
}

/* ---- bookkeeping for cleanup -------------------------------------------- */

static cluster_slot_t *cluster_find(const char *dir)
{
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (clusters[i].used && strcmp(clusters[i].dir, dir) == 0)
            return &clusters[i];
    return NULL;
}

static cluster_slot_t *cluster_add(const char *dir)
{
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        cluster_slot_t *s = &clusters[i];
        if (s->used)
            continue;
        memset(s, 0, sizeof *s);
        fmt(s->dir, sizeof s->dir, "%s", dir);
        fmt(s->pidfile, sizeof s->pidfile, "%s/data/postmaster.pid", dir);
        s->used = true;
        return s;
    }
    die("more than %d PostgreSQL clusters at once", MAX_CLUSTERS);
}

static void server_add(pid_t pid, const char *log_path)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        server_slot_t *s = &servers[i];
        if (s->used)
            continue;
        fmt(s->log_path, sizeof s->log_path, "%s", log_path);
        s->pid = pid;
        s->used = true;
        return;
    }
    kill(pid, SIGKILL);
    die("more than %d servers at once", MAX_SERVERS);
}

static void server_forget(pid_t pid)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (servers[i].used && servers[i].pid == pid) {
            servers[i].pid = 0;
            servers[i].used = false;
        }
    }
}

static void remove_dir(const char *dir)
{
    if (keep_files())
        fprintf(stderr, "harness: keeping %s (OTA_TEST_KEEP is set)\n", dir);
    else
        rm_rf(dir);
}

/* ---- PostgreSQL --------------------------------------------------------- */

static bool has_initdb(const char *dir)
{
    char path[320];
    int n = snprintf(path, sizeof path, "%s/initdb", dir);
    return n > 0 && (size_t)n < sizeof path && access(path, X_OK) == 0;
}

static bool bindir_from_pg_config(char *out, size_t cap)
{
    static const char *const argv[] = {"pg_config", "--bindir", NULL};
    strv_t env = {0};
    env_build(&env, NULL, NULL);
    child_spec_t spec = {.argv = argv, .envp = env.v, .err_fd = FD_NULL};
    int rc = capture(&spec, out, cap, 10000);
    strv_free(&env);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc == 0 && has_initdb(out))
        return true;
    out[0] = '\0';
    return false;
}

/** The newest /usr/lib/postgresql/<version>/bin with an initdb. */
static bool bindir_from_glob(char *out, size_t cap)
{
    static const char prefix[] = "/usr/lib/postgresql/";
    glob_t g;
    long best = -1;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
        return false;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        long version = strtol(p + sizeof prefix - 1, NULL, 10);
        if (version > best && access(p, X_OK) == 0) {
            best = version;
            fmt(out, cap, "%.*s", (int)(strlen(p) - strlen("/initdb")), p);
        }
    }
    globfree(&g);
    return best >= 0;
}

static const char *pg_bindir(void)
{
    static char dir[256];
    if (dir[0] != '\0')
        return dir;
    if (has_initdb(DEFAULT_PG_BINDIR))
        fmt(dir, sizeof dir, "%s", DEFAULT_PG_BINDIR);
    else if (!bindir_from_pg_config(dir, sizeof dir) && !bindir_from_glob(dir, sizeof dir))
        die("PostgreSQL's server programs (initdb) not found in " DEFAULT_PG_BINDIR
            ", pg_config --bindir or /usr/lib/postgresql/*/bin; run scripts/deps");
    return dir;
}

static void pg_bin(char *out, size_t cap, const char *prog)
{
    fmt(out, cap, "%s/%s", pg_bindir(), prog);
}

/** Runs a PostgreSQL program as `postgres` with its output appended to <dir>/setup.log. */
static bool run_logged(const char *dir, const char *const *argv)
{
    char path[300];
    fmt(path, sizeof path, "%s/setup.log", dir);
    int fd = open_log(path);
    int rc = run_cmd(argv, true, fd, fd, PG_COMMAND_MS);
    close(fd);
    return rc == 0;
}

__attribute__((noreturn)) static void pg_fail(const h_pg_t *pg, const char *what)
{
    char path[300];
    fmt(path, sizeof path, "%s/setup.log", pg->dir);
    dump_file("PostgreSQL programs' output", path, 64 * 1024);
    fmt(path, sizeof path, "%s/pg.log", pg->dir);
    dump_file("PostgreSQL server log", path, 64 * 1024);
    die("%s failed for the cluster in %s", what, pg->dir);
}

static void give_to_postgres(const char *dir)
{
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
        die("running as root but there is no `postgres` user to run PostgreSQL as (install postgresql)");
    if (chown(dir, pw->pw_uid, pw->pw_gid) != 0)
        die("chown %s: %s", dir, strerror(errno));
}

static bool pg_initdb(const h_pg_t *pg)
{
    char initdb[320], data[300];
    pg_bin(initdb, sizeof initdb, "initdb");
    fmt(data, sizeof data, "%s/data", pg->dir);
    const char *const argv[] = {initdb,     "-D",        data, "-A",   "trust",      "-U",
                                "postgres", "--no-sync", "-E", "UTF8", "--locale=C", NULL};
    return run_logged(pg->dir, argv);
}

static bool pg_ctl_start(const h_pg_t *pg)
{
    char ctl[320], data[300], log[300], opts[512];
    pg_bin(ctl, sizeof ctl, "pg_ctl");
    fmt(data, sizeof data, "%s/data", pg->dir);
    fmt(log, sizeof log, "%s/pg.log", pg->dir);
    fmt(opts, sizeof opts, "-k %s -p %d -c listen_addresses='' -c fsync=off -c max_connections=200", pg->socket_dir,
        pg->port);
    const char *const argv[] = {ctl, "start", "-D", data, "-w", "-t", "60", "-l", log, "-o", opts, NULL};
    return run_logged(pg->dir, argv);
}

/** pg_ctl stop -m `mode`; `quiet` (cleanup) sends its output nowhere. */
static bool pg_ctl_stop(const char *dir, const char *mode, bool quiet)
{
    char ctl[320], data[300];
    pg_bin(ctl, sizeof ctl, "pg_ctl");
    fmt(data, sizeof data, "%s/data", dir);
    const char *const argv[] = {ctl, "stop", "-D", data, "-w", "-t", "60", "-m", mode, NULL};
    if (quiet)
        return run_cmd(argv, true, FD_NULL, FD_NULL, PG_COMMAND_MS) == 0;
    return run_logged(dir, argv);
}

static bool pg_createdb(const h_pg_t *pg)
{
    char createdb[320], port[16];
    pg_bin(createdb, sizeof createdb, "createdb");
    fmt(port, sizeof port, "%d", pg->port);
    const char *const argv[] = {createdb, "-h", pg->socket_dir, "-p", port, "-U", "postgres", "ota", NULL};
    return run_logged(pg->dir, argv);
}

static cluster_slot_t *known_cluster(const h_pg_t *pg, const char *who)
{
    cluster_slot_t *s = cluster_find(pg->dir);
    if (s == NULL)
        die("%s: no cluster started in \"%s\"", who, pg->dir);
    return s;
}

/* ---- cleanup ------------------------------------------------------------ */

/** Async-signal-safe: the pid on the first line of a postmaster.pid, or 0. */
static pid_t read_pid(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    pid_t pid = 0;
    for (ssize_t i = 0; i < n && i < 10 && buf[i] >= '0' && buf[i] <= '9'; i++)
        pid = pid * 10 + (buf[i] - '0');
    return pid;
}

/* SA_RESETHAND: once this returns, the re-raised signal takes its default action. */
static void on_fatal_signal(int sig)
{
    if (getpid() == owner_pid && !in_fatal_signal) {
        in_fatal_signal = 1;
        for (int i = 0; i < MAX_SERVERS; i++)
            if (servers[i].used && servers[i].pid > 0)
                kill(servers[i].pid, SIGKILL);
        for (int i = 0; i < MAX_CLUSTERS; i++) {
            pid_t pid = clusters[i].used && clusters[i].running ? read_pid(clusters[i].pidfile) : 0;
            if (pid > 0)
                kill(pid, SIGQUIT);
        }
    }
    raise(sig);
}

static void cleanup_at_exit(void)
{
    if (getpid() != owner_pid)
        return;
    for (int i = 0; i < MAX_SERVERS; i++) {
        server_slot_t *s = &servers[i];
        if (!s->used || s->pid <= 0)
            continue;
        fprintf(stderr, "harness: killing leftover ota-server (pid %d, log %s)\n", (int)s->pid, s->log_path);
        kill(s->pid, SIGKILL);
        reap(s->pid);
        s->used = false;
    }
    for (int i = 0; i < MAX_CLUSTERS; i++) {
        cluster_slot_t *c = &clusters[i];
        if (!c->used)
            continue;
        if (c->running)
            pg_ctl_stop(c->dir, "immediate", true);
        c->running = false;
        remove_dir(c->dir);
        c->used = false;
    }
    curl_global_cleanup();
}

static void parse_wrapper(void)
{
    const char *w = getenv("OTA_TEST_WRAPPER");
    if (w == NULL)
        return;
    fmt(wrapper_buf, sizeof wrapper_buf, "%s", w);
    char *save = NULL;
    for (char *t = strtok_r(wrapper_buf, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        if (wrapper_count == MAX_WRAPPER_WORDS)
            die("OTA_TEST_WRAPPER has more than %d words", MAX_WRAPPER_WORDS);
        wrapper_words[wrapper_count++] = t;
    }
}

static void init_once(void)
{
    static const int fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT};
    if (owner_pid != 0)
        return;
    owner_pid = getpid();
    parse_wrapper();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    if (atexit(cleanup_at_exit) != 0)
        die("atexit failed");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &sa, NULL);
}

/* ---- PostgreSQL: public ------------------------------------------------- */

void h_pg_start(h_pg_t *pg)
{
    init_once();
    memset(pg, 0, sizeof *pg);
    fmt(pg->dir, sizeof pg->dir, "/tmp/ota-it-XXXXXX");
    if (mkdtemp(pg->dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    if (is_root())
        give_to_postgres(pg->dir);
    cluster_slot_t *slot = cluster_add(pg->dir);
    fmt(pg->socket_dir, sizeof pg->socket_dir, "%s", pg->dir);
    pg->port = free_port();
    fmt(pg->conninfo, sizeof pg->conninfo, "host=%s port=%d dbname=ota user=postgres", pg->socket_dir, pg->port);
    if (!pg_initdb(pg))
        pg_fail(pg, "initdb");
    slot->running = true; /* from here on, cleanup stops it */
    if (!pg_ctl_start(pg))
        pg_fail(pg, "pg_ctl start");
    if (!pg_createdb(pg))
        pg_fail(pg, "createdb ota");
}

void h_pg_stop(h_pg_t *pg)
{
    cluster_slot_t *slot = known_cluster(pg, "h_pg_stop");
    if (!pg_ctl_stop(pg->dir, "fast", false))
        pg_fail(pg, "pg_ctl stop");
    slot->running = false;
}

void h_pg_restart(h_pg_t *pg)
{
    cluster_slot_t *slot = known_cluster(pg, "h_pg_restart");
    slot->running = true;
    if (!pg_ctl_start(pg))
        pg_fail(pg, "pg_ctl start (restart)");
}

void h_pg_destroy(h_pg_t *pg)
{
    cluster_slot_t *slot = cluster_find(pg->dir);
    if (slot == NULL)
        return; /* never started, or destroyed already */
    if (slot->running && !pg_ctl_stop(pg->dir, "fast", false))
        pg_fail(pg, "pg_ctl stop");
    slot->running = false;
    remove_dir(slot->dir);
    slot->used = false;
    pg->dir[0] = '\0';
}

int h_pg_sql(h_pg_t *pg, const char *sql)
{
    init_once();
    char psql[320], port[16];
    pg_bin(psql, sizeof psql, "psql");
    fmt(port, sizeof port, "%d", pg->port);
    const char *const argv[] = {
        psql,       "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg->socket_dir, "-p", port, "-d", "ota", "-U",
        "postgres", "-c", sql,  NULL};
    return run_cmd(argv, false, FD_NULL, FD_INHERIT, PG_COMMAND_MS);
}

/* ---- HTTP --------------------------------------------------------------- */

typedef struct request {
    const char *method;
    const char *path; /* appended to base_url, or a whole http(s):// URL */
    const char *token;
    const char *body; /* NULL: none */
    size_t body_len;
    const char *content_type;
    long timeout_ms; /* 0: REQUEST_TIMEOUT_MS */
    bool quiet;      /* no note on transport errors */
} request_t;

typedef struct body_sink {
    h_resp_t *r;
    size_t cap;
    bool too_big;
} body_sink_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    body_sink_t *sink = arg;
    h_resp_t *r = sink->r;
    size_t n = size * nmemb;
    if (n > BODY_CAP - r->body_len) {
        sink->too_big = true;
        return 0;
    }
    if (r->body_len + n + 1 > sink->cap) {
        size_t cap = sink->cap ? sink->cap : 4096;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (p == NULL)
            die("out of memory");
        r->body = p;
        sink->cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

/** Copies the trimmed value of header `name` from `line` (not NUL-terminated) into `out`. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    snprintf(out, cap, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    h_resp_t *r = arg;
    size_t len = size * nmemb;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) /* a new response (after 1xx): forget the last */
        r->content_type[0] = r->allow[0] = r->retry_after[0] = '\0';
    header_value(line, len, "content-type", r->content_type, sizeof r->content_type);
    header_value(line, len, "allow", r->allow, sizeof r->allow);
    header_value(line, len, "retry-after", r->retry_after, sizeof r->retry_after);
    return len;
}

static struct curl_slist *add_header(struct curl_slist *list, char *line)
{
    struct curl_slist *l = curl_slist_append(list, line);
    free(line);
    if (l == NULL)
        die("out of memory");
    return l;
}

static struct curl_slist *request_headers(const request_t *rq)
{
    struct curl_slist *h = NULL;
    if (rq->token != NULL)
        h = add_header(h, xstrdupf("Authorization: Bearer %s", rq->token));
    if (rq->body != NULL) {
        const char *type = rq->content_type != NULL ? rq->content_type : "application/json";
        /* "Content-Type:" with no value makes libcurl send none (not even its form default). */
        h = add_header(h, type[0] != '\0' ? xstrdupf("Content-Type: %s", type) : xstrdupf("%s", "Content-Type:"));
        h = add_header(h, xstrdupf("%s", "Expect:")); /* no 100-continue round trip */
    }
    return h;
}

static void set_method(CURL *c, const request_t *rq)
{
    if (rq->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
    }
    if (strcmp(rq->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(rq->method, rq->body != NULL ? "POST" : "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
}

static void parse_json(h_resp_t *r)
{
    if (r->body_len == 0 || strncasecmp(r->content_type, "application/json", 16) != 0)
        return;
    json_error_t err;
    r->json = json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (r->json == NULL)
        fprintf(stderr, "harness: response declared %s but is not JSON (%s at %d:%d)\n", r->content_type, err.text,
                err.line, err.column);
}

/** One request on `c` (reset first, so its connection is kept); adds CURLINFO_NUM_CONNECTS to *connects. */
static void perform(CURL *c, const h_server_t *srv, const request_t *rq, h_resp_t *out, long *connects)
{
    memset(out, 0, sizeof *out);
    body_sink_t sink = {.r = out};
    bool absolute = strncmp(rq->path, "http://", 7) == 0 || strncmp(rq->path, "https://", 8) == 0;
    char *url = absolute ? xstrdupf("%s", rq->path) : xstrdupf("%s%s", srv->base_url, rq->path);
    struct curl_slist *headers = request_headers(rq);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms > 0 ? rq->timeout_ms : scaled(REQUEST_TIMEOUT_MS));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    set_method(c, rq);
    CURLcode rc = curl_easy_perform(c);
    if (sink.too_big)
        die("%s %s: response body larger than %u bytes", rq->method, url, BODY_CAP);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    else if (!rq->quiet)
        fprintf(stderr, "harness: %s %s: %s\n", rq->method, url, curl_easy_strerror(rc));
    if (connects != NULL) {
        long n = 0;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
        *connects += n;
    }
    curl_slist_free_all(headers);
    free(url);
    if (out->body == NULL) {
        out->body = xmalloc(1);
        out->body[0] = '\0';
    }
    parse_json(out);
}

static CURL *new_curl(void)
{
    init_once();
    CURL *c = curl_easy_init();
    if (c == NULL)
        die("curl_easy_init failed");
    return c;
}

void h_resp_free(h_resp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

void h_http(h_server_t *srv, const char *method, const char *path, const char *token, const char *body, size_t body_len,
            const char *content_type, h_resp_t *out)
{
    CURL *c = new_curl();
    request_t rq = {.method = method,
                    .path = path,
                    .token = token,
                    .body = body,
                    .body_len = body_len,
                    .content_type = content_type};
    perform(c, srv, &rq, out, NULL);
    curl_easy_cleanup(c);
}

void h_json(h_server_t *srv, const char *method, const char *path, const char *token, h_resp_t *out, const char *spec,
            ...)
{
    char *body = NULL;
    if (spec != NULL) {
        json_error_t err;
        va_list ap;
        va_start(ap, spec);
        json_t *j = json_vpack_ex(&err, 0, spec, ap);
        va_end(ap);
        if (j == NULL)
            die("h_json: cannot build a body from \"%s\": %s", spec, err.text);
        body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        if (body == NULL)
            die("h_json: json_dumps failed");
    }
    h_http(srv, method, path, token, body, body != NULL ? strlen(body) : 0, NULL, out);
    free(body);
}

const char *h_error_code(const h_resp_t *r)
{
    const char *code = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return code != NULL ? code : "";
}

long h_http_same_connection(h_server_t *srv, int count, const char *const *methods, const char *const *paths,
                            const char *const *bodies, const size_t *body_lens, const char *token, long *statuses)
{
    CURL *c = new_curl();
    long connects = 0;
    for (int i = 0; i < count; i++) {
        const char *body = bodies != NULL ? bodies[i] : NULL;
        size_t len = body == NULL ? 0 : body_lens != NULL ? body_lens[i] : strlen(body);
        request_t rq = {.method = methods[i], .path = paths[i], .token = token, .body = body, .body_len = len};
        h_resp_t r;
        perform(c, srv, &rq, &r, &connects);
        statuses[i] = r.status;
        h_resp_free(&r);
    }
    curl_easy_cleanup(c);
    return connects;
}

/* ---- the server --------------------------------------------------------- */

/** Port, key, URL and log path from the environment the server actually gets (extra_env may override). */
static void server_identity(h_server_t *srv, const strv_t *env, const h_pg_t *pg)
{
    const char *listen = env_get(env, "OTA_LISTEN");
    const char *colon = listen != NULL ? strrchr(listen, ':') : NULL;
    long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535)
        die("OTA_LISTEN \"%s\" names no port", listen != NULL ? listen : "");
    const char *key = env_get(env, "OTA_BOOTSTRAP_API_KEY");
    srv->port = (int)port;
    fmt(srv->base_url, sizeof srv->base_url, "http://127.0.0.1:%d", srv->port);
    fmt(srv->admin_key, sizeof srv->admin_key, "%s", key != NULL ? key : "");
    fmt(srv->log_path, sizeof srv->log_path, "%s/server-%d.log", pg->dir, srv->port);
}

static void launch_server(h_server_t *srv, const strv_t *env)
{
    static const char *const serve[] = {"serve", NULL};
    strv_t argv = {0};
    server_argv(&argv, serve);
    int fd = open_log(srv->log_path);
    child_spec_t spec = {.argv = argv.v, .envp = env->v, .out_fd = fd, .err_fd = fd};
    srv->pid = spawn(&spec);
    int saved = errno;
    close(fd);
    strv_free(&argv);
    if (srv->pid < 0)
        die("fork: %s", strerror(saved));
    server_add(srv->pid, srv->log_path);
}

__attribute__((noreturn)) static void server_fail(h_server_t *srv, const char *why)
{
    h_server_dump_log(srv);
    die("ota-server on port %d %s", srv->port, why);
}

static void wait_healthy(h_server_t *srv)
{
    long deadline = now_ms() + scaled(SERVER_START_MS);
    CURL *c = new_curl();
    request_t rq = {.method = "GET", .path = "/healthz", .timeout_ms = HEALTH_PROBE_MS, .quiet = true};
    for (;;) {
        int status;
        char why[128], buf[64];
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
            server_forget(srv->pid);
            srv->pid = 0;
            curl_easy_cleanup(c);
            fmt(why, sizeof why, "exited while starting (%s)", describe(status, buf, sizeof buf));
            server_fail(srv, why);
        }
        h_resp_t r;
        perform(c, srv, &rq, &r, NULL);
        long code = r.status;
        h_resp_free(&r);
        if (code == 200)
            break;
        if (now_ms() > deadline) {
            kill(srv->pid, SIGKILL);
            reap(srv->pid);
            server_forget(srv->pid);
            srv->pid = 0;
            curl_easy_cleanup(c);
            fmt(why, sizeof why, "did not answer GET /healthz with 200 within %ld ms (last: %ld)",
                scaled(SERVER_START_MS), code);
            server_fail(srv, why);
        }
        sleep_ms(50);
    }
    curl_easy_cleanup(c);
}

const char *h_server_env_all;

void h_server_start(h_server_t *srv, h_pg_t *pg, const char *const *extra_env)
{
    init_once();
    memset(srv, 0, sizeof *srv);
    int port = free_port();
    char hex[44], db[600], listen[64], key[96], storage[320], signing[320], public_url[80];
    h_random_hex(hex, 43);
    fmt(db, sizeof db, "OTA_DATABASE_URL=%s", pg->conninfo);
    fmt(listen, sizeof listen, "OTA_LISTEN=127.0.0.1:%d", port);
    fmt(key, sizeof key, "OTA_BOOTSTRAP_API_KEY=ota_%s", hex);
    fmt(storage, sizeof storage, "OTA_STORAGE_DIR=%s/blobs-%d", pg->dir, pg->port);
    fmt(signing, sizeof signing, "OTA_SIGNING_KEY=%s/signing-key.pem", pg->dir);
    fmt(public_url, sizeof public_url, "OTA_PUBLIC_URL=http://127.0.0.1:%d", port);
    /* Presence, signatures and re-delivery counts written every 200 ms instead of 5 s and 30 s, so tests that read
     * them wait less (H_DEFERRED_WRITE_WAIT_MS); it_heartbeat_writes runs the defaults too. The rollout engine
     * idles 100 ms instead of 1 s between ticks, for the same reason. */
    const char *const defaults[] = {db,
                                    listen,
                                    "OTA_THREADS=2",
                                    key,
                                    storage,
                                    signing,
                                    public_url,
                                    "OTA_DEFERRED_WRITE_MS=200",
                                    "OTA_DELIVERY_COUNT_MS=200",
                                    "OTA_ROLLOUT_TICK_MS=100",
                                    h_server_env_all /* last: when NULL, it ends the list */,
                                    NULL};
    strv_t env = {0};
    env_build(&env, defaults, extra_env);
    server_identity(srv, &env, pg);
    launch_server(srv, &env);
    strv_free(&env);
    wait_healthy(srv);
}

int h_server_stop(h_server_t *srv)
{
    if (srv->pid <= 0)
        die("h_server_stop: no running server (port %d)", srv->port);
    long limit = scaled(SERVER_STOP_MS);
    int status;
    kill(srv->pid, SIGTERM);
    if (!wait_for(srv->pid, limit, &status)) {
        fprintf(stderr, "harness: ota-server (pid %d) still running %ld ms after SIGTERM; sending SIGKILL\n",
                (int)srv->pid, limit);
        kill(srv->pid, SIGKILL);
        status = reap(srv->pid);
        h_server_dump_log(srv);
    }
    server_forget(srv->pid);
    srv->pid = 0;
    return status;
}

int h_run_server_cmd(h_pg_t *pg, const char *const *args, const char *const *extra_env, char *out, size_t cap)
{
    init_once();
    char db[600];
    const char *defaults[] = {NULL, NULL};
    if (pg != NULL) {
        fmt(db, sizeof db, "OTA_DATABASE_URL=%s", pg->conninfo);
        defaults[0] = db;
    }
    strv_t env = {0}, argv = {0};
    env_build(&env, defaults, extra_env);
    server_argv(&argv, args);
    child_spec_t spec = {.argv = argv.v, .envp = env.v, .err_fd = FD_INHERIT};
    int rc = capture(&spec, out, cap, scaled(COMMAND_TIMEOUT_MS));
    strv_free(&argv);
    strv_free(&env);
    return rc;
}

void h_server_dump_log(h_server_t *srv)
{
    dump_file("ota-server log", srv->log_path, LOG_DUMP_BYTES);
}

/* ---- S3 (s3rver) -------------------------------------------------------- */

/*
 * s3rver's npm package ships no bin/ script (its package.json names one that
 * is not in the tarball), so node runs its lib/cli.js through this one-liner;
 * it gets the script path, then the command line. With "-p 0" s3rver picks
 * the port and prints "S3rver listening on <address>:<port>", which we read
 * back from its log: no window in which another process can take the port.
 */
#ifndef OTA_SOURCE_DIR
#error "OTA_SOURCE_DIR must be defined to the source tree (where scripts/deps installs .deps/)"
#endif

#define S3RVER_PKG OTA_SOURCE_DIR "/.deps/node_modules/@20minutes/s3rver"
#define S3RVER_CLI S3RVER_PKG "/lib/cli.js"
#define S3RVER_LAUNCHER                                                                                                \
    "require(process.argv[1]).parseAsync(process.argv.slice(2), {from: 'user'})"                                       \
    ".catch((e) => { console.error(e); process.exit(1); });"
#define S3_START_MS 30000L
#define S3_STOP_MS 5000L
#define MAX_S3 8

typedef struct s3_slot {
    bool used;
    pid_t pid; /* 0 once reaped */
    char dir[256];
} s3_slot_t;

static s3_slot_t s3_slots[MAX_S3];

static void s3_cleanup_at_exit(void)
{
    if (getpid() != owner_pid)
        return;
    for (int i = 0; i < MAX_S3; i++) {
        s3_slot_t *s = &s3_slots[i];
        if (!s->used)
            continue;
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            reap(s->pid);
        }
        remove_dir(s->dir);
        s->used = false;
    }
}

static s3_slot_t *s3_slot_add(const h_s3_t *s3)
{
    static bool registered;
    if (!registered && atexit(s3_cleanup_at_exit) != 0)
        die("atexit failed");
    registered = true;
    for (int i = 0; i < MAX_S3; i++) {
        s3_slot_t *s = &s3_slots[i];
        if (s->used)
            continue;
        fmt(s->dir, sizeof s->dir, "%s", s3->dir);
        s->pid = 0;
        s->used = true;
        return s;
    }
    die("more than %d S3 servers at once", MAX_S3);
}

static s3_slot_t *s3_slot_find(const h_s3_t *s3)
{
    for (int i = 0; i < MAX_S3; i++)
        if (s3_slots[i].used && strcmp(s3_slots[i].dir, s3->dir) == 0)
            return &s3_slots[i];
    return NULL;
}

/** Dies unless s3rver 4.x is installed where scripts/deps puts it. */
static void s3rver_check_installed(void)
{
    json_error_t jerr;
    json_t *pkg = json_load_file(S3RVER_PKG "/package.json", 0, &jerr);
    const char *version = json_string_value(json_object_get(pkg, "version"));
    bool ok = version != NULL && strncmp(version, "4.", 2) == 0 && access(S3RVER_CLI, R_OK) == 0;
    char found[64];
    fmt(found, sizeof found, "%.40s", version != NULL ? version : "none");
    json_decref(pkg);
    if (!ok)
        die("the S3 test server @20minutes/s3rver 4.x is not installed in " S3RVER_PKG
            " (version found: %s); run scripts/deps",
            found);
}

__attribute__((noreturn)) static void s3_fail(h_s3_t *s3, const char *why)
{
    h_s3_dump_log(s3);
    die("s3rver in %s %s", s3->dir, why);
}

static void s3_launch(h_s3_t *s3)
{
    char data[300];
    fmt(data, sizeof data, "%s/data", s3->dir);
    /* s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider:
     * without it, a listing longer than one page (1000 keys) fails with 500. */
    const char *const argv[] = {"node",      "--openssl-legacy-provider",
                                "-e",        S3RVER_LAUNCHER,
                                S3RVER_CLI,  "-d",
                                data,        "-a",
                                "127.0.0.1", "-p",
                                "0",         "--configure-bucket",
                                s3->bucket,  NULL};
    strv_t env = {0};
    env_build(&env, NULL, NULL);
    int fd = open_log(s3->log_path);
    child_spec_t spec = {.argv = argv, .envp = env.v, .out_fd = fd, .err_fd = fd};
    s3->pid = spawn(&spec);
    int saved = errno;
    close(fd);
    strv_free(&env);
    if (s3->pid < 0)
        die("fork: %s", strerror(saved));
}

/** The port from s3rver's "listening on <address>:<port>" line, or 0 when not there yet. */
static int s3_port_from_log(const h_s3_t *s3)
{
    static const char marker[] = "S3rver listening on ";
    char buf[4096];
    int port = 0;
    FILE *f = fopen(s3->log_path, "r");
    if (f == NULL)
        return 0;
    while (port == 0 && fgets(buf, sizeof buf, f) != NULL) {
        const char *at = strstr(buf, marker);
        const char *colon = at != NULL ? strrchr(at, ':') : NULL;
        long p = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
        if (p > 0 && p <= 65535)
            port = (int)p;
    }
    fclose(f);
    return port;
}

/** 200 for a HEAD of the bucket, else false. */
static bool s3_bucket_answers(const h_s3_t *s3)
{
    char url[160];
    fmt(url, sizeof url, "%s/%s", s3->endpoint, s3->bucket);
    request_t rq = {.method = "HEAD", .path = url, .timeout_ms = HEALTH_PROBE_MS, .quiet = true};
    CURL *c = new_curl();
    h_resp_t r;
    perform(c, NULL, &rq, &r, NULL);
    curl_easy_cleanup(c);
    long status = r.status;
    h_resp_free(&r);
    return status == 200;
}

static void s3_exited(h_s3_t *s3, s3_slot_t *slot, int status)
{
    char why[160], buf[64];
    slot->pid = s3->pid = 0;
    fmt(why, sizeof why, "exited while starting (%s)%s", describe(status, buf, sizeof buf),
        WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "; is node installed? run scripts/deps" : "");
    s3_fail(s3, why);
}

static void s3_wait_ready(h_s3_t *s3, s3_slot_t *slot)
{
    long deadline = now_ms() + S3_START_MS;
    for (;;) {
        int status;
        if (waitpid(s3->pid, &status, WNOHANG) == s3->pid)
            s3_exited(s3, slot, status);
        if (s3->port == 0 && (s3->port = s3_port_from_log(s3)) != 0)
            fmt(s3->endpoint, sizeof s3->endpoint, "http://127.0.0.1:%d", s3->port);
        if (s3->port != 0 && s3_bucket_answers(s3))
            return;
        if (now_ms() > deadline) {
            kill(s3->pid, SIGKILL);
            reap(s3->pid);
            slot->pid = s3->pid = 0;
            s3_fail(s3, "did not answer a HEAD of its bucket with 200 within 30 s");
        }
        sleep_ms(50);
    }
}

static void s3_fill_env(h_s3_t *s3)
{
    static const char *const fixed[] = {"OTA_STORAGE=s3", "OTA_S3_REGION=" H_S3_REGION,
                                        "OTA_S3_ACCESS_KEY=" H_S3_ACCESS_KEY, "OTA_S3_SECRET_KEY=" H_S3_SECRET_KEY,
                                        "OTA_S3_PATH_STYLE=1"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        fmt(s3->env_text[n++], sizeof s3->env_text[0], "%s", fixed[i]);
    fmt(s3->env_text[n++], sizeof s3->env_text[0], "OTA_S3_ENDPOINT=%s", s3->endpoint);
    fmt(s3->env_text[n++], sizeof s3->env_text[0], "OTA_S3_BUCKET=%s", s3->bucket);
    for (size_t i = 0; i < H_S3_ENV_COUNT; i++)
        s3->env[i] = s3->env_text[i];
    s3->env[H_S3_ENV_COUNT] = NULL;
}

void h_s3_start(h_s3_t *s3, const char *bucket)
{
    init_once();
    memset(s3, 0, sizeof *s3);
    s3rver_check_installed();
    fmt(s3->bucket, sizeof s3->bucket, "%s", bucket);
    fmt(s3->dir, sizeof s3->dir, "/tmp/ota-s3-XXXXXX");
    if (mkdtemp(s3->dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    fmt(s3->log_path, sizeof s3->log_path, "%s/s3rver.log", s3->dir);
    s3_slot_t *slot = s3_slot_add(s3);
    s3_launch(s3);
    slot->pid = s3->pid;
    s3_wait_ready(s3, slot);
    s3_fill_env(s3);
}

void h_s3_stop(h_s3_t *s3)
{
    s3_slot_t *slot = s3_slot_find(s3);
    if (slot == NULL)
        return; /* never started, or stopped already */
    int status;
    if (s3->pid > 0) {
        kill(s3->pid, SIGTERM);
        if (!wait_for(s3->pid, S3_STOP_MS, &status)) {
            kill(s3->pid, SIGKILL);
            reap(s3->pid);
        }
    }
    s3->pid = slot->pid = 0;
    remove_dir(slot->dir);
    slot->used = false;
}

const char *const *h_s3_env(h_s3_t *s3)
{
    return s3->env;
}

void h_s3_dump_log(const h_s3_t *s3)
{
    dump_file("s3rver log", s3->log_path, 64 * 1024);
}
