/* The store's fault-injecting driver (tests): wraps a real driver connection so that query,
 * exec_script, begin and commit fail with WS_EIO when the handle's ws_fault says so. An
 * injected commit failure commits nothing (the store then rolls back), like a lost connection;
 * rollback and close always reach the real driver. See core/fault.h. */
#include <stdlib.h>

#include "core/fault.h"
#include "core/mem.h"
#include "store/store_int.h"

typedef struct fault_db {
    const ws_store_driver *drv; /* the real driver */
    ws_db *db;                  /* its connection, owned */
    ws_fault *f;                /* borrowed */
} fault_db;

static fault_db *fdb(ws_db *db)
{
    return (fault_db *)(void *)db;
}

static int injected(ws_error *err, const char *what)
{
    return ws_error_set(err, WS_EIO, "store: injected fault (%s)", what);
}

static int f_connect(const char *url, int timeout_ms, ws_db **out, ws_error *err)
{
    return ws_error_set(err, WS_EINVAL, "store: the fault driver only wraps an open connection");
}

static void f_close(ws_db *db)
{
    fault_db *d = fdb(db);
    if (!d)
        return;
    d->drv->close(d->db);
    free(d);
}

static int f_query(ws_db *db, ws_arena *a, const char *sql, const ws_dbp *p, int np, ws_dbres *out,
                   ws_error *err)
{
    fault_db *d = fdb(db);
    if (ws_fault_hit(d->f))
        return injected(err, "query");
    return d->drv->query(d->db, a, sql, p, np, out, err);
}

static int f_exec_script(ws_db *db, const char *sql, ws_error *err)
{
    fault_db *d = fdb(db);
    if (ws_fault_hit(d->f))
        return injected(err, "script");
    return d->drv->exec_script(d->db, sql, err);
}

static int f_begin(ws_db *db, bool write, ws_error *err)
{
    fault_db *d = fdb(db);
    if (ws_fault_hit(d->f))
        return injected(err, "begin");
    return d->drv->begin(d->db, write, err);
}

static int f_commit(ws_db *db, ws_error *err)
{
    fault_db *d = fdb(db);
    if (ws_fault_hit(d->f))
        return injected(err, "commit");
    return d->drv->commit(d->db, err);
}

static void f_rollback(ws_db *db)
{
    fault_db *d = fdb(db);
    d->drv->rollback(d->db);
}

static const ws_store_driver fault_sqlite = {"sqlite",      false,   f_connect, f_close,   f_query,
                                             f_exec_script, f_begin, f_commit,  f_rollback};
static const ws_store_driver fault_pg = {"postgres",    true,    f_connect, f_close,   f_query,
                                         f_exec_script, f_begin, f_commit,  f_rollback};

void ws__store_fault_wrap(const ws_store_driver *drv, ws_db **db, ws_fault *f)
{
    if (!*db)
        return;
    fault_db *d = ws_xcalloc(1, sizeof *d);
    d->drv = drv;
    d->db = *db;
    d->f = f;
    *db = (ws_db *)(void *)d;
}

const ws_store_driver *ws__store_fault_driver(const ws_store_driver *real)
{
    return real->is_pg ? &fault_pg : &fault_sqlite;
}
