#include "delivery_counts.h"

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

/* Seconds ota__delivery_counts_stop waits for the last write. */
#define STOP_WAIT_SECONDS 2.0

/*
 * Assignments per statement. A statement holds its rows' locks and the thread's connection (heartbeats queue
 * behind it) until it commits, so it is kept short; the next chunk goes as soon as one answers.
 */
#define CHUNK 200

/* An open-addressing table from assignment id to what is to be written for it. */
typedef struct slot {
    bool used;
    char id[OTA_UUID_LEN + 1];
    uint32_t n;                                         /* re-deliveries */
    char signature[OTA_MANIFEST_SIGNATURE_B64_LEN + 1]; /* "" or a signature to store */
} slot_t;

typedef struct table {
    slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t used;
} table_t;

struct ota_delivery_counts {
    ota_worker_t *worker;
    h2o_timeout_t timeout; /* our own, never in a request's pool (see ../shared/notes) */
    h2o_timeout_entry_t entry;
    table_t counting; /* counted since the last write began */
    table_t sending;  /* being written, chunk by chunk: slots [chunk_start, chunk_end) are in flight */
    size_t chunk_start, chunk_end;
    bool in_flight;
    bool stopped; /* freed by on_written once the statement in flight answers */
};

static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
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

/* Adds `add`'s count to its assignment's, and its signature when it has one (a newer one replaces an older). */
static void table_put(table_t *t, const slot_t *add)
{
    if ((t->used + 1) * 2 > t->cap)
        table_grow(t);
    size_t mask = t->cap - 1;
    for (size_t i = hash_id(add->id) & mask;; i = (i + 1) & mask) {
        slot_t *s = &t->slots[i];
        if (!s->used) {
            *s = *add;
            s->used = true;
            t->used++;
            return;
        }
        if (memcmp(s->id, add->id, OTA_UUID_LEN) == 0) {
            s->n += add->n;
            if (add->signature[0] != '\0')
                memcpy(s->signature, add->signature, sizeof s->signature);
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

static void write_chunk(ota_delivery_counts_t *c);

static void on_written(void *arg, const PGresult *res)
{
    ota_delivery_counts_t *c = arg;
    c->in_flight = false;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota_log_warn("cannot write re-delivery counts (kept for the next try): %s",
                     res != NULL ? PQresultErrorMessage(res) : "the database went away");
        table_merge(&c->counting, &c->sending, c->chunk_start);
        table_clear(&c->sending);
    } else if (c->chunk_end < c->sending.cap) {
        c->chunk_start = c->chunk_end;
        if (!c->stopped)
            write_chunk(c);
    } else {
        table_clear(&c->sending);
    }
    if (c->stopped && !c->in_flight) {
        table_free(&c->counting);
        table_free(&c->sending);
        free(c);
    }
}

/* The array literals of one chunk of ota_count_deliveries(): '{id,...}', '{n,...}', '{"signature"|NULL,...}'. */
typedef struct chunk {
    char ids[CHUNK * (OTA_UUID_LEN + 1) + 3];
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

/* Writes up to CHUNK used slots of `t` from `*pos` into `c` and moves `*pos` past them; false when there are none. */
static bool format_chunk(const table_t *t, size_t *pos, chunk_t *c)
{
    text_t ids = {c->ids, 0, sizeof c->ids}, counts = {c->counts, 0, sizeof c->counts},
           signatures = {c->signatures, 0, sizeof c->signatures};
    size_t taken = 0, i = *pos;
    for (; i < t->cap && taken < CHUNK; i++) {
        const slot_t *s = &t->slots[i];
        if (!s->used)
            continue;
        const char *sep = taken == 0 ? "{" : ",";
        append(&ids, "%s%s", sep, s->id);
        append(&counts, "%s%u", sep, (unsigned)s->n);
        if (s->signature[0] != '\0')
            append(&signatures, "%s\"%s\"", sep, s->signature);
        else
            append(&signatures, "%sNULL", sep);
        taken++;
    }
    *pos = i;
    if (taken == 0)
        return false;
    append(&ids, "}");
    append(&counts, "}");
    append(&signatures, "}");
    return true;
}

/* Sends the chunk of `sending` that starts at chunk_start; when it has none left, `sending` is done. */
static void write_chunk(ota_delivery_counts_t *c)
{
    chunk_t chunk; /* ~28 KB; libpq copies the parameters */
    size_t end = c->chunk_start;
    if (!format_chunk(&c->sending, &end, &chunk)) {
        table_clear(&c->sending);
        return;
    }
    c->chunk_end = end;
    const char *params[] = {chunk.ids, chunk.counts, chunk.signatures, c->worker->signing_key->public_base64};
    if (ota__db_query(c->worker->db, OTA_STMT_COUNT_DELIVERIES, params, on_written, c) == OTA_OK) {
        c->in_flight = true;
    } else {
        table_merge(&c->counting, &c->sending, c->chunk_start);
        table_clear(&c->sending);
    }
}

/* Starts writing what is counted, unless a write is under way or nothing is counted. */
static void write_counts(ota_delivery_counts_t *c)
{
    if (c->in_flight || c->sending.used != 0 || c->counting.used == 0 || !ota__db_ready(c->worker->db))
        return;
    table_t t = c->sending; /* empty */
    c->sending = c->counting;
    c->counting = t;
    c->chunk_start = 0;
    write_chunk(c);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ota_delivery_counts_t *c = H2O_STRUCT_FROM_MEMBER(ota_delivery_counts_t, entry, entry);
    write_counts(c);
    h2o_timeout_link(c->worker->loop, &c->timeout, &c->entry);
}

ota_delivery_counts_t *ota__delivery_counts_start(ota_worker_t *worker)
{
    ota_delivery_counts_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        h2o_fatal("out of memory");
    c->worker = worker;
    c->entry.cb = on_tick;
    h2o_timeout_init(worker->loop, &c->timeout, (uint64_t)worker->cfg->delivery_count_ms);
    h2o_timeout_link(worker->loop, &c->timeout, &c->entry);
    return c;
}

/* Adds a re-delivery (n = 1) or a signature of `assignment_id`. */
static void add(ota_delivery_counts_t *counts, const char *assignment_id, uint32_t n, const char *signature)
{
    slot_t s = {.n = n};
    if (strlen(assignment_id) != OTA_UUID_LEN ||
        (signature != NULL && strlen(signature) != OTA_MANIFEST_SIGNATURE_B64_LEN)) {
        ota_log_error("not an assignment id and signature: %s %s", assignment_id, signature ? signature : "");
        return;
    }
    memcpy(s.id, assignment_id, OTA_UUID_LEN + 1);
    if (signature != NULL)
        memcpy(s.signature, signature, OTA_MANIFEST_SIGNATURE_B64_LEN + 1);
    table_put(&counts->counting, &s);
}

void ota__delivery_counts_add(ota_delivery_counts_t *counts, const char *assignment_id)
{
    add(counts, assignment_id, 1, NULL);
}

void ota__delivery_counts_signature(ota_delivery_counts_t *counts, const char *assignment_id, const char *signature)
{
    add(counts, assignment_id, 0, signature);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ota__delivery_counts_stop(ota_delivery_counts_t *c)
{
    h2o_timeout_unlink(&c->entry);
    h2o_timeout_dispose(c->worker->loop, &c->timeout);
    double deadline = now_seconds() + STOP_WAIT_SECONDS;
    while ((c->in_flight || c->counting.used > 0) && now_seconds() < deadline) {
        write_counts(c);
        if (!c->in_flight)
            break; /* the database is not there: nothing more can be written */
        h2o_evloop_run(c->worker->loop, 100);
    }
    if (c->counting.used > 0)
        ota_log_warn("re-delivery counts of %zu assignments not written", c->counting.used);
    if (c->in_flight) {
        c->stopped = true;
        return;
    }
    table_free(&c->counting);
    table_free(&c->sending);
    free(c);
}
