/* LoRA adapters on a frozen base model: y = x W^T + (alpha/r) * dropout(x) A^T B^T on chosen
 * projections (q,k,v,o,gate,up,down). Adapters are independent objects: several can be loaded
 * for one base and passed per call to ws_model_forward/ws_model_infer, so switching adapters
 * never copies the base. Saved and loaded in PEFT's format (adapter_config.json +
 * adapter_model.safetensors with base_model.model.<module>.lora_{A,B}.weight names), so they
 * interoperate with PEFT and vLLM. An adapter is not thread-safe while training; for inference
 * it is only read. */
#ifndef WS_NN_LORA_H
#define WS_NN_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/config.h"

enum { WS_LORA_Q, WS_LORA_K, WS_LORA_V, WS_LORA_O, WS_LORA_GATE, WS_LORA_UP, WS_LORA_DOWN, WS_LORA_NT };

typedef struct ws_lora_config {
    int rank;
    float alpha;
    float dropout;
    unsigned targets; /* bit (1 << WS_LORA_*) per projection */
    bool rslora;      /* scale alpha/sqrt(r) instead of alpha/r */
} ws_lora_config;

struct ws_lora {
    ws_lora_config cfg;
    ws_model_config mcfg; /* the base it fits */
    float scale;
    float **A, **B;            /* [n_layers * WS_LORA_NT]; NULL where not targeted; A[r,in], B[out,r] */
    bool b_by_rank;            /* B held as [r,out] (ws_lora_load: one token's B product is then r
                                  row additions); ws_lora_enable_grads and ws_lora_save go back */
    float **gA, **gB;          /* gradients (same layout; NULL until ws_lora_enable_grads) */
    float *block, *grad_block; /* all A/B in one allocation (A then B per module), grads alike */
    size_t n_floats;
    uint64_t rng; /* dropout stream */
};
typedef struct ws_lora ws_lora;

/* Parses "q,k,v,o" / "q_proj,v_proj" / "all" into target bits; 0 on a bad name. */
unsigned ws_lora_parse_targets(const char *list);
/* Input/output sizes of projection t for model config mc. */
void ws_lora_dims(const ws_model_config *mc, int t, int *in, int *out);

/* A new adapter for base config mc: A ~ kaiming-uniform (as PEFT), B = 0 (so it starts as a
 * no-op), gradients zeroed. Caller frees with ws_lora_free. */
ws_lora *ws_lora_new(const ws_model_config *mc, const ws_lora_config *cfg, uint64_t seed);
void ws_lora_free(ws_lora *l);
/* Allocates the zeroed gradients (ws_lora_new does; a loaded adapter has none until a trainer
 * asks, so a resident inference adapter costs its parameters only). */
void ws_lora_enable_grads(ws_lora *l);
void ws_lora_zero_grads(ws_lora *l);
/* Holds B as [r,out] (by_rank) or [out,r]: what b_by_rank says. ws_lora_load leaves it by rank,
 * ws_lora_enable_grads not; the products read either. */
void ws_lora_set_b_by_rank(ws_lora *l, bool by_rank);

/* Loads a PEFT adapter directory for base config mc. Errors: WS_ENOENT, WS_EFORMAT,
 * WS_EUNSUPPORTED (DoRA, bias training, modules_to_save, per-layer ranks, other targets). */
int ws_lora_load(const char *dir, const ws_model_config *mc, ws_lora **out, ws_error *err);
/* Saves to DIR (created if missing) in PEFT's format. */
int ws_lora_save(const ws_lora *l, const char *dir, const char *base_model_name, ws_error *err);

#endif
