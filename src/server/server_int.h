/* Internals shared by the files of the API gateway (server.c, api.c, mcp.c): the server
 * struct, the store pool, the principal cache, the request prologue (authentication and
 * rate limits) and the operations that both REST and MCP expose. */
#ifndef WS_SERVER_SERVER_INT_H
#define WS_SERVER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "ai/ai.h"
#include "auth/auth.h"
#include "blobs/blobs.h"
#include "cache/cache.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/trace.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/server.h"
#include "store/store.h"

/* How long a key's principal is trusted without asking the store. Invalidation is immediate
 * in the instance that deletes a user or trains a model; other instances (they exist when
 * the cache is shared, i.e. Redis) see the change within the shared TTL. */
#define WS_AUTH_CACHE_TTL_MS 10000
#define WS_AUTH_CACHE_TTL_SHARED_MS 2000
#define WS_AUTH_CACHE_BUCKETS 4096
#define WS_AUTH_CACHE_MAX 100000
/* The conversation writer: queue caps (rows, bytes), rows per transaction, how long a
 * request waits for room before writing its row itself, tries left at shutdown when the
 * database fails. */
#define WS_WRITER_QUEUE_MAX 50000
#define WS_WRITER_QUEUE_BYTES ((size_t)64 << 20)
#define WS_WRITER_BATCH 500
#define WS_WRITER_EVENT_MAX 192
#define WS_WRITER_WAIT_MS 2000
#define WS_WRITER_CLOSE_TRIES 4
/* After a batch smaller than WS_WRITER_BATCH the writer waits this long before taking the
 * next, so rows arrive in larger (cheaper) batches and producers rarely need to wake it. */
#define WS_WRITER_LINGER_MS 2
#define WS_MODEL_VERSION_MAX 64
#define WS_MAX_CONTEXT_TURNS 32

typedef struct auth_entry {
    struct auth_entry *next;
    char hash[WS_KEY_HASH_HEX + 1];
    ws_principal p;
    char model_version[WS_MODEL_VERSION_MAX + 1]; /* "" = no model yet */
    int64_t expires_ms;
} auth_entry;

typedef struct write_item {
    struct write_item *next;
    ws_conversation conv; /* strings owned by the item (one allocation) */
    size_t size;          /* bytes of the allocation (the queue's byte cap) */
    bool cached;
    char traceparent[WS_TRACEPARENT_LEN + 1]; /* the request's trace context, "" = none */
} write_item;

struct ws_server {
    ws_server_config cfg;
    char *data_dir, *store_url, *replica_url, *cache_url, *origins;
    char *tmp_dir; /* DATA/tmp (0700): decrypted exports while a job trains */
    ws_blobs *blobs;
    ws_http_server *http;
    ws_http_route *routes; /* ws_srv_routes with the configured body caps */
    ws_metrics *metrics;
    ws_cache *cache;
    bool cache_blocking; /* Redis: calls block, so never on the loop */
    ws_ai *ai;
    struct ws_jwt_key *session_key;       /* signs dashboard session tokens (session.c) */
    const struct ws_jwt_key *service_key; /* the gateway's key for AI calls (JWKS): cfg's or own */
    struct ws_jwt_key *own_service_key;   /* loaded here when cfg gave none (owned) */
    char worker_id[64];
    _Atomic bool stopping;

    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    ws_store **pool_all, **pool_free;
    int pool_n, pool_nfree;

    pthread_mutex_t auth_mu;
    auth_entry *auth_buckets[WS_AUTH_CACHE_BUCKETS];
    size_t auth_count;

    pthread_mutex_t train_mu;
    pthread_cond_t train_cv;
    pthread_t trainer;
    bool trainer_on;

    pthread_mutex_t writer_mu;
    pthread_cond_t writer_cv;       /* the writer waits for rows (or for closing) */
    pthread_cond_t writer_space_cv; /* requests wait for room in a full queue */
    pthread_t writer;
    bool writer_started; /* the thread exists (join it) */
    bool writer_on;      /* the queue accepts rows (under writer_mu) */
    write_item *wq_head, *wq_tail;
    size_t wq_len, wq_bytes, wq_max;
    int wq_waiters;
    uint64_t wq_queued, wq_finished;  /* rows ever queued / taken off the queue and written (or given up) */
    pthread_cond_t writer_flushed_cv; /* readers wait for the rows queued before them */

    struct ws_wa_state *wa; /* the WhatsApp channel (wa_int.h) */

    ws_metric *m_cache_hits, *m_cache_misses, *m_ai_calls, *m_ai_errors, *m_ai_latency, *m_rate_limited,
        *m_auth_failures, *m_jobs_queued, *m_jobs_completed, *m_jobs_failed, *m_conv_written, *m_conv_sync,
        *m_conv_waits, *m_conv_discarded, *m_conv_failed, *m_writer_queue, *m_auth_cache_hits, *m_mcp_calls;
    /* the process metrics, the training queue by state (refreshed at scrape) and job time */
    ws_proc_metrics m_proc;
    ws_metric *m_jobs_state[WS_JOB_CANCELLED + 1], *m_queue_lag, *m_job_duration;
    pthread_mutex_t scrape_mu;
    double scrape_last_s;
};

/* Brings the gauges computed at scrape time up to date (at most once a second). */
void ws_srv_metrics_refresh(ws_server *s);

/* ---- store pool (server.c) ---- */
ws_store *ws_srv_store_get(ws_server *s); /* blocks until a handle is free */
void ws_srv_store_put(ws_server *s, ws_store *st);

/* ---- principal cache (server.c) ---- */
bool ws_srv_auth_lookup(ws_server *s, const char *hash, auth_entry *out);
void ws_srv_auth_remember(ws_server *s, const auth_entry *e);
void ws_srv_auth_forget_user(ws_server *s, const char *user_id);

/* ---- background work (server.c) ---- */
void ws_srv_wake_trainer(ws_server *s);
/* Records a conversation row + its "reply" analytics event (every string is copied): queues
 * it for the writer thread. Lossless: when the queue is full, may_block = true (a pool
 * thread) waits for room, up to WS_WRITER_WAIT_MS, then writes the row itself; may_block =
 * false (the loop thread) returns WS_EAGAIN without recording anything, so the request goes
 * on on the pool. Without a running writer the row is written synchronously. Returns 0 or
 * WS_EAGAIN. */
int ws_srv_record_reply(ws_server *s, const ws_conversation *c, bool cached, bool may_block);
/* Read-your-writes: waits (up to timeout_ms) until every row queued before the call is
 * written, so a list that follows a reply shows it. Returns at once when the queue is empty. */
void ws_srv_writer_flush(ws_server *s, int timeout_ms);

/* ---- request prologue (api.c) ---- */
/* X-Request-Timeout-Ms beyond this is taken as this (10 minutes). */
#define WS_REQUEST_TIMEOUT_MAX_MS 600000

typedef struct ws_req {
    int phase; /* 0 fresh, 1 authenticated, 2 rate limits passed */
    ws_principal p;
    char model_version[WS_MODEL_VERSION_MAX + 1];
    double t0;              /* monotonic start of the request */
    double deadline;        /* the request's own time budget (X-Request-Timeout-Ms) ends; 0 = none */
    bool miss_counted;      /* reply: the cache lookup missed already (loop run) */
    const char *sid, *csrf; /* dashboard session (session.c): arena strings; NULL with a key */
} ws_req;

/* Authenticates (Bearer key) and applies the rate limits. Returns 0 when the request may
 * go on (*req filled), WS_EAGAIN when it must continue on the pool, 1 when an error
 * response was written. */
int ws_srv_begin(ws_http_ctx *ctx, ws_req **req);

/* ---- operations shared by REST and MCP (api.c). Each writes a JSON result into out, or
 * returns an HTTP status >= 400 with code/message set (message in msg). ---- */
typedef struct ws_op_error {
    int status;
    const char *code;
    char msg[1024];
} ws_op_error;

int ws_op_reply(ws_server *s, ws_req *r, bool on_loop, const char *message, const ws_ai_turn *context,
                size_t n_context, ws_buf *out, ws_op_error *e);
/* ws_op_reply with the reply's text handed to on_piece as it is generated (pool threads only:
 * WS_EAGAIN on the loop); a cached reply, or an AI that cannot stream, gives one piece. out gets
 * the same JSON as ws_op_reply (whose "reply" replaces the pieces when "fallback" is true).
 * on_piece returning non-zero stops the reply: 1 with e->status 499 ("cancelled"). */
int ws_op_reply_stream(ws_server *s, ws_req *r, bool on_loop, const char *message, const ws_ai_turn *context,
                       size_t n_context, ws_ai_piece_fn on_piece, void *arg, ws_buf *out, ws_op_error *e);
int ws_op_train(ws_server *s, ws_req *r, const char *data, size_t len, const char *persona, double budget_s,
                ws_buf *out, ws_op_error *e);
int ws_op_job(ws_server *s, ws_req *r, const char *job_id, ws_buf *out, ws_op_error *e);
int ws_op_conversations(ws_server *s, ws_req *r, int limit, const char *cursor, ws_buf *out, ws_op_error *e);
int ws_op_style_profile(ws_server *s, ws_req *r, ws_buf *out, ws_op_error *e);

/* ---- dashboard (session.c, web_api.c, web_static.c) ---- */
/* Loads DATA/session-ed25519.pem (0600), creating it on first start, so every instance
 * sharing the data directory (or the file) verifies the others' session tokens. */
int ws_srv_session_init(ws_server *s, ws_error *err);
/* Cookie authentication for ws_srv_begin when no Authorization header came: 2 = no session
 * cookie (not mine), 0 = r->p filled (phase 1), 1 = error response written, WS_EAGAIN. A
 * state-changing method needs the session's X-CSRF-Token. */
int ws_srv_session_begin(ws_http_ctx *ctx, ws_req *r);
int ws_srv_h_session_create(ws_http_ctx *ctx);
int ws_srv_h_session_get(ws_http_ctx *ctx);
int ws_srv_h_session_delete(ws_http_ctx *ctx);
int ws_srv_h_signup(ws_http_ctx *ctx);
int ws_srv_h_keys_list(ws_http_ctx *ctx);
int ws_srv_h_keys_create(ws_http_ctx *ctx);
int ws_srv_h_keys_revoke(ws_http_ctx *ctx);
int ws_srv_h_jobs_list(ws_http_ctx *ctx);
int ws_srv_h_job_events(ws_http_ctx *ctx);
/* POST /v1/reply answered as Server-Sent Events (api_stream.c); message/turns parsed by h_reply. */
int ws_srv_h_reply_sse(ws_http_ctx *ctx, ws_req *r, const char *message, const ws_ai_turn *turns, size_t n);
int ws_srv_h_exports_inspect(ws_http_ctx *ctx);
int ws_srv_h_static(ws_http_ctx *ctx);

/* MCP endpoint (mcp.c). */
int ws_mcp_handle(ws_http_ctx *ctx);

/* The route table (api.c): a template; server.c copies it and fills in the body caps of
 * the routes whose max_body is WS_SRV_EXPORT_CAP (the export cap) or WS_SRV_MCP_CAP (the
 * export cap in base64 plus room for JSON). */
#define WS_SRV_EXPORT_CAP ((size_t)-1)
#define WS_SRV_MCP_CAP ((size_t)-2)
extern const ws_http_route ws_srv_routes[];
extern const size_t ws_srv_n_routes;

#endif
