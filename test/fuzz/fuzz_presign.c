/*
 * libFuzzer driver for the check of presigned URLs that the fs backend's
 * blob route makes (ota__sigv4_verify, as api/blobs.c calls it, and the
 * path decoding that finds the object). The first input byte picks the
 * mode.
 *
 * Even: the rest is a request as received, "METHOD\nHOST\nPATH?QUERY",
 * checked against a fixed signer at a fixed time (FUZZ_NOW); the committed
 * corpus holds URLs presigned then, so the fuzzer starts from ones that
 * pass. Any verdict is fine, as long as it is one of the five.
 *
 * Odd: the next byte picks the lifetime and whether the signer has a
 * session token, the rest is an object key. Its URL, presigned now, must
 * pass now and at the end of its lifetime, be expired one second later, not
 * yet valid well before its date, fail with another method, host, or a
 * changed signature, and its path must decode to the key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sigv4.h"

#define check(ok) check_at((ok), __LINE__)

/* 2026-09-21T14:13:20Z */
#define FUZZ_NOW ((time_t)1790000000)
#define HOST "127.0.0.1:8080"
#define KEY_MAX 1024

static const ota_sigv4_signer_t SIGNER = {"ota-fs", "fuzz-secret", NULL, "us-east-1"};
static const ota_sigv4_signer_t SIGNER_TOKEN = {"ota-fs", "fuzz-secret", "fuzz-token", "us-east-1"};

static void check_at(int ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_presign.c:%d: check failed\n", line);
        abort();
    }
}

/* `received` split at its first '\n' into a span and the rest; false when there is no '\n'. */
static int split_line(const char **rest, size_t *rest_len, const char **line, size_t *line_len)
{
    const char *nl = memchr(*rest, '\n', *rest_len);
    if (nl == NULL)
        return 0;
    *line = *rest;
    *line_len = (size_t)(nl - *rest);
    *rest_len -= *line_len + 1;
    *rest = nl + 1;
    return 1;
}

static ota_sigv4_received_t received_of(const char *method, const char *host, const char *target, size_t len)
{
    const char *q = memchr(target, '?', len);
    ota_sigv4_received_t rcv = {
        .method = method,
        .method_len = strlen(method),
        .host = host,
        .host_len = strlen(host),
        .path = target,
        .path_len = q != NULL ? (size_t)(q - target) : len,
        .query = q != NULL ? q + 1 : "",
        .query_len = q != NULL ? len - (size_t)(q - target) - 1 : 0,
    };
    return rcv;
}

static void received_mode(const char *in, size_t len)
{
    const char *method, *host;
    size_t method_len, host_len;
    char key[OTA_SIGV4_PATH_MAX];
    if (!split_line(&in, &len, &method, &method_len) || !split_line(&in, &len, &host, &host_len))
        return;
    ota_sigv4_received_t rcv = received_of("", "", in, len);
    rcv.method = method;
    rcv.method_len = method_len;
    rcv.host = host;
    rcv.host_len = host_len;
    ota_sigv4_verdict_t v = ota__sigv4_verify(&SIGNER, &rcv, FUZZ_NOW, NULL);
    check(v >= OTA_SIGV4_VALID && v <= OTA_SIGV4_NOT_YET_VALID);
    size_t key_len = 0;
    if (ota__sigv4_uri_decode(rcv.path, rcv.path_len, key, sizeof key - 1, &key_len) == OTA_OK)
        check(key_len < sizeof key - 1 && strlen(key) == key_len);
}

static ota_sigv4_verdict_t verify(const ota_sigv4_signer_t *signer, const char *method, const char *host,
                                  const char *target, time_t now)
{
    /* A copy of its own, so ASan sees any read past the end. */
    size_t len = strlen(target);
    char *copy = malloc(len > 0 ? len : 1);
    check(copy != NULL);
    memcpy(copy, target, len);
    ota_sigv4_received_t rcv = received_of(method, host, copy, len);
    ota_sigv4_verdict_t v = ota__sigv4_verify(signer, &rcv, now, NULL);
    free(copy);
    return v;
}

static void round_trip(uint8_t how, const char *key)
{
    static char url[2 * OTA_SIGV4_PATH_MAX], path[KEY_MAX + 2], decoded[OTA_SIGV4_PATH_MAX];
    const ota_sigv4_signer_t *signer = how & 1 ? &SIGNER_TOKEN : &SIGNER;
    long expires = 1 + (how >> 1) * 4000L;
    size_t url_len = 0, decoded_len = 0;
    snprintf(path, sizeof path, "/%s", key);
    ota_sigv4_request_t req = {
        .signer = signer, .method = "GET", .scheme = "http", .host = HOST, .path = path, .now = FUZZ_NOW};
    check(ota__sigv4_presign(&req, expires, url, sizeof url, &url_len) == OTA_OK);
    static const char origin[] = "http://" HOST;
    check(url_len == strlen(url) && strncmp(url, origin, sizeof origin - 1) == 0);
    char *target = url + sizeof origin - 1;

    check(verify(signer, "GET", HOST, target, FUZZ_NOW) == OTA_SIGV4_VALID);
    check(verify(signer, "GET", HOST, target, FUZZ_NOW + expires) == OTA_SIGV4_VALID);
    check(verify(signer, "GET", HOST, target, FUZZ_NOW + expires + 1) == OTA_SIGV4_EXPIRED);
    check(verify(signer, "GET", HOST, target, FUZZ_NOW - OTA_SIGV4_SKEW_MAX - 1) == OTA_SIGV4_NOT_YET_VALID);
    check(verify(signer, "PUT", HOST, target, FUZZ_NOW) == OTA_SIGV4_MISMATCH);
    check(verify(signer, "GET", "127.0.0.1:8081", target, FUZZ_NOW) == OTA_SIGV4_MISMATCH);
    /* The other signer: a token where there was none, or none where there was one. */
    check(verify(signer == &SIGNER ? &SIGNER_TOKEN : &SIGNER, "GET", HOST, target, FUZZ_NOW) == OTA_SIGV4_MALFORMED);
    char *sig = strstr(target, "X-Amz-Signature=");
    check(sig != NULL && strlen(sig) >= 16 + OTA_SIGV4_HEX_LEN);
    sig[16] = sig[16] == '0' ? '1' : '0';
    check(verify(signer, "GET", HOST, target, FUZZ_NOW) == OTA_SIGV4_MISMATCH);

    size_t path_len = (size_t)(strchr(target, '?') - target);
    check(ota__sigv4_uri_decode(target, path_len, decoded, sizeof decoded, &decoded_len) == OTA_OK);
    check(strcmp(decoded, path) == 0 && decoded_len == strlen(path));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0) {
        char *in = malloc(size);
        check(in != NULL);
        memcpy(in, data + 1, size - 1);
        received_mode(in, size - 1);
        free(in);
        return 0;
    }
    if (size < 2)
        return 0;
    char key[KEY_MAX + 1];
    size_t key_len = size - 2 < KEY_MAX ? size - 2 : KEY_MAX;
    memcpy(key, data + 2, key_len);
    key[key_len] = '\0';
    round_trip(data[1], key);
    return 0;
}
