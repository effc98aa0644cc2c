/* Streaming benchmark: time to the first piece of a streamed reply (ws_clone_reply_stream)
 * against the time to its whole reply and to the ranked reply of ws_clone_reply (several
 * candidates scored), p50/p95 over the same messages, one thread; and how often each falls back.
 * Usage: bench_reply_stream [EXPORT] [PERSONA] [BUDGET_S] [REPLIES]
 * BENCH_CLONE=DIR measures a clone trained before; BENCH_BASE=PATH trains a LoRA adapter on
 * that base instead of a model from scratch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clone/clone_int.h"
#include "core/file.h"
#include "core/mem.h"
#include "core/progress.h"
#include "bench_env.h"

static const char *const msgs[] = {"are you free on saturday for a barbecue",
                                   "I finally finished my thesis",
                                   "did anyone see the news",
                                   "my cat knocked over a plant",
                                   "should we try the new ramen place",
                                   "happy new year everyone",
                                   "can someone send me the address",
                                   "I'm stuck in traffic, sorry",
                                   "who wants to join the pub quiz?",
                                   "the wifi at my place is broken again",
                                   "what time is the game tonight?",
                                   "omg did you hear about the concert"};
#define N_MSGS (sizeof msgs / sizeof msgs[0])

typedef struct first_piece {
    double t0, first;
} first_piece;

static int on_piece(void *arg, const char *piece, size_t len)
{
    first_piece *f = arg;
    if (f->first < 0)
        f->first = ws_now_s() - f->t0;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
    printf("  %-34s p50 %7.1f ms   p95 %7.1f ms   (n=%zu)\n", what, v[n / 2] * 1000, v[(n * 95) / 100] * 1000,
           n);
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    const char *export_path = argc > 1 ? argv[1] : "samples/group_chat.txt";
    const char *persona = argc > 2 ? argv[2] : "Maya";
    double budget = argc > 3 ? atof(argv[3]) : 20;
    size_t n = argc > 4 ? (size_t)atoi(argv[4]) : 60;
    const char *dir = getenv("BENCH_CLONE");
    char tmpl[] = "/tmp/ws_bench_stream_XXXXXX";
    char *tmp = NULL;
    ws_error err = {0};
    if (!dir || !*dir) {
        tmp = mkdtemp(tmpl);
        char *out = ws__clone_path(tmp, "clone");
        ws_clone_train_opts o = {.export_path = export_path,
                                 .persona = persona,
                                 .out_dir = out,
                                 .base_model = getenv("BENCH_BASE"),
                                 .budget_s = budget,
                                 .quiet = true,
                                 .embed_dir = "none"};
        ws_clone_train_result res;
        if (ws_clone_train(&o, &res, &err)) {
            fprintf(stderr, "train: %s\n", err.msg);
            return 1;
        }
        ws_clone_train_result_clear(&res);
        dir = out;
    }
    ws_clone *c = NULL;
    if (ws_clone_open(dir, &c, &err)) {
        fprintf(stderr, "open %s: %s\n", dir, err.msg);
        return 1;
    }
    printf("reply streaming, %s (%s), %zu replies, one thread\n", persona,
           ws_clone_has_base(c) ? "LoRA on a base" : "model from scratch", n);
    double *first = ws_xcalloc(n, sizeof *first), *whole = ws_xcalloc(n, sizeof *whole);
    double *ranked = ws_xcalloc(n, sizeof *ranked);
    size_t n_first = 0, fb_stream = 0, fb_ranked = 0;
    for (size_t i = 0; i < n; i++) {
        ws_clone_reply_opts ro = {.seed = i + 1};
        first_piece f = {.t0 = ws_now_s(), .first = -1};
        ws_clone_answer a;
        if (ws_clone_reply_stream(c, msgs[i % N_MSGS], NULL, 0, &ro, on_piece, &f, &a, &err)) {
            fprintf(stderr, "stream: %s\n", err.msg);
            return 1;
        }
        whole[i] = ws_now_s() - f.t0;
        if (f.first >= 0)
            first[n_first++] = f.first;
        fb_stream += a.fallback;
        ws_clone_answer_clear(&a);
        double t0 = ws_now_s();
        if (ws_clone_reply(c, msgs[i % N_MSGS], NULL, 0, &ro, &a, &err)) {
            fprintf(stderr, "reply: %s\n", err.msg);
            return 1;
        }
        ranked[i] = ws_now_s() - t0;
        fb_ranked += a.fallback;
        ws_clone_answer_clear(&a);
    }
    if (n_first)
        report("streamed: first piece", first, n_first);
    report("streamed: whole reply", whole, n);
    report("ranked (ws_clone_reply): reply", ranked, n);
    printf("  fallback: streamed %zu/%zu, ranked %zu/%zu; replies with no piece %zu\n", fb_stream, n,
           fb_ranked, n, n - n_first);
    free(first);
    free(whole);
    free(ranked);
    ws_clone_free(c);
    if (tmp) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
        free((char *)dir);
    }
    return 0;
}
