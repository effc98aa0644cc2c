/* Benchmark of the gateway → AI hop (bench/grpc_ai.sh): the same calls through the in-process
 * engine and through ws_ai_grpc to a `whatstyle ai` service over loopback (started in this
 * process on its own threads), p50/p99 of each and the difference: the latency the hop adds.
 * Also the time to switch users (a model loaded from the encrypted blobs on first use, against
 * a call on the resident one) and the memory each resident model adds.
 * Usage: bench_grpc_hop DATA_DIR USER [N]   (DATA_DIR/models/USER: a trained clone) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_grpc.h"
#include "ai/ai_local.h"
#include "ai/ai_service.h"
#include "blobs/blobs.h"
#include "core/buf.h"
#include "core/progress.h"

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

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_grpc_hop DATA_DIR USER [N]\n");
        return 2;
    }
    const char *data = argv[1], *user = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    ws_error err = {0};
    ws_blobs *blobs = NULL;
    ws_ai *engine = NULL, *remote = NULL, *gw_local = NULL;
    ws_ai_service *svc = NULL;
    ws_buf root = WS_BUF_INIT;
    ws_buf_printf(&root, "%s/models", data);
    if (ws_blobs_open(NULL, data, &blobs, &err) || ws_ai_local_new(root.data, &(ws_ai_local_opts){.blobs = blobs}, &engine, &err) ||
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
