/* The fidelity report (DESIGN.md §3.6) of a clone, on the held-out last 10% of the persona's
 * examples. The clone answers each held-out context through a caller's generator; its replies
 * are measured next to two baselines drawn from the same held-out period — another held-out
 * reply of the same person (the "random reply"), and a held-out turn of another participant —
 * and next to the real replies themselves:
 *   - general stylometric distance to the real replies (src/style/stylometry.h),
 *   - a real-vs-candidate verifier on the same features (0.5 = cannot tell them apart),
 *   - relevance: cosine between the context and the reply in the caller's embedder, and, when
 *     the caller passes a scorer, response selection R10@1 (does the model's likelihood rank the
 *     true reply first among it and 9 other held-out replies of the person; chance 10%),
 *   - distinct replies, copies of training replies (verbatim), echoes of the message, word
 *     trigram repetition, empty replies and length,
 *   - loss of the true replies under the model and under its base (with a scorer),
 *   - for information only: attribution (Cosine Delta over the participants' training-period
 *     turns, which never hold the replies judged: ws_stylo_attributor) and typicality (a caller's callback,
 * e.g. the reply ranker's style fit). The verdict uses only measures a reply ranker does not optimise (see
 * ws_fidelity_criterion).
 *
 * Thread-safety: one evaluation at a time per generator; the report holds no pointers except
 * the static strings of its criteria. */
#ifndef WS_STYLE_FIDELITY_H
#define WS_STYLE_FIDELITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "style/embed.h"
#include "style/pairs.h"
#include "style/retrieval.h"
#include "style/stylometry.h"

#define WS_FIDELITY_MAX_EXAMPLES 2000
#define WS_FIDELITY_RANK_CANDIDATES 10
/* Distractors scored for each ranked example: R10@1 is the true reply's expected share of first
 * place over every draw of WS_FIDELITY_RANK_CANDIDATES - 1 of them, so it does not hinge on the
 * one draw a seed makes. */
#define WS_FIDELITY_RANK_POOL 27
#define WS_FIDELITY_MAX_CRITERIA 10

/* Writes the clone's reply to example ex of p (its context: turns[ex->ctx_first .. ex->turn-1])
 * into reply. Returns 0 or a negative code (the evaluation stops with it). */
typedef int (*ws_fidelity_gen_fn)(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply,
                                  ws_error *err);

/* What a scorer says about one reply after a context. */
typedef struct ws_fidelity_score {
    double nll;     /* total negative log-likelihood, nats */
    size_t n_tok;   /* tokens scored (the end of the turn included) */
    size_t n_bytes; /* bytes of reply text scored, plus one for the end of the turn */
} ws_fidelity_score;

/* Scores reply as the persona's answer to the context of example ex. base: under the model
 * without what training added (the base model without the adapter, or a baseline fitted on
 * training data only). Returns 0 or a negative code (the evaluation stops with it). */
typedef int (*ws_fidelity_score_fn)(void *arg, const ws_pairs *p, const ws_example *ex, const char *reply,
                                    bool base, ws_fidelity_score *out, ws_error *err);

/* How typical reply is of the persona, for information (e.g. the reply ranker's style fit). */
typedef double (*ws_fidelity_typicality_fn)(void *arg, const char *reply);

typedef struct ws_fidelity_options {
    size_t max_examples;        /* held-out examples to use; 0 = all, capped at WS_FIDELITY_MAX_EXAMPLES */
    size_t max_ranked;          /* of those, ranked for R10@1; 0 = 40 */
    uint64_t seed;              /* baselines, cross-validation folds, ranking candidates; 0 = 1 */
    double deadline_s;          /* ws_now_s() after which generating and scoring stop (once 5 examples
                                 * are done, and scoring once 20 are ranked); 0 = none */
    ws_embedder *embedder;      /* relevance (borrowed); NULL = hashed n-grams, 512 dims */
    ws_fidelity_score_fn score; /* NULL = no loss and no ranking */
    void *score_arg;
    bool base_is_model;    /* the scorer's base is a language model: rank with it too */
    const char *base_name; /* what the base is, for the report (static or outliving the report) */
    ws_fidelity_typicality_fn typicality; /* NULL = not reported */
    void *typicality_arg;
} ws_fidelity_options;

/* The reply sets measured. */
enum { WS_FID_CLONE, WS_FID_SAME, WS_FID_OTHER, WS_FID_REAL, WS_FID_SETS };

typedef struct ws_fidelity_set {
    double style_distance; /* to the real held-out replies */
    ws_stylo_parts parts;
    double verifier;    /* real vs this set; 0.5 ideal */
    double relevance;   /* mean context-reply cosine */
    double attribution; /* share given to the persona (information) */
    double typicality;  /* mean of the callback (information; 0 without one) */
    double distinct, copy_rate, echo_rate, repetition, empty_rate, mean_chars, length_ratio;
} ws_fidelity_set;

/* R10@1 of a scorer: share of ranked examples where the true reply scored best among itself and
 * WS_FIDELITY_RANK_CANDIDATES - 1 distractors, in expectation over the draws from the pool. */
typedef struct ws_fidelity_rank {
    double by_mean_logprob;  /* mean log-probability per token */
    double by_total_logprob; /* total log-probability (favours short replies) */
} ws_fidelity_rank;

/* One condition of the verdict. */
typedef struct ws_fidelity_criterion {
    const char *name; /* "style_distance", ... (static) */
    const char *rule; /* how value compares with bound (static) */
    bool measured;    /* false: not measurable here (e.g. no scorer); not part of the verdict */
    bool pass;
    double value, bound;
} ws_fidelity_criterion;

typedef struct ws_fidelity_report {
    size_t n_heldout, n_evaluated, n_candidates;
    bool other_from_heldout; /* false: no other participant wrote in the held-out period, the
                              * latest training-period turns stood in */
    ws_fidelity_set set[WS_FID_SETS];
    char embedder[64];
    double relevance_gain, relevance_t; /* clone - random same-person reply: mean, paired t */
    /* scorer results (have_loss / have_rank false without a scorer) */
    bool have_loss, have_rank, have_base_rank;
    const char *base_name;
    size_t n_scored, n_ranked, n_rank_candidates, n_rank_pool; /* pool: distractors scored an example */
    double model_nll_byte, base_nll_byte, loss_lift, model_nll_token;
    double rank_chance;
    ws_fidelity_rank rank_model, rank_base;
    /* verdict */
    ws_fidelity_criterion criteria[WS_FIDELITY_MAX_CRITERIA];
    size_t n_criteria;
    bool beats_other, beats_same, pass;
} ws_fidelity_report;

/* Evaluates, measures every set and sets the verdict. WS_EEMPTY when p holds no held-out
 * examples; errors of the callbacks pass through. */
int ws_fidelity_evaluate(const ws_pairs *p, ws_fidelity_gen_fn gen, void *gen_arg,
                         const ws_fidelity_options *opt, ws_fidelity_report *out, ws_error *err);

/* Fills the verdict of a measured report (called by ws_fidelity_evaluate). */
void ws_fidelity_judge(ws_fidelity_report *r);

/* The report as JSON members without the braces ("heldout_examples": ..., "beats_baselines":
 * ...), for a caller that adds its own; ws_fidelity_to_json writes the whole object. */
void ws_fidelity_json_members(const ws_fidelity_report *r, ws_buf *out);
void ws_fidelity_to_json(const ws_fidelity_report *r, ws_buf *out);
/* A readable table of the sets and the verdict, criterion by criterion. */
void ws_fidelity_summary(const ws_fidelity_report *r, ws_buf *out);

/* A baseline generator: the persona's real reply to the nearest indexed context (the index
 * should hold only training examples). arg is a ws_fidelity_retrieval_arg. */
typedef struct ws_fidelity_retrieval_arg {
    const ws_retrieval *r;
    ws_embedder *e;
} ws_fidelity_retrieval_arg;
int ws_fidelity_retrieval_gen(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply,
                              ws_error *err);

#endif
