/* The WhatsApp channel's background processor: one thread that takes stored webhook
 * bodies from the inbox (parse, dedupe by wamid, log, statuses by rank, a draft for each
 * new answerable message to a linked number whose mode is not off), asks the clone for the
 * drafts' replies (auto mode + confident + inside the 24-hour window: queued to send; else
 * pending with the reason), and sends queued replies through the Graph API within the
 * throughput caps, retrying throttling errors with backoff. Message text never reaches a log. */
#include "server/wa_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/mem.h"
#include "store/store_whatsapp.h"
#include "whatsapp/whatsapp.h"

#define DAY_MS (24 * 3600 * 1000LL)
#define INBOX_BATCH 8
#define INBOX_MAX_ATTEMPTS 5 /* a body that keeps failing is dropped after this many tries */
#define GEN_BATCH 8
#define SEND_BATCH 16
#define SEND_MAX_ATTEMPTS 8
#define IDLE_WAIT_MS 250
#define CHECKPOINT_EVERY 512 /* processed bodies between two WAL checkpoints */

/* ---- the inbox ------------------------------------------------------------------------ */

static bool answerable(const ws_wa_message *m)
{
    return m->text && *m->text &&
           (m->type == WS_WA_MSG_TEXT || m->type == WS_WA_MSG_INTERACTIVE || m->type == WS_WA_MSG_BUTTON);
}

static int on_message(ws_server *s, ws_store *st, ws_arena *a, const ws_wa_message *m, ws_error *err)
{
    ws_wa_state *wa = s->wa;
    ws_wa_link l;
    int rc = ws_store_wa_link_get(st, a, m->phone_number_id, &l, err);
    if (rc && rc != WS_ENOENT)
        return rc;
    bool linked = rc == 0;
    ws_wa_msg_row row = {
        .wamid = m->wamid,
        .phone_number_id = m->phone_number_id,
        .user_id = linked ? l.user_id : NULL,
        .contact_phone = linked ? m->from : NULL,
        .contact_user_id = linked ? m->from_user_id : NULL,
        .msg_type = m->type_name,
        .body = linked ? m->text : NULL,
        .media_id = linked ? m->media_id : NULL,
        .sent_at = m->timestamp ? m->timestamp * 1000 : ws_store_now_ms(),
    };
    bool inserted = false;
    rc = ws_store_wa_msg_insert(st, &row, &inserted, err);
    if (rc)
        return rc;
    if (!inserted) {
        ws_metric_add(wa->m_duplicates, 1);
        return 0;
    }
    ws_metric_add(wa->m_received, 1);
    if (!linked || !answerable(m))
        return 0;
    ws_wa_mode mode;
    rc = ws_store_wa_mode_for(st, &l, m->from, m->from_user_id, &mode, err);
    if (rc || mode == WS_WA_MODE_OFF)
        return rc;
    ws_wa_draft d = {.user_id = l.user_id,
                     .phone_number_id = m->phone_number_id,
                     .contact_phone = m->from,
                     .contact_user_id = m->from_user_id,
                     .in_wamid = m->wamid,
                     .mode = mode};
    char id[48];
    rc = ws_store_wa_draft_create(st, &d, id, err);
    return rc == WS_ECONFLICT ? 0 : rc;
}

static int on_status(ws_store *st, const ws_wa_status *x, ws_error *err)
{
    bool applied = false;
    int rc = ws_store_wa_status_apply(st, x->wamid, x->phone_number_id, ws_wa_status_name(x->status),
                                      (int)x->status, x->error_code, x->error_title, &applied, err);
    if (rc == 0 && applied && x->status == WS_WA_STATUS_FAILED)
        rc = ws_store_wa_draft_fail_sent(st, x->wamid, x->error_code, x->error_title, err);
    return rc;
}

/* Processes one stored body inside the inbox transaction (ws_store_wa_inbox_process):
 * every step is idempotent (messages dedupe by wamid, statuses apply by rank), so a batch
 * that failed and rolled back is simply done again; a body that failed INBOX_MAX_ATTEMPTS
 * times is given up (logged by id, never by content). */
static int process_body(void *arg, ws_store *st, const ws_wa_inbox_item *it, ws_error *err)
{
    ws_server *s = arg;
    if (it->attempts >= INBOX_MAX_ATTEMPTS) {
        fprintf(stderr, "whatstyle serve: whatsapp: notification %lld dropped after %d tries\n",
                (long long)it->id, it->attempts);
        ws_metric_add(s->wa->m_bad_bodies, 1);
        return 0;
    }
    ws_arena *a = ws_arena_new(16384);
    ws_wa_batch b;
    int rc = ws_wa_parse(it->body, it->len, a, &b, err);
    if (rc) {
        ws_metric_add(s->wa->m_bad_bodies, 1);
        fprintf(stderr, "whatstyle serve: whatsapp: notification %lld dropped (%s)\n", (long long)it->id,
                ws_strerror(rc));
        rc = 0;
    }
    for (size_t i = 0; rc == 0 && i < b.n_messages; i++)
        rc = on_message(s, st, a, &b.messages[i], err);
    for (size_t i = 0; rc == 0 && i < b.n_statuses; i++)
        rc = on_status(st, &b.statuses[i], err);
    ws_arena_free(a);
    return rc;
}

static size_t process_inbox(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    ws_arena *a = ws_arena_new(65536);
    size_t n = 0;
    ws_error err = {0};
    pthread_mutex_lock(&wa->write_mu);
    int rc = ws_store_wa_inbox_process(wa->proc_st, a, INBOX_BATCH, process_body, s, &n, &err);
    pthread_mutex_unlock(&wa->write_mu);
    if (rc)
        fprintf(stderr, "whatstyle serve: whatsapp: processing the inbox: %s\n", err.msg);
    /* the WAL checkpoint (and its fsync) happens here, outside the write lock, never in an
     * acknowledgement's commit */
    wa->since_checkpoint += n;
    if (wa->since_checkpoint >= CHECKPOINT_EVERY || (n == 0 && wa->since_checkpoint > 0)) {
        ws_store_wa_checkpoint(wa->proc_st, NULL);
        wa->since_checkpoint = 0;
    }
    ws_arena_free(a);
    return n;
}

/* ---- replies from the clone ----------------------------------------------------------- */

static bool in_window(ws_server *s, const ws_wa_draft *d)
{
    ws_store *st = ws_srv_store_get(s);
    int64_t last = 0;
    int rc =
        ws_store_wa_last_incoming(st, d->phone_number_id, d->contact_phone, d->contact_user_id, &last, NULL);
    ws_srv_store_put(s, st);
    return rc == 0 && last + DAY_MS >= ws_store_now_ms();
}

static void draft_save(ws_server *s, ws_wa_draft *d, const char *from)
{
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    if (ws_store_wa_draft_update(st, d, from, &err) != 0 && err.code != WS_ECONFLICT)
        fprintf(stderr, "whatstyle serve: whatsapp: draft %s: %s\n", d->draft_id, err.msg);
    ws_srv_store_put(s, st);
}

static void generate_one(ws_server *s, ws_wa_draft *d)
{
    ws_ai_reply rep = {0};
    ws_error err = {0};
    char reason[160];
    int rc = s->ai
                 ? s->ai->ops->generate(s->ai, d->user_id, d->in_text ? d->in_text : "", NULL, 0, &rep, &err)
                 : WS_EUNSUPPORTED;
    if (rc == WS_ENOENT || rc == WS_EUNSUPPORTED) {
        d->status = "failed";
        d->error_message =
            rc == WS_ENOENT ? "the clone has no trained model yet" : "no AI service configured";
    } else if (rc) {
        d->attempts++;
        d->status = d->attempts >= SEND_MAX_ATTEMPTS ? "failed" : "generating";
        d->next_attempt_at = ws_store_now_ms() + 5000LL * d->attempts;
        d->error_message = "the clone could not answer";
    } else {
        d->reply = rep.reply;
        d->confidence = rep.confidence;
        d->attempts = 0;
        bool window = in_window(s, d);
        if (d->mode == WS_WA_MODE_AUTO && !rep.fallback && window) {
            d->status = "queued";
            d->reason = NULL;
        } else {
            d->status = "pending";
            if (!window)
                snprintf(reason, sizeof reason, "outside the 24-hour customer-service window");
            else if (d->mode != WS_WA_MODE_AUTO)
                snprintf(reason, sizeof reason, "draft mode: waiting for approval");
            else
                snprintf(reason, sizeof reason, "confidence %.2f is below the clone's threshold",
                         rep.confidence);
            d->reason = reason;
        }
    }
    draft_save(s, d, "generating");
    ws_ai_reply_clear(&rep);
}

static size_t generate_drafts(ws_server *s)
{
    ws_arena *a = ws_arena_new(16384);
    ws_store *st = ws_srv_store_get(s);
    ws_wa_draft *items = NULL;
    size_t n = 0;
    ws_store_wa_draft_due(st, a, "generating", ws_store_now_ms(), GEN_BATCH, &items, &n, NULL);
    ws_srv_store_put(s, st);
    for (size_t i = 0; i < n && !s->wa->stop; i++)
        generate_one(s, &items[i]);
    ws_arena_free(a);
    return n;
}

/* ---- sending -------------------------------------------------------------------------- */

int ws_wa_token_get(ws_server *s, const char *user_id, const char *phone_number_id, ws_buf *out,
                    ws_error *err)
{
    char key[WS_BLOB_KEY_MAX];
    ws_wa_token_key(user_id, phone_number_id, key, sizeof key);
    int rc = ws_blobs_get(s->blobs, key, WS_WA_TOKEN_MAX, out, err);
    if (rc == 0)
        ws_buf_putc(out, '\0');
    return rc;
}

static uint64_t fnv(const char *a, const char *b)
{
    uint64_t h = ws_hash_fnv1a_more(WS_FNV1A_INIT, a ? a : "", a ? strlen(a) : 0);
    h = ws_hash_fnv1a_more(h, "|", 1);
    h = ws_hash_fnv1a_more(h, b ? b : "", b ? strlen(b) : 0);
    return h | 1;
}

/* Takes a token from the number's bucket (number_rate per second, burst of one second). */
static bool number_allows(ws_wa_state *wa, const char *number)
{
    double now = ws_now_s();
    struct wa_bucket *b = NULL;
    size_t nb = sizeof wa->buckets / sizeof wa->buckets[0];
    for (size_t i = 0; i < nb && !b; i++)
        if (!strcmp(wa->buckets[i].number, number))
            b = &wa->buckets[i];
    if (!b) {
        b = &wa->buckets[fnv(number, NULL) % nb];
        snprintf(b->number, sizeof b->number, "%s", number);
        b->tokens = wa->number_rate;
        b->at_s = now;
    }
    b->tokens = fmin((double)wa->number_rate, b->tokens + (now - b->at_s) * wa->number_rate);
    b->at_s = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

static void record_sent(ws_server *s, ws_wa_draft *d)
{
    ws_store *st = ws_srv_store_get(s);
    ws_wa_msg_row row = {.wamid = d->out_wamid,
                         .phone_number_id = d->phone_number_id,
                         .user_id = d->user_id,
                         .outgoing = true,
                         .contact_phone = d->contact_phone,
                         .contact_user_id = d->contact_user_id,
                         .msg_type = "text",
                         .body = d->reply,
                         .sent_at = ws_store_now_ms(),
                         .status = "accepted"};
    ws_error err = {0};
    if (ws_store_wa_msg_insert(st, &row, NULL, &err) != 0)
        fprintf(stderr, "whatstyle serve: whatsapp: logging a sent message: %s\n", err.msg);
    ws_srv_store_put(s, st);
    ws_conversation c = {.user_id = d->user_id,
                         .message = d->in_text ? d->in_text : "",
                         .response = d->reply,
                         .confidence = d->confidence,
                         .processing_ms = (int)(ws_store_now_ms() - d->created_at)};
    ws_srv_record_reply(s, &c, false, true);
}

static void send_one(ws_server *s, ws_wa_draft *d, ws_buf *token)
{
    ws_wa_state *wa = s->wa;
    ws_error err = {0};
    ws_wa_send_result res;
    int64_t now = ws_store_now_ms();
    ws_buf_reset(token);
    if (ws_wa_token_get(s, d->user_id, d->phone_number_id, token, &err) != 0) {
        d->status = "failed";
        d->error_code = 0;
        d->error_message = "the access token could not be read; link the number again";
        ws_metric_add(wa->m_sent_failed, 1);
        draft_save(s, d, "queued");
        return;
    }
    /* the read receipt first (best effort: a failure does not hold the reply back) */
    ws_wa_graph_mark_read(&wa->graph, d->phone_number_id, token->data, d->in_wamid, &res, NULL);
    int rc = ws_wa_graph_send_text(&wa->graph, d->phone_number_id, token->data, d->contact_phone,
                                   d->contact_user_id, d->reply, d->in_wamid, &res, &err);
    ws_wa_send_outcome oc = rc == WS_EINVAL ? WS_WA_SEND_FAILED : ws_wa_graph_classify(&res);
    char msg[WS_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", rc == WS_EINVAL ? err.msg : res.error_message);
    d->error_code = res.error_code;
    d->error_message = msg[0] ? msg : NULL;
    if (oc == WS_WA_SEND_OK) {
        d->status = "sent";
        d->out_wamid = res.wamid[0] ? res.wamid : NULL;
        d->error_message = NULL;
        ws_metric_add(wa->m_sent_ok, 1);
    } else if (oc == WS_WA_SEND_RETRY && d->attempts + 1 < SEND_MAX_ATTEMPTS) {
        d->attempts++;
        int64_t backoff = 1000LL << (d->attempts < 9 ? d->attempts : 9);
        d->next_attempt_at = now + (backoff > 600000 ? 600000 : backoff);
        ws_metric_add(wa->m_sent_retry, 1);
    } else {
        d->status = "failed";
        d->attempts++;
        ws_metric_add(wa->m_sent_failed, 1);
    }
    draft_save(s, d, "queued");
    if (oc == WS_WA_SEND_OK && d->out_wamid)
        record_sent(s, d);
}

static size_t send_queued(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    ws_arena *a = ws_arena_new(16384);
    ws_store *st = ws_srv_store_get(s);
    ws_wa_draft *items = NULL;
    size_t n = 0, sent = 0;
    ws_store_wa_draft_due(st, a, "queued", ws_store_now_ms(), SEND_BATCH, &items, &n, NULL);
    ws_srv_store_put(s, st);
    ws_buf token = WS_BUF_INIT;
    for (size_t i = 0; i < n && !wa->stop; i++) {
        ws_wa_draft *d = &items[i];
        int64_t now = ws_store_now_ms();
        if (!in_window(s, d)) {
            d->status = "pending";
            d->reason = "outside the 24-hour customer-service window";
            draft_save(s, d, "queued");
            continue;
        }
        uint64_t h = fnv(d->phone_number_id, d->contact_phone ? d->contact_phone : d->contact_user_id);
        struct wa_recent *rec = &wa->recent[h % WS_WA_RECIPIENTS];
        if (rec->hash == h && now - rec->at_ms < wa->recipient_gap_ms) {
            d->next_attempt_at = rec->at_ms + wa->recipient_gap_ms;
            draft_save(s, d, "queued");
            continue;
        }
        if (!number_allows(wa, d->phone_number_id))
            break; /* the rest waits for the next round */
        send_one(s, d, &token);
        rec->hash = h;
        rec->at_ms = ws_store_now_ms();
        sent++;
    }
    if (token.data)
        memset(token.data, 0, token.cap);
    ws_buf_free(&token);
    ws_arena_free(a);
    return sent;
}

/* ---- the thread ----------------------------------------------------------------------- */

static void *wa_main(void *arg)
{
    ws_server *s = arg;
    ws_wa_state *wa = s->wa;
    for (;;) {
        pthread_mutex_lock(&wa->mu);
        bool stop = wa->stop;
        wa->wake = false;
        pthread_mutex_unlock(&wa->mu);
        if (stop)
            break;
        size_t work = process_inbox(s);
        work += generate_drafts(s);
        work += send_queued(s);
        if (work)
            continue;
        pthread_mutex_lock(&wa->mu);
        if (!wa->wake && !wa->stop) {
            struct timespec ts = ws_cond_deadline(IDLE_WAIT_MS);
            pthread_cond_timedwait(&wa->cv, &wa->mu, &ts);
        }
        pthread_mutex_unlock(&wa->mu);
    }
    return NULL;
}

static void register_metrics(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    ws_metrics *m = s->metrics;
    wa->m_received = ws_metrics_counter(m, "ws_whatsapp_messages_received_total", NULL,
                                        "WhatsApp messages received (first delivery of each wamid).");
    wa->m_duplicates =
        ws_metrics_counter(m, "ws_whatsapp_duplicates_total", NULL,
                           "WhatsApp messages delivered again (same wamid), not processed twice.");
    wa->m_sig_failures = ws_metrics_counter(m, "ws_whatsapp_signature_failures_total", NULL,
                                            "Webhook POSTs refused: X-Hub-Signature-256 missing or wrong.");
    static const char help[] = "Replies sent through the Graph API, by outcome.";
    wa->m_sent_ok = ws_metrics_counter(m, "ws_whatsapp_sent_total", "status=\"sent\"", help);
    wa->m_sent_retry = ws_metrics_counter(m, "ws_whatsapp_sent_total", "status=\"retried\"", help);
    wa->m_sent_failed = ws_metrics_counter(m, "ws_whatsapp_sent_total", "status=\"failed\"", help);
    wa->m_bad_bodies =
        ws_metrics_counter(m, "ws_whatsapp_bad_notifications_total", NULL,
                           "Signed webhook bodies that could not be stored or parsed (dropped).");
}

int ws_wa_srv_new(ws_server *s, ws_error *err)
{
    ws_wa_state *wa = ws_xcalloc(1, sizeof *wa);
    s->wa = wa;
    pthread_mutex_init(&wa->mu, NULL);
    pthread_cond_init(&wa->cv, NULL);
    pthread_mutex_init(&wa->in_mu, NULL);
    pthread_mutex_init(&wa->write_mu, NULL);
    pthread_cond_init(&wa->in_cv, NULL);
    pthread_cond_init(&wa->in_done_cv, NULL);
    const ws_server_config *c = &s->cfg;
    if (c->whatsapp_app_secret && *c->whatsapp_app_secret) {
        wa->app_secret = ws_xstrdup(c->whatsapp_app_secret);
        wa->app_secret_len = strlen(wa->app_secret);
    }
    if (c->whatsapp_verify_token && *c->whatsapp_verify_token)
        wa->verify_token = ws_xstrdup(c->whatsapp_verify_token);
    const char *url =
        c->whatsapp_graph_url && *c->whatsapp_graph_url ? c->whatsapp_graph_url : WS_WA_GRAPH_DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return ws_error_set(err, WS_EINVAL, "the Graph API URL must start with http:// or https://");
    char *u = ws_xstrdup(url);
    size_t ul = strlen(u);
    while (ul && u[ul - 1] == '/')
        u[--ul] = '\0';
    wa->graph.base_url = u;
    wa->graph.version =
        ws_xstrdup(c->whatsapp_graph_version && *c->whatsapp_graph_version ? c->whatsapp_graph_version
                                                                           : WS_WA_GRAPH_DEFAULT_VERSION);
    wa->number_rate = c->whatsapp_number_rate > 0 ? c->whatsapp_number_rate : 80;
    wa->recipient_gap_ms = c->whatsapp_recipient_gap_ms > 0 ? c->whatsapp_recipient_gap_ms : 6000;
    register_metrics(s);
    return 0;
}

int ws_wa_srv_start(ws_server *s, ws_error *err)
{
    ws_store_config sc = {.url = s->store_url};
    int rc = ws_store_open(&sc, &s->wa->proc_st, err);
    if (rc == 0)
        rc = ws_store_wa_defer_checkpoints(s->wa->proc_st, err);
    if (rc)
        return rc;
    if (pthread_create(&s->wa->thread, NULL, wa_main, s) != 0)
        return ws_error_set(err, WS_EIO, "cannot start the WhatsApp thread");
    s->wa->thread_on = true;
    return ws_wa_inbox_start(s, err);
}

void ws_wa_srv_wake(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    pthread_mutex_lock(&wa->mu);
    wa->wake = true;
    pthread_cond_signal(&wa->cv);
    pthread_mutex_unlock(&wa->mu);
}

void ws_wa_srv_stop(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    ws_wa_inbox_stop(s); /* the bodies still waiting are committed first */
    if (!wa || !wa->thread_on)
        return;
    pthread_mutex_lock(&wa->mu);
    wa->stop = true;
    pthread_cond_signal(&wa->cv);
    pthread_mutex_unlock(&wa->mu);
    pthread_join(wa->thread, NULL);
    wa->thread_on = false;
}

void ws_wa_srv_free(ws_server *s)
{
    ws_wa_state *wa = s->wa;
    if (!wa)
        return;
    ws_wa_inbox_stop(s);
    ws_wa_srv_stop(s);
    if (wa->app_secret)
        memset(wa->app_secret, 0, wa->app_secret_len);
    free(wa->app_secret);
    free(wa->verify_token);
    free((char *)wa->graph.base_url);
    free((char *)wa->graph.version);
    ws_store_close(wa->commit_st);
    ws_store_close(wa->proc_st);
    pthread_mutex_destroy(&wa->mu);
    pthread_cond_destroy(&wa->cv);
    pthread_mutex_destroy(&wa->in_mu);
    pthread_mutex_destroy(&wa->write_mu);
    pthread_cond_destroy(&wa->in_cv);
    pthread_cond_destroy(&wa->in_done_cv);
    free(wa);
    s->wa = NULL;
}
