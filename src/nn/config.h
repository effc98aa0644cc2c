/* Model configuration of the Llama-style decoder family, read from a Hugging Face config.json
 * (architectures LlamaForCausalLM and Qwen2ForCausalLM). Anything outside what the engine
 * computes (other activations, sliding-window attention, MLP bias, unknown RoPE scaling) is
 * refused with WS_EUNSUPPORTED and a message naming the field. */
#ifndef WS_NN_CONFIG_H
#define WS_NN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define WS_MAX_EOS 8

typedef enum { WS_ARCH_LLAMA, WS_ARCH_QWEN2 } ws_arch;
typedef enum { WS_ROPE_DEFAULT, WS_ROPE_LINEAR, WS_ROPE_LLAMA3 } ws_rope_type;

typedef struct ws_model_config {
    ws_arch arch;
    int vocab_size;
    int dim;        /* hidden_size */
    int hidden_dim; /* intermediate_size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int max_pos; /* max_position_embeddings */
    float norm_eps;
    float rope_theta;
    ws_rope_type rope_type;
    float rope_factor, rope_low_freq, rope_high_freq;
    int rope_orig_max_pos;
    bool tied;     /* lm_head shares the token embedding */
    bool qkv_bias; /* q,k,v projections have bias (Qwen2, Llama attention_bias) */
    bool o_bias;   /* o projection has bias (Llama attention_bias) */
    int bos_id;    /* -1 if none */
    int eos_ids[WS_MAX_EOS];
    int n_eos;
} ws_model_config;

/* Parses config.json text. Errors: WS_EFORMAT, WS_EUNSUPPORTED (message in err). */
int ws_config_parse(const char *text, size_t len, ws_model_config *cfg, ws_error *err);
/* Reads DIR/config.json. */
int ws_config_load(const char *dir, ws_model_config *cfg, ws_error *err);
/* Writes cfg as a config.json that transformers loads. Result malloc'd (caller frees). */
char *ws_config_to_json(const ws_model_config *cfg);
/* Checks sizes are positive and consistent (heads divide, head_dim even). */
int ws_config_validate(const ws_model_config *cfg, ws_error *err);

#endif
