#include "db/sync.h"

#include <stdio.h>
#include <string.h>

static void copy_line(char *err, size_t cap, const char *what, const char *msg)
{
    snprintf(err, cap, "%s: %s", what, msg);
    err[strcspn(err, "\n")] = '\0';
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *ota__db_connect_sync(const char *url, char *err, size_t cap)
{
    const char *keys[] = {"application_name", "dbname", NULL};
    const char *values[] = {"ota-server", url, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        copy_line(err, cap, "cannot connect to the database", conn ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notices, NULL);
    return conn;
}

PGresult *ota__db_exec_sync(PGconn *conn, const char *sql, int nparams, const char *const *params,
                            ExecStatusType expect, char *err, size_t cap)
{
    PGresult *res = nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(conn, sql);
    if (PQresultStatus(res) != expect) {
        copy_line(err, cap, "database error", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(res);
        return NULL;
    }
    return res;
}
