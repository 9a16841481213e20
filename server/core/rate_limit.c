#include "core/rate_limit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* Slots per set: enough that a few busy keys sharing a set do not evict each other. */
#define WAYS 4
/* Mutexes shared by the sets (set i takes stripe i % STRIPES): more than threads, so contention stays rare. */
#define STRIPES 256

typedef struct slot {
    uint64_t key; /* 0: never used */
    uint64_t window_start_ms;
    uint32_t count; /* requests in the window, saturating at the limit + 1 */
} slot_t;

struct ota_rate_limit {
    uint32_t limit;
    uint64_t window_ms;
    size_t set_mask; /* sets - 1, a power of two minus one */
    pthread_mutex_t stripes[STRIPES];
    slot_t *slots; /* sets * WAYS */
};

static void *checked(void *p)
{
    if (p == NULL) {
        fputs("out of memory\n", stderr);
        abort();
    }
    return p;
}

ota_rate_limit_t *ota__rate_limit_new(uint32_t limit, uint64_t window_ms, size_t slots)
{
    ota_rate_limit_t *rl = checked(calloc(1, sizeof *rl));
    size_t sets = 1;
    while (sets * WAYS < slots)
        sets *= 2;
    rl->limit = limit;
    rl->window_ms = window_ms;
    rl->set_mask = sets - 1;
    rl->slots = checked(calloc(sets * WAYS, sizeof *rl->slots));
    for (size_t i = 0; i < STRIPES; i++)
        pthread_mutex_init(&rl->stripes[i], NULL);
    return rl;
}

void ota__rate_limit_free(ota_rate_limit_t *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&rl->stripes[i]);
    free(rl->slots);
    free(rl);
}

static bool window_over(const ota_rate_limit_t *rl, const slot_t *s, uint64_t now_ms)
{
    return now_ms - s->window_start_ms >= rl->window_ms || now_ms < s->window_start_ms;
}

/* The slot of `key` in `set`, or the one it takes: unused or past its window first, else the oldest window. */
static slot_t *find_slot(const ota_rate_limit_t *rl, slot_t *set, uint64_t key, uint64_t now_ms)
{
    slot_t *victim = &set[0];
    for (size_t i = 0; i < WAYS; i++) {
        if (set[i].key == key)
            return &set[i];
        if (window_over(rl, victim, now_ms) || victim->key == 0)
            continue;
        if (set[i].key == 0 || window_over(rl, &set[i], now_ms) || set[i].window_start_ms < victim->window_start_ms)
            victim = &set[i];
    }
    victim->key = key;
    victim->count = 0;
    return victim;
}

bool ota__rate_limit_take(ota_rate_limit_t *rl, uint64_t key, uint64_t now_ms, uint32_t *retry_after_s)
{
    key = key != 0 ? key : 1; /* 0 marks an unused slot */
    size_t set = (size_t)key & rl->set_mask;
    pthread_mutex_t *stripe = &rl->stripes[set % STRIPES];
    pthread_mutex_lock(stripe);
    slot_t *s = find_slot(rl, &rl->slots[set * WAYS], key, now_ms);
    if (s->count == 0 || window_over(rl, s, now_ms)) {
        s->window_start_ms = now_ms;
        s->count = 0;
    }
    bool allowed = s->count < rl->limit;
    if (s->count <= rl->limit)
        s->count++;
    uint64_t left_ms = s->window_start_ms + rl->window_ms - now_ms;
    pthread_mutex_unlock(stripe);
    if (!allowed)
        *retry_after_s = (uint32_t)((left_ms + 999) / 1000);
    return allowed;
}
