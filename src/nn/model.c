/* The decoder's parameters: the parameter table, allocation, loading from safetensors (GGUF
 * files: model_gguf.c), saving, gradients, and the projection products that pick f32 or
 * quantized weights for the passes (model_train.c: training forward/backward; model_infer.c:
 * inference with a KV cache). LoRA terms are applied from a ws_lora passed per call, so one
 * base serves any number of adapters. */
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "nn/lora.h"
#include "nn/model_int.h"
#include "nn/ops.h"
#include "nn/parallel.h"
#include "nn/prof.h"
#include "nn/vexp.h"
#include "nn/gguf.h"
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
#define P(suffix, nd, a, b)                                                                                  \
    do {                                                                                                     \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                              \
        add_param(m, n, nd, a, b);                                                                           \
    } while (0)
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
float **ws__model_param_slot(const ws_model *m, const ws_weights *w, int i)
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
    static const struct {
        const char *suffix;
        size_t off;
    } map[] = {
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
    return *ws__model_param_slot(m, w, i);
}

void ws__model_carve(ws_model *m, ws_weights *w, float *block)
{
    for (int i = 0; i < m->n_params; i++)
        *ws__model_param_slot(m, w, i) = block + m->params[i].offset;
    if (m->cfg.tied)
        w->lm_head = w->embed;
}

ws_model *ws__model_alloc(const ws_model_config *cfg)
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
    free(m->q.layers);
    free(m->owned_q);
    ws_st_close(m->st);
    ws_gguf_close(m->gguf);
    free(m);
}

uint64_t ws__splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float randn(uint64_t *s)
{
    double u1 = ((ws__splitmix(s) >> 11) + 1.0) / 9007199254740993.0,
           u2 = (ws__splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

ws_model *ws_model_new(const ws_model_config *cfg, uint64_t seed)
{
    ws_model *m = ws__model_alloc(cfg);
    m->block = ws_xaligned(64, m->n_floats * sizeof(float));
    m->contiguous = true;
    ws__model_carve(m, &m->w, m->block);
    uint64_t s = seed;
    for (int i = 0; i < m->n_params; i++) {
        float *p = m->block + m->params[i].offset;
        bool norm = strstr(m->params[i].name, "norm") != NULL,
             bias = strstr(m->params[i].name, "bias") != NULL;
        for (size_t k = 0; k < m->params[i].numel; k++)
            p[k] = norm ? 1.0f : bias ? 0.0f : 0.02f * randn(&s);
    }
    return m;
}

bool ws_model_is_gguf(const char *path)
{
    struct stat st;
    char magic[4];
    if (stat(path, &st) || !S_ISREG(st.st_mode))
        return false;
    FILE *f = fopen(path, "rb");
    bool yes = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f)
        fclose(f);
    return yes;
}

int ws_model_load(const char *dir, int flags, ws_model **out, ws_error *err)
{
    ws_model_config cfg;
    ws_model *m = NULL;
    int rc;
    *out = NULL;
    if (ws_model_is_gguf(dir)) {
        ws_gguf *g = NULL;
        if ((rc = ws_gguf_open(dir, &g, err)))
            return rc;
        return ws_model_load_gguf(g, dir, flags, out, err);
    }
    if ((rc = ws_config_load(dir, &cfg, err)))
        return rc;
    m = ws__model_alloc(&cfg);
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
            rc =
                ws_error_set(err, WS_EFORMAT, "%s: weight '%s' has shape [%lld,%lld], expected [%lld,%lld]",
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
            *ws__model_param_slot(m, &m->w, i) = (float *)t->data; /* zero-copy view into the mapping */
            continue;
        }
        if (!m->block)
            m->block = ws_xaligned(64, m->n_floats * sizeof(float));
        float *dst = m->block + p->offset;
        ws_st_to_f32(t, dst);
        *ws__model_param_slot(m, &m->w, i) = dst;
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
        ws__model_carve(m, &m->g, m->grad_block);
    }
    ws_model_zero_grads(m);
    return 0;
}

void ws_model_zero_grads(ws_model *m)
{
    if (m->grad_block)
        memset(m->grad_block, 0, m->n_floats * sizeof(float));
}

/* ---------------------------------------------------------------- products, f32 or quantized */

float *ws__take(float **cur, size_t n)
{
    float *p = *cur;
    *cur += (n + 15) & ~(size_t)15;
    return p;
}

static void proj_f32(const ws_model *m, int l, int t, const float **w, const float **bias, int *in, int *out)
{
    const ws_layer_weights *L = &m->w.layers[l];
    ws_lora_dims(&m->cfg, t, in, out);
    *bias = NULL;
    switch (t) {
    case WS_LORA_Q:
        *w = L->wq;
        *bias = L->bq;
        break;
    case WS_LORA_K:
        *w = L->wk;
        *bias = L->bk;
        break;
    case WS_LORA_V:
        *w = L->wv;
        *bias = L->bv;
        break;
    case WS_LORA_O:
        *w = L->wo;
        *bias = L->bo;
        break;
    case WS_LORA_GATE: *w = L->wg; break;
    case WS_LORA_UP: *w = L->wu; break;
    default: *w = L->wd; break;
    }
}

static const ws_qmat *proj_q(const ws_model *m, int l, int t)
{
    const ws_layer_qweights *q = &m->q.layers[l];
    const ws_qmat *all[WS_LORA_NT] = {&q->wq, &q->wk, &q->wv, &q->wo, &q->wg, &q->wu, &q->wd};
    return all[t];
}

void ws__proj_forward(const ws_model *m, int l, int t, float *out, const float *in, int N, float beta)
{
    const float *w, *bias;
    int ic, oc;
    proj_f32(m, l, t, &w, &bias, &ic, &oc);
    if (m->quantized)
        ws_qmat_forward(out, in, proj_q(m, l, t), bias, N, beta);
    else
        ws_matmul_forward(out, in, w, bias, N, ic, oc, beta);
}

void ws__proj_infer(const ws_model *m, int l, int t, float *out, const float *in, int N, float beta)
{
    const float *w, *bias;
    int ic, oc;
    proj_f32(m, l, t, &w, &bias, &ic, &oc);
    if (m->quantized)
        ws_qmat_infer(out, in, proj_q(m, l, t), bias, N, beta);
    else
        ws_matmul_forward(out, in, w, bias, N, ic, oc, beta);
}

void ws__proj_infer_group(const ws_model *m, int l, const int *t, float *const *out, const float *in, int n,
                          int N)
{
    if (!m->quantized) {
        for (int i = 0; i < n; i++)
            ws__proj_infer(m, l, t[i], out[i], in, N, 0.0f);
        return;
    }
    const ws_qmat *w[WS_QMAT_MAX_GROUP];
    const float *bias[WS_QMAT_MAX_GROUP];
    for (int i = 0; i < n && i < WS_QMAT_MAX_GROUP; i++) {
        const float *wf;
        int ic, oc;
        proj_f32(m, l, t[i], &wf, &bias[i], &ic, &oc);
        w[i] = proj_q(m, l, t[i]);
    }
    ws_qmat_infer_group(out, in, w, bias, n, N);
}

void ws__proj_backward_input(const ws_model *m, int l, int t, float *dinp, float beta, const float *dout,
                             int N)
{
    const float *w, *bias;
    int ic, oc;
    proj_f32(m, l, t, &w, &bias, &ic, &oc);
    if (m->quantized)
        ws_qmat_backward_input(dinp, beta, dout, proj_q(m, l, t), N);
    else
        ws_sgemm(false, false, N, ic, oc, 1.0f, dout, oc, w, ic, beta, dinp, ic);
}

void ws__embed(const ws_model *m, float *x, const int32_t *ids, int n)
{
    if (!m->quantized) {
        ws_embedding_forward(x, ids, m->w.embed, n, m->cfg.dim);
        return;
    }
    for (int i = 0; i < n; i++)
        ws_qmat_row(&m->q.embed, ids[i], x + (size_t)i * m->cfg.dim);
}

void ws__head_forward(const ws_model *m, float *logits, const float *xn, int n)
{
    if (m->quantized)
        ws_qmat_forward(logits, xn, &m->q.lm_head, NULL, n, 0.0f);
    else
        ws_matmul_forward(logits, xn, m->w.lm_head, NULL, n, m->cfg.dim, m->cfg.vocab_size, 0.0f);
}

void ws__head_infer(const ws_model *m, float *logits, const float *xn, int n)
{
    if (m->quantized)
        ws_qmat_infer(logits, xn, &m->q.lm_head, NULL, n, 0.0f);
    else
        ws_matmul_forward(logits, xn, m->w.lm_head, NULL, n, m->cfg.dim, m->cfg.vocab_size, 0.0f);
}

void ws__head_backward_input(const ws_model *m, float *dxn, const float *dlogits, int n)
{
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    if (m->quantized)
        ws_qmat_backward_input(dxn, 0.0f, dlogits, &m->q.lm_head, n);
    else
        ws_sgemm(false, false, n, C, V, 1.0f, dlogits, V, m->w.lm_head, C, 0.0f, dxn, C);
}
