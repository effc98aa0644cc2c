/* The store's core, written once against the driver interface (store_int.h) so the SQLite and
 * PostgreSQL backends run the same SQL: ids and clocks, input validation, the query and
 * transaction helpers the entity files share, open / close and migrations. The entities live one
 * per file (store_users.c, store_keys.c, store_jobs.c, store_conversations.c, store_events.c,
 * store_audit.c, store_models.c, store_export.c). See store.h for the contract of each public
 * function. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/base64.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace.h"
#include "core/utf8.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------ small helpers */

int64_t ws_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ws_store_new_id(const char *prefix, char *out, size_t out_size)
{
    unsigned char rnd[12];
    size_t plen = strlen(prefix);
    if (out_size < plen + 2 * sizeof rnd + 1)
        return WS_EINVAL;
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return WS_EIO;
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(out + plen + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/* Checks an input string: present when required, non-empty when present and required, at
 * most max bytes, valid UTF-8. */
int ws__store_check_text(ws_error *err, const char *field, const char *s, size_t max, bool required)
{
    if (!s)
        return required ? ws_error_set(err, WS_EINVAL, "%s is required", field) : 0;
    size_t n = strnlen(s, max + 1);
    if (required && n == 0)
        return ws_error_set(err, WS_EINVAL, "%s is empty", field);
    if (n > max)
        return ws_error_set(err, WS_ETOOBIG, "%s is longer than %zu bytes", field, max);
    if (!ws_utf8_valid(s, n))
        return ws_error_set(err, WS_EINVAL, "%s is not valid UTF-8", field);
    return 0;
}

/* Checks that s (if not NULL) is one JSON value within the JSON cap. */
int ws__store_check_json(ws_error *err, const char *field, const char *s)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, WS_STORE_JSON_MAX + 1);
    if (n > WS_STORE_JSON_MAX)
        return ws_error_set(err, WS_ETOOBIG, "%s is longer than %d bytes", field, WS_STORE_JSON_MAX);
    ws_json_doc *doc = NULL;
    ws_error jerr = {0};
    if (ws_json_parse(s, n, &doc, &jerr) < 0)
        return ws_error_set(err, WS_EINVAL, "%s is not valid JSON: %s", field, jerr.msg);
    ws_json_doc_free(doc);
    return 0;
}

int ws__store_check_limit(ws_error *err, int *limit)
{
    if (*limit < 1)
        return ws_error_set(err, WS_EINVAL, "limit must be at least 1");
    if (*limit > WS_STORE_PAGE_MAX)
        *limit = WS_STORE_PAGE_MAX;
    return 0;
}

const char *ws__store_cell(const ws_dbres *r, int row, int col)
{
    return r->cells[(size_t)row * (size_t)r->ncols + (size_t)col];
}

int64_t ws__store_cell_i64(const ws_dbres *r, int row, int col)
{
    const char *c = ws__store_cell(r, row, col);
    return c ? strtoll(c, NULL, 10) : 0;
}

double ws__store_cell_dbl(const ws_dbres *r, int row, int col)
{
    const char *c = ws__store_cell(r, row, col);
    return c ? strtod(c, NULL) : 0.0;
}

bool ws__store_cell_bool(const ws_dbres *r, int row, int col)
{
    const char *c = ws__store_cell(r, row, col);
    return c && (c[0] == 't' || c[0] == '1');
}

int ws__store_query(ws_store *s, ws_db *db, ws_arena *a, const char *sql, const ws_dbp *p, int np,
                    ws_dbres *out, ws_error *err)
{
    ws_span *sp = ws_span_begin_child("db query", WS_SPAN_CLIENT);
    if (sp) {
        char op[16];
        size_t n = strcspn(sql, " ");
        snprintf(op, sizeof op, "%.*s", (int)(n < 15 ? n : 15), sql);
        ws_span_attr_str(sp, "db.system", s->drv->is_pg ? "postgresql" : "sqlite");
        ws_span_attr_str(sp, "db.operation", op);
        ws_span_attr_str(sp, "db.replica", db == s->db ? "false" : "true");
    }
    int rc = s->drv->query(db, a, sql, p, np, out, err);
    if (rc < 0)
        ws_span_error(sp, ws_strerror(rc));
    ws_span_end(sp);
    return rc;
}

#define REPLICA_RETRY_MS 5000 /* a replica found down is left alone this long */

/* The replica connection for a [replica] read, or NULL (none, or down: reads then go to the
 * primary, and the replica is reconnected after REPLICA_RETRY_MS). */
static ws_db *replica(ws_store *s)
{
    if (!s->replica_url || ws_now_ms_mono() < s->replica_retry_ms)
        return s->rdb;
    if (!s->rdb && s->drv->connect(s->replica_url, s->timeout_ms, &s->rdb, NULL) < 0) {
        s->rdb = NULL;
        s->replica_retry_ms = ws_now_ms_mono() + REPLICA_RETRY_MS;
    }
    return s->rdb;
}

int ws__store_read_query(ws_store *s, ws_arena *a, const char *sql, const ws_dbp *p, int np, ws_dbres *out,
                         ws_error *err)
{
    ws_db *r = s->drv->is_pg ? replica(s) : NULL;
    if (r) {
        ws_error rerr = {0};
        int rc = ws__store_query(s, r, a, sql, p, np, out, &rerr);
        if (rc != WS_EIO) {
            if (rc < 0 && err)
                *err = rerr;
            return rc;
        }
        WS_LOG(WS_LOG_WARN, "store.replica_down", "the read replica failed; reading from the primary",
               WS_LF_S("error", rerr.msg));
        s->drv->close(s->rdb);
        s->rdb = NULL;
        s->replica_retry_ms = ws_now_ms_mono() + REPLICA_RETRY_MS;
    }
    return ws__store_query(s, s->db, a, sql, p, np, out, err);
}

int ws__store_tx_begin(ws_store *s, ws_error *err)
{
    return s->drv->begin(s->db, true, err);
}

/* Commits when rc == 0, else rolls back; returns rc or the commit's error. */
int ws__store_tx_end(ws_store *s, int rc, ws_error *err)
{
    if (rc == 0)
        rc = s->drv->commit(s->db, err);
    if (rc < 0)
        s->drv->rollback(s->db);
    return rc;
}

const ws_store_driver *ws__store_driver(ws_store *s)
{
    return s->drv;
}

ws_db *ws__store_db(ws_store *s)
{
    return s->db;
}

int ws__store_outbox_insert(ws_store *s, ws_arena *a, const char *topic, const char *key, const char *payload,
                            ws_error *err)
{
    ws_dbp p[] = {DBP_S(topic), DBP_S(key), DBP_S(payload), DBP_I(ws_store_now_ms())};
    return ws__store_query(s, s->db, a,
                           "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES ($1, $2, $3, $4)",
                           p, NP(p), NULL, err);
}

/* ------------------------------------------------------------------ open / close */

static bool is_pg_url(const char *url)
{
    if (!strncmp(url, "sqlite:", 7))
        return false;
    return !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13) || strchr(url, '=') != NULL;
}

int ws_store_open(const ws_store_config *cfg, ws_store **out, ws_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->url || !*cfg->url)
        return ws_error_set(err, WS_EINVAL, "store: no database URL given");
    ws_store *s = ws_xcalloc(1, sizeof *s);
    int rc;
    if (is_pg_url(cfg->url)) {
        s->drv = &ws_store_pg_driver;
        s->migs = ws_store_migrations_postgres;
        s->nmigs = ws_store_migrations_postgres_count;
    } else {
        s->drv = &ws_store_sqlite_driver;
        s->migs = ws_store_migrations_sqlite;
        s->nmigs = ws_store_migrations_sqlite_count;
        if (cfg->replica_url && *cfg->replica_url) {
            rc = ws_error_set(err, WS_EINVAL, "store: a read replica needs PostgreSQL");
            goto out;
        }
    }
    if ((rc = s->drv->connect(cfg->url, cfg->timeout_ms, &s->db, err)) < 0)
        goto out;
    if (cfg->replica_url && *cfg->replica_url) {
        if (!is_pg_url(cfg->replica_url)) {
            rc = ws_error_set(err, WS_EINVAL, "store: replica URL is not a PostgreSQL URL");
            goto out;
        }
        /* a replica down at start is not fatal: reads go to the primary until it is back */
        s->replica_url = ws_xstrdup(cfg->replica_url);
        s->timeout_ms = cfg->timeout_ms;
        ws_error rerr = {0};
        if (s->drv->connect(cfg->replica_url, cfg->timeout_ms, &s->rdb, &rerr) < 0) {
            s->rdb = NULL;
            s->replica_retry_ms = ws_now_ms_mono() + REPLICA_RETRY_MS;
            WS_LOG(WS_LOG_WARN, "store.replica_down", "the read replica is down; reading from the primary",
                   WS_LF_S("error", rerr.msg));
        }
    }
    if (cfg->fault) { /* tests: every database call through the fault driver */
        ws__store_fault_wrap(s->drv, &s->db, cfg->fault);
        ws__store_fault_wrap(s->drv, &s->rdb, cfg->fault);
        s->drv = ws__store_fault_driver(s->drv);
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    ws_store_close(s);
    return rc;
}

void ws_store_close(ws_store *s)
{
    if (!s)
        return;
    if (s->rdb)
        s->drv->close(s->rdb);
    if (s->db)
        s->drv->close(s->db);
    for (size_t i = 0; i < sizeof s->memo / sizeof *s->memo; i++)
        free(s->memo[i].sql);
    free(s->replica_url);
    free(s);
}

const char *ws_store_backend(const ws_store *s)
{
    return s->drv->name;
}

char *ws_store_url_for_data_dir(const char *dir, ws_error *err)
{
    if (!dir || !*dir) {
        ws_error_set(err, WS_EINVAL, "no data directory given");
        return NULL;
    }
    char *path = ws_xstrdup(dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            ws_error_set(err, WS_EIO, "cannot create %s: %s", path, strerror(errno));
            free(path);
            return NULL;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        ws_error_set(err, WS_EIO, "cannot create %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    free(path);
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "sqlite:%s/whatstyle.db", dir);
    return ws_buf_take(&b);
}

int ws_store_open_for(const char *data_dir, const char *database_url, const char *replica_url, ws_store **out,
                      ws_error *err)
{
    *out = NULL;
    char *own = NULL;
    const char *url = database_url && *database_url ? database_url : NULL;
    if (!url && data_dir) {
        own = ws_store_url_for_data_dir(data_dir, err);
        if (!own)
            return err ? err->code : WS_EIO;
        url = own;
    }
    if (!url) {
        return ws_error_set(err, WS_EINVAL,
                            "no database: give --data DIR or --store URL"
                            " (or set WS_STORE_URL)");
    }
    ws_store_config cfg = {.url = url, .replica_url = replica_url && *replica_url ? replica_url : NULL};
    int rc = ws_store_open(&cfg, out, err);
    free(own);
    return rc;
}

int ws_store_ping(ws_store *s, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    int rc = ws__store_query(s, s->db, a, "SELECT 1", NULL, 0, NULL, err);
    /* the replica is probed too, but one that is down is no failure: reads fall back */
    if (rc == 0)
        rc = ws__store_read_query(s, a, "SELECT 1", NULL, 0, NULL, err);
    ws_arena_free(a);
    return rc;
}

bool ws_store_reads_from_replica(ws_store *s)
{
    ws_db *r0 = replica(s);
    if (!r0)
        return false;
    ws_arena *a = ws_arena_new(256);
    ws_dbres r = {0};
    bool yes = ws__store_query(s, r0, a, "SELECT pg_is_in_recovery()", NULL, 0, &r, NULL) == 0 &&
               r.nrows == 1 && ws__store_cell_bool(&r, 0, 0);
    ws_arena_free(a);
    return yes;
}

/* ------------------------------------------------------------------ migrations */

static int table_exists(ws_store *s, ws_arena *a, const char *name, bool *yes, ws_error *err)
{
    ws_dbres r = {0};
    ws_dbp p[] = {DBP_S(name)};
    int rc = ws__store_query(s, s->db, a,
                             s->drv->is_pg ? "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = $1"
                                             " AND schemaname = current_schema()"
                                           : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
                             p, NP(p), &r, err);
    *yes = rc == 0 && r.nrows > 0;
    return rc;
}

int ws_store_schema_version(ws_store *s, int *version, int *latest, ws_error *err)
{
    ws_arena *a = ws_arena_new(1024);
    bool exists = false;
    *version = 0;
    if (latest)
        *latest = s->nmigs ? s->migs[s->nmigs - 1].version : 0;
    int rc = table_exists(s, a, "schema_migrations", &exists, err);
    if (rc == 0 && exists) {
        ws_dbres r = {0};
        rc = ws__store_query(s, s->db, a, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0,
                             &r, err);
        if (rc == 0 && r.nrows == 1)
            *version = (int)ws__store_cell_i64(&r, 0, 0);
    }
    ws_arena_free(a);
    return rc;
}

int ws_store_migrate(ws_store *s, int *applied, ws_error *err)
{
    int rc = 0, count = 0;
    ws_arena *a = ws_arena_new(1024);
    for (size_t i = 0; i < s->nmigs; i++) {
        const ws_migration *m = &s->migs[i];
        ws_dbres r = {0};
        if ((rc = ws__store_tx_begin(s, err)) < 0)
            goto out;
        /* PostgreSQL: serialise concurrent migrators; SQLite's BEGIN IMMEDIATE already did. */
        if (s->drv->is_pg) {
            ws_dbp lk[] = {DBP_I(0x77737467)};
            rc = ws__store_query(s, s->db, a, "SELECT pg_advisory_xact_lock($1)", lk, NP(lk), NULL, err);
        }
        if (rc == 0)
            rc = s->drv->exec_script(s->db,
                                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                                     " applied_at BIGINT NOT NULL)",
                                     err);
        ws_dbp pv[] = {DBP_I(m->version)};
        if (rc == 0)
            rc = ws__store_query(s, s->db, a, "SELECT 1 FROM schema_migrations WHERE version = $1", pv,
                                 NP(pv), &r, err);
        if (rc == 0 && r.nrows == 0) {
            rc = s->drv->exec_script(s->db, m->sql, err);
            if (rc < 0) {
                char msg[WS_ERROR_MSG_MAX];
                snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
                ws_error_set(err, rc, "migration %s: %s", m->name, msg);
            }
            ws_dbp pi[] = {DBP_I(m->version), DBP_S(m->name), DBP_I(ws_store_now_ms())};
            if (rc == 0)
                rc = ws__store_query(s, s->db, a,
                                     "INSERT INTO schema_migrations (version, name, applied_at)"
                                     " VALUES ($1, $2, $3)",
                                     pi, NP(pi), NULL, err);
            if (rc == 0)
                count++;
        }
        if ((rc = ws__store_tx_end(s, rc, err)) < 0)
            goto out;
    }
out:
    ws_arena_free(a);
    if (applied)
        *applied = count;
    return rc;
}
