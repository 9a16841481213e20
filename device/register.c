/*
 * Provisioning (ota_device_register): what a factory does once per device.
 *
 * Two forms: with an admin API key the device is created here (POST
 * /v1/devices); with a device id and token, an operator created it
 * beforehand (the same request, whose answer showed the token once), and
 * the token is checked against it instead.
 *
 * The order matters: the signing key is fetched and checked first, so a
 * server that cannot show a valid key gets no device created; the device is
 * created or checked; then the state directory is written, slot a (the
 * factory image) before state.json, so a state.json always names slots that
 * exist. A refused check writes nothing.
 */
#include "ota/device.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "http.h"
#include "json.h"
#include "ota/base64.h"
#include "ota/semver.h"
#include "state.h"
#include "util.h"
#include "ota/hex.h"

__attribute__((format(printf, 4, 5))) static ota_err_t say(char *errmsg, size_t cap, ota_err_t rc, const char *fmt, ...)
{
    va_list ap;
    if (cap == 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(errmsg, cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* The server during one registration. */
typedef struct api {
    CURL *c;
    const char *server; /* without trailing slashes */
    long timeout_ms;
} api_t;

/*
 * `method` on the server's `path`, with the bearer credential and the JSON `body` when they are not NULL. OTA_OK only
 * when the answer has the status `want`: `resp` then holds it and `*j` its body, parsed (NULL when it is not JSON;
 * the caller frees both, also after an error). `doing` ("get the signing key") names the step when no answer came.
 */
static ota_err_t api_call(const api_t *api, const char *method, const char *path, const char *bearer, const char *body,
                          long want, const char *doing, ota__http_resp_t *resp, json_t **j, char *errmsg, size_t cap)
{
    char url[OTA_DEVICE_URL_MAX + 64], why[300];
    ota_err_t rc;
    if (ota__fmt(url, sizeof url, "%s%s", api->server, path) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "server URL too long");
    if ((rc = ota__http_request(api->c, method, url, bearer, body, api->timeout_ms, resp, why, sizeof why)) != OTA_OK)
        return say(errmsg, cap, rc, "cannot %s: %s", doing, why);
    if (resp->status != want) {
        ota__http_describe(resp, why, sizeof why);
        return say(errmsg, cap, resp->status >= 500 ? OTA_ERR_UNAVAILABLE : OTA_ERR_INVALID, "%s %s: %s", method, path,
                   why);
    }
    if (ota__json_parse(resp->body, resp->len, j, NULL, 0) == OTA_ERR_NOMEM)
        return say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
    return OTA_OK;
}

/* The pinned key: GET /v1/signing-key must answer {"alg": "Ed25519", "public_key": base64 of 32 bytes}. */
static ota_err_t fetch_key(const api_t *api, unsigned char key[OTA_ED25519_PUBLIC_LEN], char *errmsg, size_t cap)
{
    ota__http_resp_t resp = {0};
    json_t *j = NULL;
    size_t n = 0;
    ota_err_t rc =
        api_call(api, "GET", "/v1/signing-key", NULL, NULL, 200, "get the signing key", &resp, &j, errmsg, cap);
    if (rc != OTA_OK)
        goto Exit;
    json_t *alg = json_object_get(j, "alg"), *pub = json_object_get(j, "public_key");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "Ed25519") != 0 || !json_is_string(pub) ||
        ota_base64_decode(json_string_value(pub), json_string_length(pub), key, OTA_ED25519_PUBLIC_LEN, &n) != OTA_OK ||
        n != OTA_ED25519_PUBLIC_LEN) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "GET /v1/signing-key: not an Ed25519 public key: %.200s", resp.body);
        goto Exit;
    }
Exit:
    json_decref(j);
    ota__http_resp_free(&resp);
    return rc;
}

/* POST /v1/devices with the API key: 201 with "id" and "token". */
static ota_err_t create_device(const api_t *api, const ota_device_registration_t *reg, ota__state_t *st, char *errmsg,
                               size_t cap)
{
    char *body = NULL;
    ota__http_resp_t resp = {0};
    json_t *req = NULL, *j = NULL;
    ota_err_t rc;
    if ((req = json_pack("{s:s, s:s, s:s}", "serial", st->serial, "model", st->model, "firmware_version",
                         st->version)) == NULL ||
        (body = json_dumps(req, JSON_COMPACT)) == NULL) {
        rc = say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
    if ((rc = api_call(api, "POST", "/v1/devices", reg->api_key, body, 201, "create the device", &resp, &j, errmsg,
                       cap)) != OTA_OK)
        goto Exit;
    json_t *id = json_object_get(j, "id"), *token = json_object_get(j, "token");
    if (!json_is_string(id) || ota__copy(st->device_id, sizeof st->device_id, json_string_value(id)) != OTA_OK ||
        !ota__uuid_valid(st->device_id) || !json_is_string(token) ||
        ota__copy(st->token, sizeof st->token, json_string_value(token)) != OTA_OK ||
        !ota__token_valid(st->token, OTA_DEVICE_TOKEN_MAX)) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "POST /v1/devices: no valid id and token in the answer");
        goto Exit;
    }
Exit:
    json_decref(req);
    json_decref(j);
    free(body);
    ota__http_resp_free(&resp);
    return rc;
}

/*
 * A device an operator created (st holds its id and token): GET /v1/devices/{id} with the token answers 200 only to
 * that device's own token, and the device it describes must be the one given (serial and model), so that a token
 * copied from the wrong line of a list is refused before anything is written.
 */
static ota_err_t check_device(const api_t *api, const ota__state_t *st, char *errmsg, size_t cap)
{
    char path[64];
    ota__http_resp_t resp = {0};
    json_t *j = NULL;
    snprintf(path, sizeof path, "/v1/devices/%s", st->device_id);
    ota_err_t rc = api_call(api, "GET", path, st->token, NULL, 200, "check the device", &resp, &j, errmsg, cap);
    if (rc != OTA_OK) {
        if ((resp.status == 401 || resp.status == 403) && cap > 0) {
            size_t n = strlen(errmsg);
            snprintf(errmsg + n, cap - n, " (not this device's token)");
        }
        goto Exit;
    }
    const char *id = json_string_value(json_object_get(j, "id")),
               *serial = json_string_value(json_object_get(j, "serial")),
               *model = json_string_value(json_object_get(j, "model"));
    if (id == NULL || serial == NULL || model == NULL || strcmp(id, st->device_id) != 0) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "GET %s: the answer is not this device: %.200s", path, resp.body);
        goto Exit;
    }
    if (strcmp(serial, st->serial) != 0 || strcmp(model, st->model) != 0) {
        rc = say(errmsg, cap, OTA_ERR_INVALID,
                 "device %s is serial \"%.128s\" of model %.64s on the server, not serial \"%s\" of model %s",
                 st->device_id, serial, model, st->serial, st->model);
        goto Exit;
    }
Exit:
    json_decref(j);
    ota__http_resp_free(&resp);
    return rc;
}

/* Slot a gets a placeholder factory image, recorded with its real size and SHA-256. */
static ota_err_t write_factory_slot(const char *dir, ota__state_t *st, char *errmsg, size_t cap)
{
    char image[OTA_SEMVER_MAX + 64];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int n = snprintf(image, sizeof image, "factory image %s\n", st->version);
    if (n < 0 || (size_t)n >= sizeof image)
        return say(errmsg, cap, OTA_ERR_INVALID, "version too long");
    if (EVP_Digest(image, (size_t)n, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return say(errmsg, cap, OTA_ERR_NOMEM, "cannot hash the factory image");
    if (ota__write_atomic(dir, ota__slot_file('a'), image, (size_t)n, 0644) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_IO, "cannot write %s/%s: %s", dir, ota__slot_file('a'), strerror(errno));
    ota__slot_t *a = &st->slots[0];
    a->present = true;
    ota__copy(a->version, sizeof a->version, st->version);
    a->size = (uint64_t)n;
    ota_hex_encode(md, md_len, a->sha256);
    st->active_slot = 'a';
    return OTA_OK;
}

/* The arguments that need no server: which form, and each value well-formed. */
static ota_err_t check_registration(const ota_device_registration_t *reg, char *errmsg, size_t cap)
{
    if (reg == NULL || reg->state_dir == NULL || reg->server == NULL || reg->serial == NULL || reg->model == NULL ||
        reg->version == NULL)
        return say(errmsg, cap, OTA_ERR_INVALID, "state_dir, server, serial, model and version are required");
    bool adopt = reg->device_id != NULL || reg->token != NULL;
    if ((reg->api_key != NULL) == adopt)
        return say(errmsg, cap, OTA_ERR_INVALID,
                   "either api_key (to create the device) or device_id and token (a device created already)");
    if (adopt && (reg->device_id == NULL || reg->token == NULL))
        return say(errmsg, cap, OTA_ERR_INVALID, "device_id and token go together");
    if (reg->api_key != NULL && !ota__token_valid(reg->api_key, 256))
        return say(errmsg, cap, OTA_ERR_INVALID, "malformed API key");
    if (adopt && !ota__uuid_valid(reg->device_id))
        return say(errmsg, cap, OTA_ERR_INVALID, "device id \"%.64s\" is not a UUID (lower-case 8-4-4-4-12 hex)",
                   reg->device_id);
    /* An API key given as the token would pass GET /v1/devices/{id}, then fail every heartbeat. */
    if (adopt && (!ota__token_valid(reg->token, OTA_DEVICE_TOKEN_MAX) || strncmp(reg->token, "otd_", 4) != 0))
        return say(errmsg, cap, OTA_ERR_INVALID, "malformed device token (otd_...)");
    return OTA_OK;
}

/* The state to write, from the arguments: everything but what the server gives must already be valid. */
static ota_err_t init_state(const ota_device_registration_t *reg, ota__state_t *st, char *errmsg, size_t cap)
{
    char why[300];
    ota_semver_t version;
    ota_err_t rc;
    if (ota_semver_parse(reg->version, strlen(reg->version), &version) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "version \"%s\" is not a semantic version", reg->version);
    /* The server URL is kept without trailing slashes. */
    size_t n = strlen(reg->server);
    while (n > 0 && reg->server[n - 1] == '/')
        n--;
    if (n >= sizeof st->server)
        return say(errmsg, cap, OTA_ERR_INVALID, "server URL too long");
    memcpy(st->server, reg->server, n);
    st->server[n] = '\0';
    if (ota__copy(st->serial, sizeof st->serial, reg->serial) != OTA_OK ||
        ota__copy(st->model, sizeof st->model, reg->model) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "serial or model too long");
    ota__copy(st->version, sizeof st->version, version.text);
    /* A device the server is to create gets its id and token from it; stand-ins until then. */
    ota__copy(st->device_id, sizeof st->device_id,
              reg->device_id != NULL ? reg->device_id : "00000000-0000-0000-0000-000000000000");
    ota__copy(st->token, sizeof st->token, reg->token != NULL ? reg->token : "x");
    st->active_slot = 'a';
    st->slots[0].present = true;
    ota__copy(st->slots[0].version, sizeof st->slots[0].version, st->version);
    if ((rc = ota__state_validate(st, why, sizeof why)) != OTA_OK)
        return say(errmsg, cap, rc, "%s", why);
    return OTA_OK;
}

/* Creates `dir` if missing (`*made` says whether it did); refuses one that holds a state.json. */
static ota_err_t prepare_dir(const char *dir, bool *made, char *errmsg, size_t cap)
{
    char path[4096];
    struct stat sb;
    *made = mkdir(dir, 0700) == 0;
    if (!*made && errno != EEXIST)
        return say(errmsg, cap, OTA_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    if (ota__path(path, sizeof path, dir, OTA__STATE_FILE) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "state directory path too long");
    if (stat(path, &sb) == 0)
        return say(errmsg, cap, OTA_ERR_INVALID, "%s exists: this state directory is registered already", path);
    return OTA_OK;
}

ota_err_t ota_device_register(const ota_device_registration_t *reg, char *errmsg, size_t cap)
{
    ota_err_t rc;
    ota__state_t *st = NULL;
    api_t api = {0};
    char why[300];
    bool made = false;

    if (cap > 0)
        errmsg[0] = '\0';
    if ((rc = check_registration(reg, errmsg, cap)) != OTA_OK)
        return rc;
    if ((st = calloc(1, sizeof *st)) == NULL)
        return say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
    if ((rc = init_state(reg, st, errmsg, cap)) != OTA_OK ||
        (rc = prepare_dir(reg->state_dir, &made, errmsg, cap)) != OTA_OK)
        goto Exit;
    if ((api.c = curl_easy_init()) == NULL) {
        rc = say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
    api.server = st->server;
    api.timeout_ms = reg->timeout_ms > 0 ? reg->timeout_ms : OTA_DEVICE_TIMEOUT_MS;
    if ((rc = fetch_key(&api, st->public_key, errmsg, cap)) != OTA_OK)
        goto Exit;
    rc = reg->api_key != NULL ? create_device(&api, reg, st, errmsg, cap) : check_device(&api, st, errmsg, cap);
    if (rc != OTA_OK || (rc = write_factory_slot(reg->state_dir, st, errmsg, cap)) != OTA_OK)
        goto Exit;
    if ((rc = ota__state_save(reg->state_dir, st, why, sizeof why)) != OTA_OK) {
        say(errmsg, cap, rc, "device %s is on the server, but its state could not be saved: %s", st->device_id, why);
        goto Exit;
    }
Exit:
    /* A refused registration leaves no directory behind (rmdir removes only an empty one). */
    if (rc != OTA_OK && made)
        rmdir(reg->state_dir);
    if (api.c != NULL)
        curl_easy_cleanup(api.c);
    if (st != NULL)
        memset(st->token, 0, sizeof st->token);
    free(st);
    return rc;
}
