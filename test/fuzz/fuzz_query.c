/*
 * libFuzzer driver for query strings: the parameter reader (http/query.c),
 * paging (?limit=&after=) and the fleet filter of a device list
 * (http/fleet_filter.c), each as a request's handler runs it. The input is
 * the query string, after the '?'.
 *
 * The reader must end every scan, moving forward, and give values that fit;
 * a parameter found once by ota__query_get is the first and only one
 * ota__query_next finds. Paging gives a limit in range. A filter that reads
 * is a normalized one: known members only, tag lists sorted, distinct and
 * valid, a version range in normal form. Whatever is refused is answered
 * with an error the server can build (respond_stub.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/fleet_filter.h"
#include "http/query.h"
#include "filter_check.h"
#include "respond_stub.h"

#define check(ok) check_at((ok), __LINE__)

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_query.c:%d: check failed\n", line);
        abort();
    }
}

static const char *const NAMES[] = {"tag", "limit", "after", "model", "version"};

/* Every occurrence of `name`, one after the other. */
static void scan(const char *query, size_t len, const char *name)
{
    char value[OTA_QUERY_VALUE_MAX], first[OTA_QUERY_VALUE_MAX];
    size_t pos = 0, found = 0;
    ota_query_result_t r, got;

    for (size_t steps = 0;; steps++) {
        size_t before = pos;
        check(steps <= len + 1);
        r = ota__query_next(query, len, name, &pos, value);
        check(pos <= len);
        if (r == OTA_QUERY_ABSENT) {
            check(pos == len);
            break;
        }
        check(pos > before || (before == 0 && len == 0));
        if (r == OTA_QUERY_FOUND) {
            check(strlen(value) < OTA_QUERY_VALUE_MAX);
            if (found == 0)
                memcpy(first, value, sizeof first);
        }
        if (r == OTA_QUERY_FOUND || r == OTA_QUERY_INVALID)
            found++;
        if (pos == len)
            break;
    }
    got = ota__query_get(query, len, name, value);
    check(got != OTA_QUERY_ABSENT || found == 0);
    if (got == OTA_QUERY_FOUND)
        check(found == 1 && strcmp(value, first) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char prefix[] = "/v1/devices?";
    char *path = malloc(sizeof prefix - 1 + size + 1);
    const char *query = NULL;
    size_t len = 0;
    h2o_req_t req;
    ota_call_t call;
    ota_page_t page;

    check(path != NULL);
    memcpy(path, prefix, sizeof prefix - 1);
    if (size > 0)
        memcpy(path + sizeof prefix - 1, data, size);
    memset(&req, 0, sizeof req);
    memset(&call, 0, sizeof call);
    req.path = h2o_iovec_init(path, sizeof prefix - 1 + size);
    req.query_at = sizeof prefix - 2;
    call.req = &req;
    ota__query_string(&call, &query, &len);
    check(query == path + sizeof prefix - 1 && len == size);

    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        scan(query, len, NAMES[i]);

    ota_fuzz_answer_reset();
    if (ota__page_read(&call, &page)) {
        check(ota_fuzz_answer.count == 0);
        check(page.limit >= 1 && page.limit <= OTA_PAGE_MAX && atoi(page.limit_plus_one) == page.limit + 1);
        check(strlen(page.after_id) == 36);
    } else {
        check(ota_fuzz_answer.count == 1 && ota_fuzz_answer.status == 400);
    }

    ota_fuzz_answer_reset();
    json_t *filter = ota__fleet_filter_query(&call);
    if (filter != NULL) {
        check(ota_fuzz_answer.count == 0);
        ota_fuzz_check_filter(filter, 1);
        json_decref(filter);
    } else {
        check(ota_fuzz_answer.count == 1 && ota_fuzz_answer.status == 400);
    }
    free(path);
    return 0;
}
