/* The API gateway's life cycle: opening the store pool, the cache and the HTTP server;
 * the principal cache; the training worker (claims queued jobs from the store, trains with
 * the AI, reports progress to the job row); the asynchronous writer of conversation rows
 * and analytics events; graceful shutdown (see server.h). */
#include "server/server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/progress.h"

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
    ws_store_config sc = {.url = s->store_url, .replica_url = s->replica_url};
    return ws_store_open(&sc, out, err);
}

/* ---- principal cache ------------------------------------------------------------------- */

static unsigned bucket_of(const char *hash)
{
    unsigned h = 0;
    for (int i = 0; i < 8; i++)
        h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
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
    e->expires_ms = ws_store_now_ms() + (s->cache_blocking ? WS_AUTH_CACHE_TTL_SHARED_MS : WS_AUTH_CACHE_TTL_MS);
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

/* ---- asynchronous writer --------------------------------------------------------------- */

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

void ws_srv_record_reply(ws_server *s, const ws_conversation *c, bool cached)
{
    size_t need = sizeof(write_item) + strlen(c->user_id) + 1 + strlen(c->message) + 1 + strlen(c->response) +
                  1 + (c->model_version ? strlen(c->model_version) + 1 : 0);
    pthread_mutex_lock(&s->writer_mu);
    if (s->wq_len >= WS_WRITER_QUEUE_MAX || !s->writer_on) {
        pthread_mutex_unlock(&s->writer_mu);
        ws_metric_add(s->m_conv_dropped, 1);
        return;
    }
    pthread_mutex_unlock(&s->writer_mu);
    write_item *w = ws_xmalloc(need);
    char *p = (char *)(w + 1);
    w->next = NULL;
    w->cached = cached;
    w->conv = *c;
    w->conv.user_id = dup_into(&p, c->user_id);
    w->conv.message = dup_into(&p, c->message);
    w->conv.response = dup_into(&p, c->response);
    w->conv.model_version = dup_into(&p, c->model_version);
    if (!w->conv.created_at)
        w->conv.created_at = ws_store_now_ms();
    pthread_mutex_lock(&s->writer_mu);
    bool was_empty = s->wq_head == NULL;
    if (s->wq_tail)
        s->wq_tail->next = w;
    else
        s->wq_head = w;
    s->wq_tail = w;
    s->wq_len++;
    ws_metric_set(s->m_writer_queue, (int64_t)s->wq_len);
    /* the writer drains the whole queue before it sleeps: wake it only on empty -> non-empty
     * (one futex call per batch instead of one per reply) */
    if (was_empty)
        pthread_cond_signal(&s->writer_cv);
    pthread_mutex_unlock(&s->writer_mu);
}

/* Background threads yield to the event loops when the CPU is short (Linux: per-thread nice). */
static void lower_priority(void)
{
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

static void *writer_main(void *arg)
{
    ws_server *s = arg;
    lower_priority();
    ws_store *st = NULL;
    ws_error err = {0};
    for (;;) {
        pthread_mutex_lock(&s->writer_mu);
        while (!s->wq_head && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->writer_cv, &s->writer_mu);
        write_item *w = s->wq_head;
        if (w) {
            s->wq_head = w->next;
            if (!s->wq_head)
                s->wq_tail = NULL;
            s->wq_len--;
            ws_metric_set(s->m_writer_queue, (int64_t)s->wq_len);
        }
        pthread_mutex_unlock(&s->writer_mu);
        if (!w)
            break; /* stopping and the queue is empty */
        if (!st && open_store(s, &st, &err) != 0) {
            fprintf(stderr, "whatstyle serve: writer: %s\n", err.msg);
            st = NULL;
        }
        int rc = st ? ws_store_conv_insert(st, &w->conv, NULL, &err) : WS_EIO;
        if (rc == 0) {
            char data[160];
            snprintf(data, sizeof data, "{\"cached\":%s,\"confidence\":%.4f,\"processing_ms\":%d}",
                     w->cached ? "true" : "false", w->conv.confidence, w->conv.processing_ms);
            ws_store_event_append(st, w->conv.user_id, "reply", data, NULL, &err);
            ws_metric_add(s->m_conv_written, 1);
        } else if (rc != WS_ENOENT) {
            /* a deleted user's late rows are simply dropped (ENOENT / foreign key) */
            ws_metric_add(s->m_conv_dropped, 1);
        }
        free(w);
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

static void run_job(ws_server *s, ws_store *st, const ws_job *job)
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
        ws_store_job_update(st, job->id, &u, NULL);
        ws_metric_add(s->m_jobs_failed, 1);
        return;
    }
    ws_ai_train_request req = {
        .user_id = job->user_id, .export_path = job->data_path, .persona = persona, .budget_s = budget};
    ws_ai_train_result res = {0};
    train_progress tp = {.s = s, .st = st, .job_id = job->id};
    ws_metric_add(s->m_ai_calls, 1);
    int rc = s->ai->ops->train(s->ai, &req, on_train_progress, &tp, &res, &err);
    if (rc != 0 && atomic_load(&s->stopping)) {
        /* interrupted by shutdown: back to the queue so a restart trains it */
        u.status = WS_JOB_QUEUED;
        u.progress = 0;
        ws_store_job_update(st, job->id, &u, NULL);
        ws_ai_train_result_clear(&res);
        return;
    }
    if (rc == 0 && res.model_version) {
        rc = ws_store_model_set_current(st, job->user_id, res.model_version, job->data_path, job->id, &err);
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
    if (ws_store_job_update(st, job->id, &u, &err) != 0)
        fprintf(stderr, "whatstyle serve: job %s: %s\n", job->id, err.msg);
    ws_ai_train_result_clear(&res);
}

static void *trainer_main(void *arg)
{
    ws_server *s = arg;
    lower_priority();
    ws_store *st = NULL;
    ws_error err = {0};
    while (!atomic_load(&s->stopping)) {
        if (!st && open_store(s, &st, &err) != 0) {
            fprintf(stderr, "whatstyle serve: trainer: %s\n", err.msg);
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
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
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
                                           "Conversation rows written by the async writer.");
    s->m_conv_dropped = ws_metrics_counter(m, "ws_conversations_dropped_total", NULL,
                                           "Conversation rows dropped (queue full or store error).");
    s->m_writer_queue =
        ws_metrics_gauge(m, "ws_writer_queue_length", NULL, "Conversation rows waiting to be written.");
    s->m_mcp_calls = ws_metrics_counter(m, "ws_mcp_tool_calls_total", NULL, "MCP tools/call requests.");
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
    s->data_dir = ws_xstrdup(cfg->data_dir);
    s->cfg.data_dir = s->data_dir;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->auth_mu, NULL);
    pthread_mutex_init(&s->train_mu, NULL);
    pthread_cond_init(&s->train_cv, NULL);
    pthread_mutex_init(&s->writer_mu, NULL);
    pthread_cond_init(&s->writer_cv, NULL);
    if (!s->cfg.key_rate_limit)
        s->cfg.key_rate_limit = 120;
    if (!s->cfg.user_rate_limit)
        s->cfg.user_rate_limit = 600;
    if (!s->cfg.max_export_bytes)
        s->cfg.max_export_bytes = 64u << 20;
    if (!s->cfg.store_connections)
        s->cfg.store_connections = 8;
    snprintf(s->worker_id, sizeof s->worker_id, "serve-%ld", (long)getpid());

    if (mkdir(s->data_dir, 0700) != 0 && errno != EEXIST) {
        rc = ws_error_set(err, WS_EIO, "cannot create data directory %s: %s", s->data_dir, strerror(errno));
        goto out;
    }
    size_t n = strlen(s->data_dir) + 16;
    s->exports_dir = ws_xmalloc(n);
    snprintf(s->exports_dir, n, "%s/exports", s->data_dir);
    if (mkdir(s->exports_dir, 0700) != 0 && errno != EEXIST) {
        rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", s->exports_dir, strerror(errno));
        goto out;
    }
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

    s->metrics = ws_metrics_new();
    register_metrics(s);
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
    s->writer_on = true;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        s->writer_on = false;
        return ws_error_set(err, WS_EIO, "cannot start the writer thread");
    }
    if (!s->cfg.no_training) {
        if (pthread_create(&s->trainer, NULL, trainer_main, s) != 0)
            return ws_error_set(err, WS_EIO, "cannot start the training thread");
        s->trainer_on = true;
    }
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
    if (s->writer_on) {
        pthread_mutex_lock(&s->writer_mu);
        pthread_cond_broadcast(&s->writer_cv);
        pthread_mutex_unlock(&s->writer_mu);
        pthread_join(s->writer, NULL);
        pthread_mutex_lock(&s->writer_mu);
        s->writer_on = false;
        pthread_mutex_unlock(&s->writer_mu);
    }
}

void ws_server_free(ws_server *s)
{
    if (!s)
        return;
    ws_http_server_free(s->http);
    for (int i = 0; i < s->pool_n; i++)
        ws_store_close(s->pool_all[i]);
    free(s->pool_all);
    free(s->pool_free);
    free(s->routes);
    ws_cache_close(s->cache);
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
    free(s->exports_dir);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->auth_mu);
    pthread_mutex_destroy(&s->train_mu);
    pthread_cond_destroy(&s->train_cv);
    pthread_mutex_destroy(&s->writer_mu);
    pthread_cond_destroy(&s->writer_cv);
    free(s);
}
