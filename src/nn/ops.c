/* Forward/backward of every decoder op (see ops.h). Loops are written so that gcc vectorises
 * them (omp simd), threads come from the engine's pool (parallel.c), exponentials from vexp.h and
 * matrix products from OpenBLAS sgemm run on one thread per part. */
#include "nn/ops.h"

#include "nn/blas_lib.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/config.h"
#include "nn/parallel.h"
#include "nn/vexp.h"

void ws_nn_set_threads(int n)
{
    /* OpenBLAS runs on one thread: the engine's pool splits products itself (ws_sgemm), so two
     * thread pools never compete for the cores (again here: a caller may have changed it) */
    ws__blas()->openblas_set_num_threads(1);
    ws_parallel_set_threads(n);
}

typedef struct {
    bool ta, tb, split_n;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job;

#define GEMM_UNIT 16 /* rows or columns per unit of the split */

static void gemm_part(void *p, size_t lo, size_t hi, int chunk)
{
    const gemm_job *j = p;
    int a = (int)lo * GEMM_UNIT, b = (int)hi * GEMM_UNIT, lim = j->split_n ? j->N : j->M;
    b = b > lim ? lim : b;
    if (a >= b)
        return;
    const float *A = j->A, *B = j->B;
    float *C = j->C;
    int M = j->M, N = j->N;
    if (j->split_n) {
        B += j->tb ? (size_t)a * j->ldb : (size_t)a;
        C += a;
        N = b - a;
    } else {
        A += j->ta ? (size_t)a : (size_t)a * j->lda;
        C += (size_t)a * j->ldc;
        M = b - a;
    }
    ws__blas()->cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans,
                            j->tb ? CblasTrans : CblasNoTrans, M, N, j->K, j->alpha, A, j->lda, B, j->ldb,
                            j->beta, C, j->ldc);
}

void ws_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    gemm_job j = {ta, tb, N > M, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
    size_t units = (size_t)((j.split_n ? N : M) + GEMM_UNIT - 1) / GEMM_UNIT;
    /* under about a million multiply-adds a fork costs more than it gives */
    bool small = (double)M * N * K < 1048576.0;
    ws_parallel_for(units, small ? units : 1, gemm_part, &j);
}

int ws_nn_threads(void)
{
    return ws_parallel_threads();
}

/* rows per chunk below which a loop stays on one thread: about 16k floats of work */
static size_t rows_min(size_t row_len)
{
    size_t r = 16384 / (row_len ? row_len : 1);
    return r ? r : 1;
}

typedef struct {
    float *out;
    const float *w, *x;
    int IC, OC;
    float beta;
} gemv_job;

static void gemv_part(void *p, size_t lo, size_t hi, int chunk)
{
    const gemv_job *j = p;
    size_t a = lo * GEMM_UNIT, b = hi * GEMM_UNIT;
    b = b > (size_t)j->OC ? (size_t)j->OC : b;
    if (a < b)
        ws__blas()->cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(b - a), j->IC, 1.0f, j->w + a * j->IC,
                                j->IC, j->x, 1, j->beta, j->out + a, 1);
}

void ws_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IC, int OC,
                       float beta)
{
    if (N <= 0)
        return;
    if (N == 1) {
        /* one token: out = W x, rows of W split over the pool (it is a pass over the weights,
         * bound by memory bandwidth, which one core does not saturate) */
        gemv_job j = {.out = out, .w = w, .x = inp, .IC = IC, .OC = OC, .beta = beta};
        size_t units = ((size_t)OC + GEMM_UNIT - 1) / GEMM_UNIT;
        ws_parallel_for(units, (size_t)OC * IC < 262144 ? units : 1, gemv_part, &j);
    } else {
        ws_sgemm(false, true, N, OC, IC, 1.0f, inp, IC, w, IC, beta, out, OC);
    }
    if (bias)
        for (int r = 0; r < N; r++) {
            float *o = out + (size_t)r * OC;
#pragma omp simd
            for (int c = 0; c < OC; c++)
                o[c] += bias[c];
        }
}

void ws_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC)
{
    if (dinp)
        ws_sgemm(false, false, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
    if (dw)
        ws_sgemm(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (dbias)
        for (int r = 0; r < N; r++) {
            const float *d = dout + (size_t)r * OC;
#pragma omp simd
            for (int c = 0; c < OC; c++)
                dbias[c] += d[c];
        }
}

typedef struct {
    float *out, *rstd, *dinp, *dw;
    const float *inp, *w, *dout, *srstd;
    int C;
    float eps;
} rms_job;

static void rms_fwd_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const rms_job *j = p;
    int C = j->C;
    for (size_t r = lo; r < hi; r++) {
        const float *x = j->inp + r * C;
        float *o = j->out + r * C;
        /* the squares summed in double, the mean rounded to float before eps is added: as GGML
         * does, so that the quantized path's 8-bit activations round as llama.cpp's do */
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++)
            ss += (double)(x[i] * x[i]);
        float s = 1.0f / sqrtf((float)(ss / C) + j->eps);
        if (j->rstd)
            j->rstd[r] = s;
#pragma omp simd
        for (int i = 0; i < C; i++)
            o[i] = x[i] * s * j->w[i];
    }
}

void ws_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps)
{
    rms_job j = {.out = out, .rstd = rstd, .inp = inp, .w = w, .C = C, .eps = eps};
    ws_parallel_for((size_t)N, rows_min((size_t)C), rms_fwd_rows, &j);
}

/* y_i = x_i s w_i, s = (mean(x^2)+eps)^-1/2; dx_i = s (dy_i w_i) - x_i s^3/C sum_j dy_j w_j x_j */
static void rms_bwd_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const rms_job *j = p;
    int C = j->C;
    for (size_t r = lo; r < hi; r++) {
        const float *x = j->inp + r * C, *dy = j->dout + r * C;
        float *dx = j->dinp + r * C;
        float s = j->srstd[r], dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < C; i++)
            dot += dy[i] * j->w[i] * x[i];
        float k = dot * s * s * s / C;
#pragma omp simd
        for (int i = 0; i < C; i++)
            dx[i] += s * dy[i] * j->w[i] - k * x[i];
    }
}

/* dw over column blocks [lo, hi) of C, all rows */
static void rms_dw_cols(void *p, size_t lo, size_t hi, int chunk)
{
    const rms_job *j = p;
    int C = j->C, N = (int)j->eps; /* N travels in eps for this job */
    for (int r = 0; r < N; r++) {
        const float *x = j->inp + (size_t)r * C, *dy = j->dout + (size_t)r * C;
        float s = j->srstd[r];
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            j->dw[i] += dy[i] * x[i] * s;
    }
}

void ws_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C)
{
    rms_job j = {.dinp = dinp, .dw = dw, .dout = dout, .inp = inp, .w = w, .srstd = rstd, .C = C};
    if (dinp)
        ws_parallel_for((size_t)N, rows_min((size_t)C), rms_bwd_rows, &j);
    if (dw) {
        j.eps = (float)N;
        ws_parallel_for((size_t)C, (size_t)C * N > 32768 ? 16 : (size_t)C, rms_dw_cols, &j);
    }
}

void ws_rope_tables(float *cos_t, float *sin_t, int max_pos, int head_dim, float theta, int scaling_type,
                    float factor, float low_freq, float high_freq, int orig_max_pos)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* as transformers: inv_freq = 1 / theta^(2i/d) in float32 */
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        if (scaling_type == WS_ROPE_LINEAR) {
            inv /= factor;
        } else if (scaling_type == WS_ROPE_LLAMA3) {
            float low_wl = (float)orig_max_pos / low_freq, high_wl = (float)orig_max_pos / high_freq;
            float wl = 2.0f * (float)M_PI / inv;
            if (wl > low_wl) {
                inv = inv / factor;
            } else if (wl >= high_wl) {
                float smooth = ((float)orig_max_pos / wl - low_freq) / (high_freq - low_freq);
                inv = (1.0f - smooth) * inv / factor + smooth * inv;
            }
        }
        for (int p = 0; p < max_pos; p++) {
            float a = (float)p * inv;
            cos_t[(size_t)p * half + i] = cosf(a);
            sin_t[(size_t)p * half + i] = sinf(a);
        }
    }
}

void ws_rope_tables_ggml(float *cos_t, float *sin_t, int max_pos, int head_dim, float theta, float freq_scale,
                         const float *freq_factors)
{
    int half = head_dim / 2;
    float step = powf(theta, -2.0f / (float)head_dim);
    for (int p = 0; p < max_pos; p++) {
        float a = (float)p;
        for (int i = 0; i < half; i++, a *= step) {
            float t = freq_scale * (freq_factors ? a / freq_factors[i] : a);
            cos_t[(size_t)p * half + i] = cosf(t);
            sin_t[(size_t)p * half + i] = sinf(t);
        }
    }
}

typedef struct {
    float *x;
    const int32_t *pos;
    int T, n_heads, head_dim;
    const float *cos_t, *sin_t;
    float sign;
} rope_job;

static void rope_rows(void *arg, size_t lo, size_t hi, int chunk)
{
    const rope_job *j = arg;
    int half = j->head_dim / 2, n_heads = j->n_heads, head_dim = j->head_dim;
    float *x = j->x, sign = j->sign;
    for (size_t r = lo; r < hi; r++) {
        int p = j->pos ? j->pos[r] : (int)(r % (size_t)j->T);
        const float *cos_t = j->cos_t, *sin_t = j->sin_t;
        const float *c = cos_t + (size_t)p * half, *s = sin_t + (size_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * head_dim;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half], sn = sign * s[i];
                v[i] = x1 * c[i] - x2 * sn;
                v[i + half] = x2 * c[i] + x1 * sn;
            }
        }
    }
}

/* x1 c - x2 s and x1 s + x2 c with the x1 products fused (one rounding), as GGML's compiled
 * rope kernel computes them; fmaf is exact wherever it runs, the FMA clone is only faster */
static inline __attribute__((always_inline)) void rope_fused_row(float *v, int half, const float *c,
                                                                 const float *s)
{
#pragma omp simd
    for (int i = 0; i < half; i++) {
        float x1 = v[i], x2 = v[i + half];
        v[i] = fmaf(x1, c[i], -(x2 * s[i]));
        v[i + half] = fmaf(x1, s[i], x2 * c[i]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void rope_fused_row_fma(float *v, int half, const float *c,
                                                                   const float *s)
{
    rope_fused_row(v, half, c, s);
}
#endif

static void rope_fused_rows(void *arg, size_t lo, size_t hi, int chunk)
{
    const rope_job *j = arg;
    int half = j->head_dim / 2;
#if defined(__x86_64__) && defined(__GNUC__)
    bool fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    for (size_t r = lo; r < hi; r++)
        for (int h = 0; h < j->n_heads; h++) {
            float *v = j->x + ((size_t)r * j->n_heads + h) * j->head_dim;
            const float *c = j->cos_t + (size_t)j->pos[r] * half, *s = j->sin_t + (size_t)j->pos[r] * half;
#if defined(__x86_64__) && defined(__GNUC__)
            if (fma) {
                rope_fused_row_fma(v, half, c, s);
                continue;
            }
#endif
            rope_fused_row(v, half, c, s);
        }
}

void ws_rope_forward_ggml(float *x, const int32_t *pos, int N, int n_heads, int head_dim, const float *cos_t,
                          const float *sin_t)
{
    rope_job j = {x, pos, 0, n_heads, head_dim, cos_t, sin_t, 1.0f};
    ws_parallel_for((size_t)N, rows_min((size_t)n_heads * head_dim), rope_fused_rows, &j);
}

static void rope_apply(float *x, const int32_t *pos, int N, int T, int n_heads, int head_dim,
                       const float *cos_t, const float *sin_t, float sign)
{
    rope_job j = {x, pos, T, n_heads, head_dim, cos_t, sin_t, sign};
    ws_parallel_for((size_t)N, rows_min((size_t)n_heads * head_dim), rope_rows, &j);
}

void ws_rope_forward(float *x, const int32_t *pos, int N, int T, int n_heads, int head_dim,
                     const float *cos_t, const float *sin_t)
{
    rope_apply(x, pos, N, T, n_heads, head_dim, cos_t, sin_t, 1.0f);
}

void ws_rope_backward(float *dx, const int32_t *pos, int N, int T, int n_heads, int head_dim,
                      const float *cos_t, const float *sin_t)
{
    rope_apply(dx, pos, N, T, n_heads, head_dim, cos_t, sin_t, -1.0f);
}

typedef struct {
    float *h, *dg, *du;
    const float *g, *u, *dh;
    float keep; /* 1: backward adds to dg, du; 0: overwrites them */
} swiglu_job;

static void swiglu_fwd_range(void *p, size_t lo, size_t hi, int chunk)
{
    const swiglu_job *j = p;
    float *h = j->h;
    const float *g = j->g, *u = j->u;
#pragma omp simd
    for (size_t i = lo; i < hi; i++)
        h[i] = g[i] / (1.0f + ws_vexpf(-g[i])) * u[i];
}

void ws_swiglu_forward(float *h, const float *g, const float *u, size_t n)
{
    swiglu_job j = {.h = h, .g = g, .u = u};
    ws_parallel_for(n, 16384, swiglu_fwd_range, &j);
}

static void swiglu_bwd_range(void *p, size_t lo, size_t hi, int chunk)
{
    const swiglu_job *j = p;
    float *dg = j->dg, *du = j->du;
    const float *gv = j->g, *u = j->u, *dh = j->dh;
    if (dg && du && j->keep == 0.0f) {
        /* every input is read before either output is written: dg, du may be g, u themselves */
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = gv[i], uu = u[i], d = dh[i], sg = 1.0f / (1.0f + ws_vexpf(-g));
            du[i] = d * (g * sg);
            dg[i] = d * uu * sg * (1.0f + g * (1.0f - sg));
        }
        return;
    }
    if (dg && du) {
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = gv[i], sg = 1.0f / (1.0f + ws_vexpf(-g));
            du[i] += dh[i] * (g * sg);
            dg[i] += dh[i] * u[i] * sg * (1.0f + g * (1.0f - sg));
        }
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        float g = gv[i], sg = 1.0f / (1.0f + ws_vexpf(-g)), silu = g * sg;
        float vu = dh[i] * silu, vg = dh[i] * u[i] * sg * (1.0f + g * (1.0f - sg)); /* read before written */
        if (du)
            du[i] = j->keep != 0.0f ? du[i] + vu : vu;
        if (dg)
            dg[i] = j->keep != 0.0f ? dg[i] + vg : vg;
    }
}

void ws_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
    swiglu_job j = {.dg = dg, .du = du, .dh = dh, .g = g, .u = u, .keep = 1.0f};
    ws_parallel_for(n, 16384, swiglu_bwd_range, &j);
}

void ws_swiglu_backward_set(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
    swiglu_job j = {.dg = dg, .du = du, .dh = dh, .g = g, .u = u, .keep = 0.0f};
    ws_parallel_for(n, 16384, swiglu_bwd_range, &j);
}

/* Attention works on causal row blocks: rows [r0, r1) of a head only see keys [0, r1), so the
 * products skip the masked upper triangle except inside the diagonal block. */
#define ATT_BLOCK 32 /* 32 measured ~6% faster than 64 for T = 256, D = 64 (fewer masked FLOPs) */

typedef struct {
    float *out, *att, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *catt;
    const int32_t *starts;              /* [B*T] where each position's sequence begins in its row; NULL: 0 */
    const int32_t *skip_from, *skip_to; /* [B*T] keys each position skips; NULL: none */
    int T, H, KV, D;
    float scale;
} attn_job;

/* rows [r0, r1) of s (row stride T): softmax of row i over columns st[i]..i (st NULL: 0..i)
 * but sf[i]..sk[i]-1 (sf NULL: none), zeros elsewhere up to r1 (a zero probability also gives a
 * zero gradient in backward) */
static void causal_softmax_block(float *s, const int32_t *st, const int32_t *sf, const int32_t *sk, int T,
                                 int r0, int r1)
{
    for (int i = r0; i < r1; i++) {
        float *row = s + (size_t)i * T;
        int from = st ? st[i] : 0, lim = i + 1;
        float mx = -INFINITY;
        for (int j = 0; j < from; j++)
            row[j] = 0;
        if (sf)
            for (int j = sf[i]; j < sk[i]; j++)
                row[j] = -INFINITY; /* exp gives 0: out of the max and the sum */
#pragma omp simd reduction(max : mx)
        for (int j = from; j < lim; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = from; j < lim; j++) {
            row[j] = ws_vexpf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = from; j < lim; j++)
            row[j] *= inv;
        for (int j = lim; j < r1; j++)
            row[j] = 0;
    }
}

/* heads [lo, hi) of the B*H (sequence, head) pairs */
static void attn_fwd_heads(void *p, size_t lo, size_t hi, int chunk)
{
    const attn_job *jb = p;
    int T = jb->T, H = jb->H, D = jb->D, grp = H / jb->KV, qs = H * D, ks = jb->KV * D;
    for (size_t job = lo; job < hi; job++) {
        int b = (int)(job / (size_t)H), h = (int)(job % (size_t)H);
        const float *qb = jb->q + (size_t)b * T * qs + (size_t)h * D;
        const float *kb = jb->k + (size_t)b * T * ks + (size_t)(h / grp) * D;
        const float *vb = jb->v + (size_t)b * T * ks + (size_t)(h / grp) * D;
        float *a = jb->att + job * T * T, *ob = jb->out + (size_t)b * T * qs + (size_t)h * D;
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, m = r1 - r0;
            float *ab = a + (size_t)r0 * T;
            ws__blas()->cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, D, jb->scale,
                                    qb + (size_t)r0 * qs, qs, kb, ks, 0.0f, ab, T);
            size_t ro = (size_t)b * T;
            causal_softmax_block(a, jb->starts ? jb->starts + ro : NULL,
                                 jb->skip_from ? jb->skip_from + ro : NULL,
                                 jb->skip_to ? jb->skip_to + ro : NULL, T, r0, r1);
            ws__blas()->cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, r1, 1.0f, ab, T, vb, ks,
                                    0.0f, ob + (size_t)r0 * qs, qs);
        }
    }
}

void ws_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const ws_packing *pk, int B, int T, int H, int KV, int D)
{
    attn_job j = {.out = out,
                  .att = att,
                  .q = q,
                  .k = k,
                  .v = v,
                  .starts = pk ? pk->starts : NULL,
                  .skip_from = pk && pk->starts && pk->skip_to ? pk->skip_from : NULL,
                  .skip_to = pk && pk->starts && pk->skip_from ? pk->skip_to : NULL,
                  .T = T,
                  .H = H,
                  .KV = KV,
                  .D = D,
                  .scale = 1.0f / sqrtf((float)D)};
    ws_parallel_for((size_t)B * H, 1, attn_fwd_heads, &j);
}

/* KV groups [lo, hi) of the B*KV (sequence, KV head) pairs: each owns its dK, dV rows */
static void attn_bwd_groups(void *p, size_t lo, size_t hi, int chunk)
{
    const attn_job *jb = p;
    int T = jb->T, H = jb->H, KV = jb->KV, D = jb->D, grp = H / KV, qs = H * D, ks = KV * D;
    float scale = jb->scale;
    float *dp = ws_xmalloc((size_t)ATT_BLOCK * T * sizeof(float));
    for (size_t job = lo; job < hi; job++) {
        int b = (int)(job / (size_t)KV), kvh = (int)(job % (size_t)KV);
        size_t ko = (size_t)b * T * ks + (size_t)kvh * D;
        const float *kb = jb->k + ko, *vb = jb->v + ko;
        float *dkb = jb->dk + ko, *dvb = jb->dv + ko;
        for (int h = kvh * grp; h < (kvh + 1) * grp; h++) {
            size_t qo = (size_t)b * T * qs + (size_t)h * D;
            const float *a = jb->catt + ((size_t)b * H + h) * T * T;
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, m = r1 - r0;
                const float *ab = a + (size_t)r0 * T, *dob = jb->dout + qo + (size_t)r0 * qs;
                /* dP = dO V^T ; dV += P^T dO */
                ws__blas()->cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, D, 1.0f, dob, qs, vb,
                                        ks, 0.0f, dp, T);
                ws__blas()->cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, m, 1.0f, ab, T, dob,
                                        qs, 1.0f, dvb, ks);
                /* dS = P * (dP - rowsum(P * dP)) */
                for (int i = 0; i < m; i++) {
                    const float *pr = ab + (size_t)i * T;
                    float *dr = dp + (size_t)i * T, dot = 0;
                    int lim = r0 + i + 1;
#pragma omp simd reduction(+ : dot)
                    for (int j = 0; j < lim; j++)
                        dot += pr[j] * dr[j];
#pragma omp simd
                    for (int j = 0; j < lim; j++)
                        dr[j] = pr[j] * (dr[j] - dot);
                    for (int j = lim; j < r1; j++)
                        dr[j] = 0;
                }
                /* dQ += scale dS K ; dK += scale dS^T Q */
                ws__blas()->cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, r1, scale, dp, T, kb,
                                        ks, 1.0f, jb->dq + qo + (size_t)r0 * qs, qs);
                ws__blas()->cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, m, scale, dp, T,
                                        jb->q + qo + (size_t)r0 * qs, qs, 1.0f, dkb, ks);
            }
        }
    }
    free(dp);
}

void ws_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, int B, int T, int H, int KV, int D)
{
    attn_job j = {.dq = dq,
                  .dk = dk,
                  .dv = dv,
                  .dout = dout,
                  .catt = att,
                  .q = q,
                  .k = k,
                  .v = v,
                  .T = T,
                  .H = H,
                  .KV = KV,
                  .D = D,
                  .scale = 1.0f / sqrtf((float)D)};
    ws_parallel_for((size_t)B * KV, 1, attn_bwd_groups, &j);
}

void ws_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C)
{
    for (int r = 0; r < N; r++)
        memcpy(out + (size_t)r * C, table + (size_t)ids[r] * C, (size_t)C * sizeof(float));
}

void ws_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C)
{
    for (int r = 0; r < N; r++) {
        float *d = dtable + (size_t)ids[r] * C;
        const float *g = dout + (size_t)r * C;
#pragma omp simd
        for (int i = 0; i < C; i++)
            d[i] += g[i];
    }
}

typedef struct {
    float *logits, *lse;
    const float *clogits, *clse, *w;
    const int32_t *targets;
    int V;
    float scale;
    double sum[WS_MAX_THREADS];
    int cnt[WS_MAX_THREADS];
} ce_job;

/* log(sum(exp(l))) of one row of V logits in one pass over memory: each block's max and sum
 * while it is in L1, merged into a running max and a sum rescaled to it */
#define LSE_BLOCK 512
static double row_lse(const float *l, int V)
{
    float mx = -INFINITY;
    double s = 0;
    for (int b0 = 0; b0 < V; b0 += LSE_BLOCK) {
        int b1 = b0 + LSE_BLOCK < V ? b0 + LSE_BLOCK : V;
        float bm = -INFINITY, bs = 0;
#pragma omp simd reduction(max : bm)
        for (int i = b0; i < b1; i++)
            bm = l[i] > bm ? l[i] : bm;
#pragma omp simd reduction(+ : bs)
        for (int i = b0; i < b1; i++)
            bs += ws_vexpf(l[i] - bm);
        if (bm > mx) {
            s = s * exp((double)mx - bm) + bs;
            mx = bm;
        } else {
            s += bs * exp((double)bm - mx);
        }
    }
    return log(s) + mx;
}

static void ce_fwd_rows(void *p, size_t lo, size_t hi, int chunk)
{
    ce_job *j = p;
    int V = j->V;
    double total = 0;
    int cnt = 0;
    for (size_t r = lo; r < hi; r++) {
        if (j->targets[r] < 0)
            continue;
        const float *l = j->clogits + r * V;
        double lse = row_lse(l, V);
        if (j->lse)
            j->lse[r] = (float)lse;
        total += lse - l[j->targets[r]];
        cnt++;
    }
    j->sum[chunk] = total;
    j->cnt[chunk] = cnt;
}

double ws_crossentropy_forward(const float *logits, const int32_t *targets, int N, int V, int *count,
                               float *lse)
{
    ce_job j = {.clogits = logits, .lse = lse, .targets = targets, .V = V};
    ws_parallel_for((size_t)N, rows_min((size_t)V), ce_fwd_rows, &j);
    double total = 0;
    int cnt = 0;
    for (int c = 0; c < WS_MAX_THREADS; c++) {
        total += j.sum[c];
        cnt += j.cnt[c];
    }
    *count = cnt;
    return total;
}

static void ce_bwd_rows(void *p, size_t lo, size_t hi, int chunk)
{
    ce_job *j = p;
    int V = j->V;
    for (size_t r = lo; r < hi; r++) {
        float *l = j->logits + r * V;
        if (j->targets[r] < 0) {
            memset(l, 0, (size_t)V * sizeof(float));
            continue;
        }
        float scale = j->w ? j->scale * j->w[r] : j->scale;
        float lse = j->clse ? j->clse[r] : (float)row_lse(l, V);
#pragma omp simd
        for (int i = 0; i < V; i++)
            l[i] = ws_vexpf(l[i] - lse) * scale;
        l[j->targets[r]] -= scale;
    }
}

void ws_crossentropy_backward(float *logits, const int32_t *targets, int N, int V, float scale,
                              const float *lse, const float *w)
{
    ce_job j = {.logits = logits, .clse = lse, .targets = targets, .V = V, .scale = scale, .w = w};
    ws_parallel_for((size_t)N, rows_min((size_t)V), ce_bwd_rows, &j);
}

void ws_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}
