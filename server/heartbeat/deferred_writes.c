#include "heartbeat/deferred_writes.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heartbeat/deferred_table.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"
#include "ota/manifest.h"
#include "ota/text.h"

/* How long ota__deferred_writes_stop waits for the last writes, in ms. */
#define STOP_WAIT_MS 2000

/*
 * Rows per statement. A statement holds its rows' locks until it commits (a heartbeat that must write one of
 * those devices waits), so it is kept short; the next chunk follows once it answers (see PACE_MS).
 */
#define CHUNK 200

/*
 * The most presence and signature rows a thread keeps (~64 bytes each, twice that in table space); more are
 * dropped (see keep). A million devices heartbeating once a minute leave ~4,200 presence rows a second per thread
 * of a 2-thread server, ~21,000 per 5 s interval.
 */
#define MAX_KEPT 100000

/*
 * Rows that start a write without waiting for the tick, when none is under way. Waiting is what merges the
 * re-deliveries of one assignment into one row update (writing each 200 as they came measured 25% slower
 * delivering heartbeats), so only this many rows cut it short.
 */
#define EARLY_WRITE_ROWS (MAX_KEPT / 4)

/*
 * Rows kept meanwhile that make the chunks of a write go back to back: the writes fall behind. Below it they
 * stay spread (SPREAD_PERCENT), which writes up to 20,000 rows a second a thread. At EARLY_WRITE_ROWS they
 * went back to back in every delivering run at a million devices (~35,000 rows a thread per interval), in
 * bursts that the heartbeats queued behind.
 */
#define BEHIND_ROWS (MAX_KEPT / 2)

/*
 * The pace timer's period (ms). The chunks of one write are sent a whole number of periods apart (at least one),
 * counted from each chunk's sending (ota__deferred_writes_pace_periods).
 */
#define PACE_MS 10

/*
 * The share of the time its rows took to pile up (the interval, unless EARLY_WRITE_ROWS started the write
 * sooner) that one write is spread over, in percent: rows are written a third faster than they come, so the
 * writes keep up, but evenly. Sent back to back, the chunks of a large write (a million devices leave ~20,000
 * rows a thread every 5 s) took the database's CPU in bursts; 10 ms apart, they still made a burst of a second
 * every 5 s in which both threads' writers took both cores and the heartbeats waited (open loop at 8,000/s, a
 * million devices: p99 of 25-100 ms in those seconds, 2-5 ms in the others).
 */
#define SPREAD_PERCENT 75

/*
 * Re-delivery counts that go with the next write before their interval is over: one row per assignment
 * re-delivered, so a full rollout to a million devices heartbeating once a minute on one 2-thread server (250,000
 * a thread every 30 s) still waits for the interval.
 */
#define EARLY_COUNT_ROWS 250000

/* The most re-delivery counts a thread keeps (while the database is away, say); more are dropped, as for MAX_KEPT. */
#define MAX_COUNTED (2 * EARLY_COUNT_ROWS)

/* How often a thread logs that it drops rows, at most (ms). */
#define DROP_LOG_MS 10000

struct ota_deferred_writes {
    ota_worker_t *worker;
    ota_db_t *db;          /* our own connection: a write never holds up the heartbeats on worker->db */
    h2o_timeout_t timeout; /* our own, not in a request's pool: the loop links it, freeing it there crashes */
    h2o_timeout_entry_t entry;
    h2o_timeout_t pace; /* PACE_MS, between the chunks of one write */
    h2o_timeout_entry_t pace_entry;
    ota_deferred_table_t counting; /* presence and signatures kept since the last write began */
    ota_deferred_table_t counts;   /* re-delivery counts kept since counts_began_ms */
    uint64_t counts_began_ms;      /* when `counts` began to fill (monotonic) */
    ota_deferred_table_t sending;  /* being written, chunk by chunk: slots [chunk_start, chunk_end) in flight */
    size_t chunk_start, chunk_end;
    size_t chunk_rows;       /* rows of the chunk in flight */
    size_t sending_left;     /* rows of `sending` not written yet */
    unsigned pace_periods;   /* PACE_MS periods from one chunk's sending to the next one's, in this write */
    unsigned pace_waited;    /* periods since the last chunk was sent */
    uint64_t write_began_ms; /* when the last write began (monotonic): the rows of the next piled up since */
    int64_t published;       /* rows pending as last added to the process's gauge */
    uint64_t dropped_logged_ms;
    bool in_flight;
    bool hurry;    /* stopping: chunks back to back */
    bool stopping; /* no new chunk is sent */
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Brings the process's ota_deferred_rows_pending gauge up to date with this thread's rows. */
static void publish_pending(ota_deferred_writes_t *w)
{
    int64_t pending = (int64_t)(w->counting.used + w->counts.used + w->sending_left);
    ota__metrics_deferred_pending(pending - w->published);
    w->published = pending;
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
        ota__deferred_table_move(&w->counting, &w->sending, w->chunk_start);
        w->sending_left = 0;
    } else {
        ota__metrics_deferred_written(w->chunk_rows);
        w->sending_left -= w->chunk_rows;
        w->chunk_start = w->chunk_end;
        /* The next chunk (or, when `sending` is done, what has piled up meanwhile) now if its pace_periods have
           passed since this one was sent; otherwise on_pace sends it when they have. */
        bool paced = h2o_timeout_is_linked(&w->pace_entry);
        if (w->hurry || w->counting.used >= BEHIND_ROWS || (!paced && !w->stopping)) {
            if (paced)
                h2o_timeout_unlink(&w->pace_entry);
            write_chunk(w);
        }
    }
    publish_pending(w);
}

/*
 * The parameters of one chunk of ota_write_deferred(), as array literals: device ids and the ages of their
 * sightings in ms, then assignment ids, their re-delivery counts, signatures ("..." or NULL), and the latest
 * download progress their devices reported: state, bytes, total, its age in ms and the delta word (all NULL for
 * none; the delta word NULL for a full download too), and the signatures of manifests with a delta, each followed
 * by the SHA-256 of the delta it covers.
 */
typedef struct chunk {
    char devices[CHUNK * (OTA_UUID_LEN + 1) + 3];
    char ages[CHUNK * 11 + 3];
    char assignments[CHUNK * (OTA_UUID_LEN + 1) + 3];
    char counts[CHUNK * 11 + 3];
    char signatures[CHUNK * (OTA_MANIFEST_SIGNATURE_B64_LEN + 3) + 3];
    char progress_states[CHUNK * 12 + 3];
    char progress_bytes[CHUNK * 21 + 3];
    char progress_totals[CHUNK * 21 + 3];
    char progress_ages[CHUNK * 11 + 3];
    char progress_deltas[CHUNK * 7 + 3];
    char delta_signatures[CHUNK * (OTA_MANIFEST_SIGNATURE_B64_LEN + OTA_MANIFEST_SHA256_HEX_LEN + 3) + 3];
} chunk_t;

/* The separator before an array's next element: "{" before the first. */
static void put_sep(ota_text_t *t)
{
    ota_text_put(t, t->len == 0 ? "{" : ",", 1);
}

/* The next element of a text array: "s" (a signature's characters need no escape), or NULL. */
static void put_text_or_null(ota_text_t *t, const char *s)
{
    put_sep(t);
    if (s == NULL) {
        ota_text_puts(t, "NULL");
        return;
    }
    ota_text_put(t, "\"", 1);
    ota_text_puts(t, s);
    ota_text_put(t, "\"", 1);
}

/* Closes an array literal ("{}" when it has no element). */
static void close_array(ota_text_t *t)
{
    ota_text_puts(t, t->len == 0 ? "{}" : "}");
}

/* An age in ms, capped to fit an SQL integer. */
static uint64_t age_of(uint64_t now_ms, uint64_t then_ms)
{
    uint64_t age = now_ms > then_ms ? now_ms - then_ms : 0;
    return age < UINT32_MAX / 2 ? age : UINT32_MAX / 2;
}

/* The progress arrays of a chunk: one element for each assignment row, NULL when it has no report. */
typedef struct progress_texts {
    ota_text_t states, bytes, totals, ages, deltas;
} progress_texts_t;

static void put_progress(progress_texts_t *p, const ota_deferred_progress_t *r, uint64_t now_ms)
{
    put_sep(&p->states);
    put_sep(&p->bytes);
    put_sep(&p->totals);
    put_sep(&p->ages);
    put_sep(&p->deltas);
    ota_text_puts(&p->deltas, r->state != 0 && r->delta != 0 ? ota__progress_deltas[r->delta - 1] : "NULL");
    if (r->state == 0) {
        ota_text_puts(&p->states, "NULL");
        ota_text_puts(&p->bytes, "NULL");
        ota_text_puts(&p->totals, "NULL");
        ota_text_puts(&p->ages, "NULL");
        return;
    }
    ota_text_puts(&p->states, ota__progress_states[r->state - 1]);
    ota_text_put_u64(&p->bytes, (uint64_t)r->bytes);
    ota_text_put_u64(&p->totals, (uint64_t)r->total);
    ota_text_put_u64(&p->ages, age_of(now_ms, r->at_ms));
}

/*
 * Writes up to CHUNK used slots of `t` from `*pos` into `c`, moves `*pos` past them and returns how many (0 when
 * there are none). `now_ms` (monotonic) turns each sighting and each progress report into its age.
 */
static size_t format_chunk(const ota_deferred_table_t *t, size_t *pos, uint64_t now_ms, chunk_t *c)
{
    /* The buffers are sized for CHUNK rows: nothing is ever cut. */
    ota_text_t devices, ages, assignments, counts, signatures, delta_signatures;
    progress_texts_t progress;
    ota_text_fixed(&devices, c->devices, sizeof c->devices);
    ota_text_fixed(&ages, c->ages, sizeof c->ages);
    ota_text_fixed(&assignments, c->assignments, sizeof c->assignments);
    ota_text_fixed(&counts, c->counts, sizeof c->counts);
    ota_text_fixed(&signatures, c->signatures, sizeof c->signatures);
    ota_text_fixed(&delta_signatures, c->delta_signatures, sizeof c->delta_signatures);
    ota_text_fixed(&progress.states, c->progress_states, sizeof c->progress_states);
    ota_text_fixed(&progress.bytes, c->progress_bytes, sizeof c->progress_bytes);
    ota_text_fixed(&progress.totals, c->progress_totals, sizeof c->progress_totals);
    ota_text_fixed(&progress.ages, c->progress_ages, sizeof c->progress_ages);
    ota_text_fixed(&progress.deltas, c->progress_deltas, sizeof c->progress_deltas);
    size_t taken = 0, i = *pos;
    for (; i < t->cap && taken < CHUNK; i++) {
        const ota_deferred_row_t *s = &t->slots[i];
        if (!s->used)
            continue;
        if (s->kind == OTA_DEFERRED_DEVICE) {
            put_sep(&ages);
            ota_text_put_u64(&ages, age_of(now_ms, s->seen_ms));
            put_sep(&devices);
            ota_text_puts(&devices, s->id);
        } else {
            put_sep(&counts);
            ota_text_put_u64(&counts, (unsigned)s->n);
            put_text_or_null(&signatures, s->signature);
            put_text_or_null(&delta_signatures, s->delta_signature);
            put_sep(&assignments);
            ota_text_puts(&assignments, s->id);
            put_progress(&progress, &s->progress, now_ms);
        }
        taken++;
    }
    *pos = i;
    if (taken == 0)
        return 0;
    ota_text_t *arrays[] = {&devices,         &ages,           &assignments,     &counts,        &signatures,
                            &progress.states, &progress.bytes, &progress.totals, &progress.ages, &progress.deltas,
                            &delta_signatures};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        close_array(arrays[k]);
    return taken;
}

static void write_kept(ota_deferred_writes_t *w);

unsigned ota__deferred_writes_pace_periods(int gathered_ms, size_t rows)
{
    size_t chunks = (rows + CHUNK - 1) / CHUNK;
    if (chunks <= 1 || gathered_ms <= 0)
        return 1;
    size_t spread_ms = (size_t)gathered_ms * SPREAD_PERCENT / 100;
    size_t periods = spread_ms / ((chunks - 1) * PACE_MS);
    return periods > 1 ? (unsigned)periods : 1;
}

/*
 * Sends the chunk of `sending` that starts at chunk_start. When `sending` is done, starts on what has piled up
 * meanwhile when EARLY_WRITE_ROWS have; otherwise that waits for the next tick.
 */
static void write_chunk(ota_deferred_writes_t *w)
{
    chunk_t chunk; /* ~36 KB; libpq copies the parameters */
    size_t end = w->chunk_start;
    w->chunk_rows = format_chunk(&w->sending, &end, monotonic_ms(), &chunk);
    if (w->chunk_rows == 0) {
        ota__deferred_table_clear(&w->sending);
        w->sending_left = 0;
        if (w->counting.used >= EARLY_WRITE_ROWS)
            write_kept(w);
        return;
    }
    w->chunk_end = end;
    const char *params[] = {chunk.devices,         chunk.ages,
                            chunk.assignments,     chunk.counts,
                            chunk.signatures,      w->worker->signing_key->public_base64,
                            chunk.progress_states, chunk.progress_bytes,
                            chunk.progress_totals, chunk.progress_ages,
                            chunk.progress_deltas, chunk.delta_signatures};
    if (ota__db_query(w->db, OTA_STMT_WRITE_DEFERRED, params, on_written, w) == OTA_OK) {
        w->in_flight = true;
        w->pace_waited = 0;
        if (!w->hurry)
            h2o_timeout_link(w->worker->loop, &w->pace, &w->pace_entry);
    } else {
        ota__deferred_table_move(&w->counting, &w->sending, w->chunk_start);
        w->sending_left = 0;
    }
}

/*
 * Whether the re-delivery counts go with the next write: once OTA_DELIVERY_COUNT_MS have passed since they began
 * to pile up, when EARLY_COUNT_ROWS are kept, or when stopping. Kept that long, the re-deliveries of one assignment
 * (one a heartbeat interval) merge into one row update, and a delivering heartbeat stays a read.
 */
static bool counts_due(const ota_deferred_writes_t *w, uint64_t now)
{
    if (w->counts.used == 0)
        return false;
    return w->hurry || w->counts.used >= EARLY_COUNT_ROWS ||
           now - w->counts_began_ms >= (uint64_t)w->worker->cfg->delivery_count_ms;
}

/* Starts writing what is kept, unless a write is under way or nothing is kept. */
static void write_kept(ota_deferred_writes_t *w)
{
    if (w->in_flight || w->sending.used != 0 || !ota__db_ready(w->db))
        return;
    uint64_t now = monotonic_ms();
    if (counts_due(w, now)) {
        ota__deferred_table_move(&w->counting, &w->counts, 0);
        w->counts_began_ms = now;
    }
    if (w->counting.used == 0)
        return;
    ota_deferred_table_t t = w->sending; /* empty */
    w->sending = w->counting;
    w->counting = t;
    w->sending_left = w->sending.used;
    w->chunk_start = 0;
    /* Spread over the time these rows took to pile up: the interval, or less when EARLY_WRITE_ROWS started the
       write, so that the rows are written at least as fast as they come. */
    uint64_t gathered_ms = now - w->write_began_ms;
    if (gathered_ms > (uint64_t)w->worker->cfg->deferred_write_ms)
        gathered_ms = (uint64_t)w->worker->cfg->deferred_write_ms;
    w->write_began_ms = now;
    w->pace_periods = ota__deferred_writes_pace_periods((int)gathered_ms, w->sending_left);
    write_chunk(w);
}

/* Every PACE_MS after a chunk was sent: once pace_periods have passed, sends the next chunk, unless the last is
   still waiting for its answer (on_written sends it then). */
static void on_pace(h2o_timeout_entry_t *entry)
{
    ota_deferred_writes_t *w = H2O_STRUCT_FROM_MEMBER(ota_deferred_writes_t, pace_entry, entry);
    if (++w->pace_waited < w->pace_periods && !w->hurry) {
        h2o_timeout_link(w->worker->loop, &w->pace, &w->pace_entry);
        return;
    }
    if (!w->in_flight && w->sending.used > 0)
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
    w->db = ota__db_create(worker->loop, worker->cfg, false, worker->cfg->db_statement_timeout_ms);
    if (w->db == NULL)
        h2o_fatal("out of memory");
    w->write_began_ms = monotonic_ms();
    w->counts_began_ms = w->write_began_ms;
    w->entry.cb = on_tick;
    h2o_timeout_init(worker->loop, &w->timeout, (uint64_t)worker->cfg->deferred_write_ms);
    h2o_timeout_link(worker->loop, &w->timeout, &w->entry);
    w->pace_entry.cb = on_pace;
    h2o_timeout_init(worker->loop, &w->pace, PACE_MS);
    return w;
}

/*
 * Keeps `add` (its id given as `id`, checked to be a UUID's length) in `t`, and starts a write when `early` rows
 * are kept there, unless `max` rows are kept there already; then it is dropped (counted in
 * ota_deferred_rows_dropped_total, logged now and then): a dropped sighting is made again by the device's next
 * heartbeat, a dropped count is a statistic, and memory stays bounded.
 */
static void keep(ota_deferred_writes_t *w, ota_deferred_table_t *t, size_t max, size_t early, ota_deferred_row_t *add,
                 const char *id)
{
    if (strlen(id) != OTA_UUID_LEN) {
        ota_log_error("not an id: %s", id);
    } else if (t->used >= max && !ota__deferred_table_has(t, add->kind, id)) {
        ota__metrics_deferred_dropped(1);
        uint64_t now = monotonic_ms();
        if (now - w->dropped_logged_ms >= DROP_LOG_MS) {
            ota_log_warn("thread %d keeps %zu rows for the database, which does not keep up: dropping more",
                         w->worker->index, max);
            w->dropped_logged_ms = now;
        }
    } else {
        memcpy(add->id, id, OTA_UUID_LEN + 1);
        ota__deferred_table_put(t, add);
        publish_pending(w);
        if (t->used >= early && !w->in_flight && w->sending.used == 0)
            write_kept(w); /* falling behind: no need to wait for the tick */
    }
    free(add->signature); /* NULL unless it was not kept */
}

void ota__deferred_writes_presence(ota_deferred_writes_t *w, const char *device_id)
{
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_DEVICE, .seen_ms = monotonic_ms()};
    keep(w, &w->counting, MAX_KEPT, EARLY_WRITE_ROWS, &r, device_id);
}

void ota__deferred_writes_redelivery(ota_deferred_writes_t *w, const char *assignment_id)
{
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_ASSIGNMENT, .n = 1};
    keep(w, &w->counts, MAX_COUNTED, EARLY_COUNT_ROWS, &r, assignment_id);
}

void ota__deferred_writes_progress(ota_deferred_writes_t *w, const char *assignment_id, int state, int delta,
                                   int64_t bytes, int64_t total)
{
    if (state < 0 || state >= (int)(sizeof ota__progress_states / sizeof ota__progress_states[0]) || delta < -1 ||
        delta >= (int)(sizeof ota__progress_deltas / sizeof ota__progress_deltas[0]) || bytes < 0 || total < 0)
        return;
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_ASSIGNMENT,
                            .progress = {.state = (uint8_t)(state + 1),
                                         .delta = (uint8_t)(delta + 1),
                                         .bytes = bytes,
                                         .total = total,
                                         .at_ms = monotonic_ms()}};
    keep(w, &w->counts, MAX_COUNTED, EARLY_COUNT_ROWS, &r, assignment_id);
}

void ota__deferred_writes_signature(ota_deferred_writes_t *w, const char *assignment_id, const char *signature)
{
    if (strlen(signature) != OTA_MANIFEST_SIGNATURE_B64_LEN) {
        ota_log_error("not a signature: %s", signature);
        return;
    }
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_ASSIGNMENT, .signature = strdup(signature)};
    if (r.signature == NULL)
        h2o_fatal("out of memory");
    keep(w, &w->counting, MAX_KEPT, EARLY_WRITE_ROWS, &r, assignment_id);
}

void ota__deferred_writes_delta_signature(ota_deferred_writes_t *w, const char *assignment_id, const char *signature,
                                          const char *delta_sha256)
{
    if (strlen(signature) != OTA_MANIFEST_SIGNATURE_B64_LEN || strlen(delta_sha256) != OTA_MANIFEST_SHA256_HEX_LEN) {
        ota_log_error("not a signature and a SHA-256: %s %s", signature, delta_sha256);
        return;
    }
    char both[OTA_MANIFEST_SIGNATURE_B64_LEN + OTA_MANIFEST_SHA256_HEX_LEN + 1];
    memcpy(both, signature, OTA_MANIFEST_SIGNATURE_B64_LEN);
    memcpy(both + OTA_MANIFEST_SIGNATURE_B64_LEN, delta_sha256, OTA_MANIFEST_SHA256_HEX_LEN + 1);
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_ASSIGNMENT, .delta_signature = strdup(both)};
    if (r.delta_signature == NULL)
        h2o_fatal("out of memory");
    keep(w, &w->counting, MAX_KEPT, EARLY_WRITE_ROWS, &r, assignment_id);
}

void ota__deferred_writes_stop(ota_deferred_writes_t *w)
{
    h2o_timeout_unlink(&w->entry);
    h2o_timeout_dispose(w->worker->loop, &w->timeout);
    if (h2o_timeout_is_linked(&w->pace_entry))
        h2o_timeout_unlink(&w->pace_entry);
    h2o_timeout_dispose(w->worker->loop, &w->pace);
    w->hurry = true;
    uint64_t deadline = monotonic_ms() + STOP_WAIT_MS;
    while ((w->in_flight || w->sending.used > 0 || w->counting.used > 0 || w->counts.used > 0) &&
           monotonic_ms() < deadline) {
        /* When not connected (yet), this sends nothing and the loop runs until it is or the deadline passes. */
        if (!w->in_flight && w->sending.used > 0)
            write_chunk(w);
        else if (!w->in_flight)
            write_kept(w);
        h2o_evloop_run(w->worker->loop, 100);
    }
    w->stopping = true;
    ota__db_destroy(w->db); /* a statement still in flight is answered NULL now: its rows go back to `counting` */
    size_t lost = w->counting.used + w->counts.used + w->sending_left;
    if (lost > 0)
        ota_log_warn("presence or re-delivery counts of %zu rows not written", lost);
    ota__deferred_table_free(&w->counting);
    ota__deferred_table_free(&w->counts);
    ota__deferred_table_free(&w->sending);
    w->sending_left = 0;
    publish_pending(w);
    free(w);
}
