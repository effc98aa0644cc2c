/* The store's operations, written once against the driver interface (store_int.h) so the
 * SQLite and PostgreSQL backends run the same SQL: validation of input, transactions that
 * write a state change and its outbox message together, keyset pagination, erasure and
 * export. See store.h for the contract of each public function. */
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
#include "core/json.h"
#include "core/mem.h"
#include "core/trace.h"
#include "store/store_int.h"

struct ws_store {
    const ws_store_driver *drv;
    ws_db *db;      /* primary */
    ws_db *rdb;     /* read replica, NULL when none */
    const ws_migration *migs;
    size_t nmigs;
    /* texts of the multi-row inserts built so far (insert_rows), by statement and rows */
    struct sql_memo {
        const char *head, *id_col; /* static strings: compared by address */
        int w, m;
        char *sql;
    } memo[24];
    int memo_next;
};

/* Caps of short fields (bytes); the PostgreSQL schema's VARCHAR sizes match. */
#define PHONE_MAX 32
#define TIER_MAX 32
#define KEY_ID_MAX 32
#define CLIENT_MAX 128
#define ROLE_MAX 16
#define WORKER_MAX 128
#define VERSION_MAX 128
#define TYPE_MAX 64
#define ACTOR_MAX 128
#define RESOURCE_MAX 256
#define PATH_MAX_LEN 1024

#define USER_COLS "user_id, name, phone_number, model_version, subscription_tier, created_at," \
                  " last_active, is_active"
/* with the owner's name and state: FROM api_keys k JOIN users u ON u.user_id = k.user_id */
#define KEY_JOIN_COLS "k.key_id, k.user_id, k.client_name, k.role, k.rate_limit, k.is_active," \
                      " k.created_at, k.expires_at, k.last_used_at, u.name, u.is_active"
#define KEY_JOIN " FROM api_keys k JOIN users u ON u.user_id = k.user_id"
#define KEY_COLS "key_id, user_id, client_name, role, rate_limit, is_active, created_at," \
                 " expires_at, last_used_at"
#define JOB_COLS "job_id, user_id, status, progress, samples_processed, params, metrics," \
                 " error_message, s3_data_path, worker_id, created_at, started_at," \
                 " completed_at, updated_at"
#define CONV_COLS "conversation_id, user_id, message, response, confidence," \
                  " processing_time_ms, model_version, created_at"
#define AUDIT_COLS "id, actor, user_id, action, resource, detail, created_at"
#define OUTBOX_COLS "id, topic, msg_key, payload, created_at"
#define MODEL_COLS "user_id, version, artifact_path, job_id, created_at"

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

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
        else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
        else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
        else return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* Checks an input string: present when required, non-empty when present and required, at
 * most max bytes, valid UTF-8. */
static int check_text(ws_error *err, const char *field, const char *s, size_t max,
                      bool required)
{
    if (!s)
        return required ? ws_error_set(err, WS_EINVAL, "%s is required", field) : 0;
    size_t n = strnlen(s, max + 1);
    if (required && n == 0)
        return ws_error_set(err, WS_EINVAL, "%s is empty", field);
    if (n > max)
        return ws_error_set(err, WS_ETOOBIG, "%s is longer than %zu bytes", field, max);
    if (!utf8_valid((const unsigned char *)s, n))
        return ws_error_set(err, WS_EINVAL, "%s is not valid UTF-8", field);
    return 0;
}

/* Checks that s (if not NULL) is one JSON value within the JSON cap. */
static int check_json(ws_error *err, const char *field, const char *s)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, WS_STORE_JSON_MAX + 1);
    if (n > WS_STORE_JSON_MAX)
        return ws_error_set(err, WS_ETOOBIG, "%s is longer than %d bytes", field,
                            WS_STORE_JSON_MAX);
    ws_json_doc *doc = NULL;
    ws_error jerr = {0};
    if (ws_json_parse(s, n, &doc, &jerr) < 0)
        return ws_error_set(err, WS_EINVAL, "%s is not valid JSON: %s", field, jerr.msg);
    ws_json_doc_free(doc);
    return 0;
}

static int check_limit(ws_error *err, int *limit)
{
    if (*limit < 1)
        return ws_error_set(err, WS_EINVAL, "limit must be at least 1");
    if (*limit > WS_STORE_PAGE_MAX)
        *limit = WS_STORE_PAGE_MAX;
    return 0;
}

static const char *cell(const ws_dbres *r, int row, int col)
{
    return r->cells[(size_t)row * (size_t)r->ncols + (size_t)col];
}

static int64_t cell_i64(const ws_dbres *r, int row, int col)
{
    const char *c = cell(r, row, col);
    return c ? strtoll(c, NULL, 10) : 0;
}

static double cell_dbl(const ws_dbres *r, int row, int col)
{
    const char *c = cell(r, row, col);
    return c ? strtod(c, NULL) : 0.0;
}

static bool cell_bool(const ws_dbres *r, int row, int col)
{
    const char *c = cell(r, row, col);
    return c && (c[0] == 't' || c[0] == '1');
}

static int q(ws_store *s, ws_db *db, ws_arena *a, const char *sql, const ws_dbp *p, int np,
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

#define NP(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))

/* The connection for [replica] reads. */
static ws_db *reader(ws_store *s)
{
    return s->rdb ? s->rdb : s->db;
}

static int tx_begin(ws_store *s, ws_error *err)
{
    return s->drv->begin(s->db, true, err);
}

/* Commits when rc == 0, else rolls back; returns rc or the commit's error. */
static int tx_end(ws_store *s, int rc, ws_error *err)
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

/* ------------------------------------------------------------------ JSON of rows */

typedef struct field {
    const char *name;
    char type;   /* 's' string, 'i' integer, 'd' number, 'b' boolean, 'j' raw JSON */
} field;

static void put_cell(ws_buf *b, const char *c, char type)
{
    if (!c) {
        ws_buf_puts(b, "null");
        return;
    }
    switch (type) {
    case 'i': ws_buf_printf(b, "%lld", strtoll(c, NULL, 10)); break;
    case 'd': ws_json_put_num(b, strtod(c, NULL)); break;
    case 'b': ws_buf_puts(b, (c[0] == 't' || c[0] == '1') ? "true" : "false"); break;
    case 'j': ws_buf_puts(b, c); break;
    default: ws_json_put_cstr(b, c); break;
    }
}

/* Appends row `row` of r as a JSON object named by fields (one per column, in order). */
static void put_row(ws_buf *b, const ws_dbres *r, int row, const field *f, int nf)
{
    ws_buf_putc(b, '{');
    for (int c = 0; c < nf && c < r->ncols; c++) {
        if (c)
            ws_buf_putc(b, ',');
        ws_json_put_cstr(b, f[c].name);
        ws_buf_putc(b, ':');
        put_cell(b, cell(r, row, c), f[c].type);
    }
    ws_buf_putc(b, '}');
}

static void put_rows(ws_buf *b, const ws_dbres *r, const field *f, int nf)
{
    ws_buf_putc(b, '[');
    for (int i = 0; i < r->nrows; i++) {
        if (i)
            ws_buf_putc(b, ',');
        put_row(b, r, i, f, nf);
    }
    ws_buf_putc(b, ']');
}

static const field user_fields[] = {
    {"user_id", 's'}, {"name", 's'}, {"phone_number", 's'}, {"model_version", 's'},
    {"subscription_tier", 's'}, {"created_at", 'i'}, {"last_active", 'i'}, {"is_active", 'b'},
};
static const field key_fields[] = {
    {"key_id", 's'}, {"user_id", 's'}, {"client_name", 's'}, {"role", 's'},
    {"rate_limit", 'i'}, {"is_active", 'b'}, {"created_at", 'i'}, {"expires_at", 'i'},
    {"last_used_at", 'i'},
};
static const field job_fields[] = {
    {"job_id", 's'}, {"user_id", 's'}, {"status", 's'}, {"progress", 'd'},
    {"samples_processed", 'i'}, {"params", 'j'}, {"metrics", 'j'}, {"error_message", 's'},
    {"data_path", 's'}, {"worker_id", 's'}, {"created_at", 'i'}, {"started_at", 'i'},
    {"completed_at", 'i'}, {"updated_at", 'i'},
};
static const field conv_fields[] = {
    {"conversation_id", 'i'}, {"user_id", 's'}, {"message", 's'}, {"response", 's'},
    {"confidence", 'd'}, {"processing_time_ms", 'i'}, {"model_version", 's'},
    {"created_at", 'i'},
};
static const field event_fields[] = {
    {"event_id", 'i'}, {"event_type", 's'}, {"event_data", 'j'}, {"created_at", 'i'},
};
static const field audit_fields[] = {
    {"id", 'i'}, {"actor", 's'}, {"user_id", 's'}, {"action", 's'}, {"resource", 's'},
    {"detail", 's'}, {"created_at", 'i'},
};
static const field model_fields[] = {
    {"user_id", 's'}, {"version", 's'}, {"artifact_path", 's'}, {"job_id", 's'},
    {"created_at", 'i'},
};

/* the WhatsApp channel's rows (migration 0002_whatsapp, store_whatsapp.c) */
static const field wa_link_fields[] = {
    {"phone_number_id", 's'}, {"mode", 's'}, {"created_at", 'i'}, {"updated_at", 'i'},
};
static const field wa_contact_fields[] = {
    {"phone_number_id", 's'}, {"contact", 's'}, {"mode", 's'}, {"updated_at", 'i'},
};
static const field wa_message_fields[] = {
    {"wamid", 's'}, {"phone_number_id", 's'}, {"direction", 's'}, {"contact_phone", 's'},
    {"contact_user_id", 's'}, {"type", 's'}, {"text", 's'}, {"media_id", 's'}, {"sent_at", 'i'},
    {"status", 's'}, {"error_code", 'i'}, {"created_at", 'i'},
};
static const field wa_draft_fields[] = {
    {"draft_id", 's'}, {"phone_number_id", 's'}, {"contact_phone", 's'}, {"contact_user_id", 's'},
    {"message_id", 's'}, {"mode", 's'}, {"status", 's'}, {"reply", 's'}, {"confidence", 'd'},
    {"reason", 's'}, {"error_code", 'i'}, {"error_message", 's'}, {"sent_message_id", 's'},
    {"created_at", 'i'}, {"updated_at", 'i'},
};

static int outbox_insert(ws_store *s, ws_arena *a, const char *topic, const char *key,
                         const char *payload, ws_error *err)
{
    ws_dbp p[] = {DBP_S(topic), DBP_S(key), DBP_S(payload), DBP_I(ws_store_now_ms())};
    return q(s, s->db, a,
             "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES ($1, $2, $3, $4)",
             p, NP(p), NULL, err);
}

/* ------------------------------------------------------------------ open / close */

static bool is_pg_url(const char *url)
{
    if (!strncmp(url, "sqlite:", 7))
        return false;
    return !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13) ||
           strchr(url, '=') != NULL;
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
        if ((rc = s->drv->connect(cfg->replica_url, cfg->timeout_ms, &s->rdb, err)) < 0)
            goto out;
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

int ws_store_open_for(const char *data_dir, const char *database_url, const char *replica_url,
                      ws_store **out, ws_error *err)
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
    int rc = q(s, s->db, a, "SELECT 1", NULL, 0, NULL, err);
    if (rc == 0 && s->rdb)
        rc = q(s, s->rdb, a, "SELECT 1", NULL, 0, NULL, err);
    ws_arena_free(a);
    return rc;
}

bool ws_store_reads_from_replica(ws_store *s)
{
    if (!s->rdb)
        return false;
    ws_arena *a = ws_arena_new(256);
    ws_dbres r = {0};
    bool yes = q(s, s->rdb, a, "SELECT pg_is_in_recovery()", NULL, 0, &r, NULL) == 0 &&
               r.nrows == 1 && cell_bool(&r, 0, 0);
    ws_arena_free(a);
    return yes;
}

/* ------------------------------------------------------------------ migrations */

static int table_exists(ws_store *s, ws_arena *a, const char *name, bool *yes, ws_error *err)
{
    ws_dbres r = {0};
    ws_dbp p[] = {DBP_S(name)};
    int rc = q(s, s->db, a,
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
        rc = q(s, s->db, a, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0,
               &r, err);
        if (rc == 0 && r.nrows == 1)
            *version = (int)cell_i64(&r, 0, 0);
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
        if ((rc = tx_begin(s, err)) < 0)
            goto out;
        /* PostgreSQL: serialise concurrent migrators; SQLite's BEGIN IMMEDIATE already did. */
        if (s->drv->is_pg) {
            ws_dbp lk[] = {DBP_I(0x77737467)};
            rc = q(s, s->db, a, "SELECT pg_advisory_xact_lock($1)", lk, NP(lk), NULL, err);
        }
        if (rc == 0)
            rc = s->drv->exec_script(s->db,
                                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                                     " applied_at BIGINT NOT NULL)",
                                     err);
        ws_dbp pv[] = {DBP_I(m->version)};
        if (rc == 0)
            rc = q(s, s->db, a, "SELECT 1 FROM schema_migrations WHERE version = $1", pv,
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
                rc = q(s, s->db, a,
                       "INSERT INTO schema_migrations (version, name, applied_at)"
                       " VALUES ($1, $2, $3)",
                       pi, NP(pi), NULL, err);
            if (rc == 0)
                count++;
        }
        if ((rc = tx_end(s, rc, err)) < 0)
            goto out;
    }
out:
    ws_arena_free(a);
    if (applied)
        *applied = count;
    return rc;
}

/* ------------------------------------------------------------------ users */

static void fill_user(const ws_dbres *r, int i, ws_user *u)
{
    u->id = cell(r, i, 0);
    u->name = cell(r, i, 1);
    u->phone = cell(r, i, 2);
    u->model_version = cell(r, i, 3);
    u->tier = cell(r, i, 4);
    u->created_at = cell_i64(r, i, 5);
    u->last_active = cell_i64(r, i, 6);
    u->is_active = cell_bool(r, i, 7);
}

int ws_store_user_create(ws_store *s, ws_arena *a, const char *name, const char *phone,
                         const char *tier, ws_user *out, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "user name", name, WS_STORE_NAME_MAX, true)) < 0 ||
        (rc = check_text(err, "phone number", phone, PHONE_MAX, false)) < 0 ||
        (rc = check_text(err, "subscription tier", tier, TIER_MAX, false)) < 0)
        return rc;
    char id[WS_STORE_ID_MAX + 1];
    if (ws_store_new_id("usr_", id, sizeof id) < 0)
        return ws_error_set(err, WS_EIO, "no random bytes for an id");
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(id), DBP_S(name), DBP_S(phone), DBP_S(tier ? tier : "free"),
                  DBP_I(now)};
    ws_dbres r = {0};
    rc = q(s, s->db, a,
           "INSERT INTO users (user_id, name, phone_number, subscription_tier, created_at,"
           " is_active) VALUES ($1, $2, $3, $4, $5, TRUE) RETURNING " USER_COLS,
           p, NP(p), &r, err);
    if (rc == WS_ECONFLICT)
        return ws_error_set(err, WS_ECONFLICT, "a user with that name or phone number exists");
    if (rc < 0)
        return rc;
    if (out && r.nrows == 1)
        fill_user(&r, 0, out);
    return 0;
}

static int user_get_where(ws_store *s, ws_arena *a, const char *sql, const char *arg,
                          ws_user *out, ws_error *err)
{
    if (!arg)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_dbp p[] = {DBP_S(arg)};
    ws_dbres r = {0};
    int rc = q(s, s->db, a, sql, p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no such user");
    fill_user(&r, 0, out);
    return 0;
}

int ws_store_user_get(ws_store *s, ws_arena *a, const char *user_id, ws_user *out,
                      ws_error *err)
{
    return user_get_where(s, a, "SELECT " USER_COLS " FROM users WHERE user_id = $1", user_id,
                          out, err);
}

int ws_store_user_get_by_name(ws_store *s, ws_arena *a, const char *name, ws_user *out,
                              ws_error *err)
{
    return user_get_where(s, a, "SELECT " USER_COLS " FROM users WHERE name = $1", name, out,
                          err);
}

int ws_store_user_touch(ws_store *s, const char *user_id, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id), DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    int rc = q(s, s->db, a, "UPDATE users SET last_active = $2 WHERE user_id = $1"
               " RETURNING user_id", p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    ws_arena_free(a);
    return rc;
}

int ws_store_user_set_active(ws_store *s, const char *user_id, bool active, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = q(s, s->db, a,
               active ? "UPDATE users SET is_active = TRUE WHERE user_id = $1 RETURNING user_id"
                      : "UPDATE users SET is_active = FALSE WHERE user_id = $1 RETURNING user_id",
               p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    ws_arena_free(a);
    return rc;
}

int ws_store_user_delete(ws_store *s, const char *user_id, ws_error *err)
{
    static const char *const deletes[] = {
        "DELETE FROM api_keys WHERE user_id = $1",
        "DELETE FROM models WHERE user_id = $1",
        "DELETE FROM conversations WHERE user_id = $1",
        "DELETE FROM training_jobs WHERE user_id = $1",
        "DELETE FROM analytics_events WHERE user_id = $1",
        "DELETE FROM audit_log WHERE user_id = $1",
        "DELETE FROM outbox WHERE msg_key = $1 AND published_at IS NULL",
        "DELETE FROM users WHERE user_id = $1",
    };
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_arena *a = ws_arena_new(1024);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = tx_begin(s, err);
    if (rc < 0)
        goto out;
    rc = q(s, s->db, a, "SELECT 1 FROM users WHERE user_id = $1", p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    for (size_t i = 0; rc == 0 && i < sizeof deletes / sizeof deletes[0]; i++)
        rc = q(s, s->db, a, deletes[i], p, NP(p), NULL, err);
    if (rc == 0) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_puts(&b, "{\"type\":\"user.deleted\",\"user_id\":");
        ws_json_put_cstr(&b, user_id);
        ws_buf_printf(&b, ",\"deleted_at\":%" PRId64 "}", ws_store_now_ms());
        rc = outbox_insert(s, a, "user-events", user_id, b.data, err);
        ws_buf_free(&b);
    }
    rc = tx_end(s, rc, err);
out:
    ws_arena_free(a);
    return rc;
}

/* ------------------------------------------------------------------ API keys */

static void fill_key(const ws_dbres *r, int i, ws_api_key *k)
{
    k->key_id = cell(r, i, 0);
    k->user_id = cell(r, i, 1);
    k->client_name = cell(r, i, 2);
    k->role = cell(r, i, 3);
    k->rate_limit = (int)cell_i64(r, i, 4);
    k->is_active = cell_bool(r, i, 5);
    k->created_at = cell_i64(r, i, 6);
    k->expires_at = cell_i64(r, i, 7);
    k->last_used_at = cell_i64(r, i, 8);
    k->user_name = cell(r, i, 9);
    k->user_is_active = cell_bool(r, i, 10);
}

static bool is_hex64(const char *h)
{
    if (!h || strnlen(h, 65) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

int ws_store_key_insert(ws_store *s, const ws_api_key *in, const char *hashed_key,
                        ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "key id", in->key_id, KEY_ID_MAX, true)) < 0 ||
        (rc = check_text(err, "user id", in->user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = check_text(err, "client name", in->client_name, CLIENT_MAX, false)) < 0 ||
        (rc = check_text(err, "role", in->role, ROLE_MAX, true)) < 0)
        return rc;
    if (!is_hex64(hashed_key))
        return ws_error_set(err, WS_EINVAL, "key hash must be 64 lowercase hex digits");
    if (strcmp(in->role, "user") && strcmp(in->role, "admin") && strcmp(in->role, "system"))
        return ws_error_set(err, WS_EINVAL, "unknown role '%s'", in->role);
    if (in->rate_limit < 0)
        return ws_error_set(err, WS_EINVAL, "rate limit must not be negative");
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(in->key_id), DBP_S(hashed_key), DBP_S(in->user_id),
                  DBP_S(in->client_name), DBP_S(in->role), DBP_I(in->rate_limit),
                  DBP_I(ws_store_now_ms()),
                  in->expires_at > 0 ? DBP_I(in->expires_at) : DBP_NULL};
    rc = q(s, s->db, a,
           "INSERT INTO api_keys (key_id, hashed_key, user_id, client_name, role, rate_limit,"
           " is_active, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8)",
           p, NP(p), NULL, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    else if (rc == WS_ECONFLICT)
        rc = ws_error_set(err, WS_ECONFLICT, "a key with that id or hash exists");
    ws_arena_free(a);
    return rc;
}

int ws_store_key_get_by_hash(ws_store *s, ws_arena *a, const char *hashed_key,
                             ws_api_key *out, ws_error *err)
{
    if (!is_hex64(hashed_key))
        return ws_error_set(err, WS_EINVAL, "key hash must be 64 lowercase hex digits");
    ws_dbp p[] = {DBP_S(hashed_key)};
    ws_dbres r = {0};
    int rc = q(s, s->db, a, "SELECT " KEY_JOIN_COLS KEY_JOIN " WHERE k.hashed_key = $1", p,
               NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no such key");
    fill_key(&r, 0, out);
    return 0;
}

int ws_store_key_list(ws_store *s, ws_arena *a, const char *user_id, ws_api_key **items,
                      size_t *n, ws_error *err)
{
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    *items = NULL;
    *n = 0;
    int rc = user_id
                 ? q(s, s->db, a, "SELECT " KEY_JOIN_COLS KEY_JOIN " WHERE k.user_id = $1"
                     " ORDER BY k.created_at DESC, k.key_id", p, NP(p), &r, err)
                 : q(s, s->db, a, "SELECT " KEY_JOIN_COLS KEY_JOIN
                     " ORDER BY k.created_at DESC, k.key_id", NULL, 0, &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++)
            fill_key(&r, i, &(*items)[i]);
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_key_revoke(ws_store *s, const char *key_id, const char *user_id, ws_error *err)
{
    if (!key_id)
        return ws_error_set(err, WS_EINVAL, "no key given");
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(key_id), DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = user_id ? q(s, s->db, a, "UPDATE api_keys SET is_active = FALSE WHERE key_id = $1"
                         " AND user_id = $2 RETURNING key_id", p, 2, &r, err)
                     : q(s, s->db, a, "UPDATE api_keys SET is_active = FALSE WHERE key_id = $1"
                         " RETURNING key_id", p, 1, &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such key '%s'", key_id);
    ws_arena_free(a);
    return rc;
}

int ws_store_key_touch(ws_store *s, const char *key_id, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(key_id), DBP_I(ws_store_now_ms())};
    int rc = q(s, s->db, a, "UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1", p,
               NP(p), NULL, err);
    ws_arena_free(a);
    return rc;
}

/* ------------------------------------------------------------------ training jobs */

static const char *const job_status_names[] = {"queued", "running", "completed", "failed",
                                               "cancelled"};

const char *ws_job_status_name(ws_job_status st)
{
    return (unsigned)st < 5 ? job_status_names[st] : "unknown";
}

int ws_job_status_parse(const char *name, ws_job_status *out)
{
    for (int i = 0; name && i < 5; i++)
        if (!strcmp(name, job_status_names[i])) {
            *out = (ws_job_status)i;
            return 0;
        }
    return WS_EINVAL;
}

static bool job_final(ws_job_status st)
{
    return st == WS_JOB_COMPLETED || st == WS_JOB_FAILED || st == WS_JOB_CANCELLED;
}

static void fill_job(const ws_dbres *r, int i, ws_job *j)
{
    j->id = cell(r, i, 0);
    j->user_id = cell(r, i, 1);
    ws_job_status st = WS_JOB_QUEUED;
    ws_job_status_parse(cell(r, i, 2), &st);
    j->status = st;
    j->progress = cell_dbl(r, i, 3);
    j->samples_processed = cell_i64(r, i, 4);
    j->params_json = cell(r, i, 5);
    j->metrics_json = cell(r, i, 6);
    j->error_message = cell(r, i, 7);
    j->data_path = cell(r, i, 8);
    j->worker_id = cell(r, i, 9);
    j->created_at = cell_i64(r, i, 10);
    j->started_at = cell_i64(r, i, 11);
    j->completed_at = cell_i64(r, i, 12);
    j->updated_at = cell_i64(r, i, 13);
}

/* The outbox payload announcing a job: {"type":type, <the job's fields>}. */
static char *job_payload(const char *type, const ws_dbres *r, int row)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "{\"type\":");
    ws_json_put_cstr(&b, type);
    ws_buf_puts(&b, ",\"job\":");
    put_row(&b, r, row, job_fields, NP(job_fields));
    ws_buf_putc(&b, '}');
    return ws_buf_take(&b);
}

int ws_store_job_create(ws_store *s, ws_arena *a, const char *user_id, const char *data_path,
                        const char *params_json, ws_job *out, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "user id", user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = check_text(err, "data path", data_path, PATH_MAX_LEN, false)) < 0 ||
        (rc = check_json(err, "job parameters", params_json)) < 0)
        return rc;
    char id[WS_STORE_ID_MAX + 1];
    if (ws_store_new_id("job_", id, sizeof id) < 0)
        return ws_error_set(err, WS_EIO, "no random bytes for an id");
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(id), DBP_S(user_id), DBP_S(params_json), DBP_S(data_path), DBP_I(now)};
    ws_dbres r = {0};
    char *payload = NULL;
    if ((rc = tx_begin(s, err)) < 0)
        return rc;
    rc = q(s, s->db, a,
           "INSERT INTO training_jobs (job_id, user_id, status, progress, samples_processed,"
           " params, s3_data_path, created_at, updated_at, seq)"
           " VALUES ($1, $2, 'queued', 0, 0, $3, $4, $5, $5,"
           " (SELECT COALESCE(MAX(seq), 0) + 1 FROM training_jobs)) RETURNING " JOB_COLS,
           p, NP(p), &r, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    if (rc == 0 && r.nrows != 1)
        rc = ws_error_set(err, WS_EINTERNAL, "job insert returned %d rows", r.nrows);
    if (rc == 0) {
        payload = job_payload("training.requested", &r, 0);
        rc = outbox_insert(s, a, "training-jobs", user_id, payload, err);
    }
    rc = tx_end(s, rc, err);
    free(payload);
    if (rc == 0 && out)
        fill_job(&r, 0, out);
    return rc;
}

int ws_store_job_get(ws_store *s, ws_arena *a, const char *job_id, ws_job *out, ws_error *err)
{
    if (!job_id)
        return ws_error_set(err, WS_EINVAL, "no job given");
    ws_dbp p[] = {DBP_S(job_id)};
    ws_dbres r = {0};
    int rc = q(s, s->db, a, "SELECT " JOB_COLS " FROM training_jobs WHERE job_id = $1", p,
               NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no such job");
    fill_job(&r, 0, out);
    return 0;
}

int ws_store_job_update(ws_store *s, const char *job_id, const ws_job_update *u,
                        ws_error *err)
{
    int rc;
    if (!job_id || !u)
        return ws_error_set(err, WS_EINVAL, "no job given");
    if (u->status != -1 && (u->status < 0 || u->status > WS_JOB_CANCELLED))
        return ws_error_set(err, WS_EINVAL, "bad job status %d", u->status);
    if ((rc = check_json(err, "metrics", u->metrics_json)) < 0 ||
        (rc = check_text(err, "error message", u->error_message, WS_STORE_TEXT_MAX, false)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(4096);
    ws_dbres cur = {0}, r = {0};
    char *payload = NULL;
    ws_dbp pid[] = {DBP_S(job_id)};
    if ((rc = tx_begin(s, err)) < 0)
        goto out;
    rc = q(s, s->db, a,
           s->drv->is_pg ? "SELECT status FROM training_jobs WHERE job_id = $1 FOR UPDATE"
                         : "SELECT status FROM training_jobs WHERE job_id = $1",
           pid, NP(pid), &cur, err);
    if (rc == 0 && cur.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such job");
    ws_job_status old = WS_JOB_QUEUED;
    if (rc == 0)
        ws_job_status_parse(cell(&cur, 0, 0), &old);
    int status = u->status;
    if (rc == 0 && status != -1 && job_final(old)) {
        if ((ws_job_status)status != old)
            rc = ws_error_set(err, WS_ECONFLICT, "job is already %s", ws_job_status_name(old));
        status = -1;
    }
    bool finishing = rc == 0 && status != -1 && job_final((ws_job_status)status);
    double progress = u->progress;
    if (progress > 1.0)
        progress = 1.0;
    if (finishing && status == WS_JOB_COMPLETED && progress < 0)
        progress = 1.0;
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {
        DBP_S(job_id),
        status != -1 ? DBP_S(ws_job_status_name((ws_job_status)status)) : DBP_NULL,
        progress >= 0 ? DBP_D(progress) : DBP_NULL,
        u->samples_processed >= 0 ? DBP_I(u->samples_processed) : DBP_NULL,
        DBP_S(u->metrics_json),
        DBP_S(u->error_message),
        finishing ? DBP_I(now) : DBP_NULL,
        DBP_I(now),
    };
    if (rc == 0)
        rc = q(s, s->db, a,
               "UPDATE training_jobs SET status = COALESCE($2, status),"
               " progress = COALESCE($3, progress),"
               " samples_processed = COALESCE($4, samples_processed),"
               " metrics = COALESCE($5, metrics), error_message = COALESCE($6, error_message),"
               " completed_at = COALESCE($7, completed_at), updated_at = $8"
               " WHERE job_id = $1 RETURNING " JOB_COLS,
               p, NP(p), &r, err);
    if (rc == 0 && finishing) {
        char type[32];
        snprintf(type, sizeof type, "training.%s", ws_job_status_name((ws_job_status)status));
        payload = job_payload(type, &r, 0);
        rc = outbox_insert(s, a, "training-events", cell(&r, 0, 1), payload, err);
    }
    rc = tx_end(s, rc, err);
out:
    free(payload);
    ws_arena_free(a);
    return rc;
}

int ws_store_job_list(ws_store *s, ws_arena *a, const char *user_id, int limit,
                      ws_job **items, size_t *n, ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    if ((rc = check_limit(err, &limit)) < 0)
        return rc;
    ws_dbp p[] = {DBP_S(user_id), DBP_I(limit)};
    ws_dbres r = {0};
    rc = q(s, reader(s), a,
           "SELECT " JOB_COLS " FROM training_jobs WHERE user_id = $1"
           " ORDER BY created_at DESC, seq DESC LIMIT $2",
           p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++)
            fill_job(&r, i, &(*items)[i]);
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_job_stats(ws_store *s, ws_job_stats *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    ws_arena *a = ws_arena_new(512);
    ws_dbres r = {0};
    int rc = q(s, reader(s), a, "SELECT status, COUNT(*), MIN(created_at) FROM training_jobs GROUP BY status", NULL,
               0, &r, err);
    for (int i = 0; rc == 0 && i < r.nrows; i++) {
        ws_job_status st;
        if (ws_job_status_parse(cell(&r, i, 0), &st) != 0)
            continue;
        out->by_status[st] = cell_i64(&r, i, 1);
        if (st == WS_JOB_QUEUED)
            out->oldest_queued_ms = cell_i64(&r, i, 2);
    }
    ws_arena_free(a);
    return rc;
}

int ws_store_job_claim(ws_store *s, ws_arena *a, const char *worker_id, ws_job *out,
                       ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "worker id", worker_id, WORKER_MAX, true)) < 0)
        return rc;
    ws_dbp p[] = {DBP_S(worker_id), DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    if ((rc = tx_begin(s, err)) < 0)
        return rc;
    rc = q(s, s->db, a,
           s->drv->is_pg
               ? "UPDATE training_jobs SET status = 'running', worker_id = $1, started_at = $2,"
                 " updated_at = $2 WHERE job_id = (SELECT job_id FROM training_jobs"
                 " WHERE status = 'queued' ORDER BY seq, job_id LIMIT 1"
                 " FOR UPDATE SKIP LOCKED) RETURNING " JOB_COLS
               : "UPDATE training_jobs SET status = 'running', worker_id = $1, started_at = $2,"
                 " updated_at = $2 WHERE job_id = (SELECT job_id FROM training_jobs"
                 " WHERE status = 'queued' ORDER BY seq, job_id LIMIT 1)"
                 " RETURNING " JOB_COLS,
           p, NP(p), &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = WS_ENOENT;   /* nothing queued: not an error worth a message */
    int end = tx_end(s, rc == WS_ENOENT ? 0 : rc, err);
    if (rc == 0 && end < 0)
        rc = end;
    if (rc == 0)
        fill_job(&r, 0, out);
    else if (rc == WS_ENOENT)
        ws_error_set(err, WS_ENOENT, "no queued job");
    return rc;
}

/* ------------------------------------------------------------------ conversations */

int ws_store_cursor_encode(int64_t created_at, int64_t id, char *out, size_t out_size)
{
    char raw[48];
    int n = snprintf(raw, sizeof raw, "%" PRId64 ".%" PRId64, created_at, id);
    if (created_at < 0 || id < 0 || n <= 0)
        return WS_EINVAL;
    size_t need = 3 + ((size_t)n * 4 + 2) / 3 + 1;
    if (out_size < need)
        return WS_EINVAL;
    memcpy(out, "c1.", 3);
    ws_base64url_encode(raw, (size_t)n, out + 3);
    return 0;
}

/* Parses a non-negative decimal int64 of digits only; false on empty/overflow/junk. */
static bool parse_u63(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

int ws_store_cursor_decode(const char *s, size_t len, int64_t *created_at, int64_t *id)
{
    if (!s || len < 4 || len > WS_STORE_CURSOR_MAX || memcmp(s, "c1.", 3))
        return WS_EINVAL;
    const char *p = s + 3;
    size_t n = len - 3;
    unsigned char raw_bytes[WS_STORE_CURSOR_MAX];
    long decoded = ws_base64url_decode(p, n, raw_bytes, sizeof raw_bytes);
    if (decoded < 0)
        return WS_EINVAL;
    const char *raw = (const char *)raw_bytes;
    size_t o = (size_t)decoded;
    const char *dot = memchr(raw, '.', o);
    if (!dot)
        return WS_EINVAL;
    size_t l1 = (size_t)(dot - raw);
    if (!parse_u63(raw, l1, created_at) || !parse_u63(dot + 1, o - l1 - 1, id))
        return WS_EINVAL;
    return 0;
}

static void fill_conv(const ws_dbres *r, int i, ws_conversation *c)
{
    c->id = cell_i64(r, i, 0);
    c->user_id = cell(r, i, 1);
    c->message = cell(r, i, 2);
    c->response = cell(r, i, 3);
    c->confidence = cell_dbl(r, i, 4);
    c->processing_ms = (int)cell_i64(r, i, 5);
    c->model_version = cell(r, i, 6);
    c->created_at = cell_i64(r, i, 7);
}

/* The checks every conversation row passes before it is written. */
static int conv_validate(const ws_conversation *c, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "user id", c->user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = check_text(err, "message", c->message, WS_STORE_TEXT_MAX, false)) < 0 ||
        (rc = check_text(err, "response", c->response, WS_STORE_TEXT_MAX, false)) < 0 ||
        (rc = check_text(err, "model version", c->model_version, VERSION_MAX, false)) < 0)
        return rc;
    if (!c->message || !c->response)
        return ws_error_set(err, WS_EINVAL, "message and response are required");
    if (c->created_at < 0 || c->processing_ms < 0)
        return ws_error_set(err, WS_EINVAL, "negative time");
    return 0;
}

int ws_store_conv_insert(ws_store *s, const ws_conversation *c, int64_t *id_out,
                         ws_error *err)
{
    int rc;
    if ((rc = conv_validate(c, err)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(c->user_id), DBP_S(c->message), DBP_S(c->response),
                  DBP_D(c->confidence), DBP_I(c->processing_ms),
                  DBP_I(c->created_at ? c->created_at : ws_store_now_ms()),
                  DBP_S(c->model_version)};
    ws_dbres r = {0};
    rc = q(s, s->db, a,
           "INSERT INTO conversations (user_id, message, response, confidence,"
           " processing_time_ms, created_at, model_version) VALUES ($1, $2, $3, $4, $5, $6, $7)"
           " RETURNING conversation_id",
           p, NP(p), &r, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    if (rc == 0 && id_out)
        *id_out = r.nrows ? cell_i64(&r, 0, 0) : 0;
    ws_arena_free(a);
    return rc;
}

/* ---- batch insert */

/* Rows per multi-row statement: 64 * 7 parameters stays far below SQLite's and PostgreSQL's
 * limits on parameters per statement. */
#define BATCH_CHUNK 64
/* Distinct user ids looked up per statement. */
#define BATCH_USERS 256

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Appends "($k+1, ..., $k+w)" to sql. */
static void put_placeholders(ws_buf *sql, int k, int w)
{
    ws_buf_putc(sql, '(');
    for (int j = 0; j < w; j++) {
        ws_buf_puts(sql, j ? ", $" : "$");
        ws_buf_put_i64(sql, k + j + 1);
    }
    ws_buf_putc(sql, ')');
}

/* Looks up (and, on PostgreSQL, locks against deletion until the commit) the users of the
 * batch; rows of a user that does not exist get status WS_ENOENT. */
static int batch_mark_missing_users(ws_store *s, ws_arena *a, ws_conv_batch_row *rows, size_t n,
                                    ws_error *err)
{
    const char **ids = ws_arena_alloc(a, n * sizeof *ids);
    bool *found = ws_arena_calloc(a, n * sizeof *found);
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nd && strcmp(ids[k], rows[i].conv.user_id))
            k++;
        if (k == nd)
            ids[nd++] = rows[i].conv.user_id;
    }
    ws_buf sql = WS_BUF_INIT;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < nd; at += BATCH_USERS) {
        int m = (int)(nd - at < BATCH_USERS ? nd - at : BATCH_USERS);
        ws_dbp *p = ws_arena_alloc(a, (size_t)m * sizeof *p);
        ws_buf_reset(&sql);
        ws_buf_puts(&sql, "SELECT user_id FROM users WHERE user_id IN ");
        put_placeholders(&sql, 0, m);
        if (s->drv->is_pg)
            ws_buf_puts(&sql, " FOR KEY SHARE");
        for (int j = 0; j < m; j++)
            p[j] = DBP_S(ids[at + (size_t)j]);
        ws_dbres r = {0};
        rc = q(s, s->db, a, sql.data, p, m, &r, err);
        for (int row = 0; rc == 0 && row < r.nrows; row++) {
            const char *id = cell(&r, row, 0);
            for (int j = 0; id && j < m; j++)
                if (!strcmp(id, ids[at + (size_t)j]))
                    found[at + (size_t)j] = true;
        }
    }
    ws_buf_free(&sql);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t k = 0;
        while (strcmp(ids[k], rows[i].conv.user_id))
            k++;
        if (!found[k])
            rows[i].status = WS_ENOENT;
    }
    return rc;
}

/* Runs one multi-row INSERT ... RETURNING <id> for m rows of w parameters each (p), and
 * puts the new ids, in the order of the rows, into ids. Identity values are handed out in
 * the order of the VALUES list, so the sorted ids match the rows whatever order RETURNING
 * uses. */
/* The text of a multi-row insert, built once per store handle (the writer runs the same
 * few thousand-placeholder statements batch after batch). */
static const char *insert_sql(ws_store *s, const char *head, const char *id_col, int w, int m)
{
    const size_t n_memo = sizeof s->memo / sizeof *s->memo;
    for (size_t i = 0; i < n_memo; i++) {
        struct sql_memo *e = &s->memo[i];
        if (e->sql && e->head == head && e->id_col == id_col && e->w == w && e->m == m)
            return e->sql;
    }
    ws_buf sql = WS_BUF_INIT;
    ws_buf_puts(&sql, head);
    for (int j = 0; j < m; j++) {
        if (j)
            ws_buf_puts(&sql, ", ");
        put_placeholders(&sql, j * w, w);
    }
    if (id_col) {
        ws_buf_puts(&sql, " RETURNING ");
        ws_buf_puts(&sql, id_col);
    }
    struct sql_memo *e = &s->memo[s->memo_next];
    s->memo_next = (int)(((size_t)s->memo_next + 1) % n_memo);
    free(e->sql);
    *e = (struct sql_memo){.head = head, .id_col = id_col, .w = w, .m = m, .sql = ws_buf_take(&sql)};
    return e->sql;
}

static int insert_rows(ws_store *s, ws_arena *a, const char *head, const char *id_col, int w,
                       const ws_dbp *p, int m, int64_t *ids, ws_error *err)
{
    ws_dbres r = {0};
    int rc = q(s, s->db, a, insert_sql(s, head, id_col, w, m), p, m * w, id_col ? &r : NULL, err);
    if (rc < 0 || !id_col)
        return rc;
    if (r.nrows != m)
        return ws_error_set(err, WS_EIO, "batch insert returned %d ids for %d rows", r.nrows, m);
    for (int j = 0; j < m; j++)
        ids[j] = cell_i64(&r, j, 0);
    qsort(ids, (size_t)m, sizeof *ids, cmp_i64);
    return 0;
}

/* Inserts m rows (see insert_rows). SQLite keeps prepared statements by their text, so
 * there the rows go in pieces of a power-of-two size (64, 32, ..., 1): at most seven
 * statement texts per table, each parsed once per connection. PostgreSQL takes them in one
 * statement (a round trip each). Later statements get later ids, so ids stay in row order. */
static int batch_insert(ws_store *s, ws_arena *a, const char *head, const char *id_col, int w,
                        const ws_dbp *p, int m, int64_t *ids, ws_error *err)
{
    if (s->drv->is_pg)
        return insert_rows(s, a, head, id_col, w, p, m, ids, err);
    for (int at = 0; at < m;) {
        int piece = BATCH_CHUNK;
        while (piece > m - at)
            piece /= 2;
        int rc = insert_rows(s, a, head, id_col, w, p + (size_t)at * (size_t)w, piece, ids ? ids + at : NULL, err);
        if (rc < 0)
            return rc;
        at += piece;
    }
    return 0;
}

/* The outbox payload of an analytics event (also written by ws_store_event_append). */
static void analytics_payload(ws_buf *b, int64_t id, const char *user_id, const char *event_type,
                              const char *data_json, int64_t now)
{
    ws_buf_puts(b, "{\"type\":\"analytics\",\"event_id\":");
    ws_buf_put_i64(b, id);
    ws_buf_puts(b, ",\"user_id\":");
    ws_json_put_cstr(b, user_id);
    ws_buf_puts(b, ",\"event_type\":");
    ws_json_put_cstr(b, event_type);
    ws_buf_puts(b, ",\"data\":");
    ws_buf_puts(b, data_json ? data_json : "null");
    ws_buf_puts(b, ",\"created_at\":");
    ws_buf_put_i64(b, now);
    ws_buf_putc(b, '}');
}

/* Writes the conversations and events of rows[0..m) (at most BATCH_CHUNK) that are not
 * skipped. */
static int batch_chunk(ws_store *s, ws_arena *a, ws_conv_batch_row *rows, size_t m, int64_t now,
                       size_t *nw, ws_error *err)
{
    ws_conv_batch_row *take[BATCH_CHUNK], *ev[BATCH_CHUNK];
    int nt = 0, ne = 0;
    for (size_t i = 0; i < m; i++) {
        if (rows[i].status != 0)
            continue;
        take[nt++] = &rows[i];
        if (rows[i].event_type)
            ev[ne++] = &rows[i];
    }
    if (nt == 0)
        return 0;
    int64_t ids[BATCH_CHUNK];
    ws_dbp *p = ws_arena_alloc(a, (size_t)nt * 7 * sizeof *p);
    for (int j = 0; j < nt; j++) {
        const ws_conversation *c = &take[j]->conv;
        ws_dbp *r = p + (size_t)j * 7;
        r[0] = DBP_S(c->user_id);
        r[1] = DBP_S(c->message);
        r[2] = DBP_S(c->response);
        r[3] = DBP_D(c->confidence);
        r[4] = DBP_I(c->processing_ms);
        r[5] = DBP_I(c->created_at ? c->created_at : now);
        r[6] = DBP_S(c->model_version);
    }
    int rc = batch_insert(s, a,
                          "INSERT INTO conversations (user_id, message, response, confidence,"
                          " processing_time_ms, created_at, model_version) VALUES ",
                          "conversation_id", 7, p, nt, ids, err);
    if (rc < 0)
        return rc;
    for (int j = 0; j < nt; j++)
        take[j]->id = ids[j];
    *nw += (size_t)nt;
    if (ne == 0)
        return 0;
    p = ws_arena_alloc(a, (size_t)ne * 4 * sizeof *p);
    for (int j = 0; j < ne; j++) {
        ws_dbp *r = p + (size_t)j * 4;
        r[0] = DBP_S(ev[j]->conv.user_id);
        r[1] = DBP_S(ev[j]->event_type);
        r[2] = DBP_S(ev[j]->event_data_json);
        r[3] = DBP_I(now);
    }
    rc = batch_insert(s, a,
                      "INSERT INTO analytics_events (user_id, event_type, event_data, created_at)"
                      " VALUES ",
                      "event_id", 4, p, ne, ids, err);
    if (rc < 0)
        return rc;
    ws_buf b = WS_BUF_INIT;
    p = ws_arena_alloc(a, (size_t)ne * 4 * sizeof *p);
    for (int j = 0; j < ne; j++) {
        ws_buf_reset(&b);
        analytics_payload(&b, ids[j], ev[j]->conv.user_id, ev[j]->event_type,
                          ev[j]->event_data_json, now);
        ws_dbp *r = p + (size_t)j * 4;
        r[0] = DBP_S("analytics-events");
        r[1] = DBP_S(ev[j]->conv.user_id);
        r[2] = DBP_S(ws_arena_strndup(a, b.data, b.len));
        r[3] = DBP_I(now);
    }
    ws_buf_free(&b);
    return batch_insert(s, a, "INSERT INTO outbox (topic, msg_key, payload, created_at) VALUES ",
                        NULL, 4, p, ne, NULL, err);
}

int ws_store_conv_insert_batch(ws_store *s, ws_conv_batch_row *rows, size_t n, size_t *written,
                               ws_error *err)
{
    int rc = 0;
    size_t nw = 0;
    if (written)
        *written = 0;
    if (n > WS_STORE_BATCH_MAX)
        return ws_error_set(err, WS_ETOOBIG, "a batch holds at most %d rows", WS_STORE_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        ws_error e = {0};
        ws_conv_batch_row *r = &rows[i];
        r->id = 0;
        r->status = 0;
        if ((rc = conv_validate(&r->conv, &e)) < 0 ||
            (r->event_type && ((rc = check_text(&e, "event type", r->event_type, TYPE_MAX, true)) < 0 ||
                               (rc = check_json(&e, "event data", r->event_data_json)) < 0)))
            return ws_error_set(err, rc, "row %zu: %s", i, e.msg);
    }
    if (n == 0)
        return 0;
    ws_arena *a = ws_arena_new(16384);
    int64_t now = ws_store_now_ms();
    if ((rc = tx_begin(s, err)) < 0)
        goto out;
    rc = batch_mark_missing_users(s, a, rows, n, err);
    for (size_t at = 0; rc == 0 && at < n; at += BATCH_CHUNK)
        rc = batch_chunk(s, a, rows + at, n - at < BATCH_CHUNK ? n - at : BATCH_CHUNK, now, &nw,
                         err);
    rc = tx_end(s, rc, err);
out:
    if (rc < 0) {
        nw = 0;
        for (size_t i = 0; i < n; i++)
            rows[i].id = 0;
    }
    if (written)
        *written = nw;
    ws_arena_free(a);
    return rc;
}

int ws_store_conv_count(ws_store *s, const char *user_id, int64_t *count, ws_error *err)
{
    *count = 0;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = q(s, s->db, a, "SELECT COUNT(*) FROM conversations WHERE user_id = $1", p, NP(p),
               &r, err);
    if (rc == 0 && r.nrows)
        *count = cell_i64(&r, 0, 0);
    ws_arena_free(a);
    return rc;
}

int ws_store_conv_list(ws_store *s, ws_arena *a, const char *user_id, int limit,
                       const char *cursor, ws_conversation **items, size_t *n,
                       const char **next_cursor, ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    *next_cursor = NULL;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    if ((rc = check_limit(err, &limit)) < 0)
        return rc;
    int64_t after_ts = INT64_MAX, after_id = INT64_MAX;
    if (cursor && *cursor &&
        ws_store_cursor_decode(cursor, strnlen(cursor, WS_STORE_CURSOR_MAX + 1), &after_ts,
                               &after_id) < 0)
        return ws_error_set(err, WS_EINVAL, "malformed cursor");
    ws_dbp p[] = {DBP_S(user_id), DBP_I(after_ts), DBP_I(after_id), DBP_I(limit + 1)};
    ws_dbres r = {0};
    rc = q(s, reader(s), a,
           "SELECT " CONV_COLS " FROM conversations WHERE user_id = $1"
           " AND (created_at, conversation_id) < ($2, $3)"
           " ORDER BY created_at DESC, conversation_id DESC LIMIT $4",
           p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    int take = r.nrows > limit ? limit : r.nrows;
    if (take) {
        *items = ws_arena_calloc(a, (size_t)take * sizeof **items);
        for (int i = 0; i < take; i++)
            fill_conv(&r, i, &(*items)[i]);
    }
    *n = (size_t)take;
    if (r.nrows > limit) {
        char *cur = ws_arena_alloc(a, WS_STORE_CURSOR_MAX);
        const ws_conversation *last = &(*items)[take - 1];
        if (ws_store_cursor_encode(last->created_at, last->id, cur, WS_STORE_CURSOR_MAX) == 0)
            *next_cursor = cur;
    }
    return 0;
}

/* ------------------------------------------------------------------ events and outbox */

int ws_store_event_append(ws_store *s, const char *user_id, const char *event_type,
                          const char *data_json, int64_t *id_out, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "user id", user_id, WS_STORE_ID_MAX, false)) < 0 ||
        (rc = check_text(err, "event type", event_type, TYPE_MAX, true)) < 0 ||
        (rc = check_json(err, "event data", data_json)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(1024);
    int64_t now = ws_store_now_ms();
    ws_dbp p[] = {DBP_S(user_id), DBP_S(event_type), DBP_S(data_json), DBP_I(now)};
    ws_dbres r = {0};
    ws_buf b = WS_BUF_INIT;
    if ((rc = tx_begin(s, err)) < 0)
        goto out;
    rc = q(s, s->db, a,
           "INSERT INTO analytics_events (user_id, event_type, event_data, created_at)"
           " VALUES ($1, $2, $3, $4) RETURNING event_id",
           p, NP(p), &r, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    int64_t id = rc == 0 && r.nrows ? cell_i64(&r, 0, 0) : 0;
    if (rc == 0) {
        analytics_payload(&b, id, user_id, event_type, data_json, now);
        rc = outbox_insert(s, a, "analytics-events", user_id, b.data, err);
    }
    rc = tx_end(s, rc, err);
    if (rc == 0 && id_out)
        *id_out = id;
out:
    ws_buf_free(&b);
    ws_arena_free(a);
    return rc;
}

int ws_store_event_count(ws_store *s, const char *user_id, int64_t *count, ws_error *err)
{
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = q(s, reader(s), a, "SELECT COUNT(*) FROM analytics_events WHERE user_id = $1", p,
               NP(p), &r, err);
    *count = rc == 0 && r.nrows ? cell_i64(&r, 0, 0) : 0;
    ws_arena_free(a);
    return rc;
}

int ws_store_outbox_put(ws_store *s, const char *topic, const char *key,
                        const char *payload_json, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "topic", topic, TYPE_MAX, true)) < 0 ||
        (rc = check_text(err, "message key", key, CLIENT_MAX, false)) < 0)
        return rc;
    if (!payload_json)
        return ws_error_set(err, WS_EINVAL, "payload is required");
    if ((rc = check_json(err, "payload", payload_json)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    rc = outbox_insert(s, a, topic, key, payload_json, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_outbox_fetch(ws_store *s, ws_arena *a, int limit, ws_outbox_msg **items,
                          size_t *n, ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    if ((rc = check_limit(err, &limit)) < 0)
        return rc;
    ws_dbp p[] = {DBP_I(limit)};
    ws_dbres r = {0};
    rc = q(s, s->db, a,
           "SELECT " OUTBOX_COLS " FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
           p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++) {
            ws_outbox_msg *m = &(*items)[i];
            m->id = cell_i64(&r, i, 0);
            m->topic = cell(&r, i, 1);
            m->key = cell(&r, i, 2);
            m->payload = cell(&r, i, 3);
            m->created_at = cell_i64(&r, i, 4);
        }
    }
    *n = (size_t)r.nrows;
    return 0;
}

int ws_store_outbox_mark_published(ws_store *s, const int64_t *ids, size_t n, ws_error *err)
{
    if (n == 0)
        return 0;
    ws_arena *a = ws_arena_new(256);
    int64_t now = ws_store_now_ms();
    int rc = tx_begin(s, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        ws_dbp p[] = {DBP_I(ids[i]), DBP_I(now)};
        rc = q(s, s->db, a, "UPDATE outbox SET published_at = $2 WHERE id = $1", p, NP(p),
               NULL, err);
    }
    rc = tx_end(s, rc, err);
    ws_arena_free(a);
    return rc;
}

/* ------------------------------------------------------------------ audit log */

int ws_store_audit_append(ws_store *s, const ws_audit_entry *e, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "actor", e->actor, ACTOR_MAX, true)) < 0 ||
        (rc = check_text(err, "user id", e->user_id, WS_STORE_ID_MAX, false)) < 0 ||
        (rc = check_text(err, "action", e->action, TYPE_MAX, true)) < 0 ||
        (rc = check_text(err, "resource", e->resource, RESOURCE_MAX, true)) < 0 ||
        (rc = check_text(err, "detail", e->detail, WS_STORE_TEXT_MAX, false)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(e->actor), DBP_S(e->user_id), DBP_S(e->action), DBP_S(e->resource),
                  DBP_S(e->detail), DBP_I(ws_store_now_ms())};
    rc = q(s, s->db, a,
           "INSERT INTO audit_log (actor, user_id, action, resource, detail, created_at)"
           " VALUES ($1, $2, $3, $4, $5, $6)",
           p, NP(p), NULL, err);
    ws_arena_free(a);
    return rc;
}

int ws_store_audit_list(ws_store *s, ws_arena *a, const char *user_id, int limit,
                        ws_audit_entry **items, size_t *n, ws_error *err)
{
    int rc;
    *items = NULL;
    *n = 0;
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    if ((rc = check_limit(err, &limit)) < 0)
        return rc;
    ws_dbp p[] = {DBP_S(user_id), DBP_I(limit)};
    ws_dbres r = {0};
    rc = q(s, reader(s), a,
           "SELECT " AUDIT_COLS " FROM audit_log WHERE user_id = $1"
           " ORDER BY created_at DESC, id DESC LIMIT $2",
           p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows) {
        *items = ws_arena_calloc(a, (size_t)r.nrows * sizeof **items);
        for (int i = 0; i < r.nrows; i++) {
            ws_audit_entry *e = &(*items)[i];
            e->id = cell_i64(&r, i, 0);
            e->actor = cell(&r, i, 1);
            e->user_id = cell(&r, i, 2);
            e->action = cell(&r, i, 3);
            e->resource = cell(&r, i, 4);
            e->detail = cell(&r, i, 5);
            e->created_at = cell_i64(&r, i, 6);
        }
    }
    *n = (size_t)r.nrows;
    return 0;
}

/* ------------------------------------------------------------------ model registry */

int ws_store_model_set_current(ws_store *s, const char *user_id, const char *version,
                               const char *artifact_path, const char *job_id, ws_error *err)
{
    int rc;
    if ((rc = check_text(err, "user id", user_id, WS_STORE_ID_MAX, true)) < 0 ||
        (rc = check_text(err, "model version", version, VERSION_MAX, true)) < 0 ||
        (rc = check_text(err, "artifact path", artifact_path, PATH_MAX_LEN, true)) < 0 ||
        (rc = check_text(err, "job id", job_id, WS_STORE_ID_MAX, false)) < 0)
        return rc;
    ws_arena *a = ws_arena_new(256);
    ws_dbp p[] = {DBP_S(user_id), DBP_S(version), DBP_S(artifact_path), DBP_S(job_id),
                  DBP_I(ws_store_now_ms())};
    ws_dbres r = {0};
    if ((rc = tx_begin(s, err)) < 0)
        goto out;
    rc = q(s, s->db, a,
           "INSERT INTO models (user_id, version, artifact_path, job_id, created_at)"
           " VALUES ($1, $2, $3, $4, $5)",
           p, NP(p), NULL, err);
    if (rc == WS_ENOENT)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    else if (rc == WS_ECONFLICT)
        rc = ws_error_set(err, WS_ECONFLICT, "model version '%s' exists", version);
    if (rc == 0)
        rc = q(s, s->db, a, "UPDATE users SET model_version = $2 WHERE user_id = $1"
               " RETURNING user_id", p, 2, &r, err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    rc = tx_end(s, rc, err);
out:
    ws_arena_free(a);
    return rc;
}

int ws_store_model_get_current(ws_store *s, ws_arena *a, const char *user_id,
                               ws_model_rec *out, ws_error *err)
{
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    int rc = q(s, s->db, a,
               "SELECT m.user_id, m.version, m.artifact_path, m.job_id, m.created_at"
               " FROM models m JOIN users u ON u.user_id = m.user_id"
               " AND u.model_version = m.version WHERE u.user_id = $1",
               p, NP(p), &r, err);
    if (rc < 0)
        return rc;
    if (r.nrows == 0)
        return ws_error_set(err, WS_ENOENT, "no model yet");
    out->user_id = cell(&r, 0, 0);
    out->version = cell(&r, 0, 1);
    out->artifact_path = cell(&r, 0, 2);
    out->job_id = cell(&r, 0, 3);
    out->created_at = cell_i64(&r, 0, 4);
    return 0;
}

/* ------------------------------------------------------------------ export */

int ws_store_user_export(ws_store *s, const char *user_id, ws_buf *out, ws_error *err)
{
    static const struct {
        const char *name, *sql;
        const field *fields;
        int nfields;
    } parts[] = {
        {"api_keys", "SELECT " KEY_COLS " FROM api_keys WHERE user_id = $1 ORDER BY created_at",
         key_fields, NP(key_fields)},
        {"training_jobs", "SELECT " JOB_COLS " FROM training_jobs WHERE user_id = $1"
         " ORDER BY created_at", job_fields, NP(job_fields)},
        {"conversations", "SELECT " CONV_COLS " FROM conversations WHERE user_id = $1"
         " ORDER BY created_at, conversation_id", conv_fields, NP(conv_fields)},
        {"analytics_events", "SELECT event_id, event_type, event_data, created_at"
         " FROM analytics_events WHERE user_id = $1 ORDER BY event_id",
         event_fields, NP(event_fields)},
        {"audit_log", "SELECT " AUDIT_COLS " FROM audit_log WHERE user_id = $1 ORDER BY id",
         audit_fields, NP(audit_fields)},
        {"models", "SELECT " MODEL_COLS " FROM models WHERE user_id = $1 ORDER BY created_at",
         model_fields, NP(model_fields)},
        {"whatsapp_links", "SELECT phone_number_id, default_mode, created_at, updated_at FROM wa_links"
         " WHERE user_id = $1 ORDER BY created_at", wa_link_fields, NP(wa_link_fields)},
        {"whatsapp_contacts", "SELECT phone_number_id, contact, mode, updated_at FROM wa_contacts"
         " WHERE user_id = $1 ORDER BY phone_number_id, contact", wa_contact_fields, NP(wa_contact_fields)},
        {"whatsapp_messages", "SELECT wamid, phone_number_id, direction, contact_phone, contact_user_id,"
         " msg_type, body, media_id, sent_at, status, error_code, created_at FROM wa_messages"
         " WHERE user_id = $1 ORDER BY created_at, wamid", wa_message_fields, NP(wa_message_fields)},
        {"whatsapp_drafts", "SELECT draft_id, phone_number_id, contact_phone, contact_user_id, in_wamid, mode,"
         " status, reply, confidence, reason, error_code, error_message, out_wamid, created_at, updated_at"
         " FROM wa_drafts WHERE user_id = $1 ORDER BY created_at, draft_id", wa_draft_fields, NP(wa_draft_fields)},
    };
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_arena *a = ws_arena_new(16384);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    ws_buf b = WS_BUF_INIT;
    int rc = s->drv->begin(s->db, false, err);
    if (rc < 0)
        goto out;
    if (s->drv->is_pg)   /* one snapshot for every table */
        rc = s->drv->exec_script(s->db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", err);
    if (rc == 0)
        rc = q(s, s->db, a, "SELECT " USER_COLS " FROM users WHERE user_id = $1", p, NP(p), &r,
               err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    if (rc == 0) {
        ws_buf_puts(&b, "{\"user\":");
        put_row(&b, &r, 0, user_fields, NP(user_fields));
    }
    for (size_t i = 0; rc == 0 && i < sizeof parts / sizeof parts[0]; i++) {
        rc = q(s, s->db, a, parts[i].sql, p, NP(p), &r, err);
        if (rc == 0) {
            ws_buf_printf(&b, ",\"%s\":", parts[i].name);
            put_rows(&b, &r, parts[i].fields, parts[i].nfields);
        }
    }
    if (rc == 0)
        ws_buf_printf(&b, ",\"exported_at\":%" PRId64 "}", ws_store_now_ms());
    rc = tx_end(s, rc, err);
    if (rc == 0)
        rc = ws_buf_append(out, b.data, b.len);
out:
    ws_buf_free(&b);
    ws_arena_free(a);
    return rc;
}
