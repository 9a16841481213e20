#include "http/fleet_filter.h"

#include <stdio.h>
#include <string.h>

#include "core/ids.h"
#include "core/json_util.h"
#include "core/version_range.h"
#include "http/query.h"
#include "http/respond.h"
#include "ota/utf8.h"

const char *const ota__ota_statuses[OTA_STATUS_COUNT] = {"none",   "pending",  "delivered", "applied",
                                                         "failed", "canceled", "rolled_back"};

#define VERSION_PROBLEM "must be up to 8 comparators such as >=1.0.0 <1.2.0"
#define SERIAL_PREFIX_PROBLEM "must be 1 to 128 bytes"
#define STATUS_PROBLEM "must be one of none, pending, delivered, applied, failed, canceled"

static bool serial_prefix_valid(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len <= OTA_SERIAL_PREFIX_MAX;
}

static bool status_valid(const char *s)
{
    for (size_t i = 0; i < OTA_STATUS_COUNT; i++)
        if (strcmp(s, ota__ota_statuses[i]) == 0)
            return true;
    return false;
}

/* Sets list member `key` of `filter` to `tags` (normalized, not stolen) unless it is empty: no tag required. */
static void put_tags(json_t *filter, const char *key, json_t *tags)
{
    if (json_array_size(tags) > 0)
        json_object_set(filter, key, tags);
}

/* --- a body's filter ------------------------------------------------------------------------------------------- */

typedef struct body_reader {
    ota_validate_t *v;
    const char *field;
    json_t *in, *out;
    char name[96]; /* "<field>.<member>" of the member being read, as its problems are named */
    bool ok;
} body_reader_t;

/* How many bytes of `key` to name it by: at most KEY_NAME_MAX, cut between characters. A problem's name is a key
 * of the 422's details, and jansson refuses a key that is not UTF-8: the problem would be lost, and the filter
 * taken as absent, which is every device. */
#define KEY_NAME_MAX 60
static int key_name_len(const char *key)
{
    size_t len = strlen(key), n = 0, step;
    while (n < len && (step = ota_utf8_sequence(key + n, len - n)) > 0 && n + step <= KEY_NAME_MAX)
        n += step;
    return (int)n;
}

/* Member `key` of the given filter, NULL when absent or null; names it for the problems that follow. */
static json_t *member(body_reader_t *r, const char *key)
{
    snprintf(r->name, sizeof r->name, "%s.%.*s", r->field, key_name_len(key), key);
    json_t *value = json_object_get(r->in, key);
    return json_is_null(value) ? NULL : value;
}

static void fail(body_reader_t *r, const char *problem)
{
    ota__validate_fail(r->v, r->name, problem);
    r->ok = false;
}

static const char *string_member(body_reader_t *r, const char *key)
{
    json_t *value = member(r, key);
    if (value != NULL && !json_is_string(value)) {
        ota__validate_wrong_type(r->v, r->name, "a string");
        r->ok = false;
        return NULL;
    }
    return json_string_value(value);
}

static void refuse_unknown(body_reader_t *r)
{
    static const char *const KNOWN[] = {"model", "tags_all", "tags_any", "version", "serial_prefix", "ids"};
    const char *key;
    json_t *value;
    json_object_foreach(r->in, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
            known = known || strcmp(key, KNOWN[i]) == 0;
        if (!known) {
            member(r, key);
            fail(r, "is not a filter member (model, tags_all, tags_any, version, serial_prefix, ids)");
        }
    }
}

static void read_model(body_reader_t *r)
{
    const char *model = string_member(r, "model");
    if (model == NULL)
        return;
    if (!ota__slug_valid(model, strlen(model)))
        fail(r, "must be a model id");
    else
        json_object_set_new(r->out, "model", ota__json_checked(json_string(model)));
}

static void read_tags(body_reader_t *r, const char *key)
{
    json_t *value = member(r, key);
    if (value == NULL)
        return;
    json_t *tags = ota__tags_read(r->v, value, r->name);
    if (tags == NULL)
        r->ok = false;
    else if (json_array_size(tags) == 0 && strcmp(key, "tags_any") == 0)
        fail(r, "must name at least one tag");
    else
        put_tags(r->out, key, tags);
    json_decref(tags);
}

static void read_version(body_reader_t *r)
{
    char normalized[OTA_VERSION_RANGE_MAX];
    const char *range = string_member(r, "version");
    if (range == NULL)
        return;
    if (!ota__version_range_normalize(range, normalized))
        fail(r, VERSION_PROBLEM);
    else
        json_object_set_new(r->out, "version", ota__json_checked(json_string(normalized)));
}

static void read_serial_prefix(body_reader_t *r)
{
    const char *prefix = string_member(r, "serial_prefix");
    if (prefix == NULL)
        return;
    if (!serial_prefix_valid(prefix))
        fail(r, SERIAL_PREFIX_PROBLEM);
    else
        json_object_set_new(r->out, "serial_prefix", ota__json_checked(json_string(prefix)));
}

static void read_ids(body_reader_t *r)
{
    json_t *value = member(r, "ids"), *id;
    size_t i;
    if (value == NULL)
        return;
    if (!ota__validate_string_array(r->v, value, r->name)) {
        r->ok = false;
        return;
    }
    if (json_array_size(value) == 0 || json_array_size(value) > OTA_FLEET_IDS_MAX) {
        fail(r, "must hold 1 to 10000 device ids");
        return;
    }
    json_t *lower = ota__json_checked(json_array());
    bool valid = true;
    json_array_foreach(value, i, id)
    {
        char uuid[OTA_UUID_LEN + 1];
        valid = ota__uuid_parse(json_string_value(id), json_string_length(id), uuid);
        if (!valid)
            break;
        json_array_append_new(lower, ota__json_checked(json_string(uuid)));
    }
    if (valid)
        json_object_set_new(r->out, "ids", ota__json_strings_sorted(lower));
    else
        fail(r, "each id must be a UUID");
    json_decref(lower);
}

json_t *ota__fleet_filter_read(ota_validate_t *v, const char *field)
{
    json_t *in = v->object != NULL ? json_object_get(v->object, field) : NULL;
    if (in == NULL || json_is_null(in))
        return NULL;
    if (!json_is_object(in)) {
        ota__validate_wrong_type(v, field, "an object");
        return NULL;
    }
    body_reader_t r = {.v = v, .field = field, .in = in, .out = ota__json_checked(json_object()), .ok = true};
    refuse_unknown(&r);
    read_model(&r);
    read_tags(&r, "tags_all");
    read_tags(&r, "tags_any");
    read_version(&r);
    read_serial_prefix(&r);
    read_ids(&r);
    if (r.ok)
        return r.out;
    json_decref(r.out);
    return NULL;
}

/* --- a list's query string ------------------------------------------------------------------------------------- */

typedef struct query_reader {
    const char *query;
    size_t len;
    json_t *out;
    char *err;
    size_t cap;
    bool ok;
} query_reader_t;

/* Notes the first problem only: the answer names one. */
static void query_fail(query_reader_t *r, const char *name, const char *problem)
{
    if (r->ok)
        snprintf(r->err, r->cap, "query parameter '%s': %s", name, problem);
    r->ok = false;
}

/* The one value of parameter `name`, into `out`; false when it is absent or malformed (then noted). */
static bool query_single(query_reader_t *r, const char *name, char out[OTA_QUERY_VALUE_MAX])
{
    ota_query_result_t got = ota__query_get(r->query, r->len, name, out);
    if (got == OTA_QUERY_INVALID)
        query_fail(r, name, "is malformed or repeated");
    return got == OTA_QUERY_FOUND;
}

/* Every value of the repeatable parameter `name`, as the tag list `key`. */
static void query_tags(query_reader_t *r, const char *name, const char *key)
{
    char value[OTA_QUERY_VALUE_MAX];
    size_t pos = 0;
    ota_query_result_t got;
    json_t *tags = ota__json_checked(json_array());
    while ((got = ota__query_next(r->query, r->len, name, &pos, value)) == OTA_QUERY_FOUND && r->ok) {
        if (!ota__tag_valid(value))
            query_fail(r, name, OTA_TAG_PROBLEM);
        json_array_append_new(tags, ota__json_checked(json_string(value)));
    }
    if (got == OTA_QUERY_INVALID)
        query_fail(r, name, "is malformed");
    json_t *sorted = ota__json_strings_sorted(tags);
    if (json_array_size(sorted) > OTA_TAGS_MAX)
        query_fail(r, name, "names more than 32 distinct tags");
    put_tags(r->out, key, sorted);
    json_decref(sorted);
    json_decref(tags);
}

static void query_version(query_reader_t *r)
{
    char value[OTA_QUERY_VALUE_MAX], normalized[OTA_VERSION_RANGE_MAX];
    if (!query_single(r, "version", value))
        return;
    if (!ota__version_range_normalize(value, normalized))
        query_fail(r, "version", VERSION_PROBLEM);
    json_object_set_new(r->out, "version", ota__json_checked(json_string(normalized)));
}

static void query_string(query_reader_t *r, const char *name, bool (*valid)(const char *), const char *problem)
{
    char value[OTA_QUERY_VALUE_MAX];
    if (!query_single(r, name, value))
        return;
    if (valid != NULL && !valid(value))
        query_fail(r, name, problem);
    json_object_set_new(r->out, name, ota__json_checked(json_string(value)));
}

json_t *ota__fleet_filter_from_query(const char *query, size_t len, char *err, size_t cap)
{
    query_reader_t r = {
        .query = query, .len = len, .out = ota__json_checked(json_object()), .err = err, .cap = cap, .ok = true};
    /* Any model: one that does not exist matches nothing, as it always has on this list. */
    query_string(&r, "model", NULL, NULL);
    query_string(&r, "ota_status", status_valid, STATUS_PROBLEM);
    query_tags(&r, "tag", "tags_all");
    query_tags(&r, "tag_any", "tags_any");
    query_version(&r);
    query_string(&r, "serial_prefix", serial_prefix_valid, SERIAL_PREFIX_PROBLEM);
    if (r.ok)
        return r.out;
    json_decref(r.out);
    return NULL;
}

json_t *ota__fleet_filter_query(ota_call_t *call)
{
    const char *query;
    size_t len;
    char err[256];
    ota__query_string(call, &query, &len);
    json_t *filter = ota__fleet_filter_from_query(query, len, err, sizeof err);
    if (filter == NULL)
        ota__respond_error(call, 400, "bad_request", NULL, "%s", err);
    return filter;
}
