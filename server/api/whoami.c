#include "api/api.h"

#include "http/respond.h"

/*
 * GET /v1/whoami: the role, id and name of the API key that asks. A client
 * such as the portal uses the role to show a viewer no write control (the
 * routes refuse a viewer's writes anyway), and the id to tell its own key in
 * GET /v1/api-keys.
 */
void ota__api_whoami(ota_call_t *call)
{
    const char *role = call->principal == OTA_PRINCIPAL_ADMIN ? "admin" : "viewer";
    ota__respond_json(
        call, 200,
        json_pack("{s:s, s:s, s:s}", "role", role, "api_key_id", call->api_key_id, "name", call->api_key_name));
}
