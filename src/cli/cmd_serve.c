/* `whatstyle serve`: runs the API gateway (REST, MCP, health and metrics) until SIGTERM or
 * SIGINT, then drains requests in flight and exits.
 *
 *   whatstyle serve --port P --data DIR [--config FILE] [--host H] [--threads N]
 *                   [--store URL] [--cache URL] [--blobs URL] [--tls-cert PEM --tls-key PEM]
 *
 * Settings (the table below; docs/configuration.md): command line, then the environment
 * (WS_STORE_URL, WS_CACHE_URL, ...), then the config file, then the defaults. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/mem.h"
#include "ai/ai_grpc.h"
#include "ai/ai_local.h"
#include "blobs/blobs.h"
#include "bus/bus.h"
#include "bus/relay.h"
#include "store/store.h"
#include <unistd.h>
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/trace_export.h"
#include "server/server.h"

typedef struct serve_opts {
    const char *host, *data, *store, *store_replica, *cache, *tls_cert, *tls_key, *allowed_origins,
        *base_model, *otlp_endpoint, *minilm_dir;
    const char *wa_secret_file, *wa_secret, *wa_verify_token, *wa_graph_url, *wa_graph_version;
    const char *ai;                       /* --ai grpc://h1:p1,h2:p2: replies from `whatstyle ai` nodes */
    const char *ai_ca, *ai_cert, *ai_key; /* --ai grpcs://: the nodes' CAs, our client certificate */
    const char *kafka;                    /* --kafka BROKERS: the outbox relay and training on workers */
    int kafka_partitions;
    int port, threads, key_rate_limit, user_rate_limit, max_export_mb, store_connections, keepalive_ms,
        head_timeout_ms, wa_number_rate, wa_recipient_gap_ms, ai_timeout_ms, uv_threadpool, nn_threads;
    double train_budget, trace_ratio;
    bool no_training, allow_signup;
    ws_cli_blobs blobs;
} serve_opts;

#define F(field) offsetof(serve_opts, field)
static const ws_opt rows[] = {
    {.name = "port",
     .kind = WS_OPT_INT,
     .off = F(port),
     .lo = 0,
     .hi = 65535,
     .dflt = "0",
     .arg = "P",
     .help = "listen port (0: a free one, logged)"},
    {.name = "host",
     .kind = WS_OPT_STR,
     .off = F(host),
     .dflt = "0.0.0.0",
     .arg = "H",
     .help = "listen address"},
    WS_CLI_ROW_DATA(serve_opts, data, WS_OPTF_REQUIRED),
    {.name = "threads",
     .kind = WS_OPT_INT,
     .off = F(threads),
     .lo = 0,
     .hi = 256,
     .dflt = "0",
     .arg = "N",
     .help = "event loops (0: one per core)"},
    {.name = "uv-threadpool-size",
     .kind = WS_OPT_INT,
     .off = F(uv_threadpool),
     .lo = 1,
     .hi = 1024,
     .dflt = "16",
     .env = "UV_THREADPOOL_SIZE",
     .arg = "N",
     .help = "libuv's pool, where handlers wait on the store and the AI"},
    WS_CLI_ROW_STORE(serve_opts, store),
    {.name = "store-replica",
     .kind = WS_OPT_STR,
     .off = F(store_replica),
     .env = "WS_STORE_REPLICA_URL",
     .arg = "URL",
     .help = "PostgreSQL read replica"},
    {.name = "store-connections",
     .kind = WS_OPT_INT,
     .off = F(store_connections),
     .lo = 1,
     .hi = 256,
     .dflt = "8",
     .arg = "N",
     .help = "store pool size"},
    {.name = "cache",
     .kind = WS_OPT_STR,
     .off = F(cache),
     .env = "WS_CACHE_URL",
     .arg = "URL",
     .help = "memory (the default) or redis://host:port"},
    WS_CLI_ROWS_BLOBS(serve_opts, blobs),
    {.name = "tls-cert",
     .kind = WS_OPT_STR,
     .off = F(tls_cert),
     .arg = "PEM",
     .help = "serve TLS 1.3 with this certificate (with --tls-key)"},
    {.name = "tls-key", .kind = WS_OPT_STR, .off = F(tls_key), .arg = "PEM", .help = "the certificate's key"},
    {.name = "key-rate-limit",
     .kind = WS_OPT_INT,
     .off = F(key_rate_limit),
     .lo = 0,
     .hi = 1e8,
     .dflt = "120",
     .arg = "N",
     .help = "requests/minute for keys without their own"},
    {.name = "user-rate-limit",
     .kind = WS_OPT_INT,
     .off = F(user_rate_limit),
     .lo = 0,
     .hi = 1e8,
     .dflt = "600",
     .arg = "N",
     .help = "requests/minute per user over all keys"},
    {.name = "max-export-mb",
     .kind = WS_OPT_INT,
     .off = F(max_export_mb),
     .lo = 1,
     .hi = 4096,
     .dflt = "64",
     .arg = "N",
     .help = "upload cap"},
    {.name = "allowed-origins",
     .kind = WS_OPT_STR,
     .off = F(allowed_origins),
     .arg = "LIST",
     .help = "Origins accepted at /mcp besides localhost"},
    {.name = "keepalive-ms",
     .kind = WS_OPT_INT,
     .off = F(keepalive_ms),
     .lo = 1,
     .hi = 86400000,
     .dflt = "120000",
     .arg = "N",
     .help = "idle keep-alive timeout"},
    {.name = "head-timeout-ms",
     .kind = WS_OPT_INT,
     .off = F(head_timeout_ms),
     .lo = 1,
     .hi = 3600000,
     .dflt = "10000",
     .arg = "N",
     .help = "a request head must arrive within"},
    {.name = "no-training",
     .kind = WS_OPT_FLAG,
     .off = F(no_training),
     .help = "do not run the training worker here"},
    {.name = "allow-signup",
     .kind = WS_OPT_FLAG,
     .off = F(allow_signup),
     .help = "let the dashboard create users (rate-limited per address)"},
    WS_CLI_ROW_BASE_MODEL(serve_opts, base_model),
    WS_CLI_ROW_TRAIN_BUDGET(serve_opts, train_budget),
    WS_CLI_ROW_NN_THREADS(serve_opts, nn_threads),
    WS_CLI_ROW_MINILM_DIR(serve_opts, minilm_dir),
    {.name = "whatsapp-app-secret-file",
     .kind = WS_OPT_STR,
     .off = F(wa_secret_file),
     .arg = "FILE",
     .help = "file holding the Meta app secret (webhook signatures)"},
    {.name = "whatsapp-app-secret",
     .kind = WS_OPT_STR,
     .off = F(wa_secret),
     .env = "WS_WHATSAPP_APP_SECRET",
     .flags = WS_OPTF_SECRET,
     .arg = "SECRET",
     .help = "the Meta app secret itself (if no secret file)"},
    {.name = "whatsapp-verify-token",
     .kind = WS_OPT_STR,
     .off = F(wa_verify_token),
     .env = "WS_WHATSAPP_VERIFY_TOKEN",
     .arg = "T",
     .help = "the webhook verification token"},
    {.name = "whatsapp-graph-url",
     .kind = WS_OPT_STR,
     .off = F(wa_graph_url),
     .arg = "URL",
     .help = "Graph API base (default https://graph.facebook.com)"},
    {.name = "whatsapp-graph-version",
     .kind = WS_OPT_STR,
     .off = F(wa_graph_version),
     .arg = "V",
     .help = "Graph API version (default v21.0)"},
    {.name = "whatsapp-number-rate",
     .kind = WS_OPT_INT,
     .off = F(wa_number_rate),
     .lo = 1,
     .hi = 1000,
     .arg = "N",
     .help = "messages/s per business number (default 80)"},
    {.name = "whatsapp-recipient-gap-ms",
     .kind = WS_OPT_INT,
     .off = F(wa_recipient_gap_ms),
     .lo = 1,
     .hi = 3600000,
     .arg = "N",
     .help = "least gap between replies to one contact (default 6000)"},
    {.name = "ai",
     .kind = WS_OPT_STR,
     .off = F(ai),
     .arg = "grpc://H:P[,H:P]",
     .help = "reply from `whatstyle ai` nodes (consistent hashing, failover); training stays here "
             "(default: the in-process engine)"},
    {.name = "ai-timeout-ms",
     .kind = WS_OPT_INT,
     .off = F(ai_timeout_ms),
     .lo = 1,
     .hi = 600000,
     .dflt = "5000",
     .arg = "N",
     .help = "time budget of one call to the AI nodes; a request's X-Request-Timeout-Ms header shortens it "
             "(504 when it runs out)"},
    {.name = "ai-ca",
     .kind = WS_OPT_STR,
     .off = F(ai_ca),
     .arg = "PEM",
     .help = "with --ai grpcs://H:P,...: the CAs of the nodes' certificates (default: the system's); names "
             "and addresses are verified"},
    {.name = "ai-cert",
     .kind = WS_OPT_STR,
     .off = F(ai_cert),
     .arg = "PEM",
     .help = "client certificate for AI nodes that require one (mTLS, with --ai-key)"},
    {.name = "ai-key",
     .kind = WS_OPT_STR,
     .off = F(ai_key),
     .arg = "PEM",
     .help = "the client certificate's key"},
    {.name = "kafka",
     .kind = WS_OPT_STR,
     .off = F(kafka),
     .env = "WS_KAFKA_BROKERS",
     .arg = "BROKERS",
     .help = "host:port[,...]: publish the outbox to Kafka (relay), train on `whatstyle worker`s, not here; "
             "consume training-events (model reloads). Default: train in-process"},
    WS_CLI_ROW_KAFKA_PARTITIONS(serve_opts, kafka_partitions),
    WS_CLI_ROWS_TRACING(serve_opts, otlp_endpoint, trace_ratio),
};
#undef F

const ws_cli_spec ws_cli_spec_serve = {
    .name = "serve",
    .synopsis = "--port P --data DIR [--config FILE] [options]",
    .about = "Logs: JSON lines on stdout (text on a terminal). Clones live in the blobs; DIR/models holds\n"
             "private scratch (the layout of `whatstyle train`).\n",
    WS_CLI_SPEC_ROWS(rows),
};

/* The WhatsApp settings: the app secret from --whatsapp-app-secret-file (a file whose
 * trailing newline is dropped) or WS_WHATSAPP_APP_SECRET (*secret: malloc'd), the rest as
 * given. */
static int wa_settings(const serve_opts *o, ws_server_config *cfg, char **secret)
{
    if (o->wa_secret_file) {
        char *data = NULL;
        size_t len = 0;
        ws_error err = {0};
        if (ws_file_read(o->wa_secret_file, 4096, &data, &len, &err) != 0) {
            fprintf(stderr, "whatstyle serve: --whatsapp-app-secret-file: %s\n", err.msg);
            return -1;
        }
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
            len--;
        *secret = ws_xstrndup(data, len);
        memset(data, 0, len);
        free(data);
    } else if (o->wa_secret) {
        *secret = ws_xstrdup(o->wa_secret);
    }
    if (*secret && !**secret) {
        fprintf(stderr, "whatstyle serve: the WhatsApp app secret is empty\n");
        return -1;
    }
    cfg->whatsapp_app_secret = *secret;
    cfg->whatsapp_verify_token = o->wa_verify_token;
    cfg->whatsapp_graph_url = o->wa_graph_url;
    cfg->whatsapp_graph_version = o->wa_graph_version;
    cfg->whatsapp_number_rate = o->wa_number_rate;
    cfg->whatsapp_recipient_gap_ms = o->wa_recipient_gap_ms;
    return 0;
}

/* The kind of backend a URL names: its scheme only (a URL may carry a password). */
static const char *url_kind(const char *url, const char *dflt, char *buf, size_t cap)
{
    if (!url || !*url)
        return dflt;
    size_t n = strcspn(url, ":");
    if (!url[n] || n >= cap)
        return "file";
    memcpy(buf, url, n);
    buf[n] = '\0';
    return buf;
}

/* The configuration summary at start-up: backends by kind, limits, no secrets. */
static void log_config(const ws_server_config *cfg, int export_mb)
{
    char k1[32], k2[32], k3[32];
    WS_LOG(WS_LOG_INFO, "server.config", "configuration",
           WS_LF_S("config.store", url_kind(cfg->store_url, "sqlite", k1, sizeof k1)),
           WS_LF_B("config.store_replica", cfg->store_replica_url != NULL),
           WS_LF_S("config.cache", url_kind(cfg->cache_url, "memory", k2, sizeof k2)),
           WS_LF_S("config.blobs", url_kind(cfg->blobs_url, "file", k3, sizeof k3)),
           WS_LF_I("config.threads", cfg->threads), WS_LF_B("config.tls", cfg->tls_cert != NULL),
           WS_LF_I("config.key_rate_limit", cfg->key_rate_limit),
           WS_LF_I("config.user_rate_limit", cfg->user_rate_limit),
           WS_LF_I("config.max_export_mb", export_mb),
           WS_LF_I("config.store_connections", cfg->store_connections),
           WS_LF_B("config.training", !cfg->no_training));
}

/* `--kafka`: the bus, the outbox relay and the training events consumer. */
typedef struct serve_bus {
    ws_bus *bus;
    ws_relay *relay;
    ws_srv_bus *events;
} serve_bus;

static int start_bus(const serve_opts *o, ws_server *srv, serve_bus *k)
{
    ws_error err = {0};
    char id[96], host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(id, sizeof id, "whatstyle-gateway-%.60s-%ld", host, (long)getpid());
    ws_bus_kafka_config kc = {.brokers = o->kafka, .client_id = id, .partitions = o->kafka_partitions};
    char *url = o->store ? ws_xstrdup(o->store) : ws_store_url_for_data_dir(o->data, &err);
    int rc = url ? ws_bus_kafka_new(&kc, &k->bus, &err) : WS_EIO;
    if (rc == 0)
        rc = ws_relay_start(&(ws_relay_config){.store_url = url, .bus = k->bus}, &k->relay, &err);
    if (rc == 0)
        rc = ws_server_bus_start(srv, k->bus, id, &k->events, &err);
    free(url);
    if (rc)
        WS_LOG(WS_LOG_ERROR, "server.kafka_failed", err.msg, WS_LF_S("error.type", ws_strerror(rc)));
    else
        WS_LOG(WS_LOG_INFO, "server.kafka_started", "outbox relay and training events on Kafka");
    return rc;
}

static void stop_bus(serve_bus *k)
{
    ws_server_bus_stop(k->events);
    ws_relay_stop(k->relay);
    ws_bus_free(k->bus);
    memset(k, 0, sizeof *k);
}

int ws_cmd_serve(int argc, char **argv)
{
    serve_opts o = {.nn_threads = -1};
    int ret = 2;
    ws_server *srv = NULL;
    ws_ai *ai = NULL;
    ws_blobs *ai_blobs = NULL;      /* the AI's own handle on the blobs: where trained models are kept */
    ws_jwt_key *service_key = NULL; /* DATA/service-ed25519.pem: signs the tokens of AI calls */
    char *wa_secret = NULL;         /* the WhatsApp app secret (file or WS_WHATSAPP_APP_SECRET) */
    bool tracing = false;
    serve_bus kafka = {0};
    int pr = ws_cli_parse(&ws_cli_spec_serve, argc, argv, &o, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_cli_blobs_apply(&o.blobs);
    ws_cli_engine_apply(o.nn_threads, o.minilm_dir);
    /* libuv reads its pool size from the environment at first use: handlers block on the
     * store and the AI, so give the pool room before the server starts */
    char pool[16];
    snprintf(pool, sizeof pool, "%d", o.uv_threadpool);
    setenv("UV_THREADPOOL_SIZE", pool, 1);
    ws_server_config cfg = {.data_dir = o.data,
                            .store_url = o.store,
                            .store_replica_url = o.store_replica,
                            .cache_url = o.cache,
                            .blobs_url = o.blobs.url,
                            .host = o.host,
                            .port = o.port,
                            .threads = o.threads,
                            .tls_cert = o.tls_cert,
                            .tls_key = o.tls_key,
                            .allowed_origins = o.allowed_origins,
                            .key_rate_limit = o.key_rate_limit,
                            .user_rate_limit = o.user_rate_limit,
                            .max_export_bytes = (size_t)o.max_export_mb << 20,
                            .store_connections = o.store_connections,
                            .keepalive_timeout_ms = o.keepalive_ms,
                            .head_timeout_ms = o.head_timeout_ms,
                            .no_training = o.no_training || o.kafka,
                            .allow_signup = o.allow_signup};
    int mb = o.max_export_mb;
    if (wa_settings(&o, &cfg, &wa_secret) != 0)
        goto out;
    if (!!cfg.tls_cert != !!cfg.tls_key) {
        fprintf(stderr, "whatstyle serve: --tls-cert and --tls-key go together\n");
        goto out;
    }
    /* The AI engine: the in-process style clone (src/ai/ai_local.h); trained models are kept
     * encrypted in the blobs (as the uploads are), DATA/models only holds private scratch. */
    {
        ws_buf mr = WS_BUF_INIT;
        ws_buf_printf(&mr, "%s/models", o.data);
        ws_error aerr = {0};
        if (ws_blobs_open(cfg.blobs_url, o.data, &ai_blobs, &aerr) != 0) {
            fprintf(stderr, "whatstyle serve: %s\n", aerr.msg);
            ws_buf_free(&mr);
            goto out;
        }
        ws_ai_local_opts ao = {.base_model = ws_cli_resolve_base(o.base_model, false),
                               .default_budget_s = o.train_budget,
                               .blobs = ai_blobs};
        if (ws_ai_local_new(mr.data, &ao, &ai, &aerr) != 0) {
            fprintf(stderr, "whatstyle serve: %s\n", aerr.msg);
            ws_buf_free(&mr);
            goto out;
        }
        ws_buf_free(&mr);
        int ai_ms = o.ai_timeout_ms;
        /* the gateway's service key: signs the AI calls' tokens, published as JWKS */
        ws_buf kp = WS_BUF_INIT;
        ws_buf_printf(&kp, "%s/" WS_SERVICE_KEY_FILE, o.data);
        int krc = ws_jwt_key_load_or_create(kp.data, &service_key, &aerr);
        ws_buf_free(&kp);
        if (krc) {
            fprintf(stderr, "whatstyle serve: service key: %s\n", aerr.msg);
            goto out;
        }
        cfg.service_key = service_key;
        ws_ai_grpc_opts go = {.budget_s = ai_ms / 1000.0,
                              .sign_key = service_key,
                              .tls_ca = o.ai_ca,
                              .tls_cert = o.ai_cert,
                              .tls_key = o.ai_key};
        if (o.ai && ws_ai_grpc_new(o.ai, ai, &go, &ai, &aerr)) {
            fprintf(stderr, "whatstyle serve: %s\n", aerr.msg);
            ai = NULL; /* ws_ai_grpc_new freed the local engine */
            goto out;
        }
        cfg.ai = ai;
    }

    /* signals are taken by sigwait below; every thread started from here inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ws_error err = {0};
    int tr = ws_cli_tracing_start("serve", o.otlp_endpoint, o.trace_ratio, "whatstyle-serve");
    if (tr < 0)
        goto out;
    tracing = tr == 1;
    if (ws_server_new(&cfg, &srv, &err) != 0 || ws_server_start(srv, &err) != 0) {
        WS_LOG(WS_LOG_ERROR, "server.start_failed", err.msg, WS_LF_S("error.type", ws_strerror(err.code)));
        ret = 1;
        goto out;
    }
    if (o.kafka && start_bus(&o, srv, &kafka) != 0) {
        ret = 1;
        goto out;
    }
    log_config(&cfg, mb);
    ws_log_fmt(WS_LOG_INFO, "server.started", "listening on %s:%d (%s)", cfg.host ? cfg.host : "0.0.0.0",
               ws_server_port(srv), cfg.tls_cert ? "https" : "http");
    int sig = 0;
    sigwait(&set, &sig);
    ws_log_fmt(WS_LOG_INFO, "server.draining", "%s received, draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ws_server_stop(srv);
    ws_server_wait(srv);
    stop_bus(&kafka); /* after the server: the outbox rows of the last requests go out */
    ws_log_write(WS_LOG_INFO, "server.stopped", "stopped", NULL, 0);
    ret = 0;
out:
    stop_bus(&kafka);
    ws_server_free(srv);
    if (wa_secret)
        memset(wa_secret, 0, strlen(wa_secret));
    free(wa_secret);
    if (tracing)
        ws_trace_export_stop(); /* after the server: its last spans go out too */
    ws_ai_free(ai);
    ws_jwt_key_free(service_key);
    ws_blobs_close(ai_blobs);
    return ret;
}
