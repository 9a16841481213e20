/*
 * Provisioning (ota_device_register): what a factory does once per device.
 *
 * The order matters: the signing key is fetched and checked first, so a
 * server that cannot show a valid key gets no device created; the device is
 * created; then the state directory is written, slot a (the factory image)
 * before state.json, so a state.json always names slots that exist.
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

/* The pinned key: GET /v1/signing-key must answer {"alg": "Ed25519", "public_key": base64 of 32 bytes}. */
static ota_err_t fetch_key(CURL *c, const char *server, long timeout_ms, unsigned char key[OTA_ED25519_PUBLIC_LEN],
                           char *errmsg, size_t cap)
{
    char url[OTA_DEVICE_URL_MAX + 64], why[300];
    ota__http_resp_t resp = {0};
    json_t *j = NULL;
    size_t n = 0;
    ota_err_t rc;
    if (ota__fmt(url, sizeof url, "%s/v1/signing-key", server) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "server URL too long");
    if ((rc = ota__http_request(c, "GET", url, NULL, NULL, timeout_ms, &resp, why, sizeof why)) != OTA_OK) {
        say(errmsg, cap, rc, "cannot get the signing key: %s", why);
        goto Exit;
    }
    if (resp.status != 200) {
        ota__http_describe(&resp, why, sizeof why);
        rc = say(errmsg, cap, resp.status >= 500 ? OTA_ERR_UNAVAILABLE : OTA_ERR_INVALID, "GET /v1/signing-key: %s",
                 why);
        goto Exit;
    }
    if (ota__json_parse(resp.body, resp.len, &j, NULL, 0) == OTA_ERR_NOMEM) {
        rc = say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
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

/* POST /v1/devices: 201 with "id" and "token". */
static ota_err_t create_device(CURL *c, const ota_device_registration_t *reg, const char *server, const char *version,
                               ota__state_t *st, char *errmsg, size_t cap)
{
    char url[OTA_DEVICE_URL_MAX + 64], why[300], *body = NULL;
    ota__http_resp_t resp = {0};
    json_t *req = NULL, *j = NULL;
    ota_err_t rc;
    if (ota__fmt(url, sizeof url, "%s/v1/devices", server) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "server URL too long");
    if ((req = json_pack("{s:s, s:s, s:s}", "serial", reg->serial, "model", reg->model, "firmware_version", version)) ==
            NULL ||
        (body = json_dumps(req, JSON_COMPACT)) == NULL) {
        rc = say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
    if ((rc = ota__http_request(c, "POST", url, reg->api_key, body,
                                reg->timeout_ms > 0 ? reg->timeout_ms : OTA_DEVICE_TIMEOUT_MS, &resp, why,
                                sizeof why)) != OTA_OK) {
        say(errmsg, cap, rc, "cannot create the device: %s", why);
        goto Exit;
    }
    if (resp.status != 201) {
        ota__http_describe(&resp, why, sizeof why);
        rc = say(errmsg, cap, resp.status >= 500 ? OTA_ERR_UNAVAILABLE : OTA_ERR_INVALID, "POST /v1/devices: %s", why);
        goto Exit;
    }
    if (ota__json_parse(resp.body, resp.len, &j, NULL, 0) == OTA_ERR_NOMEM) {
        rc = say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
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

ota_err_t ota_device_register(const ota_device_registration_t *reg, char *errmsg, size_t cap)
{
    ota_err_t rc;
    ota_semver_t version;
    ota__state_t *st = NULL;
    CURL *c = NULL;
    char path[4096], why[300];
    struct stat sb;

    if (cap > 0)
        errmsg[0] = '\0';
    if (reg == NULL || reg->state_dir == NULL || reg->server == NULL || reg->api_key == NULL || reg->serial == NULL ||
        reg->model == NULL || reg->version == NULL)
        return say(errmsg, cap, OTA_ERR_INVALID, "state_dir, server, api_key, serial, model and version are required");
    if (ota_semver_parse(reg->version, strlen(reg->version), &version) != OTA_OK)
        return say(errmsg, cap, OTA_ERR_INVALID, "version \"%s\" is not a semantic version", reg->version);
    if (!ota__token_valid(reg->api_key, 256))
        return say(errmsg, cap, OTA_ERR_INVALID, "malformed API key");
    if ((st = calloc(1, sizeof *st)) == NULL)
        return say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
    /* The server URL is kept without trailing slashes. */
    size_t n = strlen(reg->server);
    while (n > 0 && reg->server[n - 1] == '/')
        n--;
    if (n >= sizeof st->server) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "server URL too long");
        goto Exit;
    }
    memcpy(st->server, reg->server, n);
    st->server[n] = '\0';
    if (ota__copy(st->serial, sizeof st->serial, reg->serial) != OTA_OK ||
        ota__copy(st->model, sizeof st->model, reg->model) != OTA_OK) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "serial or model too long");
        goto Exit;
    }
    ota__copy(st->version, sizeof st->version, version.text);
    /* Everything but what the server gives must already be valid; stand-ins for the rest. */
    memcpy(st->device_id, "00000000-0000-0000-0000-000000000000", OTA_MANIFEST_UUID_LEN + 1);
    ota__copy(st->token, sizeof st->token, "x");
    st->active_slot = 'a';
    st->slots[0].present = true;
    ota__copy(st->slots[0].version, sizeof st->slots[0].version, st->version);
    if ((rc = ota__state_validate(st, why, sizeof why)) != OTA_OK) {
        say(errmsg, cap, rc, "%s", why);
        goto Exit;
    }

    if (mkdir(reg->state_dir, 0700) != 0 && errno != EEXIST) {
        rc = say(errmsg, cap, OTA_ERR_IO, "cannot create %s: %s", reg->state_dir, strerror(errno));
        goto Exit;
    }
    if (ota__path(path, sizeof path, reg->state_dir, OTA__STATE_FILE) != OTA_OK) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "state directory path too long");
        goto Exit;
    }
    if (stat(path, &sb) == 0) {
        rc = say(errmsg, cap, OTA_ERR_INVALID, "%s exists: this state directory is registered already", path);
        goto Exit;
    }
    if ((c = curl_easy_init()) == NULL) {
        rc = say(errmsg, cap, OTA_ERR_NOMEM, "out of memory");
        goto Exit;
    }
    if ((rc = fetch_key(c, st->server, reg->timeout_ms > 0 ? reg->timeout_ms : OTA_DEVICE_TIMEOUT_MS, st->public_key,
                        errmsg, cap)) != OTA_OK)
        goto Exit;
    if ((rc = create_device(c, reg, st->server, st->version, st, errmsg, cap)) != OTA_OK)
        goto Exit;
    if ((rc = write_factory_slot(reg->state_dir, st, errmsg, cap)) != OTA_OK)
        goto Exit;
    if ((rc = ota__state_save(reg->state_dir, st, why, sizeof why)) != OTA_OK) {
        say(errmsg, cap, rc, "device %s was created, but its state could not be saved: %s", st->device_id, why);
        goto Exit;
    }
Exit:
    if (c != NULL)
        curl_easy_cleanup(c);
    if (st != NULL)
        memset(st->token, 0, sizeof st->token);
    free(st);
    return rc;
}
