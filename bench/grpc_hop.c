/* Benchmark of the gateway → AI hop (bench/grpc_ai.sh): the same calls through the in-process
 * engine and through ws_ai_grpc to a `whatstyle ai` service over loopback (started in this
 * process on its own threads), p50/p99 of each and the difference: the latency the hop adds.
 * Also the time to switch users (a model loaded from the encrypted blobs on first use, against
 * a call on the resident one) and the memory each resident model adds. With PKI_DIR (ca.pem,
 * node.pem, node.key: a CA and a certificate for 127.0.0.1) also a second service over TLS: the
 * cost of TLS on the hop (pooled connections, same calls) and of a new connection (TCP + TLS
 * handshake + one Health/Check) against h2c.
 * Usage: bench_grpc_hop DATA_DIR USER [N [PKI_DIR]]   (DATA_DIR/models/USER: a trained clone) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_grpc.h"
#include "ai/ai_local.h"
#include "ai/ai_service.h"
#include "blobs/blobs.h"
#include "core/buf.h"
#include "core/progress.h"
#include "core/tls.h"
#include "grpc/grpc_client.h"
#include "grpc/grpc_wire.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[(int)(p * (n - 1))];
}

typedef enum { OP_PROFILE, OP_GENERATE } op;

/* n calls of op on ai; the latencies in ms into out. */
static int run(ws_ai *ai, const char *user, op o, int n, double *out)
{
    for (int i = 0; i < n; i++) {
        ws_error err = {0};
        double t0 = ws_now_s();
        int rc;
        if (o == OP_PROFILE) {
            char *json = NULL;
            rc = ai->ops->style_profile(ai, user, &json, &err);
            free(json);
        } else {
            ws_ai_reply r = {0};
            rc = ai->ops->generate(ai, user, "are you coming tonight?", NULL, 0, &r, &err);
            ws_ai_reply_clear(&r);
        }
        out[i] = (ws_now_s() - t0) * 1000.0;
        if (rc) {
            fprintf(stderr, "bench_grpc_hop: %s\n", err.msg);
            return rc;
        }
    }
    return 0;
}

static void compare(const char *name, ws_ai *local, ws_ai *remote, const char *user, op o, int n)
{
    double *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    run(local, user, o, 5, a); /* warm both */
    run(remote, user, o, 5, b);
    if (run(local, user, o, n, a) == 0 && run(remote, user, o, n, b) == 0) {
        double a50 = pct(a, n, 0.5), b50 = pct(b, n, 0.5), a99 = pct(a, n, 0.99), b99 = pct(b, n, 0.99);
        printf("{\"call\":\"%s\",\"n\":%d,\"in_process_p50_ms\":%.4f,\"in_process_p99_ms\":%.4f,"
               "\"grpc_p50_ms\":%.4f,\"grpc_p99_ms\":%.4f,\"added_p50_ms\":%.4f}\n",
               name, n, a50, a99, b50, b99, b50 - a50);
    }
    free(a);
    free(b);
}

/* p50/p99 of the same calls over h2c and over TLS (pooled connections): what TLS adds. */
static void compare_tls(ws_ai *plain, ws_ai *tls, const char *user, int n)
{
    double *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    run(plain, user, OP_PROFILE, 5, a);
    run(tls, user, OP_PROFILE, 5, b);
    if (run(plain, user, OP_PROFILE, n, a) == 0 && run(tls, user, OP_PROFILE, n, b) == 0) {
        double a50 = pct(a, n, 0.5), b50 = pct(b, n, 0.5), a99 = pct(a, n, 0.99), b99 = pct(b, n, 0.99);
        printf("{\"call\":\"GetStyleProfile h2c vs TLS\",\"n\":%d,\"h2c_p50_ms\":%.4f,\"h2c_p99_ms\":%.4f,"
               "\"tls_p50_ms\":%.4f,\"tls_p99_ms\":%.4f,\"tls_added_p50_ms\":%.4f}\n",
               n, a50, a99, b50, b99, b50 - a50);
    }
    free(a);
    free(b);
}

/* One Health/Check on a fresh channel (a new connection: TCP, TLS when ctx, HTTP/2), in ms. */
static double fresh_call(int port, SSL_CTX *ctx)
{
    ws_grpc_channel *ch = ws_grpc_channel_new_tls("127.0.0.1", port, ctx);
    ws_buf resp = WS_BUF_INIT;
    ws_grpc_result res = {0};
    double t0 = ws_now_s();
    int st =
        ws_grpc_unary(ch, "/grpc.health.v1.Health/Check", (const uint8_t *)"", 0, t0 + 5, 64, &resp, &res);
    double ms = (ws_now_s() - t0) * 1000.0;
    if (st != WS_GRPC_OK)
        fprintf(stderr, "bench_grpc_hop: health check: %s\n", res.message.data ? res.message.data : "failed");
    ws_buf_free(&resp);
    ws_grpc_result_free(&res);
    ws_grpc_channel_free(ch);
    return ms;
}

/* The TLS service next to the h2c one: the hop with TLS, and new connections. */
static void bench_tls(ws_ai *engine, ws_ai *remote, const char *root, ws_blobs *blobs, int plain_port,
                      const char *pki, const char *user, int n)
{
    char cert[512], key[512], ca[512], spec[64];
    snprintf(cert, sizeof cert, "%s/node.pem", pki);
    snprintf(key, sizeof key, "%s/node.key", pki);
    snprintf(ca, sizeof ca, "%s/ca.pem", pki);
    ws_error err = {0};
    ws_ai_service *svc = NULL;
    ws_ai *gw_local = NULL, *tls = NULL;
    SSL_CTX *ctx = NULL;
    ws_ai_service_config sc = {.tls_cert = cert, .tls_key = key};
    if (ws_ai_service_start(engine, &sc, &svc, &err) ||
        ws_ai_local_new(root, &(ws_ai_local_opts){.blobs = blobs}, &gw_local, &err) ||
        (snprintf(spec, sizeof spec, "grpcs://127.0.0.1:%d", ws_ai_service_port(svc)),
         ws_ai_grpc_new(spec, gw_local, &(ws_ai_grpc_opts){.budget_s = 120, .tls_ca = ca}, &tls, &err)) ||
        ws_tls_client_ctx_new(&(ws_tls_client_opts){.ca_file = ca, .alpn = WS_TLS_ALPN_H2}, &ctx, &err)) {
        fprintf(stderr, "bench_grpc_hop: TLS: %s\n", err.msg);
        goto out;
    }
    compare_tls(remote, tls, user, n);
    enum { FRESH = 100 };
    double a[FRESH], b[FRESH];
    for (int i = 0; i < FRESH; i++) {
        a[i] = fresh_call(plain_port, NULL);
        b[i] = fresh_call(ws_ai_service_port(svc), ctx);
    }
    double a50 = pct(a, FRESH, 0.5), b50 = pct(b, FRESH, 0.5);
    printf("{\"call\":\"new connection + Health/Check\",\"n\":%d,\"h2c_p50_ms\":%.4f,\"tls_p50_ms\":%.4f,"
           "\"tls_added_p50_ms\":%.4f}\n",
           FRESH, a50, b50, b50 - a50);
out:
    SSL_CTX_free(ctx);
    ws_ai_free(tls);
    ws_ai_service_free(svc);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_grpc_hop DATA_DIR USER [N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write() */
    const char *data = argv[1], *user = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    ws_error err = {0};
    ws_blobs *blobs = NULL;
    ws_ai *engine = NULL, *remote = NULL, *gw_local = NULL;
    ws_ai_service *svc = NULL;
    ws_buf root = WS_BUF_INIT;
    ws_buf_printf(&root, "%s/models", data);
    if (ws_blobs_open(NULL, data, &blobs, &err) ||
        ws_ai_local_new(root.data, &(ws_ai_local_opts){.blobs = blobs}, &engine, &err) ||
        ws_ai_service_start(engine, NULL, &svc, &err) ||
        ws_ai_local_new(root.data, &(ws_ai_local_opts){.blobs = blobs}, &gw_local, &err)) {
        fprintf(stderr, "bench_grpc_hop: %s\n", err.msg);
        return 1;
    }
    char spec[64];
    snprintf(spec, sizeof spec, "grpc://127.0.0.1:%d", ws_ai_service_port(svc));
    if (ws_ai_grpc_new(spec, gw_local, &(ws_ai_grpc_opts){.budget_s = 120}, &remote, &err)) {
        fprintf(stderr, "bench_grpc_hop: %s\n", err.msg);
        return 1;
    }
    /* the same engine answers both ways: the difference is the hop */
    compare("GetStyleProfile", engine, remote, user, OP_PROFILE, n);
    compare("GenerateResponse", engine, remote, user, OP_GENERATE, n / 10 > 20 ? n / 10 : 20);
    if (argc > 4)
        bench_tls(engine, remote, root.data, blobs, ws_ai_service_port(svc), argv[4], user, n);
    /* switching users: the first call after a reload opens the model from the blobs */
    double cold[10], warm[10];
    for (int i = 0; i < 10; i++) {
        engine->ops->reload(engine, user, NULL);
        run(engine, user, OP_GENERATE, 1, &cold[i]);
        run(engine, user, OP_GENERATE, 1, &warm[i]);
    }
    ws_ai_status st;
    engine->ops->status(engine, &st, NULL);
    printf("{\"switch_cold_p50_ms\":%.2f,\"resident_p50_ms\":%.2f,\"model_load_from_blobs_ms\":%.2f,"
           "\"resident_bytes_per_model\":%llu}\n",
           pct(cold, 10, 0.5), pct(warm, 10, 0.5), pct(cold, 10, 0.5) - pct(warm, 10, 0.5),
           st.n_resident ? (unsigned long long)st.resident[0].bytes : 0ULL);
    ws_ai_status_clear(&st);
    ws_ai_free(remote);
    ws_ai_service_free(svc);
    ws_ai_free(engine);
    ws_blobs_close(blobs);
    ws_buf_free(&root);
    return 0;
}
