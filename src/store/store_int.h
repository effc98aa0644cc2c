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
#include "core/buf.h"
#include "core/error.h"
#include "store/store.h"

typedef struct ws_db ws_db; /* one driver connection */

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
    const char *name; /* "sqlite" / "postgres" */
    bool is_pg;
    /* Connects; *out owned by the caller, released with close. */
    int (*connect)(const char *url, int timeout_ms, ws_db **out, ws_error *err);
    void (*close)(ws_db *db);
    /* Runs one statement. out may be NULL (rows are discarded). Errors: WS_ECONFLICT on a
     * unique violation, WS_ENOENT on a foreign-key violation, WS_EIO otherwise. */
    int (*query)(ws_db *db, ws_arena *a, const char *sql, const ws_dbp *p, int np, ws_dbres *out,
                 ws_error *err);
    /* Runs a script of several statements without parameters (migrations). */
    int (*exec_script)(ws_db *db, const char *sql, ws_error *err);
    /* Transactions. write = the transaction will write (SQLite takes the write lock at
     * BEGIN so two writers never deadlock on lock upgrade). */
    int (*begin)(ws_db *db, bool write, ws_error *err);
    int (*commit)(ws_db *db, ws_error *err);
    void (*rollback)(ws_db *db);
} ws_store_driver;

/* A handle's driver and primary connection, for the store's other files (store_whatsapp.c):
 * they run their statements through these. */
const ws_store_driver *ws__store_driver(ws_store *s);
ws_db *ws__store_db(ws_store *s);

/* Tests (store_fault.c): *db (NULL: nothing) becomes a connection of the fault driver that
 * forwards to drv's; the handle then uses ws__store_fault_driver(drv). */
struct ws_fault;
void ws__store_fault_wrap(const ws_store_driver *drv, ws_db **db, struct ws_fault *f);
const ws_store_driver *ws__store_fault_driver(const ws_store_driver *real);

extern const ws_store_driver ws_store_sqlite_driver;
extern const ws_store_driver ws_store_pg_driver;

/* Embedded migrations (generated at build time from src/store/migrations/<backend>/NNNN_name.sql by
 * tools/embed-migrations.cmake), sorted by version. */
typedef struct ws_migration {
    int version;
    const char *name; /* file name without .sql, e.g. "0001_init" */
    const char *sql;
} ws_migration;

extern const ws_migration ws_store_migrations_sqlite[];
extern const size_t ws_store_migrations_sqlite_count;
extern const ws_migration ws_store_migrations_postgres[];
extern const size_t ws_store_migrations_postgres_count;

/* ---- shared by the store's files (store.c and one file per entity) ---------------------- */

struct ws_store {
    const ws_store_driver *drv;
    ws_db *db;         /* primary */
    ws_db *rdb;        /* read replica, NULL when none or down */
    char *replica_url; /* owned; NULL when no replica is configured */
    int timeout_ms;
    int64_t replica_retry_ms; /* while the replica is down: when to try it again (monotonic ms) */
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

#define USER_COLS                                                                                            \
    "user_id, name, phone_number, model_version, subscription_tier, created_at,"                             \
    " last_active, is_active"
/* with the owner's name and state: FROM api_keys k JOIN users u ON u.user_id = k.user_id */
#define KEY_JOIN_COLS                                                                                        \
    "k.key_id, k.user_id, k.client_name, k.role, k.rate_limit, k.is_active,"                                 \
    " k.created_at, k.expires_at, k.last_used_at, u.name, u.is_active"
#define KEY_JOIN " FROM api_keys k JOIN users u ON u.user_id = k.user_id"
#define KEY_COLS                                                                                             \
    "key_id, user_id, client_name, role, rate_limit, is_active, created_at,"                                 \
    " expires_at, last_used_at"
#define JOB_COLS                                                                                             \
    "job_id, user_id, status, progress, samples_processed, params, metrics,"                                 \
    " error_message, s3_data_path, worker_id, created_at, started_at,"                                       \
    " completed_at, updated_at"
#define CONV_COLS                                                                                            \
    "conversation_id, user_id, message, response, confidence,"                                               \
    " processing_time_ms, model_version, created_at"
#define AUDIT_COLS "id, actor, user_id, action, resource, detail, created_at"
#define OUTBOX_COLS "id, topic, msg_key, payload, created_at"
#define MODEL_COLS "user_id, version, artifact_path, job_id, created_at"

#define NP(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))

/* A column of a row in JSON: its name and type. */
typedef struct ws__store_field {
    const char *name;
    char type; /* 's' string, 'i' integer, 'd' number, 'b' boolean, 'j' raw JSON */
} ws__store_field;

/* store.c */
const char *ws__store_cell(const ws_dbres *r, int row, int col);
bool ws__store_cell_bool(const ws_dbres *r, int row, int col);
double ws__store_cell_dbl(const ws_dbres *r, int row, int col);
int64_t ws__store_cell_i64(const ws_dbres *r, int row, int col);
int ws__store_check_json(ws_error *err, const char *field, const char *s);
int ws__store_check_limit(ws_error *err, int *limit);
int ws__store_check_text(ws_error *err, const char *field, const char *s, size_t max, bool required);
int ws__store_outbox_insert(ws_store *s, ws_arena *a, const char *topic, const char *key, const char *payload,
                            ws_error *err);
int ws__store_query(ws_store *s, ws_db *db, ws_arena *a, const char *sql, const ws_dbp *p, int np,
                    ws_dbres *out, ws_error *err);
/* A [replica] read: on the replica when there is one and it answers, else on the primary (a
 * replica that fails is dropped and retried later, so a replica outage costs no request). */
int ws__store_read_query(ws_store *s, ws_arena *a, const char *sql, const ws_dbp *p, int np, ws_dbres *out,
                         ws_error *err);
int ws__store_tx_begin(ws_store *s, ws_error *err);
int ws__store_tx_end(ws_store *s, int rc, ws_error *err);

/* store_conversations.c */
void ws__store_analytics_payload(ws_buf *b, int64_t id, const char *user_id, const char *event_type,
                                 const char *data_json, int64_t now);

/* store_export.c */
void ws__store_put_row(ws_buf *b, const ws_dbres *r, int row, const ws__store_field *f, int nf);
extern const ws__store_field ws__store_job_fields[14]; /* the columns of JOB_COLS */

#endif
