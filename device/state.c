#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "ota/base64.h"
#include "util.h"

const char *ota__slot_file(char slot)
{
    return slot == 'b' ? "slot-b.bin" : "slot-a.bin";
}

char ota__state_inactive(const ota__state_t *st)
{
    return st->active_slot == 'a' ? 'b' : 'a';
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static bool server_valid(const char *s)
{
    size_t n = strlen(s), prefix = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (prefix == 0 || n == prefix || s[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static bool model_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OTA_MANIFEST_MODEL_MAX || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool serial_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OTA_DEVICE_SERIAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool version_valid(const char *s)
{
    ota_semver_t v;
    return ota_semver_parse(s, strlen(s), &v) == OTA_OK && strcmp(v.text, s) == 0;
}

static bool sha256_valid(const char *s)
{
    size_t n = strlen(s);
    if (n != OTA_MANIFEST_SHA256_HEX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static ota_err_t invalid(char *why, size_t cap, const char *field)
{
    if (cap > 0)
        snprintf(why, cap, "bad %s", field);
    return OTA_ERR_INVALID;
}

ota_err_t ota__state_validate(const ota__state_t *st, char *why, size_t cap)
{
    if (!terminated(st->server, sizeof st->server) || !server_valid(st->server))
        return invalid(why, cap, "server");
    if (!terminated(st->device_id, sizeof st->device_id) || !ota__uuid_valid(st->device_id))
        return invalid(why, cap, "device_id");
    if (!terminated(st->token, sizeof st->token) || !ota__token_valid(st->token, OTA_DEVICE_TOKEN_MAX))
        return invalid(why, cap, "token");
    if (!terminated(st->serial, sizeof st->serial) || !serial_valid(st->serial))
        return invalid(why, cap, "serial");
    if (!terminated(st->model, sizeof st->model) || !model_valid(st->model))
        return invalid(why, cap, "model");
    if (!terminated(st->version, sizeof st->version) || !version_valid(st->version))
        return invalid(why, cap, "version");
    if (st->active_slot != 'a' && st->active_slot != 'b')
        return invalid(why, cap, "active_slot");
    for (int i = 0; i < 2; i++) {
        const ota__slot_t *s = &st->slots[i];
        if (!s->present)
            continue;
        if (!terminated(s->version, sizeof s->version) || !version_valid(s->version) ||
            !terminated(s->sha256, sizeof s->sha256) || (s->sha256[0] != '\0' && !sha256_valid(s->sha256)) ||
            s->size > OTA_MANIFEST_SIZE_MAX)
            return invalid(why, cap, i == 0 ? "slots.a" : "slots.b");
    }
    const ota__slot_t *active = &st->slots[st->active_slot - 'a'];
    if (!active->present || strcmp(active->version, st->version) != 0)
        return invalid(why, cap, "active slot (it must hold the running version)");
    if (st->trial_boots < 0 || st->trial_boots > (st->trial ? OTA__TRIAL_BOOTS : 0))
        return invalid(why, cap, "trial_boots");
    if (st->trial && !st->slots[ota__state_inactive(st) - 'a'].present)
        return invalid(why, cap, "trial (a slot on trial needs the other slot to fall back to)");
    return OTA_OK;
}

static json_t *slot_json(const ota__slot_t *s)
{
    if (!s->present)
        return json_null();
    return json_pack("{s:s, s:I, s:s}", "version", s->version, "size", (json_int_t)s->size, "sha256", s->sha256);
}

ota_err_t ota__state_encode(const ota__state_t *st, char **out)
{
    char key[OTA_ED25519_PUBLIC_LEN * 2 + 8];
    char slot[2] = {st->active_slot, '\0'};
    ota_base64_encode(st->public_key, sizeof st->public_key, key);
    json_t *a = slot_json(&st->slots[0]), *b = slot_json(&st->slots[1]);
    if (a == NULL || b == NULL) {
        json_decref(a);
        json_decref(b);
        return OTA_ERR_NOMEM;
    }
    /* "o" steals a and b, also when json_pack fails. */
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:{s:o, s:o}}", "server", st->server,
                          "device_id", st->device_id, "token", st->token, "serial", st->serial, "model", st->model,
                          "public_key", key, "version", st->version, "active_slot", slot, "trial", st->trial,
                          "trial_boots", st->trial_boots, "slots", "a", a, "b", b);
    if (j == NULL)
        return OTA_ERR_NOMEM;
    *out = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return *out != NULL ? OTA_OK : OTA_ERR_NOMEM;
}

/* Copies the string member `name` of `obj` into `dst`; false when it is missing, not a string, or too long. */
static bool get_string(json_t *obj, const char *name, char *dst, size_t cap)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return false;
    return ota__copy(dst, cap, json_string_value(v)) == OTA_OK;
}

static bool get_size(json_t *obj, const char *name, uint64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* The trial members, which state files written before them lack: missing, the active slot is confirmed. */
static bool get_trial(json_t *obj, ota__state_t *st)
{
    json_t *trial = json_object_get(obj, "trial"), *boots = json_object_get(obj, "trial_boots");
    if ((trial != NULL && !json_is_boolean(trial)) || (boots != NULL && !json_is_integer(boots)))
        return false;
    st->trial = json_is_true(trial);
    json_int_t n = boots != NULL ? json_integer_value(boots) : 0;
    if (n < 0 || n > OTA__TRIAL_BOOTS)
        return false;
    st->trial_boots = (int)n;
    return true;
}

static bool get_slot(json_t *slots, const char *name, ota__slot_t *s)
{
    json_t *v = json_object_get(slots, name);
    memset(s, 0, sizeof *s);
    if (json_is_null(v))
        return true;
    if (!json_is_object(v))
        return false;
    s->present = true;
    return get_string(v, "version", s->version, sizeof s->version) && get_size(v, "size", &s->size) &&
           get_string(v, "sha256", s->sha256, sizeof s->sha256);
}

/* Parses `len` bytes of JSON text as an object. */
static ota_err_t parse_object(const char *text, size_t len, json_t **out)
{
    json_t *j = NULL;
    ota_err_t rc = ota__json_parse(text, len, &j, NULL, 0);
    if (rc != OTA_OK)
        return rc;
    if (!json_is_object(j)) {
        json_decref(j);
        return OTA_ERR_INVALID;
    }
    *out = j;
    return OTA_OK;
}

ota_err_t ota__state_decode(const char *text, size_t len, ota__state_t *out, char *why, size_t cap)
{
    ota__state_t *st = calloc(1, sizeof *st);
    json_t *j = NULL;
    char key[64], slot[4];
    size_t key_len = 0;
    ota_err_t rc;
    if (st == NULL)
        return OTA_ERR_NOMEM;
    if ((rc = parse_object(text, len, &j)) != OTA_OK) {
        if (rc == OTA_ERR_INVALID && cap > 0)
            snprintf(why, cap, "not a JSON object");
        goto Exit;
    }
    rc = OTA_ERR_INVALID;
    const char *missing = !get_string(j, "server", st->server, sizeof st->server)            ? "server"
                          : !get_string(j, "device_id", st->device_id, sizeof st->device_id) ? "device_id"
                          : !get_string(j, "token", st->token, sizeof st->token)             ? "token"
                          : !get_string(j, "serial", st->serial, sizeof st->serial)          ? "serial"
                          : !get_string(j, "model", st->model, sizeof st->model)             ? "model"
                          : !get_string(j, "public_key", key, sizeof key)                    ? "public_key"
                          : !get_string(j, "version", st->version, sizeof st->version)       ? "version"
                          : !get_string(j, "active_slot", slot, sizeof slot)                 ? "active_slot"
                          : !get_trial(j, st)                                                ? "trial"
                          : !json_is_object(json_object_get(j, "slots"))                     ? "slots"
                          : !get_slot(json_object_get(j, "slots"), "a", &st->slots[0])       ? "slots.a"
                          : !get_slot(json_object_get(j, "slots"), "b", &st->slots[1])       ? "slots.b"
                                                                                             : NULL;
    if (missing != NULL) {
        invalid(why, cap, missing);
        goto Exit;
    }
    if (ota_base64_decode(key, strlen(key), st->public_key, sizeof st->public_key, &key_len) != OTA_OK ||
        key_len != sizeof st->public_key) {
        invalid(why, cap, "public_key");
        goto Exit;
    }
    if (strlen(slot) != 1) {
        invalid(why, cap, "active_slot");
        goto Exit;
    }
    st->active_slot = slot[0];
    if ((rc = ota__state_validate(st, why, cap)) != OTA_OK)
        goto Exit;
    *out = *st;
Exit:
    json_decref(j);
    free(st);
    return rc;
}

ota_err_t ota__state_load(const char *dir, ota__state_t *out, char *why, size_t cap)
{
    char path[4096], *text = NULL;
    size_t len = 0;
    ota_err_t rc;
    if ((rc = ota__path(path, sizeof path, dir, OTA__STATE_FILE)) != OTA_OK)
        goto Exit;
    if ((rc = ota__read_file(path, OTA__STATE_MAX, &text, &len)) != OTA_OK) {
        if (cap > 0)
            snprintf(why, cap, "cannot read %s: %s", path, ota_strerror(rc));
        goto Exit;
    }
    rc = ota__state_decode(text, len, out, why, cap);
Exit:
    free(text);
    return rc;
}

ota_err_t ota__state_save(const char *dir, const ota__state_t *st, char *why, size_t cap)
{
    char *text = NULL;
    ota_err_t rc;
    if ((rc = ota__state_validate(st, why, cap)) != OTA_OK)
        goto Exit;
    if ((rc = ota__state_encode(st, &text)) != OTA_OK)
        goto Exit;
    if ((rc = ota__write_atomic(dir, OTA__STATE_FILE, text, strlen(text), 0600)) != OTA_OK && cap > 0)
        snprintf(why, cap, "cannot write %s/%s", dir, OTA__STATE_FILE);
Exit:
    free(text);
    return rc;
}

void ota__state_switch(ota__state_t *st, const ota_manifest_t *m)
{
    char slot = ota__state_inactive(st);
    ota__slot_t *s = &st->slots[slot - 'a'];
    memset(s, 0, sizeof *s);
    s->present = true;
    ota__copy(s->version, sizeof s->version, m->version);
    s->size = m->size;
    ota__copy(s->sha256, sizeof s->sha256, m->sha256);
    ota__copy(st->version, sizeof st->version, m->version);
    st->active_slot = slot;
    st->trial = true;
    st->trial_boots = 0;
}

bool ota__state_boot(ota__state_t *st)
{
    if (!st->trial)
        return false;
    if (st->trial_boots < OTA__TRIAL_BOOTS) {
        st->trial_boots++;
        return false;
    }
    st->active_slot = ota__state_inactive(st);
    ota__copy(st->version, sizeof st->version, st->slots[st->active_slot - 'a'].version);
    ota__state_confirm(st);
    return true;
}

void ota__state_confirm(ota__state_t *st)
{
    st->trial = false;
    st->trial_boots = 0;
}

void ota__part_meta_of(const ota_manifest_t *m, ota__part_meta_t *out)
{
    memset(out, 0, sizeof *out);
    ota__copy(out->assignment_id, sizeof out->assignment_id, m->assignment_id);
    ota__copy(out->version, sizeof out->version, m->version);
    out->size = m->size;
    ota__copy(out->sha256, sizeof out->sha256, m->sha256);
}

ota_err_t ota__part_meta_load(const char *dir, const char *name, ota__part_meta_t *out)
{
    char path[4096], *text = NULL;
    size_t len = 0;
    json_t *j = NULL;
    ota__part_meta_t meta;
    ota_err_t rc;
    memset(&meta, 0, sizeof meta);
    if ((rc = ota__path(path, sizeof path, dir, name)) != OTA_OK)
        goto Exit;
    if ((rc = ota__read_file(path, OTA__STATE_MAX, &text, &len)) != OTA_OK)
        goto Exit;
    if ((rc = parse_object(text, len, &j)) != OTA_OK)
        goto Exit;
    if (!get_string(j, "assignment_id", meta.assignment_id, sizeof meta.assignment_id) ||
        !get_string(j, "version", meta.version, sizeof meta.version) || !get_size(j, "size", &meta.size) ||
        !get_string(j, "sha256", meta.sha256, sizeof meta.sha256) || !sha256_valid(meta.sha256)) {
        rc = OTA_ERR_INVALID;
        goto Exit;
    }
    *out = meta;
Exit:
    json_decref(j);
    free(text);
    return rc;
}

ota_err_t ota__part_meta_save(const char *dir, const char *name, const ota__part_meta_t *meta)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "assignment_id", meta->assignment_id, "version", meta->version,
                          "size", (json_int_t)meta->size, "sha256", meta->sha256);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    ota_err_t rc = text == NULL ? OTA_ERR_NOMEM : ota__write_atomic(dir, name, text, strlen(text), 0600);
    free(text);
    json_decref(j);
    return rc;
}

bool ota__part_meta_matches(const ota__part_meta_t *meta, const ota_manifest_t *m)
{
    return meta->size == m->size && strcmp(meta->sha256, m->sha256) == 0;
}

void ota__delta_meta_of(const ota_manifest_t *m, ota__part_meta_t *out)
{
    ota__part_meta_of(m, out);
    out->size = m->delta.size;
    ota__copy(out->sha256, sizeof out->sha256, m->delta.sha256);
}

bool ota__delta_meta_matches(const ota__part_meta_t *meta, const ota_manifest_t *m)
{
    return m->has_delta && meta->size == m->delta.size && strcmp(meta->sha256, m->delta.sha256) == 0;
}

uint64_t ota__resume_offset(bool same_image, uint64_t part_size, uint64_t size)
{
    if (!same_image || part_size > size)
        return 0;
    return part_size;
}
