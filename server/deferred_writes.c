#include "deferred_writes.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "log.h"
#include "ota/manifest.h"

/* How long ota__deferred_writes_stop waits for the last writes, in ms. */
#define STOP_WAIT_MS 2000

/*
 * Rows per statement. A statement holds its rows' locks until it commits (a heartbeat that must write one of
 * those devices waits), so it is kept short; the next chunk goes as soon as one answers.
 */
#define CHUNK 200

typedef enum { KIND_DEVICE, KIND_ASSIGNMENT } kind_t;

/* An open-addressing table from (kind, id) to what is to be written for that row. */
typedef struct slot {
    bool used;
    kind_t kind;
    char id[OTA_UUID_LEN + 1];
    uint64_t seen_ms;                                   /* device: when last seen (monotonic clock) */
    uint32_t n;                                         /* assignment: re-deliveries */
    char signature[OTA_MANIFEST_SIGNATURE_B64_LEN + 1]; /* assignment: "" or a signature to store */
} slot_t;

typedef struct table {
    slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t used;
} table_t;

struct ota_deferred_writes {
    ota_worker_t *worker;
    ota_db_t *db;          /* our own connection: a write never holds up the heartbeats on worker->db */
    h2o_timeout_t timeout; /* our own, never in a request's pool (see ../shared/notes) */
    h2o_timeout_entry_t entry;
    table_t counting; /* kept since the last write began */
    table_t sending;  /* being written, chunk by chunk: slots [chunk_start, chunk_end) are in flight */
    size_t chunk_start, chunk_end;
    bool in_flight;
    bool stopping; /* no new chunk is sent */
};

static size_t hash_slot(kind_t kind, const char *id)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind; /* FNV-1a */
    for (size_t i = 0; i < OTA_UUID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return (size_t)h;
}

static void table_put(table_t *t, const slot_t *add);

static void table_grow(table_t *t)
{
    table_t bigger = {.cap = t->cap != 0 ? t->cap * 2 : 64};
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (bigger.slots == NULL)
        h2o_fatal("out of memory");
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].used)
            table_put(&bigger, &t->slots[i]);
    free(t->slots);
    *t = bigger;
}

/*
 * Merges `add` into its row's slot: counts add up, a signature replaces an older one, the later of two
 * sightings stands.
 */
static void table_put(table_t *t, const slot_t *add)
{
    if ((t->used + 1) * 2 > t->cap)
        table_grow(t);
    size_t mask = t->cap - 1;
    for (size_t i = hash_slot(add->kind, add->id) & mask;; i = (i + 1) & mask) {
        slot_t *s = &t->slots[i];
        if (!s->used) {
            *s = *add;
            s->used = true;
            t->used++;
            return;
        }
        if (s->kind == add->kind && memcmp(s->id, add->id, OTA_UUID_LEN) == 0) {
            s->n += add->n;
            if (add->signature[0] != '\0')
                memcpy(s->signature, add->signature, sizeof s->signature);
            if (add->seen_ms > s->seen_ms)
                s->seen_ms = add->seen_ms;
            return;
        }
    }
}

static void table_clear(table_t *t)
{
    if (t->used != 0)
        memset(t->slots, 0, t->cap * sizeof *t->slots);
    t->used = 0;
}

static void table_free(table_t *t)
{
    free(t->slots);
    *t = (table_t){0};
}

/* Puts the slots [from, cap) of `t` back into `into` (what a failed write did not store). */
static void table_merge(table_t *into, const table_t *t, size_t from)
{
    for (size_t i = from; i < t->cap; i++)
        if (t->slots[i].used)
            table_put(into, &t->slots[i]);
}

static void write_chunk(ota_deferred_writes_t *w);

static void on_written(void *arg, const PGresult *res)
{
    ota_deferred_writes_t *w = arg;
    w->in_flight = false;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (!w->stopping)
            ota_log_warn("cannot write presence and re-delivery counts (kept for the next try): %s",
                         res != NULL ? PQresultErrorMessage(res) : "the database went away");
        table_merge(&w->counting, &w->sending, w->chunk_start);
        table_clear(&w->sending);
    } else if (w->chunk_end < w->sending.cap) {
        w->chunk_start = w->chunk_end;
        if (!w->stopping)
            write_chunk(w);
    } else {
        table_clear(&w->sending);
    }
}

/*
 * The parameters of one chunk of ota_write_deferred(), as array literals: device ids and the ages of their
 * sightings in ms, then assignment ids, their re-delivery counts and signatures ("..." or NULL).
 */
typedef struct chunk {
    char devices[CHUNK * (OTA_UUID_LEN + 1) + 3];
    char ages[CHUNK * 11 + 3];
    char assignments[CHUNK * (OTA_UUID_LEN + 1) + 3];
    char counts[CHUNK * 11 + 3];
    char signatures[CHUNK * (OTA_MANIFEST_SIGNATURE_B64_LEN + 3) + 3];
} chunk_t;

/* Appends to a sized buffer; the chunk's buffers are sized for CHUNK entries, so nothing is ever cut. */
typedef struct text {
    char *base;
    size_t len, cap;
} text_t;

static void append(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->base + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < t->cap - t->len ? (size_t)n : t->cap - t->len - 1;
}

/* The separator before an array's next element: "{" before the first. */
static const char *sep(const text_t *t)
{
    return t->len == 0 ? "{" : ",";
}

/* Closes an array literal ("{}" when it has no element). */
static void close_array(text_t *t)
{
    append(t, t->len == 0 ? "{}" : "}");
}

/*
 * Writes up to CHUNK used slots of `t` from `*pos` into `c` and moves `*pos` past them; false when there are
 * none. `now_ms` (monotonic) turns each sighting into its age.
 */
static bool format_chunk(const table_t *t, size_t *pos, uint64_t now_ms, chunk_t *c)
{
    text_t devices = {c->devices, 0, sizeof c->devices}, ages = {c->ages, 0, sizeof c->ages},
           assignments = {c->assignments, 0, sizeof c->assignments}, counts = {c->counts, 0, sizeof c->counts},
           signatures = {c->signatures, 0, sizeof c->signatures};
    size_t taken = 0, i = *pos;
    for (; i < t->cap && taken < CHUNK; i++) {
        const slot_t *s = &t->slots[i];
        if (!s->used)
            continue;
        if (s->kind == KIND_DEVICE) {
            uint64_t age = now_ms > s->seen_ms ? now_ms - s->seen_ms : 0;
            append(&ages, "%s%u", sep(&ages), (unsigned)(age < UINT32_MAX / 2 ? age : UINT32_MAX / 2));
            append(&devices, "%s%s", sep(&devices), s->id);
        } else {
            append(&counts, "%s%u", sep(&counts), (unsigned)s->n);
            if (s->signature[0] != '\0')
                append(&signatures, "%s\"%s\"", sep(&signatures), s->signature);
            else
                append(&signatures, "%sNULL", sep(&signatures));
            append(&assignments, "%s%s", sep(&assignments), s->id);
        }
        taken++;
    }
    *pos = i;
    if (taken == 0)
        return false;
    text_t *arrays[] = {&devices, &ages, &assignments, &counts, &signatures};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        close_array(arrays[k]);
    return true;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sends the chunk of `sending` that starts at chunk_start; when it has none left, `sending` is done. */
static void write_chunk(ota_deferred_writes_t *w)
{
    chunk_t chunk; /* ~36 KB; libpq copies the parameters */
    size_t end = w->chunk_start;
    if (!format_chunk(&w->sending, &end, monotonic_ms(), &chunk)) {
        table_clear(&w->sending);
        return;
    }
    w->chunk_end = end;
    const char *params[] = {chunk.devices,   chunk.ages,       chunk.assignments,
                            chunk.counts,    chunk.signatures, w->worker->signing_key->public_base64};
    if (ota__db_query(w->db, OTA_STMT_WRITE_DEFERRED, params, on_written, w) == OTA_OK) {
        w->in_flight = true;
    } else {
        table_merge(&w->counting, &w->sending, w->chunk_start);
        table_clear(&w->sending);
    }
}

/* Starts writing what is kept, unless a write is under way or nothing is kept. */
static void write_kept(ota_deferred_writes_t *w)
{
    if (w->in_flight || w->sending.used != 0 || w->counting.used == 0 || !ota__db_ready(w->db))
        return;
    table_t t = w->sending; /* empty */
    w->sending = w->counting;
    w->counting = t;
    w->chunk_start = 0;
    write_chunk(w);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ota_deferred_writes_t *w = H2O_STRUCT_FROM_MEMBER(ota_deferred_writes_t, entry, entry);
    write_kept(w);
    h2o_timeout_link(w->worker->loop, &w->timeout, &w->entry);
}

ota_deferred_writes_t *ota__deferred_writes_start(ota_worker_t *worker)
{
    ota_deferred_writes_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        h2o_fatal("out of memory");
    w->worker = worker;
    w->db = ota__db_create(worker->loop, worker->cfg, false);
    if (w->db == NULL)
        h2o_fatal("out of memory");
    w->entry.cb = on_tick;
    h2o_timeout_init(worker->loop, &w->timeout, (uint64_t)worker->cfg->deferred_write_ms);
    h2o_timeout_link(worker->loop, &w->timeout, &w->entry);
    return w;
}

/* Keeps `add` (its id given as `id`, checked to be a UUID's length). */
static void keep(ota_deferred_writes_t *w, slot_t *add, const char *id)
{
    if (strlen(id) != OTA_UUID_LEN) {
        ota_log_error("not an id: %s", id);
        return;
    }
    memcpy(add->id, id, OTA_UUID_LEN + 1);
    table_put(&w->counting, add);
}

void ota__deferred_writes_presence(ota_deferred_writes_t *w, const char *device_id)
{
    slot_t s = {.kind = KIND_DEVICE, .seen_ms = monotonic_ms()};
    keep(w, &s, device_id);
}

void ota__deferred_writes_redelivery(ota_deferred_writes_t *w, const char *assignment_id)
{
    slot_t s = {.kind = KIND_ASSIGNMENT, .n = 1};
    keep(w, &s, assignment_id);
}

void ota__deferred_writes_signature(ota_deferred_writes_t *w, const char *assignment_id, const char *signature)
{
    slot_t s = {.kind = KIND_ASSIGNMENT};
    if (strlen(signature) != OTA_MANIFEST_SIGNATURE_B64_LEN) {
        ota_log_error("not a signature: %s", signature);
        return;
    }
    memcpy(s.signature, signature, OTA_MANIFEST_SIGNATURE_B64_LEN + 1);
    keep(w, &s, assignment_id);
}

void ota__deferred_writes_stop(ota_deferred_writes_t *w)
{
    h2o_timeout_unlink(&w->entry);
    h2o_timeout_dispose(w->worker->loop, &w->timeout);
    uint64_t deadline = monotonic_ms() + STOP_WAIT_MS;
    while ((w->in_flight || w->counting.used > 0) && monotonic_ms() < deadline) {
        write_kept(w); /* when not connected (yet), the loop runs until it is or the deadline passes */
        h2o_evloop_run(w->worker->loop, 100);
    }
    w->stopping = true;
    ota__db_destroy(w->db); /* a statement still in flight is answered NULL now: its rows go back to `counting` */
    if (w->counting.used > 0)
        ota_log_warn("presence or re-delivery counts of %zu rows not written", w->counting.used);
    table_free(&w->counting);
    table_free(&w->sending);
    free(w);
}
