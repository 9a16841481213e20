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

/** Every migration in order, ended by an entry with name NULL (generated at build time). */
extern const ota_migration_t ota__migrations[];

/**
 * Applies the pending migrations on `conn` (blocking), each in its own
 * transaction, under a session advisory lock so that instances starting
 * together apply each migration once. Applied migrations are recorded in
 * schema_migrations with a SHA-256 of their text; a recorded migration whose
 * text has changed since is an error (migrations are forward-only).
 * Stores how many were applied in `*applied`; on failure writes a reason into `err`.
 */
ota_err_t ota__migrate(PGconn *conn, int *applied, char *err, size_t cap);

#endif
