/* The fidelity report (DESIGN.md §3.6) of a trained clone, on the held-out 10% of the persona's
 * examples: the clone answers each held-out context (through a caller's generator) and its
 * replies are compared with what the persona really wrote:
 *   - loss lift over the base model (when the caller passes both held-out losses),
 *   - stylometric distance between real and clone replies (ws_profile_distance), next to the
 *     natural distance between the persona's training and held-out replies,
 *   - verifier accuracy: a cross-validated classifier telling real from clone (50% is ideal),
 *   - attribution: share of clone replies a stylometric classifier (character n-gram centroids
 *     of every participant's training-period turns) gives to the persona, next to the same for
 *     the real held-out replies,
 *   - repetition (distinct-1/2, verbatim copies of training replies, most repeated reply) and
 *     length (median characters, clone / real) checks.
 *
 * Thread-safety: one evaluation at a time per generator; the report holds no pointers. */
#ifndef WS_STYLE_FIDELITY_H
#define WS_STYLE_FIDELITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "style/pairs.h"
#include "style/profile.h"
#include "style/retrieval.h"

#define WS_FIDELITY_MAX_EXAMPLES 2000

/* Writes the clone's reply to example ex of p (its context: turns[ex->ctx_first .. ex->turn-1])
 * into reply. Returns 0 or a negative code (the evaluation stops with it). */
typedef int (*ws_fidelity_gen_fn)(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply,
                                  ws_error *err);

typedef struct ws_fidelity_options {
    size_t max_examples; /* held-out examples to use; 0 = all, capped at WS_FIDELITY_MAX_EXAMPLES */
    double base_loss;    /* mean held-out loss per token (nats) of the base model; 0 = unknown */
    double model_loss;   /* the same for the trained clone; 0 = unknown */
    uint64_t seed;       /* cross-validation folds */
} ws_fidelity_options;

typedef struct ws_fidelity_report {
    size_t n_heldout, n_evaluated;
    bool have_loss;
    double base_loss, model_loss, loss_lift; /* lift = base - model (nats per token) */
    ws_style_distance distance;              /* real held-out vs clone */
    ws_style_distance natural_distance;      /* real training vs real held-out */
    double verifier_accuracy;                /* 0.5 ideal, 1.0 = trivially told apart */
    double attribution, attribution_real;    /* shares given to the persona */
    size_t n_candidates;                     /* participants the attribution chose among */
    double distinct1, distinct2, copy_rate, top_reply_share, empty_rate;
    double real_len_median, clone_len_median, len_ratio;
} ws_fidelity_report;

/* WS_EEMPTY when p holds no held-out examples. */
int ws_fidelity_evaluate(const ws_pairs *p, ws_fidelity_gen_fn gen, void *gen_arg,
                         const ws_fidelity_options *opt, ws_fidelity_report *out, ws_error *err);
void ws_fidelity_to_json(const ws_fidelity_report *r, ws_buf *out);

/* A baseline generator: the persona's real reply to the nearest indexed context (the index
 * should hold only training examples). arg is a ws_fidelity_retrieval_arg. */
typedef struct ws_fidelity_retrieval_arg {
    const ws_retrieval *r;
    ws_embedder *e;
} ws_fidelity_retrieval_arg;
int ws_fidelity_retrieval_gen(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply,
                              ws_error *err);

#endif
