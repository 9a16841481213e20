#include "http/validate.h"

#include <stdio.h>

#include "http/respond.h"

void ota__validate_init(ota_validate_t *v, json_t *object)
{
    v->object = object;
    v->fields = json_object();
    v->type_error[0] = '\0';
    if (v->fields == NULL)
        h2o_fatal("out of memory");
}

const char *ota__validate_string(ota_validate_t *v, const char *name, bool required)
{
    json_t *value = v->object != NULL ? json_object_get(v->object, name) : NULL;
    if (value == NULL || json_is_null(value)) {
        if (required)
            ota__validate_fail(v, name, "is required");
        return NULL;
    }
    if (!json_is_string(value)) {
        ota__validate_wrong_type(v, name, "a string");
        return NULL;
    }
    return json_string_value(value);
}

bool ota__validate_integer(ota_validate_t *v, const char *name, bool required, json_int_t *out)
{
    json_t *value = v->object != NULL ? json_object_get(v->object, name) : NULL;
    if (value == NULL || json_is_null(value)) {
        if (required)
            ota__validate_fail(v, name, "is required");
        return false;
    }
    if (!json_is_integer(value)) {
        ota__validate_wrong_type(v, name, "an integer");
        return false;
    }
    *out = json_integer_value(value);
    return true;
}

bool ota__validate_number(ota_validate_t *v, const char *name, double *out)
{
    json_t *value = v->object != NULL ? json_object_get(v->object, name) : NULL;
    if (value == NULL || json_is_null(value))
        return false;
    if (!json_is_number(value)) {
        ota__validate_wrong_type(v, name, "a number");
        return false;
    }
    *out = json_number_value(value);
    return true;
}

json_t *ota__validate_array(ota_validate_t *v, const char *name)
{
    json_t *value = v->object != NULL ? json_object_get(v->object, name) : NULL;
    if (value == NULL || json_is_null(value))
        return NULL;
    if (!json_is_array(value)) {
        ota__validate_wrong_type(v, name, "an array");
        return NULL;
    }
    return value;
}

bool ota__validate_boolean(ota_validate_t *v, const char *name, bool def)
{
    json_t *value = v->object != NULL ? json_object_get(v->object, name) : NULL;
    if (value == NULL || json_is_null(value))
        return def;
    if (!json_is_boolean(value)) {
        ota__validate_wrong_type(v, name, "a boolean");
        return def;
    }
    return json_is_true(value);
}

bool ota__validate_object(ota_validate_t *v, const char *name, ota_validate_t *sub)
{
    json_t *value = v->object != NULL ? json_object_get(v->object, name) : NULL;
    if (value == NULL || json_is_null(value))
        return false;
    if (!json_is_object(value)) {
        ota__validate_wrong_type(v, name, "an object");
        return false;
    }
    ota__validate_init(sub, value);
    return true;
}

void ota__validate_end_object(ota_validate_t *v, const char *name, ota_validate_t *sub)
{
    if (sub->type_error[0] != '\0' && v->type_error[0] == '\0')
        snprintf(v->type_error, sizeof v->type_error, "%.20s: %.130s", name, sub->type_error);
    json_decref(sub->fields);
    sub->fields = NULL;
}

void ota__validate_wrong_type(ota_validate_t *v, const char *field, const char *what)
{
    if (v->type_error[0] == '\0')
        snprintf(v->type_error, sizeof v->type_error, "field '%s' must be %s", field, what);
}

bool ota__validate_string_array(ota_validate_t *v, json_t *value, const char *field)
{
    size_t i;
    json_t *item;
    bool strings = json_is_array(value);
    json_array_foreach(value, i, item)
    {
        strings = strings && json_is_string(item);
    }
    if (!strings)
        ota__validate_wrong_type(v, field, "an array of strings");
    return strings;
}

void ota__validate_fail(ota_validate_t *v, const char *field, const char *problem)
{
    if (json_object_get(v->fields, field) == NULL)
        json_object_set_new(v->fields, field, json_string(problem));
}

bool ota__validate_done(ota_validate_t *v, ota_call_t *call)
{
    json_t *fields = v->fields;
    v->fields = NULL;
    if (v->type_error[0] != '\0') {
        json_decref(fields);
        ota__respond_error(call, 400, "bad_request", NULL, "%s", v->type_error);
        return false;
    }
    if (json_object_size(fields) > 0) {
        const char *first = json_object_iter_key(json_object_iter(fields));
        ota__respond_error(call, 422, "validation_failed", json_pack("{s:o}", "fields", fields),
                           "invalid field '%s': %s", first, json_string_value(json_object_get(fields, first)));
        return false;
    }
    json_decref(fields);
    return true;
}
