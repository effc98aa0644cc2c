/* A BERT encoder in f32 (the sentence encoder all-MiniLM-L6-v2 and models of its shape):
 * token + position + type embeddings, post-LayerNorm transformer layers (multi-head
 * self-attention, GELU feed-forward), matrix products by OpenBLAS sgemm; and sentence embeddings
 * as sentence-transformers makes them (mean pooling over the tokens, L2 normalisation).
 *
 * Loads a Hugging Face model directory: config.json, vocab.txt and model.safetensors (F32
 * tensors named embeddings.* / encoder.layer.N.*, optionally under a "bert." prefix).
 * Ownership: a loaded model belongs to the caller (ws_bert_free); it is immutable after load and
 * ws_bert_forward / ws_bert_embed may run on it from several threads at once (each call
 * allocates its own scratch memory). */
#ifndef WS_NN_BERT_H
#define WS_NN_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/wordpiece.h"

typedef struct ws_bert_config {
    int vocab_size, hidden, layers, heads, intermediate, max_positions, type_vocab_size;
    float layer_norm_eps;
    int max_seq_length; /* tokens per input incl. [CLS]/[SEP] (sentence_bert_config.json, else 256) */
} ws_bert_config;

typedef struct ws_bert ws_bert;

/* Errors: WS_ENOENT (a file is missing), WS_EFORMAT (bad config/safetensors, wrong tensor
 * shapes), WS_EUNSUPPORTED (not a BERT with absolute positions and GELU, non-F32 tensors). */
int ws_bert_load(const char *model_dir, ws_bert **out, ws_error *err);
void ws_bert_free(ws_bert *m); /* NULL is a no-op */

const ws_bert_config *ws_bert_config_of(const ws_bert *m);
const ws_wordpiece *ws_bert_tokenizer(const ws_bert *m);

/* Last hidden states (n * hidden floats, row per token) of ids[0..n) (1 <= n <= max_positions,
 * every id < vocab_size, else WS_EINVAL). */
int ws_bert_forward(const ws_bert *m, const int32_t *ids, size_t n, float *hidden_out, ws_error *err);

/* The same for n_seqs sequences at once: ids holds them back to back, lens[s] tokens each;
 * hidden_out gets sum(lens) rows. The dense layers run on all tokens together (much faster
 * than one call per sequence: the weights are packed once per layer, not once per sequence). */
int ws_bert_forward_batch(const ws_bert *m, const int32_t *ids, const size_t *lens, size_t n_seqs,
                          float *hidden_out, ws_error *err);

/* Sentence embedding of UTF-8 text: tokenize (truncate to max_seq_length), forward, mean-pool,
 * L2-normalise; out gets hidden floats. */
int ws_bert_embed(const ws_bert *m, const char *text, size_t len, float *out, ws_error *err);
/* n sentence embeddings at once (out gets n * hidden floats); batches of 16-64 are fastest. */
int ws_bert_embed_batch(const ws_bert *m, const char *const *texts, const size_t *lens, size_t n, float *out,
                        ws_error *err);

#endif
