/* The decoder: parameter table and loading, training forward/backward (activations kept for
 * backward, llm.c style) and incremental inference with a KV cache. LoRA terms are applied
 * here from a ws_lora passed per call, so one base serves any number of adapters. */
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "nn/lora.h"
#include "nn/ops.h"
#include "nn/parallel.h"
#include "nn/prof.h"
#include "nn/vexp.h"
#include "nn/safetensors.h"

/* ---------------------------------------------------------------- parameter table */

static void add_param(ws_model *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
    ws_param *p = &m->params[m->n_params++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    p->offset = m->n_floats;
    m->n_floats += p->numel;
}

static void build_params(ws_model *m)
{
    const ws_model_config *c = &m->cfg;
    int C = c->dim, HD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim, F = c->hidden_dim;
    m->params = ws_xcalloc((size_t)3 + (size_t)c->n_layers * 13, sizeof *m->params);
    char n[96];
    add_param(m, "model.embed_tokens.weight", 2, c->vocab_size, C);
    for (int l = 0; l < c->n_layers; l++) {
#define P(suffix, nd, a, b) do { snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix); add_param(m, n, nd, a, b); } while (0)
        P("input_layernorm.weight", 1, C, 0);
        P("self_attn.q_proj.weight", 2, HD, C);
        P("self_attn.k_proj.weight", 2, KD, C);
        P("self_attn.v_proj.weight", 2, KD, C);
        P("self_attn.o_proj.weight", 2, C, HD);
        if (c->qkv_bias) {
            P("self_attn.q_proj.bias", 1, HD, 0);
            P("self_attn.k_proj.bias", 1, KD, 0);
            P("self_attn.v_proj.bias", 1, KD, 0);
        }
        if (c->o_bias)
            P("self_attn.o_proj.bias", 1, C, 0);
        P("post_attention_layernorm.weight", 1, C, 0);
        P("mlp.gate_proj.weight", 2, F, C);
        P("mlp.up_proj.weight", 2, F, C);
        P("mlp.down_proj.weight", 2, C, F);
#undef P
    }
    add_param(m, "model.norm.weight", 1, C, 0);
    if (!c->tied)
        add_param(m, "lm_head.weight", 2, c->vocab_size, C);
}

/* The slot in w that param i names. */
static float **param_slot(const ws_model *m, const ws_weights *w, int i)
{
    const char *name = m->params[i].name;
    if (!strcmp(name, "model.embed_tokens.weight"))
        return (float **)&w->embed;
    if (!strcmp(name, "model.norm.weight"))
        return (float **)&w->final_norm;
    if (!strcmp(name, "lm_head.weight"))
        return (float **)&w->lm_head;
    int l = atoi(name + strlen("model.layers."));
    const char *s = strchr(name + strlen("model.layers."), '.') + 1;
    ws_layer_weights *L = &w->layers[l];
    static const struct { const char *suffix; size_t off; } map[] = {
        {"input_layernorm.weight", offsetof(ws_layer_weights, attn_norm)},
        {"self_attn.q_proj.weight", offsetof(ws_layer_weights, wq)},
        {"self_attn.k_proj.weight", offsetof(ws_layer_weights, wk)},
        {"self_attn.v_proj.weight", offsetof(ws_layer_weights, wv)},
        {"self_attn.o_proj.weight", offsetof(ws_layer_weights, wo)},
        {"self_attn.q_proj.bias", offsetof(ws_layer_weights, bq)},
        {"self_attn.k_proj.bias", offsetof(ws_layer_weights, bk)},
        {"self_attn.v_proj.bias", offsetof(ws_layer_weights, bv)},
        {"self_attn.o_proj.bias", offsetof(ws_layer_weights, bo)},
        {"post_attention_layernorm.weight", offsetof(ws_layer_weights, mlp_norm)},
        {"mlp.gate_proj.weight", offsetof(ws_layer_weights, wg)},
        {"mlp.up_proj.weight", offsetof(ws_layer_weights, wu)},
        {"mlp.down_proj.weight", offsetof(ws_layer_weights, wd)},
    };
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (!strcmp(s, map[k].suffix))
            return (float **)((char *)L + map[k].off);
    return NULL;
}

float *ws_model_param_ptr(const ws_model *m, const ws_weights *w, int i)
{
    return *param_slot(m, w, i);
}

static void carve(ws_model *m, ws_weights *w, float *block)
{
    for (int i = 0; i < m->n_params; i++)
        *param_slot(m, w, i) = block + m->params[i].offset;
    if (m->cfg.tied)
        w->lm_head = w->embed;
}

static ws_model *model_alloc(const ws_model_config *cfg)
{
    ws_model *m = ws_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    build_params(m);
    m->w.layers = ws_xcalloc((size_t)cfg->n_layers, sizeof(ws_layer_weights));
    m->g.layers = ws_xcalloc((size_t)cfg->n_layers, sizeof(ws_layer_weights));
    int half = cfg->head_dim / 2;
    m->rope_cos = ws_xmalloc((size_t)cfg->max_pos * half * sizeof(float));
    m->rope_sin = ws_xmalloc((size_t)cfg->max_pos * half * sizeof(float));
    ws_rope_tables(m->rope_cos, m->rope_sin, cfg->max_pos, cfg->head_dim, cfg->rope_theta, cfg->rope_type,
                   cfg->rope_factor, cfg->rope_low_freq, cfg->rope_high_freq, cfg->rope_orig_max_pos);
    return m;
}

void ws_model_free(ws_model *m)
{
    if (!m)
        return;
    free(m->block);
    free(m->grad_block);
    free(m->params);
    free(m->w.layers);
    free(m->g.layers);
    free(m->rope_cos);
    free(m->rope_sin);
    ws_st_close(m->st);
    free(m);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float randn(uint64_t *s)
{
    double u1 = ((splitmix(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

ws_model *ws_model_new(const ws_model_config *cfg, uint64_t seed)
{
    ws_model *m = model_alloc(cfg);
    m->block = ws_xaligned(64, m->n_floats * sizeof(float));
    m->contiguous = true;
    carve(m, &m->w, m->block);
    uint64_t s = seed;
    for (int i = 0; i < m->n_params; i++) {
        float *p = m->block + m->params[i].offset;
        bool norm = strstr(m->params[i].name, "norm") != NULL, bias = strstr(m->params[i].name, "bias") != NULL;
        for (size_t k = 0; k < m->params[i].numel; k++)
            p[k] = norm ? 1.0f : bias ? 0.0f : 0.02f * randn(&s);
    }
    return m;
}

int ws_model_load(const char *dir, int flags, ws_model **out, ws_error *err)
{
    ws_model_config cfg;
    ws_model *m = NULL;
    int rc;
    *out = NULL;
    if ((rc = ws_config_load(dir, &cfg, err)))
        return rc;
    m = model_alloc(&cfg);
    if ((rc = ws_st_open_dir(dir, &m->st, err)))
        goto out;
    bool copy = flags & WS_LOAD_COPY;
    for (int i = 0; i < m->n_params && !rc; i++) {
        const ws_param *p = &m->params[i];
        const ws_st_tensor *t = ws_st_find(m->st, p->name);
        if (!t) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: weight '%s' is missing", dir, p->name);
            break;
        }
        if (t->numel != p->numel || t->ndim != p->ndim || t->shape[0] != p->shape[0] ||
            (p->ndim > 1 && t->shape[1] != p->shape[1])) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: weight '%s' has shape [%lld,%lld], expected [%lld,%lld]",
                              dir, p->name, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0),
                              (long long)p->shape[0], (long long)(p->ndim > 1 ? p->shape[1] : 0));
            break;
        }
        if (t->dtype != WS_DT_F32 && t->dtype != WS_DT_F16 && t->dtype != WS_DT_BF16) {
            rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: weight '%s' has dtype %s", dir, p->name,
                              ws_dtype_name(t->dtype));
            break;
        }
        if (!copy && t->dtype == WS_DT_F32 && ((uintptr_t)t->data % 4) == 0) {
            *param_slot(m, &m->w, i) = (float *)t->data;   /* zero-copy view into the mapping */
            continue;
        }
        if (!m->block)
            m->block = ws_xaligned(64, m->n_floats * sizeof(float));
        float *dst = m->block + p->offset;
        ws_st_to_f32(t, dst);
        *param_slot(m, &m->w, i) = dst;
    }
    if (rc)
        goto out;
    if (cfg.tied)
        m->w.lm_head = m->w.embed;
    m->contiguous = copy;
    if (copy) {
        ws_st_close(m->st);
        m->st = NULL;
    }
out:
    if (rc) {
        ws_model_free(m);
        m = NULL;
    }
    *out = m;
    return rc;
}

int ws_model_save(const ws_model *m, const char *dir, ws_error *err)
{
    char path[4096];
    ws_st_entry *e = ws_xcalloc((size_t)m->n_params, sizeof *e);
    for (int i = 0; i < m->n_params; i++) {
        e[i].name = m->params[i].name;
        e[i].dtype = WS_DT_F32;
        e[i].ndim = m->params[i].ndim;
        e[i].shape[0] = m->params[i].shape[0];
        e[i].shape[1] = m->params[i].shape[1];
        e[i].data = ws_model_param_ptr(m, &m->w, i);
    }
    static const char *meta[] = {"format", "pt"};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = ws_st_write(path, e, (size_t)m->n_params, meta, 1, err);
    free(e);
    if (rc)
        return rc;
    char *json = ws_config_to_json(&m->cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fputs(json, f) < 0) {
        rc = ws_error_set(err, WS_EIO, "%s: cannot write", path);
    }
    if (f && fclose(f) && !rc)
        rc = ws_error_set(err, WS_EIO, "%s: cannot write", path);
    free(json);
    return rc;
}

int ws_model_enable_grads(ws_model *m, ws_error *err)
{
    if (!m->contiguous)
        return ws_error_set(err, WS_EINVAL, "full training needs the weights in one block (WS_LOAD_COPY)");
    if (!m->grad_block) {
        m->grad_block = ws_xaligned(64, m->n_floats * sizeof(float));
        carve(m, &m->g, m->grad_block);
    }
    ws_model_zero_grads(m);
    return 0;
}

void ws_model_zero_grads(ws_model *m)
{
    if (m->grad_block)
        memset(m->grad_block, 0, m->n_floats * sizeof(float));
}

/* ---------------------------------------------------------------- activations */

typedef struct {
    float *xn1, *rstd1, *q, *k, *v, *att, *atty, *mid, *xn2, *rstd2, *g, *u, *h;
} layer_acts;

struct ws_acts {
    int maxB, maxT;          /* allocated for */
    int B, T;                /* of the last forward */
    size_t bytes;
    float *res;              /* [L+1, N, C] residual stream */
    layer_acts *L;
    float *xf, *rstdf, *logits;
    const int32_t *inputs;
    int32_t *targets;
    int count;               /* counted targets of the last forward */
    /* LoRA */
    float **lxa, **lxd;      /* [L*NT]: x A^T [N,r]; dropped input [N,in] (dropout only) */
    uint64_t *lseed;
    int lrank;
    /* backward scratch */
    float *dres, *dxn, *dh, *dq, *dk, *dv, *datty, *lse, *ldxa, *ltmp;
    float *block;
};

static float *take(float **cur, size_t n)
{
    float *p = *cur;
    *cur += (n + 15) & ~(size_t)15;
    return p;
}

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
    size_t total = (L + 1) * N * C + L * (N * (4 * C + HD * 2 + 2 * KD + 3 * F + 2) + (size_t)B * c->n_heads * T * T) +
                   N * C + N + N * V + N * C * 2 + N * F + N * HD * 2 + N * KD * 2 + N +
                   L * 64 * 16 + 64 * 32;
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
    a->res = take(&cur, (L + 1) * N * C);
    for (size_t l = 0; l < L; l++) {
        layer_acts *la = &a->L[l];
        la->xn1 = take(&cur, N * C);
        la->rstd1 = take(&cur, N);
        la->q = take(&cur, N * HD);
        la->k = take(&cur, N * KD);
        la->v = take(&cur, N * KD);
        la->att = take(&cur, (size_t)B * c->n_heads * T * T);
        la->atty = take(&cur, N * HD);
        la->mid = take(&cur, N * C);
        la->xn2 = take(&cur, N * C);
        la->rstd2 = take(&cur, N);
        la->g = take(&cur, N * F);
        la->u = take(&cur, N * F);
        la->h = take(&cur, N * F);
    }
    a->xf = take(&cur, N * C);
    a->rstdf = take(&cur, N);
    a->logits = take(&cur, N * V);
    a->dres = take(&cur, N * C);
    a->dxn = take(&cur, N * C);
    a->dh = take(&cur, N * F);
    a->dq = take(&cur, N * HD);
    a->datty = take(&cur, N * HD);
    a->dk = take(&cur, N * KD);
    a->dv = take(&cur, N * KD);
    a->lse = take(&cur, N);
    a->targets = ws_xmalloc(N * sizeof(int32_t));
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
                    a->lxa[l * WS_LORA_NT + t] = take(&cur, N * r);
                    if (lora->cfg.dropout > 0)
                        a->lxd[l * WS_LORA_NT + t] = take(&cur, N * (size_t)in);
                }
        a->ldxa = take(&cur, N * r);
        a->ltmp = take(&cur, N * maxin);
    }
    if ((size_t)(cur - a->block) > total)
        abort();   /* sizing bug */
    return a;
}

void ws_acts_free(ws_acts *a)
{
    if (!a)
        return;
    free(a->block);
    free(a->L);
    free(a->targets);
    free(a->lxa);
    free(a->lxd);
    free(a->lseed);
    free(a);
}

size_t ws_acts_bytes(const ws_acts *a) { return a->bytes; }
float *ws_acts_logits(ws_acts *a) { return a->logits; }

/* ---------------------------------------------------------------- LoRA terms */

static float drop_uniform(uint64_t *s)
{
    return (float)((splitmix(s) >> 40) * (1.0 / 16777216.0));
}

/* y[N,out] += scale * drop(x) A^T B^T; saves x A^T (and the dropped x) in acts when given. */
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
        uint64_t seed = ((ws_lora *)lo)->rng = splitmix(&((ws_lora *)lo)->rng);
        if (a)
            a->lseed[idx] = seed;
        float p = lo->cfg.dropout, keep = 1.0f / (1.0f - p);
        uint64_t s = seed;
        for (size_t i = 0; i < (size_t)N * in; i++)
            xd[i] = drop_uniform(&s) < p ? 0.0f : x[i] * keep;
        xin = xd;
    }
    ws_sgemm(false, true, N, r, in, 1.0f, xin, in, A, in, 0.0f, xa, r);
    ws_sgemm(false, true, N, out, r, lo->scale, xa, r, Bm, r, 1.0f, y, out);
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
        return;   /* nothing below needs a gradient */
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

/* dX of a product: dinp = beta * dinp + dout w (beta 0 overwrites: no zeroing pass first) */
static void mm_dx(int cat, float *dinp, float beta, const float *dout, const float *w, int N, int IC, int OC)
{
    WS_PROF(cat, ws_sgemm(false, false, N, IC, OC, 1.0f, dout, OC, w, IC, beta, dinp, IC));
}

/* dW (and dbias) of a product, added; nothing when both are NULL (frozen base) */
static void mm_dw(int cat, float *dw, float *dbias, const float *dout, const float *inp, int N, int IC, int OC)
{
    if (dw || dbias)
        WS_PROF(cat, ws_matmul_backward(NULL, dw, dbias, dout, inp, NULL, N, IC, OC));
}

int ws_model_forward(const ws_model *m, const ws_lora *lora, ws_acts *a, const int32_t *inputs,
                     const int32_t *targets, int B, int T, bool training, float *loss)
{
    const ws_model_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || B > a->maxB || T > a->maxT || (lora && !a->lxa))
        return WS_EINVAL;
    int N = B * T, C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, F = c->hidden_dim;
    int HD = H * D, KD = KV * D, V = c->vocab_size;
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= V || (targets && targets[i] >= V))
            return WS_EINVAL;
    /* activations were laid out for (a->B, a->T); a smaller T reuses the same buffers */
    a->B = B;
    a->T = T;
    a->inputs = inputs;
    WS_PROF(WS_PROF_EMBED, ws_embedding_forward(a->res, inputs, m->w.embed, N, C););
    for (int l = 0; l < c->n_layers; l++) {
        const ws_layer_weights *w = &m->w.layers[l];
        layer_acts *la = &a->L[l];
        float *x = a->res + (size_t)l * N * C, *xo = a->res + (size_t)(l + 1) * N * C;
        WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_forward(la->xn1, la->rstd1, x, w->attn_norm, N, C, c->norm_eps););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(la->q, la->xn1, w->wq, w->bq, N, C, HD, 0.0f););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(la->k, la->xn1, w->wk, w->bk, N, C, KD, 0.0f););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(la->v, la->xn1, w->wv, w->bv, N, C, KD, 0.0f););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_Q, la->q, la->xn1, N, C, HD, training, NULL, NULL););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_K, la->k, la->xn1, N, C, KD, training, NULL, NULL););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_V, la->v, la->xn1, N, C, KD, training, NULL, NULL););
        WS_PROF(WS_PROF_ROPE, ws_rope_forward(la->q, NULL, N, T, H, D, m->rope_cos, m->rope_sin););
        WS_PROF(WS_PROF_ROPE, ws_rope_forward(la->k, NULL, N, T, KV, D, m->rope_cos, m->rope_sin););
        WS_PROF(WS_PROF_ATTN_FWD, ws_attention_forward(la->atty, la->att, la->q, la->k, la->v, B, T, H, KV, D););
        WS_PROF(WS_PROF_COPY, memcpy(la->mid, x, (size_t)N * C * sizeof(float)););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(la->mid, la->atty, w->wo, w->bo, N, HD, C, 1.0f););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_O, la->mid, la->atty, N, HD, C, training, NULL, NULL););
        WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_forward(la->xn2, la->rstd2, la->mid, w->mlp_norm, N, C, c->norm_eps););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(la->g, la->xn2, w->wg, NULL, N, C, F, 0.0f););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(la->u, la->xn2, w->wu, NULL, N, C, F, 0.0f););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_GATE, la->g, la->xn2, N, C, F, training, NULL, NULL););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_UP, la->u, la->xn2, N, C, F, training, NULL, NULL););
        WS_PROF(WS_PROF_SWIGLU, ws_swiglu_forward(la->h, la->g, la->u, (size_t)N * F););
        WS_PROF(WS_PROF_COPY, memcpy(xo, la->mid, (size_t)N * C * sizeof(float)););
        WS_PROF(WS_PROF_MATMUL_FWD, ws_matmul_forward(xo, la->h, w->wd, NULL, N, F, C, 1.0f););
        WS_PROF(WS_PROF_LORA, lora_fwd(lora, a, l, WS_LORA_DOWN, xo, la->h, N, F, C, training, NULL, NULL););
    }
    WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_forward(a->xf, a->rstdf, a->res + (size_t)c->n_layers * N * C, m->w.final_norm, N, C, c->norm_eps););
    WS_PROF(WS_PROF_HEAD_FWD, ws_matmul_forward(a->logits, a->xf, m->w.lm_head, NULL, N, C, V, 0.0f););
    a->count = 0;
    if (targets) {
        WS_PROF(WS_PROF_COPY, memcpy(a->targets, targets, (size_t)N * sizeof(int32_t)););
        int cnt = 0;
        double sum;
        WS_PROF(WS_PROF_CE_FWD, sum = ws_crossentropy_forward(a->logits, targets, N, V, &cnt, a->lse));
        a->count = cnt;
        if (loss)
            *loss = cnt ? (float)(sum / cnt) : 0.0f;
    }
    return 0;
}

static bool adapted(const ws_lora *lo, int l, int t) { return lo && lo->A[l * WS_LORA_NT + t]; }

void ws_model_backward(ws_model *m, ws_lora *lora, ws_acts *a, float loss_scale)
{
    const ws_model_config *c = &m->cfg;
    int B = a->B, T = a->T, N = B * T, C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim;
    int F = c->hidden_dim, HD = H * D, KD = KV * D, V = c->vocab_size;
    bool full = lora == NULL;
    ws_weights *g = full ? &m->g : NULL;
    if (a->count == 0)
        return;
    /* with a frozen base, nothing below the lowest adapted layer needs a gradient */
    int lowest = 0;
    if (lora) {
        lowest = c->n_layers;
        for (int l = c->n_layers - 1; l >= 0; l--)
            for (int t = 0; t < WS_LORA_NT; t++)
                if (adapted(lora, l, t))
                    lowest = l;
        if (lowest == c->n_layers)
            return;
    }
    WS_PROF(WS_PROF_CE_BWD, ws_crossentropy_backward(a->logits, a->targets, N, V, loss_scale / (float)a->count, a->lse));
    mm_dx(WS_PROF_HEAD_DX, a->dxn, 0.0f, a->logits, m->w.lm_head, N, C, V);
    mm_dw(WS_PROF_HEAD_DW, full ? g->lm_head : NULL, NULL, a->logits, a->xf, N, C, V);
    WS_PROF(WS_PROF_COPY, memset(a->dres, 0, (size_t)N * C * sizeof(float)));
    WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_backward(a->dres, full ? g->final_norm : NULL, a->dxn,
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
            mm_dx(WS_PROF_MATMUL_DX, a->dh, 0.0f, a->dres, w->wd, N, F, C);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wd : NULL, NULL, a->dres, la->h, N, F, C);
        if (lora)
            WS_PROF(WS_PROF_LORA, lora_bwd(lora, a, l, WS_LORA_DOWN, need_dh ? a->dh : NULL, a->dres, la->h, N, F, C));
        if (!need_dh)
            break;
        /* dG, dU overwrite G, U (backward runs once per forward; it already turned the logits
         * into their gradient) */
        float *dg = la->g, *du = la->u;
        WS_PROF(WS_PROF_SWIGLU, ws_swiglu_backward_set(dg, du, a->dh, la->g, la->u, (size_t)N * F));
        if (need_attn) {
            mm_dx(WS_PROF_MATMUL_DX, a->dxn, 0.0f, dg, w->wg, N, C, F);
            mm_dx(WS_PROF_MATMUL_DX, a->dxn, 1.0f, du, w->wu, N, C, F);
        }
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wg : NULL, NULL, dg, la->xn2, N, C, F);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wu : NULL, NULL, du, la->xn2, N, C, F);
        if (lora) {
            WS_PROF(WS_PROF_LORA, lora_bwd(lora, a, l, WS_LORA_GATE, need_attn ? a->dxn : NULL, dg, la->xn2, N, C, F));
            WS_PROF(WS_PROF_LORA, lora_bwd(lora, a, l, WS_LORA_UP, need_attn ? a->dxn : NULL, du, la->xn2, N, C, F));
        }
        if (!need_attn)
            break;
        WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_backward(a->dres, full ? gl->mlp_norm : NULL, a->dxn, la->mid, w->mlp_norm,
                                                     la->rstd2, N, C));
        /* attention: mid = x + atty Wo^T */
        if (need_qkv)
            mm_dx(WS_PROF_MATMUL_DX, a->datty, 0.0f, a->dres, w->wo, N, HD, C);
        mm_dw(WS_PROF_MATMUL_DW, full ? gl->wo : NULL, full ? gl->bo : NULL, a->dres, la->atty, N, HD, C);
        if (lora)
            WS_PROF(WS_PROF_LORA, lora_bwd(lora, a, l, WS_LORA_O, need_qkv ? a->datty : NULL, a->dres, la->atty, N, HD, C));
        if (!need_qkv)
            break;
        WS_PROF(WS_PROF_COPY, memset(a->dq, 0, (size_t)N * HD * sizeof(float));
                memset(a->dk, 0, (size_t)N * KD * sizeof(float)); memset(a->dv, 0, (size_t)N * KD * sizeof(float)));
        WS_PROF(WS_PROF_ATTN_BWD, ws_attention_backward(a->dq, a->dk, a->dv, a->datty, la->att, la->q, la->k, la->v, B,
                                                        T, H, KV, D));
        WS_PROF(WS_PROF_ROPE, ws_rope_backward(a->dq, NULL, N, T, H, D, m->rope_cos, m->rope_sin);
                ws_rope_backward(a->dk, NULL, N, T, KV, D, m->rope_cos, m->rope_sin));
        if (!bottom) {
            mm_dx(WS_PROF_MATMUL_DX, a->dxn, 0.0f, a->dq, w->wq, N, C, HD);
            mm_dx(WS_PROF_MATMUL_DX, a->dxn, 1.0f, a->dk, w->wk, N, C, KD);
            mm_dx(WS_PROF_MATMUL_DX, a->dxn, 1.0f, a->dv, w->wv, N, C, KD);
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
            WS_PROF(WS_PROF_RMSNORM, ws_rmsnorm_backward(a->dres, full ? gl->attn_norm : NULL, a->dxn, x, w->attn_norm,
                                                         la->rstd1, N, C));
    }
    if (full)
        WS_PROF(WS_PROF_EMBED, ws_embedding_backward(g->embed, a->dres, a->inputs, N, C));
}

/* ---------------------------------------------------------------- inference */

struct ws_kv_cache {
    int max_T, len, cap_n;
    float *k, *v;             /* [L, max_T, KV*D] */
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

void ws_kv_cache_reset(ws_kv_cache *c) { c->len = 0; }
int ws_kv_cache_len(const ws_kv_cache *c) { return c->len; }
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
    kc->x = take(&cur, n * C);
    kc->xn = take(&cur, n * C);
    kc->q = take(&cur, n * HD);
    kc->atty = take(&cur, n * HD);
    kc->g = take(&cur, n * F);
    kc->u = take(&cur, n * F);
    kc->xa = take(&cur, n * maxin);
    kc->kc = take(&cur, n * KD);
    kc->vc = take(&cur, n * KD);
    kc->att = take(&cur, (size_t)c->n_heads * n * T);
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
        for (int i = 0; i < n; i++) {
            const float *qi = kc->q + (size_t)i * HD + (size_t)h * D;
            float *si = s + (size_t)i * T;
            int lim = start + i + 1;
            float mx = -INFINITY;
            for (int j = 0; j < lim; j++) {
                const float *kj = kh + (size_t)j * KD;
                float d = 0;
#pragma omp simd reduction(+ : d)
                for (int e = 0; e < D; e++)
                    d += qi[e] * kj[e];
                si[j] = d * scale;
                mx = si[j] > mx ? si[j] : mx;
            }
            float sum = 0;
            for (int j = 0; j < lim; j++) {
                si[j] = ws_vexpf(si[j] - mx);
                sum += si[j];
            }
            float inv = 1.0f / sum;
            float *o = kc->atty + (size_t)i * HD + (size_t)h * D;
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
    }
}

static void step_attention(ws_kv_cache *kc, const float *Kc, const float *Vc, int n, int start, int H, int KV,
                           int D, float scale)
{
    attn_job j = {kc, Kc, Vc, n, start, H, KV, D, scale, NULL, 0};
    /* worth a fork only when the context is long */
    ws_parallel_for((size_t)H, (size_t)(start + n) * n * D >= 65536 ? 1 : (size_t)H, step_attention_heads, &j);
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

static void chunk_attention(ws_kv_cache *kc, const float *Kc, const float *Vc, int n, int start, int H, int KV,
                            int D, float scale)
{
    int HD = H * D, KD = KV * D, grp = H / KV, ctx = start + n;
    for (int h = 0; h < H; h++) {
        float *s = kc->att + (size_t)h * n * kc->max_T;   /* [n, ctx] */
        const float *kh = Kc + (size_t)(h / grp) * D, *vh = Vc + (size_t)(h / grp) * D;
        ws_sgemm(false, true, n, ctx, D, scale, kc->q + (size_t)h * D, HD, kh, KD, 0.0f, s, ctx);
        attn_job jb = {.kc = kc, .start = start, .s = s, .ctx = ctx};
        ws_parallel_for((size_t)n, 16384 / (size_t)ctx + 1, chunk_softmax_rows, &jb);
        ws_sgemm(false, false, n, D, ctx, 1.0f, s, ctx, vh, KD, 0.0f, kc->atty + (size_t)h * D, HD);
    }
}

int ws_model_infer(const ws_model *m, const ws_lora *lora, ws_kv_cache *kc, const int32_t *tokens, int n,
                   float *logits, float *all_logits, ws_error *err)
{
    const ws_model_config *c = &m->cfg;
    if (n <= 0)
        return ws_error_set(err, WS_EINVAL, "no tokens to run");
    if (kc->len + n > kc->max_T)
        return ws_error_set(err, WS_ETOOBIG, "context of %d tokens is over the cache's %d", kc->len + n, kc->max_T);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return ws_error_set(err, WS_EINVAL, "token id %d outside the vocabulary", (int)tokens[i]);
    cache_scratch(m, kc, n);
    int C = c->dim, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, F = c->hidden_dim;
    int HD = H * D, KD = KV * D, V = c->vocab_size, T = kc->max_T, start = kc->len, ctx = start + n;
    float scale = 1.0f / sqrtf((float)D);
    int32_t *pos = ws_xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        pos[i] = start + i;
    ws_embedding_forward(kc->x, tokens, m->w.embed, n, C);
    for (int l = 0; l < c->n_layers; l++) {
        const ws_layer_weights *w = &m->w.layers[l];
        float *Kc = kc->k + (size_t)l * T * KD, *Vc = kc->v + (size_t)l * T * KD;
        ws_rmsnorm_forward(kc->xn, NULL, kc->x, w->attn_norm, n, C, c->norm_eps);
        ws_matmul_forward(kc->q, kc->xn, w->wq, w->bq, n, C, HD, 0.0f);
        ws_matmul_forward(Kc + (size_t)start * KD, kc->xn, w->wk, w->bk, n, C, KD, 0.0f);
        ws_matmul_forward(Vc + (size_t)start * KD, kc->xn, w->wv, w->bv, n, C, KD, 0.0f);
        lora_fwd(lora, NULL, l, WS_LORA_Q, kc->q, kc->xn, n, C, HD, false, kc->xa, NULL);
        lora_fwd(lora, NULL, l, WS_LORA_K, Kc + (size_t)start * KD, kc->xn, n, C, KD, false, kc->xa, NULL);
        lora_fwd(lora, NULL, l, WS_LORA_V, Vc + (size_t)start * KD, kc->xn, n, C, KD, false, kc->xa, NULL);
        ws_rope_forward(kc->q, pos, n, 0, H, D, m->rope_cos, m->rope_sin);
        ws_rope_forward(Kc + (size_t)start * KD, pos, n, 0, KV, D, m->rope_cos, m->rope_sin);
        /* attention of the n new queries over ctx cached keys: a chunk goes through sgemm,
         * a single token through the dot-product loops */
        if (n >= 8)
            chunk_attention(kc, Kc, Vc, n, start, H, KV, D, scale);
        else
            step_attention(kc, Kc, Vc, n, start, H, KV, D, scale);
        ws_matmul_forward(kc->x, kc->atty, w->wo, w->bo, n, HD, C, 1.0f);
        lora_fwd(lora, NULL, l, WS_LORA_O, kc->x, kc->atty, n, HD, C, false, kc->xa, NULL);
        ws_rmsnorm_forward(kc->xn, NULL, kc->x, w->mlp_norm, n, C, c->norm_eps);
        ws_matmul_forward(kc->g, kc->xn, w->wg, NULL, n, C, F, 0.0f);
        ws_matmul_forward(kc->u, kc->xn, w->wu, NULL, n, C, F, 0.0f);
        lora_fwd(lora, NULL, l, WS_LORA_GATE, kc->g, kc->xn, n, C, F, false, kc->xa, NULL);
        lora_fwd(lora, NULL, l, WS_LORA_UP, kc->u, kc->xn, n, C, F, false, kc->xa, NULL);
        ws_swiglu_forward(kc->g, kc->g, kc->u, (size_t)n * F);
        ws_matmul_forward(kc->x, kc->g, w->wd, NULL, n, F, C, 1.0f);
        lora_fwd(lora, NULL, l, WS_LORA_DOWN, kc->x, kc->g, n, F, C, false, kc->xa, NULL);
    }
    if (all_logits) {
        ws_rmsnorm_forward(kc->xn, NULL, kc->x, m->w.final_norm, n, C, c->norm_eps);
        ws_matmul_forward(all_logits, kc->xn, m->w.lm_head, NULL, n, C, V, 0.0f);
        if (logits)
            memcpy(logits, all_logits + (size_t)(n - 1) * V, (size_t)V * sizeof(float));
    } else if (logits) {
        ws_rmsnorm_forward(kc->xn, NULL, kc->x + (size_t)(n - 1) * C, m->w.final_norm, 1, C, c->norm_eps);
        ws_matmul_forward(logits, kc->xn, m->w.lm_head, NULL, 1, C, V, 0.0f);
    }
    kc->len = ctx;
    free(pos);
    return 0;
}
