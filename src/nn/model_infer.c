/* Inference of the decoder with a KV cache: n new tokens at a time (a prompt chunk through
 * sgemm attention, single tokens through dot-product loops), optionally with a LoRA adapter. */
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
#include "nn/quant.h"
#include "nn/vexp.h"

/* ---------------------------------------------------------------- inference */

struct ws_kv_cache {
    int max_T, len, cap_n;
    float *k, *v; /* [L, max_T, KV*D] */
    /* scratch for a chunk of up to cap_n tokens */
    float *x, *xn, *q, *att, *atty, *g, *u, *xa, *kc, *vc;
};

ws_kv_cache *ws_kv_cache_new(const ws_model *m, int max_tokens)
{
    const ws_model_config *c = &m->cfg;
    ws_kv_cache *kc = ws_xcalloc(1, sizeof *kc);
    if (max_tokens > c->max_pos)
        max_tokens = c->max_pos;
    kc->max_T = max_tokens;
    size_t n = (size_t)c->n_layers * max_tokens * c->n_kv_heads * c->head_dim;
    kc->k = ws_xaligned(64, n * sizeof(float));
    kc->v = ws_xaligned(64, n * sizeof(float));
    return kc;
}

void ws_kv_cache_free(ws_kv_cache *c)
{
    if (!c)
        return;
    free(c->k);
    free(c->v);
    free(c->x);
    free(c);
}

void ws_kv_cache_reset(ws_kv_cache *c)
{
    c->len = 0;
}
int ws_kv_cache_len(const ws_kv_cache *c)
{
    return c->len;
}
void ws_kv_cache_truncate(ws_kv_cache *c, int len)
{
    if (len >= 0 && len < c->len)
        c->len = len;
}

static void cache_scratch(const ws_model *m, ws_kv_cache *kc, int n)
{
    if (n <= kc->cap_n)
        return;
    const ws_model_config *c = &m->cfg;
    size_t C = c->dim, HD = (size_t)c->n_heads * c->head_dim, F = c->hidden_dim, T = kc->max_T;
    size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t maxin = C > F ? C : F;
    size_t total = n * (2 * C + HD + HD + 2 * F + maxin + 2 * KD) + (size_t)c->n_heads * n * T + 64 * 16;
    free(kc->x);
    kc->x = ws_xaligned(64, total * sizeof(float));
    float *cur = kc->x;
    kc->x = ws__take(&cur, n * C);
    kc->xn = ws__take(&cur, n * C);
    kc->q = ws__take(&cur, n * HD);
    kc->atty = ws__take(&cur, n * HD);
    kc->g = ws__take(&cur, n * F);
    kc->u = ws__take(&cur, n * F);
    kc->xa = ws__take(&cur, n * maxin);
    kc->kc = ws__take(&cur, n * KD);
    kc->vc = ws__take(&cur, n * KD);
    kc->att = ws__take(&cur, (size_t)c->n_heads * n * T);
    kc->cap_n = n;
}

typedef struct {
    ws_kv_cache *kc;
    const float *Kc, *Vc;
    int n, start, H, KV, D;
    float scale;
    float *s;
    int ctx;
    bool f16;  /* probabilities rounded to f16 (the quantized path, as llama.cpp) */
    bool ggml; /* and GGML's sum order (attend_ggml) */
} attn_job;

/* The quantized path holds what llama.cpp's default f16 KV cache and f16 attention operands
 * hold: keys, values, queries and the softmax probabilities rounded to f16 (the sums stay f32).
 * The f32 path keeps f32, as transformers. */
static void round_f16_if(bool on, float *x, size_t n)
{
    if (on)
        ws_round_f16(x, (int64_t)n);
}

/* RoPE of x[n, heads, head_dim]: the quantized path as llama.cpp computes it */
static void rope(const ws_model *m, float *x, const int32_t *pos, int n, int heads)
{
    if (m->quantized)
        ws_rope_forward_ggml(x, pos, n, heads, m->cfg.head_dim, m->rope_cos, m->rope_sin);
    else
        ws_rope_forward(x, pos, n, 0, heads, m->cfg.head_dim, m->rope_cos, m->rope_sin);
}

/* GGML's softmax (AVX-512 build): its exp, each 16 values summed as _mm512_reduce_add_ps does
 * (halves folded down), those sums added in double; the probabilities rounded to f16 */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma")))
#endif
static double
exp_ggml_fma(float *s, int lim, float mx)
{
#pragma omp simd
    for (int j = 0; j < lim; j++)
        s[j] = ws_vexpf_ggml(s[j] - mx);
    double sum = 0;
    int j = 0;
    for (; j + 16 <= lim; j += 16) {
        float t[8];
        for (int k = 0; k < 8; k++)
            t[k] = s[j + k] + s[j + k + 8];
        for (int k = 0; k < 4; k++)
            t[k] += t[k + 4];
        sum += (t[0] + t[2]) + (t[1] + t[3]);
    }
    if (j < lim) { /* the last block, as if padded with zeros */
        float t[16] = {0};
        for (int k = 0; j + k < lim; k++)
            t[k] = s[j + k];
        for (int w = 8; w >= 1; w /= 2)
            for (int k = 0; k < w; k++)
                t[k] += t[k + w];
        sum += t[0];
    }
    return sum;
}

static void softmax_row_ggml(float *s, int lim)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < lim; j++)
        mx = s[j] > mx ? s[j] : mx;
    float inv = (float)(1.0 / exp_ggml_fma(s, lim, mx));
#pragma omp simd
    for (int j = 0; j < lim; j++)
        s[j] *= inv;
    ws_round_f16(s, lim);
}

/* exp(s_j - max) / sum in place over lim scores, the sum in double (as GGML's softmax) */
static void softmax_row(float *s, int lim, bool f16)
{
    if (f16) {
        softmax_row_ggml(s, lim);
        return;
    }
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < lim; j++)
        mx = s[j] > mx ? s[j] : mx;
    double sum = 0;
    for (int j = 0; j < lim; j++) {
        s[j] = ws_vexpf(s[j] - mx);
        sum += s[j];
    }
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (int j = 0; j < lim; j++)
        s[j] *= inv;
    round_f16_if(f16, s, (size_t)lim);
}

/* Softmax attention of one query over lim cached positions (keys/values KD floats apart, head
 * size D): o[D] = sum_j softmax(q.k_j * scale) v_j; s is scratch of lim floats. */
static void attend_one(const float *qi, const float *kh, const float *vh, int lim, int KD, int D, float scale,
                       float *si, float *o, bool f16)
{
    for (int j = 0; j < lim; j++) {
        const float *kj = kh + (size_t)j * KD;
        float d = 0;
#pragma omp simd reduction(+ : d)
        for (int e = 0; e < D; e++)
            d += qi[e] * kj[e];
        si[j] = d * scale;
    }
    softmax_row(si, lim, f16);
    for (int e = 0; e < D; e++)
        o[e] = 0;
    for (int j = 0; j < lim; j++) {
        const float *vj = vh + (size_t)j * KD;
        float p = si[j];
#pragma omp simd
        for (int e = 0; e < D; e++)
            o[e] += p * vj[e];
    }
}

/* ---- GGML's sum order (ws_model_set_llamacpp_order) ---------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#define WS_FMA_TARGET __attribute__((target("avx2,fma")))
#else
#define WS_FMA_TARGET
#endif

/* lanes[0..nl) folded as GGML does: 64 lanes (ggml_vec_dot_f16's 4 registers) 0+2, 1+3, 0+1 to
 * 16, then 16 as _mm512_reduce_add_ps: 8+8, 4+4, 2+2, 1+1; D columns each, vectorised over them */
WS_FMA_TARGET static void fold_lanes(float *acc, int nl, int D)
{
    if (nl == 64)
        for (int l = 0; l < 16; l++)
#pragma omp simd
            for (int e = 0; e < D; e++)
                acc[l * D + e] = (acc[l * D + e] + acc[(l + 32) * D + e]) +
                                 (acc[(l + 16) * D + e] + acc[(l + 48) * D + e]);
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
#pragma omp simd
            for (int e = 0; e < D; e++)
                acc[l * D + e] += acc[(l + w) * D + e];
}

/* Rows of heads of D values into GGUF's element order (the pairs interleaved: element g is our
 * (g % 2) * D/2 + g / 2), in place: llama.cpp's q.k sums its elements in that order. Only the
 * attention reads Q and K, and a dot product is the same under one permutation of both. */
static void to_gguf_order(float *x, size_t heads, int D)
{
    float t[WS_GGML_MAX_D];
    for (size_t h = 0; h < heads; h++, x += D) {
        for (int g = 0; g < D; g++)
            t[g] = x[(g & 1) * (D / 2) + (g >> 1)];
        memcpy(x, t, (size_t)D * sizeof *t);
    }
}

/* q.k over a head (both in GGUF's order), element g in lane g % nl, fused */
WS_FMA_TARGET static float qk_ggml(const float *q, const float *k, int D, int nl)
{
    float acc[64] = {0};
    if (nl == 16)
        for (int c = 0; c < D; c += 16)
#pragma omp simd
            for (int t = 0; t < 16; t++)
                acc[t] = fmaf(q[c + t], k[c + t], acc[t]);
    else
        for (int c = 0; c < D; c += 64)
#pragma omp simd
            for (int t = 0; t < 64; t++)
                acc[t] = fmaf(q[c + t], k[c + t], acc[t]);
    fold_lanes(acc, nl, 1);
    return acc[0];
}

/* o[e] = sum_j p_j v_j[e], position j in lane j % nl, fused; acc holds 64 * D floats */
WS_FMA_TARGET static void pv_ggml(const float *p, const float *vh, int lim, int KD, int D, int nl, float *acc,
                                  float *o)
{
    memset(acc, 0, (size_t)nl * D * sizeof *acc);
    for (int j = 0; j < lim; j++) {
        float pj = p[j], *a = acc + (size_t)(j % nl) * D;
        const float *vj = vh + (size_t)j * KD;
#pragma omp simd
        for (int e = 0; e < D; e++)
            a[e] = fmaf(pj, vj[e], a[e]);
    }
    fold_lanes(acc, nl, D);
    memcpy(o, acc, (size_t)D * sizeof *o);
}

/* One query as llama.cpp's attention sums (f16 operands already rounded): a chunk of several
 * tokens goes through llamafile's tinyBLAS there (16 lanes), one token through
 * ggml_vec_dot_f16 (64 lanes) */
static void attend_ggml(const float *qi, const float *kh, const float *vh, int lim, int KD, int D,
                        float scale, float *si, float *o, bool chunk)
{
    int nl = chunk ? 16 : 64;
    float acc[64 * WS_GGML_MAX_D];
    for (int j = 0; j < lim; j++)
        si[j] = qk_ggml(qi, kh + (size_t)j * KD, D, nl) * scale;
    softmax_row_ggml(si, lim);
    pv_ggml(si, vh, lim, KD, D, nl, acc, o);
}

/* h = silu(g) * u as GGML's swiglu kernel: g / (1 + its exp(-g)) */
WS_FMA_TARGET static void swiglu_ggml(float *h, const float *g, const float *u, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        h[i] = g[i] / (1.0f + ws_vexpf_ggml(-g[i])) * u[i];
}

void ws_model_set_llamacpp_order(ws_model *m, bool on)
{
    if (!m->quantized || m->cfg.head_dim > WS_GGML_MAX_D || m->cfg.head_dim % 16)
        return;
    m->llamacpp_order = on;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        ws_layer_qweights *q = &m->q.layers[l];
        ws_qmat *all[] = {&q->wq, &q->wk, &q->wv, &q->wo, &q->wg, &q->wu, &q->wd};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            all[i]->ggml_order = on;
    }
    m->q.lm_head.ggml_order = on;
}

static void step_attention_heads(void *arg, size_t lo, size_t hi, int chunk)
{
    const attn_job *jb = arg;
    ws_kv_cache *kc = jb->kc;
    const float *Kc = jb->Kc, *Vc = jb->Vc;
    int n = jb->n, start = jb->start, H = jb->H, KV = jb->KV, D = jb->D;
    float scale = jb->scale;
    int HD = H * D, KD = KV * D, T = kc->max_T, grp = H / KV;
    for (int h = (int)lo; h < (int)hi; h++) {
        float *s = kc->att + (size_t)h * n * T;
        const float *kh = Kc + (size_t)(h / grp) * D, *vh = Vc + (size_t)(h / grp) * D;
        for (int i = 0; i < n; i++)
            if (jb->ggml)
                attend_ggml(kc->q + (size_t)i * HD + (size_t)h * D, kh, vh, start + i + 1, KD, D, scale,
                            s + (size_t)i * T, kc->atty + (size_t)i * HD + (size_t)h * D, n > 1);
            else
                attend_one(kc->q + (size_t)i * HD + (size_t)h * D, kh, vh, start + i + 1, KD, D, scale,
                           s + (size_t)i * T, kc->atty + (size_t)i * HD + (size_t)h * D, jb->f16);
    }
}

static void step_attention(ws_kv_cache *kc, const float *Kc, const float *Vc, int n, int start, int H, int KV,
                           int D, float scale, bool f16, bool ggml)
{
    attn_job j = {kc, Kc, Vc, n, start, H, KV, D, scale, NULL, 0, f16, ggml};
    /* worth a fork only when the context is long */
    ws_parallel_for((size_t)H, (size_t)(start + n) * n * D >= 65536 ? 1 : (size_t)H, step_attention_heads,
                    &j);
}

static void chunk_softmax_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const attn_job *jb = p;
    for (size_t i = lo; i < hi; i++) {
        float *row = jb->s + i * jb->ctx;
        int lim = jb->start + (int)i + 1;
        softmax_row(row, lim, jb->f16);
        for (int j = lim; j < jb->ctx; j++)
            row[j] = 0;
    }
}

static void chunk_attention(ws_kv_cache *kc, const float *Kc, const float *Vc, int n, int start, int H,
                            int KV, int D, float scale, bool f16)
{
    int HD = H * D, KD = KV * D, grp = H / KV, ctx = start + n;
    for (int h = 0; h < H; h++) {
        float *s = kc->att + (size_t)h * n * kc->max_T; /* [n, ctx] */
        const float *kh = Kc + (size_t)(h / grp) * D, *vh = Vc + (size_t)(h / grp) * D;
        ws_sgemm(false, true, n, ctx, D, scale, kc->q + (size_t)h * D, HD, kh, KD, 0.0f, s, ctx);
        attn_job jb = {.kc = kc, .start = start, .s = s, .ctx = ctx, .f16 = f16};
        ws_parallel_for((size_t)n, 16384 / (size_t)ctx + 1, chunk_softmax_rows, &jb);
        ws_sgemm(false, false, n, D, ctx, 1.0f, s, ctx, vh, KD, 0.0f, kc->atty + (size_t)h * D, HD);
    }
}

/* the projections that share an input, each group in one pass of the pool */
static const int QKV[3] = {WS_LORA_Q, WS_LORA_K, WS_LORA_V};
static const int GATE_UP[2] = {WS_LORA_GATE, WS_LORA_UP};

/* The rest of layer l after attention, on the n rows of sc's scratch: the output projection
 * into the residual x (from atty), then the MLP block. */
static void layer_tail(const ws_model *m, const ws_lora *lora, int l, ws_kv_cache *sc, int n)
{
    const ws_model_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, HD = c->n_heads * c->head_dim;
    ws__proj_infer(m, l, WS_LORA_O, sc->x, sc->atty, n, 1.0f);
    ws__lora_apply(lora, l, WS_LORA_O, sc->x, sc->atty, n, HD, C, sc->xa);
    ws_rmsnorm_forward(sc->xn, NULL, sc->x, m->w.layers[l].mlp_norm, n, C, c->norm_eps);
    float *gu[2] = {sc->g, sc->u};
    ws__proj_infer_group(m, l, GATE_UP, gu, sc->xn, 2, n);
    ws__lora_apply(lora, l, WS_LORA_GATE, sc->g, sc->xn, n, C, F, sc->xa);
    ws__lora_apply(lora, l, WS_LORA_UP, sc->u, sc->xn, n, C, F, sc->xa);
    if (m->llamacpp_order)
        swiglu_ggml(sc->g, sc->g, sc->u, (size_t)n * F);
    else
        ws_swiglu_forward(sc->g, sc->g, sc->u, (size_t)n * F);
    ws__proj_infer(m, l, WS_LORA_DOWN, sc->x, sc->g, n, 1.0f);
    ws__lora_apply(lora, l, WS_LORA_DOWN, sc->x, sc->g, n, F, C, sc->xa);
}

int ws_model_infer(const ws_model *m, const ws_lora *lora, ws_kv_cache *kc, const int32_t *tokens, int n,
                   float *logits, float *all_logits, ws_error *err)
{
    const ws_model_config *c = &m->cfg;
    if (n <= 0)
        return ws_error_set(err, WS_EINVAL, "no tokens to run");
    if (kc->len + n > kc->max_T)
        return ws_error_set(err, WS_ETOOBIG, "context of %d tokens is over the cache's %d", kc->len + n,
                            kc->max_T);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return ws_error_set(err, WS_EINVAL, "token id %d outside the vocabulary", (int)tokens[i]);
    cache_scratch(m, kc, n);
    int C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim;
    int HD = H * D, KD = KV * D, V = c->vocab_size, T = kc->max_T, start = kc->len, ctx = start + n;
    float scale = 1.0f / sqrtf((float)D);
    int32_t *pos = ws_xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        pos[i] = start + i;
    ws__embed(m, kc->x, tokens, n);
    for (int l = 0; l < c->n_layers; l++) {
        const ws_layer_weights *w = &m->w.layers[l];
        float *Kc = kc->k + (size_t)l * T * KD, *Vc = kc->v + (size_t)l * T * KD;
        ws_rmsnorm_forward(kc->xn, NULL, kc->x, w->attn_norm, n, C, c->norm_eps);
        float *qkv[3] = {kc->q, Kc + (size_t)start * KD, Vc + (size_t)start * KD};
        ws__proj_infer_group(m, l, QKV, qkv, kc->xn, 3, n);
        ws__lora_apply(lora, l, WS_LORA_Q, kc->q, kc->xn, n, C, HD, kc->xa);
        ws__lora_apply(lora, l, WS_LORA_K, Kc + (size_t)start * KD, kc->xn, n, C, KD, kc->xa);
        ws__lora_apply(lora, l, WS_LORA_V, Vc + (size_t)start * KD, kc->xn, n, C, KD, kc->xa);
        rope(m, kc->q, pos, n, H);
        rope(m, Kc + (size_t)start * KD, pos, n, KV);
        round_f16_if(m->quantized, kc->q, (size_t)n * HD);
        round_f16_if(m->quantized, Kc + (size_t)start * KD, (size_t)n * KD);
        round_f16_if(m->quantized, Vc + (size_t)start * KD, (size_t)n * KD);
        if (m->llamacpp_order) {
            to_gguf_order(kc->q, (size_t)n * H, D);
            to_gguf_order(Kc + (size_t)start * KD, (size_t)n * KV, D);
        }
        /* attention of the n new queries over ctx cached keys: a chunk goes through sgemm,
         * a single token through the dot-product loops */
        if (n >= 8 && !m->llamacpp_order)
            chunk_attention(kc, Kc, Vc, n, start, H, KV, D, scale, m->quantized);
        else
            step_attention(kc, Kc, Vc, n, start, H, KV, D, scale, m->quantized, m->llamacpp_order);
        layer_tail(m, lora, l, kc, n);
    }
    if (all_logits) {
        ws_rmsnorm_forward(kc->xn, NULL, kc->x, m->w.final_norm, n, C, c->norm_eps);
        ws__head_infer(m, all_logits, kc->xn, n);
        if (logits)
            memcpy(logits, all_logits + (size_t)(n - 1) * V, (size_t)V * sizeof(float));
    } else if (logits) {
        ws_rmsnorm_forward(kc->xn, NULL, kc->x + (size_t)(n - 1) * C, m->w.final_norm, 1, C, c->norm_eps);
        ws__head_infer(m, logits, kc->xn, 1);
    }
    kc->len = ctx;
    free(pos);
    return 0;
}

/* ---------------------------------------------------------------- several sequences, one token each */

ws_kv_cache *ws_kv_cache_dup(const ws_model *m, const ws_kv_cache *src)
{
    return ws_kv_cache_dup_room(m, src, src->max_T);
}

int ws_kv_cache_room(const ws_kv_cache *c)
{
    return c->max_T;
}

ws_kv_cache *ws_kv_cache_dup_room(const ws_model *m, const ws_kv_cache *src, int max_tokens)
{
    const ws_model_config *c = &m->cfg;
    ws_kv_cache *kc = ws_kv_cache_new(m, max_tokens > src->len ? max_tokens : src->len);
    size_t KD = (size_t)c->n_kv_heads * c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        size_t from = (size_t)l * src->max_T * KD, to = (size_t)l * kc->max_T * KD;
        size_t n = (size_t)src->len * KD * sizeof(float);
        memcpy(kc->k + to, src->k + from, n);
        memcpy(kc->v + to, src->v + from, n);
    }
    kc->len = src->len;
    return kc;
}

typedef struct {
    ws_kv_cache *const *caches;
    const ws_kv_cache *scratch;
    int l, H, KV, D;
    float scale;
    bool f16, ggml;
} batch_attn_job;

/* attention of sequence s's one new query (row s of the scratch) over its own cache, per head */
static void batch_attention_rows(void *arg, size_t lo, size_t hi, int chunk)
{
    const batch_attn_job *jb = arg;
    const ws_kv_cache *sc = jb->scratch;
    int H = jb->H, KV = jb->KV, D = jb->D, HD = H * D, KD = KV * D, grp = H / KV;
    for (size_t idx = lo; idx < hi; idx++) {
        int s = (int)(idx / (size_t)H), h = (int)(idx % (size_t)H);
        const ws_kv_cache *kc = jb->caches[s];
        const float *kh = kc->k + (size_t)jb->l * kc->max_T * KD + (size_t)(h / grp) * D;
        const float *vh = kc->v + (size_t)jb->l * kc->max_T * KD + (size_t)(h / grp) * D;
        const float *q = sc->q + (size_t)s * HD + (size_t)h * D;
        float *si = sc->att + idx * (size_t)sc->max_T, *o = sc->atty + (size_t)s * HD + (size_t)h * D;
        if (jb->ggml)
            attend_ggml(q, kh, vh, kc->len + 1, KD, D, jb->scale, si, o, false);
        else
            attend_one(q, kh, vh, kc->len + 1, KD, D, jb->scale, si, o, jb->f16);
    }
}

/* Appends row s of src[n, KD] to cache s at its next position, in layer l. */
static void put_rows(ws_kv_cache *const *caches, int n, int l, const float *k, const float *v, size_t KD)
{
    for (int s = 0; s < n; s++) {
        ws_kv_cache *kc = caches[s];
        size_t at = ((size_t)l * kc->max_T + (size_t)kc->len) * KD;
        memcpy(kc->k + at, k + (size_t)s * KD, KD * sizeof(float));
        memcpy(kc->v + at, v + (size_t)s * KD, KD * sizeof(float));
    }
}

int ws_model_infer_batch(const ws_model *m, const ws_lora *lora, ws_kv_cache *const *caches,
                         const int32_t *tokens, int n, float *logits, ws_error *err)
{
    const ws_model_config *c = &m->cfg;
    if (n <= 0)
        return ws_error_set(err, WS_EINVAL, "no sequences to run");
    int T = caches[0]->max_T;
    for (int s = 0; s < n; s++) {
        if (caches[s]->len + 1 > caches[s]->max_T || caches[s]->max_T != T)
            return ws_error_set(err, WS_ETOOBIG, "sequence %d: the cache is full or of another size", s);
        if (tokens[s] < 0 || tokens[s] >= c->vocab_size)
            return ws_error_set(err, WS_EINVAL, "token id %d outside the vocabulary", (int)tokens[s]);
    }
    ws_kv_cache *sc = caches[0]; /* its scratch serves the batch */
    cache_scratch(m, sc, n);
    int C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim;
    int HD = H * D, KD = KV * D;
    int32_t *pos = ws_xmalloc((size_t)n * sizeof(int32_t));
    for (int s = 0; s < n; s++)
        pos[s] = caches[s]->len;
    ws__embed(m, sc->x, tokens, n);
    for (int l = 0; l < c->n_layers; l++) {
        const ws_layer_weights *w = &m->w.layers[l];
        ws_rmsnorm_forward(sc->xn, NULL, sc->x, w->attn_norm, n, C, c->norm_eps);
        float *qkv[3] = {sc->q, sc->kc, sc->vc};
        ws__proj_infer_group(m, l, QKV, qkv, sc->xn, 3, n);
        ws__lora_apply(lora, l, WS_LORA_Q, sc->q, sc->xn, n, C, HD, sc->xa);
        ws__lora_apply(lora, l, WS_LORA_K, sc->kc, sc->xn, n, C, KD, sc->xa);
        ws__lora_apply(lora, l, WS_LORA_V, sc->vc, sc->xn, n, C, KD, sc->xa);
        rope(m, sc->q, pos, n, H);
        rope(m, sc->kc, pos, n, KV);
        round_f16_if(m->quantized, sc->q, (size_t)n * HD);
        round_f16_if(m->quantized, sc->kc, (size_t)n * KD);
        round_f16_if(m->quantized, sc->vc, (size_t)n * KD);
        if (m->llamacpp_order) {
            to_gguf_order(sc->q, (size_t)n * H, D);
            to_gguf_order(sc->kc, (size_t)n * KV, D);
        }
        put_rows(caches, n, l, sc->kc, sc->vc, (size_t)KD);
        batch_attn_job jb = {caches,           sc, l, H, KV, D, 1.0f / sqrtf((float)D), m->quantized,
                             m->llamacpp_order};
        ws_parallel_for((size_t)n * H, 1, batch_attention_rows, &jb);
        layer_tail(m, lora, l, sc, n);
    }
    ws_rmsnorm_forward(sc->xn, NULL, sc->x, m->w.final_norm, n, C, c->norm_eps);
    ws__head_infer(m, logits, sc->xn, n);
    for (int s = 0; s < n; s++)
        caches[s]->len++;
    free(pos);
    return 0;
}
