/* `whatstyle worker`: a training worker of the cluster (src/bus/worker.h) — a member of the
 * Kafka consumer group on training-jobs that trains each job and writes the model to the blobs.
 *
 *   whatstyle worker --config FILE | --kafka BROKERS --database-url URL --data DIR [options]
 *   whatstyle worker --check ...   (connects to the database, the blobs and Kafka, then exits 0)
 *
 * Settings come from the command line, then the environment (WS_KAFKA_BROKERS, WS_STORE_URL,
 * WS_BLOBS_URL), then the config file ("key = value" lines as for serve). */
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
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace_export.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "store/store.h"

typedef struct worker_opts {
    char *kafka, *database_url, *blobs, *data, *worker_id, *group, *partitions, *lease_ms, *checkpoint_s,
        *base_model, *train_budget, *session_timeout_ms, *max_export_mb, *health_file, *otlp_endpoint,
        *trace_ratio, *metrics_listen;
} worker_opts;

static const struct {
    const char *name;
    size_t offset;
} rows[] = {
    {"kafka", offsetof(worker_opts, kafka)},
    {"database-url", offsetof(worker_opts, database_url)},
    {"store", offsetof(worker_opts, database_url)},
    {"blobs", offsetof(worker_opts, blobs)},
    {"data", offsetof(worker_opts, data)},
    {"worker-id", offsetof(worker_opts, worker_id)},
    {"group", offsetof(worker_opts, group)},
    {"partitions", offsetof(worker_opts, partitions)},
    {"lease-ms", offsetof(worker_opts, lease_ms)},
    {"checkpoint-s", offsetof(worker_opts, checkpoint_s)},
    {"base-model", offsetof(worker_opts, base_model)},
    {"train-budget", offsetof(worker_opts, train_budget)},
    {"session-timeout-ms", offsetof(worker_opts, session_timeout_ms)},
    {"max-export-mb", offsetof(worker_opts, max_export_mb)},
    {"health-file", offsetof(worker_opts, health_file)},
    {"otlp-endpoint", offsetof(worker_opts, otlp_endpoint)},
    {"trace-ratio", offsetof(worker_opts, trace_ratio)},
    {"metrics-listen", offsetof(worker_opts, metrics_listen)},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle worker [--config FILE] [--check] [options]\n"
               "  --kafka BROKERS         host:port[,host:port] (env WS_KAFKA_BROKERS; required)\n"
               "  --database-url URL      postgres://... (env WS_STORE_URL; default SQLite in --data)\n"
               "  --blobs URL             where exports and models are (as for serve; env WS_BLOBS_URL)\n"
               "  --data DIR              private scratch and the blobs' master key (required)\n"
               "  --worker-id ID          unique name (default worker-<host>-<pid>)\n"
               "  --group NAME            consumer group (default " WS_WORKER_GROUP ")\n"
               "  --partitions N          partitions of topics it creates (3)\n"
               "  --lease-ms N            a job's holder silent this long is presumed dead (15000)\n"
               "  --checkpoint-s S        seconds between training checkpoints copied to the blobs (10)\n"
               "  --session-timeout-ms N  consumer group liveness (10000)\n"
               "  --base-model PATH       as for serve (default the installed base; none: from scratch)\n"
               "  --train-budget S        seconds per job when the job gives none (90)\n"
               "  --max-export-mb N       largest export fetched (64)\n"
               "  --health-file PATH      rewritten every half second with the worker's state (JSON)\n"
               "  --otlp-endpoint URL     export traces (env OTEL_EXPORTER_OTLP_ENDPOINT)\n"
               "  --trace-ratio R         share of new traces recorded (0.01)\n"
               "  --metrics-listen H:P    serve GET /healthz and /metrics (Prometheus) there\n"
               "  --drain                 exit once no job came for 10 s (a batch run, e.g. a CronJob)\n"
               "  --check                 connect to everything, print ok and exit (a health check)\n");
}

static char **slot_of(worker_opts *o, const char *name)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        char alt[64];
        snprintf(alt, sizeof alt, "%s", rows[i].name);
        for (char *p = alt; *p; p++)
            if (*p == '-')
                *p = '_';
        if (!strcmp(rows[i].name, name) || !strcmp(alt, name))
            return (char **)((char *)o + rows[i].offset);
    }
    return NULL;
}

static int set_from_config(void *arg, const char *key, const char *value)
{
    char **slot = slot_of(arg, key);
    if (!slot)
        return -1;
    if (!*slot)
        *slot = ws_xstrdup(value);
    return 0;
}

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

/* Parses argv into o; 0, 1 (bad usage) or 2 (--help). */
static int parse_args(int argc, char **argv, worker_opts *o, const char **config, bool *check, bool *drain)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--drain")) {
            *drain = true;
            continue;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 2;
        }
        if (!strcmp(argv[i], "--check")) {
            *check = true;
            continue;
        }
        char **slot = NULL;
        if (!strncmp(argv[i], "--", 2) && i + 1 < argc && !strcmp(argv[i], "--config")) {
            *config = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--", 2) || i + 1 >= argc || !(slot = slot_of(o, argv[i] + 2))) {
            fprintf(stderr, "whatstyle worker: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 1;
        }
        free(*slot);
        *slot = ws_xstrdup(argv[++i]);
    }
    const struct {
        const char *env;
        char **slot;
    } envs[] = {{"WS_KAFKA_BROKERS", &o->kafka},
                {"WS_STORE_URL", &o->database_url},
                {"WS_BLOBS_URL", &o->blobs},
                {"OTEL_EXPORTER_OTLP_ENDPOINT", &o->otlp_endpoint},
                {"WS_TRACE_RATIO", &o->trace_ratio}};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *v = getenv(envs[i].env);
        if (v && *v && !*envs[i].slot)
            *envs[i].slot = ws_xstrdup(v);
    }
    if (*config && ws_cli_read_config(*config, "worker", set_from_config, o))
        return 1;
    if (!o->kafka || !o->data) {
        fprintf(stderr, "whatstyle worker: --kafka BROKERS and --data DIR are required\n");
        return 1;
    }
    return 0;
}

static int num(const char *s, double dflt)
{
    return s ? atoi(s) : (int)dflt;
}

/* Opens the store (checking its schema is this binary's), the blobs, the engine and the bus. */
static int open_all(const worker_opts *o, char **store_url, ws_blobs **blobs, ws_ai **ai, ws_bus **bus,
                    const char *worker_id, ws_error *err)
{
    int rc;
    ws_store *st = NULL;
    if ((rc = ws_store_open_for(o->data, o->database_url, NULL, &st, err)))
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
    if (o->database_url) {
        *store_url = ws_xstrdup(o->database_url);
    } else if (!(*store_url = ws_store_url_for_data_dir(o->data, err))) {
        return WS_EIO;
    }
    if ((rc = ws_blobs_open(o->blobs, o->data, blobs, err)))
        return rc;
    ws_buf mr = WS_BUF_INIT;
    ws_buf_printf(&mr, "%s/models", o->data);
    ws_ai_local_opts ao = {.base_model = ws_cli_resolve_base(o->base_model, false),
                           .default_budget_s = o->train_budget ? strtod(o->train_budget, NULL) : 0,
                           .blobs = *blobs};
    rc = ws_ai_local_new(mr.data, &ao, ai, err);
    ws_buf_free(&mr);
    if (rc)
        return rc;
    ws_bus_kafka_config kc = {.brokers = o->kafka,
                              .client_id = worker_id,
                              .partitions = num(o->partitions, 3),
                              .session_timeout_ms = num(o->session_timeout_ms, 10000)};
    return ws_bus_kafka_new(&kc, bus, err);
}

/* --otlp-endpoint: the trace exporter (*on = true once started). */
static int start_tracing(const worker_opts *o, bool *on)
{
    if (!o->otlp_endpoint || !*o->otlp_endpoint)
        return 0;
    ws_error err = {0};
    ws_trace_export_opts to = {.endpoint = o->otlp_endpoint,
                               .service_name = "whatstyle-worker",
                               .ratio = o->trace_ratio ? strtod(o->trace_ratio, NULL) : 0.01};
    if (ws_trace_export_start(&to, &err)) {
        fprintf(stderr, "whatstyle worker: tracing: %s\n", err.msg);
        return -1;
    }
    *on = true;
    return 0;
}

int ws_cmd_worker(int argc, char **argv)
{
    worker_opts o = {0};
    const char *config = NULL;
    bool check = false, tracing = false;
    char *store_url = NULL, *work = NULL, worker_id[128];
    ws_blobs *blobs = NULL;
    ws_ai *ai = NULL;
    ws_bus *bus = NULL;
    ws_error err = {0};
    bool drain = false;
    worker_http http = {0};
    int ret = parse_args(argc, argv, &o, &config, &check, &drain);
    if (ret)
        goto out;
    ret = 1;
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
    if (check) {
        printf("ok\n");
        ret = 0;
        goto out;
    }
    if (start_tracing(&o, &tracing) != 0)
        goto out;
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
                           .lease_ms = num(o.lease_ms, 15000),
                           .checkpoint_every_s = o.checkpoint_s ? strtod(o.checkpoint_s, NULL) : 10,
                           .max_export_bytes = (size_t)num(o.max_export_mb, 64) << 20,
                           .health_file = o.health_file,
                           .metrics = http.metrics,
                           .drain = drain};
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
    for (size_t i = 0; i < N_ROWS; i++) {
        char **s = (char **)((char *)&o + rows[i].offset);
        free(*s);
        *s = NULL; /* "store" and "database-url" share a slot */
    }
    return ret == 2 ? 0 : ret;
}
