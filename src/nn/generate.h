/* Text generation on a ws_model (+ optional LoRA adapter) with a KV cache: greedy or sampled
 * (temperature, top-k, top-p, repetition penalty, applied in transformers' order), stop tokens
 * and stop strings, the natural-log probability of every new token under the model (before any
 * sampling transform), and a streaming callback. Thread-safe for distinct calls: each call
 * owns its cache and random state; the model and adapter are only read. */
#ifndef WS_NN_GENERATE_H
#define WS_NN_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/model.h"

typedef enum { WS_GEN_LENGTH, WS_GEN_EOS, WS_GEN_STOP_STRING, WS_GEN_CALLBACK } ws_gen_stop;

typedef struct ws_gen_opts {
    int max_new_tokens;
    float temperature;                /* <= 0: greedy */
    int top_k;                        /* 0: off */
    float top_p;                      /* >= 1: off */
    float repetition_penalty;         /* 1 (or 0): off; as transformers, over prompt + generated */
    const uint8_t *repetition_exempt; /* [vocab]: nonzero = never penalised; NULL: none (not owned) */
    /* Classifier-free guidance (ws_sample only: ws_generate has no unconditioned pass): with
     * guidance > 0 and guidance_logits (the same step's logits without the condition, e.g.
     * without the conversation; [vocab], not owned) the draw is from
     * logits + guidance * (logits - guidance_logits), before the penalty and temperature. */
    float guidance;
    const float *guidance_logits;
    uint64_t seed;
    const int32_t *stop_ids; /* NULL: the model config's eos ids */
    int n_stop_ids;
    const char *const *stop_strings;
    int n_stop_strings;
    /* bytes a token stands for; required when stop_strings are given */
    int (*token_bytes)(void *ctx, int32_t id, const char **bytes, size_t *len);
    void *token_ctx;
    /* called after each new token (with its log-probability); nonzero return stops */
    int (*on_token)(void *ctx, int32_t id, float logprob);
    void *on_token_ctx;
} ws_gen_opts;

/* Defaults: 64 new tokens, greedy, no penalty. */
void ws_gen_opts_init(ws_gen_opts *o);

typedef struct ws_gen_result {
    int32_t *tokens; /* new tokens, the stop token or the one ending a stop string included */
    float *logprobs; /* natural log p(token) under the model */
    int n;
    ws_gen_stop stop;
} ws_gen_result;

/* Generates after prompt[n_prompt]; out's arrays are malloc'd (ws_gen_result_free). When the prompt is
 * rejected on_token is never called; on a later failure out is emptied. Errors: WS_EINVAL (empty prompt, bad
 * ids, stop strings without token_bytes), WS_ETOOBIG (prompt over max_position_embeddings). */
int ws_generate(const ws_model *m, const ws_lora *lora, const int32_t *prompt, int n_prompt,
                const ws_gen_opts *opts, ws_gen_result *out, ws_error *err);
void ws_gen_result_free(ws_gen_result *r);

/* One sampling step over logits[V] (modified in place): guidance, then the repetition penalty
 * (history = ids seen so far; each distinct id once, o->repetition_exempt's ids never), then
 * temperature, top-k and top-p. *logprob (optional) gets log softmax of the original logits at
 * the chosen id. rng: caller's state. */
int32_t ws_sample(float *logits, int V, const ws_gen_opts *o, const int32_t *history, int n_hist,
                  uint64_t *rng, float *logprob);
/* log softmax(logits)[id], computed in double. */
float ws_logprob(const float *logits, int V, int32_t id);

#endif
