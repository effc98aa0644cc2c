/* BERT encoder forward pass in f32 with OpenBLAS, and its model-directory loader. */
#include "nn/bert.h"

#include "nn/blas_lib.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"
#include "nn/ops.h"
#include "nn/safetensors.h"

typedef struct layer {
    float *wqkv, *bqkv; /* [3H, H], [3H]: query, key, value stacked */
    float *wo, *bo;     /* [H, H] */
    float *ln1_g, *ln1_b;
    float *wi, *bi;   /* [FF, H] */
    float *wo2, *bo2; /* [H, FF] */
    float *ln2_g, *ln2_b;
} layer;

struct ws_bert {
    ws_bert_config cfg;
    ws_wordpiece *tok;
    float *params; /* one allocation carved into the tensors below */
    float *word, *pos, *type, *ln_g, *ln_b;
    layer *layers;
};

const ws_bert_config *ws_bert_config_of(const ws_bert *m)
{
    return &m->cfg;
}
const ws_wordpiece *ws_bert_tokenizer(const ws_bert *m)
{
    return m->tok;
}

void ws_bert_free(ws_bert *m)
{
    if (!m)
        return;
    ws_wordpiece_free(m->tok);
    free(m->params);
    free(m->layers);
    free(m);
}

/* ---- loading ------------------------------------------------------------------------------ */

static int config_int(const ws_json *root, const char *key, int *out, int lo, int hi, ws_error *err)
{
    double v;
    if (!ws_json_get_num(root, key, &v) || v != floor(v) || v < lo || v > hi)
        return ws_error_set(err, WS_EFORMAT, "config.json: '%s' missing or out of range", key);
    *out = (int)v;
    return 0;
}

static int load_config(const char *dir, ws_bert_config *c, ws_error *err)
{
    char path[4096];
    char *text = NULL;
    size_t len;
    ws_json_doc *doc = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = ws_file_read(path, 1 << 20, &text, &len, err);
    if (rc)
        return rc;
    rc = ws_json_parse(text, len, &doc, err);
    if (rc)
        goto out;
    const ws_json *root = ws_json_root(doc);
    const char *mt = ws_json_get_str(root, "model_type");
    const char *act = ws_json_get_str(root, "hidden_act");
    const char *pet = ws_json_get_str(root, "position_embedding_type");
    if (!mt || strcmp(mt, "bert") != 0 || (act && strcmp(act, "gelu") != 0) ||
        (pet && strcmp(pet, "absolute") != 0)) {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: only BERT with GELU and absolute positions is supported",
                          path);
        goto out;
    }
    if ((rc = config_int(root, "vocab_size", &c->vocab_size, 1, 1 << 20, err)) ||
        (rc = config_int(root, "hidden_size", &c->hidden, 1, 8192, err)) ||
        (rc = config_int(root, "num_hidden_layers", &c->layers, 1, 128, err)) ||
        (rc = config_int(root, "num_attention_heads", &c->heads, 1, 256, err)) ||
        (rc = config_int(root, "intermediate_size", &c->intermediate, 1, 65536, err)) ||
        (rc = config_int(root, "max_position_embeddings", &c->max_positions, 2, 65536, err)))
        goto out;
    c->type_vocab_size = 2;
    config_int(root, "type_vocab_size", &c->type_vocab_size, 1, 64, NULL);
    double eps = 1e-12;
    ws_json_get_num(root, "layer_norm_eps", &eps);
    c->layer_norm_eps = (float)eps;
    if (c->hidden % c->heads) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: hidden_size not divisible by num_attention_heads", path);
        goto out;
    }
    /* sentence-transformers' sequence cap */
    c->max_seq_length = c->max_positions < 256 ? c->max_positions : 256;
    ws_json_doc_free(doc);
    doc = NULL;
    free(text);
    text = NULL;
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
    if (ws_file_read(path, 1 << 16, &text, &len, NULL) == 0 && ws_json_parse(text, len, &doc, NULL) == 0) {
        int msl = c->max_seq_length;
        if (config_int(ws_json_root(doc), "max_seq_length", &msl, 2, c->max_positions, NULL) == 0)
            c->max_seq_length = msl;
    }
out:
    ws_json_doc_free(doc);
    free(text);
    return rc;
}

/* Copies tensor name (the given shape; F32, F16 or BF16 on disk) into dst as f32. Weights
 * saved from BertModel have no prefix; from a task model they start with "bert.". */
static int st_tensor(const ws_safetensors *st, const char *prefix, const char *name, int rows, int cols,
                     float *dst, ws_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const ws_st_tensor *t = ws_st_find(st, full);
    if (!t)
        return ws_error_set(err, WS_EFORMAT, "model.safetensors: tensor '%s' missing", full);
    size_t want_dims = rows > 0 ? 2 : 1;
    if (t->ndim != (int)want_dims || (rows > 0 && (t->shape[0] != rows || t->shape[1] != cols)) ||
        (rows <= 0 && t->shape[0] != cols))
        return ws_error_set(err, WS_EFORMAT, "model.safetensors: tensor '%s' has an unexpected shape", full);
    if (ws_st_to_f32(t, dst) != 0)
        return ws_error_set(err, WS_EUNSUPPORTED, "model.safetensors: tensor '%s' is %s, not a float type",
                            full, ws_dtype_name(t->dtype));
    return 0;
}

int ws_bert_load(const char *dir, ws_bert **out, ws_error *err)
{
    *out = NULL;
    ws_bert *m = ws_xcalloc(1, sizeof *m);
    ws_safetensors *st = NULL;
    const char *prefix = "";
    char path[4096];
    int rc = load_config(dir, &m->cfg, err);
    if (rc)
        goto out;
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if ((rc = ws_wordpiece_load(path, true, &m->tok, err)))
        goto out;
    if ((int)ws_wordpiece_vocab_size(m->tok) != m->cfg.vocab_size) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: %zu tokens, config says %d", path,
                          ws_wordpiece_vocab_size(m->tok), m->cfg.vocab_size);
        goto out;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = ws_st_open(path, &st, err)))
        goto out;
    if (ws_st_find(st, "bert.embeddings.word_embeddings.weight"))
        prefix = "bert.";
    const ws_bert_config *c = &m->cfg;
    size_t H = (size_t)c->hidden, FF = (size_t)c->intermediate;
    size_t per_layer = 3 * H * H + 3 * H + H * H + H + 2 * H + FF * H + FF + H * FF + H + 2 * H;
    size_t total = (size_t)c->vocab_size * H + (size_t)c->max_positions * H + (size_t)c->type_vocab_size * H +
                   2 * H + (size_t)c->layers * per_layer;
    m->params = ws_xmalloc(total * sizeof(float));
    m->layers = ws_xcalloc((size_t)c->layers, sizeof *m->layers);
    float *p = m->params;
#define CARVE(dst, count)                                                                                    \
    do {                                                                                                     \
        (dst) = p;                                                                                           \
        p += (count);                                                                                        \
    } while (0)
    CARVE(m->word, (size_t)c->vocab_size * H);
    CARVE(m->pos, (size_t)c->max_positions * H);
    CARVE(m->type, (size_t)c->type_vocab_size * H);
    CARVE(m->ln_g, H);
    CARVE(m->ln_b, H);
    int h = c->hidden;
    if ((rc = st_tensor(st, prefix, "embeddings.word_embeddings.weight", c->vocab_size, h, m->word, err)) ||
        (rc = st_tensor(st, prefix, "embeddings.position_embeddings.weight", c->max_positions, h, m->pos,
                        err)) ||
        (rc = st_tensor(st, prefix, "embeddings.token_type_embeddings.weight", c->type_vocab_size, h, m->type,
                        err)) ||
        (rc = st_tensor(st, prefix, "embeddings.LayerNorm.weight", 0, h, m->ln_g, err)) ||
        (rc = st_tensor(st, prefix, "embeddings.LayerNorm.bias", 0, h, m->ln_b, err)))
        goto out;
    for (int l = 0; l < c->layers; l++) {
        layer *L = &m->layers[l];
        CARVE(L->wqkv, 3 * H * H);
        CARVE(L->bqkv, 3 * H);
        CARVE(L->wo, H * H);
        CARVE(L->bo, H);
        CARVE(L->ln1_g, H);
        CARVE(L->ln1_b, H);
        CARVE(L->wi, FF * H);
        CARVE(L->bi, FF);
        CARVE(L->wo2, H * FF);
        CARVE(L->bo2, H);
        CARVE(L->ln2_g, H);
        CARVE(L->ln2_b, H);
        static const char *qkv[3] = {"query", "key", "value"};
        char name[160];
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
            if ((rc = st_tensor(st, prefix, name, h, h, L->wqkv + (size_t)k * H * H, err)))
                goto out;
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
            if ((rc = st_tensor(st, prefix, name, 0, h, L->bqkv + (size_t)k * H, err)))
                goto out;
        }
        struct {
            const char *n;
            int r, c;
            float *dst;
        } t[] = {
            {"attention.output.dense.weight", h, h, L->wo},
            {"attention.output.dense.bias", 0, h, L->bo},
            {"attention.output.LayerNorm.weight", 0, h, L->ln1_g},
            {"attention.output.LayerNorm.bias", 0, h, L->ln1_b},
            {"intermediate.dense.weight", c->intermediate, h, L->wi},
            {"intermediate.dense.bias", 0, c->intermediate, L->bi},
            {"output.dense.weight", h, c->intermediate, L->wo2},
            {"output.dense.bias", 0, h, L->bo2},
            {"output.LayerNorm.weight", 0, h, L->ln2_g},
            {"output.LayerNorm.bias", 0, h, L->ln2_b},
        };
        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, t[k].n);
            if ((rc = st_tensor(st, prefix, name, t[k].r, t[k].c, t[k].dst, err)))
                goto out;
        }
    }
#undef CARVE
out:
    ws_st_close(st);
    if (rc) {
        ws_bert_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- forward ------------------------------------------------------------------------------ */

static void layer_norm(float *x, size_t rows, size_t H, const float *g, const float *b, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        float *v = x + r * H;
        double mean = 0, var = 0;
        for (size_t i = 0; i < H; i++)
            mean += v[i];
        mean /= (double)H;
        for (size_t i = 0; i < H; i++)
            var += (v[i] - mean) * (v[i] - mean);
        var /= (double)H;
        float inv = (float)(1.0 / sqrt(var + eps)), mu = (float)mean;
        for (size_t i = 0; i < H; i++)
            v[i] = (v[i] - mu) * inv * g[i] + b[i];
    }
}

/* out[n, o] = x[n, in] · w[o, in]^T + bias[o] */
static void linear(const float *x, size_t n, size_t in, const float *w, const float *bias, size_t o,
                   float *out)
{
    for (size_t r = 0; r < n; r++)
        memcpy(out + r * o, bias, o * sizeof(float));
    ws_sgemm(false, true, (int)n, (int)o, (int)in, 1.0f, x, (int)in, w, (int)in, 1.0f, out, (int)o);
}

int ws_bert_forward_batch(const ws_bert *m, const int32_t *ids, const size_t *lens, size_t n_seqs, float *x,
                          ws_error *err)
{
    const ws_bert_config *c = &m->cfg;
    size_t n = 0, longest = 0;
    for (size_t s = 0; s < n_seqs; s++) {
        if (lens[s] == 0 || lens[s] > (size_t)c->max_positions)
            return ws_error_set(err, WS_EINVAL, "BERT input of %zu tokens (1..%d)", lens[s],
                                c->max_positions);
        n += lens[s];
        longest = lens[s] > longest ? lens[s] : longest;
    }
    if (n == 0)
        return ws_error_set(err, WS_EINVAL, "BERT batch without sequences");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ws_error_set(err, WS_EINVAL, "BERT token id %d out of range", ids[i]);
    size_t H = (size_t)c->hidden, FF = (size_t)c->intermediate, nh = (size_t)c->heads, dh = H / nh;
    float *qkv = ws_xmalloc(n * 3 * H * sizeof(float));
    float *ctx = ws_xmalloc(n * H * sizeof(float));
    float *tmp = ws_xmalloc(n * (FF > H ? FF : H) * sizeof(float));
    float *att = ws_xmalloc(longest * longest * sizeof(float));
    for (size_t s = 0, t0 = 0; s < n_seqs; t0 += lens[s], s++)
        for (size_t t = 0; t < lens[s]; t++)
            for (size_t i = 0; i < H; i++)
                x[(t0 + t) * H + i] = m->word[(size_t)ids[t0 + t] * H + i] + m->pos[t * H + i] + m->type[i];
    layer_norm(x, n, H, m->ln_g, m->ln_b, c->layer_norm_eps);
    float scale = 1.0f / sqrtf((float)dh);
    for (int l = 0; l < c->layers; l++) {
        const layer *L = &m->layers[l];
        /* the dense layers run on every token of the batch at once; attention per sequence */
        linear(x, n, H, L->wqkv, L->bqkv, 3 * H, qkv);
        for (size_t s = 0, t0 = 0; s < n_seqs; t0 += lens[s], s++) {
            size_t len = lens[s];
            const float *base = qkv + t0 * 3 * H;
            for (size_t h = 0; h < nh; h++) {
                const float *q = base + h * dh, *k = base + H + h * dh, *v = base + 2 * H + h * dh;
                /* att[len, len] = q · k^T * scale */
                ws__blas()->cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)dh,
                                        scale, q, (int)(3 * H), k, (int)(3 * H), 0.0f, att, (int)len);
                for (size_t r = 0; r < len; r++) {
                    float *a = att + r * len, mx = a[0], sum = 0;
                    for (size_t j = 1; j < len; j++)
                        mx = a[j] > mx ? a[j] : mx;
                    for (size_t j = 0; j < len; j++) {
                        a[j] = expf(a[j] - mx);
                        sum += a[j];
                    }
                    for (size_t j = 0; j < len; j++)
                        a[j] /= sum;
                }
                /* ctx[:, h] = att · v */
                ws__blas()->cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)len, (int)dh,
                                        (int)len, 1.0f, att, (int)len, v, (int)(3 * H), 0.0f,
                                        ctx + t0 * H + h * dh, (int)H);
            }
        }
        linear(ctx, n, H, L->wo, L->bo, H, tmp);
        for (size_t i = 0; i < n * H; i++)
            x[i] += tmp[i];
        layer_norm(x, n, H, L->ln1_g, L->ln1_b, c->layer_norm_eps);
        linear(x, n, H, L->wi, L->bi, FF, tmp);
        for (size_t i = 0; i < n * FF; i++)
            tmp[i] = 0.5f * tmp[i] * (1.0f + erff(tmp[i] * 0.70710678118654752f));
        linear(tmp, n, FF, L->wo2, L->bo2, H, ctx);
        for (size_t i = 0; i < n * H; i++)
            x[i] += ctx[i];
        layer_norm(x, n, H, L->ln2_g, L->ln2_b, c->layer_norm_eps);
    }
    free(qkv);
    free(ctx);
    free(tmp);
    free(att);
    return 0;
}

int ws_bert_forward(const ws_bert *m, const int32_t *ids, size_t n, float *x, ws_error *err)
{
    return ws_bert_forward_batch(m, ids, &n, 1, x, err);
}

/* Mean over len rows of hs (H wide), L2-normalised, into out. */
static void mean_pool(const float *hs, size_t len, size_t H, float *out)
{
    for (size_t i = 0; i < H; i++) {
        double s = 0;
        for (size_t t = 0; t < len; t++)
            s += hs[t * H + i];
        out[i] = (float)(s / (double)len);
    }
    double ss = 0;
    for (size_t i = 0; i < H; i++)
        ss += (double)out[i] * out[i];
    if (ss > 0) {
        float inv = (float)(1.0 / sqrt(ss));
        for (size_t i = 0; i < H; i++)
            out[i] *= inv;
    }
}

int ws_bert_embed_batch(const ws_bert *m, const char *const *texts, const size_t *lens, size_t n, float *out,
                        ws_error *err)
{
    size_t H = (size_t)m->cfg.hidden;
    int rc = 0;
    int32_t *all = NULL;
    size_t *seq = ws_xcalloc(n ? n : 1, sizeof *seq), total = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t *ids = NULL;
        size_t k = 0;
        rc = ws_wordpiece_encode(m->tok, texts[i], lens[i], (size_t)m->cfg.max_seq_length, &ids, &k, err);
        if (rc)
            goto out;
        if (total + k > cap) {
            cap = (total + k) * 2;
            all = ws_xrealloc(all, cap * sizeof *all);
        }
        memcpy(all + total, ids, k * sizeof *ids);
        free(ids);
        seq[i] = k;
        total += k;
    }
    if (n == 0)
        goto out;
    float *hs = ws_xmalloc(total * H * sizeof(float));
    rc = ws_bert_forward_batch(m, all, seq, n, hs, err);
    for (size_t i = 0, t0 = 0; !rc && i < n; t0 += seq[i], i++)
        mean_pool(hs + t0 * H, seq[i], H, out + i * H);
    free(hs);
out:
    free(all);
    free(seq);
    return rc;
}

int ws_bert_embed(const ws_bert *m, const char *text, size_t len, float *out, ws_error *err)
{
    return ws_bert_embed_batch(m, &text, &len, 1, out, err);
}
