#include "http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ota/text.h"

/* The answer's body, into a heap text capped at OTA__API_BODY_MAX; a failed write stops the transfer. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    ota_text_t *body = arg;
    ota_text_put(body, data, size * nmemb);
    return body->err == OTA_OK ? size * nmemb : 0;
}

ota_err_t ota__http_status_err(long status)
{
    if (status >= 200 && status < 300)
        return OTA_OK;
    if (status == 404)
        return OTA_ERR_NOT_FOUND;
    if (status == 408 || status == 429 || status >= 500)
        return OTA_ERR_UNAVAILABLE;
    return OTA_ERR_INVALID;
}

ota_err_t ota__http_request(CURL *c, const char *method, const char *url, const char *bearer, const char *json,
                            long timeout_ms, ota__http_resp_t *out, char *why, size_t cap)
{
    ota_text_t body;
    struct curl_slist *headers = NULL, *h;
    char auth[64 + 256], errbuf[CURL_ERROR_SIZE] = "";
    ota_err_t rc = OTA_OK;
    memset(out, 0, sizeof *out);
    ota_text_heap(&body, OTA__API_BODY_MAX);

    curl_easy_reset(c);
    if ((h = curl_slist_append(headers, "Accept: application/json")) == NULL)
        goto Nomem;
    headers = h;
    if (json != NULL) {
        if ((h = curl_slist_append(headers, "Content-Type: application/json")) == NULL)
            goto Nomem;
        headers = h;
    }
    if (bearer != NULL) {
        int n = snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        if (n < 0 || (size_t)n >= sizeof auth) {
            rc = OTA_ERR_INVALID;
            if (cap > 0)
                snprintf(why, cap, "credential too long");
            goto Exit;
        }
        if ((h = curl_slist_append(headers, auth)) == NULL)
            goto Nomem;
        headers = h;
    }
    if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
        goto Nomem;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (json != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
    }
    CURLcode cc = curl_easy_perform(c);
    if (body.err == OTA_ERR_NOMEM || cc == CURLE_OUT_OF_MEMORY)
        goto Nomem;
    if (body.err == OTA_ERR_TOO_LARGE) {
        rc = OTA_ERR_TOO_LARGE;
        if (cap > 0)
            snprintf(why, cap, "%s %s: answer over %d bytes", method, url, OTA__API_BODY_MAX);
        goto Exit;
    }
    if (cc != CURLE_OK) {
        rc = OTA_ERR_UNAVAILABLE;
        if (cap > 0)
            snprintf(why, cap, "%s %s: %s", method, url, errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        goto Exit;
    }
    if (body.base == NULL && (body.base = calloc(1, 1)) == NULL)
        goto Nomem;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = body.base; /* taken: the caller frees it with ota__http_resp_free */
    out->len = body.len;
    body.base = NULL;
    goto Exit;
Nomem:
    rc = OTA_ERR_NOMEM;
    if (cap > 0)
        snprintf(why, cap, "out of memory");
Exit:
    /* The handle must not keep pointers to what goes away here. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    curl_slist_free_all(headers);
    ota_text_free(&body);
    return rc;
}

void ota__http_resp_free(ota__http_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

void ota__http_describe(const ota__http_resp_t *r, char *out, size_t cap)
{
    const char *msg = NULL;
    json_t *j = r->body != NULL ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *m = json_object_get(json_object_get(j, "error"), "message");
    if (json_is_string(m))
        msg = json_string_value(m);
    if (msg != NULL)
        snprintf(out, cap, "HTTP %ld: %.200s", r->status, msg);
    else
        snprintf(out, cap, "HTTP %ld: %.200s", r->status, r->body != NULL ? r->body : "");
    json_decref(j);
    for (char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}
