#include "db/sqlstate.h"

#include <stdbool.h>
#include <string.h>

static bool is_one_of(const char *state, const char *const *codes)
{
    for (; *codes != NULL; codes++)
        if (strcmp(state, *codes) == 0)
            return true;
    return false;
}

ota_sqlstate_kind_t ota__sqlstate_kind(const char *state)
{
    static const char *const DUPLICATE[] = {"23505", NULL};
    static const char *const INVALID[] = {"23503", "23514", "22001", NULL};
    /*
     * 40001 serialization failure and 40P01 deadlock: PostgreSQL rolled the transaction back and the same request
     * succeeds when sent again. 57P03 cannot connect now (starting up), 57P01/57P02 shutdown, 25006 read-only
     * transaction (a primary demoted to a standby during a failover, or a database set read-only for maintenance),
     * 57014 canceled by statement_timeout: all pass. Class 08 is the connection itself.
     */
    static const char *const TRANSIENT[] = {"40001", "40P01", "57P03", "57P01", "57P02", "25006", "57014", NULL};
    if (state == NULL)
        return OTA_SQLSTATE_INTERNAL;
    if (is_one_of(state, DUPLICATE))
        return OTA_SQLSTATE_DUPLICATE;
    if (is_one_of(state, INVALID))
        return OTA_SQLSTATE_INVALID;
    if (is_one_of(state, TRANSIENT) || (strncmp(state, "08", 2) == 0 && strlen(state) == 5))
        return OTA_SQLSTATE_TRANSIENT;
    return OTA_SQLSTATE_INTERNAL;
}
