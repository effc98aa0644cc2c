/* `whatstyle ai`: the AI service over gRPC (docs/ai-service.md): holds the style clones in an
 * LRU cache bounded by --memory-budget over one shared base model and answers
 * whatstyle.ai.v1.AiService, grpc.health.v1.Health and server reflection until SIGTERM or
 * SIGINT, then drains (GOAWAY, calls in flight finish) and exits.
 *
 *   whatstyle ai --listen HOST:PORT [--data DIR | --blobs URL] [--memory-budget MB]
 *                [--base-model PATH] [--max-message-kb N] [--keepalive-s S] [--drain-grace-s S]
 *                [--workers N] [--gateway-jwks FILE]
 *                [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
 *                [--otlp-endpoint URL] [--trace-ratio R]
 *
 * Models are read where `whatstyle serve --data DIR` keeps them: encrypted in the blobs (DIR/blobs
 * or --blobs URL, master key as for serve), with private scratch under DIR/models. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ai/ai_local.h"
#include "ai/ai_service.h"
#include "auth/jwt.h"
#include "blobs/blobs.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/trace_export.h"
#include "nn/base.h"

static int split_listen(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == s || end == colon + 1 || *end || p < 0 || p > 65535)
        return -1;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']')
        *host = strndup(s + 1, hl - 2);
    else
        *host = strndup(s, hl);
    *port = (int)p;
    return 0;
}

/* Serves until SIGTERM/SIGINT (blocked by the caller), then drains. */
static int serve_until_signal(ws_ai *ai, const ws_ai_service_config *sc, const sigset_t *set)
{
    ws_ai_service *svc = NULL;
    ws_error err = {0};
    if (ws_ai_service_start(ai, sc, &svc, &err) != 0) {
        fprintf(stderr, "whatstyle ai: %s\n", err.msg);
        return 1;
    }
    printf("whatstyle ai: listening on %s:%d (gRPC, %s)\n", sc->host, ws_ai_service_port(svc),
           sc->tls_cert ? sc->tls_client_ca ? "TLS, client certificates required" : "TLS" : "h2c");
    fflush(stdout);
    int sig = 0;
    sigwait(set, &sig);
    fprintf(stderr, "whatstyle ai: %s received, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ws_ai_service_drain(svc);
    ws_ai_service_free(svc);
    fprintf(stderr, "whatstyle ai: stopped\n");
    return 0;
}

/* The gateway's public key from its JWKS file; without one, says loudly that calls are open. */
static int load_gateway_key(const char *path, ws_jwt_key **out)
{
    if (!path) {
        fprintf(stderr, "whatstyle ai: WARNING: no --gateway-jwks: calls are NOT authenticated "
                        "(anyone who reaches this port can ask for any user's replies)\n");
        return 0;
    }
    char *json = NULL;
    size_t len = 0;
    ws_error err = {0};
    int rc = ws_file_read(path, 65536, &json, &len, &err);
    if (rc == 0)
        rc = ws_jwt_key_from_jwks(json, len, out, &err);
    if (rc)
        fprintf(stderr, "whatstyle ai: --gateway-jwks %s: %s\n", path, err.msg);
    else
        fprintf(stderr, "whatstyle ai: calls are authenticated with the gateway key %s\n",
                ws_jwt_key_id(*out));
    free(json);
    return rc;
}

typedef struct ai_opts {
    const char *listen, *data, *base, *jwks, *minilm_dir, *tls_cert, *tls_key, *tls_ca, *otlp;
    double budget_mb, ratio, msg_kb, keepalive, grace;
    int workers, nn_threads;
    ws_cli_blobs blobs;
} ai_opts;

#define F(field) offsetof(ai_opts, field)
static const ws_opt rows[] = {
    {.name = "listen",
     .kind = WS_OPT_STR,
     .off = F(listen),
     .arg = "HOST:PORT",
     .flags = WS_OPTF_REQUIRED,
     .help = "gRPC address (h2c, or TLS with --tls-cert); port 0 picks a free one"},
    {.name = "data",
     .kind = WS_OPT_STR,
     .off = F(data),
     .arg = "DIR",
     .help =
         "where `serve --data DIR` keeps models (DIR/blobs, master key DIR/master.key, scratch DIR/models)"},
    WS_CLI_ROWS_BLOBS(ai_opts, blobs),
    {.name = "memory-budget",
     .kind = WS_OPT_NUM,
     .off = F(budget_mb),
     .lo = 1,
     .hi = 1 << 20,
     .dflt = "1024",
     .arg = "MB",
     .help = "memory for opened user models, least recently used dropped"},
    WS_CLI_ROW_BASE_MODEL(ai_opts, base),
    WS_CLI_ROW_NN_THREADS(ai_opts, nn_threads),
    WS_CLI_ROW_MINILM_DIR(ai_opts, minilm_dir),
    {.name = "max-message-kb",
     .kind = WS_OPT_NUM,
     .off = F(msg_kb),
     .lo = 1,
     .hi = 1 << 20,
     .dflt = "4096",
     .arg = "N",
     .help = "request/response message cap"},
    {.name = "keepalive-s",
     .kind = WS_OPT_NUM,
     .off = F(keepalive),
     .lo = 0.1,
     .hi = 86400,
     .dflt = "60",
     .arg = "S",
     .help = "ping idle connections after S seconds"},
    {.name = "drain-grace-s",
     .kind = WS_OPT_NUM,
     .off = F(grace),
     .lo = 0.1,
     .hi = 3600,
     .dflt = "10",
     .arg = "S",
     .help = "on SIGTERM, cancel calls still running after S seconds"},
    {.name = "workers",
     .kind = WS_OPT_INT,
     .off = F(workers),
     .lo = 1,
     .hi = 1024,
     .arg = "N",
     .help = "replies computed at once, more wait their turn (default: the cores)"},
    {.name = "gateway-jwks",
     .kind = WS_OPT_STR,
     .off = F(jwks),
     .arg = "FILE",
     .help = "the gateway's JWKS (GET /.well-known/jwks.json of `serve`): every call must carry a token it "
             "signed (without: calls are NOT authenticated)"},
    {.name = "tls-cert",
     .kind = WS_OPT_STR,
     .off = F(tls_cert),
     .arg = "PEM",
     .help = "serve gRPC over TLS (1.2+, ALPN h2) with this certificate chain (with --tls-key; gateways: "
             "serve --ai grpcs://... --ai-ca)"},
    {.name = "tls-key", .kind = WS_OPT_STR, .off = F(tls_key), .arg = "PEM", .help = "the certificate's key"},
    {.name = "tls-client-ca",
     .kind = WS_OPT_STR,
     .off = F(tls_ca),
     .arg = "PEM",
     .help = "require a client certificate signed by these CAs (mTLS)"},
    WS_CLI_ROWS_TRACING(ai_opts, otlp, ratio),
};
#undef F

const ws_cli_spec ws_cli_spec_ai = {
    .name = "ai",
    .synopsis = "--listen HOST:PORT (--data DIR | --blobs URL) [options]",
    .about = "Without --data the master key comes from WS_MASTER_KEY (docs/ai-service.md).\n",
    WS_CLI_SPEC_ROWS(rows),
};

int ws_cmd_ai(int argc, char **argv)
{
    ai_opts o = {.nn_threads = -1};
    int pr = ws_cli_parse(&ws_cli_spec_ai, argc, argv, &o, NULL, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    if (!o.data && !o.blobs.url)
        return ws_cli_fail(&ws_cli_spec_ai, "--data DIR or --blobs URL is required");
    if (!!o.tls_cert != !!o.tls_key || (o.tls_ca && !o.tls_cert))
        return ws_cli_fail(&ws_cli_spec_ai,
                           "--tls-cert and --tls-key go together (--tls-client-ca needs them)");
    ws_cli_blobs_apply(&o.blobs);
    ws_cli_engine_apply(o.nn_threads, o.minilm_dir);
    ws_ai_service_config sc = {.max_message = (size_t)(o.msg_kb * 1024),
                               .keepalive_s = o.keepalive,
                               .drain_grace_s = o.grace,
                               .workers = o.workers,
                               .tls_cert = o.tls_cert,
                               .tls_key = o.tls_key,
                               .tls_client_ca = o.tls_ca};
    char *host = NULL;
    if (split_listen(o.listen, &host, &sc.port) != 0)
        return ws_cli_fail(&ws_cli_spec_ai, "--listen wants HOST:PORT, not '%s'", o.listen);
    const char *data = o.data;
    sc.host = host;
    int ret = 1;
    bool tracing = false;
    ws_blobs *blobs = NULL;
    ws_ai *ai = NULL;
    ws_base *shared = NULL;
    ws_jwt_key *gw_key = NULL;
    ws_error err = {0};
    ws_buf root = WS_BUF_INIT;
    char tmpl[] = "/tmp/whatstyle-ai-XXXXXX";
    if (data)
        ws_buf_printf(&root, "%s/models", data);
    else if (mkdtemp(tmpl))
        ws_buf_puts(&root, tmpl);
    if (!root.data || (data && mkdir(data, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "whatstyle ai: cannot create the scratch directory: %s\n", strerror(errno));
        goto out;
    }
    if (load_gateway_key(o.jwks, &gw_key) != 0)
        goto out;
    sc.gateway_key = gw_key;
    if (ws_blobs_open(o.blobs.url, data, &blobs, &err) != 0) {
        fprintf(stderr, "whatstyle ai: %s\n", err.msg);
        goto out;
    }
    /* the one base every adapter shares, held for the life of the process */
    const char *base_path = ws_cli_resolve_base(o.base, true);
    if (base_path && ws_base_acquire(base_path, &shared, &err) != 0) {
        fprintf(stderr, "whatstyle ai: base model %s: %s\n", base_path, err.msg);
        goto out;
    }
    ws_ai_local_opts ao = {
        .base_model = base_path, .blobs = blobs, .memory_budget = (uint64_t)(o.budget_mb * 1024 * 1024)};
    if (ws_ai_local_new(root.data, &ao, &ai, &err) != 0) {
        fprintf(stderr, "whatstyle ai: %s\n", err.msg);
        goto out;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int tr = ws_cli_tracing_start("ai", o.otlp, o.ratio, "whatstyle-ai");
    if (tr < 0)
        goto out;
    tracing = tr == 1;
    ret = serve_until_signal(ai, &sc, &set);
out:
    if (tracing)
        ws_trace_export_stop(); /* after the service: its last spans go out too */
    ws_ai_free(ai);
    if (shared)
        ws_base_release(shared);
    ws_blobs_close(blobs);
    ws_jwt_key_free(gw_key);
    if (!data && root.data)
        ws_file_remove_tree(root.data, NULL, NULL);
    ws_buf_free(&root);
    free(host);
    return ret;
}
