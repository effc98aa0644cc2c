/* `whatstyle serve`: runs the API gateway (REST, MCP, health and metrics) until SIGTERM or
 * SIGINT, then drains requests in flight and exits.
 *
 *   whatstyle serve --port P --data DIR [--config FILE] [--host H] [--threads N]
 *                   [--store URL] [--cache URL] [--blobs URL] [--tls-cert PEM --tls-key PEM]
 *
 * Settings come from the command line, then the environment (WS_STORE_URL, WS_CACHE_URL,
 * WS_STORE_REPLICA_URL), then the config file ("key = value" lines, '#' comments; keys as the
 * long options without dashes, e.g. "cache = redis://127.0.0.1:6379"). */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
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
    char *blobs; /* --blobs URL (blobs/blobs.h) */
    char *port, *host, *threads, *data, *store, *store_replica, *cache, *tls_cert, *tls_key, *key_rate_limit,
        *user_rate_limit, *max_export_mb, *allowed_origins, *store_connections, *keepalive_ms,
        *head_timeout_ms, *no_training, *base_model, *train_budget, *otlp_endpoint,
        *trace_ratio;
    char *wa_secret_file, *wa_verify_token, *wa_graph_url, *wa_graph_version, *wa_number_rate, *wa_recipient_gap_ms;
    char *ai, *ai_timeout_ms; /* --ai grpc://h1:p1,h2:p2: replies from `whatstyle ai` nodes */
    char *ai_ca, *ai_cert, *ai_key; /* --ai grpcs://: the nodes' CAs, our client certificate */
    char *kafka, *kafka_partitions; /* --kafka BROKERS: the outbox relay and training on workers */
} serve_opts;

typedef struct opt_row {
    const char *name;
    size_t offset;
} opt_row;

#define O(field, name)                                                                                       \
    {                                                                                                        \
        name, offsetof(serve_opts, field)                                                                    \
    }
static const opt_row opt_rows[] = {
    O(port, "port"),
    O(host, "host"),
    O(threads, "threads"),
    O(data, "data"),
    O(store, "store"),
    O(store_replica, "store-replica"),
    O(cache, "cache"),
    O(blobs, "blobs"),
    O(tls_cert, "tls-cert"),
    O(tls_key, "tls-key"),
    O(key_rate_limit, "key-rate-limit"),
    O(user_rate_limit, "user-rate-limit"),
    O(max_export_mb, "max-export-mb"),
    O(allowed_origins, "allowed-origins"),
    O(store_connections, "store-connections"),
    O(keepalive_ms, "keepalive-ms"),
    O(head_timeout_ms, "head-timeout-ms"),
    O(no_training, "no-training"), O(base_model, "base-model"), O(train_budget, "train-budget"),
    O(wa_secret_file, "whatsapp-app-secret-file"), O(wa_verify_token, "whatsapp-verify-token"),
    O(wa_graph_url, "whatsapp-graph-url"), O(wa_graph_version, "whatsapp-graph-version"),
    O(wa_number_rate, "whatsapp-number-rate"), O(wa_recipient_gap_ms, "whatsapp-recipient-gap-ms"),
    O(ai, "ai"), O(ai_timeout_ms, "ai-timeout-ms"), O(ai_ca, "ai-ca"), O(ai_cert, "ai-cert"), O(ai_key, "ai-key"),
    O(otlp_endpoint, "otlp-endpoint"), O(trace_ratio, "trace-ratio"),
    O(kafka, "kafka"), O(kafka_partitions, "kafka-partitions"),
};

static char **opt_slot(serve_opts *o, const char *name)
{
    for (size_t i = 0; i < sizeof opt_rows / sizeof opt_rows[0]; i++) {
        if (!strcmp(opt_rows[i].name, name))
            return (char **)((char *)o + opt_rows[i].offset);
        /* config files may write keys with '_' instead of '-' */
        char alt[64];
        snprintf(alt, sizeof alt, "%s", opt_rows[i].name);
        for (char *p = alt; *p; p++)
            if (*p == '-')
                *p = '_';
        if (!strcmp(alt, name))
            return (char **)((char *)o + opt_rows[i].offset);
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: whatstyle serve --port P --data DIR [--config FILE] [options]\n"
               "  --host H               listen address (default 0.0.0.0)\n"
               "  --threads N            event loops (default: one per core)\n"
               "  --store URL            postgres://... or sqlite:PATH (default: SQLite in DIR)\n"
               "  --store-replica URL    PostgreSQL read replica\n"
               "  --cache URL            memory (default) or redis://host:port\n"
               "  --blobs URL            file:DIR or s3://HOST/BUCKET, s3+http://HOST:PORT/BUCKET\n"
               "                         (default: DIR/blobs; env WS_BLOBS_URL; S3 keys from\n"
               "                         WS_S3_ACCESS_KEY / WS_S3_SECRET_KEY, WS_S3_REGION)\n"
               "  --tls-cert PEM --tls-key PEM   serve TLS 1.3\n"
               "  --key-rate-limit N     requests/minute for keys without their own (120)\n"
               "  --user-rate-limit N    requests/minute per user over all keys (600)\n"
               "  --max-export-mb N      upload cap (64)\n"
               "  --allowed-origins LIST Origins accepted at /mcp besides localhost\n"
               "  --store-connections N  store pool size (8)\n"
               "  --keepalive-ms N       idle keep-alive timeout (120000)\n"
               "  --head-timeout-ms N    a request head must arrive within (10000)\n"
               "  --no-training          do not run the training worker here\n"
               "  --allow-signup         let the dashboard create users (rate-limited per address)\n"
               "  --base-model PATH      train LoRA clones on this base (GGUF file or model directory;\n"
               "                         default the installed SmolLM2 base; none: small models from scratch)\n"
               "  --train-budget S       seconds per training job when the request gives none (90)\n"
               "  --whatsapp-app-secret-file FILE  the Meta app secret (webhook signatures; env\n"
               "                         WS_WHATSAPP_APP_SECRET holds the secret itself)\n"
               "  --whatsapp-verify-token T  the webhook verification token (env WS_WHATSAPP_VERIFY_TOKEN)\n"
               "  --whatsapp-graph-url URL   Graph API base (https://graph.facebook.com)\n"
               "  --whatsapp-graph-version V Graph API version (v21.0)\n"
               "  --whatsapp-number-rate N   messages/s per business number (80)\n"
               "  --whatsapp-recipient-gap-ms N  least gap between replies to one contact (6000)\n"
               "  --ai grpc://H:P[,H:P]  reply from `whatstyle ai` nodes (consistent hashing, failover);\n"
               "                         training stays here (default: the in-process engine)\n"
               "  --ai-timeout-ms N      time budget of one call to the AI nodes (5000); a request's\n"
               "                         X-Request-Timeout-Ms header shortens it (504 when it runs out)\n"
               "  --ai-ca PEM            with --ai grpcs://H:P,...: the CAs of the nodes' certificates\n"
               "                         (default: the system's); names and addresses are verified\n"
               "  --ai-cert PEM --ai-key PEM  client certificate for nodes that require one (mTLS)\n"
               "  --kafka BROKERS        host:port[,...] (env WS_KAFKA_BROKERS): publish the outbox to Kafka\n"
               "                         (relay), train on `whatstyle worker`s, not here; consume\n"
               "                         training-events (model reloads). Default: train in-process\n"
               "  --kafka-partitions N   partitions of the topics created (3)\n"
               "  --otlp-endpoint URL    export traces over OTLP/HTTP to URL (e.g. http://jaeger:4318;\n"
               "                         env OTEL_EXPORTER_OTLP_ENDPOINT); default: no export\n"
               "  --trace-ratio R        share of new traces recorded, 0..1 (default 0.01; env\n"
               "                         WS_TRACE_RATIO); a caller's sampled traceparent is always kept\n"
               "Logs: JSON lines on stdout (text on a terminal); WS_LOG_LEVEL, WS_LOG_FORMAT.\n"
               "Clones live in DIR/models/<user id>/ (the layout of `whatstyle train`).\n");
}

/* A config file's setting: fills an option not set yet (-1 for an unknown key). */
static int set_from_config(void *arg, const char *key, const char *value)
{
    char **slot = opt_slot(arg, key);
    if (!slot)
        return -1;
    if (!*slot)
        *slot = ws_xstrdup(value);
    return 0;
}

static int read_config(const char *path, serve_opts *o)
{
    return ws_cli_read_config(path, "serve", set_from_config, o);
}

static int to_int(const char *s, const char *what, int lo, int hi, int *out)
{
    if (!s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "whatstyle serve: %s must be an integer in %d..%d\n", what, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

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
    } else if (getenv("WS_WHATSAPP_APP_SECRET") && *getenv("WS_WHATSAPP_APP_SECRET")) {
        *secret = ws_xstrdup(getenv("WS_WHATSAPP_APP_SECRET"));
    }
    if (*secret && !**secret) {
        fprintf(stderr, "whatstyle serve: the WhatsApp app secret is empty\n");
        return -1;
    }
    cfg->whatsapp_app_secret = *secret;
    cfg->whatsapp_verify_token = o->wa_verify_token;
    cfg->whatsapp_graph_url = o->wa_graph_url;
    cfg->whatsapp_graph_version = o->wa_graph_version;
    if (to_int(o->wa_number_rate, "--whatsapp-number-rate", 1, 1000, &cfg->whatsapp_number_rate) ||
        to_int(o->wa_recipient_gap_ms, "--whatsapp-recipient-gap-ms", 1, 3600000, &cfg->whatsapp_recipient_gap_ms))
        return -1;
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
    WS_LOG(WS_LOG_INFO, "server.config", "configuration", WS_LF_S("config.store", url_kind(cfg->store_url, "sqlite", k1, sizeof k1)),
           WS_LF_B("config.store_replica", cfg->store_replica_url != NULL),
           WS_LF_S("config.cache", url_kind(cfg->cache_url, "memory", k2, sizeof k2)),
           WS_LF_S("config.blobs", url_kind(cfg->blobs_url, "file", k3, sizeof k3)),
           WS_LF_I("config.threads", cfg->threads), WS_LF_B("config.tls", cfg->tls_cert != NULL),
           WS_LF_I("config.key_rate_limit", cfg->key_rate_limit),
           WS_LF_I("config.user_rate_limit", cfg->user_rate_limit), WS_LF_I("config.max_export_mb", export_mb),
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
    ws_bus_kafka_config kc = {.brokers = o->kafka, .client_id = id,
                              .partitions = o->kafka_partitions ? atoi(o->kafka_partitions) : 3};
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
    serve_opts o = {0};
    const char *config = NULL;
    int ret = 2;
    ws_server *srv = NULL;
    ws_ai *ai = NULL;
    ws_blobs *ai_blobs = NULL; /* the AI's own handle on the blobs: where trained models are kept */
    ws_jwt_key *service_key = NULL; /* DATA/service-ed25519.pem: signs the tokens of AI calls */
    char *wa_secret = NULL;    /* the WhatsApp app secret (file or WS_WHATSAPP_APP_SECRET) */
    bool allow_signup = false; /* --allow-signup: the dashboard may create users */
    bool tracing = false;
    serve_bus kafka = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--allow-signup")) {
            allow_signup = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-training")) {
            o.no_training = ws_xstrdup("1");
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "whatstyle serve: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            goto out;
        }
        if (!strcmp(argv[i], "--config")) {
            config = argv[++i];
            continue;
        }
        char **slot = opt_slot(&o, argv[i] + 2);
        if (!slot) {
            fprintf(stderr, "whatstyle serve: unknown option '%s'\n", argv[i]);
            usage(stderr);
            goto out;
        }
        free(*slot);
        *slot = ws_xstrdup(argv[++i]);
    }
    const struct {
        const char *env;
        char **slot;
    } envs[] = {
        {"WS_STORE_URL", &o.store}, {"WS_STORE_REPLICA_URL", &o.store_replica}, {"WS_CACHE_URL", &o.cache},
        {"WS_WHATSAPP_VERIFY_TOKEN", &o.wa_verify_token},
        {"OTEL_EXPORTER_OTLP_ENDPOINT", &o.otlp_endpoint}, {"WS_TRACE_RATIO", &o.trace_ratio},
        {"WS_KAFKA_BROKERS", &o.kafka}};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *v = getenv(envs[i].env);
        if (v && *v && !*envs[i].slot)
            *envs[i].slot = ws_xstrdup(v);
    }
    if (config && read_config(config, &o) != 0)
        goto out;
    if (!o.data) {
        fprintf(stderr, "whatstyle serve: --data DIR is required\n");
        usage(stderr);
        goto out;
    }
    ws_server_config cfg = {.data_dir = o.data,
                            .store_url = o.store,
                            .store_replica_url = o.store_replica,
                            .cache_url = o.cache,
                            .blobs_url = o.blobs,
                            .host = o.host,
                            .tls_cert = o.tls_cert,
                            .tls_key = o.tls_key,
                            .allowed_origins = o.allowed_origins,
                            .no_training = (o.no_training && strcmp(o.no_training, "0") != 0) || o.kafka,
                            .allow_signup = allow_signup};
    int mb = 64;
    if (to_int(o.port, "--port", 0, 65535, &cfg.port) ||
        to_int(o.threads, "--threads", 0, 256, &cfg.threads) ||
        to_int(o.key_rate_limit, "--key-rate-limit", 0, 100000000, &cfg.key_rate_limit) ||
        to_int(o.user_rate_limit, "--user-rate-limit", 0, 100000000, &cfg.user_rate_limit) ||
        to_int(o.max_export_mb, "--max-export-mb", 1, 4096, &mb) ||
        to_int(o.store_connections, "--store-connections", 1, 256, &cfg.store_connections) ||
        to_int(o.keepalive_ms, "--keepalive-ms", 1, 86400000, &cfg.keepalive_timeout_ms) ||
        to_int(o.head_timeout_ms, "--head-timeout-ms", 1, 3600000, &cfg.head_timeout_ms))
        goto out;
    cfg.max_export_bytes = (size_t)mb << 20;
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
                               .default_budget_s = o.train_budget ? strtod(o.train_budget, NULL) : 0,
                               .blobs = ai_blobs};
        if (ws_ai_local_new(mr.data, &ao, &ai, &aerr) != 0) {
            fprintf(stderr, "whatstyle serve: %s\n", aerr.msg);
            ws_buf_free(&mr);
            goto out;
        }
        ws_buf_free(&mr);
        int ai_ms = 5000;
        if (to_int(o.ai_timeout_ms, "--ai-timeout-ms", 1, 600000, &ai_ms))
            goto out;
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
    for (size_t i = 0; i < sizeof opt_rows / sizeof opt_rows[0]; i++)
        free(*(char **)((char *)&o + opt_rows[i].offset));
    return ret;
}
