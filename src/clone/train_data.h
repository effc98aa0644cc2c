/* Training data of a clone (train_data.c): each training example as a token sequence (on a
 * chat base with a mismatched twin), sequences packed into rows and micro-batches, and the
 * objective of a training step over them. Internal to src/clone (train.c). */
#ifndef WS_CLONE_TRAIN_DATA_H
#define WS_CLONE_TRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clone/clone_int.h"
#include "nn/train.h"
#include "style/pairs.h"

/* On a chat base each example is packed with a mismatched twin: the reply of another training
 * example after the same conversation. Besides the reply's loss, the objective takes
 * CONTRAST_WEIGHT x softplus(mean log-prob of the twin's reply - the true reply's) per pair, so
 * the adapter learns which reply answers the conversation, not only how the person writes
 * (response selection, as R10@1 of the fidelity report measures it). The twin shares its
 * example's prompt in the row (it skips the true reply: ws_packing), so it costs its reply's
 * tokens only, not a second prompt (docs/clone.md). */
#define CONTRAST_WEIGHT 0.5

/* One training example as token ids. */
typedef struct clone_seg {
    int32_t *ids;
    uint8_t *learn; /* 1 where the token is predicted (persona text and its end) */
    size_t n;
    size_t prompt_n;        /* tokens before the reply (not learned) */
    struct clone_seg *twin; /* on a chat base: its mismatched twin's reply and end (all learned;
                               CONTRAST_WEIGHT; owned), or NULL */
} clone_seg;

/* The training examples of p (held-out ones left out) in f's format, and a hash of their ids
 * (for the checkpoint's key); *n_out of them. Freed with ws__clone_segments_free. */
clone_seg *ws__clone_segments_build(const ws_pairs *p, const clone_fmt *f, size_t *n_out, uint64_t *hash);
void ws__clone_segments_free(clone_seg *s, size_t n);

/* Packs segments, in an order shuffled per epoch, into rows of T+1 tokens (inputs + shifted
 * targets), each position with the start of its segment in the row: on a chat base a segment
 * attends only to itself and its positions count from 0, as when it is alone
 * (ws_model_forward_packed; a model from scratch still reads its rows whole, as its tests were
 * tuned on). A segment's mismatched twin goes right after it in the same row when both fit: the
 * prompt's last token again, then the twin's reply, at the positions the true reply had and
 * seeing the prompt but not the true reply (skip_from, skip_to: ws_packing); each position's tag
 * says what it belongs to: 0 a segment without its twin, 2k+1 the k-th pair's segment of its
 * row, 2k+2 that pair's twin. Deterministic for (seed, epoch) so a resumed run sees the same
 * data. */
typedef struct clone_packer {
    const clone_seg *segs;
    size_t n_segs;
    int T;
    int32_t pad;
    bool isolate; /* segments apart: no target across a segment's end, starts used (chat base) */
    uint64_t seed;
    int epoch;
    int32_t *rows_in, *rows_tg, *rows_st, *rows_sf, *rows_sk, *rows_tag; /* [n_rows][T] */
    size_t n_rows, next, cap;
} clone_packer;

/* One micro-batch: inputs, targets, segment starts, skips and tags, [B][T] each. */
typedef struct clone_batch {
    int32_t *in, *tg, *st, *sf, *sk, *tag;
} clone_batch;

/* Packs the epoch pk->epoch (its rows owned by pk: ws__clone_packer_free). */
void ws__clone_pack_epoch(clone_packer *pk);
void ws__clone_packer_free(clone_packer *pk);
/* Row r of the packed epoch into micro-batch row b. */
void ws__clone_copy_row(const clone_packer *pk, size_t r, clone_batch *bt, int b);
/* Copies the next B rows (moving on to the next epoch as needed). */
void ws__clone_next_batch(clone_packer *pk, int B, clone_batch *bt);
/* A micro-batch of B rows of T (its arrays owned: ws__clone_batch_free). */
clone_batch ws__clone_batch_new(int B, int T);
void ws__clone_batch_free(clone_batch *bt);

/* The objective of a micro-batch of B rows of T positions on a chat base: targets tg and tags
 * tag ([B*T], as the packer's rows), each position's loss nll. Returns the mean loss of the real
 * replies' tokens plus, per pair, CONTRAST_WEIGHT x softplus(twin's mean log-prob - the real
 * reply's) / pairs; w[B*T] gets the objective's derivative by each position's loss. */
double ws__clone_contrast_objective(const int32_t *tg, const int32_t *tag, int B, int T, const float *nll,
                                    float *w);
/* One optimizer step of t over bt: with mismatched twins in it that objective, else the mean
 * loss. */
int ws__clone_train_step(ws_trainer *t, const clone_packer *pk, const clone_batch *bt, int B, float *loss);

#endif
