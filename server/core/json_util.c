#include "core/json_util.h"

#include <stdlib.h>
#include <string.h>

#include <h2o.h>

json_t *ota__json_checked(json_t *value)
{
    if (value == NULL)
        h2o_fatal("out of memory");
    return value;
}

json_t *ota__json_col_string(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    return ota__json_checked(json_stringn(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col)));
}

json_t *ota__json_col_bool(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    return json_boolean(PQgetvalue(res, row, col)[0] == 't');
}

json_t *ota__json_col_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    return ota__json_checked(json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10)));
}

json_t *ota__json_col_json(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    json_t *value = json_loadb(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), JSON_DECODE_ANY, NULL);
    return value != NULL ? value : json_null();
}

char *ota__json_text(const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        h2o_fatal("out of memory");
    return text;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *ota__json_strings_sorted(json_t *strings)
{
    size_t n = json_array_size(strings), i;
    const char **sorted = malloc((n > 0 ? n : 1) * sizeof *sorted);
    json_t *out = ota__json_checked(json_array()), *s;
    if (sorted == NULL)
        h2o_fatal("out of memory");
    json_array_foreach(strings, i, s)
    {
        sorted[i] = json_string_value(s);
    }
    qsort(sorted, n, sizeof *sorted, compare_strings);
    for (i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
            json_array_append_new(out, ota__json_checked(json_string(sorted[i])));
    free(sorted);
    return out;
}
