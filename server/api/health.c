#include "api/api.h"

#include "http/respond.h"

void ota__api_healthz(ota_call_t *call)
{
    ota__respond_json(call, 200, json_pack("{s:s}", "status", "ok"));
}

static void on_ping(ota_call_t *call, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ota__respond_unavailable(call, "database not answering");
        return;
    }
    ota__respond_json(call, 200, json_pack("{s:s}", "status", "ready"));
}

/* Ready means this instance's own database connection answers a query now. */
void ota__api_readyz(ota_call_t *call)
{
    ota__call_query(call, OTA_STMT_PING, NULL, on_ping);
}
