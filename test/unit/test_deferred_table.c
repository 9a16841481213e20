/* Unit tests: server/heartbeat/deferred_table.c, the rows a server thread keeps to write in bulk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heartbeat/deferred_table.h"

/* A UUID-shaped id numbered `i`. */
static void make_id(char *id, int i)
{
    snprintf(id, OTA_UUID_LEN + 1, "00000000-0000-4000-8000-%012d", i);
}

static void put(ota_deferred_table_t *t, ota_deferred_kind_t kind, int i, uint64_t seen, uint32_t n, const char *sig)
{
    ota_deferred_row_t r = {.kind = kind, .seen_ms = seen, .n = n, .signature = sig ? strdup(sig) : NULL};
    make_id(r.id, i);
    ota__deferred_table_put(t, &r);
    assert_null(r.signature); /* the table took it */
}

static const ota_deferred_row_t *get(const ota_deferred_table_t *t, ota_deferred_kind_t kind, int i)
{
    char id[OTA_UUID_LEN + 1];
    make_id(id, i);
    for (size_t k = 0; k < t->cap; k++)
        if (t->slots[k].used && t->slots[k].kind == kind && strcmp(t->slots[k].id, id) == 0)
            return &t->slots[k];
    return NULL;
}

/* Rows of one id merge: counts add up, the later sighting and the newer signature stand. */
static void test_merge(void **state)
{
    (void)state;
    ota_deferred_table_t t = {0};
    put(&t, OTA_DEFERRED_ASSIGNMENT, 1, 0, 1, NULL);
    put(&t, OTA_DEFERRED_ASSIGNMENT, 1, 0, 1, "first");
    put(&t, OTA_DEFERRED_ASSIGNMENT, 1, 0, 2, "second");
    put(&t, OTA_DEFERRED_ASSIGNMENT, 1, 0, 1, NULL);
    put(&t, OTA_DEFERRED_DEVICE, 2, 500, 0, NULL);
    put(&t, OTA_DEFERRED_DEVICE, 2, 900, 0, NULL);
    put(&t, OTA_DEFERRED_DEVICE, 2, 700, 0, NULL);
    assert_int_equal(t.used, 2);
    const ota_deferred_row_t *a = get(&t, OTA_DEFERRED_ASSIGNMENT, 1);
    assert_non_null(a);
    assert_int_equal(a->n, 5);
    assert_string_equal(a->signature, "second");
    const ota_deferred_row_t *d = get(&t, OTA_DEFERRED_DEVICE, 2);
    assert_non_null(d);
    assert_int_equal(d->seen_ms, 900);
    ota__deferred_table_free(&t);
}

/* The two signatures of an assignment (without and with a delta) are kept apart, the newer of each standing. */
static void test_delta_signature_merge(void **state)
{
    (void)state;
    ota_deferred_table_t t = {0};
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_ASSIGNMENT, .delta_signature = strdup("delta-first")};
    make_id(r.id, 1);
    ota__deferred_table_put(&t, &r);
    assert_null(r.delta_signature);
    put(&t, OTA_DEFERRED_ASSIGNMENT, 1, 0, 1, "plain");
    r.delta_signature = strdup("delta-second");
    ota__deferred_table_put(&t, &r);
    r.delta_signature = NULL;
    ota__deferred_table_put(&t, &r); /* a row without one leaves it */
    const ota_deferred_row_t *a = get(&t, OTA_DEFERRED_ASSIGNMENT, 1);
    assert_non_null(a);
    assert_string_equal(a->signature, "plain");
    assert_string_equal(a->delta_signature, "delta-second");
    ota__deferred_table_free(&t); /* ASan: both freed, once */
}

/* A row's progress: the latest report stands; a row without one (a re-delivery) leaves it as it is. */
static void test_progress_merge(void **state)
{
    (void)state;
    ota_deferred_table_t t = {0};
    ota_deferred_row_t r = {.kind = OTA_DEFERRED_ASSIGNMENT,
                            .progress = {.state = 1, .bytes = 10, .total = 100, .at_ms = 50}};
    make_id(r.id, 7);
    ota__deferred_table_put(&t, &r);
    put(&t, OTA_DEFERRED_ASSIGNMENT, 7, 0, 1, NULL); /* a re-delivery: no progress */
    r.progress = (ota_deferred_progress_t){.state = 1, .bytes = 60, .total = 100, .at_ms = 90};
    ota__deferred_table_put(&t, &r);
    r.progress = (ota_deferred_progress_t){.state = 2, .bytes = 5, .total = 100, .at_ms = 70}; /* older: ignored */
    ota__deferred_table_put(&t, &r);
    const ota_deferred_row_t *a = get(&t, OTA_DEFERRED_ASSIGNMENT, 7);
    assert_non_null(a);
    assert_int_equal(a->n, 1);
    assert_int_equal(a->progress.state, 1);
    assert_int_equal(a->progress.bytes, 60);
    assert_int_equal(a->progress.at_ms, 90);
    assert_string_equal(ota__progress_states[a->progress.state - 1], "downloading");
    ota__deferred_table_free(&t);
}

/* A device and an assignment with the same id are two rows. */
static void test_kinds_apart(void **state)
{
    (void)state;
    ota_deferred_table_t t = {0};
    put(&t, OTA_DEFERRED_DEVICE, 7, 100, 0, NULL);
    put(&t, OTA_DEFERRED_ASSIGNMENT, 7, 0, 3, NULL);
    assert_int_equal(t.used, 2);
    char id[OTA_UUID_LEN + 1];
    make_id(id, 7);
    assert_true(ota__deferred_table_has(&t, OTA_DEFERRED_DEVICE, id));
    assert_true(ota__deferred_table_has(&t, OTA_DEFERRED_ASSIGNMENT, id));
    make_id(id, 8);
    assert_false(ota__deferred_table_has(&t, OTA_DEFERRED_DEVICE, id));
    assert_int_equal(get(&t, OTA_DEFERRED_ASSIGNMENT, 7)->n, 3);
    ota__deferred_table_free(&t);
}

/* Growing keeps every row and its values (ASan checks the signatures are neither lost nor freed twice). */
static void test_grow(void **state)
{
    (void)state;
    ota_deferred_table_t t = {0};
    enum { ROWS = 5000 };
    for (int i = 0; i < ROWS; i++)
        put(&t, i % 2 ? OTA_DEFERRED_DEVICE : OTA_DEFERRED_ASSIGNMENT, i, (uint64_t)i, (uint32_t)i, i % 3 ? NULL : "s");
    assert_int_equal(t.used, ROWS);
    assert_true(t.cap >= 2 * ROWS);
    for (int i = 0; i < ROWS; i++) {
        const ota_deferred_row_t *r = get(&t, i % 2 ? OTA_DEFERRED_DEVICE : OTA_DEFERRED_ASSIGNMENT, i);
        assert_non_null(r);
        assert_int_equal(r->seen_ms, i);
        assert_int_equal(r->n, i);
        assert_int_equal(r->signature != NULL, i % 3 == 0);
    }
    ota__deferred_table_free(&t);
    assert_int_equal(t.cap, 0);
}

/* What a failed write did not store goes back, merged with what was kept meanwhile; the rest is dropped. */
static void test_move_back(void **state)
{
    (void)state;
    ota_deferred_table_t sending = {0}, counting = {0};
    for (int i = 0; i < 100; i++)
        put(&sending, OTA_DEFERRED_ASSIGNMENT, i, 0, 1, "sig");
    put(&counting, OTA_DEFERRED_ASSIGNMENT, 5, 0, 10, NULL);
    /* Slots before `from` count as written. */
    size_t from = sending.cap / 2, unwritten = 0;
    for (size_t k = from; k < sending.cap; k++)
        unwritten += sending.slots[k].used;
    bool five_unwritten = false;
    for (size_t k = from; k < sending.cap; k++)
        five_unwritten |= sending.slots[k].used && get(&sending, OTA_DEFERRED_ASSIGNMENT, 5) == &sending.slots[k];
    ota__deferred_table_move(&counting, &sending, from);
    assert_int_equal(sending.used, 0);
    assert_int_equal(counting.used, unwritten + (five_unwritten ? 0 : 1));
    const ota_deferred_row_t *r = get(&counting, OTA_DEFERRED_ASSIGNMENT, 5);
    assert_int_equal(r->n, five_unwritten ? 11 : 10);
    ota__deferred_table_clear(&counting);
    assert_int_equal(counting.used, 0);
    assert_null(get(&counting, OTA_DEFERRED_ASSIGNMENT, 5));
    ota__deferred_table_free(&counting);
    ota__deferred_table_free(&sending);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),          cmocka_unit_test(test_delta_signature_merge),
        cmocka_unit_test(test_progress_merge), cmocka_unit_test(test_kinds_apart),
        cmocka_unit_test(test_grow),           cmocka_unit_test(test_move_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
