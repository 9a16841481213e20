/*
 * Building deltas: claim (loop, side connection), build (the delta pool's
 * thread), finish (loop, side connection).
 *
 * Why a claim row first: any number of instances may ask for the same pair
 * at once (each creating a release, or heartbeats on several instances), and
 * a failed or not-worth-it pair must never be built again. The claim's
 * INSERT ... ON CONFLICT decides in the database which one builds; the
 * others get no row back. A 'building' row is taken over only once it is
 * older than BUILD_TIME_LIMIT_S: its builder's instance stopped or died
 * mid-build. The claim's started_at is its token, so a builder whose claim
 * was taken over cannot finish the row the new builder owns.
 *
 * Memory: the delta pool has one thread (server.c), so a process builds one
 * delta at a time and holds at most one build's bytes: both images (each at
 * most OTA_MAX_BODY), the delta (at most zstd's bound of the new image) and
 * the compressor's tables (~40 MiB for 64 MiB images, releases/delta_make.c).
 * Queued builds hold only their keys.
 *
 * Failures: any failure of a build (an image missing or too large, zstd,
 * storage) makes the row 'failed' with the reason, and it stays so. A finish
 * that cannot be written (the database is down) leaves the row 'building'
 * until the time limit lets a later request claim it again. A delta stored for
 * a row that is gone (its release was deleted mid-build) or no longer ours is
 * not deleted here (the other builder may have stored the same key): no row
 * names it, so the object sweeper removes it after OTA_GC_GRACE_S.
 */
#include "releases/delta_builder.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/log.h"
#include "core/metrics.h"
#include "ota/hex.h"
#include "releases/delta_make.h"

/*
 * After this long a 'building' row may be claimed again: its builder is gone. Well above the longest build (a
 * 64 MiB pair takes ~20 s of one core, releases/delta_make.c) plus the time a build may wait behind others in
 * the one-thread pool. The heartbeat (migrations/functions/ota_heartbeat.sql) counts an older 'building' row as
 * missing, and so asks for the pair again: keep the two equal.
 */
#define BUILD_TIME_LIMIT_S (30 * 60)
/* A delta not smaller than this share of the new image is not worth offering: the full image is used instead. */
#define WORTH_PERCENT 60
#define KEY_MAX 160
#define ERROR_MAX 500

typedef struct build {
    ota_job_t job; /* first: the pool's job */
    ota_worker_t *worker;
    char to_id[40], from_id[40], token[40];
    char from_key[KEY_MAX], to_key[KEY_MAX];
    char from_sha256[OTA_DIGEST_SHA256_HEX_LEN + 1];
    uint64_t from_size, to_size; /* as their artifact rows say */
    /* the outcome, set by the job */
    const char *status; /* "ready", "not_worth_it" or "failed" */
    size_t size;
    char sha256[OTA_DIGEST_SHA256_HEX_LEN + 1];
    char object_key[KEY_MAX];
    char error[ERROR_MAX];
    time_t stored_at; /* when the delta object was written (0: none) */
} build_t;

/* Set when the process stops: builds still queued end at once, unbuilt. */
static atomic_bool stopping;

static void sha256_hex(const void *data, size_t len, char out[OTA_DIGEST_SHA256_HEX_LEN + 1])
{
    uint8_t sum[32];
    if (ota__sha256(data, len, sum) != OTA_OK)
        h2o_fatal("SHA-256 failed");
    ota_hex_encode(sum, sizeof sum, out);
}

static void fail(build_t *b, const char *what, const char *why)
{
    b->status = "failed";
    snprintf(b->error, sizeof b->error, "%s: %s", what, why);
}

/* Reads one release image of `size` bytes (its artifact row's); false (the build failed) when it cannot. */
static bool read_image(build_t *b, const char *key, uint64_t size, const char *what, unsigned char **data, size_t *len)
{
    char err[256];
    ota_err_t rc = ota__storage_get(b->worker->storage, key, b->worker->cfg->max_body, data, len, err, sizeof err);
    if (rc != OTA_OK) {
        fail(b, what, rc == OTA_ERR_NOT_FOUND ? "the image is missing from storage" : err);
        return false;
    }
    if (*len != size) {
        fail(b, what, "its size differs from its artifact's");
        return false;
    }
    return true;
}

/* --- the build (the delta pool's thread) --- */

/* Stores the delta, or judges it not worth it: a delta of 60% of the image or more saves too little. */
static void keep(build_t *b, const unsigned char *delta, size_t delta_len, size_t to_len)
{
    char err[256];
    b->size = delta_len;
    sha256_hex(delta, delta_len, b->sha256);
    if ((unsigned long long)delta_len * 100 >= (unsigned long long)to_len * WORTH_PERCENT) {
        b->status = "not_worth_it";
        return;
    }
    snprintf(b->object_key, sizeof b->object_key, "releases/%s/delta-%s", b->to_id, b->from_id);
    if (ota__storage_put(b->worker->storage, b->object_key, delta, delta_len, err, sizeof err) != OTA_OK) {
        b->object_key[0] = '\0';
        fail(b, "storing the delta", err);
        return;
    }
    b->stored_at = time(NULL);
    b->status = "ready";
}

static void build_run(ota_job_t *job)
{
    build_t *b = (build_t *)job;
    unsigned char *from = NULL, *to = NULL, *delta = NULL;
    size_t from_len = 0, to_len = 0, delta_len = 0;
    char err[256], sum[OTA_DIGEST_SHA256_HEX_LEN + 1];
    if (atomic_load(&stopping))
        return; /* status NULL: the row stays 'building' */
    if (!read_image(b, b->from_key, b->from_size, "reading the old image", &from, &from_len) ||
        !read_image(b, b->to_key, b->to_size, "reading the new image", &to, &to_len))
        goto Exit;
    if (atomic_load(&stopping))
        goto Exit;
    /* The device names the image it runs by this SHA-256: the delta must be made from exactly those bytes. */
    sha256_hex(from, from_len, sum);
    if (strcmp(sum, b->from_sha256) != 0) {
        fail(b, "reading the old image", "its bytes do not match its SHA-256");
        goto Exit;
    }
    ota_err_t rc = ota__delta_make(from, from_len, to, to_len, &delta, &delta_len, err, sizeof err);
    if (rc != OTA_OK) {
        fail(b, "making the delta", err);
        goto Exit;
    }
    keep(b, delta, delta_len, to_len);

Exit:
    free(delta);
    free(to);
    free(from);
}

/* --- the finish (loop) --- */

static void on_finished(void *arg, const PGresult *res)
{
    build_t *b = arg;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        ota_log_warn("delta %s from %s: cannot record its end (%s); it may be claimed again in %d s", b->to_id,
                     b->from_id, res != NULL ? PQresultErrorMessage(res) : "no connection", BUILD_TIME_LIMIT_S);
    else if (PQntuples(res) == 0)
        ota_log_info("delta %s from %s: its row is gone or was claimed again; the result is dropped", b->to_id,
                     b->from_id);
    free(b);
}

static void build_done(ota_job_t *job)
{
    build_t *b = (build_t *)job;
    if (b->status == NULL) { /* skipped: the process is stopping */
        free(b);
        return;
    }
    /* The sweeper may judge an object older than its grace period that no row names yet: keep a margin. */
    if (b->stored_at != 0 && time(NULL) - b->stored_at > b->worker->cfg->gc_grace / 2) {
        fail(b, "storing the delta", "it was stored too long ago for the object sweeper's grace period");
        b->object_key[0] = '\0';
    }
    ota__metrics_delta_build(b->status);
    if (strcmp(b->status, "failed") == 0)
        ota_log_warn("delta %s from %s failed: %s", b->to_id, b->from_id, b->error);
    char size[24];
    snprintf(size, sizeof size, "%zu", b->size);
    bool failed = strcmp(b->status, "failed") == 0;
    const char *params[] = {b->to_id,
                            b->from_id,
                            b->token,
                            b->status,
                            failed ? NULL : size,
                            failed ? NULL : b->sha256,
                            b->object_key[0] != '\0' ? b->object_key : NULL,
                            failed ? b->error : NULL};
    if (ota__db_query(b->worker->side_db, OTA_STMT_DELTA_FINISH, params, on_finished, b) != OTA_OK) {
        ota_log_warn("delta %s from %s: the database is unavailable; it may be claimed again in %d s", b->to_id,
                     b->from_id, BUILD_TIME_LIMIT_S);
        free(b);
    }
}

/* --- the claim (loop) --- */

static void copy_col(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetvalue(res, row, col));
}

static void on_claimed(void *arg, const PGresult *res)
{
    ota_worker_t *worker = arg;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota_log_warn("deltas: cannot claim builds: %s", res != NULL ? PQresultErrorMessage(res) : "no connection");
        return;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        build_t *b = calloc(1, sizeof *b);
        if (b == NULL)
            h2o_fatal("out of memory");
        b->worker = worker;
        copy_col(b->to_id, sizeof b->to_id, res, r, OTA_DELTA_CLAIM_COL_TO_ID);
        copy_col(b->from_id, sizeof b->from_id, res, r, OTA_DELTA_CLAIM_COL_FROM_ID);
        copy_col(b->from_key, sizeof b->from_key, res, r, OTA_DELTA_CLAIM_COL_FROM_KEY);
        copy_col(b->from_sha256, sizeof b->from_sha256, res, r, OTA_DELTA_CLAIM_COL_FROM_SHA256);
        copy_col(b->to_key, sizeof b->to_key, res, r, OTA_DELTA_CLAIM_COL_TO_KEY);
        b->from_size = strtoull(PQgetvalue(res, r, OTA_DELTA_CLAIM_COL_FROM_SIZE), NULL, 10);
        b->to_size = strtoull(PQgetvalue(res, r, OTA_DELTA_CLAIM_COL_TO_SIZE), NULL, 10);
        copy_col(b->token, sizeof b->token, res, r, OTA_DELTA_CLAIM_COL_TOKEN);
        b->job.run = build_run;
        b->job.done = build_done;
        ota__jobs_submit(worker->delta_jobs, &b->job, &worker->jobs_done);
    }
}

void ota__delta_request(ota_worker_t *worker, const char *to_release_id, const char *from_release_id)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", BUILD_TIME_LIMIT_S);
    const char *params[] = {to_release_id, from_release_id, limit};
    if (ota__db_query(worker->side_db, OTA_STMT_DELTA_CLAIM, params, on_claimed, worker) != OTA_OK)
        ota_log_warn("deltas into release %s: the database is unavailable; not built now", to_release_id);
}

void ota__delta_builder_stop(void)
{
    atomic_store(&stopping, true);
}
