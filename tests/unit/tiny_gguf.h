/* Tiny models as GGUF files for the tests: a byte-level BPE vocabulary (256 bytes, 3 ChatML
 * special tokens, 4 merges), a ChatML template, and any ws_model written with matrices of a
 * chosen type (k-quants as random blocks), the Q/K rows of llama permuted as llama.cpp's
 * conversion does. Used by tests/unit/test_nn_gguf_model.c and tests/helpers/make_tiny_gguf.c. */
#ifndef WS_TESTS_TINY_GGUF_H
#define WS_TESTS_TINY_GGUF_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gguf.h"
#include "nn/model.h"
#include "nn/quant.h"

/* ---------------------------------------------------------------- a tiny vocabulary */

#define N_SPECIAL 3
static const char *const specials[N_SPECIAL] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
static const char *const merges[] = {"h e", "Ġ t", "l l", "Ġt he"};
#define N_MERGES 4
#define VOCAB (256 + N_SPECIAL + N_MERGES)

/* GPT-2's byte-to-character map: printable bytes stand for themselves, the others for 256+k. */
static inline void byte_token(int b, char out[4])
{
    int cp = b, k = 0;
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (!printable) {
        for (int x = 0; x < b; x++)
            k += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

typedef struct {
    char store[VOCAB][16];
    const char *tokens[VOCAB];
    int32_t types[VOCAB];
} vocab;

static inline void make_vocab(vocab *v)
{
    for (int i = 0; i < N_SPECIAL; i++) {
        snprintf(v->store[i], sizeof v->store[i], "%s", specials[i]);
        v->types[i] = 3;
    }
    for (int b = 0; b < 256; b++) {
        byte_token(b, v->store[N_SPECIAL + b]);
        v->types[N_SPECIAL + b] = 1;
    }
    for (int m = 0; m < N_MERGES; m++) {
        /* the merged token is the pair without its space */
        char *dst = v->store[N_SPECIAL + 256 + m];
        size_t k = 0;
        for (const char *p = merges[m]; *p && k + 1 < sizeof v->store[0]; p++)
            if (*p != ' ')
                dst[k++] = *p;
        dst[k] = 0;
        v->types[N_SPECIAL + 256 + m] = 1;
    }
    for (int i = 0; i < VOCAB; i++)
        v->tokens[i] = v->store[i];
}

#define CHATML_TEMPLATE                                                                                      \
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "                \
    "'<|im_start|>system\nYou are a tiny test model<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "           \
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "                  \
    "add_generation_prompt "                                                                                 \
    "%}{{ '<|im_start|>assistant\n' }}{% endif %}"

/* ---------------------------------------------------------------- writing a model as GGUF */

static inline ws_model_config tiny_config(ws_arch arch)
{
    ws_model_config c = {.arch = arch,
                         .vocab_size = VOCAB,
                         .dim = 256,
                         .hidden_dim = 512,
                         .n_layers = 2,
                         .n_heads = 4,
                         .n_kv_heads = 2,
                         .head_dim = 64,
                         .max_pos = 128,
                         .norm_eps = 1e-5f,
                         .rope_theta = 10000,
                         .tied = arch == WS_ARCH_LLAMA,
                         .qkv_bias = arch == WS_ARCH_QWEN2,
                         .bos_id = -1,
                         .eos_ids = {2},
                         .n_eos = 1};
    return c;
}

/* HF row r of a Q/K projection sits at this GGUF row (llama.cpp's permutation). */
static inline int gguf_row(int r, int D)
{
    int h = r / D, j = r % D, half = D / 2;
    return h * D + 2 * (j % half) + j / half;
}

static inline void put_f16(uint8_t *p, float x)
{
    ws_quantize_row(WS_QT_F16, &x, p, 1);
}

/* k-quant blocks have no quantizer here: random blocks with small, sane scales stand in for the
 * weights (the test compares the quantized path with the same blocks dequantized). */
static inline void random_kquant(ws_qtype type, uint8_t *data, size_t n_blocks, uint64_t *seed)
{
    size_t bb = ws_qtype_block_bytes(type);
    for (size_t i = 0; i < n_blocks * bb; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        data[i] = (uint8_t)(*seed >> 56);
    }
    for (size_t k = 0; k < n_blocks; k++) {
        uint8_t *b = data + k * bb;
        if (type == WS_QT_Q6_K) { /* 16 int8 scales at 192: positive and alike, as real ones are */
            for (int j = 0; j < 16; j++)
                b[192 + j] = (uint8_t)(8 + (b[192 + j] & 15));
            put_f16(b + 208, 0.0004f);
        } else {
            put_f16(b, 0.0008f);
            put_f16(b + 2, 0.0005f);
        }
    }
}

static inline void add_matrix(ws_gguf_writer *w, const char *name, const float *m, int rows, int cols,
                              ws_qtype type, int perm_D)
{
    size_t rb = ws_qtype_row_bytes(type, cols);
    uint8_t *data = malloc(rb * (size_t)rows);
    if (type == WS_QT_Q4_K || type == WS_QT_Q5_K || type == WS_QT_Q6_K) {
        uint64_t seed = (uint64_t)rows * 131 + (uint64_t)cols;
        random_kquant(type, data, rb / ws_qtype_block_bytes(type) * (size_t)rows, &seed);
        int64_t ne[2] = {cols, rows};
        ws_gguf_add_tensor(w, name, 2, ne, type, data);
        free(data);
        return;
    }
    for (int r = 0; r < rows; r++) {
        int src = r;
        if (perm_D) /* GGUF row r holds HF row src with gguf_row(src) == r */
            for (int s = 0; s < rows; s++)
                if (gguf_row(s, perm_D) == r)
                    src = s;
        ws_quantize_row(type, m + (size_t)src * cols, data + (size_t)r * rb, cols);
    }
    int64_t ne[2] = {cols, rows};
    ws_gguf_add_tensor(w, name, rows == 1 ? 1 : 2, ne, type, data);
    free(data);
}

static inline const char *gguf_name(const char *hf, char *buf, size_t cap, int *perm)
{
    static const struct {
        const char *hf, *gg;
        bool qk;
    } map[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0},
        {"self_attn.q_proj.weight", "attn_q.weight", 1},
        {"self_attn.k_proj.weight", "attn_k.weight", 1},
        {"self_attn.v_proj.weight", "attn_v.weight", 0},
        {"self_attn.o_proj.weight", "attn_output.weight", 0},
        {"self_attn.q_proj.bias", "attn_q.bias", 1},
        {"self_attn.k_proj.bias", "attn_k.bias", 1},
        {"self_attn.v_proj.bias", "attn_v.bias", 0},
        {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 0},
        {"mlp.up_proj.weight", "ffn_up.weight", 0},
        {"mlp.down_proj.weight", "ffn_down.weight", 0},
    };
    *perm = 0;
    if (!strcmp(hf, "model.embed_tokens.weight"))
        return "token_embd.weight";
    if (!strcmp(hf, "model.norm.weight"))
        return "output_norm.weight";
    if (!strcmp(hf, "lm_head.weight"))
        return "output.weight";
    int l = atoi(hf + strlen("model.layers."));
    const char *s = strchr(hf + strlen("model.layers."), '.') + 1;
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (!strcmp(s, map[k].hf)) {
            snprintf(buf, cap, "blk.%d.%s", l, map[k].gg);
            *perm = map[k].qk;
            return buf;
        }
    return NULL;
}

typedef struct {
    const char *skip_tensor; /* leave this tensor out */
    const char *arch_name;   /* general.architecture written ("llama" when NULL) */
    const char *pre;         /* tokenizer.ggml.pre */
    bool no_tokens;
    int rope_dims;      /* 0: head_dim */
    int context_length; /* 0: the model's max_pos */
} gguf_opts;

/* Writes m as a GGUF file with matrices of type (norms F32). */
static inline int write_gguf(const ws_model *m, ws_qtype type, const char *path, const gguf_opts *go)
{
    const ws_model_config *c = &m->cfg;
    gguf_opts none = {0};
    go = go ? go : &none;
    const char *arch = go->arch_name ? go->arch_name : c->arch == WS_ARCH_QWEN2 ? "qwen2" : "llama";
    const char *a = c->arch == WS_ARCH_QWEN2 ? "qwen2" : "llama";
    char key[96];
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_str(w, "general.architecture", arch);
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", a, s), key)
    ws_gguf_add_u32(w, KEY("block_count"), (uint32_t)c->n_layers);
    ws_gguf_add_u32(w, KEY("embedding_length"), (uint32_t)c->dim);
    ws_gguf_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->hidden_dim);
    ws_gguf_add_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads);
    ws_gguf_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    ws_gguf_add_u32(w, KEY("context_length"),
                    (uint32_t)(go->context_length ? go->context_length : c->max_pos));
    ws_gguf_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
    ws_gguf_add_f32(w, KEY("rope.freq_base"), c->rope_theta);
    ws_gguf_add_u32(w, KEY("rope.dimension_count"), (uint32_t)(go->rope_dims ? go->rope_dims : c->head_dim));
#undef KEY
    vocab *v = malloc(sizeof *v);
    make_vocab(v);
    ws_gguf_add_str(w, "tokenizer.ggml.model", "gpt2");
    ws_gguf_add_str(w, "tokenizer.ggml.pre", go->pre ? go->pre : "smollm");
    if (!go->no_tokens)
        ws_gguf_add_str_arr(w, "tokenizer.ggml.tokens", v->tokens, VOCAB);
    ws_gguf_add_i32_arr(w, "tokenizer.ggml.token_type", v->types, VOCAB);
    ws_gguf_add_str_arr(w, "tokenizer.ggml.merges", merges, N_MERGES);
    ws_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
    ws_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    ws_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", false);
    ws_gguf_add_str(w, "tokenizer.chat_template", CHATML_TEMPLATE);
    free(v);
    for (int i = 0; i < m->n_params; i++) {
        const ws_param *p = &m->params[i];
        char buf[96];
        int perm;
        const char *gn = gguf_name(p->name, buf, sizeof buf, &perm);
        if (!gn || (go->skip_tensor && !strcmp(gn, go->skip_tensor)))
            continue;
        int pd = perm && c->arch == WS_ARCH_LLAMA ? c->head_dim : 0;
        const float *data = ws_model_param_ptr(m, &m->w, i);
        if (p->ndim == 1)
            add_matrix(w, gn, data, 1, (int)p->shape[0], WS_QT_F32, pd);
        else
            add_matrix(w, gn, data, (int)p->shape[0], (int)p->shape[1], type, pd);
    }
    ws_error err = {0};
    int rc = ws_gguf_write(w, path, &err);
    if (rc)
        fprintf(stderr, "%s: %s\n", path, err.msg);
    ws_gguf_writer_free(w);
    return rc;
}

#endif
