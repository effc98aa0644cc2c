/* The WhatsApp channel inside the API gateway (private to src/server): the webhook
 * handlers, the linking and draft operations that REST and MCP share (wa_api.c), and the
 * background processor that turns stored webhook bodies into log rows, drafts and sends
 * (wa_worker.c). server.c creates it when the server starts and stops it after the HTTP
 * server drained. */
#ifndef WS_SERVER_WA_INT_H
#define WS_SERVER_WA_INT_H

#include "server/server_int.h"

#include <pthread.h>

#include "whatsapp/wa_graph.h"

#define WS_WA_WEBHOOK_MAX_BODY ((size_t)3 << 20) /* Meta's notifications stay under 3 MiB */
#define WS_WA_TOKEN_MAX 4096                     /* longest access token accepted */

/* Where a recipient's last send is remembered (throughput cap per recipient). */
#define WS_WA_RECIPIENTS 1024

typedef struct ws_wa_state {
    char *app_secret; /* NULL: the webhook answers 503 */
    size_t app_secret_len;
    char *verify_token; /* NULL: the handshake answers 403 */
    ws_wa_graph graph;  /* base URL, version, timeouts (strings owned here) */
    int number_rate;    /* messages per second per business number */
    int recipient_gap_ms;
    pthread_t thread;
    bool thread_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wake;
    _Atomic bool stop;
    /* the worker thread's own: per-number token buckets and per-recipient last sends */
    struct wa_bucket {
        char number[64];
        double tokens;
        double at_s;
    } buckets[64];
    struct wa_recent {
        uint64_t hash;
        int64_t at_ms;
    } recent[WS_WA_RECIPIENTS];
    /* the inbox committer (wa_inbox.c): webhook bodies waiting to be stored, committed in
     * batches (one transaction each) while their requests wait */
    /* held around the committer's and the processor's write transactions: the two never
     * meet on the database's write lock (SQLite would make the loser sleep in its busy
     * handler, 1-100 ms steps: the acknowledgement's tail latency) */
    pthread_mutex_t write_mu;
    /* own store handles (not the pool's) that never checkpoint at commit: the committer's
     * and the processor's; the processor checkpoints after its transactions */
    ws_store *commit_st, *proc_st;
    size_t since_checkpoint;
    pthread_mutex_t in_mu;
    pthread_cond_t in_cv, in_done_cv;
    struct wa_pending *in_head, *in_tail;
    size_t in_len;
    pthread_t committer;
    bool committer_on, in_stop;
    ws_metric *m_received, *m_duplicates, *m_sig_failures, *m_sent_ok, *m_sent_failed, *m_sent_retry,
        *m_bad_bodies;
} ws_wa_state;

/* Creates the channel's state (s->wa) and registers its metrics. Copies the secrets of
 * s->cfg. Errors: WS_EINVAL (bad Graph URL). */
int ws_wa_srv_new(ws_server *s, ws_error *err);
/* Starts the processor thread. */
int ws_wa_srv_start(ws_server *s, ws_error *err);
/* Wakes the processor (a body was stored, a draft approved). Any thread. */
void ws_wa_srv_wake(ws_server *s);
/* Stops and joins the processor (after the HTTP server drained). Idempotent. */
void ws_wa_srv_stop(ws_server *s);
void ws_wa_srv_free(ws_server *s); /* NULL state is a no-op */

/* ---- the inbox committer (wa_inbox.c) ---- */
int ws_wa_inbox_start(ws_server *s, ws_error *err);
/* Stores one webhook body durably (batched with concurrent ones into one transaction) and
 * returns once it is committed: 0, or the store's error. Blocks: pool threads only. Without
 * a running committer (stopped) it writes the body itself. */
int ws_wa_inbox_submit(ws_server *s, const char *body, size_t len, ws_error *err);
void ws_wa_inbox_stop(ws_server *s); /* after the HTTP server drained; idempotent */

/* ---- HTTP handlers (wa_api.c) ---- */
int ws_wa_h_verify(ws_http_ctx *ctx);  /* GET  /v1/whatsapp/webhook */
int ws_wa_h_webhook(ws_http_ctx *ctx); /* POST /v1/whatsapp/webhook */
int ws_wa_h_links(ws_http_ctx *ctx);   /* GET, POST /v1/whatsapp/links */
int ws_wa_h_link(ws_http_ctx *ctx);    /* DELETE /v1/whatsapp/links/{id}, PUT .../{id}/mode */
int ws_wa_h_drafts(ws_http_ctx *ctx);  /* GET /v1/whatsapp/drafts */
int ws_wa_h_draft(ws_http_ctx *ctx);   /* GET /v1/whatsapp/drafts/{id}, POST .../{id}/{action} */

/* ---- operations shared by REST and MCP (wa_api.c); pool threads only. Each writes a JSON
 * result into out or returns an HTTP status >= 400 with e set. ---- */
typedef struct ws_wa_link_req {
    const char *phone_number_id; /* digits */
    const char *access_token;    /* the Graph API token; sealed before it is stored */
    const char *mode;            /* "off" | "draft" | "auto"; NULL = "draft" */
} ws_wa_link_req;

int ws_op_wa_link(ws_server *s, ws_req *r, const ws_wa_link_req *lr, ws_buf *out, ws_op_error *e);
int ws_op_wa_links(ws_server *s, ws_req *r, ws_buf *out, ws_op_error *e);
int ws_op_wa_unlink(ws_server *s, ws_req *r, const char *phone_number_id, ws_buf *out, ws_op_error *e);
/* contact NULL = every contact (the link's default). */
int ws_op_wa_mode(ws_server *s, ws_req *r, const char *phone_number_id, const char *contact, const char *mode,
                  ws_buf *out, ws_op_error *e);
int ws_op_wa_drafts(ws_server *s, ws_req *r, const char *status, int limit, ws_buf *out, ws_op_error *e);
/* action: "get", "approve", "edit" (text required; send = approve after the edit), "discard". */
int ws_op_wa_draft(ws_server *s, ws_req *r, const char *draft_id, const char *action, const char *text,
                   bool send, ws_buf *out, ws_op_error *e);

/* ---- the processor and the sender (wa_worker.c) ---- */
/* The access token of a linked number, unsealed from the blobs into out. */
int ws_wa_token_get(ws_server *s, const char *user_id, const char *phone_number_id, ws_buf *out,
                    ws_error *err);
/* The blob key of that token: "users/<user>/whatsapp/<number>.token". */
void ws_wa_token_key(const char *user_id, const char *phone_number_id, char *out, size_t n);

#endif
