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
} attn_job;

/* Softmax attention of one query over lim cached positions (keys/values KD floats apart, head
 * size D): o[D] = sum_j softmax(q.k_j * scale) v_j; s is scratch of lim floats. */
static void attend_one(const float *qi, const float *kh, const float *vh, int lim, int KD, int D, float scale,
                       float *si, float *o)
{
    float mx = -INFINITY, sum = 0;
    for (int j = 0; j < lim; j++) {
        const float *kj = kh + (size_t)j * KD;
        float d = 0;
#pragma omp simd reduction(+ : d)
        for (int e = 0; e < D; e++)
            d += qi[e] * kj[e];
        si[j] = d * scale;
        mx = si[j] > mx ? si[j] : mx;
    }
    for (int j = 0; j < lim; j++) {
        si[j] = ws_vexpf(si[j] - mx);
        sum += si[j];
    }
    float inv = 1.0f / sum;
    for (int e = 0; e < D; e++)
        o[e] = 0;
    for (int j = 0; j < lim; j++) {
        const float *vj = vh + (size_t)j * KD;
        float p = si[j] * inv;
#pragma omp simd
        for (int e = 0; e < D; e++)
            o[e] += p * vj[e];
    }
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
            attend_one(kc->q + (size_t)i * HD + (size_t)h * D, kh, vh, start + i + 1, KD, D, scale,
                       s + (size_t)i * T, kc->atty + (size_t)i * HD + (size_t)h * D);
    }
}

static void step_attention(ws_kv_cache *kc, const float *Kc, const float *Vc, int n, int start, int H, int KV,
                           int D, float scale)
{
    attn_job j = {kc, Kc, Vc, n, start, H, KV, D, scale, NULL, 0};
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
        float mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < lim; j++)
            mx = row[j] > mx ? row[j] : mx;
        for (int j = 0; j < lim; j++) {
            row[j] = ws_vexpf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < lim; j++)
            row[j] *= inv;
        for (int j = lim; j < jb->ctx; j++)
            row[j] = 0;
    }
}

static void chunk_attention(ws_kv_cache *kc, const float *Kc, const float *Vc, int n, int start, int H,
                            int KV, int D, float scale)
{
    int HD = H * D, KD = KV * D, grp = H / KV, ctx = start + n;
    for (int h = 0; h < H; h++) {
        float *s = kc->att + (size_t)h * n * kc->max_T; /* [n, ctx] */
        const float *kh = Kc + (size_t)(h / grp) * D, *vh = Vc + (size_t)(h / grp) * D;
        ws_sgemm(false, true, n, ctx, D, scale, kc->q + (size_t)h * D, HD, kh, KD, 0.0f, s, ctx);
        attn_job jb = {.kc = kc, .start = start, .s = s, .ctx = ctx};
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
        ws_rope_forward(kc->q, pos, n, 0, H, D, m->rope_cos, m->rope_sin);
        ws_rope_forward(Kc + (size_t)start * KD, pos, n, 0, KV, D, m->rope_cos, m->rope_sin);
        /* attention of the n new queries over ctx cached keys: a chunk goes through sgemm,
         * a single token through the dot-product loops */
        if (n >= 8)
            chunk_attention(kc, Kc, Vc, n, start, H, KV, D, scale);
        else
            step_attention(kc, Kc, Vc, n, start, H, KV, D, scale);
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
        attend_one(sc->q + (size_t)s * HD + (size_t)h * D, kh, vh, kc->len + 1, KD, D, jb->scale,
                   sc->att + idx * (size_t)sc->max_T, sc->atty + (size_t)s * HD + (size_t)h * D);
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
        ws_rope_forward(sc->q, pos, n, 0, H, D, m->rope_cos, m->rope_sin);
        ws_rope_forward(sc->kc, pos, n, 0, KV, D, m->rope_cos, m->rope_sin);
        put_rows(caches, n, l, sc->kc, sc->vc, (size_t)KD);
        batch_attn_job jb = {caches, sc, l, H, KV, D, 1.0f / sqrtf((float)D)};
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
