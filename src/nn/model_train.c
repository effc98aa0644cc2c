/* Training passes of the decoder over a (B,T) batch: the activations kept for backward (llm.c
 * style, nothing recomputed), the LoRA terms with dropout, and the forward/backward pair.
 * Products go through the projection helpers of model_int.h, so a frozen quantized base trains
 * adapters directly (QLoRA-style): by default with f32 products on blocks dequantized on the
 * fly, or with ws_acts_base_8bit with 8-bit activations times the quantized blocks forward and
 * transposed Q8_0 copies for the input gradients backward. */
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/lora.h"
#include "nn/model_int.h"
#include "nn/ops.h"
#include "nn/parallel.h"
#include "nn/prof.h"
#include "nn/vexp.h"

/* ---------------------------------------------------------------- activations */

typedef struct {
    float *xn1, *rstd1, *q, *k, *v, *att, *atty, *mid, *xn2, *rstd2, *g, *u;
} layer_acts;

struct ws_acts {
    int maxB, maxT; /* allocated for */
    int B, T;       /* of the last forward */
    size_t bytes;
    float *res; /* [L+1, N, C] residual stream */
    layer_acts *L;
    float *xf, *rstdf, *logits;
    const int32_t *inputs;
    int32_t *targets;
    bool packed;          /* the last forward had packed rows (ws_model_forward_packed) */
    int32_t *pos;         /* [N] their RoPE positions (i - starts[i]) */
    int count;            /* counted targets of the last forward */
    int V;                /* vocabulary: the width of a logits row */
    float *tw;            /* [N] per head row: the weights of the next backward (ws_acts_weigh_targets) */
    bool weighted;        /* the next backward uses tw instead of the mean */
    bool head_on_targets; /* logits only for rows with a target (ws_acts_head_on_targets) */
    int n_head;           /* rows the head ran on in the last forward */
    int32_t *head_rows;   /* their indices [N] */
    float *xsel;          /* their final-norm outputs, then their gradients [N, C] */
    /* LoRA */
    float **lxa, **lxd; /* [L*NT]: x A^T [N,r]; dropped input [N,in] (dropout only) */
    uint64_t *lseed;
    int lrank;
    /* backward scratch */
    float *dres, *dxn, *dh, *dq, *dk, *dv, *datty, *lse, *ldxa, *ltmp;
    float *h; /* [N, F] a layer's SwiGLU output: made again in backward from G and U (kept per
                 layer it would be the largest activation) */
    float *block;
    /* 8-bit products through a frozen quantized base (ws_acts_base_8bit) */
    bool q8;
    ws_qmat *bt;      /* [L*NT + 1] transposed Q8_0 copies (the last: the head); data NULL: none */
    uint8_t **bt_own; /* their rows, owned */
    int n_bt;
    size_t bt_bytes;
};

ws_acts *ws_acts_new(const ws_model *m, const ws_lora *lora, int B, int T)
{
    const ws_model_config *c = &m->cfg;
    size_t N = (size_t)B * T, C = c->dim, HD = (size_t)c->n_heads * c->head_dim,
           KD = (size_t)c->n_kv_heads * c->head_dim, F = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    ws_acts *a = ws_xcalloc(1, sizeof *a);
    a->maxB = a->B = B;
    a->maxT = a->T = T;
    a->L = ws_xcalloc(L, sizeof *a->L);
    size_t r = lora ? (size_t)lora->cfg.rank : 0, maxin = C > F ? C : F;
    maxin = maxin > HD ? maxin : HD;
    size_t total = (L + 1) * N * C +
                   L * (N * (4 * C + HD * 2 + 2 * KD + 2 * F + 2) + (size_t)B * c->n_heads * T * T) + N * C +
                   N + N * V + N * C * 2 + 2 * N * F + N * HD * 2 + N * KD * 2 + N + L * 64 * 16 + 64 * 32;
    if (lora) {
        for (size_t l = 0; l < L; l++)
            for (int t = 0; t < WS_LORA_NT; t++)
                if (lora->A[l * WS_LORA_NT + t]) {
                    int in, out;
                    ws_lora_dims(c, t, &in, &out);
                    total += N * r + 16 + (lora->cfg.dropout > 0 ? N * (size_t)in + 16 : 0);
                }
        total += N * r + N * maxin + 32;
    }
    a->block = ws_xaligned(64, total * sizeof(float));
    a->bytes = total * sizeof(float);
    float *cur = a->block;
    a->res = ws__take(&cur, (L + 1) * N * C);
    for (size_t l = 0; l < L; l++) {
        layer_acts *la = &a->L[l];
        la->xn1 = ws__take(&cur, N * C);
        la->rstd1 = ws__take(&cur, N);
        la->q = ws__take(&cur, N * HD);
        la->k = ws__take(&cur, N * KD);
        la->v = ws__take(&cur, N * KD);
        la->att = ws__take(&cur, (size_t)B * c->n_heads * T * T);
        la->atty = ws__take(&cur, N * HD);
        la->mid = ws__take(&cur, N * C);
        la->xn2 = ws__take(&cur, N * C);
        la->rstd2 = ws__take(&cur, N);
        la->g = ws__take(&cur, N * F);
        la->u = ws__take(&cur, N * F);
    }
    a->xf = ws__take(&cur, N * C);
    a->rstdf = ws__take(&cur, N);
    a->logits = ws__take(&cur, N * V);
    a->dres = ws__take(&cur, N * C);
    a->dxn = ws__take(&cur, N * C);
    a->dh = ws__take(&cur, N * F);
    a->h = ws__take(&cur, N * F);
    a->dq = ws__take(&cur, N * HD);
    a->datty = ws__take(&cur, N * HD);
    a->dk = ws__take(&cur, N * KD);
    a->dv = ws__take(&cur, N * KD);
    a->lse = ws__take(&cur, N);
    a->targets = ws_xmalloc(N * sizeof(int32_t));
    a->pos = ws_xmalloc(N * sizeof(int32_t));
    a->head_rows = ws_xmalloc(N * sizeof(int32_t));
    a->tw = ws_xmalloc(N * sizeof(float));
    a->V = (int)V;
    a->xsel = ws_xaligned(64, N * C * sizeof(float));
    if (lora) {
        a->lrank = (int)r;
        a->lxa = ws_xcalloc(L * WS_LORA_NT, sizeof(float *));
        a->lxd = ws_xcalloc(L * WS_LORA_NT, sizeof(float *));
        a->lseed = ws_xcalloc(L * WS_LORA_NT, sizeof(uint64_t));
        for (size_t l = 0; l < L; l++)
            for (int t = 0; t < WS_LORA_NT; t++)
                if (lora->A[l * WS_LORA_NT + t]) {
                    int in, out;
                    ws_lora_dims(c, t, &in, &out);
                    a->lxa[l * WS_LORA_NT + t] = ws__take(&cur, N * r);
                    if (lora->cfg.dropout > 0)
                        a->lxd[l * WS_LORA_NT + t] = ws__take(&cur, N * (size_t)in);
                }
        a->ldxa = ws__take(&cur, N * r);
        a->ltmp = ws__take(&cur, N * maxin);
    }
    if ((size_t)(cur - a->block) > total)
        abort(); /* sizing bug */
    return a;
}

void ws_acts_free(ws_acts *a)
{
    if (!a)
        return;
    free(a->block);
    free(a->L);
    free(a->targets);
    free(a->pos);
    free(a->head_rows);
    free(a->tw);
    free(a->xsel);
    free(a->lxa);
    free(a->lxd);
    free(a->lseed);
    if (a->bt_own)
        for (int i = 0; i < a->n_bt; i++)
            free(a->bt_own[i]);
    free(a->bt_own);
    free(a->bt);
    free(a);
}

size_t ws_acts_bytes(const ws_acts *a)
{
    return a->bytes + a->bt_bytes;
}
float *ws_acts_logits(ws_acts *a)
{
    return a->logits;
}
void ws_acts_head_on_targets(ws_acts *a, bool on)
{
    a->head_on_targets = on;
}

/* The position (in B*T) of head row r of the last forward. */
static int head_position(const ws_acts *a, int r)
{
    return a->n_head < a->B * a->T ? a->head_rows[r] : r;
}

void ws_acts_target_nll(const ws_acts *a, float *nll)
{
    memset(nll, 0, (size_t)a->B * a->T * sizeof *nll);
    for (int r = 0; r < a->n_head && a->count; r++)
        if (a->targets[r] >= 0)
            nll[head_position(a, r)] = a->lse[r] - a->logits[(size_t)r * a->V + a->targets[r]];
}

void ws_acts_weigh_targets(ws_acts *a, const float *w)
{
    a->weighted = w != NULL;
    for (int r = 0; w && r < a->n_head; r++)
        a->tw[r] = w[head_position(a, r)];
}

static bool adapted(const ws_lora *lo, int l, int t)
{
    return lo && lo->A[l * WS_LORA_NT + t];
}

/* The lowest layer with an adapter (n_layers when none): nothing below it needs a gradient. */
static int lowest_adapted(const ws_model *m, const ws_lora *lora)
{
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int t = 0; t < WS_LORA_NT; t++)
            if (adapted(lora, l, t))
                return l;
    return m->cfg.n_layers;
}

static const ws_qmat *proj_qmat(const ws_model *m, int l, int t)
{
    const ws_layer_qweights *q = &m->q.layers[l];
    const ws_qmat *all[WS_LORA_NT] = {&q->wq, &q->wk, &q->wv, &q->wo, &q->wg, &q->wu, &q->wd};
    return all[t];
}

/* w's transposed Q8_0 copy into slot i, where the 8-bit products apply to w's type */
static void make_transposed(ws_acts *a, int i, const ws_qmat *w)
{
    if (ws_qtype_dot_type(w->type) == WS_QT_F32) /* f32/f16/bf16 weights keep f32 products */
        return;
    a->bt_own[i] = ws_qmat_transpose_q8_0(w, &a->bt[i]);
    if (a->bt_own[i])
        a->bt_bytes += a->bt[i].row_bytes * (size_t)a->bt[i].rows;
}

void ws_acts_base_8bit(ws_acts *a, const ws_model *m, const ws_lora *lora)
{
    if (!m->quantized || !lora || a->q8)
        return;
    a->q8 = true;
    /* without a many-row Q8_0 kernel the transposed copies would only go through f32 tiles again */
    if (!ws_qmat_infer_is_8bit(WS_QT_Q8_0))
        return;
    int L = m->cfg.n_layers, lowest = lowest_adapted(m, lora);
    a->n_bt = L * WS_LORA_NT + 1;
    a->bt = ws_xcalloc((size_t)a->n_bt, sizeof *a->bt);
    a->bt_own = ws_xcalloc((size_t)a->n_bt, sizeof *a->bt_own);
    if (lowest == L)
        return;
    make_transposed(a, L * WS_LORA_NT, &m->q.lm_head);
    for (int l = lowest; l < L; l++)
        for (int t = 0; t < WS_LORA_NT; t++) /* the bottom layer: no dX below its q, k, v */
            if (l > lowest || (t != WS_LORA_Q && t != WS_LORA_K && t != WS_LORA_V))
                make_transposed(a, l * WS_LORA_NT + t, proj_qmat(m, l, t));
}

/* ---------------------------------------------------------------- LoRA terms */

static float drop_uniform(uint64_t *s)
{
    return (float)((ws__splitmix(s) >> 40) * (1.0 / 16777216.0));
}

/* y[N,out] += scale * drop(x) A^T B^T; saves x A^T (and the dropped x) in acts when given. */
/* up to this many rows an inference B product is done as row additions */
#define LORA_ROW_ADD_MAX_N 8

static void lora_fwd(const ws_lora *lo, ws_acts *a, int l, int t, float *y, const float *x, int N, int in,
                     int out, bool training, float *xa_scratch, float *xd_scratch)
{
    if (!lo)
        return;
    int idx = l * WS_LORA_NT + t;
    const float *A = lo->A[idx], *Bm = lo->B[idx];
    if (!A)
        return;
    int r = lo->cfg.rank;
    float *xa = a ? a->lxa[idx] : xa_scratch;
    const float *xin = x;
    if (training && lo->cfg.dropout > 0) {
        float *xd = a ? a->lxd[idx] : xd_scratch;
        uint64_t seed = ((ws_lora *)lo)->rng = ws__splitmix(&((ws_lora *)lo)->rng);
        if (a)
            a->lseed[idx] = seed;
        float p = lo->cfg.dropout, keep = 1.0f / (1.0f - p);
        uint64_t s = seed;
        for (size_t i = 0; i < (size_t)N * in; i++)
            xd[i] = drop_uniform(&s) < p ? 0.0f : x[i] * keep;
        xin = xd;
    }
    ws_sgemm(false, true, N, r, in, 1.0f, xin, in, A, in, 0.0f, xa, r);
    if (!lo->b_by_rank) {
        ws_sgemm(false, true, N, out, r, lo->scale, xa, r, Bm, r, 1.0f, y, out);
    } else if (N > LORA_ROW_ADD_MAX_N) {
        ws_sgemm(false, false, N, out, r, lo->scale, xa, r, Bm, out, 1.0f, y, out);
    } else { /* a token or a few: y += scale xa B as r row additions (sgemm would pack B first) */
        for (int n = 0; n < N; n++) {
            float *yn = y + (size_t)n * out;
            for (int k = 0; k < r; k++) {
                float c = lo->scale * xa[(size_t)n * r + k];
                const float *b = Bm + (size_t)k * out;
#pragma omp simd
                for (int o = 0; o < out; o++)
                    yn[o] += c * b[o];
            }
        }
    }
}

static void lora_bwd(ws_lora *lo, ws_acts *a, int l, int t, float *dx, const float *dy, const float *x, int N,
                     int in, int out)
{
    int idx = l * WS_LORA_NT + t;
    if (!lo->A[idx])
        return;
    int r = lo->cfg.rank;
    const float *xa = a->lxa[idx], *xin = lo->cfg.dropout > 0 ? a->lxd[idx] : x;
    /* dB += scale dy^T xa ; dxa = scale dy B ; dA += dxa^T xin ; dx += (dxa A) * mask */
    ws_sgemm(true, false, out, r, N, lo->scale, dy, out, xa, r, 1.0f, lo->gB[idx], r);
    ws_sgemm(false, false, N, r, out, lo->scale, dy, out, lo->B[idx], r, 0.0f, a->ldxa, r);
    ws_sgemm(true, false, r, in, N, 1.0f, a->ldxa, r, xin, in, 1.0f, lo->gA[idx], in);
    if (!dx)
        return; /* nothing below needs a gradient */
    if (lo->cfg.dropout > 0) {
        ws_sgemm(false, false, N, in, r, 1.0f, a->ldxa, r, lo->A[idx], in, 0.0f, a->ltmp, in);
        float p = lo->cfg.dropout, keep = 1.0f / (1.0f - p);
        uint64_t s = a->lseed[idx];
        for (size_t i = 0; i < (size_t)N * in; i++)
            dx[i] += drop_uniform(&s) < p ? 0.0f : a->ltmp[i] * keep;
    } else {
        ws_sgemm(false, false, N, in, r, 1.0f, a->ldxa, r, lo->A[idx], in, 1.0f, dx, in);
    }
}

/* ---------------------------------------------------------------- training forward/backward */

/* out = beta * out + in W^T for projection t of layer l: 8-bit products (ws_acts_base_8bit) or
 * f32 ones */
static void proj_fwd(const ws_model *m, const ws_acts *a, int l, int t, float *out, const float *in, int N,
                     float beta)
{
    if (a->q8)
        WS_PROF(WS_PROF_MATMUL_FWD, ws__proj_infer(m, l, t, out, in, N, beta));
    else
        WS_PROF(WS_PROF_MATMUL_FWD, ws__proj_forward(m, l, t, out, in, N, beta));
}

/* the transposed Q8_0 copy of slot i, or NULL (f32 products) */
static const ws_qmat *transposed(const ws_acts *a, int i)
{
    return a->bt && a->bt[i].data ? &a->bt[i] : NULL;
}

/* dX of projection t of layer l: dinp = beta * dinp + dout W (beta 0 overwrites: no zeroing
 * pass first) */
static void mm_dx(int cat, const ws_model *m, const ws_acts *a, int l, int t, float *dinp, float beta,
                  const float *dout, int N)
{
    const ws_qmat *wt = transposed(a, l * WS_LORA_NT + t);
    if (wt)
        WS_PROF(cat, ws_qmat_backward_input_t(dinp, beta, dout, wt, N));
    else
        WS_PROF(cat, ws__proj_backward_input(m, l, t, dinp, beta, dout, N));
}

/* dW (and dbias) of a product, added; nothing when both are NULL (frozen base) */
static void mm_dw(int cat, float *dw, float *dbias, const float *dout, const float *inp, int N, int IC,
                  int OC)
{
    if (dw || dbias)
        WS_PROF(cat, ws_matmul_backward(NULL, dw, dbias, dout, inp, NULL, N, IC, OC));
}

static void head_fwd(const ws_model *m, const ws_acts *a, float *logits, const float *xn, int n)
{
    if (a->q8)
        ws__head_infer(m, logits, xn, n);
    else
        ws__head_forward(m, logits, xn, n);
}

/* dxn = dlogits head */
static void head_dx(const ws_model *m, const ws_acts *a, float *dxn, const float *dlogits, int n)
{
    const ws_qmat *wt = transposed(a, m->cfg.n_layers * WS_LORA_NT);
    if (wt)
        ws_qmat_backward_input_t(dxn, 0.0f, dlogits, wt, n);
    else
        ws__head_backward_input(m, dxn, dlogits, n);
}

int ws_model_forward(const ws_model *m, const ws_lora *lora, ws_acts *a, const int32_t *inputs,
                     const int32_t *targets, int B, int T, bool training, float *loss)
{
    return ws_model_forward_packed(m, lora, a, inputs, NULL, targets, B, T, training, loss);
}

/* RoPE positions of packed rows from their sequence starts and skips (ws_packing); false when a
 * start or a skip is invalid. */
static bool packed_positions(ws_acts *a, const ws_packing *pk, int B, int T)
{
    const int32_t *starts = pk->starts, *sf = pk->skip_from, *sk = pk->skip_to;
    if (sf && !sk)
        return false;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            int r = b * T + i, s0 = starts[r], gap = sf ? sk[r] - sf[r] : 0;
            if (s0 < 0 || s0 > i || (i && s0 < starts[r - 1]))
                return false;
            if (sf && (sf[r] < s0 || gap < 0 || sk[r] > i))
                return false;
            a->pos[r] = i - s0 - gap;
        }
    return true;
}

int ws_model_forward_packed(const ws_model *m, const ws_lora *lora, ws_acts *a, const int32_t *inputs,
                            const ws_packing *pk, const int32_t *targets, int B, int T, bool training,
                            float *loss)
{
    const ws_model_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || B > a->maxB || T > a->maxT || (lora && !a->lxa))
        return WS_EINVAL;
    int N = B * T, C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, F = c->hidden_dim;
    int HD = H * D, KD = KV * D, V = c->vocab_size;
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= V || (targets && targets[i] >= V))
            return WS_EINVAL;
    const int32_t *starts = pk ? pk->starts : NULL;
    if (starts && !packed_positions(a, pk, B, T))
        return WS_EINVAL;
    a->packed = starts != NULL;
    const int32_t *pos = starts ? a->pos : NULL;
    /* activations were laid out for (a->B, a->T); a smaller T reuses the same buffers */
    a->B = B;
    a->T = T;
    a->inputs = inputs;
    WS_PROF(WS_PROF_EMBED, ws__embed(m, a->res, inputs, N););
    for (int l = 0; l < c->n_layers; l++) {
        const ws_layer_weights *w = &m->w.layers[l];
        layer_acts *la = &a->L[l];
        float *x = a->res + (size_t)l * N * C, *xo = a->res + (size_t)(l + 1) * N * C;
        WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_forward(la->xn1, la->rstd1, x, w->attn_norm, N, C, c->norm_eps););
        proj_fwd(m, a, l, WS_LORA_Q, la->q, la->xn1, N, 0.0f);
        proj_fwd(m, a, l, WS_LORA_K, la->k, la->xn1, N, 0.0f);
        proj_fwd(m, a, l, WS_LORA_V, la->v, la->xn1, N, 0.0f);
        WS_PROF(WS_PROF_LORA,
                lora_fwd(lora, a, l, WS_LORA_Q, la->q, la->xn1, N, C, HD, training, NULL, NULL););
        WS_PROF(WS_PROF_LORA,
                lora_fwd(lora, a, l, WS_LORA_K, la->k, la->xn1, N, C, KD, training, NULL, NULL););
        WS_PROF(WS_PROF_LORA,
                lora_fwd(lora, a, l, WS_LORA_V, la->v, la->xn1, N, C, KD, training, NULL, NULL););
        WS_PROF(WS_PROF_ROPE, ws_rope_forward(la->q, pos, N, T, H, D, m->rope_cos, m->rope_sin););
        WS_PROF(WS_PROF_ROPE, ws_rope_forward(la->k, pos, N, T, KV, D, m->rope_cos, m->rope_sin););
        WS_PROF(WS_PROF_ATTN_FWD,
                ws_attention_forward(la->atty, la->att, la->q, la->k, la->v, pk, B, T, H, KV, D););
        WS_PROF(WS_PROF_COPY, memcpy(la->mid, x, (size_t)N * C * sizeof(float)););
        proj_fwd(m, a, l, WS_LORA_O, la->mid, la->atty, N, 1.0f);
        WS_PROF(WS_PROF_LORA,
                lora_fwd(lora, a, l, WS_LORA_O, la->mid, la->atty, N, HD, C, training, NULL, NULL););
        WS_PROF(WS_PROF_RMSNORM,
                ws_rmsnorm_forward(la->xn2, la->rstd2, la->mid, w->mlp_norm, N, C, c->norm_eps););
        proj_fwd(m, a, l, WS_LORA_GATE, la->g, la->xn2, N, 0.0f);
        proj_fwd(m, a, l, WS_LORA_UP, la->u, la->xn2, N, 0.0f);
        WS_PROF(WS_PROF_LORA,
                lora_fwd(lora, a, l, WS_LORA_GATE, la->g, la->xn2, N, C, F, training, NULL, NULL););
        WS_PROF(WS_PROF_LORA,
                lora_fwd(lora, a, l, WS_LORA_UP, la->u, la->xn2, N, C, F, training, NULL, NULL););
        WS_PROF(WS_PROF_SWIGLU, ws_swiglu_forward(a->h, la->g, la->u, (size_t)N * F););
        WS_PROF(WS_PROF_COPY, memcpy(xo, la->mid, (size_t)N * C * sizeof(float)););
        proj_fwd(m, a, l, WS_LORA_DOWN, xo, a->h, N, 1.0f);
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_DOWN, xo, a->h, N, F, C, training, NULL, NULL););
    }
    WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_forward(a->xf, a->rstdf, a->res + (size_t)c->n_layers * N * C,
                                                m->w.final_norm, N, C, c->norm_eps););
    a->count = 0;
    a->n_head = N;
    if (targets && a->head_on_targets) { /* the head on the rows with a target only */
        int M = 0;
        for (int i = 0; i < N; i++)
            if (targets[i] >= 0) {
                memcpy(a->xsel + (size_t)M * C, a->xf + (size_t)i * C, (size_t)C * sizeof(float));
                a->targets[M] = targets[i];
                a->head_rows[M++] = i;
            }
        a->n_head = M;
        if (M)
            WS_PROF(WS_PROF_HEAD_FWD, head_fwd(m, a, a->logits, a->xsel, M););
    } else {
        WS_PROF(WS_PROF_HEAD_FWD, head_fwd(m, a, a->logits, a->xf, N););
        if (targets)
            WS_PROF(WS_PROF_COPY, memcpy(a->targets, targets, (size_t)N * sizeof(int32_t)););
    }
    if (targets) {
        int cnt = 0;
        double sum = 0;
        if (a->n_head)
            WS_PROF(WS_PROF_CE_FWD,
                    sum = ws_crossentropy_forward(a->logits, a->targets, a->n_head, V, &cnt, a->lse));
        a->count = cnt;
        if (loss)
            *loss = cnt ? (float)(sum / cnt) : 0.0f;
    }
    return 0;
}

void ws_model_backward(ws_model *m, ws_lora *lora, ws_acts *a, float loss_scale)
{
    const ws_model_config *c = &m->cfg;
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim;
    int F = c->hidden_dim, HD = H * D, KD = KV * D, V = c->vocab_size;
    bool full = lora == NULL;
    ws_weights *g = full ? &m->g : NULL;
    if (lora)
        ws_lora_enable_grads(lora);
    if (a->count == 0)
        return;
    /* with a frozen base, nothing below the lowest adapted layer needs a gradient */
    int lowest = 0;
    if (lora && (lowest = lowest_adapted(m, lora)) == c->n_layers)
        return;
    int M = a->n_head;
    WS_PROF(WS_PROF_CE_BWD, ws_crossentropy_backward(a->logits, a->targets, M, V,
                                                     a->weighted ? loss_scale : loss_scale / (float)a->count,
                                                     a->lse, a->weighted ? a->tw : NULL));
    a->weighted = false;
    if (M == N) {
        WS_PROF(WS_PROF_HEAD_DX, head_dx(m, a, a->dxn, a->logits, N));
    } else { /* rows without a target have no gradient from the head */
        WS_PROF(WS_PROF_HEAD_DX, head_dx(m, a, a->xsel, a->logits, M));
        WS_PROF(WS_PROF_COPY, memset(a->dxn, 0, (size_t)N * C * sizeof(float));
                for (int r = 0; r < M; r++) memcpy(a->dxn + (size_t)a->head_rows[r] * C,
                                                   a->xsel + (size_t)r * C, (size_t)C * sizeof(float)));
    }
    mm_dw(WS_PROF_HEAD_DW, full ? g->lm_head : NULL, NULL, a->logits, a->xf, N, C, V);
    WS_PROF(WS_PROF_COPY, memset(a->dres, 0, (size_t)N * C * sizeof(float)));
    WS_PROF(WS_PROF_RMSNORM,
            ws_rmsnorm_backward(a->dres, full ? g->final_norm : NULL, a->dxn,
                                a->res + (size_t)c->n_layers * N * C, m->w.final_norm, a->rstdf, N, C));
    for (int l = c->n_layers - 1; l >= lowest; l--) {
        const ws_layer_weights *w = &m->w.layers[l];
        ws_layer_weights *gl = full ? &g->layers[l] : NULL;
        layer_acts *la = &a->L[l];
        const float *x = a->res + (size_t)l * N * C;
        /* what the lowest adapted layer still needs: its attention part only for q,k,v,o
         * adapters, the product through Wo and attention itself only for q,k,v ones, and no dX
         * below its q,k,v projections */
        bool bottom = lora && l == lowest;
        bool need_qkv = !bottom || adapted(lora, l, WS_LORA_Q) || adapted(lora, l, WS_LORA_K) ||
                        adapted(lora, l, WS_LORA_V);
        bool need_attn = need_qkv || adapted(lora, l, WS_LORA_O);
        bool need_dh = need_attn || adapted(lora, l, WS_LORA_GATE) || adapted(lora, l, WS_LORA_UP);
        /* MLP: xo = mid + h Wd^T */
        if (need_dh)
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_DOWN, a->dh, 0.0f, a->dres, N);
        if (full || adapted(lora, l, WS_LORA_DOWN)) /* h again, bit for bit (Wd's dW or its adapter) */
            WS_PROF(WS_PROF_SWIGLU, ws_swiglu_forward(a->h, la->g, la->u, (size_t)N * F));
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wd : NULL, NULL, a->dres, a->h, N, F, C);
        if (lora)
            WS_PROF(WS_PROF_LORA,
                    lora_bwd(lora, a, l, WS_LORA_DOWN, need_dh ? a->dh : NULL, a->dres, a->h, N, F, C));
        if (!need_dh)
            break;
        /* dG, dU overwrite G, U (backward runs once per forward; it already turned the logits
         * into their gradient) */
        float *dg = la->g, *du = la->u;
        WS_PROF(WS_PROF_SWIGLU, ws_swiglu_backward_set(dg, du, a->dh, la->g, la->u, (size_t)N * F));
        if (need_attn) {
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_GATE, a->dxn, 0.0f, dg, N);
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_UP, a->dxn, 1.0f, du, N);
        }
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wg : NULL, NULL, dg, la->xn2, N, C, F);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wu : NULL, NULL, du, la->xn2, N, C, F);
        if (lora) {
            WS_PROF(WS_PROF_LORA,
                    lora_bwd(lora, a, l, WS_LORA_GATE, need_attn ? a->dxn : NULL, dg, la->xn2, N, C, F));
            WS_PROF(WS_PROF_LORA,
                    lora_bwd(lora, a, l, WS_LORA_UP, need_attn ? a->dxn : NULL, du, la->xn2, N, C, F));
        }
        if (!need_attn)
            break;
        WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_backward(a->dres, full ? gl->mlp_norm : NULL, a->dxn, la->mid,
                                                     w->mlp_norm, la->rstd2, N, C));
        /* attention: mid = x + atty Wo^T */
        if (need_qkv)
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_O, a->datty, 0.0f, a->dres, N);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wo : NULL, full ? gl->bo : NULL, a->dres, la->atty, N, HD, C);
        if (lora)
            WS_PROF(WS_PROF_LORA,
                    lora_bwd(lora, a, l, WS_LORA_O, need_qkv ? a->datty : NULL, a->dres, la->atty, N, HD, C));
        if (!need_qkv)
            break;
        WS_PROF(WS_PROF_COPY, memset(a->dq, 0, (size_t)N * HD * sizeof(float));
                memset(a->dk, 0, (size_t)N * KD * sizeof(float));
                memset(a->dv, 0, (size_t)N * KD * sizeof(float)));
        WS_PROF(WS_PROF_ATTN_BWD, ws_attention_backward(a->dq, a->dk, a->dv, a->datty, la->att, la->q, la->k,
                                                        la->v, B, T, H, KV, D));
        const int32_t *pos = a->packed ? a->pos : NULL;
        WS_PROF(WS_PROF_ROPE, ws_rope_backward(a->dq, pos, N, T, H, D, m->rope_cos, m->rope_sin);
                ws_rope_backward(a->dk, pos, N, T, KV, D, m->rope_cos, m->rope_sin));
        if (!bottom) {
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_Q, a->dxn, 0.0f, a->dq, N);
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_K, a->dxn, 1.0f, a->dk, N);
            mm_dx(WS_PROF_MATMUL_DX, m, a, l, WS_LORA_V, a->dxn, 1.0f, a->dv, N);
        }
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wq : NULL, full ? gl->bq : NULL, a->dq, la->xn1, N, C, HD);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wk : NULL, full ? gl->bk : NULL, a->dk, la->xn1, N, C, KD);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wv : NULL, full ? gl->bv : NULL, a->dv, la->xn1, N, C, KD);
        if (lora) {
            float *dxn = bottom ? NULL : a->dxn;
            WS_PROF(WS_PROF_LORA, lora_bwd(lora, a, l, WS_LORA_Q, dxn, a->dq, la->xn1, N, C, HD);
                    lora_bwd(lora, a, l, WS_LORA_K, dxn, a->dk, la->xn1, N, C, KD);
                    lora_bwd(lora, a, l, WS_LORA_V, dxn, a->dv, la->xn1, N, C, KD));
        }
        if (!bottom)
            WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_backward(a->dres, full ? gl->attn_norm : NULL, a->dxn, x,
                                                         w->attn_norm, la->rstd1, N, C));
    }
    if (full)
        WS_PROF(WS_PROF_EMBED, ws_embedding_backward(g->embed, a->dres, a->inputs, N, C));
}

void ws__lora_apply(const ws_lora *lo, int l, int t, float *y, const float *x, int N, int in, int out,
                    float *xa)
{
    lora_fwd(lo, NULL, l, t, y, x, N, in, out, false, xa, NULL);
}
