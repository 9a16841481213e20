#include "api/fleet_snapshot.h"

#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "core/json_util.h"
#include "core/utc_time.h"
#include "db/statements.h"
#include "http/fleet_filter.h"
#include "ota/semver.h"

/* One model's answer, written out. */
typedef struct model_answer {
    char *model;
    char *json;
} model_answer_t;

struct ota_fleet_snapshot {
    char as_of[OTA_UTC_TEXT_LEN + 1];
    char *fleet;            /* the whole fleet's answer */
    model_answer_t *models; /* in byte order of their ids, as the rows come */
    size_t nmodels;
};

/* Devices counted so far: of one model, or of the whole fleet. */
typedef struct tally {
    json_int_t devices, seen, by_status[OTA_STATUS_COUNT];
    json_t *by_version; /* [{"model", "version", "devices"}] */
} tally_t;

static void tally_init(tally_t *t)
{
    memset(t, 0, sizeof *t);
    t->by_version = ota__json_checked(json_array());
}

static char *render(const tally_t *t, const char *as_of)
{
    json_t *statuses = ota__json_checked(json_object());
    for (size_t i = 0; i < OTA_STATUS_COUNT; i++)
        json_object_set_new(statuses, ota__ota_statuses[i], ota__json_checked(json_integer(t->by_status[i])));
    json_t *answer =
        ota__json_checked(json_pack("{s:s, s:I, s:I, s:O, s:o}", "as_of", as_of, "devices", t->devices, "seen_last_24h",
                                    t->seen, "by_version", t->by_version, "by_ota_status", statuses));
    char *text = ota__json_text(answer);
    json_decref(answer);
    return text;
}

/* A by_version entry with its version parsed, for sorting. */
typedef struct ranked {
    json_t *entry;
    ota_semver_t version;
    bool valid; /* false for a device that never reported a version */
} ranked_t;

/* Newest first by precedence; equal precedence (builds) by text; no version last. */
static int compare_ranked(const void *pa, const void *pb)
{
    const ranked_t *a = pa, *b = pb;
    if (a->valid != b->valid)
        return a->valid ? -1 : 1;
    if (!a->valid)
        return 0;
    int c = ota_semver_compare(&b->version, &a->version);
    return c != 0 ? c : strcmp(a->version.text, b->version.text);
}

static void sort_versions(json_t *by_version)
{
    size_t n = json_array_size(by_version), i;
    ranked_t *ranked = calloc(n > 0 ? n : 1, sizeof *ranked);
    json_t *entry;
    if (ranked == NULL)
        h2o_fatal("out of memory");
    json_array_foreach(by_version, i, entry)
    {
        const char *v = json_string_value(json_object_get(entry, "version"));
        ranked[i].entry = json_incref(entry);
        ranked[i].valid = v != NULL && ota_semver_parse(v, strlen(v), &ranked[i].version) == OTA_OK;
    }
    qsort(ranked, n, sizeof *ranked, compare_ranked);
    json_array_clear(by_version);
    for (i = 0; i < n; i++)
        json_array_append_new(by_version, ranked[i].entry);
    free(ranked);
}

static int status_index(const char *status)
{
    for (int i = 0; i < OTA_STATUS_COUNT; i++)
        if (strcmp(status, ota__ota_statuses[i]) == 0)
            return i;
    return -1;
}

static bool same_version(json_t *entry, const PGresult *res, int row)
{
    const char *v = json_string_value(json_object_get(entry, "version"));
    if (PQgetisnull(res, row, OTA_FLEET_COL_VERSION))
        return v == NULL;
    return v != NULL && strcmp(v, PQgetvalue(res, row, OTA_FLEET_COL_VERSION)) == 0;
}

/* Counts row `row` into `t`; rows of one version follow each other, so they add up in the last entry. */
static void count_row(tally_t *t, const PGresult *res, int row)
{
    json_int_t n = strtoll(PQgetvalue(res, row, OTA_FLEET_COL_DEVICES), NULL, 10);
    int status = status_index(PQgetvalue(res, row, OTA_FLEET_COL_STATUS));
    t->devices += n;
    t->seen += strtoll(PQgetvalue(res, row, OTA_FLEET_COL_SEEN), NULL, 10);
    if (status >= 0)
        t->by_status[status] += n;
    size_t last = json_array_size(t->by_version);
    json_t *entry = last > 0 ? json_array_get(t->by_version, last - 1) : NULL;
    if (entry != NULL && same_version(entry, res, row)) {
        json_object_set_new(entry, "devices",
                            ota__json_checked(json_integer(json_integer_value(json_object_get(entry, "devices")) + n)));
        return;
    }
    json_array_append_new(
        t->by_version,
        ota__json_checked(json_pack("{s:o, s:o, s:I}", "model", ota__json_col_string(res, row, OTA_FLEET_COL_MODEL),
                                    "version", ota__json_col_string(res, row, OTA_FLEET_COL_VERSION), "devices", n)));
}

/* Adds a model's tally to the fleet's: its versions go after those of the models before it. */
static void add_to_fleet(tally_t *fleet, const tally_t *model)
{
    fleet->devices += model->devices;
    fleet->seen += model->seen;
    for (size_t i = 0; i < OTA_STATUS_COUNT; i++)
        fleet->by_status[i] += model->by_status[i];
    json_array_extend(fleet->by_version, model->by_version);
}

ota_fleet_snapshot_t *ota__fleet_snapshot_new(const PGresult *res, time_t as_of)
{
    int rows = PQntuples(res);
    ota_fleet_snapshot_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->models = calloc(rows > 0 ? (size_t)rows : 1, sizeof *s->models)) == NULL)
        h2o_fatal("out of memory");
    ota__utc_text(as_of, s->as_of);
    tally_t fleet;
    tally_init(&fleet);
    for (int row = 0; row < rows;) {
        const char *model = PQgetvalue(res, row, OTA_FLEET_COL_MODEL);
        tally_t t;
        tally_init(&t);
        for (; row < rows && strcmp(PQgetvalue(res, row, OTA_FLEET_COL_MODEL), model) == 0; row++)
            count_row(&t, res, row);
        sort_versions(t.by_version);
        s->models[s->nmodels].model = strdup(model);
        s->models[s->nmodels].json = render(&t, s->as_of);
        if (s->models[s->nmodels++].model == NULL)
            h2o_fatal("out of memory");
        add_to_fleet(&fleet, &t);
        json_decref(t.by_version);
    }
    s->fleet = render(&fleet, s->as_of);
    json_decref(fleet.by_version);
    return s;
}

void ota__fleet_snapshot_free(ota_fleet_snapshot_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nmodels; i++) {
        free(s->models[i].model);
        free(s->models[i].json);
    }
    free(s->models);
    free(s->fleet);
    free(s);
}

static int compare_model(const void *key, const void *entry)
{
    return strcmp(key, ((const model_answer_t *)entry)->model);
}

char *ota__fleet_snapshot_answer(const ota_fleet_snapshot_t *s, const char *model)
{
    const char *json = s->fleet;
    if (model != NULL) {
        const model_answer_t *found = bsearch(model, s->models, s->nmodels, sizeof *s->models, compare_model);
        if (found == NULL) {
            tally_t none;
            tally_init(&none);
            char *zeros = render(&none, s->as_of);
            json_decref(none.by_version);
            return zeros;
        }
        json = found->json;
    }
    char *copy = strdup(json);
    if (copy == NULL)
        h2o_fatal("out of memory");
    return copy;
}
