#include "heartbeat/deferred_table.h"

#include <stdlib.h>
#include <string.h>

#include <h2o.h>

const char *const ota__progress_states[3] = {"downloading", "verifying", "installing"};
const char *const ota__progress_deltas[2] = {"used", "failed"};

static size_t hash_row(ota_deferred_kind_t kind, const char *id)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind; /* FNV-1a */
    for (size_t i = 0; i < OTA_UUID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return (size_t)h;
}

/* The slot of (kind, id): the row's when it is there, else the empty slot where it would go. */
static ota_deferred_row_t *find(const ota_deferred_table_t *t, ota_deferred_kind_t kind, const char *id)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash_row(kind, id) & mask;; i = (i + 1) & mask) {
        ota_deferred_row_t *s = &t->slots[i];
        if (!s->used || (s->kind == kind && memcmp(s->id, id, OTA_UUID_LEN) == 0))
            return s;
    }
}

/* Doubles the table; rows keep their signatures. */
static void grow(ota_deferred_table_t *t)
{
    ota_deferred_table_t bigger = {.cap = t->cap != 0 ? t->cap * 2 : 64};
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (bigger.slots == NULL)
        h2o_fatal("out of memory");
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].used) {
            *find(&bigger, t->slots[i].kind, t->slots[i].id) = t->slots[i];
            bigger.used++;
        }
    }
    free(t->slots);
    *t = bigger;
}

void ota__deferred_table_put(ota_deferred_table_t *t, ota_deferred_row_t *add)
{
    if ((t->used + 1) * 2 > t->cap)
        grow(t);
    ota_deferred_row_t *s = find(t, add->kind, add->id);
    if (!s->used) {
        *s = *add;
        s->used = true;
        t->used++;
    } else {
        s->n += add->n;
        if (add->signature != NULL) {
            free(s->signature);
            s->signature = add->signature;
        }
        if (add->delta_signature != NULL) {
            free(s->delta_signature);
            s->delta_signature = add->delta_signature;
        }
        if (add->seen_ms > s->seen_ms)
            s->seen_ms = add->seen_ms;
        if (add->progress.state != 0 && add->progress.at_ms >= s->progress.at_ms)
            s->progress = add->progress;
    }
    add->signature = NULL;
    add->delta_signature = NULL;
}

bool ota__deferred_table_has(const ota_deferred_table_t *t, ota_deferred_kind_t kind, const char *id)
{
    return t->cap != 0 && find(t, kind, id)->used;
}

void ota__deferred_table_move(ota_deferred_table_t *into, ota_deferred_table_t *from_table, size_t from)
{
    for (size_t i = from; i < from_table->cap; i++)
        if (from_table->slots[i].used)
            ota__deferred_table_put(into, &from_table->slots[i]); /* takes the signature */
    ota__deferred_table_clear(from_table);
}

void ota__deferred_table_clear(ota_deferred_table_t *t)
{
    if (t->used == 0)
        return;
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].signature);
        free(t->slots[i].delta_signature);
    }
    memset(t->slots, 0, t->cap * sizeof *t->slots);
    t->used = 0;
}

void ota__deferred_table_free(ota_deferred_table_t *t)
{
    ota__deferred_table_clear(t);
    free(t->slots);
    *t = (ota_deferred_table_t){0};
}
