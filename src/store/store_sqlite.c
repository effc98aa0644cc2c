/* The SQLite driver of the store: one sqlite3 connection in WAL mode with foreign keys on
 * and a busy timeout, so several connections (one per worker thread, several processes)
 * can share one database file. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/store_int.h"

struct ws_db {
    sqlite3 *db;
};

static int sqlite_err(ws_db *d, int rc, ws_error *err, const char *what)
{
    int ext = d->db ? sqlite3_extended_errcode(d->db) : rc;
    const char *msg = d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc);
    int code = WS_EIO;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        code = WS_ECONFLICT;
    else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
        code = WS_ENOENT;
    else if ((ext & 0xff) == SQLITE_CONSTRAINT)
        code = WS_EINVAL;
    return ws_error_set(err, code, "sqlite: %s: %s", what, msg);
}

static void sqlite_close(ws_db *d)
{
    if (!d)
        return;
    sqlite3_close_v2(d->db);
    free(d);
}

static int sqlite_connect(const char *url, int timeout_ms, ws_db **out, ws_error *err)
{
    const char *path = url;
    if (!strncmp(path, "sqlite:", 7))
        path += 7;
    if (!*path)
        return ws_error_set(err, WS_EINVAL, "sqlite: empty database path");
    /* The database holds personal data: a new file is created owner-only (SQLite gives its
     * -wal and -shm files the same mode). An existing file keeps the mode it has. */
    if (strcmp(path, ":memory:") != 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    ws_db *d = ws_xcalloc(1, sizeof *d);
    int rc = sqlite3_open_v2(path, &d->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = sqlite_err(d, rc, err, path);
        sqlite_close(d);
        return rc;
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, timeout_ms > 0 ? timeout_ms : 5000);
    char *msg = NULL;
    /* WAL lets readers and one writer work at once; NORMAL sync is durable across process
     * crashes (not across power loss of the last transactions), the usual WAL setting. */
    rc = sqlite3_exec(d->db,
                      "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;"
                      " PRAGMA synchronous = NORMAL;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        ws_error_set(err, WS_EIO, "sqlite: %s: %s", path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite_close(d);
        return WS_EIO;
    }
    *out = d;
    return 0;
}

static int bind_params(ws_db *d, sqlite3_stmt *st, const ws_dbp *p, int np, ws_error *err)
{
    for (int k = 0; k < np; k++) {
        char name[16];
        snprintf(name, sizeof name, "$%d", k + 1);
        int idx = sqlite3_bind_parameter_index(st, name);
        if (idx == 0)
            continue;   /* parameter not used by this statement */
        int rc;
        switch (p[k].t) {
        case 's':
            rc = p[k].s ? sqlite3_bind_text(st, idx, p[k].s, -1, SQLITE_TRANSIENT)
                        : sqlite3_bind_null(st, idx);
            break;
        case 'i': rc = sqlite3_bind_int64(st, idx, p[k].i); break;
        case 'd': rc = sqlite3_bind_double(st, idx, p[k].d); break;
        default: rc = sqlite3_bind_null(st, idx); break;
        }
        if (rc != SQLITE_OK)
            return sqlite_err(d, rc, err, "bind");
    }
    return 0;
}

typedef struct rowbuf {
    const char **cells;
    size_t len, cap;
} rowbuf;

static int sqlite_query(ws_db *d, ws_arena *a, const char *sql, const ws_dbp *p, int np,
                        ws_dbres *out, ws_error *err)
{
    sqlite3_stmt *st = NULL;
    rowbuf rb = {0};
    int ncols = 0, nrows = 0;
    int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = sqlite_err(d, rc, err, "prepare");
        goto out;
    }
    if ((rc = bind_params(d, st, p, np, err)) < 0)
        goto out;
    ncols = sqlite3_column_count(st);
    for (;;) {
        int s = sqlite3_step(st);
        if (s == SQLITE_DONE)
            break;
        if (s != SQLITE_ROW) {
            rc = sqlite_err(d, s, err, "step");
            goto out;
        }
        nrows++;
        if (!out)
            continue;
        if (rb.len + (size_t)ncols > rb.cap) {
            rb.cap = rb.cap ? rb.cap * 2 : 64;
            while (rb.cap < rb.len + (size_t)ncols)
                rb.cap *= 2;
            rb.cells = ws_xrealloc(rb.cells, rb.cap * sizeof *rb.cells);
        }
        for (int c = 0; c < ncols; c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            rb.cells[rb.len++] = t ? ws_arena_strndup(a, (const char *)t,
                                                      (size_t)sqlite3_column_bytes(st, c))
                                   : NULL;
        }
    }
    rc = 0;
    if (out) {
        out->nrows = nrows;
        out->ncols = ncols;
        out->cells = NULL;
        if (rb.len) {
            out->cells = ws_arena_alloc(a, rb.len * sizeof *out->cells);
            memcpy(out->cells, rb.cells, rb.len * sizeof *out->cells);
        }
    }
out:
    free(rb.cells);
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_exec_script(ws_db *d, const char *sql, ws_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        ws_error_set(err, WS_EIO, "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return WS_EIO;
    }
    return 0;
}

static int sqlite_begin(ws_db *d, bool write, ws_error *err)
{
    return sqlite_exec_script(d, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
}

static int sqlite_commit(ws_db *d, ws_error *err)
{
    return sqlite_exec_script(d, "COMMIT", err);
}

static void sqlite_rollback(ws_db *d)
{
    if (!sqlite3_get_autocommit(d->db))
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

const ws_store_driver ws_store_sqlite_driver = {
    .name = "sqlite",
    .is_pg = false,
    .connect = sqlite_connect,
    .close = sqlite_close,
    .query = sqlite_query,
    .exec_script = sqlite_exec_script,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
};
