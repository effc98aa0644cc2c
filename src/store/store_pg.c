/* The PostgreSQL driver of the store (libpq): one connection, statements sent with
 * PQexecParams (parameters travel separately from the SQL text, never interpolated).
 * A connection found broken is reset once before the next statement. */
#include "store/pq_lib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/store_int.h"

struct ws_db {
    PGconn *conn;
};

/* OIDs of the parameter types we send (pg_type.h); 0 lets the server infer text's type. */
#define OID_INT8 20
#define OID_FLOAT8 701

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static int conn_err(ws_db *d, ws_error *err, const char *what)
{
    char msg[WS_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", d->conn ? ws__pq.PQerrorMessage(d->conn) : "out of memory");
    trim_newline(msg);
    return ws_error_set(err, WS_EIO, "postgres: %s: %s", what, msg);
}

static int result_err(ws_db *d, PGresult *r, ws_error *err)
{
    const char *state = r ? ws__pq.PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char msg[WS_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", r ? ws__pq.PQresultErrorMessage(r) : ws__pq.PQerrorMessage(d->conn));
    trim_newline(msg);
    int code = WS_EIO;
    if (state && !strcmp(state, "23505"))
        code = WS_ECONFLICT; /* unique_violation */
    else if (state && !strcmp(state, "23503"))
        code = WS_ENOENT; /* foreign_key_violation */
    else if (state && !strncmp(state, "23", 2))
        code = WS_EINVAL; /* other integrity constraint (check, not null) */
    else if (state && !strcmp(state, "22P02"))
        code = WS_EINVAL; /* invalid_text_representation (bad JSON) */
    return ws_error_set(err, code, "postgres: %s", msg);
}

static void pg_close(ws_db *d)
{
    if (!d)
        return;
    ws__pq.PQfinish(d->conn);
    free(d);
}

static int pg_connect(const char *url, int timeout_ms, ws_db **out, ws_error *err)
{
    int rc = ws__pq_load(err);
    if (rc < 0)
        return rc;
    int secs = timeout_ms > 0 ? (timeout_ms + 999) / 1000 : 5;
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", secs < 2 ? 2 : secs);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, timeout, "whatstyle", NULL};
    ws_db *d = ws_xcalloc(1, sizeof *d);
    /* expand_dbname=1: dbname holds the whole URL or key=value string; the later entries
     * only apply where the URL does not set them. */
    d->conn = ws__pq.PQconnectdbParams(keys, vals, 1);
    if (!d->conn || ws__pq.PQstatus(d->conn) != CONNECTION_OK) {
        rc = conn_err(d, err, "connect");
        pg_close(d);
        return rc;
    }
    PGresult *r = ws__pq.PQexec(d->conn, "SET client_min_messages = warning");
    ws__pq.PQclear(r);
    *out = d;
    return 0;
}

static int ensure_conn(ws_db *d, ws_error *err)
{
    if (ws__pq.PQstatus(d->conn) == CONNECTION_OK)
        return 0;
    ws__pq.PQreset(d->conn);
    if (ws__pq.PQstatus(d->conn) != CONNECTION_OK)
        return conn_err(d, err, "reconnect");
    return 0;
}

static int pg_query(ws_db *d, ws_arena *a, const char *sql, const ws_dbp *p, int np, ws_dbres *out,
                    ws_error *err)
{
    /* the protocol's limit on parameters of one statement */
    if (np < 0 || np > 65535)
        return ws_error_set(err, WS_EINTERNAL, "postgres: too many parameters (%d)", np);
    enum { NUMLEN = 40 };
    size_t n = np > 0 ? (size_t)np : 1;
    unsigned int *types = ws_arena_alloc(a, n * sizeof *types);
    const char **vals = ws_arena_alloc(a, n * sizeof *vals);
    char *nums = ws_arena_alloc(a, n * NUMLEN);
    for (int k = 0; k < np; k++) {
        char *num = nums + (size_t)k * NUMLEN;
        types[k] = 0;
        vals[k] = NULL;
        switch (p[k].t) {
        case 's': vals[k] = p[k].s; break;
        case 'i':
            types[k] = OID_INT8;
            snprintf(num, NUMLEN, "%lld", (long long)p[k].i);
            vals[k] = num;
            break;
        case 'd':
            types[k] = OID_FLOAT8;
            snprintf(num, NUMLEN, "%.17g", p[k].d);
            vals[k] = num;
            break;
        default: break;
        }
    }
    int rc = ensure_conn(d, err);
    if (rc < 0)
        return rc;
    PGresult *r = ws__pq.PQexecParams(d->conn, sql, np, types, vals, NULL, NULL, 0);
    ExecStatusType st = r ? ws__pq.PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rc = result_err(d, r, err);
        goto out;
    }
    if (out) {
        int nrows = ws__pq.PQntuples(r), ncols = ws__pq.PQnfields(r);
        out->nrows = nrows;
        out->ncols = ncols;
        out->cells = NULL;
        if (nrows && ncols) {
            const char **cells = ws_arena_alloc(a, (size_t)nrows * (size_t)ncols * sizeof *cells);
            for (int i = 0; i < nrows; i++)
                for (int c = 0; c < ncols; c++)
                    cells[(size_t)i * (size_t)ncols + (size_t)c] =
                        ws__pq.PQgetisnull(r, i, c) ? NULL
                                                    : ws_arena_strndup(a, ws__pq.PQgetvalue(r, i, c),
                                                                       (size_t)ws__pq.PQgetlength(r, i, c));
            out->cells = cells;
        }
    }
    rc = 0;
out:
    ws__pq.PQclear(r);
    return rc;
}

static int pg_exec_script(ws_db *d, const char *sql, ws_error *err)
{
    int rc = ensure_conn(d, err);
    if (rc < 0)
        return rc;
    PGresult *r = ws__pq.PQexec(d->conn, sql);
    ExecStatusType st = r ? ws__pq.PQresultStatus(r) : PGRES_FATAL_ERROR;
    rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : result_err(d, r, err);
    ws__pq.PQclear(r);
    return rc;
}

static int pg_begin(ws_db *d, bool write, ws_error *err)
{
    return pg_exec_script(d, "BEGIN", err);
}

static int pg_commit(ws_db *d, ws_error *err)
{
    return pg_exec_script(d, "COMMIT", err);
}

static void pg_rollback(ws_db *d)
{
    if (ws__pq.PQtransactionStatus(d->conn) != PQTRANS_IDLE) {
        PGresult *r = ws__pq.PQexec(d->conn, "ROLLBACK");
        ws__pq.PQclear(r);
    }
}

const ws_store_driver ws_store_pg_driver = {
    .name = "postgres",
    .is_pg = true,
    .connect = pg_connect,
    .close = pg_close,
    .query = pg_query,
    .exec_script = pg_exec_script,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
};
