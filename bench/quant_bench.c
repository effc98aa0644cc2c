/* Benchmark of the quantized matrix products (nn/quant.h) per instruction set and thread count:
 * a 576x1536 Q4_1 gemv (N=1, SmolLM2's FFN shape), the 49152x576 Q8_0 output head gemv, a whole
 * SmolLM2-135M token's worth of weight gemvs (30 layers x q,k,v,o,gate,up,down in Q4_1 + the
 * Q8_0 head, ~98 MB, so weights stream from memory as in generation), the same sweep for 8
 * activation rows (a reply's batched sampling step: the multi-row dot kernels), the tiled sgemm path
 * at N=512 and the 8-bit many-row kernel at N=512 (ws_qmat_infer, a prompt's path), then under the
 * best instruction set the crossover of that kernel with the multi-row dots for 1..32 rows.
 * Prints medians of repeated runs: time, GB/s of weights read, GFLOP/s.
 * Usage: bench_quant_bench [max_threads [isa]]   (default 2 threads, every isa the CPU has;
 * isa: scalar, avx2 or avx512) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "nn/parallel.h"
#include "nn/quant.h"
#include "bench_env.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint32_t seed = 12345;
static uint32_t rnd(void)
{
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
}

/* a rows x cols matrix of type with random quants and sane scales (quantized from floats) */
static ws_qmat make_mat(ws_qtype type, int rows, int cols)
{
    size_t rb = ws_qtype_row_bytes(type, cols);
    uint8_t *data = ws_xaligned(64, rb * (size_t)rows);
    float *tmp = ws_xmalloc(sizeof(float) * (size_t)cols);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            tmp[c] = ((float)(rnd() & 0xffff) / 65536.0f - 0.5f) * 0.2f;
        ws_quantize_row(type, tmp, data + rb * (size_t)r, cols);
    }
    free(tmp);
    return (ws_qmat){type, rows, cols, rb, data, false};
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

typedef void (*fwd_fn)(float *, const float *, const ws_qmat *, const float *, int, float);

/* median seconds of one pass of fn (ws_qmat_forward) over mats[0..count) with N rows */
static double time_pass_fn(fwd_fn fn, const ws_qmat *mats, int count, const float *inp, float *out, int N,
                           int reps)
{
    double t[64];
    reps = reps > 64 ? 64 : reps;
    for (int rep = -1; rep < reps; rep++) { /* rep -1 warms up */
        double t0 = now_s();
        for (int m = 0; m < count; m++)
            fn(out, inp, &mats[m], NULL, N, 0.0f);
        if (rep >= 0)
            t[rep] = now_s() - t0;
    }
    return median(t, reps);
}

static double time_pass(const ws_qmat *mats, int count, const float *inp, float *out, int N, int reps)
{
    return time_pass_fn(ws_qmat_forward, mats, count, inp, out, N, reps);
}

static size_t bytes_of(const ws_qmat *mats, int count)
{
    size_t b = 0;
    for (int m = 0; m < count; m++)
        b += mats[m].row_bytes * (size_t)mats[m].rows;
    return b;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *only = argc > 2 ? argv[2] : NULL;
    const int D = 576, F = 1536, KV = 192, V = 49152, L = 30, NT = 512;
    ws_qmat ffn = make_mat(WS_QT_Q4_1, D, F), head = make_mat(WS_QT_Q8_0, V, D);
    /* one token of SmolLM2-135M: per layer q, k, v, o, gate, up, down; then the head */
    int n_model = L * 7 + 1;
    ws_qmat *model = ws_xcalloc((size_t)n_model, sizeof *model);
    for (int l = 0; l < L; l++) {
        model[7 * l + 0] = make_mat(WS_QT_Q4_1, D, D);
        model[7 * l + 1] = make_mat(WS_QT_Q4_1, KV, D);
        model[7 * l + 2] = make_mat(WS_QT_Q4_1, KV, D);
        model[7 * l + 3] = make_mat(WS_QT_Q4_1, D, D);
        model[7 * l + 4] = make_mat(WS_QT_Q4_1, F, D);
        model[7 * l + 5] = make_mat(WS_QT_Q4_1, F, D);
        model[7 * l + 6] = make_mat(WS_QT_Q4_1, D, F);
    }
    model[n_model - 1] = head;
    float *inp = ws_xmalloc(sizeof(float) * (size_t)NT * F),
          *out = ws_xmalloc(sizeof(float) * (size_t)NT * V);
    for (int i = 0; i < NT * F; i++)
        inp[i] = ((float)(rnd() & 0xffff) / 65536.0f - 0.5f);

    printf("quantized matmul benchmark (medians); model sweep = %.1f MB of weights per token\n",
           bytes_of(model, n_model) / 1e6);
    printf("%-7s %3s | %-22s | %-22s | %-24s | %-16s | %-18s | %s\n", "isa", "thr", "Q4_1 576x1536 gemv",
           "Q8_0 49152x576 head", "token sweep (Q4_1+head)", "sweep, 8 rows", "tiled N=512 Q4_1",
           "8-bit N=512 Q4_1");
    ws_isa best = ws_quant_isa();
    for (int isa = WS_ISA_SCALAR; isa <= WS_ISA_AVX512; isa++) {
        if ((only && strcmp(only, ws_isa_name((ws_isa)isa))) || !ws_quant_force_isa((ws_isa)isa))
            continue;
        for (int th = 1; th <= max_threads; th *= 2) {
            ws_parallel_set_threads(th);
            double t1 = time_pass(&ffn, 1, inp, out, 1, isa == WS_ISA_SCALAR ? 21 : 61);
            double t2 = time_pass(&head, 1, inp, out, 1, isa == WS_ISA_SCALAR ? 3 : 11);
            double t3 = time_pass(model, n_model, inp, out, 1, isa == WS_ISA_SCALAR ? 3 : 11);
            double t4 = time_pass(&ffn, 1, inp, out, NT, 5);
            /* a reply's batched sampling step: 4 samples and their 4 rows without the conversation */
            double t5 = time_pass(model, n_model, inp, out, 8, isa == WS_ISA_SCALAR ? 3 : 11);
            double t6 = time_pass_fn(ws_qmat_infer, &ffn, 1, inp, out, NT, 5);
            printf("%-7s %3d | %7.1f us %6.1f GB/s | %7.2f ms %6.1f GB/s | %7.2f ms %6.1f GB/s  | %7.2f ms   "
                   "   | "
                   "%6.1f GFLOP/s     | %6.1f GFLOP/s\n",
                   ws_isa_name((ws_isa)isa), th, t1 * 1e6, bytes_of(&ffn, 1) / t1 / 1e9, t2 * 1e3,
                   bytes_of(&head, 1) / t2 / 1e9, t3 * 1e3, bytes_of(model, n_model) / t3 / 1e9, t5 * 1e3,
                   2.0 * NT * D * F / t4 / 1e9, 2.0 * NT * D * F / t6 / 1e9);
            fflush(stdout);
        }
    }
    ws_quant_force_isa(only && !strcmp(only, "avx2") ? WS_ISA_AVX2 : best);
    ws_parallel_set_threads(1);
    printf(
        "crossover under %s, 1 thread, Q4_1 576x1536: rows, multi-row dots vs 8-bit many-row kernel (us)\n",
        ws_isa_name(ws_quant_isa()));
    for (int n = 1; n <= 32; n += n < 8 ? 1 : 4) {
        double a = time_pass_fn(ws_qmat_forward, &ffn, 1, inp, out, n, 31);
        double b = time_pass_fn(ws_qmat_infer, &ffn, 1, inp, out, n, 31);
        printf("  %2d rows: %7.1f vs %7.1f\n", n, a * 1e6, b * 1e6);
    }
    for (int n = 1; n <= 8; n += 7) { /* a token's weights streamed from memory (the head stays Q8_0 dots) */
        double a = time_pass_fn(ws_qmat_forward, model, n_model, inp, out, n, 11);
        double b = time_pass_fn(ws_qmat_infer, model, n_model, inp, out, n, 11);
        printf("  token sweep, %d row%s: %7.2f vs %7.2f ms\n", n, n > 1 ? "s" : "", a * 1e3, b * 1e3);
    }
    ws_quant_force_isa(best);
    for (int m = 0; m < n_model; m++)
        free((void *)model[m].data);
    free(model);
    free((void *)ffn.data);
    free(inp);
    free(out);
    return 0;
}
