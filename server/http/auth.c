#include "http/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/respond.h"
#include "core/log.h"
#include "core/secret.h"

typedef void (*next_fn)(ota_call_t *call);

/* What the auth steps keep between their queries. */
typedef struct auth_state {
    next_fn next;
    char hash[OTA_SECRET_HASH_PG_LEN];
} auth_state_t;

void ota__auth_unauthorized(ota_call_t *call, const char *why)
{
    h2o_add_header(&call->req->pool, &call->req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                   H2O_STRLIT("Bearer"));
    ota__respond_error(call, 401, "unauthorized", NULL, "%s", why);
}

static void forbidden(ota_call_t *call, const char *why)
{
    ota__respond_error(call, 403, "forbidden", NULL, "%s", why);
}

static bool method_reads(const h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

/* Takes the bearer secret out of the Authorization header; false when absent or malformed. */
bool ota__auth_bearer(h2o_req_t *req, char *out)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return false;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    static const char scheme[] = "Bearer ";
    size_t n = sizeof scheme - 1;
    if (v->len <= n || strncasecmp(v->base, scheme, n) != 0)
        return false;
    const char *secret = v->base + n;
    size_t len = v->len - n;
    while (len > 0 && *secret == ' ')
        secret++, len--;
    if (len == 0 || len >= OTA_SECRET_MAX || memchr(secret, '\0', len) != NULL)
        return false;
    memcpy(out, secret, len);
    out[len] = '\0';
    return true;
}

static auth_state_t *state_of(ota_call_t *call)
{
    return call->state;
}

static void continue_with(ota_call_t *call, ota_principal_t principal)
{
    next_fn next = state_of(call)->next;
    call->principal = principal;
    /* The handler owns call->state from here on. */
    call->state_free(call->state);
    call->state = NULL;
    call->state_free = NULL;
    next(call);
}

/* --- API keys --- */

static void on_use_noted(void *arg, const PGresult *res)
{
    (void)arg;
    if (res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK)
        ota_log_warn("cannot note an API key's last use: %s", PQresultErrorMessage(res));
}

/*
 * last_used_at is written at most about once a minute per key, never on the request's way: the check says
 * whether the last use is a minute old, and only then is an UPDATE sent, answered to nobody. Its failure
 * costs a late last_used_at, never the request.
 */
static void note_use(ota_call_t *call, const PGresult *res)
{
    if (PQgetvalue(res, 0, OTA_API_KEY_AUTH_COL_STALE)[0] != 't')
        return;
    const char *params[] = {call->api_key_id};
    (void)ota__db_query(call->worker->db, OTA_STMT_API_KEY_USED, params, on_use_noted, NULL);
}

static void on_api_key(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQntuples(res) == 0) {
        ota__auth_unauthorized(call, "unknown or revoked API key");
        return;
    }
    snprintf(call->api_key_id, sizeof call->api_key_id, "%s", PQgetvalue(res, 0, OTA_API_KEY_AUTH_COL_ID));
    snprintf(call->api_key_name, sizeof call->api_key_name, "%s", PQgetvalue(res, 0, OTA_API_KEY_AUTH_COL_NAME));
    note_use(call, res);
    bool admin = strcmp(PQgetvalue(res, 0, OTA_API_KEY_AUTH_COL_ROLE), "admin") == 0;
    ota_access_t access = call->match.route->access;
    if (access == OTA_ACCESS_DEVICE) {
        forbidden(call, "this route takes the device's own token");
        return;
    }
    if (!admin && (access == OTA_ACCESS_ADMIN || !method_reads(call->req))) {
        forbidden(call, "a viewer key may only read");
        return;
    }
    continue_with(call, admin ? OTA_PRINCIPAL_ADMIN : OTA_PRINCIPAL_VIEWER);
}

/* --- device tokens --- */

/* The token matched no device's hash for this path: is it some other device's token? */
static void on_device_by_token(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQntuples(res) == 0)
        ota__auth_unauthorized(call, "unknown credentials");
    else if (strcmp(PQgetvalue(res, 0, OTA_COL_ONLY), "api_key") == 0)
        forbidden(call, "this route takes the device's own token");
    else
        forbidden(call, "a device token is valid only on its own device's paths");
}

static void lookup_token_owner(ota_call_t *call)
{
    const char *params[] = {state_of(call)->hash};
    ota__call_query(call, OTA_STMT_DEVICE_BY_TOKEN, params, on_device_by_token);
}

static void on_device_token_hash(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_db_error(call, res);
        return;
    }
    if (PQntuples(res) == 1 && ota__secret_hash_equal(PQgetvalue(res, 0, OTA_COL_ONLY), state_of(call)->hash)) {
        continue_with(call, OTA_PRINCIPAL_DEVICE);
        return;
    }
    lookup_token_owner(call);
}

static void check_device_token(ota_call_t *call)
{
    ota_access_t access = call->match.route->access;
    if (access != OTA_ACCESS_DEVICE && access != OTA_ACCESS_DEVICE_OR_API) {
        lookup_token_owner(call); /* 403 when it is a valid token, 401 otherwise */
        return;
    }
    const char *params[] = {call->params[0]};
    ota__call_query(call, OTA_STMT_DEVICE_TOKEN_HASH, params, on_device_token_hash);
}

void ota__auth_check(ota_call_t *call, next_fn next)
{
    char secret[OTA_SECRET_MAX];
    if (call->match.route->access == OTA_ACCESS_PUBLIC) {
        next(call);
        return;
    }
    if (!ota__auth_bearer(call->req, secret)) {
        ota__auth_unauthorized(call, "missing or malformed Authorization: Bearer header");
        return;
    }
    auth_state_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        h2o_fatal("out of memory");
    st->next = next;
    ota__secret_hash_pg(secret, strlen(secret), st->hash);
    call->state = st;
    call->state_free = free;

    if (strncmp(secret, OTA_API_KEY_PREFIX, strlen(OTA_API_KEY_PREFIX)) == 0) {
        const char *params[] = {st->hash};
        ota__call_query(call, OTA_STMT_API_KEY_AUTH, params, on_api_key);
    } else if (strncmp(secret, OTA_DEVICE_TOKEN_PREFIX, strlen(OTA_DEVICE_TOKEN_PREFIX)) == 0) {
        check_device_token(call);
    } else {
        ota__auth_unauthorized(call, "unknown credentials");
    }
}

void ota__auth_reject_device_token(ota_call_t *call, const char *hash)
{
    const char *params[] = {hash};
    ota__call_query(call, OTA_STMT_DEVICE_BY_TOKEN, params, on_device_by_token);
}
