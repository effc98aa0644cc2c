/* The SQLite driver of the store: one sqlite3 connection in WAL mode with foreign keys on
 * and a busy timeout, so several connections (one per worker thread, several processes)
 * can share one database file. Prepared statements are kept in a small per-connection cache
 * keyed by their SQL text (parsing a multi-row insert cost more than running it). */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/strset.h"
#include "store/store_int.h"

#define STMT_CACHE 32 /* prepared statements kept per connection (least recently used go) */

/* A prepared statement and the map of its "?" to the store's $N parameters (see
 * rewrite_placeholders). Kept reset, with no bindings, between uses. */
typedef struct cached_stmt {
    char *sql; /* the store's SQL text: the key */
    size_t len;
    uint64_t hash;
    sqlite3_stmt *st;
    int *map;
    int n;
    uint64_t used; /* for the least-recently-used choice */
} cached_stmt;

/* One connection; not thread-safe (a ws_store is used by one thread at a time). */
struct ws_db {
    sqlite3 *db;
    cached_stmt cache[STMT_CACHE];
    uint64_t tick;
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

static void cache_entry_clear(cached_stmt *e)
{
    sqlite3_finalize(e->st);
    free(e->sql);
    free(e->map);
    memset(e, 0, sizeof *e);
}

static void sqlite_close(ws_db *d)
{
    if (!d)
        return;
    for (int i = 0; i < STMT_CACHE; i++)
        cache_entry_clear(&d->cache[i]);
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
    /* NOMUTEX: a connection is used by one thread at a time (the store is not thread-safe),
     * so SQLite's per-call connection mutex is pure overhead */
    int rc =
        sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
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

/* The store writes placeholders as $1..$n (PostgreSQL's syntax). SQLite treats "$1" and
 * "?1" as named parameters, which cost a linear name lookup each when the statement is
 * parsed (quadratic in a multi-row insert). So the driver rewrites every $N (outside quoted
 * text) to an anonymous "?" and records which parameter each "?" takes: map[i] = N - 1. */
typedef struct placeholders {
    ws_buf sql;
    int *map;
    int n, cap;
} placeholders;

static void rewrite_placeholders(const char *sql, placeholders *ph)
{
    char quote = 0;
    for (const char *c = sql; *c; c++) {
        if (quote) {
            if (*c == quote)
                quote = 0;
        } else if (*c == '\'' || *c == '"') {
            quote = *c;
        } else if (*c == '$' && c[1] >= '1' && c[1] <= '9') {
            long k = 0;
            while (c[1] >= '0' && c[1] <= '9' && k < 1000000)
                k = k * 10 + (*++c - '0');
            if (ph->n == ph->cap) {
                ph->cap = ph->cap ? ph->cap * 2 : 16;
                ph->map = ws_xrealloc(ph->map, (size_t)ph->cap * sizeof *ph->map);
            }
            ph->map[ph->n++] = (int)k - 1;
            ws_buf_putc(&ph->sql, '?');
            continue;
        }
        ws_buf_putc(&ph->sql, *c);
    }
}

/* Binds each "?" to its parameter; a placeholder beyond np stays NULL. */
static int bind_params(ws_db *d, sqlite3_stmt *st, const placeholders *ph, const ws_dbp *p, int np,
                       ws_error *err)
{
    int count = sqlite3_bind_parameter_count(st);
    for (int i = 0; i < ph->n && i < count; i++) {
        int idx = i + 1, k = ph->map[i];
        if (k < 0 || k >= np)
            continue;
        int rc;
        switch (p[k].t) {
        case 's':
            /* STATIC: the parameters outlive the statement's run (reset before returning) */
            rc = p[k].s ? sqlite3_bind_text(st, idx, p[k].s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
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

/* Sets *out to the cached statement for sql, prepared (and cached) on a miss. Returns 0,
 * or the error of a text SQLite refuses. */
static int stmt_get(ws_db *d, const char *sql, cached_stmt **out, ws_error *err)
{
    size_t len = strlen(sql);
    uint64_t h = ws_hash_fnv1a(sql, len);
    cached_stmt *victim = &d->cache[0];
    for (int i = 0; i < STMT_CACHE; i++) {
        cached_stmt *e = &d->cache[i];
        if (e->st && e->hash == h && e->len == len && !memcmp(e->sql, sql, len)) {
            e->used = ++d->tick;
            *out = e;
            return 0;
        }
        if (!e->st || (victim->st && e->used < victim->used))
            victim = e;
    }
    placeholders ph = {.sql = WS_BUF_INIT};
    rewrite_placeholders(sql, &ph);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(d->db, ph.sql.data ? ph.sql.data : "", (int)ph.sql.len,
                                SQLITE_PREPARE_PERSISTENT, &st, NULL);
    ws_buf_free(&ph.sql);
    if (rc != SQLITE_OK || !st) {
        free(ph.map);
        sqlite3_finalize(st);
        if (rc == SQLITE_OK) /* only a comment or white space */
            return ws_error_set(err, WS_EINVAL, "sqlite: prepare: empty statement");
        return sqlite_err(d, rc, err, "prepare");
    }
    cache_entry_clear(victim);
    victim->sql = ws_xmalloc(len + 1);
    memcpy(victim->sql, sql, len + 1);
    victim->len = len;
    victim->hash = h;
    victim->st = st;
    victim->map = ph.map;
    victim->n = ph.n;
    victim->used = ++d->tick;
    *out = victim;
    return 0;
}

static int sqlite_query(ws_db *d, ws_arena *a, const char *sql, const ws_dbp *p, int np, ws_dbres *out,
                        ws_error *err)
{
    rowbuf rb = {0};
    int ncols = 0, nrows = 0, rc;
    cached_stmt *e = NULL;
    if ((rc = stmt_get(d, sql, &e, err)) < 0)
        return rc;
    sqlite3_stmt *st = e->st;
    placeholders ph = {.map = e->map, .n = e->n};
    if ((rc = bind_params(d, st, &ph, p, np, err)) < 0)
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
            rb.cells[rb.len++] =
                t ? ws_arena_strndup(a, (const char *)t, (size_t)sqlite3_column_bytes(st, c)) : NULL;
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
    /* back to the cache: reset (no open read of the table) and unbound (the bound strings
     * belong to the caller) */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
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
