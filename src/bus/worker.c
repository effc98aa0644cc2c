/* The training worker (worker.h): job messages -> compare-and-set job state, training with
 * lease, progress events and checkpoints in the blobs, outcome, then the offset commit. */
#include "bus/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus/event.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace.h"
#include "server/metrics.h"
#include "store/store_bus.h"

#define CHECKPOINT_CAP ((size_t)1 << 30)
#define STATE_CAP 65536
static const char *const ck_files[] = {"checkpoint.safetensors", "train_state.json"}; /* state last */

/* the training metrics (all NULL without a registry) */
typedef struct worker_metrics {
    ws_metric *completed, *failed, *resumed, *duration;
} worker_metrics;

typedef struct job_ctx {
    const ws_worker_config *cfg;
    const worker_metrics *wm;
    atomic_bool *stop;
    ws_job job;
    char *dir; /* the training dir: cfg->work_dir/job-<id> */
    ws_span *span;
    char traceparent[WS_TRACEPARENT_LEN + 1];
    pthread_mutex_t mu; /* progress, samples */
    double progress;
    int64_t samples;
    atomic_bool lost, hb_stop;
    pthread_t hb;
    double last_pub_s;
    int64_t ck_mtime_ns; /* of the train_state.json last copied to the blobs */
    int seq;
} job_ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *ck_key(const char *job_id, const char *name)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "checkpoints/%s/%s", job_id, name);
    return ws_buf_take(&b);
}

/* Copies the training dir's checkpoint to the blobs when train_state.json changed (the
 * trainer writes it after the weights, so the pair is consistent). */
static void save_checkpoint(job_ctx *c)
{
    ws_buf sp = WS_BUF_INIT;
    ws_buf_printf(&sp, "%s/train_state.json", c->dir);
    struct stat stt;
    int64_t m = stat(sp.data, &stt) == 0 ? (int64_t)stt.st_mtim.tv_sec * 1000000000 + stt.st_mtim.tv_nsec : 0;
    ws_buf_free(&sp);
    if (m == 0 || m == c->ck_mtime_ns)
        return;
    ws_error err = {0};
    int rc = 0;
    for (size_t i = 0; i < 2 && !rc; i++) {
        ws_buf p = WS_BUF_INIT;
        ws_buf_printf(&p, "%s/%s", c->dir, ck_files[i]);
        char *data = NULL, *key = ck_key(c->job.id, ck_files[i]);
        size_t len = 0;
        rc = ws_file_read(p.data, CHECKPOINT_CAP, &data, &len, &err);
        if (!rc)
            rc = ws_blobs_put(c->cfg->blobs, key, data, len, &err);
        free(data);
        free(key);
        ws_buf_free(&p);
    }
    if (rc) {
        WS_LOG(WS_LOG_WARN, "job.checkpoint_failed", err.msg, WS_LF_S("job.id", c->job.id));
        return;
    }
    c->ck_mtime_ns = m;
    WS_LOG(WS_LOG_INFO, "job.checkpoint_saved", NULL, WS_LF_S("job.id", c->job.id));
}

/* Restores the job's checkpoint from the blobs into the training dir (when there is one). */
static bool restore_checkpoint(job_ctx *c)
{
    ws_error err = {0};
    bool ok = true;
    for (size_t i = 0; i < 2 && ok; i++) {
        char *key = ck_key(c->job.id, ck_files[i]);
        ws_buf data = WS_BUF_INIT, p = WS_BUF_INIT;
        ws_buf_printf(&p, "%s/%s", c->dir, ck_files[i]);
        ok = ws_blobs_get(c->cfg->blobs, key, i == 0 ? CHECKPOINT_CAP : STATE_CAP, &data, &err) == 0 &&
             ws_file_write_atomic(p.data, data.data ? data.data : "", data.len, &err) == 0;
        free(key);
        ws_buf_free(&data);
        ws_buf_free(&p);
    }
    return ok;
}

/* The lease: refreshes the job row (with the latest progress) every second on its own
 * connection; marks the job lost when another worker took it. */
static void *heartbeat_main(void *arg)
{
    job_ctx *c = arg;
    ws_store *st = NULL;
    ws_store_config sc = {.url = c->cfg->store_url};
    int every = c->cfg->lease_ms / 3 < 1000 ? c->cfg->lease_ms / 3 : 1000;
    while (!atomic_load(&c->hb_stop)) {
        ws_error err = {0};
        if (!st && ws_store_open(&sc, &st, &err))
            st = NULL;
        if (st) {
            pthread_mutex_lock(&c->mu);
            double p = c->progress;
            int64_t n = c->samples;
            pthread_mutex_unlock(&c->mu);
            int rc = ws_store_job_progress_as(st, c->job.id, c->cfg->worker_id, p, n, &err);
            if (rc == WS_ECONFLICT) {
                atomic_store(&c->lost, true);
                break;
            }
            if (rc) {
                ws_store_close(st);
                st = NULL;
            }
        }
        for (int t = 0; t < every && !atomic_load(&c->hb_stop); t += 50)
            nap_ms(50);
    }
    ws_store_close(st);
    return NULL;
}

/* Publishes {"type":"training.progress","job":{...}} (best effort: progress is not state). */
static void publish_progress(job_ctx *c, double fraction, uint64_t samples)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "{\"type\":\"training.progress\",\"job\":{\"job_id\":");
    ws_json_put_cstr(&b, c->job.id);
    ws_buf_puts(&b, ",\"user_id\":");
    ws_json_put_cstr(&b, c->job.user_id);
    ws_buf_puts(&b, ",\"status\":\"running\",\"progress\":");
    ws_json_put_num(&b, fraction);
    ws_buf_printf(&b, ",\"samples_processed\":%llu,\"worker_id\":", (unsigned long long)samples);
    ws_json_put_cstr(&b, c->cfg->worker_id);
    ws_buf_puts(&b, "}}");
    char eid[WS_BUS_EVENT_ID_MAX + 1];
    snprintf(eid, sizeof eid, "p-%.24s-%d", c->job.id + (strncmp(c->job.id, "job_", 4) ? 0 : 4), ++c->seq);
    ws_bus_out m = {.topic = WS_TOPIC_TRAINING_EVENTS,
                    .key = c->job.user_id,
                    .payload = b.data,
                    .len = b.len,
                    .event_id = eid,
                    .traceparent = c->traceparent[0] ? c->traceparent : NULL};
    int status = 0;
    ws_error err = {0};
    if (c->cfg->bus->ops->publish(c->cfg->bus, &m, 1, &status, 5000, &err))
        WS_LOG(WS_LOG_WARN, "job.progress_not_published", err.msg, WS_LF_S("job.id", c->job.id));
    ws_buf_free(&b);
}

static int on_progress(void *arg, double fraction, const char *phase, uint64_t samples)
{
    job_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    c->progress = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    c->samples = (int64_t)samples;
    pthread_mutex_unlock(&c->mu);
    double t = now_s();
    if (t - c->last_pub_s >= 1.0) {
        c->last_pub_s = t;
        publish_progress(c, c->progress, samples);
        save_checkpoint(c);
    }
    return atomic_load(&c->lost) || atomic_load(c->stop) ? 1 : 0;
}

/* The job's params: persona and budget. */
static void job_params(const ws_job *j, char *persona, size_t cap, double *budget)
{
    ws_json_doc *doc = NULL;
    *budget = 0;
    persona[0] = '\0';
    if (j->params_json && ws_json_parse(j->params_json, strlen(j->params_json), &doc, NULL) == 0) {
        const char *p = ws_json_get_str(ws_json_root(doc), "persona");
        if (p)
            snprintf(persona, cap, "%s", p);
        ws_json_get_num(ws_json_root(doc), "budget_s", budget);
    }
    ws_json_doc_free(doc);
}

/* Trains the taken job. 0 with *res, or the failure (err); WS_EAGAIN when interrupted. */
static int train(job_ctx *c, ws_ai_train_result *res, ws_error *err)
{
    char persona[256];
    double budget;
    job_params(&c->job, persona, sizeof persona, &budget);
    char *plain = NULL;
    const char *export_path = c->job.data_path;
    int rc = 0;
    if (!export_path)
        return ws_error_set(err, WS_EINVAL, "the job names no export");
    if (export_path[0] != '/') {
        size_t cap = c->cfg->max_export_bytes ? c->cfg->max_export_bytes : (size_t)64 << 20;
        if ((rc = ws_blobs_get_to_temp(c->cfg->blobs, export_path, cap, c->cfg->work_dir, &plain, err)))
            return rc;
        export_path = plain;
    }
    ws_ai_train_request req = {.user_id = c->job.user_id,
                               .export_path = export_path,
                               .persona = persona,
                               .budget_s = budget,
                               .work_dir = c->dir,
                               .checkpoint_every_s = c->cfg->checkpoint_every_s};
    rc = c->cfg->ai->ops->train(c->cfg->ai, &req, on_progress, c, res, err);
    if (plain) {
        unlink(plain);
        free(plain);
    }
    if (rc && (atomic_load(&c->lost) || atomic_load(c->stop)))
        rc = ws_error_set(err, WS_EAGAIN, "training interrupted");
    return rc;
}

/* A failure of the infrastructure (the blobs or the database away: WS_EIO, WS_ETIMEDOUT) is
 * not the job's: the worker keeps the job (the heartbeat keeps its lease) and trains it again
 * from the checkpoint in its training dir, backing off 1, 2, 4 .. 10 s, for up to
 * TRANSIENT_RETRY_S; only a failure of the job's own (a bad export) or a longer outage fails
 * it. WS_EAGAIN when interrupted meanwhile. */
#define TRANSIENT_RETRY_S 300
static int train_retrying(job_ctx *c, ws_ai_train_result *res, ws_error *err)
{
    double until = now_s() + TRANSIENT_RETRY_S;
    int backoff_ms = 1000;
    for (;;) {
        int rc = train(c, res, err);
        if ((rc != WS_EIO && rc != WS_ETIMEDOUT) || now_s() > until)
            return rc;
        WS_LOG(WS_LOG_WARN, "job.retry", err->msg, WS_LF_S("job.id", c->job.id),
               WS_LF_I("retry.backoff_ms", backoff_ms));
        ws_ai_train_result_clear(res);
        for (int t = 0; t < backoff_ms; t += 50) {
            if (atomic_load(&c->lost) || atomic_load(c->stop))
                return ws_error_set(err, WS_EAGAIN, "training interrupted");
            nap_ms(50);
        }
        backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
    }
}

/* Records the outcome durably (retrying while the database is away). True when it is
 * recorded (or another worker already recorded one): the offset may be committed. */
static bool finish(job_ctx *c, ws_store *st, int rc, const ws_ai_train_result *res, const char *why)
{
    for (int attempt = 0; !atomic_load(c->stop) || attempt == 0; attempt++) {
        ws_error err = {0};
        int frc = 0;
        if (rc == 0 && res->model_version)
            frc = ws_store_model_set_current(st, c->job.user_id, res->model_version, c->job.data_path,
                                             c->job.id, &err);
        if (frc == WS_ECONFLICT)
            frc = 0; /* this version is registered already (a retry of this call) */
        if (frc == 0)
            frc = ws_store_job_finish_as(st, c->job.id, c->cfg->worker_id,
                                         rc == 0 ? WS_JOB_COMPLETED : WS_JOB_FAILED,
                                         rc == 0 ? (int64_t)res->samples_processed : -1,
                                         rc == 0 ? res->metrics_json : NULL, rc == 0 ? NULL : why, &err);
        if (frc == 0 || frc == WS_ECONFLICT || frc == WS_ENOENT) {
            if (frc)
                WS_LOG(WS_LOG_WARN, "job.not_finished_here", err.msg, WS_LF_S("job.id", c->job.id));
            return true;
        }
        WS_LOG(WS_LOG_WARN, "job.finish_retry", err.msg, WS_LF_S("job.id", c->job.id));
        nap_ms(1000);
    }
    return false;
}

/* Takes the job (waiting while a live worker holds it). 0 = ours; 1 = nothing to do (final
 * or gone: commit); -1 = stopping. */
static int take(job_ctx *c, ws_store *st, ws_arena *a, const char *job_id)
{
    bool said = false;
    while (!atomic_load(c->stop)) {
        ws_error err = {0};
        int rc = ws_store_job_take(st, a, job_id, c->cfg->worker_id, c->cfg->lease_ms, &c->job, &err);
        if (rc == 0)
            return 0;
        if (rc == WS_ECONFLICT || rc == WS_ENOENT) {
            WS_LOG(WS_LOG_INFO, "job.skipped", err.msg, WS_LF_S("job.id", job_id));
            return 1;
        }
        if (rc == WS_EAGAIN && !said) {
            WS_LOG(WS_LOG_INFO, "job.waiting", "another worker holds the job; waiting for its lease",
                   WS_LF_S("job.id", job_id));
            said = true;
        } else if (rc != WS_EAGAIN) {
            WS_LOG(WS_LOG_WARN, "job.take_failed", err.msg, WS_LF_S("job.id", job_id));
        }
        nap_ms(500);
    }
    return -1;
}

/* Runs one taken job to its outcome. True when the offset may be committed. */
static bool run_taken(job_ctx *c, ws_store *st)
{
    ws_buf d = WS_BUF_INIT;
    ws_buf_printf(&d, "%s/job-%s", c->cfg->work_dir, c->job.id);
    c->dir = ws_buf_take(&d);
    ws_error err = {0};
    ws_file_make_dirs(c->dir, NULL);
    bool resumed = restore_checkpoint(c);
    WS_LOG(WS_LOG_INFO, resumed ? "job.resumed" : "job.started", resumed ? "from its last checkpoint" : NULL,
           WS_LF_S("job.id", c->job.id), WS_LF_S("user.id", c->job.user_id),
           WS_LF_S("worker.id", c->cfg->worker_id));
    ws_span_attr_int(c->span, "job.resumed", resumed);
    if (resumed && c->wm->resumed)
        ws_metric_add(c->wm->resumed, 1);
    pthread_create(&c->hb, NULL, heartbeat_main, c);
    ws_ai_train_result res = {0};
    double t0 = now_s();
    int rc = train_retrying(c, &res, &err);
    atomic_store(&c->hb_stop, true);
    pthread_join(c->hb, NULL);
    bool commit = false;
    if (rc == WS_EAGAIN) {
        save_checkpoint(c);
        WS_LOG(WS_LOG_INFO, "job.interrupted",
               atomic_load(&c->lost) ? "another worker took the job" : "stopping",
               WS_LF_S("job.id", c->job.id));
        commit = atomic_load(&c->lost);
    } else {
        commit = finish(c, st, rc, &res, rc ? err.msg : NULL);
        if (c->wm->completed) {
            ws_metric_add(rc ? c->wm->failed : c->wm->completed, 1);
            ws_metric_observe(c->wm->duration, now_s() - t0);
        }
        if (rc)
            ws_span_error(c->span, "training failed");
        WS_LOG(rc ? WS_LOG_ERROR : WS_LOG_INFO, rc ? "job.failed" : "job.completed", rc ? err.msg : NULL,
               WS_LF_S("job.id", c->job.id), WS_LF_S("user.id", c->job.user_id),
               WS_LF_I("event.duration", (int64_t)((now_s() - t0) * 1e9)));
        if (commit) {
            ws_buf pre = WS_BUF_INIT;
            ws_buf_printf(&pre, "checkpoints/%s/", c->job.id);
            ws_blobs_delete_prefix(c->cfg->blobs, pre.data, NULL, NULL);
            ws_buf_free(&pre);
        }
    }
    ws_ai_train_result_clear(&res);
    return commit;
}

/* Handles one message of training-jobs. True when its offset may be committed. */
static bool handle(const ws_worker_config *cfg, const worker_metrics *wm, atomic_bool *stop, ws_store *st,
                   const ws_bus_msg *m)
{
    ws_bus_job_event ev;
    ws_error err = {0};
    if (ws_bus_job_event_parse(m->payload, m->len, &ev, &err)) {
        WS_LOG(WS_LOG_WARN, "job.bad_message", err.msg, WS_LF_I("messaging.kafka.offset", m->offset));
        return true;
    }
    if (strcmp(ev.type, "training.requested") != 0)
        return true;
    ws_trace_ctx up;
    bool has_up = m->traceparent[0] && ws_traceparent_parse(m->traceparent, strlen(m->traceparent), &up) == 0;
    job_ctx c = {.cfg = cfg, .wm = wm, .stop = stop};
    pthread_mutex_init(&c.mu, NULL);
    c.span = ws_span_begin("training job", WS_SPAN_INTERNAL, has_up ? &up : NULL);
    ws_span_attr_str(c.span, "job.id", ev.job_id);
    ws_span_attr_str(c.span, "messaging.system", "kafka");
    ws_traceparent_format(ws_span_ctx(c.span), c.traceparent);
    ws_arena *a = ws_arena_new(4096);
    int t = take(&c, st, a, ev.job_id);
    bool commit = t == 1 || (t == 0 && run_taken(&c, st));
    ws_span_end(c.span);
    ws_arena_free(a);
    if (c.dir && commit) {
        ws_file_remove_tree(c.dir, NULL, NULL); /* private scratch: nothing in it is kept */
    }
    free(c.dir);
    pthread_mutex_destroy(&c.mu);
    return commit;
}

static void health(const ws_worker_config *cfg, const char *state, int64_t handled)
{
    if (!cfg->health_file)
        return;
    char line[256];
    int n =
        snprintf(line, sizeof line, "{\"state\":\"%s\",\"worker_id\":\"%.64s\",\"jobs\":%lld,\"at\":%lld}\n",
                 state, cfg->worker_id, (long long)handled, (long long)time(NULL));
    ws_file_write_atomic(cfg->health_file, line, (size_t)n, NULL);
}

int ws_worker_run(const ws_worker_config *cfg0, atomic_bool *stop, ws_error *err)
{
    ws_worker_config cfg = *cfg0;
    cfg.lease_ms = cfg.lease_ms > 0 ? cfg.lease_ms : 15000;
    cfg.checkpoint_every_s = cfg.checkpoint_every_s > 0 ? cfg.checkpoint_every_s : 10;
    const char *topics[] = {WS_TOPIC_TRAINING_JOBS};
    int rc = cfg.bus->ops->subscribe(cfg.bus, cfg.group ? cfg.group : WS_WORKER_GROUP, topics, 1, err);
    if (rc)
        return rc;
    ws_store *st = NULL;
    ws_store_config sc = {.url = cfg.store_url};
    int64_t handled = 0;
    double last_err = 0, idle_s = 0;
    worker_metrics wm = {0};
    if (cfg.metrics) {
        static const double bounds[] = {1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200};
        wm.completed = ws_metrics_counter(cfg.metrics, "ws_training_jobs_completed_total", NULL,
                                          "Training jobs completed.");
        wm.failed =
            ws_metrics_counter(cfg.metrics, "ws_training_jobs_failed_total", NULL, "Training jobs failed.");
        wm.resumed = ws_metrics_counter(cfg.metrics, "ws_training_jobs_resumed_total", NULL,
                                        "Training jobs resumed from another worker's checkpoint.");
        wm.duration = ws_metrics_histogram(cfg.metrics, "ws_training_job_duration_seconds", NULL,
                                           "Wall time of finished training jobs (this worker's part).",
                                           bounds, sizeof bounds / sizeof bounds[0]);
    }
    while (!atomic_load(stop)) {
        health(&cfg, "idle", handled);
        if (!st && ws_store_open(&sc, &st, err)) {
            WS_LOG(WS_LOG_WARN, "worker.store_failed", err->msg);
            st = NULL;
            nap_ms(1000);
            continue;
        }
        ws_bus_msg m;
        ws_error perr = {0};
        rc = cfg.bus->ops->poll(cfg.bus, 500, &m, &perr);
        if (rc == WS_EAGAIN) {
            if (cfg.drain && (idle_s += 0.5) >= 10) {
                WS_LOG(WS_LOG_INFO, "worker.drained", "no job for 10 s");
                break;
            }
            continue;
        }
        if (rc) {
            if (now_s() - last_err > 10) {
                WS_LOG(WS_LOG_WARN, "worker.poll_failed", perr.msg);
                last_err = now_s();
            }
            continue;
        }
        health(&cfg, "training", handled);
        idle_s = 0;
        if (!handle(&cfg, &wm, stop, st, &m))
            continue; /* interrupted: the message stays uncommitted for the next holder */
        handled++;
        if (cfg.bus->ops->commit(cfg.bus, &m, &perr))
            WS_LOG(WS_LOG_WARN, "worker.commit_failed", perr.msg,
                   WS_LF_I("messaging.kafka.offset", m.offset));
    }
    health(&cfg, "stopped", handled);
    ws_store_close(st);
    return 0;
}
