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
#include "core/buf.h"
#include "core/file.h"
#include "core/trace_export.h"
#include "nn/base.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: whatstyle ai --listen HOST:PORT [--data DIR | --blobs URL] [options]\n"
            "  --listen HOST:PORT     gRPC address (h2c, or TLS with --tls-cert); port 0 picks a free one\n"
            "  --data DIR             where `serve --data DIR` keeps models (DIR/blobs, scratch DIR/models)\n"
            "  --blobs URL            file:DIR or s3://HOST/BUCKET (master key from WS_MASTER_KEY\n"
            "                         when there is no --data)\n"
            "  --memory-budget MB     memory for opened user models, least recently used dropped (1024)\n"
            "  --base-model PATH      the shared base (default the installed SmolLM2 base; none: no base)\n"
            "  --max-message-kb N     request/response message cap (4096)\n"
            "  --keepalive-s S        ping idle connections after S seconds (60)\n"
            "  --drain-grace-s S      on SIGTERM, cancel calls still running after S seconds (10)\n"
            "  --workers N            replies computed at once, more wait their turn (cores)\n"
            "  --gateway-jwks FILE    the gateway's JWKS (GET /.well-known/jwks.json of `serve`): every\n"
            "                         call must carry a token it signed (without: calls are NOT\n"
            "                         authenticated)\n"
            "  --tls-cert PEM --tls-key PEM  serve gRPC over TLS (1.2+, ALPN h2): the certificate\n"
            "                         chain and its key (gateways: serve --ai grpcs://... --ai-ca)\n"
            "  --tls-client-ca PEM    require a client certificate signed by these CAs (mTLS)\n"
            "  --otlp-endpoint URL    export traces over OTLP/HTTP (as serve; env\n"
            "                         OTEL_EXPORTER_OTLP_ENDPOINT); calls continue the caller's trace\n"
            "  --trace-ratio R        share of new traces recorded, 0..1 (0.01; env WS_TRACE_RATIO)\n");
}

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

static double num_opt(const char *v, const char *name, double lo, double hi, bool *bad)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "whatstyle ai: %s must be a number in %g..%g\n", name, lo, hi);
        *bad = true;
    }
    return d;
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
        fprintf(stderr, "whatstyle ai: calls are authenticated with the gateway key %s\n", ws_jwt_key_id(*out));
    free(json);
    return rc;
}

typedef struct ai_opts {
    const char *listen, *data, *blobs_url, *base, *jwks, *tls_cert, *tls_key, *tls_ca, *otlp, *ratio;
    double budget_mb, msg_kb, keepalive, grace, workers;
} ai_opts;

/* 0: options read; 1: --help printed; 2: bad usage (message printed). */
static int parse_opts(int argc, char **argv, ai_opts *o)
{
    bool bad = false;
    *o = (ai_opts){.budget_mb = 1024, .msg_kb = 4096, .keepalive = 60, .grace = 10};
    for (int i = 1; i < argc && !bad; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--listen"))) {
            o->listen = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--data"))) {
            o->data = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--blobs"))) {
            o->blobs_url = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--gateway-jwks"))) {
            o->jwks = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--tls-cert"))) {
            o->tls_cert = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--tls-key"))) {
            o->tls_key = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--tls-client-ca"))) {
            o->tls_ca = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--otlp-endpoint"))) {
            o->otlp = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--trace-ratio"))) {
            o->ratio = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--base-model"))) {
            o->base = v;
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--memory-budget"))) {
            o->budget_mb = num_opt(v, "--memory-budget", 1, 1 << 20, &bad);
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--max-message-kb"))) {
            o->msg_kb = num_opt(v, "--max-message-kb", 1, 1 << 20, &bad);
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--keepalive-s"))) {
            o->keepalive = num_opt(v, "--keepalive-s", 0.1, 86400, &bad);
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--workers"))) {
            o->workers = num_opt(v, "--workers", 1, 1024, &bad);
        } else if ((v = ws_cli_opt_value(argc, argv, &i, "--drain-grace-s"))) {
            o->grace = num_opt(v, "--drain-grace-s", 0.1, 3600, &bad);
        } else {
            fprintf(stderr, "whatstyle ai: unexpected argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (!bad && (!!o->tls_cert != !!o->tls_key || (o->tls_ca && !o->tls_cert))) {
        fprintf(stderr, "whatstyle ai: --tls-cert and --tls-key go together (--tls-client-ca needs them)\n");
        bad = true;
    }
    if (!bad && !o->data && !o->blobs_url && !getenv("WS_BLOBS_URL")) {
        fprintf(stderr, "whatstyle ai: --data DIR or --blobs URL is required\n");
        bad = true;
    }
    return bad ? 2 : 0;
}

int ws_cmd_ai(int argc, char **argv)
{
    ai_opts o;
    int pr = parse_opts(argc, argv, &o);
    if (pr == 1)
        return 0;
    ws_ai_service_config sc = {.max_message = (size_t)(o.msg_kb * 1024),
                               .keepalive_s = o.keepalive,
                               .drain_grace_s = o.grace,
                               .workers = (int)o.workers,
                               .tls_cert = o.tls_cert,
                               .tls_key = o.tls_key,
                               .tls_client_ca = o.tls_ca};
    char *host = NULL;
    if (pr == 0 && (!o.listen || split_listen(o.listen, &host, &sc.port) != 0)) {
        fprintf(stderr, "whatstyle ai: --listen HOST:PORT is required\n");
        pr = 2;
    }
    if (pr) {
        usage(stderr);
        free(host);
        return 2;
    }
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
    if (ws_blobs_open(o.blobs_url, data, &blobs, &err) != 0) {
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
