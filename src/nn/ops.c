/* Forward/backward of every decoder op (see ops.h). Loops are written so that gcc vectorises
 * them (omp simd), threads come from OpenMP, and matrix products from OpenBLAS sgemm. */
#include "nn/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn/config.h"

void ws_nn_set_threads(int n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ws_nn_threads(void)
{
    return omp_get_max_threads();
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
    if (bias) {
#pragma omp parallel for if ((size_t)N * OC > 65536)
        for (int r = 0; r < N; r++) {
            float *o = out + (size_t)r * OC;
#pragma omp simd
            for (int c = 0; c < OC; c++)
                o[c] += bias[c];
        }
    }
}

void ws_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC)
{
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (dbias) {
#pragma omp parallel for if ((size_t)N * OC > 65536)
        for (int c = 0; c < OC; c++) {
            float s = 0;
            for (int r = 0; r < N; r++)
                s += dout[(size_t)r * OC + c];
            dbias[c] += s;
        }
    }
}

void ws_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps)
{
#pragma omp parallel for if ((size_t)N * C > 32768)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++)
            ss += x[i] * x[i];
        float s = 1.0f / sqrtf(ss / C + eps);
        if (rstd)
            rstd[r] = s;
#pragma omp simd
        for (int i = 0; i < C; i++)
            o[i] = x[i] * s * w[i];
    }
}

void ws_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C)
{
    /* y_i = x_i s w_i, s = (mean(x^2)+eps)^-1/2; dx_i = s (dy_i w_i) - x_i s^3/C sum_j dy_j w_j x_j */
    if (dinp) {
#pragma omp parallel for if ((size_t)N * C > 32768)
        for (int r = 0; r < N; r++) {
            const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
            float *dx = dinp + (size_t)r * C;
            float s = rstd[r], dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int i = 0; i < C; i++)
                dot += dy[i] * w[i] * x[i];
            float k = dot * s * s * s / C;
#pragma omp simd
            for (int i = 0; i < C; i++)
                dx[i] += s * dy[i] * w[i] - k * x[i];
        }
    }
    if (dw) {
        int nt = omp_get_max_threads();
#pragma omp parallel for if ((size_t)N * C > 32768) num_threads(nt)
        for (int i0 = 0; i0 < C; i0 += 64) {
            int i1 = i0 + 64 < C ? i0 + 64 : C;
            for (int r = 0; r < N; r++) {
                const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
                float s = rstd[r];
                for (int i = i0; i < i1; i++)
                    dw[i] += dy[i] * x[i] * s;
            }
        }
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

static void rope_apply(float *x, const int32_t *pos, int N, int T, int n_heads, int head_dim,
                       const float *cos_t, const float *sin_t, float sign)
{
    int half = head_dim / 2;
#pragma omp parallel for if ((size_t)N * n_heads * head_dim > 32768)
    for (int r = 0; r < N; r++) {
        int p = pos ? pos[r] : r % T;
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

void ws_swiglu_forward(float *h, const float *g, const float *u, size_t n)
{
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++)
        h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void ws_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sg;
        if (du)
            du[i] += dh[i] * silu;
        if (dg)
            dg[i] += dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
    }
}

/* softmax of row i over columns 0..i (causal), zeros after */
static void causal_softmax_rows(float *s, int T)
{
#pragma omp parallel for if (T >= 64)
    for (int i = 0; i < T; i++) {
        float *row = s + (size_t)i * T;
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
            /* dS = P * (dP - rowsum(P*dP)) */
#pragma omp parallel for if (T >= 64)
            for (int i = 0; i < T; i++) {
                const float *pr = a + (size_t)i * T;
                float *dr = dp + (size_t)i * T;
                float dot = 0;
                for (int j = 0; j <= i; j++)
                    dot += pr[j] * dr[j];
                for (int j = 0; j <= i; j++)
                    dr[j] = pr[j] * (dr[j] - dot);
                for (int j = i + 1; j < T; j++)
                    dr[j] = 0;
            }
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

double ws_crossentropy_forward(const float *logits, const int32_t *targets, int N, int V, int *count)
{
    double total = 0;
    int cnt = 0;
#pragma omp parallel for reduction(+ : total, cnt) if ((size_t)N * V > 65536)
    for (int r = 0; r < N; r++) {
        if (targets[r] < 0)
            continue;
        const float *l = logits + (size_t)r * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            mx = l[i] > mx ? l[i] : mx;
        double s = 0;
        for (int i = 0; i < V; i++)
            s += exp((double)(l[i] - mx));
        total += log(s) + mx - l[targets[r]];
        cnt++;
    }
    *count = cnt;
    return total;
}

void ws_crossentropy_backward(float *logits, const int32_t *targets, int N, int V, float scale)
{
#pragma omp parallel for if ((size_t)N * V > 65536)
    for (int r = 0; r < N; r++) {
        float *l = logits + (size_t)r * V;
        if (targets[r] < 0) {
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
        float inv = scale / s;
#pragma omp simd
        for (int i = 0; i < V; i++)
            l[i] *= inv;
        l[targets[r]] -= scale;
    }
}

void ws_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}
