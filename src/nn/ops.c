/* Forward/backward of every decoder op (see ops.h). Loops are written so that gcc vectorises
 * them (omp simd), threads come from OpenMP, and matrix products from OpenBLAS sgemm. */
#include "nn/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nn/config.h"
#include "nn/parallel.h"

void ws_nn_set_threads(int n)
{
    ws_parallel_set_threads(n);
    openblas_set_num_threads(ws_parallel_threads());
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

void ws_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IC,
                       int OC, float beta)
{
    if (N <= 0)
        return;
    if (N == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, IC, 1.0f, w, IC, inp, 1, beta, out, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, w, IC, beta, out, OC);
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
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
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++)
            ss += x[i] * x[i];
        float s = 1.0f / sqrtf(ss / C + j->eps);
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
    int C = j->C, N = (int)j->eps;   /* N travels in eps for this job */
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
} swiglu_job;

static void swiglu_fwd_range(void *p, size_t lo, size_t hi, int chunk)
{
    const swiglu_job *j = p;
    for (size_t i = lo; i < hi; i++)
        j->h[i] = j->g[i] / (1.0f + expf(-j->g[i])) * j->u[i];
}

void ws_swiglu_forward(float *h, const float *g, const float *u, size_t n)
{
    swiglu_job j = {.h = h, .g = g, .u = u};
    ws_parallel_for(n, 16384, swiglu_fwd_range, &j);
}

static void swiglu_bwd_range(void *p, size_t lo, size_t hi, int chunk)
{
    const swiglu_job *j = p;
    for (size_t i = lo; i < hi; i++) {
        float g = j->g[i], sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
        if (j->du)
            j->du[i] += j->dh[i] * silu;
        if (j->dg)
            j->dg[i] += j->dh[i] * j->u[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

void ws_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
    swiglu_job j = {.dg = dg, .du = du, .dh = dh, .g = g, .u = u};
    ws_parallel_for(n, 16384, swiglu_bwd_range, &j);
}

/* softmax of row i over columns 0..i (causal), zeros after */
typedef struct {
    float *s, *dp;
    const float *att;
    int T;
} softmax_job;

static void causal_softmax_range(void *p, size_t lo, size_t hi, int chunk)
{
    const softmax_job *sj = p;
    int T = sj->T;
    for (int i = (int)lo; i < (int)hi; i++) {
        float *row = sj->s + (size_t)i * T;
        float mx = -INFINITY;
        for (int j = 0; j <= i; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0;
        for (int j = 0; j <= i; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++)
            row[j] *= inv;
        for (int j = i + 1; j < T; j++)
            row[j] = 0;
    }
}

static void causal_softmax_rows(float *s, int T)
{
    softmax_job j = {.s = s, .T = T};
    ws_parallel_for((size_t)T, rows_min((size_t)T / 2), causal_softmax_range, &j);
}

/* dS = P * (dP - rowsum(P*dP)) for rows [lo, hi) */
static void softmax_bwd_range(void *p, size_t lo, size_t hi, int chunk)
{
    const softmax_job *jb = p;
    int T = jb->T;
    for (int i = (int)lo; i < (int)hi; i++) {
        const float *pr = jb->att + (size_t)i * T;
        float *dr = jb->dp + (size_t)i * T;
        float dot = 0;
        for (int j = 0; j <= i; j++)
            dot += pr[j] * dr[j];
        for (int j = 0; j <= i; j++)
            dr[j] = pr[j] * (dr[j] - dot);
        for (int j = i + 1; j < T; j++)
            dr[j] = 0;
    }
}

void ws_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          int B, int T, int H, int KV, int D)
{
    float scale = 1.0f / sqrtf((float)D);
    int grp = H / KV;
    size_t qs = (size_t)H * D, ks = (size_t)KV * D;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *qb = q + (size_t)b * T * qs + (size_t)h * D;
            const float *kb = k + (size_t)b * T * ks + (size_t)(h / grp) * D;
            const float *vb = v + (size_t)b * T * ks + (size_t)(h / grp) * D;
            float *a = att + ((size_t)b * H + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, qb, (int)qs, kb, (int)ks,
                        0.0f, a, T);
            causal_softmax_rows(a, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, a, T, vb, (int)ks, 0.0f,
                        out + (size_t)b * T * qs + (size_t)h * D, (int)qs);
        }
}

void ws_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *att, const float *q, const float *k, const float *v,
                           int B, int T, int H, int KV, int D)
{
    float scale = 1.0f / sqrtf((float)D);
    int grp = H / KV;
    size_t qs = (size_t)H * D, ks = (size_t)KV * D;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t qo = (size_t)b * T * qs + (size_t)h * D, ko = (size_t)b * T * ks + (size_t)(h / grp) * D;
            const float *a = att + ((size_t)b * H + h) * T * T;
            float *dp = scratch;
            /* dP = dO V^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dout + qo, (int)qs, v + ko,
                        (int)ks, 0.0f, dp, T);
            /* dV += P^T dO */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, a, T, dout + qo, (int)qs,
                        1.0f, dv + ko, (int)ks);
            softmax_job sj = {.dp = dp, .att = a, .T = T};
            ws_parallel_for((size_t)T, rows_min((size_t)T / 2), softmax_bwd_range, &sj);
            /* dQ += scale dS K ; dK += scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, scale, dp, T, k + ko, (int)ks,
                        1.0f, dq + qo, (int)qs);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, scale, dp, T, q + qo, (int)qs,
                        1.0f, dk + ko, (int)ks);
        }
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
    float *logits;
    const float *clogits;
    const int32_t *targets;
    int V;
    float scale;
    double sum[WS_MAX_THREADS];
    int cnt[WS_MAX_THREADS];
} ce_job;

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
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            mx = l[i] > mx ? l[i] : mx;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < V; i++)
            s += expf(l[i] - mx);
        total += log((double)s) + mx - l[j->targets[r]];
        cnt++;
    }
    j->sum[chunk] = total;
    j->cnt[chunk] = cnt;
}

double ws_crossentropy_forward(const float *logits, const int32_t *targets, int N, int V, int *count)
{
    ce_job j = {.clogits = logits, .targets = targets, .V = V};
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
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            mx = l[i] > mx ? l[i] : mx;
        float s = 0;
        for (int i = 0; i < V; i++) {
            l[i] = expf(l[i] - mx);
            s += l[i];
        }
        float inv = j->scale / s;
#pragma omp simd
        for (int i = 0; i < V; i++)
            l[i] *= inv;
        l[j->targets[r]] -= j->scale;
    }
}

void ws_crossentropy_backward(float *logits, const int32_t *targets, int N, int V, float scale)
{
    ce_job j = {.logits = logits, .targets = targets, .V = V, .scale = scale};
    ws_parallel_for((size_t)N, rows_min((size_t)V), ce_bwd_rows, &j);
}

void ws_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}
