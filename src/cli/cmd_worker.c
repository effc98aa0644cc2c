/* `whatstyle worker`: a training worker of the cluster (src/bus/worker.h) — a member of the
 * Kafka consumer group on training-jobs that trains each job and writes the model to the blobs.
 *
 *   whatstyle worker --config FILE | --kafka BROKERS --store URL --data DIR [options]
 *   whatstyle worker --check ...   (connects to the database, the blobs and Kafka, then exits 0)
 *
 * Settings: the option table below (docs/configuration.md): flags, then the environment
 * (WS_KAFKA_BROKERS, WS_STORE_URL, WS_BLOBS_URL, ...), then the config file. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ai/ai_local.h"
#include "blobs/blobs.h"
#include "bus/bus.h"
#include "bus/worker.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace_export.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "store/store.h"

typedef struct worker_opts {
    const char *kafka, *store, *data, *worker_id, *group, *base_model, *health_file, *otlp_endpoint,
        *metrics_listen, *minilm_dir;
    int partitions, lease_ms, session_timeout_ms, max_export_mb, nn_threads;
    double checkpoint_s, train_budget, trace_ratio;
    bool check, drain;
    ws_cli_blobs blobs;
} worker_opts;

#define F(field) offsetof(worker_opts, field)
static const ws_opt rows[] = {
    {.name = "kafka",
     .kind = WS_OPT_STR,
     .off = F(kafka),
     .env = "WS_KAFKA_BROKERS",
     .arg = "BROKERS",
     .flags = WS_OPTF_REQUIRED,
     .help = "host:port[,host:port] of the Kafka brokers"},
    WS_CLI_ROW_DATA(worker_opts, data, WS_OPTF_REQUIRED),
    WS_CLI_ROW_STORE(worker_opts, store),
    WS_CLI_ROWS_BLOBS(worker_opts, blobs),
    {.name = "worker-id",
     .kind = WS_OPT_STR,
     .off = F(worker_id),
     .arg = "ID",
     .help = "unique name (default worker-<host>-<pid>)"},
    {.name = "group",
     .kind = WS_OPT_STR,
     .off = F(group),
     .dflt = WS_WORKER_GROUP,
     .arg = "NAME",
     .help = "consumer group"},
    WS_CLI_ROW_KAFKA_PARTITIONS(worker_opts, partitions),
    {.name = "lease-ms",
     .kind = WS_OPT_INT,
     .off = F(lease_ms),
     .lo = 100,
     .hi = 86400000,
     .dflt = "15000",
     .arg = "N",
     .help = "a job's holder silent this long is presumed dead"},
    {.name = "checkpoint-s",
     .kind = WS_OPT_NUM,
     .off = F(checkpoint_s),
     .lo = 0.1,
     .hi = 86400,
     .dflt = "10",
     .arg = "S",
     .help = "seconds between training checkpoints copied to the blobs"},
    {.name = "session-timeout-ms",
     .kind = WS_OPT_INT,
     .off = F(session_timeout_ms),
     .lo = 1000,
     .hi = 3600000,
     .dflt = "10000",
     .arg = "N",
     .help = "consumer group liveness"},
    WS_CLI_ROW_BASE_MODEL(worker_opts, base_model),
    WS_CLI_ROW_TRAIN_BUDGET(worker_opts, train_budget),
    WS_CLI_ROW_NN_THREADS(worker_opts, nn_threads),
    WS_CLI_ROW_MINILM_DIR(worker_opts, minilm_dir),
    {.name = "max-export-mb",
     .kind = WS_OPT_INT,
     .off = F(max_export_mb),
     .lo = 1,
     .hi = 4096,
     .dflt = "64",
     .arg = "N",
     .help = "largest export fetched"},
    {.name = "health-file",
     .kind = WS_OPT_STR,
     .off = F(health_file),
     .arg = "PATH",
     .help = "rewritten every half second with the worker's state (JSON)"},
    {.name = "metrics-listen",
     .kind = WS_OPT_STR,
     .off = F(metrics_listen),
     .arg = "HOST:PORT",
     .help = "serve GET /healthz and /metrics (Prometheus) there"},
    WS_CLI_ROWS_TRACING(worker_opts, otlp_endpoint, trace_ratio),
    {.name = "drain",
     .kind = WS_OPT_FLAG,
     .off = F(drain),
     .help = "exit once no job came for 10 s (a batch run, e.g. a CronJob)"},
    {.name = "check",
     .kind = WS_OPT_FLAG,
     .off = F(check),
     .flags = WS_OPTF_NOFILE,
     .help = "connect to the database, the blobs and Kafka, print ok and exit (a health check)"},
};
#undef F

const ws_cli_spec ws_cli_spec_worker = {
    .name = "worker",
    .synopsis = "--kafka BROKERS --data DIR [--store URL] [--blobs URL] [--config FILE] [options]",
    .about = "A member of the Kafka consumer group on training-jobs: trains each job and writes the model\n"
             "to the blobs (docs/bus.md).\n",
    WS_CLI_SPEC_ROWS(rows),
};

static atomic_bool stopping;

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    WS_LOG(WS_LOG_INFO, "worker.stopping", sig == SIGINT ? "SIGINT received" : "SIGTERM received");
    atomic_store(&stopping, true);
    return NULL;
}

/* --metrics-listen: /healthz (200 while running, 503 once stopping) and /metrics. */
typedef struct worker_http {
    ws_metrics *metrics;
    ws_proc_metrics pm;
    ws_http_server *srv;
} worker_http;

static int h_healthz(ws_http_ctx *ctx)
{
    bool stop = atomic_load(&stopping);
    ctx->status = stop ? 503 : 200;
    ws_buf_puts(&ctx->out, stop ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}");
    return 0;
}

static int h_metrics(ws_http_ctx *ctx)
{
    worker_http *h = ctx->app;
    ctx->content_type = "text/plain; version=0.0.4; charset=utf-8";
    ws_proc_metrics_refresh(&h->pm);
    ws_metrics_render(h->metrics, &ctx->out);
    return 0;
}

static const ws_http_route http_routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0},
    {"GET", "/metrics", h_metrics, 0, 0},
};

static int start_http(worker_http *h, const char *listen, ws_error *err)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || atoi(colon + 1) < 0 || atoi(colon + 1) > 65535)
        return ws_error_set(err, WS_EINVAL, "expected HOST:PORT, got '%s'", listen);
    char host[128];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    h->metrics = ws_metrics_new();
    ws_proc_metrics_register(h->metrics, &h->pm, "worker", true);
    ws_http_config hc = {.host = host,
                         .port = atoi(colon + 1),
                         .threads = 1,
                         .routes = http_routes,
                         .n_routes = sizeof http_routes / sizeof http_routes[0],
                         .app = h,
                         .metrics = h->metrics};
    int rc = ws_http_server_new(&hc, &h->srv, err);
    if (rc == 0)
        rc = ws_http_server_start(h->srv, err);
    return rc;
}

static void stop_http(worker_http *h)
{
    if (h->srv) {
        ws_http_server_stop(h->srv);
        ws_http_server_wait(h->srv);
    }
    ws_http_server_free(h->srv);
    ws_metrics_free(h->metrics);
    memset(h, 0, sizeof *h);
}

/* Opens the store (checking its schema is this binary's), the blobs, the engine and the bus. */
static int open_all(const worker_opts *o, char **store_url, ws_blobs **blobs, ws_ai **ai, ws_bus **bus,
                    const char *worker_id, ws_error *err)
{
    int rc;
    ws_store *st = NULL;
    if ((rc = ws_store_open_for(o->data, o->store, NULL, &st, err)))
        return rc;
    int version = 0, latest = 0;
    rc = ws_store_schema_version(st, &version, &latest, err);
    ws_store_close(st);
    if (rc)
        return rc;
    if (version != latest)
        return ws_error_set(err, WS_ECONFLICT,
                            "the database is at schema %d, this binary needs %d: run migrate", version,
                            latest);
    if (o->store) {
        *store_url = ws_xstrdup(o->store);
    } else if (!(*store_url = ws_store_url_for_data_dir(o->data, err))) {
        return WS_EIO;
    }
    if ((rc = ws_blobs_open(o->blobs.url, o->data, blobs, err)))
        return rc;
    ws_buf mr = WS_BUF_INIT;
    ws_buf_printf(&mr, "%s/models", o->data);
    ws_ai_local_opts ao = {.base_model = ws_cli_resolve_base(o->base_model, false),
                           .default_budget_s = o->train_budget,
                           .blobs = *blobs};
    rc = ws_ai_local_new(mr.data, &ao, ai, err);
    ws_buf_free(&mr);
    if (rc)
        return rc;
    ws_bus_kafka_config kc = {.brokers = o->kafka,
                              .client_id = worker_id,
                              .partitions = o->partitions,
                              .session_timeout_ms = o->session_timeout_ms};
    return ws_bus_kafka_new(&kc, bus, err);
}

int ws_cmd_worker(int argc, char **argv)
{
    worker_opts o = {.nn_threads = -1};
    bool tracing = false;
    char *store_url = NULL, *work = NULL, worker_id[128];
    ws_blobs *blobs = NULL;
    ws_ai *ai = NULL;
    ws_bus *bus = NULL;
    ws_error err = {0};
    worker_http http = {0};
    int pr = ws_cli_parse(&ws_cli_spec_worker, argc, argv, &o, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_cli_blobs_apply(&o.blobs);
    ws_cli_engine_apply(o.nn_threads, o.minilm_dir);
    int ret = 1;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(worker_id, sizeof worker_id, "%s", o.worker_id ? o.worker_id : "");
    if (!o.worker_id)
        snprintf(worker_id, sizeof worker_id, "worker-%.60s-%ld", host, (long)getpid());
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (open_all(&o, &store_url, &blobs, &ai, &bus, worker_id, &err)) {
        WS_LOG(WS_LOG_ERROR, "worker.start_failed", err.msg, WS_LF_S("error.type", ws_strerror(err.code)));
        fprintf(stderr, "whatstyle worker: %s\n", err.msg);
        goto out;
    }
    if (o.check) {
        printf("ok\n");
        ret = 0;
        goto out;
    }
    int tr = ws_cli_tracing_start("worker", o.otlp_endpoint, o.trace_ratio, "whatstyle-worker");
    if (tr < 0)
        goto out;
    tracing = tr == 1;
    ws_buf wb = WS_BUF_INIT;
    ws_buf_printf(&wb, "%s/work", o.data);
    work = ws_buf_take(&wb);
    if (ws_file_make_dirs(work, &err)) {
        fprintf(stderr, "whatstyle worker: %s\n", err.msg);
        goto out;
    }
    if (o.metrics_listen && start_http(&http, o.metrics_listen, &err)) {
        fprintf(stderr, "whatstyle worker: --metrics-listen: %s\n", err.msg);
        goto out;
    }
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_main, &set);
    pthread_detach(sig_thread);
    ws_worker_config wc = {.store_url = store_url,
                           .bus = bus,
                           .blobs = blobs,
                           .ai = ai,
                           .work_dir = work,
                           .worker_id = worker_id,
                           .group = o.group,
                           .lease_ms = o.lease_ms,
                           .checkpoint_every_s = o.checkpoint_s,
                           .max_export_bytes = (size_t)o.max_export_mb << 20,
                           .health_file = o.health_file,
                           .metrics = http.metrics,
                           .drain = o.drain};
    WS_LOG(WS_LOG_INFO, "worker.started", "consuming " WS_TOPIC_TRAINING_JOBS,
           WS_LF_S("worker.id", worker_id));
    if (ws_worker_run(&wc, &stopping, &err)) {
        WS_LOG(WS_LOG_ERROR, "worker.failed", err.msg);
        goto out;
    }
    WS_LOG(WS_LOG_INFO, "worker.stopped", NULL, WS_LF_S("worker.id", worker_id));
    ret = 0;
out:
    stop_http(&http);
    ws_bus_free(bus);
    ws_ai_free(ai);
    ws_blobs_close(blobs);
    if (tracing)
        ws_trace_export_stop();
    free(store_url);
    free(work);
    return ret;
}
