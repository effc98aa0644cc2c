/* Training: AdamW (decoupled weight decay on matrices only, as the usual two parameter groups),
 * linear warmup + cosine decay, global gradient-norm clipping, gradient accumulation over
 * micro-batches, and checkpoints that resume bit-exactly. Trains either the whole model (full
 * training, e.g. a small model from scratch) or only a LoRA adapter with the base frozen.
 * A trainer borrows the model and adapter; it is not thread-safe. */
#ifndef WS_NN_TRAIN_H
#define WS_NN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/lora.h"
#include "nn/model.h"

typedef struct ws_train_opts {
    float lr, min_lr; /* peak and final learning rate */
    int warmup_steps; /* linear warmup: lr * (step+1) / warmup */
    int total_steps;  /* cosine from lr to min_lr over the steps after warmup */
    float beta1, beta2, eps;
    float weight_decay; /* applied to 2-D tensors (matrices, embeddings, LoRA A/B) */
    float grad_clip;    /* max global L2 norm; <= 0: off */
    int accum;          /* micro-batches per optimizer step */
    bool exact_base;    /* LoRA on a quantized base: f32 products on its dequantized blocks (the
                           arithmetic of its f32 copy) instead of the 8-bit ones
                           (ws_acts_base_8bit), e.g. for exactness tests */
} ws_train_opts;

/* lr 1e-3 -> 1e-4, warmup 0, betas 0.9/0.95, eps 1e-8, wd 0.1, clip 1, accum 1, 8-bit base. */
void ws_train_opts_init(ws_train_opts *o, int total_steps);
float ws_lr_at(const ws_train_opts *o, int step);

typedef struct ws_trainer ws_trainer;

/* A trainer for batches of B x T tokens per micro-batch. lora == NULL trains the whole model
 * (it must be contiguous: ws_model_new or WS_LOAD_COPY); otherwise only the adapter. */
int ws_trainer_new(ws_model *m, ws_lora *lora, int B, int T, const ws_train_opts *o, ws_trainer **out,
                   ws_error *err);
void ws_trainer_free(ws_trainer *t);

/* One optimizer step over accum micro-batches: inputs/targets hold accum*B*T ids (targets
 * negative = not trained on). *loss gets the mean of the micro-batch mean losses. */
int ws_trainer_step(ws_trainer *t, const int32_t *inputs, const int32_t *targets, float *loss);
/* The same over packed rows: pk's arrays (accum*B*T each; pk NULL: unpacked) as
 * ws_model_forward_packed. */
int ws_trainer_step_packed(ws_trainer *t, const int32_t *inputs, const ws_packing *pk, const int32_t *targets,
                           float *loss);
/* Weights of one micro-batch's positions from their losses after its forward: nll[B*T] (0
 * where no target), into w[B*T] (the backward propagates sum_i w[i] * nll[i]). Returns the
 * micro-batch's loss under that objective, for the report. */
typedef double (*ws_trainer_weigh_fn)(void *arg, int micro, const float *nll, float *w);
/* The same as ws_trainer_step_packed with an objective of weighted position losses set by weigh
 * after each micro-batch's forward (e.g. a contrastive term between sequences); weigh NULL: the
 * mean loss. *loss gets the mean of weigh's values. */
int ws_trainer_step_weighted(ws_trainer *t, const int32_t *inputs, const ws_packing *pk,
                             const int32_t *targets, ws_trainer_weigh_fn weigh, void *arg, float *loss);
/* Mean loss over a batch without training (dropout off). */
int ws_trainer_eval(ws_trainer *t, const int32_t *inputs, const int32_t *targets, int B, float *loss);

int ws_trainer_steps_done(const ws_trainer *t);
float ws_trainer_last_lr(const ws_trainer *t);
float ws_trainer_last_grad_norm(const ws_trainer *t); /* before clipping */
size_t ws_trainer_n_trainable(const ws_trainer *t);
size_t ws_trainer_bytes(const ws_trainer *t); /* activations + optimizer state */

/* Checkpoint: trainable parameters, AdamW moments, step and dropout RNG in one safetensors
 * file (atomic write). Loading requires a trainer of the same shape. */
int ws_trainer_save(const ws_trainer *t, const char *path, ws_error *err);
int ws_trainer_load(ws_trainer *t, const char *path, ws_error *err);

#endif
