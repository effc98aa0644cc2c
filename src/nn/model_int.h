/* Private to the decoder's files (model.c: parameters and loading; model_train.c: training
 * forward/backward; model_infer.c: KV-cache inference; model_gguf.c: GGUF loading): the shared
 * allocation helpers and the projection products, which pick the f32 or the quantized weights
 * so the passes above them need not know which a model has. */
#ifndef WS_NN_MODEL_INT_H
#define WS_NN_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/lora.h"
#include "nn/model.h"

/* A model of cfg with its parameter table, layer arrays and RoPE tables, no weights yet. */
ws_model *ws__model_alloc(const ws_model_config *cfg);
/* The slot in w that param i names. */
float **ws__model_param_slot(const ws_model *m, const ws_weights *w, int i);
/* Points every parameter of w into block at its offset (lm_head = embed when tied). */
void ws__model_carve(ws_model *m, ws_weights *w, float *block);
/* Carves n floats off *cur, keeping 64-byte alignment of what follows. */
float *ws__take(float **cur, size_t n);
uint64_t ws__splitmix(uint64_t *s);

/* Projections are named by the LoRA target ids (WS_LORA_Q ... WS_LORA_DOWN). */
/* out[N,out] = beta*out + in[N,in] W^T (+ bias) for projection t of layer l. */
void ws__proj_forward(const ws_model *m, int l, int t, float *out, const float *in, int N, float beta);
/* The same for inference (ws_qmat_infer: a prompt's rows through the 8-bit kernels). */
void ws__proj_infer(const ws_model *m, int l, int t, float *out, const float *in, int N, float beta);
/* Projections t[0..n) (n <= WS_QMAT_MAX_GROUP) of one input, beta 0: out[i] = in W_t[i]^T. */
void ws__proj_infer_group(const ws_model *m, int l, const int *t, float *const *out, const float *in, int n,
                          int N);
/* dinp[N,in] = beta*dinp + dout[N,out] W for projection t of layer l. */
void ws__proj_backward_input(const ws_model *m, int l, int t, float *dinp, float beta, const float *dout,
                             int N);
/* x[n,C] = rows ids of the token embedding. */
void ws__embed(const ws_model *m, float *x, const int32_t *ids, int n);
/* logits[n,V] = xn[n,C] head^T. */
void ws__head_forward(const ws_model *m, float *logits, const float *xn, int n);
/* The same for inference (ws_qmat_infer). */
void ws__head_infer(const ws_model *m, float *logits, const float *xn, int n);
/* dxn[n,C] = dlogits[n,V] head. */
void ws__head_backward_input(const ws_model *m, float *dxn, const float *dlogits, int n);

/* y[N,out] += scale * x A^T B^T for adapter target t of layer l (inference: no dropout);
 * xa is scratch of N * rank floats. Nothing when lo is NULL or does not adapt (l, t). */
void ws__lora_apply(const ws_lora *lo, int l, int t, float *y, const float *x, int N, int in, int out,
                    float *xa);

#endif
