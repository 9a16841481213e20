#include "api/api.h"

#include "http/respond.h"

/*
 * GET /v1/whoami: the role of the API key that asks. A client such as the
 * portal uses it to show a viewer no write control; the routes refuse a
 * viewer's writes anyway.
 */
void ota__api_whoami(ota_call_t *call)
{
    const char *role = call->principal == OTA_PRINCIPAL_ADMIN ? "admin" : "viewer";
    ota__respond_json(call, 200, json_pack("{s:s}", "role", role));
}
