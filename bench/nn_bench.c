/* Engine benchmark: one measurement per run (so peak memory is that measurement's), printed as
 * one JSON line. Usage: bench_nn_bench MODE CONFIG [threads] [reps]
 *   MODE   sgemm | train-full | train-lora | prefill | generate
 *   CONFIG smol (SmolLM2-135M shape) | small
 * Random weights; training batch 4 x 256; prefill 512 tokens; generation 16 + 64 tokens greedy.
 * Run through bench/nn_bench.sh, which also runs PyTorch with the same settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>

#include "core/mem.h"
#include "nn/generate.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "nn/ops.h"
#include "nn/prof.h"
#include "nn/train.h"
#include "bench_env.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* CPU seconds (user + system) of the whole process so far */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double peak_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static ws_model_config config_named(const char *name)
{
    ws_model_config c = {.arch = WS_ARCH_LLAMA,
                         .norm_eps = 1e-5f,
                         .rope_theta = 100000.0f,
                         .tied = true,
                         .max_pos = 2048,
                         .bos_id = 1,
                         .n_eos = 0};
    if (!strcmp(name, "smol")) {
        c.vocab_size = 49152;
        c.dim = 576;
        c.hidden_dim = 1536;
        c.n_layers = 30;
        c.n_heads = 9;
        c.n_kv_heads = 3;
    } else {
        c.vocab_size = 4096;
        c.dim = 256;
        c.hidden_dim = 768;
        c.n_layers = 4;
        c.n_heads = 4;
        c.n_kv_heads = 2;
    }
    c.head_dim = c.dim / c.n_heads;
    return c;
}

/* GFLOP/s of OpenBLAS sgemm on `threads` threads in the shape of a training step's MLP matmul
 * ([1024 x 576] x [576 x 1536]) */
static double sgemm_gflops(int threads, int reps)
{
    openblas_set_num_threads(threads);
    int M = 1024, N = 1536, K = 576;
    double times[64];
    float *a = ws_xaligned(64, (size_t)M * K * 4), *b = ws_xaligned(64, (size_t)N * K * 4),
          *o = ws_xaligned(64, (size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++)
        b[i] = (float)(i % 7) * 0.01f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, o, N);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < 10; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, o, N);
        times[r] = (now() - t0) / 10;
    }
    free(a);
    free(b);
    free(o);
    ws_nn_set_threads(threads); /* back to the engine's setting (its pool, OpenBLAS on one thread) */
    return 2.0 * M * N * K / median(times, reps) * 1e-9;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s sgemm|train-full|train-lora|prefill|generate smol|small [threads] [reps]\n",
                argv[0]);
        return 2;
    }
    const char *mode = argv[1], *cname = argv[2];
    int threads = argc > 3 ? atoi(argv[3]) : 2, reps = argc > 4 ? atoi(argv[4]) : 3;
    ws_nn_set_threads(threads);
    ws_model_config c = config_named(cname);
    double times[64];
    if (reps > 64)
        reps = 64;
    if (!strcmp(mode, "sgemm")) {
        printf("{\"impl\":\"c\",\"mode\":\"sgemm\",\"threads\":%d,\"gflops\":%.1f,\"peak_mb\":%.0f}\n",
               threads, sgemm_gflops(threads, reps), peak_mb());
        return 0;
    }
    ws_model *m = ws_model_new(&c, 1);
    uint64_t s = 7;
    if (!strncmp(mode, "train", 5)) {
        int B = 4, T = 256;
        bool lora = !strcmp(mode, "train-lora");
        ws_lora_config lc = {
            .rank = 8, .alpha = 16, .dropout = 0.0f, .targets = ws_lora_parse_targets("q,k,v,o")};
        ws_lora *lo = lora ? ws_lora_new(&c, &lc, 3) : NULL;
        ws_train_opts o;
        ws_train_opts_init(&o, 100);
        ws_trainer *t = NULL;
        ws_error err = {0};
        if (ws_trainer_new(m, lo, B, T, &o, &t, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
        for (int i = 0; i < B * T; i++) {
            s = s * 6364136223846793005ull + 1;
            in[i] = (int32_t)((s >> 33) % (uint64_t)c.vocab_size);
            tg[i] = (int32_t)((s >> 13) % (uint64_t)c.vocab_size);
        }
        double sg = sgemm_gflops(threads, reps); /* the machine's limit, measured next to the steps */
        float loss;
        ws_trainer_step(t, in, tg, &loss); /* warm-up */
        const char *pe = getenv("WS_NN_PROFILE");
        ws_prof_enable(pe && *pe && strcmp(pe, "0"), pe && !strcmp(pe, "cpu"));
        ws_prof_reset();
        double c0 = cpu_s();
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            ws_trainer_step(t, in, tg, &loss);
            times[r] = now() - t0;
        }
        double cpu = (cpu_s() - c0) / reps;
        if (ws_prof_on) {
            fprintf(stderr, "%s %s: %s time per step by op (WS_NN_PROFILE)\n", mode, cname,
                    strcmp(pe, "cpu") ? "wall" : "calling thread's CPU");
            ws_prof_report(stderr, reps);
        }
        double med = median(times, reps);
        /* model FLOPs: 6 * params * tokens (full) or 4 * params * tokens (frozen base: no weight grads) */
        double nparams = (double)m->n_floats, tokens = (double)B * T;
        double attn = 2.0 * 2.0 * c.n_layers * (double)B * c.n_heads * T * T * c.head_dim; /* fwd QK^T + PV */
        double flops = (lora ? 4.0 : 6.0) * nparams * tokens + attn * (lora ? 3.0 : 3.0);
        printf("{\"impl\":\"c\",\"mode\":\"%s\",\"config\":\"%s\",\"threads\":%d,\"step_s\":%.3f,"
               "\"cpu_s\":%.3f,\"tokens_per_s\":%.0f,\"gflops\":%.1f,\"sgemm_gflops\":%.1f,\"loss\":%.3f,"
               "\"peak_mb\":%.0f}\n",
               mode, cname, threads, med, cpu, tokens / med, flops / med * 1e-9, sg, loss, peak_mb());
        ws_trainer_free(t);
        ws_lora_free(lo);
        free(in);
        free(tg);
    } else if (!strcmp(mode, "prefill")) {
        int n = 512;
        int32_t *ids = malloc((size_t)n * 4);
        for (int i = 0; i < n; i++)
            ids[i] = (i * 7919) % c.vocab_size;
        ws_kv_cache *kc = ws_kv_cache_new(m, n);
        float *logits = malloc((size_t)c.vocab_size * 4);
        ws_error err = {0};
        ws_model_infer(m, NULL, kc, ids, n, logits, NULL, &err);
        for (int r = 0; r < reps; r++) {
            ws_kv_cache_reset(kc);
            double t0 = now();
            ws_model_infer(m, NULL, kc, ids, n, logits, NULL, &err);
            times[r] = now() - t0;
        }
        double med = median(times, reps);
        printf(
            "{\"impl\":\"c\",\"mode\":\"prefill\",\"config\":\"%s\",\"threads\":%d,\"tokens\":%d,\"s\":%.3f,"
            "\"tokens_per_s\":%.1f,\"peak_mb\":%.0f}\n",
            cname, threads, n, med, n / med, peak_mb());
        ws_kv_cache_free(kc);
        free(logits);
        free(ids);
    } else if (!strcmp(mode, "generate")) {
        int32_t prompt[16];
        for (int i = 0; i < 16; i++)
            prompt[i] = (i * 31 + 5) % c.vocab_size;
        ws_gen_opts o;
        ws_gen_opts_init(&o);
        int32_t none = -1;
        o.stop_ids = &none;
        o.n_stop_ids = 1;
        ws_gen_result res;
        ws_error err = {0};
        /* decode rate = (64 - 1) tokens / (time(64 new) - time(1 new)), as for transformers */
        double t1s[64], t64s[64];
        o.max_new_tokens = 2;
        ws_generate(m, NULL, prompt, 16, &o, &res, &err);
        ws_gen_result_free(&res);
        for (int r = 0; r < reps; r++) {
            o.max_new_tokens = 1;
            double t0 = now();
            ws_generate(m, NULL, prompt, 16, &o, &res, &err);
            t1s[r] = now() - t0;
            ws_gen_result_free(&res);
            o.max_new_tokens = 64;
            t0 = now();
            ws_generate(m, NULL, prompt, 16, &o, &res, &err);
            t64s[r] = now() - t0;
            ws_gen_result_free(&res);
        }
        double a = median(t1s, reps), b = median(t64s, reps);
        printf("{\"impl\":\"c\",\"mode\":\"generate\",\"config\":\"%s\",\"threads\":%d,\"new_tokens\":64,"
               "\"total_s\":%.3f,\"tokens_per_s\":%.1f,\"peak_mb\":%.0f}\n",
               cname, threads, b, 63.0 / (b - a), peak_mb());
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    ws_model_free(m);
    return 0;
}
