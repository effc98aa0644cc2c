/* Private to src/store: the driver interface each database backend implements (a struct of
 * function pointers), the statement parameter type, and the embedded migrations.
 *
 * SQL given to a driver uses $1..$n placeholders (PostgreSQL's syntax; SQLite binds them as
 * named parameters "$1".."$n") and the common subset of SQL both backends run. */
#ifndef WS_STORE_STORE_INT_H
#define WS_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "store/store.h"

typedef struct ws_db ws_db;   /* one driver connection */

/* A statement parameter: 's' text (NULL pointer = SQL NULL), 'i' int64, 'd' double,
 * 'n' SQL NULL. */
typedef struct ws_dbp {
    char t;
    const char *s;
    int64_t i;
    double d;
} ws_dbp;

#define DBP_S(x) ((ws_dbp){'s', (x), 0, 0.0})
#define DBP_I(x) ((ws_dbp){'i', NULL, (int64_t)(x), 0.0})
#define DBP_D(x) ((ws_dbp){'d', NULL, 0, (double)(x)})
#define DBP_NULL ((ws_dbp){'n', NULL, 0, 0.0})

/* Rows of a result in text form; cells[r * ncols + c] is NULL for SQL NULL. All memory is
 * in the arena passed to query. */
typedef struct ws_dbres {
    int nrows, ncols;
    const char **cells;
} ws_dbres;

typedef struct ws_store_driver {
    const char *name;                              /* "sqlite" / "postgres" */
    bool is_pg;
    /* Connects; *out owned by the caller, released with close. */
    int (*connect)(const char *url, int timeout_ms, ws_db **out, ws_error *err);
    void (*close)(ws_db *db);
    /* Runs one statement. out may be NULL (rows are discarded). Errors: WS_ECONFLICT on a
     * unique violation, WS_ENOENT on a foreign-key violation, WS_EIO otherwise. */
    int (*query)(ws_db *db, ws_arena *a, const char *sql, const ws_dbp *p, int np,
                 ws_dbres *out, ws_error *err);
    /* Runs a script of several statements without parameters (migrations). */
    int (*exec_script)(ws_db *db, const char *sql, ws_error *err);
    /* Transactions. write = the transaction will write (SQLite takes the write lock at
     * BEGIN so two writers never deadlock on lock upgrade). */
    int (*begin)(ws_db *db, bool write, ws_error *err);
    int (*commit)(ws_db *db, ws_error *err);
    void (*rollback)(ws_db *db);
} ws_store_driver;

/* A handle's driver and primary connection, for the store's other files (store_whatsapp.c):
 * they run their statements through these, the logic shared with store.c stays there. */
const ws_store_driver *ws__store_driver(ws_store *s);
ws_db *ws__store_db(ws_store *s);

extern const ws_store_driver ws_store_sqlite_driver;
extern const ws_store_driver ws_store_pg_driver;

/* Embedded migrations (generated at build time from src/store/migrations/<backend>/NNNN_name.sql by
 * tools/embed-migrations.cmake), sorted by version. */
typedef struct ws_migration {
    int version;
    const char *name;       /* file name without .sql, e.g. "0001_init" */
    const char *sql;
} ws_migration;

extern const ws_migration ws_store_migrations_sqlite[];
extern const size_t ws_store_migrations_sqlite_count;
extern const ws_migration ws_store_migrations_postgres[];
extern const size_t ws_store_migrations_postgres_count;

#endif
