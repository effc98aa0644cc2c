/* The Llama-style decoder (SmolLM2 / Qwen2.5 / Llama-3.2 class): weights, the training
 * forward/backward over a (B,T) batch, and the incremental inference forward with a KV cache.
 *
 * Layout (as llm.c): every parameter tensor is a named view into either one owned contiguous
 * block or the memory-mapped safetensors file (read-only inference); gradients, when enabled,
 * live in a second block carved the same way. A model is not thread-safe while training; for
 * inference, any number of threads may run ws_model_infer at once, each with its own cache
 * (the weights are only read). */
#ifndef WS_NN_MODEL_H
#define WS_NN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/config.h"
#include "nn/ops.h"
#include "nn/quant.h"

typedef struct ws_lora ws_lora;
typedef struct ws_safetensors ws_safetensors;
typedef struct ws_gguf ws_gguf;

typedef struct ws_layer_weights {
    float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo;
    float *mlp_norm, *wg, *wu, *wd;
} ws_layer_weights;

/* Pointers to every parameter (or to its gradient). lm_head == embed when tied. */
typedef struct ws_weights {
    float *embed, *final_norm, *lm_head;
    ws_layer_weights *layers;
} ws_weights;

/* The projections of a quantized model (GGUF), used in place of the f32 matrices of
 * ws_weights when ws_model.quantized: data points into the mapped file (Q/K rows of a llama
 * GGUF are un-permuted into an owned copy). Norms and biases stay f32 in ws_weights. */
typedef struct ws_layer_qweights {
    ws_qmat wq, wk, wv, wo, wg, wu, wd;
} ws_layer_qweights;

typedef struct ws_qweights {
    ws_qmat embed, lm_head;
    ws_layer_qweights *layers;
} ws_qweights;

/* One parameter tensor: its transformers name, shape and where it lives. */
typedef struct ws_param {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t numel;
    size_t offset; /* floats from the start of a contiguous block */
} ws_param;

typedef struct ws_model {
    ws_model_config cfg;
    ws_weights w;     /* parameter views */
    ws_weights g;     /* gradient views (NULL pointers until ws_model_enable_grads) */
    ws_param *params; /* the canonical list (tied head not listed) */
    int n_params;
    size_t n_floats; /* total parameter floats */
    float *block;    /* owned parameter storage, or NULL when all are mapped */
    bool contiguous; /* every parameter lives in block at its offset */
    float *grad_block;
    ws_safetensors *st;         /* kept open while weights point into it */
    float *rope_cos, *rope_sin; /* [max_pos, head_dim/2] */
    bool quantized;             /* projections, embedding and head are in q (GGUF, read in place) */
    bool llamacpp_order;        /* quantized inference sums in GGML's order (ws_model_set_llamacpp_order) */
    ws_qweights q;
    ws_gguf *gguf; /* kept open while weights point into it */
    void *owned_q; /* owned quantized rows (un-permuted Q/K) */
} ws_model;

enum {
    WS_LOAD_COPY = 1, /* copy every weight into one owned f32 block (needed for full training;
                         for a GGUF file: the whole model dequantized) */
};

/* Loads DIR/config.json and the safetensors weights (single or sharded; F32/F16/BF16), or a
 * GGUF file when path is one (ws_model_load_gguf). *out belongs to the caller (ws_model_free).
 * Errors: WS_ENOENT, WS_EFORMAT (missing tensor, shape mismatch), WS_EUNSUPPORTED
 * (architecture/options), each with a message. */
int ws_model_load(const char *path, int flags, ws_model **out, ws_error *err);
/* True when path is a regular file that starts with the GGUF magic. */
bool ws_model_is_gguf(const char *path);
/* A model from an opened GGUF file (architectures llama and qwen2; the config from the
 * metadata, anything else refused naming the field). Without WS_LOAD_COPY the weights are used
 * in place, quantized (memory: the mapping plus small f32 norms); the model takes ownership of
 * g in every case (closed on failure too). Errors: WS_EFORMAT, WS_EUNSUPPORTED. */
int ws_model_load_gguf(ws_gguf *g, const char *name, int flags, ws_model **out, ws_error *err);
/* A new model with random weights (normal(0, 0.02), norms 1) in one owned block. */
ws_model *ws_model_new(const ws_model_config *cfg, uint64_t seed);
/* Writes DIR/config.json and DIR/model.safetensors (F32). DIR must exist. */
int ws_model_save(const ws_model *m, const char *dir, ws_error *err);
void ws_model_free(ws_model *m);
/* Quantized models only (else ignored): inference sums as llama.cpp's CPU backend does, bit for
 * bit where measured (its Q4_1 dot's 8 lanes, the attention products' lane orders, its SiLU), at
 * about llama.cpp's own speed instead of ours; for parity checks (docs/nn.md). Not thread-safe
 * against running inference; a KV cache filled in one order is not for the other (K is stored in
 * GGUF's element order in llama.cpp's). */
#define WS_GGML_MAX_D 128
void ws_model_set_llamacpp_order(ws_model *m, bool on);
/* Allocates zeroed gradients (requires a contiguous model: WS_LOAD_COPY or ws_model_new). */
int ws_model_enable_grads(ws_model *m, ws_error *err);
void ws_model_zero_grads(ws_model *m);
/* The view of param i inside weights w (params or grads). */
float *ws_model_param_ptr(const ws_model *m, const ws_weights *w, int i);

/* ---- training forward / backward over a batch ---- */
typedef struct ws_acts ws_acts;

/* Activation memory for batches of up to B x T tokens (and a LoRA adapter's extra state when
 * lora is given: it must be the adapter used in forward). Caller frees with ws_acts_free. */
ws_acts *ws_acts_new(const ws_model *m, const ws_lora *lora, int B, int T);
void ws_acts_free(ws_acts *a);
size_t ws_acts_bytes(const ws_acts *a);
float *ws_acts_logits(ws_acts *a); /* [B*T, vocab] after forward (dlogits after backward) */
/* With on, a forward that has targets runs the output head on the rows that have a target
 * only (the loss needs no others): ws_acts_logits then holds those rows, in order. For LoRA
 * training (the head's own gradient is not needed); the trainer sets it. */
void ws_acts_head_on_targets(ws_acts *a, bool on);
/* LoRA training through a quantized base (m->quantized; nothing otherwise): the frozen base's
 * products run on 8-bit activations times its quantized blocks, as inference does
 * (ws_qmat_infer), forward and for the input gradients backward, those on transposed Q8_0 copies
 * of the matrices that need one (the head and the projections from the lowest adapted layer up,
 * made here once: ~1.06 bytes per weight, counted in ws_acts_bytes; where the CPU has no
 * many-row Q8_0 kernel the gradients stay f32). The adapter's own products and every gradient
 * of its parameters stay f32. Without it (the default) the base's products are f32 on
 * dequantized tiles, the arithmetic of its dequantized f32 copy. lora: the adapter the
 * activations were made for. */
void ws_acts_base_8bit(ws_acts *a, const ws_model *m, const ws_lora *lora);

/* Forward of inputs[B*T] (row b = one sequence, positions 0..T-1). With targets (negative =
 * ignored), *loss gets the mean cross-entropy over counted targets. lora may be NULL; when
 * training is true LoRA dropout is applied. */
int ws_model_forward(const ws_model *m, const ws_lora *lora, ws_acts *a, const int32_t *inputs,
                     const int32_t *targets, int B, int T, bool training, float *loss);
/* The same over rows that pack several sequences (pk NULL or pk->starts NULL: one sequence a
 * row): pk->starts[B*T] holds, for each position, the index in its row where its sequence begins
 * (non-decreasing within a row, starts[i] <= i). A position attends only inside its sequence, but
 * the keys it skips (ws_packing), and its RoPE position counts from that start without them, so
 * each packed sequence is computed as if it were alone in its row; invalid starts or skips:
 * WS_EINVAL. */
int ws_model_forward_packed(const ws_model *m, const ws_lora *lora, ws_acts *a, const int32_t *inputs,
                            const ws_packing *pk, const int32_t *targets, int B, int T, bool training,
                            float *loss);
/* After a forward with targets: nll[B*T] gets each position's loss (-log p of its target), 0
 * where it has no target. */
void ws_acts_target_nll(const ws_acts *a, float *nll);
/* Weights w[B*T] (copied; NULL: none) for the next backward only: it then propagates the sum of
 * each position's loss times its weight (weights may be negative) instead of the mean loss. */
void ws_acts_weigh_targets(ws_acts *a, const float *w);
/* Backward of the last forward (which had targets): gradients of loss * loss_scale are ADDED
 * to the model's grads (lora == NULL: full training) or to the adapter's grads (base frozen).
 * It uses up the forward's activations (logits, MLP gates): once per forward. */
void ws_model_backward(ws_model *m, ws_lora *lora, ws_acts *a, float loss_scale);

/* ---- inference with a KV cache ---- */
typedef struct ws_kv_cache ws_kv_cache;

ws_kv_cache *ws_kv_cache_new(const ws_model *m, int max_tokens);
void ws_kv_cache_free(ws_kv_cache *c);
void ws_kv_cache_reset(ws_kv_cache *c);
int ws_kv_cache_len(const ws_kv_cache *c);
/* Drops cached positions >= len (to reuse a common prefix). */
void ws_kv_cache_truncate(ws_kv_cache *c, int len);

/* Runs n tokens at positions cache_len.. through the model, appending to the cache. logits
 * (vocab floats) gets the last token's logits when not NULL; all_logits (n*vocab) every
 * token's. lora may be NULL. Errors: WS_ETOOBIG when the cache or max_pos would overflow,
 * WS_EINVAL for a token id outside the vocabulary. */
int ws_model_infer(const ws_model *m, const ws_lora *lora, ws_kv_cache *c, const int32_t *tokens, int n,
                   float *logits, float *all_logits, ws_error *err);

/* A copy of src (its positions and room), e.g. one per sampled continuation of a prompt. */
ws_kv_cache *ws_kv_cache_dup(const ws_model *m, const ws_kv_cache *src);
/* The same with room for max_tokens positions (at least src's length; capped at max_pos as in
 * ws_kv_cache_new), e.g. to batch it with caches of another size. */
ws_kv_cache *ws_kv_cache_dup_room(const ws_model *m, const ws_kv_cache *src, int max_tokens);
/* How many positions c has room for. */
int ws_kv_cache_room(const ws_kv_cache *c);
/* One new token for each of n sequences, each with its own cache (all of one size), in one pass:
 * the weights are read once for all of them. logits gets n*vocab floats (row s: sequence s).
 * The caches must be distinct; scratch of caches[0] is used. Errors: WS_ETOOBIG (a cache full),
 * WS_EINVAL (bad id). */
int ws_model_infer_batch(const ws_model *m, const ws_lora *lora, ws_kv_cache *const *caches,
                         const int32_t *tokens, int n, float *logits, ws_error *err);

#endif
