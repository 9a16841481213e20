#include "core/key_slots.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

/*
 * A plain array under one mutex: the entries are the API keys that stream at
 * the same time (a handful), and a take or give happens once per stream, not
 * per event. Entries whose count falls to 0 are reused, so the array never
 * holds more entries than keys that streamed at once.
 */
typedef struct slot {
    char key[OTA_KEY_SLOTS_KEY_MAX + 1];
    int used;
} slot_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot_t *slots;
static size_t count, cap;

/* The entry of `key`, or NULL; with `make`, a free or new entry for it. Called with the lock held. */
static slot_t *find(const char *key, bool make)
{
    slot_t *free_entry = NULL;
    for (size_t i = 0; i < count; i++) {
        if (slots[i].used > 0 && strcmp(slots[i].key, key) == 0)
            return &slots[i];
        if (slots[i].used == 0 && free_entry == NULL)
            free_entry = &slots[i];
    }
    if (!make)
        return NULL;
    if (free_entry == NULL) {
        if (count == cap) {
            size_t bigger = cap ? cap * 2 : 8;
            slot_t *grown = realloc(slots, bigger * sizeof *grown);
            if (grown == NULL)
                h2o_fatal("out of memory");
            slots = grown;
            cap = bigger;
        }
        free_entry = &slots[count++];
    }
    snprintf(free_entry->key, sizeof free_entry->key, "%s", key);
    free_entry->used = 0;
    return free_entry;
}

bool ota__key_slots_take(const char *key, int max)
{
    pthread_mutex_lock(&lock);
    slot_t *s = find(key, true);
    bool ok = s->used < max;
    if (ok)
        s->used++;
    pthread_mutex_unlock(&lock);
    return ok;
}

void ota__key_slots_give(const char *key)
{
    pthread_mutex_lock(&lock);
    slot_t *s = find(key, false);
    if (s != NULL)
        s->used--;
    pthread_mutex_unlock(&lock);
}

int ota__key_slots_used(const char *key)
{
    pthread_mutex_lock(&lock);
    slot_t *s = find(key, false);
    int used = s != NULL ? s->used : 0;
    pthread_mutex_unlock(&lock);
    return used;
}
