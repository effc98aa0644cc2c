/* The API gateway's life cycle: opening the store pool, the cache and the HTTP server;
 * the principal cache; the training worker (claims queued jobs from the store, trains with
 * the AI, reports progress to the job row); the asynchronous writer of conversation rows
 * and analytics events; graceful shutdown (see server.h). */
#include "server/server_int.h"
#include "server/wa_int.h"

#include "auth/jwt.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace.h"

/* ---- store pool ------------------------------------------------------------------------ */

ws_store *ws_srv_store_get(ws_server *s)
{
    pthread_mutex_lock(&s->pool_mu);
    while (s->pool_nfree == 0)
        pthread_cond_wait(&s->pool_cv, &s->pool_mu);
    ws_store *st = s->pool_free[--s->pool_nfree];
    pthread_mutex_unlock(&s->pool_mu);
    return st;
}

void ws_srv_store_put(ws_server *s, ws_store *st)
{
    pthread_mutex_lock(&s->pool_mu);
    s->pool_free[s->pool_nfree++] = st;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

static int open_store(ws_server *s, ws_store **out, ws_error *err)
{
    ws_store_config sc = {.url = s->store_url, .replica_url = s->replica_url, .fault = s->cfg.store_fault};
    return ws_store_open(&sc, out, err);
}

/* ---- principal cache ------------------------------------------------------------------- */

static unsigned bucket_of(const char *hash)
{
    unsigned h = 0;
    for (int i = 0; i < 8; i++)
        h = h * 16 + (unsigned)ws_hex_digit(hash[i]); /* hash: 64 lower-case hex digits */
    return h % WS_AUTH_CACHE_BUCKETS;
}

bool ws_srv_auth_lookup(ws_server *s, const char *hash, auth_entry *out)
{
    bool found = false;
    int64_t now = ws_store_now_ms();
    pthread_mutex_lock(&s->auth_mu);
    for (auth_entry *e = s->auth_buckets[bucket_of(hash)]; e; e = e->next) {
        if (!strcmp(e->hash, hash)) {
            if (e->expires_ms > now) {
                *out = *e;
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->auth_mu);
    return found;
}

static void auth_clear_locked(ws_server *s)
{
    for (int b = 0; b < WS_AUTH_CACHE_BUCKETS; b++) {
        for (auth_entry *e = s->auth_buckets[b], *n; e; e = n) {
            n = e->next;
            free(e);
        }
        s->auth_buckets[b] = NULL;
    }
    s->auth_count = 0;
}

void ws_srv_auth_remember(ws_server *s, const auth_entry *in)
{
    unsigned b = bucket_of(in->hash);
    pthread_mutex_lock(&s->auth_mu);
    auth_entry *e = s->auth_buckets[b];
    while (e && strcmp(e->hash, in->hash))
        e = e->next;
    if (!e) {
        if (s->auth_count >= WS_AUTH_CACHE_MAX)
            auth_clear_locked(s); /* crude but bounded; entries come back on demand */
        e = ws_xmalloc(sizeof *e);
        e->next = s->auth_buckets[b];
        s->auth_buckets[b] = e;
        s->auth_count++;
    }
    auth_entry *next = e->next;
    *e = *in;
    e->next = next;
    e->expires_ms =
        ws_store_now_ms() + (s->cache_blocking ? WS_AUTH_CACHE_TTL_SHARED_MS : WS_AUTH_CACHE_TTL_MS);
    pthread_mutex_unlock(&s->auth_mu);
}

void ws_srv_auth_forget_user(ws_server *s, const char *user_id)
{
    pthread_mutex_lock(&s->auth_mu);
    for (int b = 0; b < WS_AUTH_CACHE_BUCKETS; b++) {
        auth_entry **pp = &s->auth_buckets[b];
        while (*pp) {
            if (!strcmp((*pp)->p.user_id, user_id)) {
                auth_entry *dead = *pp;
                *pp = dead->next;
                free(dead);
                s->auth_count--;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    pthread_mutex_unlock(&s->auth_mu);
}

/* ---- asynchronous writer --------------------------------------------------------------- *
 *
 * Conversation rows (and their "reply" analytics events) go through a bounded queue to one
 * background thread that writes them in batches, one transaction per batch. Nothing is
 * dropped: when the queue is full the request's pool thread waits for room (backpressure;
 * a request on the loop thread moves to the pool first), and after WS_WRITER_WAIT_MS it
 * writes its row itself. The queue is drained before the server exits. The only rows not
 * written are those the database refuses (counted in ws_conversations_failed_total and
 * logged) and those of a user erased in the meantime (ws_conversations_discarded_total). */

static char *dup_into(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = *p;
    memcpy(d, s, n);
    *p += n;
    return d;
}

/* The "reply" event's data for a row; the request's traceparent rides along (the relay puts
 * it in the Kafka message's header, so a consumer continues the request's trace). */
static void event_data(const write_item *w, char *out, size_t n)
{
    double conf = isfinite(w->conv.confidence) ? w->conv.confidence : 0;
    int k = snprintf(out, n, "{\"cached\":%s,\"confidence\":%.4f,\"processing_ms\":%d",
                     w->cached ? "true" : "false", conf, w->conv.processing_ms);
    if (w->traceparent[0] && k > 0 && (size_t)k < n)
        k += snprintf(out + k, n - (size_t)k, ",\"traceparent\":\"%s\"", w->traceparent);
    if (k > 0 && (size_t)k < n)
        snprintf(out + k, n - (size_t)k, "}");
}

/* Writes items[0..n) with st (the rows of an erased user are discarded). Sets done[i] for
 * every item that needs no further attempt: written, discarded, or refused as invalid
 * (logged). Returns 0 when all are done, else the database's error (the caller retries the
 * rest). */
static int write_items(ws_server *s, ws_store *st, write_item **items, bool *done, size_t n, ws_error *err)
{
    if (n > WS_WRITER_BATCH)
        n = WS_WRITER_BATCH;
    ws_conv_batch_row *rows = ws_xmalloc(n * sizeof *rows);
    char(*data)[WS_WRITER_EVENT_MAX] = ws_xmalloc(n * sizeof *data);
    size_t *idx = ws_xmalloc(n * sizeof *idx), m = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        event_data(items[i], data[m], sizeof data[m]);
        rows[m] =
            (ws_conv_batch_row){.conv = items[i]->conv, .event_type = "reply", .event_data_json = data[m]};
        idx[m++] = i;
    }
    if (m == 0)
        goto out;
    size_t written = 0;
    rc = ws_store_conv_insert_batch(st, rows, m, &written, err);
    if (rc == WS_EINVAL || rc == WS_ETOOBIG) {
        /* validation refused a row (the handlers validate, so this is a bug somewhere):
         * write the rows one by one so only the bad ones stay out */
        rc = 0;
        for (size_t k = 0; k < m && rc == 0; k++) {
            ws_error e1 = {0};
            size_t w1 = 0;
            int r1 = ws_store_conv_insert_batch(st, &rows[k], 1, &w1, &e1);
            if (r1 == WS_EINVAL || r1 == WS_ETOOBIG) {
                WS_LOG(WS_LOG_ERROR, "conversation.refused", e1.msg,
                       WS_LF_S("user.id", rows[k].conv.user_id));
                ws_metric_add(s->m_conv_failed, 1);
                done[idx[k]] = true;
            } else if (r1 == 0) {
                ws_metric_add(rows[k].status == 0 ? s->m_conv_written : s->m_conv_discarded, 1);
                done[idx[k]] = true;
            } else {
                rc = r1;
                if (err)
                    *err = e1;
            }
        }
        goto out;
    }
    if (rc < 0)
        goto out;
    ws_metric_add(s->m_conv_written, (int64_t)written);
    ws_metric_add(s->m_conv_discarded, (int64_t)(m - written));
    for (size_t k = 0; k < m; k++)
        done[idx[k]] = true;
out:
    free(rows);
    free(data);
    free(idx);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A request thread writes its own row (the queue stayed full, or the writer is not
 * running) with a handle of the pool. */
static void write_sync(ws_server *s, write_item *w)
{
    ws_error err = {0};
    bool done = false;
    ws_store *st = ws_srv_store_get(s);
    int rc = write_items(s, st, &w, &done, 1, &err);
    for (int tries = 1; rc < 0 && tries < 3; tries++) {
        sleep_ms(50 * tries); /* a broken connection is reset before the next statement */
        rc = write_items(s, st, &w, &done, 1, &err);
    }
    ws_srv_store_put(s, st);
    ws_metric_add(s->m_conv_sync, 1);
    if (rc < 0) {
        WS_LOG(WS_LOG_ERROR, "conversation.write_failed", err.msg, WS_LF_I("conversation.rows", 1));
        ws_metric_add(s->m_conv_failed, 1);
    }
    free(w);
}

static bool queue_full(const ws_server *s, size_t need)
{
    return s->wq_len > 0 && (s->wq_len >= s->wq_max || s->wq_bytes + need > WS_WRITER_QUEUE_BYTES);
}

int ws_srv_record_reply(ws_server *s, const ws_conversation *c, bool cached, bool may_block)
{
    size_t need = sizeof(write_item) + strlen(c->user_id) + 1 + strlen(c->message) + 1 + strlen(c->response) +
                  1 + (c->model_version ? strlen(c->model_version) + 1 : 0);
    pthread_mutex_lock(&s->writer_mu);
    if (!may_block && (!s->writer_on || queue_full(s, need))) {
        pthread_mutex_unlock(&s->writer_mu);
        return WS_EAGAIN;
    }
    pthread_mutex_unlock(&s->writer_mu);
    write_item *w = ws_xmalloc(need);
    char *p = (char *)(w + 1);
    w->next = NULL;
    w->size = need;
    w->cached = cached;
    if (ws_trace_current_traceparent(w->traceparent) != 0)
        w->traceparent[0] = '\0';
    w->conv = *c;
    w->conv.user_id = dup_into(&p, c->user_id);
    w->conv.message = dup_into(&p, c->message);
    w->conv.response = dup_into(&p, c->response);
    w->conv.model_version = dup_into(&p, c->model_version);
    if (!w->conv.created_at)
        w->conv.created_at = ws_store_now_ms();
    pthread_mutex_lock(&s->writer_mu);
    if (!may_block && (!s->writer_on || queue_full(s, need))) {
        pthread_mutex_unlock(&s->writer_mu);
        free(w);
        return WS_EAGAIN;
    }
    if (s->writer_on && queue_full(s, need)) {
        ws_metric_add(s->m_conv_waits, 1);
        struct timespec until = ws_cond_deadline(WS_WRITER_WAIT_MS);
        s->wq_waiters++;
        int wrc = 0;
        while (s->writer_on && queue_full(s, need) && wrc != ETIMEDOUT)
            wrc = pthread_cond_timedwait(&s->writer_space_cv, &s->writer_mu, &until);
        s->wq_waiters--;
    }
    if (!s->writer_on || queue_full(s, need)) {
        /* no writer (not started or shut down), or it has not made room in time */
        pthread_mutex_unlock(&s->writer_mu);
        write_sync(s, w);
        return 0;
    }
    bool was_empty = s->wq_head == NULL;
    if (s->wq_tail)
        s->wq_tail->next = w;
    else
        s->wq_head = w;
    s->wq_tail = w;
    s->wq_len++;
    s->wq_queued++;
    s->wq_bytes += need;
    ws_metric_set(s->m_writer_queue, (int64_t)s->wq_len);
    /* the writer drains the whole queue before it sleeps: wake it only on empty -> non-empty
     * (one futex call per batch instead of one per reply) */
    if (was_empty)
        pthread_cond_signal(&s->writer_cv);
    pthread_mutex_unlock(&s->writer_mu);
    return 0;
}

void ws_srv_writer_flush(ws_server *s, int timeout_ms)
{
    pthread_mutex_lock(&s->writer_mu);
    uint64_t target = s->wq_queued;
    if (s->wq_finished < target) {
        struct timespec until = ws_cond_deadline(timeout_ms);
        int wrc = 0;
        while (s->writer_started && s->wq_finished < target && wrc != ETIMEDOUT)
            wrc = pthread_cond_timedwait(&s->writer_flushed_cv, &s->writer_mu, &until);
    }
    pthread_mutex_unlock(&s->writer_mu);
}

/* Background threads yield to the event loops when the CPU is short (Linux: per-thread nice). */
static void lower_priority(void)
{
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

/* The writer runs at the loops' priority: every reply needs its row written (nothing is
 * dropped), so a writer that yields to the loops only lets the queue fill until requests
 * wait for room (the worst latency there is). It lingers between small batches instead. */
static void *writer_main(void *arg)
{
    ws_server *s = arg;
    ws_store *st = NULL;
    ws_error err = {0};
    write_item *batch[WS_WRITER_BATCH];
    bool done[WS_WRITER_BATCH];
    for (;;) {
        /* take up to a batch from the queue */
        size_t n = 0;
        pthread_mutex_lock(&s->writer_mu);
        while (!s->wq_head && s->writer_on)
            pthread_cond_wait(&s->writer_cv, &s->writer_mu);
        while (s->wq_head && n < WS_WRITER_BATCH) {
            write_item *w = s->wq_head;
            s->wq_head = w->next;
            s->wq_len--;
            s->wq_bytes -= w->size;
            batch[n] = w;
            done[n++] = false;
        }
        if (!s->wq_head)
            s->wq_tail = NULL;
        ws_metric_set(s->m_writer_queue, (int64_t)s->wq_len);
        if (n && s->wq_waiters)
            pthread_cond_broadcast(&s->writer_space_cv);
        pthread_mutex_unlock(&s->writer_mu);
        if (n == 0)
            break; /* closed and the queue is empty */

        /* write it; on a database error retry with backoff (the rows stay in memory: no
         * loss while the database comes back; the queue fills and requests wait, then
         * write themselves). Closing: a few more tries, then the rows count as failed. */
        int delay = 50, tries = 0;
        for (;;) {
            int rc = WS_EIO;
            if (!st && open_store(s, &st, &err) != 0)
                st = NULL;
            if (st) {
                rc = write_items(s, st, batch, done, n, &err);
                if (rc < 0) {
                    ws_store_close(st); /* the connection may be broken: a fresh one next time */
                    st = NULL;
                }
            }
            if (rc == 0)
                break;
            tries++;
            pthread_mutex_lock(&s->writer_mu);
            bool closing = !s->writer_on;
            pthread_mutex_unlock(&s->writer_mu);
            if (tries == 1 || tries % 20 == 0)
                WS_LOG(WS_LOG_WARN, "conversation.write_retry", err.msg, WS_LF_I("retry.attempt", tries));
            if (closing && tries >= WS_WRITER_CLOSE_TRIES) {
                size_t lost = 0;
                for (size_t i = 0; i < n; i++)
                    lost += !done[i];
                WS_LOG(WS_LOG_ERROR, "conversation.lost_at_shutdown", err.msg,
                       WS_LF_I("conversation.rows", (int64_t)lost));
                ws_metric_add(s->m_conv_failed, (int64_t)lost);
                break;
            }
            sleep_ms(delay);
            delay = delay * 2 > 2000 ? 2000 : delay * 2;
        }
        for (size_t i = 0; i < n; i++)
            free(batch[i]);
        pthread_mutex_lock(&s->writer_mu);
        s->wq_finished += n;
        pthread_cond_broadcast(&s->writer_flushed_cv);
        pthread_mutex_unlock(&s->writer_mu);
        if (n < WS_WRITER_BATCH)
            sleep_ms(WS_WRITER_LINGER_MS);
    }
    ws_store_close(st);
    return NULL;
}

/* ---- training worker ------------------------------------------------------------------- */

typedef struct train_progress {
    ws_server *s;
    ws_store *st;
    const char *job_id;
    double last_s;
    double last_fraction;
} train_progress;

static int on_train_progress(void *arg, double fraction, const char *phase, uint64_t samples)
{
    train_progress *tp = arg;
    double now = ws_now_s();
    if (now - tp->last_s >= 0.5 || fraction >= 1.0) {
        ws_job_update u = WS_JOB_UPDATE_INIT;
        u.progress = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
        u.samples_processed = (int64_t)samples;
        ws_store_job_update(tp->st, tp->job_id, &u, NULL);
        tp->last_s = now;
    }
    return atomic_load(&tp->s->stopping) ? 1 : 0;
}

/* Trains one claimed job; returns the job's final state (WS_JOB_QUEUED when shutdown
 * interrupted it) and copies a failure's message into why. */
/* A job's final state (or its return to the queue) must land, or the job stays "running" with
 * nobody working on it: a write that fails for the store's sake (WS_EIO: a lost connection, a
 * lock timeout) is tried again, 5 times over ~3 s. */
static int job_update_final(ws_store *st, const char *job_id, const ws_job_update *u, ws_error *err)
{
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        if (attempt)
            usleep(100000u << (attempt - 1));
        rc = ws_store_job_update(st, job_id, u, err);
        if (rc != WS_EIO)
            break;
    }
    return rc;
}

static int train_job(ws_server *s, ws_store *st, const ws_job *job, char *why, size_t why_cap)
{
    ws_error err = {0};
    ws_job_update u = WS_JOB_UPDATE_INIT;
    char persona[256] = "";
    double budget = 0;
    ws_json_doc *doc = NULL;
    if (job->params_json && ws_json_parse(job->params_json, strlen(job->params_json), &doc, NULL) == 0) {
        const char *p = ws_json_get_str(ws_json_root(doc), "persona");
        if (p)
            snprintf(persona, sizeof persona, "%s", p);
        ws_json_get_num(ws_json_root(doc), "budget_s", &budget);
    }
    ws_json_doc_free(doc);
    if (!s->ai) {
        u.status = WS_JOB_FAILED;
        u.error_message = "no AI engine is configured in this server";
        job_update_final(st, job->id, &u, NULL);
        ws_metric_add(s->m_jobs_failed, 1);
        snprintf(why, why_cap, "%s", u.error_message);
        return WS_JOB_FAILED;
    }
    /* the export is stored encrypted: decrypt it into a private temporary file for the
     * trainer, removed as soon as training ends (an absolute path is a plaintext upload of
     * an older version) */
    char *plain = NULL;
    const char *export_path = job->data_path;
    if (job->data_path && job->data_path[0] != '/') {
        int grc =
            ws_blobs_get_to_temp(s->blobs, job->data_path, s->cfg.max_export_bytes, s->tmp_dir, &plain, &err);
        if (grc != 0) {
            u.status = WS_JOB_FAILED;
            u.error_message = err.msg;
            job_update_final(st, job->id, &u, NULL);
            ws_metric_add(s->m_jobs_failed, 1);
            snprintf(why, why_cap, "%s", u.error_message);
            return WS_JOB_FAILED;
        }
        export_path = plain;
    }
    ws_ai_train_request req = {
        .user_id = job->user_id, .export_path = export_path, .persona = persona, .budget_s = budget};
    ws_ai_train_result res = {0};
    train_progress tp = {.s = s, .st = st, .job_id = job->id};
    ws_metric_add(s->m_ai_calls, 1);
    int rc = s->ai->ops->train(s->ai, &req, on_train_progress, &tp, &res, &err);
    if (plain) {
        unlink(plain);
        free(plain);
    }
    if (rc != 0 && atomic_load(&s->stopping)) {
        /* interrupted by shutdown: back to the queue so a restart trains it */
        u.status = WS_JOB_QUEUED;
        u.progress = 0;
        job_update_final(st, job->id, &u, NULL);
        ws_ai_train_result_clear(&res);
        return WS_JOB_QUEUED;
    }
    if (rc == 0 && res.model_version) {
        rc = ws_store_model_set_current(st, job->user_id, res.model_version, job->data_path, job->id, &err);
        /* the same content-addressed model as one trained before (the same export again): the
         * training succeeded, that model becomes current again */
        if (rc == WS_ECONFLICT)
            rc = ws_store_model_make_current(st, job->user_id, res.model_version, &err);
    }
    if (rc == 0) {
        u.status = WS_JOB_COMPLETED;
        u.progress = 1;
        u.samples_processed = (int64_t)res.samples_processed;
        u.metrics_json = res.metrics_json;
        ws_metric_add(s->m_jobs_completed, 1);
        /* the model changed: old replies and the cached model version go */
        char prefix[WS_STORE_ID_MAX + 16];
        snprintf(prefix, sizeof prefix, "reply:%s:", job->user_id);
        ws_cache_del_prefix(s->cache, prefix, NULL, NULL);
        ws_srv_auth_forget_user(s, job->user_id);
        s->ai->ops->reload(s->ai, job->user_id, NULL);
    } else {
        u.status = WS_JOB_FAILED;
        u.error_message = err.msg[0] ? err.msg : ws_strerror(rc);
        ws_metric_add(s->m_jobs_failed, 1);
        ws_metric_add(s->m_ai_errors, 1);
    }
    if (job_update_final(st, job->id, &u, &err) != 0)
        WS_LOG(WS_LOG_ERROR, "job.update_failed", err.msg, WS_LF_S("job.id", job->id));
    if (u.status == WS_JOB_FAILED)
        snprintf(why, why_cap, "%s", u.error_message);
    ws_ai_train_result_clear(&res);
    return u.status;
}

/* One job with its span and its log lines (started, and completed / failed / requeued). */
static void run_job(ws_server *s, ws_store *st, const ws_job *job)
{
    double t0 = ws_now_s();
    /* the upload's trace context, kept in the job's params, makes the job part of its trace */
    ws_trace_ctx up;
    bool has_up = false;
    ws_json_doc *doc = NULL;
    if (job->params_json && ws_json_parse(job->params_json, strlen(job->params_json), &doc, NULL) == 0) {
        const char *tp = ws_json_get_str(ws_json_root(doc), "traceparent");
        has_up = tp && ws_traceparent_parse(tp, strlen(tp), &up) == 0;
    }
    ws_json_doc_free(doc);
    ws_span *sp = ws_span_begin("training job", WS_SPAN_INTERNAL, has_up ? &up : NULL);
    ws_span_attr_str(sp, "job.id", job->id);
    ws_span_attr_str(sp, "user.id", job->user_id);
    WS_LOG(WS_LOG_INFO, "job.started", NULL, WS_LF_S("job.id", job->id), WS_LF_S("user.id", job->user_id),
           WS_LF_S("worker.id", s->worker_id));
    char why[WS_ERROR_MSG_MAX] = "";
    int state = train_job(s, st, job, why, sizeof why);
    static const char *const events[] = {"job.requeued", "job.running", "job.completed", "job.failed",
                                         "job.cancelled"};
    const char *ev = state >= 0 && state <= WS_JOB_CANCELLED ? events[state] : "job.finished";
    if (state == WS_JOB_FAILED)
        ws_span_error(sp, "training failed");
    if (state == WS_JOB_COMPLETED || state == WS_JOB_FAILED)
        ws_metric_observe(s->m_job_duration, ws_now_s() - t0);
    WS_LOG(state == WS_JOB_FAILED ? WS_LOG_ERROR : WS_LOG_INFO, ev, why[0] ? why : NULL,
           WS_LF_S("job.id", job->id), WS_LF_S("user.id", job->user_id),
           WS_LF_I("event.duration", (int64_t)((ws_now_s() - t0) * 1e9)));
    ws_span_end(sp);
}

static void *trainer_main(void *arg)
{
    ws_server *s = arg;
    lower_priority();
    ws_store *st = NULL;
    ws_error err = {0};
    while (!atomic_load(&s->stopping)) {
        if (!st && open_store(s, &st, &err) != 0) {
            WS_LOG(WS_LOG_ERROR, "trainer.store_failed", err.msg, WS_LF_S("worker.id", s->worker_id));
            st = NULL;
        }
        int rc = WS_EIO;
        if (st) {
            ws_arena *a = ws_arena_new(4096);
            ws_job job;
            rc = ws_store_job_claim(st, a, s->worker_id, &job, &err);
            if (rc == 0)
                run_job(s, st, &job);
            ws_arena_free(a);
        }
        if (rc == 0)
            continue;
        /* nothing queued: wait for a new upload or poll again in a second */
        pthread_mutex_lock(&s->train_mu);
        if (!atomic_load(&s->stopping)) {
            struct timespec ts = ws_cond_deadline(1000);
            pthread_cond_timedwait(&s->train_cv, &s->train_mu, &ts);
        }
        pthread_mutex_unlock(&s->train_mu);
    }
    ws_store_close(st);
    return NULL;
}

void ws_srv_wake_trainer(ws_server *s)
{
    pthread_mutex_lock(&s->train_mu);
    pthread_cond_signal(&s->train_cv);
    pthread_mutex_unlock(&s->train_mu);
}

/* ---- life cycle ------------------------------------------------------------------------ */

/* Removes the plain files in dir (not folders, not links' targets). */
static void clear_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path &&
            lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
            unlink(path);
    }
    closedir(d);
}

static void register_metrics(ws_server *s)
{
    ws_metrics *m = s->metrics;
    s->m_cache_hits =
        ws_metrics_counter(m, "ws_reply_cache_hits_total", NULL, "Replies answered from the reply cache.");
    s->m_cache_misses =
        ws_metrics_counter(m, "ws_reply_cache_misses_total", NULL, "Reply cache lookups that missed.");
    s->m_ai_calls = ws_metrics_counter(m, "ws_ai_calls_total", NULL, "Calls to the AI (generate and train).");
    s->m_ai_errors = ws_metrics_counter(m, "ws_ai_errors_total", NULL, "Failed AI calls.");
    s->m_ai_latency = ws_metrics_histogram(m, "ws_ai_generate_duration_seconds", NULL,
                                           "Time spent in AI generate calls.", NULL, 0);
    s->m_rate_limited = ws_metrics_counter(m, "ws_rate_limited_total", NULL, "Requests refused with 429.");
    s->m_auth_failures = ws_metrics_counter(m, "ws_auth_failures_total", NULL, "Requests refused with 401.");
    s->m_auth_cache_hits = ws_metrics_counter(m, "ws_auth_cache_hits_total", NULL,
                                              "API keys resolved from the in-process principal cache.");
    s->m_jobs_queued =
        ws_metrics_counter(m, "ws_training_jobs_queued_total", NULL, "Training jobs accepted.");
    s->m_jobs_completed =
        ws_metrics_counter(m, "ws_training_jobs_completed_total", NULL, "Training jobs completed.");
    s->m_jobs_failed = ws_metrics_counter(m, "ws_training_jobs_failed_total", NULL, "Training jobs failed.");
    s->m_conv_written = ws_metrics_counter(m, "ws_conversations_written_total", NULL,
                                           "Conversation rows written (writer thread and synchronous).");
    s->m_conv_sync =
        ws_metrics_counter(m, "ws_conversations_sync_writes_total", NULL,
                           "Conversation rows a request wrote itself (queue full or writer stopped).");
    s->m_conv_waits = ws_metrics_counter(m, "ws_conversations_backpressure_waits_total", NULL,
                                         "Requests that waited for room in the full writer queue.");
    s->m_conv_discarded = ws_metrics_counter(m, "ws_conversations_discarded_total", NULL,
                                             "Conversation rows of users erased before the row was written.");
    s->m_conv_failed = ws_metrics_counter(m, "ws_conversations_failed_total", NULL,
                                          "Conversation rows the database refused (logged).");
    s->m_writer_queue =
        ws_metrics_gauge(m, "ws_writer_queue_length", NULL, "Conversation rows waiting to be written.");
    s->m_mcp_calls = ws_metrics_counter(m, "ws_mcp_tool_calls_total", NULL, "MCP tools/call requests.");
    ws_proc_metrics_register(m, &s->m_proc, "serve", s->ai != NULL);
    for (int st = 0; st <= WS_JOB_CANCELLED; st++) {
        char labels[48];
        snprintf(labels, sizeof labels, "state=\"%s\"", ws_job_status_name((ws_job_status)st));
        s->m_jobs_state[st] =
            ws_metrics_gauge(m, "ws_training_jobs", labels, "Training jobs in the store by state.");
    }
    s->m_queue_lag = ws_metrics_gauge(m, "ws_training_queue_lag_seconds", NULL,
                                      "Age of the oldest queued training job (0 when none waits).");
    static const double job_bounds[] = {1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200};
    s->m_job_duration = ws_metrics_histogram(m, "ws_training_job_duration_seconds", NULL,
                                             "Wall time of finished training jobs.", job_bounds,
                                             sizeof job_bounds / sizeof job_bounds[0]);
}

void ws_srv_metrics_refresh(ws_server *s)
{
    ws_proc_metrics_refresh(&s->m_proc);
    pthread_mutex_lock(&s->scrape_mu);
    double now = ws_now_s();
    bool due = now - s->scrape_last_s >= 1.0;
    if (due)
        s->scrape_last_s = now;
    pthread_mutex_unlock(&s->scrape_mu);
    if (!due)
        return;
    ws_job_stats js;
    ws_error err = {0};
    ws_store *st = ws_srv_store_get(s);
    int rc = ws_store_job_stats(st, &js, &err);
    ws_srv_store_put(s, st);
    if (rc != 0) {
        WS_LOG(WS_LOG_WARN, "metrics.job_stats_failed", err.msg, WS_LF_S("error.type", ws_strerror(rc)));
        return;
    }
    for (int k = 0; k <= WS_JOB_CANCELLED; k++)
        ws_metric_set(s->m_jobs_state[k], js.by_status[k]);
    int64_t lag = js.oldest_queued_ms ? (ws_store_now_ms() - js.oldest_queued_ms) / 1000 : 0;
    ws_metric_set(s->m_queue_lag, lag < 0 ? 0 : lag);
}

int ws_server_new(const ws_server_config *cfg, ws_server **out, ws_error *err)
{
    int rc = 0;
    *out = NULL;
    if (!cfg->data_dir || !*cfg->data_dir)
        return ws_error_set(err, WS_EINVAL, "a data directory is required (--data DIR)");
    ws_server *s = ws_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->ai = cfg->ai;
    s->service_key = cfg->service_key;
    s->data_dir = ws_xstrdup(cfg->data_dir);
    s->cfg.data_dir = s->data_dir;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->auth_mu, NULL);
    pthread_mutex_init(&s->train_mu, NULL);
    pthread_cond_init(&s->train_cv, NULL);
    pthread_mutex_init(&s->writer_mu, NULL);
    pthread_mutex_init(&s->scrape_mu, NULL);
    pthread_cond_init(&s->writer_cv, NULL);
    pthread_cond_init(&s->writer_space_cv, NULL);
    pthread_cond_init(&s->writer_flushed_cv, NULL);
    if (!s->cfg.key_rate_limit)
        s->cfg.key_rate_limit = 120;
    if (!s->cfg.user_rate_limit)
        s->cfg.user_rate_limit = 600;
    if (!s->cfg.max_export_bytes)
        s->cfg.max_export_bytes = 64u << 20;
    if (!s->cfg.store_connections)
        s->cfg.store_connections = 8;
    s->wq_max = s->cfg.writer_queue_max ? s->cfg.writer_queue_max : WS_WRITER_QUEUE_MAX;
    snprintf(s->worker_id, sizeof s->worker_id, "serve-%ld", (long)getpid());

    if (mkdir(s->data_dir, 0700) != 0 && errno != EEXIST) {
        rc = ws_error_set(err, WS_EIO, "cannot create data directory %s: %s", s->data_dir, strerror(errno));
        goto out;
    }
    size_t n = strlen(s->data_dir) + 16;
    s->tmp_dir = ws_xmalloc(n);
    snprintf(s->tmp_dir, n, "%s/tmp", s->data_dir);
    if (mkdir(s->tmp_dir, 0700) != 0 && errno != EEXIST) {
        rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", s->tmp_dir, strerror(errno));
        goto out;
    }
    clear_tmp(s->tmp_dir); /* decrypted exports a crash left behind */
    rc = ws_blobs_open(cfg->blobs_url, s->data_dir, &s->blobs, err);
    if (rc)
        goto out;
    if (cfg->blobs_fault)
        ws_blobs_fault_wrap(&s->blobs, cfg->blobs_fault);
    if (cfg->store_url && *cfg->store_url) {
        s->store_url = ws_xstrdup(cfg->store_url);
    } else {
        s->store_url = ws_store_url_for_data_dir(s->data_dir, err);
        if (!s->store_url) {
            rc = err ? err->code : WS_EIO;
            goto out;
        }
    }
    if (cfg->store_replica_url)
        s->replica_url = ws_xstrdup(cfg->store_replica_url);
    s->cache_url = ws_xstrdup(cfg->cache_url && *cfg->cache_url ? cfg->cache_url : "memory");
    if (cfg->allowed_origins)
        s->origins = ws_xstrdup(cfg->allowed_origins);

    /* the store pool; the first connection migrates the schema */
    s->pool_n = s->cfg.store_connections;
    s->pool_all = ws_xcalloc((size_t)s->pool_n, sizeof *s->pool_all);
    s->pool_free = ws_xcalloc((size_t)s->pool_n, sizeof *s->pool_free);
    for (int i = 0; i < s->pool_n; i++) {
        rc = open_store(s, &s->pool_all[i], err);
        if (rc)
            goto out;
        if (i == 0) {
            rc = ws_store_migrate(s->pool_all[0], NULL, err);
            if (rc)
                goto out;
        }
        s->pool_free[s->pool_nfree++] = s->pool_all[i];
    }
    rc = ws_cache_open(s->cache_url, &s->cache, err);
    if (rc)
        goto out;
    s->cache_blocking = strcmp(ws_cache_backend(s->cache), "memory") != 0;
    rc = ws_srv_session_init(s, err);
    if (rc)
        goto out;
    if (!s->service_key) { /* the same file `serve` reads for its AI calls' tokens */
        ws_buf kp = WS_BUF_INIT;
        ws_buf_printf(&kp, "%s/" WS_SERVICE_KEY_FILE, s->data_dir);
        rc = ws_jwt_key_load_or_create(kp.data, &s->own_service_key, err);
        ws_buf_free(&kp);
        if (rc)
            goto out;
        s->service_key = s->own_service_key;
    }

    s->metrics = ws_metrics_new();
    register_metrics(s);
    rc = ws_wa_srv_new(s, err);
    if (rc)
        goto out;
    s->routes = ws_xmalloc(ws_srv_n_routes * sizeof *s->routes);
    memcpy(s->routes, ws_srv_routes, ws_srv_n_routes * sizeof *s->routes);
    for (size_t i = 0; i < ws_srv_n_routes; i++) {
        if (s->routes[i].max_body == WS_SRV_EXPORT_CAP)
            s->routes[i].max_body = s->cfg.max_export_bytes;
        else if (s->routes[i].max_body == WS_SRV_MCP_CAP)
            s->routes[i].max_body = s->cfg.max_export_bytes / 3 * 4 + 65536;
    }
    ws_http_config hc = {
        .host = cfg->host,
        .port = cfg->port,
        .threads = cfg->threads,
        .max_head_bytes = cfg->max_head_bytes,
        .max_body_bytes = cfg->max_body_bytes,
        .keepalive_timeout_ms = cfg->keepalive_timeout_ms,
        .head_timeout_ms = cfg->head_timeout_ms,
        .drain_timeout_ms = cfg->drain_timeout_ms,
        .tls_cert = cfg->tls_cert,
        .tls_key = cfg->tls_key,
        .routes = s->routes,
        .n_routes = ws_srv_n_routes,
        .app = s,
        .metrics = s->metrics,
    };
    rc = ws_http_server_new(&hc, &s->http, err);
out:
    if (rc) {
        ws_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int ws_server_port(const ws_server *s)
{
    return ws_http_server_port(s->http);
}

int ws_server_start(ws_server *s, ws_error *err)
{
    pthread_mutex_lock(&s->writer_mu);
    s->writer_on = true;
    pthread_mutex_unlock(&s->writer_mu);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        s->writer_on = false;
        return ws_error_set(err, WS_EIO, "cannot start the writer thread");
    }
    s->writer_started = true;
    if (!s->cfg.no_training) {
        if (pthread_create(&s->trainer, NULL, trainer_main, s) != 0)
            return ws_error_set(err, WS_EIO, "cannot start the training thread");
        s->trainer_on = true;
    }
    int rc = ws_wa_srv_start(s, err);
    if (rc)
        return rc;
    return ws_http_server_start(s->http, err);
}

void ws_server_stop(ws_server *s)
{
    atomic_store(&s->stopping, true);
    ws_http_server_stop(s->http);
}

void ws_server_wait(ws_server *s)
{
    ws_http_server_wait(s->http);
    /* requests are drained: now the background threads (a pool job may still be queued
     * by a handler until the loops stopped, so this comes after) */
    if (s->trainer_on) {
        ws_srv_wake_trainer(s);
        pthread_join(s->trainer, NULL);
        s->trainer_on = false;
    }
    ws_wa_srv_stop(s); /* before the writer: it records conversation rows */
    if (s->writer_started) {
        /* close the queue: later rows are written synchronously; the writer drains what is
         * queued, then exits */
        pthread_mutex_lock(&s->writer_mu);
        s->writer_on = false;
        pthread_cond_broadcast(&s->writer_cv);
        pthread_cond_broadcast(&s->writer_space_cv);
        pthread_mutex_unlock(&s->writer_mu);
        pthread_join(s->writer, NULL);
        s->writer_started = false;
    }
}

void ws_server_free(ws_server *s)
{
    if (!s)
        return;
    ws_http_server_free(s->http);
    ws_wa_srv_free(s);
    for (int i = 0; i < s->pool_n; i++)
        ws_store_close(s->pool_all[i]);
    free(s->pool_all);
    free(s->pool_free);
    free(s->routes);
    ws_cache_close(s->cache);
    ws_jwt_key_free(s->session_key);
    ws_jwt_key_free(s->own_service_key);
    pthread_mutex_lock(&s->auth_mu);
    auth_clear_locked(s);
    pthread_mutex_unlock(&s->auth_mu);
    for (write_item *w = s->wq_head, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    ws_metrics_free(s->metrics);
    free(s->data_dir);
    free(s->store_url);
    free(s->replica_url);
    free(s->cache_url);
    free(s->origins);
    free(s->tmp_dir);
    ws_blobs_close(s->blobs);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->auth_mu);
    pthread_mutex_destroy(&s->train_mu);
    pthread_cond_destroy(&s->train_cv);
    pthread_mutex_destroy(&s->writer_mu);
    pthread_mutex_destroy(&s->scrape_mu);
    pthread_cond_destroy(&s->writer_cv);
    pthread_cond_destroy(&s->writer_space_cv);
    pthread_cond_destroy(&s->writer_flushed_cv);
    free(s);
}
