#ifndef OTA_SERVER_DB_SYNC_H
#define OTA_SERVER_DB_SYNC_H

#include <stddef.h>
#include <libpq-fe.h>

/*
 * Blocking database access, only for the command line and for start-up,
 * before any event loop runs (migrations, API key creation).
 */

/** Connects to `url` (libpq conninfo or URI). Returns NULL and a one-line reason in `err` on failure. */
PGconn *ota__db_connect_sync(const char *url, char *err, size_t cap);

/**
 * Runs `sql` with text `params` and returns its result when its status is
 * `expect`; otherwise writes a one-line reason into `err`, clears the result
 * and returns NULL. The caller PQclear()s a returned result.
 */
PGresult *ota__db_exec_sync(PGconn *conn, const char *sql, int nparams, const char *const *params,
                            ExecStatusType expect, char *err, size_t cap);

#endif
