#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "http/fleet_filter.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/validate.h"
#include "ota/text.h"

/*
 * Rollouts: one release to the devices a fleet filter matches, in waves.
 * The engine (server/rollouts/engine.h) and the rules live in the database
 * (migrations/functions/ota_rollout_*.sql); this file reads requests and maps
 * outcomes to HTTP. docs/rollouts.md tells the whole story.
 */

/* Most waves a rollout may have. */
#define WAVES_MAX 20
/* Upper bounds that catch mistakes (a soak of years) rather than limit anyone. */
#define MAX_PER_MINUTE_MAX 10000000
#define SOAK_MAX_S (30 * 24 * 3600)
#define BACKOFF_MAX_S (7 * 24 * 3600)
#define RETRIES_MAX 100
#define NAME_MAX_LEN 200

/* --- POST /v1/rollouts --- */

/* A rollout's settings as the database function takes them: text parameters, NULL for "no limit". */
typedef struct rollout_settings {
    char id[OTA_UUID_LEN + 1];
    char release_id[OTA_UUID_LEN + 1];
    char *filter;                           /* normalized filter JSON (malloc'ed) */
    char waves[WAVES_MAX * 24 + 3];         /* numeric[] literal, e.g. {1,10,100} */
    char max_per_minute[16];                /* "" = no limit */
    char min_percent[32], soak_s[16];       /* success gate */
    char max_percent[32], min_failures[16]; /* failure gate */
    char retries_max[16], backoff_s[16];
} rollout_settings_t;

static void settings_free(void *p)
{
    rollout_settings_t *st = p;
    free(st->filter);
    free(st);
}

static void print_number(char *out, size_t cap, double value)
{
    snprintf(out, cap, "%.15g", value);
}

/* A percentage in [lo, 100] (lo itself allowed when `lo_ok`). */
static bool percent_valid(double value, double lo, bool lo_ok)
{
    return value <= 100 && (value > lo || (lo_ok && value == lo));
}

/* waves: cumulative percentages, strictly increasing, each in (0, 100], the last one 100. */
static void read_waves(ota_validate_t *v, rollout_settings_t *st)
{
    json_t *waves = ota__validate_array(v, "waves");
    snprintf(st->waves, sizeof st->waves, "{100}");
    if (waves == NULL)
        return;
    size_t n = json_array_size(waves);
    if (n == 0 || n > WAVES_MAX) {
        ota__validate_fail(v, "waves", "must hold 1 to 20 percentages");
        return;
    }
    ota_text_t out;
    ota_text_fixed(&out, st->waves, sizeof st->waves);
    double previous = 0;
    ota_text_puts(&out, "{");
    for (size_t i = 0; i < n; i++) {
        json_t *w = json_array_get(waves, i);
        if (!json_is_number(w)) {
            ota__validate_fail(v, "waves", "must hold numbers");
            return;
        }
        double percent = json_number_value(w);
        if (!percent_valid(percent, previous, false)) {
            ota__validate_fail(v, "waves", "must be strictly increasing percentages above 0, at most 100");
            return;
        }
        previous = percent;
        char number[32];
        print_number(number, sizeof number, percent);
        ota_text_printf(&out, "%s%s", i > 0 ? "," : "", number);
    }
    ota_text_puts(&out, "}");
    if (previous != 100)
        ota__validate_fail(v, "waves", "must end at 100");
}

/*
 * The nested objects success, failure and retries are read from `in` (an empty checker when the object is
 * absent, so every member takes its default); problems are recorded on the body's checker `v` under dotted
 * names ("success.min_percent"), as the answer names them.
 */
typedef struct nested {
    ota_validate_t *v; /* the body's checker */
    ota_validate_t in; /* the nested object's */
    const char *name;
} nested_t;

static void nested_begin(nested_t *n, ota_validate_t *v, const char *name)
{
    n->v = v;
    n->name = name;
    if (!ota__validate_object(v, name, &n->in))
        ota__validate_init(&n->in, NULL);
}

static void nested_end(nested_t *n)
{
    ota__validate_end_object(n->v, n->name, &n->in);
}

/* An integer member in [lo, hi], or `def` when absent, as text. */
static void read_int(nested_t *n, const char *member, json_int_t lo, json_int_t hi, json_int_t def, char *out,
                     size_t cap)
{
    json_int_t value = def;
    if (ota__validate_integer(&n->in, member, false, &value) && (value < lo || value > hi)) {
        char field[64], problem[96];
        snprintf(field, sizeof field, "%s.%s", n->name, member);
        snprintf(problem, sizeof problem, "must be an integer from %lld to %lld", (long long)lo, (long long)hi);
        ota__validate_fail(n->v, field, problem);
    }
    snprintf(out, cap, "%lld", (long long)value);
}

/* A percentage member from 0 to 100, or `def` when absent, as text. */
static void read_percent(nested_t *n, const char *member, double def, char *out, size_t cap)
{
    double value = def;
    if (ota__validate_number(&n->in, member, &value) && !percent_valid(value, 0, true)) {
        char field[64];
        snprintf(field, sizeof field, "%s.%s", n->name, member);
        ota__validate_fail(n->v, field, "must be a percentage from 0 to 100");
    }
    print_number(out, cap, value);
}

static void read_gates(ota_validate_t *v, rollout_settings_t *st)
{
    nested_t n;
    nested_begin(&n, v, "success");
    read_percent(&n, "min_percent", 90, st->min_percent, sizeof st->min_percent);
    read_int(&n, "soak_s", 0, SOAK_MAX_S, 0, st->soak_s, sizeof st->soak_s);
    nested_end(&n);
    nested_begin(&n, v, "failure");
    read_percent(&n, "max_percent", 10, st->max_percent, sizeof st->max_percent);
    read_int(&n, "min_failures", 1, INT32_MAX, 1, st->min_failures, sizeof st->min_failures);
    nested_end(&n);
    nested_begin(&n, v, "retries");
    read_int(&n, "max", 0, RETRIES_MAX, 0, st->retries_max, sizeof st->retries_max);
    read_int(&n, "backoff_s", 0, BACKOFF_MAX_S, 600, st->backoff_s, sizeof st->backoff_s);
    nested_end(&n);
}

/* max_per_minute: a positive integer, or absent/null for no limit. */
static void read_pacing(ota_validate_t *v, rollout_settings_t *st)
{
    json_int_t value;
    st->max_per_minute[0] = '\0';
    if (!ota__validate_integer(v, "max_per_minute", false, &value))
        return;
    if (value < 1 || value > MAX_PER_MINUTE_MAX)
        ota__validate_fail(v, "max_per_minute", "must be an integer from 1 to 10000000, or null for no limit");
    snprintf(st->max_per_minute, sizeof st->max_per_minute, "%lld", (long long)value);
}

static void on_created(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    const char *outcome = PQgetvalue(res, 0, OTA_ROLLOUT_OUTCOME_COL);
    const char *body = PQgetvalue(res, 0, OTA_ROLLOUT_BODY_COL);
    if (strcmp(outcome, "created") == 0)
        ota__respond_json_text(call, 201, body, strlen(body));
    else if (strcmp(outcome, "dry_run") == 0)
        ota__respond_json_text(call, 200, body, strlen(body));
    else if (strcmp(outcome, "no_release") == 0)
        ota__respond_error(call, 422, "validation_failed",
                           json_pack("{s:{s:s}}", "fields", "release_id", "no such release"), "no such release");
    else if (strcmp(outcome, "release_withdrawn") == 0)
        ota__respond_error(call, 422, "release_withdrawn", NULL, "the release is withdrawn");
    else
        ota__respond_error(call, 422, "model_mismatch", NULL, "the filter names another model than the release's");
}

void ota__api_rollouts_create(ota_call_t *call)
{
    ota_validate_t v;
    rollout_settings_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    call->state = st;
    call->state_free = settings_free;
    ota__validate_init(&v, call->body);
    const char *name = ota__validate_string(&v, "name", false);
    const char *release_id = ota__validate_string(&v, "release_id", true);
    const char *id = ota__validate_string(&v, "id", false);
    json_t *filter = ota__fleet_filter_read(&v, "filter");
    read_waves(&v, st);
    read_pacing(&v, st);
    read_gates(&v, st);
    bool start = ota__validate_boolean(&v, "start", true);
    bool dry_run = ota__validate_boolean(&v, "dry_run", false);
    if (name != NULL && (strlen(name) < 1 || strlen(name) > NAME_MAX_LEN))
        ota__validate_fail(&v, "name", "must be 1 to 200 characters");
    if (release_id != NULL && !ota__uuid_parse(release_id, strlen(release_id), st->release_id))
        ota__validate_fail(&v, "release_id", "must be a UUID");
    /* A dry run's id: the rollout then gets the very waves the dry run showed. */
    if (id != NULL && !ota__uuid_parse(id, strlen(id), st->id))
        ota__validate_fail(&v, "id", "must be a UUID");
    st->filter = filter != NULL ? json_dumps(filter, JSON_COMPACT) : strdup("{}");
    json_decref(filter);
    if (st->filter == NULL)
        h2o_fatal("out of memory");
    if (!ota__validate_done(&v, call))
        return;
    if (id == NULL)
        ota__uuid_new(st->id);
    const char *params[] = {st->id,
                            st->release_id,
                            name,
                            st->filter,
                            st->waves,
                            st->max_per_minute[0] != '\0' ? st->max_per_minute : NULL,
                            st->min_percent,
                            st->soak_s,
                            st->max_percent,
                            st->min_failures,
                            st->retries_max,
                            st->backoff_s,
                            start ? "true" : "false",
                            dry_run ? "true" : "false"};
    /* On the side connection: a rollout over a million devices is one statement of seconds. */
    ota__call_query_side(call, OTA_STMT_ROLLOUT_CREATE, params, on_created);
}

/* --- GET /v1/rollouts/{id} --- */

static void on_rollout(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, OTA_COL_ONLY)) {
        ota__respond_error(call, 404, "not_found", NULL, "no such rollout");
        return;
    }
    ota__respond_json_text(call, 200, PQgetvalue(res, 0, OTA_COL_ONLY), (size_t)PQgetlength(res, 0, OTA_COL_ONLY));
}

void ota__api_rollouts_get(ota_call_t *call)
{
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_ROLLOUT_GET, params, on_rollout);
}

/* --- GET /v1/rollouts --- */

static bool one_of(const char *s, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

static json_t *rollout_row_json(const PGresult *res, int row)
{
    return ota__json_col_json(res, row, OTA_ROLLOUT_COL_JSON);
}

static void on_list(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    ota__respond_page(call, res, OTA_ROLLOUT_COL_CURSOR_TS, OTA_ROLLOUT_COL_ID, rollout_row_json);
}

void ota__api_rollouts_list(ota_call_t *call)
{
    static const char *const STATUSES[] = {"running", "paused", "completed", "canceled", NULL};
    ota_page_t page;
    char status[OTA_QUERY_VALUE_MAX], release[OTA_QUERY_VALUE_MAX], release_id[OTA_UUID_LEN + 1];
    bool has_status, has_release;
    if (!ota__page_read(call, &page) || !ota__query_param(call, "status", status, &has_status) ||
        !ota__query_param(call, "release_id", release, &has_release))
        return;
    if (has_status && !one_of(status, STATUSES)) {
        ota__respond_error(call, 400, "bad_request", NULL,
                           "status must be one of running, paused, completed, canceled");
        return;
    }
    if (has_release && !ota__uuid_parse(release, strlen(release), release_id)) {
        ota__respond_error(call, 400, "bad_request", NULL, "release_id must be a UUID");
        return;
    }
    const char *params[] = {page.after_ts, page.after_id, page.limit_plus_one, has_status ? status : NULL,
                            has_release ? release_id : NULL};
    ota__call_query(call, OTA_STMT_ROLLOUT_LIST, params, on_list);
}

/* --- POST /v1/rollouts/{id}/pause|resume|advance|cancel --- */

static void on_acted(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    const char *outcome = PQgetvalue(res, 0, OTA_ROLLOUT_OUTCOME_COL);
    const char *body = PQgetvalue(res, 0, OTA_ROLLOUT_BODY_COL);
    if (strcmp(outcome, "ok") == 0) {
        ota__respond_json_text(call, 200, body, strlen(body));
    } else if (strcmp(outcome, "not_found") == 0) {
        ota__respond_error(call, 404, "not_found", NULL, "no such rollout");
    } else if (strcmp(outcome, "release_withdrawn") == 0) {
        ota__respond_error(call, 422, "release_withdrawn", NULL, "the rollout's release is withdrawn");
    } else {
        json_t *rollout = json_loads(body, 0, NULL);
        const char *status = json_string_value(json_object_get(rollout, "status"));
        ota__respond_error(call, 409, "invalid_transition", json_pack("{s:s?}", "status", status),
                           "a %s rollout cannot be told to %s", status != NULL ? status : "",
                           (const char *)call->state);
        json_decref(rollout);
    }
}

static void act(ota_call_t *call, const char *action)
{
    call->state = (void *)action; /* a string constant: nothing to free */
    const char *params[] = {call->params[0], action};
    ota__call_query(call, OTA_STMT_ROLLOUT_ACT, params, on_acted);
}

void ota__api_rollouts_pause(ota_call_t *call)
{
    act(call, "pause");
}

void ota__api_rollouts_resume(ota_call_t *call)
{
    act(call, "resume");
}

void ota__api_rollouts_advance(ota_call_t *call)
{
    act(call, "advance");
}

void ota__api_rollouts_cancel(ota_call_t *call)
{
    act(call, "cancel");
}
