/* The store: WhatStyle's durable state (users, API keys, training jobs, conversations,
 * analytics events, the transactional outbox, the audit log, the model registry) behind one
 * small API with two backends — SQLite (embedded default, a file in the data dir) and
 * PostgreSQL via libpq (optionally with a read replica for read-only queries).
 *
 * Backends: a ws_store_driver (store_int.h, a struct of function pointers: connect, query,
 * begin/commit/rollback, close) per backend; the logic of every operation below is written
 * once in store.c against that driver, so both backends run the same SQL and pass the same
 * test suite (tests/unit/test_store.c).
 *
 * Threading (docs/adr/0001-store-threading.md): a ws_store is ONE database connection (plus
 * one replica connection when configured) and is NOT thread-safe. Calls block until the
 * database answers. An event-loop server opens one ws_store per worker thread and runs store
 * calls on those threads (uv_queue_work), never on the loop thread. Different ws_store
 * handles may be used from different threads at the same time.
 *
 * Ownership: results that hold strings are allocated in a caller-passed ws_arena (the
 * per-request arena) and live until that arena is freed; `const char *` fields are NULL
 * when the column is NULL. Input strings are borrowed for the duration of the call.
 *
 * Errors: 0 on success or a negative WS_E* code: WS_ENOENT (no such row), WS_ECONFLICT
 * (unique constraint, e.g. user name taken; or a state that forbids the change), WS_EINVAL
 * (bad argument, e.g. malformed cursor or JSON), WS_EIO (the database failed; err->msg has
 * the driver's message). Callers pass a ws_error (may be NULL) for details.
 *
 * Time: every timestamp is Unix time in milliseconds (int64), 0 meaning "not set". The store
 * reads the clock itself (ws_store_now_ms) unless a field says it takes a caller's time. */
#ifndef WS_STORE_STORE_H
#define WS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"

typedef struct ws_store ws_store;

/* Size caps (bytes, excluding NUL) enforced on input; longer input gives WS_ETOOBIG. */
#define WS_STORE_ID_MAX 40             /* user/job ids: "usr_" / "job_" + 24 hex */
#define WS_STORE_NAME_MAX 64           /* user names */
#define WS_STORE_TEXT_MAX (64 * 1024)  /* one message / reply / error text */
#define WS_STORE_JSON_MAX (256 * 1024) /* metrics, event data, job params */
#define WS_STORE_PAGE_MAX 200          /* largest page a list call returns */
#define WS_STORE_CURSOR_MAX 128        /* longest cursor string accepted */

/* ---- opening -------------------------------------------------------------------------- */

typedef struct ws_store_config {
    /* Where the data lives:
     *   "postgres://..." or "postgresql://..." or a libpq "key=value" string (has '=') -> PostgreSQL
     *   "sqlite:PATH" or a plain PATH -> SQLite database file (created if missing)
     *   "sqlite::memory:" -> private in-memory SQLite database (tests) */
    const char *url;
    /* PostgreSQL only, optional: a second connection (a streaming read replica) used for the
     * read-only calls marked [replica] below. NULL = everything on url. A replica that is down
     * (at open or later) is no error: those reads go to the primary, and the replica is tried
     * again every 5 s. */
    const char *replica_url;
    /* SQLite: how long to wait for another connection's lock; PostgreSQL: connect timeout.
     * 0 = default (5000 ms). */
    int timeout_ms;
    /* Tests only: injected failures of this handle's database calls (core/fault.h), borrowed;
     * NULL = none. */
    struct ws_fault *fault;
} ws_store_config;

/* Opens a connection. Does NOT migrate: call ws_store_migrate (idempotent) or check with
 * ws_store_schema_version. *out belongs to the caller; release with ws_store_close. */
int ws_store_open(const ws_store_config *cfg, ws_store **out, ws_error *err);
void ws_store_close(ws_store *s); /* NULL is a no-op */

/* "sqlite:DIR/whatstyle.db" for a data directory (DIR is created if missing). Caller frees. */
char *ws_store_url_for_data_dir(const char *dir, ws_error *err);

/* Opens the store the way every subcommand picks it: database_url if not NULL or "" (the CLI
 * resolves --store / WS_STORE_URL), else SQLite in data_dir (WS_EINVAL if that is NULL too).
 * replica_url (a PostgreSQL read replica) is optional. Reads no environment. */
int ws_store_open_for(const char *data_dir, const char *database_url, const char *replica_url, ws_store **out,
                      ws_error *err);

/* ---- a pool of handles for worker threads --------------------------------------------- */

/* A thread-safe pool of up to max ws_store handles opened lazily from one config (which is
 * copied). For an event-loop server: in a uv_queue_work callback, acquire a handle, make
 * the store calls, release it; the loop thread never touches the database. */
typedef struct ws_store_pool ws_store_pool;

int ws_store_pool_new(const ws_store_config *cfg, int max, ws_store_pool **out, ws_error *err);
/* Closes every handle; all must have been released. NULL is a no-op. */
void ws_store_pool_free(ws_store_pool *p);
/* Hands out an idle handle, opens a new one while fewer than max exist, else waits up to
 * timeout_ms (0 = forever) for a release: WS_EAGAIN on timeout, WS_EIO if opening failed. */
int ws_store_pool_acquire(ws_store_pool *p, int timeout_ms, ws_store **out, ws_error *err);
/* Returns a handle to the pool. broken = true closes it instead (after an WS_EIO the
 * connection may be unusable); the next acquire opens a fresh one. */
void ws_store_pool_release(ws_store_pool *p, ws_store *s, bool broken);

/* "sqlite" or "postgres". */
const char *ws_store_backend(const ws_store *s);

/* Cheap liveness check of the primary, for /readyz; the replica (if configured) is probed
 * too, and one that is down only sends reads to the primary (no error). */
int ws_store_ping(ws_store *s, ws_error *err);

/* True when the [replica] reads of this handle go to a separate replica connection that
 * reports it is in recovery (a real standby). */
bool ws_store_reads_from_replica(ws_store *s);

/* ---- migrations ----------------------------------------------------------------------- */

/* Applies every migration newer than the database's version, each in its own transaction,
 * recording it in schema_migrations. *applied (may be NULL) gets how many ran. Safe to run
 * concurrently from two processes (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE). */
int ws_store_migrate(ws_store *s, int *applied, ws_error *err);
/* Highest applied migration version (0 = empty database); *latest (may be NULL) gets the
 * newest version this binary knows. The server refuses to start when they differ. */
int ws_store_schema_version(ws_store *s, int *version, int *latest, ws_error *err);

/* ---- users ---------------------------------------------------------------------------- */

typedef struct ws_user {
    const char *id;            /* "usr_..." */
    const char *name;          /* unique login/display name */
    const char *phone;         /* unique, NULL if none */
    const char *model_version; /* current model version, NULL before the first training */
    const char *tier;          /* subscription tier ("free" by default) */
    int64_t created_at;
    int64_t last_active; /* 0 = never */
    bool is_active;
} ws_user;

/* Creates a user. phone and tier may be NULL. WS_ECONFLICT when name or phone is taken. */
int ws_store_user_create(ws_store *s, ws_arena *a, const char *name, const char *phone, const char *tier,
                         ws_user *out, ws_error *err);
int ws_store_user_get(ws_store *s, ws_arena *a, const char *user_id, ws_user *out, ws_error *err);
int ws_store_user_get_by_name(ws_store *s, ws_arena *a, const char *name, ws_user *out, ws_error *err);
/* Suspends (false) or reactivates (true) a user: a suspended user's keys stop working. */
int ws_store_user_set_active(ws_store *s, const char *user_id, bool active, ws_error *err);
/* Sets last_active = now. */
int ws_store_user_touch(ws_store *s, const char *user_id, ws_error *err);
/* Right to erasure: in ONE transaction deletes the user and everything they own (API keys,
 * jobs, conversations, analytics events, audit rows about them, model rows, their unpublished
 * outbox rows) and queues one outbox message {topic "user-events", type "user.deleted"} so
 * other systems (blobs, caches, Kafka consumers) erase their copies. WS_ENOENT if absent. */
int ws_store_user_delete(ws_store *s, const char *user_id, ws_error *err);

/* ---- API keys (hashed; see auth/auth.h for generating and checking keys) -------------- */

typedef struct ws_api_key {
    const char *key_id; /* the visible prefix, e.g. "ws_live_abcd1234" (unique) */
    const char *user_id;
    const char *client_name; /* free text label, NULL if none */
    const char *role;        /* "user", "admin" or "system" */
    int rate_limit;          /* requests per minute; 0 = server default */
    bool is_active;          /* false once revoked */
    int64_t created_at;
    int64_t expires_at;   /* 0 = never */
    int64_t last_used_at; /* 0 = never */
    /* Read-only, filled by get_by_hash and list (ignored by insert): the owner. */
    const char *user_name;
    bool user_is_active;
} ws_api_key;

/* Stores a key row; hashed_key is the lowercase hex SHA-256 of the full key (64 chars).
 * in->created_at/last_used_at/is_active are ignored (now, 0, true). WS_ECONFLICT on a
 * duplicate key_id or hash. */
int ws_store_key_insert(ws_store *s, const ws_api_key *in, const char *hashed_key, ws_error *err);
/* Looks a key up by its hash (active or not: the caller checks is_active/expires_at).
 * WS_ENOENT when no key has that hash. */
int ws_store_key_get_by_hash(ws_store *s, ws_arena *a, const char *hashed_key, ws_api_key *out,
                             ws_error *err);
/* Lists keys, newest first: one user's (user_id != NULL) or all (NULL). */
int ws_store_key_list(ws_store *s, ws_arena *a, const char *user_id, ws_api_key **items, size_t *n,
                      ws_error *err);
/* Revokes (is_active = false). user_id != NULL restricts to that user's keys (ownership);
 * WS_ENOENT if no such key (for that user). Revoking twice is fine. */
int ws_store_key_revoke(ws_store *s, const char *key_id, const char *user_id, ws_error *err);
/* Sets last_used_at = now (best effort; callers may ignore errors). */
int ws_store_key_touch(ws_store *s, const char *key_id, ws_error *err);

/* ---- training jobs -------------------------------------------------------------------- */

typedef enum {
    WS_JOB_QUEUED,
    WS_JOB_RUNNING,
    WS_JOB_COMPLETED,
    WS_JOB_FAILED,
    WS_JOB_CANCELLED
} ws_job_status;

const char *ws_job_status_name(ws_job_status st);              /* "queued", ... */
int ws_job_status_parse(const char *name, ws_job_status *out); /* WS_EINVAL if unknown */

typedef struct ws_job {
    const char *id; /* "job_..." */
    const char *user_id;
    ws_job_status status;
    double progress; /* 0..1 */
    int64_t samples_processed;
    const char *params_json;   /* what to train (persona, options); JSON object or NULL */
    const char *metrics_json;  /* fidelity report / metrics; JSON object or NULL */
    const char *error_message; /* NULL unless failed */
    const char *data_path;     /* blob key of the uploaded export (seed: s3_data_path) */
    const char *worker_id;     /* who claimed it, NULL while queued */
    int64_t created_at, started_at, completed_at, updated_at;
} ws_job;

/* Creates a queued job and, in the same transaction, an outbox message on topic
 * "training-jobs" (key = user id, payload = the job as JSON). params_json may be NULL. */
int ws_store_job_create(ws_store *s, ws_arena *a, const char *user_id, const char *data_path,
                        const char *params_json, ws_job *out, ws_error *err);
/* Gets a job by id. Ownership is the CALLER's check (compare out->user_id). */
int ws_store_job_get(ws_store *s, ws_arena *a, const char *job_id, ws_job *out, ws_error *err);

/* A partial update: fields at their "unchanged" value are left alone. */
typedef struct ws_job_update {
    int status;                /* a ws_job_status, or -1 = unchanged */
    double progress;           /* < 0 = unchanged */
    int64_t samples_processed; /* < 0 = unchanged */
    const char *metrics_json;  /* NULL = unchanged */
    const char *error_message; /* NULL = unchanged */
} ws_job_update;
#define WS_JOB_UPDATE_INIT                                                                                   \
    {                                                                                                        \
        -1, -1.0, -1, NULL, NULL                                                                             \
    }

/* Jobs per state and the creation time (ms) of the oldest queued job (0 when none), for the
 * metrics (queue length and lag). One GROUP BY over the status index. */
typedef struct ws_job_stats {
    int64_t by_status[WS_JOB_CANCELLED + 1];
    int64_t oldest_queued_ms;
} ws_job_stats;
int ws_store_job_stats(ws_store *s, ws_job_stats *out, ws_error *err);

/* Applies u. Moving to completed/failed/cancelled sets completed_at and writes, in the same
 * transaction, an outbox message on "training-events" (type "training.completed"/".failed"/
 * ".cancelled"). A job already in a final state cannot change status: WS_ECONFLICT. */
int ws_store_job_update(ws_store *s, const char *job_id, const ws_job_update *u, ws_error *err);
/* A user's jobs, newest first, at most limit (<= WS_STORE_PAGE_MAX). [replica] */
int ws_store_job_list(ws_store *s, ws_arena *a, const char *user_id, int limit, ws_job **items, size_t *n,
                      ws_error *err);
/* Atomically moves the oldest queued job to running for worker_id (started_at = now) and
 * returns it; WS_ENOENT when none is queued. Two workers never get the same job
 * (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: a write transaction). */
int ws_store_job_claim(ws_store *s, ws_arena *a, const char *worker_id, ws_job *out, ws_error *err);

/* ---- conversations -------------------------------------------------------------------- */

typedef struct ws_conversation {
    int64_t id; /* assigned by the store */
    const char *user_id;
    const char *message;  /* the incoming message */
    const char *response; /* the reply sent */
    double confidence;
    int processing_ms;
    const char *model_version; /* may be NULL */
    int64_t created_at;        /* caller's time; 0 = now */
} ws_conversation;

/* Inserts one exchange (c->id ignored); *id_out (may be NULL) gets the new id. */
int ws_store_conv_insert(ws_store *s, const ws_conversation *c, int64_t *id_out, ws_error *err);
/* One row of a batch insert: a conversation and, optionally, an analytics event about it
 * (written with its outbox message, as ws_store_event_append does). */
typedef struct ws_conv_batch_row {
    ws_conversation conv;        /* conv.id ignored; conv.created_at 0 = now */
    const char *event_type;      /* NULL = no analytics event for this row */
    const char *event_data_json; /* the event's data (a JSON value) or NULL */
    int64_t id;                  /* out: the new conversation id, 0 when skipped */
    int status;                  /* out: 0 written, WS_ENOENT skipped (no such user) */
} ws_conv_batch_row;

#define WS_STORE_BATCH_MAX 1000 /* most rows one batch insert takes */

/* Inserts n rows (0..WS_STORE_BATCH_MAX) and their analytics events in ONE transaction, a
 * few multi-row statements per 64 rows: all of them are written or, on error, none.
 * Every row is validated first; an invalid row fails the call (WS_EINVAL / WS_ETOOBIG, the
 * message names the row's index) before anything is written. Rows whose user does not
 * exist (e.g. deleted a moment ago) are not an error: they are skipped with
 * status WS_ENOENT. The users of the batch are locked against deletion until the commit
 * (PostgreSQL: FOR KEY SHARE; SQLite: the write lock), so erasure either runs before the
 * batch (rows skipped) or after it (rows erased with the user). *written (may be NULL)
 * gets the number of rows written. */
int ws_store_conv_insert_batch(ws_store *s, ws_conv_batch_row *rows, size_t n, size_t *written,
                               ws_error *err);
/* Number of a user's conversation rows (tests, dashboard). Reads the primary. */
int ws_store_conv_count(ws_store *s, const char *user_id, int64_t *count, ws_error *err);
/* One page of a user's conversations, newest first (created_at, then id), keyset-paginated.
 * cursor: NULL/"" for the first page, else the next_cursor of the previous page (opaque;
 * WS_EINVAL if malformed). *next_cursor: arena string, NULL on the last page.
 * limit 1..WS_STORE_PAGE_MAX. [replica] */
int ws_store_conv_list(ws_store *s, ws_arena *a, const char *user_id, int limit, const char *cursor,
                       ws_conversation **items, size_t *n, const char **next_cursor, ws_error *err);

/* The opaque cursor: "c1." + base64url of "<created_at>.<id>". Exposed for tests/fuzzing;
 * decode returns WS_EINVAL on anything malformed (never crashes, reads at most len bytes). */
int ws_store_cursor_encode(int64_t created_at, int64_t id, char *out, size_t out_size);
int ws_store_cursor_decode(const char *s, size_t len, int64_t *created_at, int64_t *id);

/* ---- analytics events and the outbox -------------------------------------------------- */

/* Appends an analytics event (data_json: a JSON value or NULL) and, in the same transaction,
 * an outbox message on "analytics-events". user_id may be NULL (system events).
 * *id_out (may be NULL) gets the event id. */
int ws_store_event_append(ws_store *s, const char *user_id, const char *event_type, const char *data_json,
                          int64_t *id_out, ws_error *err);
/* Count of a user's analytics events (for tests and the dashboard). [replica] */
int ws_store_event_count(ws_store *s, const char *user_id, int64_t *count, ws_error *err);

typedef struct ws_outbox_msg {
    int64_t id;          /* increasing; consumers dedupe on it (at-least-once) */
    const char *topic;   /* "training-jobs", "training-events", "analytics-events", "user-events" */
    const char *key;     /* partition key (user id) or NULL */
    const char *payload; /* JSON object */
    int64_t created_at;
} ws_outbox_msg;

/* Queues a message (for events that are not part of one of the state changes above). */
int ws_store_outbox_put(ws_store *s, const char *topic, const char *key, const char *payload_json,
                        ws_error *err);
/* The oldest unpublished messages, at most limit, oldest first. A relay publishes them and
 * then marks them; a crash in between re-sends them (at-least-once). */
int ws_store_outbox_fetch(ws_store *s, ws_arena *a, int limit, ws_outbox_msg **items, size_t *n,
                          ws_error *err);
int ws_store_outbox_mark_published(ws_store *s, const int64_t *ids, size_t n, ws_error *err);

/* ---- audit log (access to personal data) ---------------------------------------------- */

typedef struct ws_audit_entry {
    int64_t id;           /* assigned */
    const char *actor;    /* who: key id / user id / "system" */
    const char *user_id;  /* whose data (the subject), may be NULL */
    const char *action;   /* "read", "export", "delete", "train", ... */
    const char *resource; /* "conversations", "/v1/me/export", ... */
    const char *detail;   /* free text or JSON, may be NULL */
    int64_t created_at;   /* assigned (now) */
} ws_audit_entry;

int ws_store_audit_append(ws_store *s, const ws_audit_entry *e, ws_error *err);
/* Entries about user_id, newest first, at most limit. [replica] */
int ws_store_audit_list(ws_store *s, ws_arena *a, const char *user_id, int limit, ws_audit_entry **items,
                        size_t *n, ws_error *err);

/* ---- model registry ------------------------------------------------------------------- */

typedef struct ws_model_rec {
    const char *user_id;
    const char *version;       /* e.g. "v3" or a content hash */
    const char *artifact_path; /* blob key of the artifacts */
    const char *job_id;        /* the training job that made it, may be NULL */
    int64_t created_at;
} ws_model_rec;

/* Records a new model and makes it the user's current one (users.model_version) in one
 * transaction. WS_ECONFLICT if that version already exists for the user. */
int ws_store_model_set_current(ws_store *s, const char *user_id, const char *version,
                               const char *artifact_path, const char *job_id, ws_error *err);
/* Makes a model already recorded for the user its current one again (a retraining that
 * produced the same content-addressed version). WS_ENOENT when the user has no such model. */
int ws_store_model_make_current(ws_store *s, const char *user_id, const char *version, ws_error *err);
/* The user's current model; WS_ENOENT before the first. */
int ws_store_model_get_current(ws_store *s, ws_arena *a, const char *user_id, ws_model_rec *out,
                               ws_error *err);

/* ---- export (right of access) --------------------------------------------------------- */

/* Appends to out one JSON object with everything stored about the user: {"user":{...},
 * "api_keys":[...] (no hashes), "training_jobs":[...], "conversations":[...],
 * "analytics_events":[...], "audit_log":[...], "models":[...], "whatsapp_links":[...],
 * "whatsapp_contacts":[...], "whatsapp_messages":[...], "whatsapp_drafts":[...], "exported_at":ms}.
 * WS_ENOENT if the user does not exist. Reads the primary (a consistent snapshot). */
int ws_store_user_export(ws_store *s, const char *user_id, ws_buf *out, ws_error *err);

/* ---- utilities ------------------------------------------------------------------------ */

int64_t ws_store_now_ms(void);
/* prefix + 24 lowercase hex random characters (OpenSSL RAND_bytes) into out. */
int ws_store_new_id(const char *prefix, char *out, size_t out_size);

#endif
