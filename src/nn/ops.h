/* The operations of the decoder, each a _forward/_backward pair on contiguous f32 arrays
 * (row-major, tokens N = B*T rows). Backward functions ACCUMULATE (+=) into every gradient
 * they write, so callers zero gradients once and contributions from several uses add up;
 * a NULL gradient pointer skips that gradient. Parallelised on the engine's pool (parallel.h);
 * matrix products go to OpenBLAS sgemm (ws_sgemm). No function keeps state; all are thread-compatible. */
#ifndef WS_NN_OPS_H
#define WS_NN_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* C[M,N] = alpha op(A) op(B) + beta C (row-major; op transposes when ta/tb), through OpenBLAS
 * on one thread per part, the rows (or, when wider, the columns) of C split over the engine's
 * pool. All the engine's products go through here so that only the pool's threads run. */
void ws_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/* out[N,OC] = inp[N,IC] * w[OC,IC]^T (+ bias[OC]); beta=0 overwrites out, beta=1 adds to it. */
void ws_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IC, int OC,
                       float beta);
/* dinp += dout*w; dw += dout^T*inp; dbias += column sums of dout. */
void ws_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC);

/* out[N,C] = inp / rms(inp) * w; rstd[N] saved for backward. */
void ws_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
void ws_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C);

/* RoPE tables: cos/sin[max_pos, head_dim/2] for the config's theta and scaling. */
void ws_rope_tables(float *cos_t, float *sin_t, int max_pos, int head_dim, float theta, int scaling_type,
                    float factor, float low_freq, float high_freq, int orig_max_pos);
/* Rotates x[N, n_heads, head_dim] in place; row r has position pos[r] (or r % T when pos is NULL). */
void ws_rope_forward(float *x, const int32_t *pos, int N, int T, int n_heads, int head_dim,
                     const float *cos_t, const float *sin_t);
/* As llama.cpp (GGML) computes RoPE, for the quantized path to reproduce it: the angles p *
 * step^i by repeated float multiplication (step = theta^(-2/head_dim)), divided by
 * freq_factors[i] when given, times freq_scale; the rotation with the x_i products fused. */
void ws_rope_tables_ggml(float *cos_t, float *sin_t, int max_pos, int head_dim, float theta, float freq_scale,
                         const float *freq_factors);
void ws_rope_forward_ggml(float *x, const int32_t *pos, int N, int n_heads, int head_dim, const float *cos_t,
                          const float *sin_t);
/* The backward of a rotation is the inverse rotation, applied in place to the gradient. */
void ws_rope_backward(float *dx, const int32_t *pos, int N, int T, int n_heads, int head_dim,
                      const float *cos_t, const float *sin_t);

/* h = silu(g) * u, all [n]. */
void ws_swiglu_forward(float *h, const float *g, const float *u, size_t n);
void ws_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);
/* The same, writing dg and du (=) instead of adding: no zeroing pass before a first use. dg, du
 * may be g, u themselves (in place, when the forward values are not needed again). */
void ws_swiglu_backward_set(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

/* Sequences packed in rows of T positions, [B*T] arrays: position i attends to positions
 * starts[i]..i of its row (starts non-decreasing within a row) except skip_from[i]..skip_to[i]-1
 * (skip_from NULL: none skipped; starts[i] <= skip_from[i] <= skip_to[i] <= i), and its RoPE
 * position counts from starts[i] without the skipped ones. A skip lets a sequence reuse the
 * prefix of the one before it: its own positions see that prefix and not what came between. */
typedef struct ws_packing {
    const int32_t *starts, *skip_from, *skip_to;
} ws_packing;

/* Causal grouped-query attention. q[B,T,H,D], k,v[B,T,KV,D] -> out[B,T,H,D];
 * att[B,H,T,T] keeps the softmax probabilities for backward (only the causal blocks that
 * backward reads are written). pk (NULL: one sequence a row) packs several sequences in a row.
 * Heads run in parallel on the pool. */
void ws_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const ws_packing *pk, int B, int T, int H, int KV, int D);
void ws_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                           const float *q, const float *k, const float *v, int B, int T, int H, int KV,
                           int D);

/* out[N,C] = table[ids[r]] ; backward adds rows of dout into dtable. */
void ws_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int C);
void ws_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);

/* Cross-entropy over logits[N,V] with targets (negative = ignored). Returns the summed loss of
 * the counted rows; *count gets their number; lse[N] (may be NULL) gets each counted row's
 * log-sum-exp for the backward. */
double ws_crossentropy_forward(const float *logits, const int32_t *targets, int N, int V, int *count,
                               float *lse);
/* Turns logits into dlogits in place: (softmax - onehot) * scale * w[r] (w NULL: 1, the
 * gradient of the summed loss times scale; w: of the sum of each row's loss times its weight,
 * which may be negative); ignored rows become 0. lse is the forward's (or NULL: computed again). */
void ws_crossentropy_backward(float *logits, const int32_t *targets, int N, int V, float scale,
                              const float *lse, const float *w);

/* y[i] += x[i] */
void ws_add_inplace(float *y, const float *x, size_t n);

/* Number of threads the engine uses (OpenMP and BLAS); 0 = all cores. */
void ws_nn_set_threads(int n);
int ws_nn_threads(void);

#endif
