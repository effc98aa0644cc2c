/* A decoder from a GGUF file: the configuration from the metadata (llama and qwen2
 * architectures) and the weights used in place, quantized, or dequantized into one f32 block
 * when asked. GGUF's llama conversion permutes the rows of the Q and K projections for
 * llama.cpp's interleaved RoPE; they are put back in the Hugging Face order here, so the rest
 * of the engine (and every LoRA adapter, in PEFT's layout) sees one convention. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/gguf.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "nn/model_int.h"
#include "nn/ops.h"

#define GGUF_MAX_POS 32768 /* RoPE tables and caches are sized for at most this context */
#define GGUF_MIN_POS 16    /* a shorter context cannot hold one chat turn */

typedef struct {
    const ws_gguf *g;
    const char *name;
    char arch[16];
    ws_error *err;
} meta_ctx;

/* "<arch>.<suffix>" as u32; absent: dflt when optional, an error naming the key otherwise */
static int meta_u32(meta_ctx *mc, const char *suffix, bool required, uint32_t dflt, int *out)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof key, "%s.%s", mc->arch, suffix);
    int rc = ws_gguf_get_u32(mc->g, key, &v, mc->err);
    if (rc == WS_ENOENT && !required) {
        *out = (int)dflt;
        return 0;
    }
    if (rc == WS_ENOENT)
        return ws_error_set(mc->err, WS_EFORMAT, "%s: metadata '%s' is missing", mc->name, key);
    if (rc)
        return rc;
    if (v > (1u << 30))
        return ws_error_set(mc->err, WS_EFORMAT, "%s: metadata '%s' = %u is out of range", mc->name, key, v);
    *out = (int)v;
    return 0;
}

static int meta_f32(meta_ctx *mc, const char *suffix, bool required, float dflt, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", mc->arch, suffix);
    int rc = ws_gguf_get_f32(mc->g, key, out, mc->err);
    if (rc == WS_ENOENT && !required) {
        *out = dflt;
        return 0;
    }
    if (rc == WS_ENOENT)
        return ws_error_set(mc->err, WS_EFORMAT, "%s: metadata '%s' is missing", mc->name, key);
    return rc;
}

static int read_arch(meta_ctx *mc, ws_model_config *c)
{
    const char *s;
    size_t n;
    int rc = ws_gguf_get_str(mc->g, "general.architecture", &s, &n, mc->err);
    if (rc == WS_ENOENT)
        return ws_error_set(mc->err, WS_EFORMAT, "%s: metadata 'general.architecture' is missing", mc->name);
    if (rc)
        return rc;
    if (n == 5 && !memcmp(s, "llama", 5))
        c->arch = WS_ARCH_LLAMA;
    else if (n == 5 && !memcmp(s, "qwen2", 5))
        c->arch = WS_ARCH_QWEN2;
    else
        return ws_error_set(mc->err, WS_EUNSUPPORTED,
                            "%s: general.architecture is '%.*s'; WhatStyle runs 'llama' and 'qwen2'",
                            mc->name, (int)(n > 40 ? 40 : n), s);
    memcpy(mc->arch, s, n);
    mc->arch[n] = 0;
    return 0;
}

static int read_rope(meta_ctx *mc, ws_model_config *c)
{
    char key[128];
    const char *s;
    size_t n;
    int rc;
    c->rope_type = WS_ROPE_DEFAULT;
    snprintf(key, sizeof key, "%s.rope.scaling.type", mc->arch);
    rc = ws_gguf_get_str(mc->g, key, &s, &n, mc->err);
    if (rc == WS_ENOENT || (!rc && n == 4 && !memcmp(s, "none", 4)))
        return 0;
    if (rc)
        return rc;
    if (!(n == 6 && !memcmp(s, "linear", 6)))
        return ws_error_set(mc->err, WS_EUNSUPPORTED, "%s: %s is '%.*s'; WhatStyle supports none and linear",
                            mc->name, key, (int)(n > 40 ? 40 : n), s);
    c->rope_type = WS_ROPE_LINEAR;
    if ((rc = meta_f32(mc, "rope.scaling.factor", true, 1.0f, &c->rope_factor)))
        return rc;
    if (!(c->rope_factor > 0))
        return ws_error_set(mc->err, WS_EFORMAT, "%s: %s.rope.scaling.factor must be positive", mc->name,
                            mc->arch);
    return 0;
}

static int read_special_ids(meta_ctx *mc, ws_model_config *c)
{
    static const char *const eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    uint32_t v;
    int rc;
    c->bos_id = -1;
    if (!(rc = ws_gguf_get_u32(mc->g, "tokenizer.ggml.bos_token_id", &v, mc->err)) &&
        v < (uint32_t)c->vocab_size)
        c->bos_id = (int)v;
    else if (rc && rc != WS_ENOENT)
        return rc;
    c->n_eos = 0;
    for (size_t i = 0; i < sizeof eos_keys / sizeof eos_keys[0]; i++) {
        rc = ws_gguf_get_u32(mc->g, eos_keys[i], &v, mc->err);
        if (rc == WS_ENOENT)
            continue;
        if (rc)
            return rc;
        if (v >= (uint32_t)c->vocab_size)
            return ws_error_set(mc->err, WS_EFORMAT, "%s: %s = %u is outside the vocabulary", mc->name,
                                eos_keys[i], v);
        bool dup = false;
        for (int k = 0; k < c->n_eos; k++)
            dup |= c->eos_ids[k] == (int)v;
        if (!dup && c->n_eos < WS_MAX_EOS)
            c->eos_ids[c->n_eos++] = (int)v;
    }
    return 0;
}

/* The configuration from the metadata and the tensor table. */
static int read_config(const ws_gguf *g, const char *name, ws_model_config *c, ws_error *err)
{
    meta_ctx mc = {.g = g, .name = name, .err = err};
    int rc, rope_dims, key_len;
    uint64_t n_tok = 0;
    ws_gguf_vtype et;
    memset(c, 0, sizeof *c);
    if ((rc = read_arch(&mc, c)) || (rc = meta_u32(&mc, "block_count", true, 0, &c->n_layers)) ||
        (rc = meta_u32(&mc, "embedding_length", true, 0, &c->dim)) ||
        (rc = meta_u32(&mc, "feed_forward_length", true, 0, &c->hidden_dim)) ||
        (rc = meta_u32(&mc, "attention.head_count", true, 0, &c->n_heads)) ||
        (rc = meta_u32(&mc, "attention.head_count_kv", false, (uint32_t)c->n_heads, &c->n_kv_heads)) ||
        (rc = meta_u32(&mc, "context_length", true, 0, &c->max_pos)) ||
        (rc = meta_f32(&mc, "attention.layer_norm_rms_epsilon", true, 0, &c->norm_eps)) ||
        (rc = meta_f32(&mc, "rope.freq_base", false, 10000.0f, &c->rope_theta)) || (rc = read_rope(&mc, c)))
        return rc;
    int expert = 0;
    if ((rc = meta_u32(&mc, "expert_count", false, 0, &expert)))
        return rc;
    if (expert > 0)
        return ws_error_set(err, WS_EUNSUPPORTED,
                            "%s: %s.expert_count = %d: mixture-of-experts models are not run", name, mc.arch,
                            expert);
    if (c->n_heads <= 0 || c->dim % c->n_heads)
        return ws_error_set(err, WS_EFORMAT, "%s: %s.embedding_length %d is not a multiple of the %d heads",
                            name, mc.arch, c->dim, c->n_heads);
    if ((rc = meta_u32(&mc, "attention.key_length", false, (uint32_t)(c->dim / c->n_heads), &key_len)))
        return rc;
    c->head_dim = key_len;
    if ((rc = meta_u32(&mc, "rope.dimension_count", false, (uint32_t)c->head_dim, &rope_dims)))
        return rc;
    if (rope_dims != c->head_dim)
        return ws_error_set(err, WS_EUNSUPPORTED,
                            "%s: %s.rope.dimension_count %d differs from the head size %d "
                            "(partial rotary embeddings are not run)",
                            name, mc.arch, rope_dims, c->head_dim);
    rc = ws_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, err);
    if (rc == WS_ENOENT)
        return ws_error_set(err, WS_EFORMAT, "%s: metadata 'tokenizer.ggml.tokens' is missing", name);
    if (rc)
        return rc;
    const ws_gguf_tensor *emb = ws_gguf_find_tensor(g, "token_embd.weight");
    if (!emb)
        return ws_error_set(err, WS_EFORMAT, "%s: tensor 'token_embd.weight' is missing", name);
    c->vocab_size = (int)(emb->n_dims == 2 ? emb->ne[1] : 0);
    if ((uint64_t)c->vocab_size < n_tok)
        return ws_error_set(err, WS_EFORMAT, "%s: %llu tokens but token_embd.weight has %d rows", name,
                            (unsigned long long)n_tok, c->vocab_size);
    if (c->max_pos < GGUF_MIN_POS)
        return ws_error_set(err, WS_EFORMAT,
                            "%s: %s.context_length %d is too short for a chat turn (at least %d)", name,
                            mc.arch, c->max_pos, GGUF_MIN_POS);
    if (c->max_pos > GGUF_MAX_POS)
        c->max_pos = GGUF_MAX_POS;
    c->tied = ws_gguf_find_tensor(g, "output.weight") == NULL;
    c->qkv_bias = ws_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->o_bias = ws_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    if ((rc = read_special_ids(&mc, c)))
        return rc;
    return ws_config_validate(c, err);
}

/* ---------------------------------------------------------------- tensors */

/* GGUF row of Hugging Face row r of a Q/K projection with heads of D rows (llama only). */
static int gguf_row(int r, int D)
{
    int h = r / D, j = r % D, half = D / 2;
    int a = j / half, i = j % half;
    return h * D + 2 * i + a;
}

typedef struct {
    const ws_gguf_tensor *t;
    bool permute; /* llama Q/K: rows un-permuted */
} wref;

static int find(const ws_gguf *g, const char *name, const char *tname, int n_dims, int64_t ne0, int64_t ne1,
                const ws_gguf_tensor **out, ws_error *err)
{
    const ws_gguf_tensor *t = ws_gguf_find_tensor(g, tname);
    *out = t;
    if (!t)
        return ws_error_set(err, WS_EFORMAT, "%s: tensor '%s' is missing", name, tname);
    int64_t rows = 1;
    for (int d = 1; d < t->n_dims; d++)
        rows *= t->ne[d];
    if ((n_dims == 1 && (rows != 1 || t->ne[0] != ne0)) || (n_dims == 2 && (t->ne[0] != ne0 || rows != ne1)))
        return ws_error_set(err, WS_EFORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                            name, tname, (long long)t->ne[0], (long long)rows, (long long)ne0,
                            (long long)(n_dims == 2 ? ne1 : 1));
    return 0;
}

/* f32 values of a 1-D tensor (norm, bias) into dst, un-permuted when asked. */
static void vec_f32(const ws_gguf_tensor *t, float *dst, int n, int perm_D)
{
    float *tmp = ws_xmalloc((size_t)n * sizeof(float));
    ws_dequant_row(t->type, t->data, tmp, n);
    for (int r = 0; r < n; r++)
        dst[r] = tmp[perm_D ? gguf_row(r, perm_D) : r];
    free(tmp);
}

/* Every row of a 2-D tensor as f32 into dst[rows, cols], un-permuted when asked. */
static void mat_f32(const ws_gguf_tensor *t, float *dst, int rows, int cols, int perm_D)
{
    size_t rb = ws_qtype_row_bytes(t->type, cols);
    const uint8_t *base = t->data;
    for (int r = 0; r < rows; r++)
        ws_dequant_row(t->type, base + (size_t)(perm_D ? gguf_row(r, perm_D) : r) * rb,
                       dst + (size_t)r * cols, cols);
}

typedef struct {
    ws_model *m;
    const ws_gguf *g;
    const char *name;
    bool copy;
    uint8_t *owned; /* un-permuted quantized rows, filled in order */
    size_t owned_used;
    ws_error *err;
} loader;

static const char *const layer_names[WS_LORA_NT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                    "ffn_gate", "ffn_up", "ffn_down"};

/* The quantized matrix of a 2-D tensor; Q/K rows copied un-permuted into the owned area. */
static void qmat_of(loader *ld, const ws_gguf_tensor *t, int rows, int cols, int perm_D, ws_qmat *q)
{
    q->type = t->type;
    q->rows = rows;
    q->cols = cols;
    q->row_bytes = ws_qtype_row_bytes(t->type, cols);
    q->data = t->data;
    if (!perm_D)
        return;
    uint8_t *dst = ld->owned + ld->owned_used;
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * q->row_bytes,
               (const uint8_t *)t->data + (size_t)gguf_row(r, perm_D) * q->row_bytes, q->row_bytes);
    ld->owned_used += (size_t)rows * q->row_bytes;
    q->data = dst;
}

static int load_layer(loader *ld, int l)
{
    ws_model *m = ld->m;
    const ws_model_config *c = &m->cfg;
    ws_layer_weights *w = &m->w.layers[l];
    ws_layer_qweights *q = ld->copy ? NULL : &m->q.layers[l];
    ws_qmat *qm[WS_LORA_NT] = {0};
    if (q) {
        ws_qmat *all[WS_LORA_NT] = {&q->wq, &q->wk, &q->wv, &q->wo, &q->wg, &q->wu, &q->wd};
        memcpy(qm, all, sizeof qm);
    }
    float **fm[WS_LORA_NT] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->wg, &w->wu, &w->wd};
    float **bias[WS_LORA_NT] = {&w->bq, &w->bk, &w->bv, &w->bo, NULL, NULL, NULL};
    char tn[96];
    const ws_gguf_tensor *t;
    bool llama = c->arch == WS_ARCH_LLAMA;
    int rc;
    for (int k = 0; k < WS_LORA_NT; k++) {
        int in, out, perm = llama && (k == WS_LORA_Q || k == WS_LORA_K) ? c->head_dim : 0;
        ws_lora_dims(c, k, &in, &out);
        snprintf(tn, sizeof tn, "blk.%d.%s.weight", l, layer_names[k]);
        if ((rc = find(ld->g, ld->name, tn, 2, in, out, &t, ld->err)))
            return rc;
        if (ld->copy)
            mat_f32(t, *fm[k], out, in, perm);
        else
            qmat_of(ld, t, out, in, perm, qm[k]);
        if (bias[k] && *bias[k]) {
            snprintf(tn, sizeof tn, "blk.%d.%s.bias", l, layer_names[k]);
            if ((rc = find(ld->g, ld->name, tn, 1, out, 1, &t, ld->err)))
                return rc;
            vec_f32(t, *bias[k], out, perm);
        }
    }
    snprintf(tn, sizeof tn, "blk.%d.attn_norm.weight", l);
    if ((rc = find(ld->g, ld->name, tn, 1, c->dim, 1, &t, ld->err)))
        return rc;
    vec_f32(t, w->attn_norm, c->dim, 0);
    snprintf(tn, sizeof tn, "blk.%d.ffn_norm.weight", l);
    if ((rc = find(ld->g, ld->name, tn, 1, c->dim, 1, &t, ld->err)))
        return rc;
    vec_f32(t, w->mlp_norm, c->dim, 0);
    return 0;
}

/* Sizes the owned f32 block: every parameter when copying, else norms and biases only, and
 * carves it. Matrices of a quantized model keep NULL f32 pointers. */
static void alloc_block(loader *ld)
{
    ws_model *m = ld->m;
    if (ld->copy) {
        m->block = ws_xaligned(64, m->n_floats * sizeof(float));
        ws__model_carve(m, &m->w, m->block);
        m->contiguous = true;
        return;
    }
    size_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].ndim == 1)
            n += m->params[i].numel;
    m->block = ws_xaligned(64, (n ? n : 1) * sizeof(float));
    float *cur = m->block;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].ndim == 1) {
            *ws__model_param_slot(m, &m->w, i) = cur;
            cur += m->params[i].numel;
        }
    m->q.layers = ws_xcalloc((size_t)m->cfg.n_layers, sizeof(ws_layer_qweights));
    if (m->cfg.arch != WS_ARCH_LLAMA)
        return;
    /* llama: room for the un-permuted Q and K rows (their sizes in the file) */
    size_t bytes = 0;
    char tn[96];
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = WS_LORA_Q; k <= WS_LORA_K; k++) {
            snprintf(tn, sizeof tn, "blk.%d.%s.weight", l, layer_names[k]);
            bytes += ws_gguf_find_tensor(ld->g, tn)->nbytes;
        }
    ld->owned = m->owned_q = ws_xaligned(64, bytes ? bytes : 1);
}

/* llama 3.1+ files carry per-frequency RoPE factors (rope_freqs.weight): inv_freq / factor.
 * The quantized path takes llama.cpp's angles (ws_rope_tables_ggml), the f32 path transformers'. */
static int apply_rope_freqs(ws_model *m, const ws_gguf *g, const char *name, bool ggml, ws_error *err)
{
    const ws_gguf_tensor *t = ws_gguf_find_tensor(g, "rope_freqs.weight");
    const ws_model_config *c = &m->cfg;
    int half = c->head_dim / 2;
    if (!t) {
        if (ggml && c->rope_type != WS_ROPE_LLAMA3)
            ws_rope_tables_ggml(m->rope_cos, m->rope_sin, c->max_pos, c->head_dim, c->rope_theta,
                                c->rope_type == WS_ROPE_LINEAR ? 1.0f / c->rope_factor : 1.0f, NULL);
        return 0;
    }
    if (t->n_dims != 1 || t->ne[0] != half || t->type != WS_QT_F32)
        return ws_error_set(err, WS_EFORMAT, "%s: tensor 'rope_freqs.weight' must be %d F32 values", name,
                            half);
    float f[512];
    ws_dequant_row(t->type, t->data, f, half);
    for (int i = 0; i < half; i++) {
        if (!(f[i] > 0))
            return ws_error_set(err, WS_EFORMAT, "%s: rope_freqs.weight[%d] is not positive", name, i);
        if (ggml)
            continue;
        float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim) / f[i];
        for (int p = 0; p < c->max_pos; p++) {
            m->rope_cos[(size_t)p * half + i] = cosf((float)p * inv);
            m->rope_sin[(size_t)p * half + i] = sinf((float)p * inv);
        }
    }
    if (ggml)
        ws_rope_tables_ggml(m->rope_cos, m->rope_sin, c->max_pos, c->head_dim, c->rope_theta, 1.0f, f);
    return 0;
}

static int load_embed_head(loader *ld)
{
    ws_model *m = ld->m;
    const ws_model_config *c = &m->cfg;
    const ws_gguf_tensor *t;
    int rc;
    if ((rc = find(ld->g, ld->name, "token_embd.weight", 2, c->dim, c->vocab_size, &t, ld->err)))
        return rc;
    if (ld->copy)
        mat_f32(t, m->w.embed, c->vocab_size, c->dim, 0);
    else
        qmat_of(ld, t, c->vocab_size, c->dim, 0, &m->q.embed);
    if (c->tied) {
        m->q.lm_head = m->q.embed;
    } else {
        if ((rc = find(ld->g, ld->name, "output.weight", 2, c->dim, c->vocab_size, &t, ld->err)))
            return rc;
        if (ld->copy)
            mat_f32(t, m->w.lm_head, c->vocab_size, c->dim, 0);
        else
            qmat_of(ld, t, c->vocab_size, c->dim, 0, &m->q.lm_head);
    }
    if ((rc = find(ld->g, ld->name, "output_norm.weight", 1, c->dim, 1, &t, ld->err)))
        return rc;
    vec_f32(t, m->w.final_norm, c->dim, 0);
    return 0;
}

/* Every tensor the config needs is there with its shape, before anything is allocated in
 * proportion to the config's sizes. */
static int check_tensors(const ws_gguf *g, const char *name, const ws_model_config *c, ws_error *err)
{
    const ws_gguf_tensor *t;
    char tn[96];
    int rc;
    if ((rc = find(g, name, "token_embd.weight", 2, c->dim, c->vocab_size, &t, err)) ||
        (rc = find(g, name, "output_norm.weight", 1, c->dim, 1, &t, err)) ||
        (!c->tied && (rc = find(g, name, "output.weight", 2, c->dim, c->vocab_size, &t, err))))
        return rc;
    for (int l = 0; l < c->n_layers; l++) {
        for (int k = 0; k < WS_LORA_NT; k++) {
            int in, out;
            ws_lora_dims(c, k, &in, &out);
            snprintf(tn, sizeof tn, "blk.%d.%s.weight", l, layer_names[k]);
            if ((rc = find(g, name, tn, 2, in, out, &t, err)))
                return rc;
            bool has_bias = k <= WS_LORA_V ? c->qkv_bias : k == WS_LORA_O ? c->o_bias : false;
            snprintf(tn, sizeof tn, "blk.%d.%s.bias", l, layer_names[k]);
            if (has_bias && (rc = find(g, name, tn, 1, out, 1, &t, err)))
                return rc;
        }
        snprintf(tn, sizeof tn, "blk.%d.attn_norm.weight", l);
        if ((rc = find(g, name, tn, 1, c->dim, 1, &t, err)))
            return rc;
        snprintf(tn, sizeof tn, "blk.%d.ffn_norm.weight", l);
        if ((rc = find(g, name, tn, 1, c->dim, 1, &t, err)))
            return rc;
    }
    return 0;
}

int ws_model_load_gguf(ws_gguf *g, const char *name, int flags, ws_model **out, ws_error *err)
{
    ws_model_config cfg;
    ws_model *m = NULL;
    int rc;
    *out = NULL;
    if ((rc = read_config(g, name, &cfg, err)) || (rc = check_tensors(g, name, &cfg, err)))
        goto out;
    m = ws__model_alloc(&cfg);
    loader ld = {.m = m, .g = g, .name = name, .copy = (flags & WS_LOAD_COPY) != 0, .err = err};
    alloc_block(&ld);
    if ((rc = load_embed_head(&ld)))
        goto out;
    for (int l = 0; l < cfg.n_layers && !rc; l++)
        rc = load_layer(&ld, l);
    if (rc || (rc = apply_rope_freqs(m, g, name, !ld.copy, err)))
        goto out;
    if (cfg.tied && ld.copy)
        m->w.lm_head = m->w.embed;
    m->quantized = !ld.copy;
out:
    if (rc) {
        ws_model_free(m);
        ws_gguf_close(g);
        return rc;
    }
    if (m->quantized)
        m->gguf = g; /* the weights point into its mapping */
    else
        ws_gguf_close(g);
    *out = m;
    return 0;
}
