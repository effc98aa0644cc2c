/* The C engine's side of the llama.cpp comparison (bench/gguf_bench.sh): on a GGUF model used
 * in place (quantized), prompt processing of a 512-token prompt and greedy generation of G
 * tokens after a 16-token prompt, median of R runs each with a fresh KV cache, peak RSS; one
 * JSON line in the format of bench/llamacpp_peer.py. The workload is the peer's: the same token
 * ids, the logits of the last prompt position only, argmax on every step.
 * Usage: bench_gguf_bench [threads] [reps] [gen_tokens] [gguf]; BENCH_ISA=scalar|avx2|avx512 runs the
 * kernels of that instruction set (when the CPU has it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/model.h"
#include "nn/ops.h"
#include "nn/quant.h"
#include "bench_env.h"

#define PROMPT 512

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
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

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 3;
    int gen = argc > 3 ? atoi(argv[3]) : 64;
    const char *path = argc > 4 ? argv[4] : "models/base/SmolLM2-135M-Instruct.Q4_1.gguf";
    ws_nn_set_threads(threads);
    const char *isa = getenv("BENCH_ISA");
    for (int i = 0; isa && i <= WS_ISA_AVX512; i++)
        if (!strcmp(isa, ws_isa_name((ws_isa)i)) && !ws_quant_force_isa((ws_isa)i))
            fprintf(stderr, "this CPU lacks %s\n", isa);
    ws_model *m = NULL;
    ws_error err = {0};
    if (ws_model_load(path, 0, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int V = m->cfg.vocab_size, first = 17;
    int32_t prompt[PROMPT], shortp[16];
    for (int i = 0; i < PROMPT; i++)
        prompt[i] = first + (int32_t)(((long)i * 7919) % (V - first));
    for (int i = 0; i < 16; i++)
        shortp[i] = first + (int32_t)(((long)i * 31 + 5) % (V - first));
    float *logits = malloc((size_t)V * sizeof *logits);
    double *pp = calloc((size_t)reps + 1, sizeof *pp), *tg = calloc((size_t)reps + 1, sizeof *tg);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        ws_kv_cache *kc = ws_kv_cache_new(m, PROMPT + 8);
        double t0 = now();
        if (ws_model_infer(m, NULL, kc, prompt, PROMPT, logits, NULL, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        if (r >= 0)
            pp[r] = now() - t0;
        ws_kv_cache_free(kc);
        kc = ws_kv_cache_new(m, 16 + gen + 8);
        ws_model_infer(m, NULL, kc, shortp, 16, logits, NULL, &err);
        t0 = now();
        for (int s = 0; s < gen; s++) {
            int32_t tok = argmax(logits, V);
            ws_model_infer(m, NULL, kc, &tok, 1, logits, NULL, &err);
        }
        if (r >= 0)
            tg[r] = now() - t0;
        ws_kv_cache_free(kc);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double p = median(pp, reps), g = median(tg, reps);
    printf("{\"impl\": \"whatstyle\", \"isa\": \"%s\", \"threads\": %d, \"reps\": %d, \"prompt_tokens\": %d, "
           "\"prompt_s\": %.4f, \"prompt_tokens_per_s\": %.1f, \"gen_tokens\": %d, \"gen_s\": %.4f, "
           "\"gen_tokens_per_s\": %.1f, \"peak_mb\": %.0f}\n",
           ws_isa_name(ws_quant_isa()), threads, reps, PROMPT, p, PROMPT / p, gen, g, gen / g,
           (double)ru.ru_maxrss / 1024.0);
    free(logits);
    free(pp);
    free(tg);
    ws_model_free(m);
    return 0;
}
