#ifndef OTA_SERVER_DB_MIGRATE_H
#define OTA_SERVER_DB_MIGRATE_H

#include <stddef.h>
#include <libpq-fe.h>
#include "ota/err.h"

/** One numbered migration, compiled in from migrations/NNNN_name.sql. */
typedef struct ota_migration {
    int version;
    const char *name;
    const char *sql;
} ota_migration_t;

/** One stored function, compiled in from migrations/functions/NAME.sql, which creates the function NAME. */
typedef struct ota_stored_function {
    const char *name;
    const char *sql;
} ota_stored_function_t;

/** Every migration in order, ended by an entry with name NULL (generated at build time). */
extern const ota_migration_t ota__migrations[];

/** Every function file in file name order, ended by an entry with name NULL (generated at build time). */
extern const ota_stored_function_t ota__functions[];

/** How many of each kind one ota__migrate() call applied. */
typedef struct ota_migrate_counts {
    int migrations; /**< numbered migrations applied */
    int functions;  /**< function files applied */
} ota_migrate_counts_t;

/**
 * Brings the schema up to date on `conn` (blocking), under a session advisory
 * lock, so that instances starting together do each step once:
 *
 * 1. The pending numbered migrations, in order, each in its own transaction,
 *    recorded in schema_migrations with a SHA-256 of their text. A recorded
 *    migration whose text has changed since is an error: they are
 *    forward-only. They run before any function file, so they must not call
 *    the stored functions.
 * 2. Then every function file whose SHA-256 differs from the one recorded in
 *    schema_functions (or that has none), in file name order, each in its own
 *    transaction with its record. So a function may only call, in a body
 *    checked at creation (LANGUAGE sql), functions whose files sort before
 *    its own; PL/pgSQL bodies are bound at their first call. Before a file
 *    runs, every function of its name in the current schema is dropped
 *    (without CASCADE), except trigger functions: the file may then change
 *    the function's arguments or result type, and may make a composite result
 *    type of its own again (ota_heartbeat.sql does), and no old overload is
 *    left behind. A trigger function's signature never changes, so it is
 *    replaced in place, and the trigger is made in the function's file
 *    (CREATE OR REPLACE TRIGGER), since the tables' migrations run before it
 *    exists. Files therefore say CREATE OR REPLACE FUNCTION. Removing a
 *    function takes a numbered migration that drops it and its
 *    schema_functions row.
 *
 * Stores how many were applied in `*counts`; on failure writes a reason into `err`.
 */
ota_err_t ota__migrate(PGconn *conn, ota_migrate_counts_t *counts, char *err, size_t cap);

#endif
