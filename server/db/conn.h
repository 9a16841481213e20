#ifndef OTA_SERVER_DB_CONN_H
#define OTA_SERVER_DB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include <h2o.h>
#include "core/config.h"
#include "db/statements.h"
#include "ota/err.h"

/*
 * One non-blocking PostgreSQL connection driven by one event loop.
 *
 * The connection runs in pipeline mode: every query is sent at once, each
 * followed by its own sync point, so many requests share one connection and
 * one failing statement never aborts another's. Answers arrive in the order
 * the queries were sent and are matched against a FIFO of waiting callers.
 *
 * When the connection is lost, every waiting caller gets a NULL result, new
 * queries are refused with OTA_ERR_UNAVAILABLE, and a reconnect is tried every
 * second until it succeeds. A query waiting longer than the statement timeout
 * plus a margin is taken as a dead peer and resets the connection, so no
 * request waits forever on a database that stopped answering.
 */

typedef struct ota_db ota_db_t;

/**
 * Receives the result of one query: `res` is owned by the connection and
 * valid only during the call; NULL when the connection failed before the
 * answer came. A result may be an error (PQresultStatus PGRES_FATAL_ERROR).
 */
typedef void (*ota_db_cb)(void *arg, const PGresult *res);

/** Receives a NOTIFY on channel ota_events: `payload` is valid only during the call. */
typedef void (*ota_db_notify_cb)(void *arg, const char *payload);

/** Calls `cb(arg, payload)` for every notification this connection receives (when created to listen). */
void ota__db_set_notify(ota_db_t *db, ota_db_notify_cb cb, void *arg);

/**
 * Creates the connection for `loop` and starts connecting; with `listen`, it LISTENs on ota_events from
 * its setup on. A statement running longer than `statement_timeout_ms` (0: no limit) is canceled. `cfg`
 * must outlive it. Free with ota__db_destroy.
 */
ota_db_t *ota__db_create(h2o_loop_t *loop, const ota_config_t *cfg, bool listen, int statement_timeout_ms);
/** Closes the connection; waiting callers get NULL results first. */
void ota__db_destroy(ota_db_t *db);

/** True when connected and accepting queries. */
bool ota__db_ready(const ota_db_t *db);

/** Number of queries sent and not yet answered. */
size_t ota__db_in_flight(const ota_db_t *db);

/**
 * Sends prepared statement `stmt` with text `params` (NULL entries are SQL NULL;
 * the count is the statement's). `cb(arg, res)` is called exactly once, later,
 * from the loop. Returns OTA_ERR_UNAVAILABLE (and never calls `cb`) when the
 * connection is down or its queue is full.
 */
ota_err_t ota__db_query(ota_db_t *db, ota_stmt_t stmt, const char *const *params, ota_db_cb cb, void *arg);

#endif
