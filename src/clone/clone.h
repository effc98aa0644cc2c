/* The style clone (DESIGN.md §3): training a person's clone from a WhatsApp export into a model
 * directory, and replying as them from that directory.
 *
 * Training (ws_clone_train): parse the export, build pairs for the persona (bursts merged,
 * sessions, up to 8 context turns, last 10% held out, personal data masked), the style profile,
 * a retrieval index over the training contexts (MiniLM when installed, else hashed n-grams),
 * then either a small byte-level model trained from scratch (no base) or a LoRA adapter on a
 * base model, bounded by a time budget, resumable from a checkpoint; finally the fidelity
 * report on the held-out examples and a manifest (model version, hashes, settings, counts).
 *
 * Directory layout (all written atomically file by file, manifest.json last):
 *   manifest.json      format, model version, persona, settings, counts, threshold, file hashes
 *   model/             scratch model: config.json, model.safetensors, tokenizer.json
 *   adapter/           LoRA adapter (PEFT format) when a base model was used
 *   profile.json, profile.txt          style profile (JSON and readable summary)
 *   index.bin, replies.json            retrieval index and the training replies it points at
 *   fidelity.json, fidelity.txt        the fidelity report
 *   checkpoint.safetensors, train_state.json   resumable training state (kept)
 *
 * Replying (ws_clone_open + ws_clone_reply): candidates are the persona's real replies to the
 * nearest training contexts and sampled generations conditioned on the context and retrieved
 * replies; each is scored by the model's token log-probabilities, retrieval similarity and
 * how typical its style features are of the persona; the confidence in [0,1] comes from the
 * log-probabilities and similarity; under the persona's threshold (set on held-out data) the
 * fallback reply is given. The reply is never the incoming message echoed back.
 *
 * Ownership: results are malloc'd and belong to the caller (the *_clear functions). An opened
 * ws_clone is read-only after ws_clone_open: any number of threads may call ws_clone_reply on
 * it at once. Training is single-threaded from the caller's view (the engine uses OpenMP). */
#ifndef WS_CLONE_CLONE_H
#define WS_CLONE_CLONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define WS_CLONE_FORMAT "whatstyle-clone-1"
#define WS_CLONE_DEFAULT_BUDGET_S 90.0
#define WS_CLONE_DEFAULT_MERGES 1024
#define WS_CLONE_MIN_MESSAGES 30  /* persona turns with text needed to train */
#define WS_CLONE_MIN_EXAMPLES 20  /* persona replies to someone else needed to train */
#define WS_CLONE_MAX_MESSAGE 4096 /* bytes of one incoming message used */

typedef int (*ws_clone_progress_fn)(void *arg, double fraction, const char *phase, uint64_t samples);

typedef struct ws_clone_train_opts {
    const char *export_path;
    const char *persona;
    const char *out_dir;           /* created if missing */
    const char *base_model;        /* NULL: small model from scratch; else a model dir (LoRA) */
    double budget_s;               /* whole run; 0 = WS_CLONE_DEFAULT_BUDGET_S */
    const char *mask_rules;        /* rules file (src/style/mask.h); NULL = default rules */
    const char *fallback_text;     /* NULL: the persona's most typical short reply */
    const char *embed_dir;         /* MiniLM dir; NULL = default dir if installed; "none" = hashed */
    uint64_t seed;                 /* 0 = 1 */
    int bpe_merges;                /* scratch model vocabulary (docs/adr/0003): 0 = the default
                                      WS_CLONE_DEFAULT_MERGES byte-pair merges learned from the chat;
                                      N > 0 = N merges; negative = bytes only */
    bool show_progress;            /* progress bar on stderr (when it is a terminal) */
    bool quiet;                    /* no phase lines on stderr */
    ws_clone_progress_fn progress; /* optional; non-zero return cancels */
    void *progress_arg;
    volatile int *cancel;      /* optional; set non-zero to stop (checkpoint kept) */
    double checkpoint_every_s; /* seconds between checkpoints while training (0 = 15) */
} ws_clone_train_opts;

typedef struct ws_clone_train_result {
    char model_version[64];
    uint64_t n_messages, n_examples, n_heldout;
    uint64_t steps, total_steps, tokens;
    double train_s, total_s, tokens_per_s;
    double examples_seen; /* training examples passed through the model (with repeats) */
    bool resumed;
    char *profile_json, *profile_summary;
    char *fidelity_json, *fidelity_summary;
} ws_clone_train_result;

/* Trains into opts->out_dir. Errors: WS_ENOENT (export or base model missing), WS_EEMPTY (empty
 * export), WS_EINVAL (unknown persona: err lists the participants; too few messages: err says
 * the minimum), WS_EFORMAT/WS_EUNSUPPORTED (bad export or base model), WS_EAGAIN (cancelled:
 * the checkpoint is saved and a rerun resumes). On failure *out holds nothing to free. */
int ws_clone_train(const ws_clone_train_opts *opts, ws_clone_train_result *out, ws_error *err);
void ws_clone_train_result_clear(ws_clone_train_result *r);

/* Threads of the neural engine for training and replies: -1 (the default) = automatic (one
 * thread for small models, whose matrices are too small to split; all cores on a base),
 * 0 = all cores, N = N. Process-wide; the CLI sets it (--nn-threads / WS_NN_THREADS) before
 * any training or reply. */
void ws_clone_set_threads(int n);

typedef struct ws_clone ws_clone;

typedef struct ws_clone_turn {
    const char *author; /* NULL or anyone but the persona: someone else */
    const char *text;
} ws_clone_turn;

typedef struct ws_clone_reply_opts {
    int n_samples;              /* generated candidates; 0 = 16 on a base, 3 without */
    int n_retrieved;            /* retrieved candidates; 0 = 6 */
    uint64_t seed;              /* sampling seed; 0 = from the message */
    bool no_fallback;           /* always give the best candidate (fidelity evaluation) */
    const volatile int *cancel; /* optional: once non-zero, the reply stops with WS_EAGAIN */
    double budget_ms;           /* latency budget (0: none): on a base 2 sampled candidates instead of 16
                                 * (unless n_samples is set), and the sampling stops before a step
                                 * would end past the budget; samples not ended by then are dropped
                                 * (none left: the fallback, as for a low confidence) */
} ws_clone_reply_opts;

typedef enum { WS_CLONE_SRC_RETRIEVED, WS_CLONE_SRC_GENERATED, WS_CLONE_SRC_FALLBACK } ws_clone_source;

typedef struct ws_clone_answer {
    char *reply;
    double confidence; /* in [0,1] */
    bool fallback;
    ws_clone_source source;
    double processing_ms;
} ws_clone_answer;

/* Opens a trained directory: checks the manifest and the hashes of the files it lists.
 * Errors: WS_ENOENT (no manifest: not a model directory), WS_EFORMAT (corrupted: hash
 * mismatch, bad JSON, bad model files), WS_EUNSUPPORTED (another format version), and
 * WS_ENOENT for a base model or embedding model that has gone missing. */
int ws_clone_open(const char *dir, ws_clone **out, ws_error *err);
void ws_clone_free(ws_clone *c); /* NULL is a no-op */

/* Tokens sampled by every reply in this process since start (for the metrics). Thread-safe. */
uint64_t ws_clone_tokens_generated(void);

/* Replies to message (after the context turns, oldest first). opts may be NULL. */
int ws_clone_reply(const ws_clone *c, const char *message, const ws_clone_turn *context, size_t n_context,
                   const ws_clone_reply_opts *opts, ws_clone_answer *out, ws_error *err);
void ws_clone_answer_clear(ws_clone_answer *r);

/* One piece of a streamed reply: len bytes of whole UTF-8 characters (not NUL-terminated).
 * Return non-zero to stop the reply (the client went away, a deadline passed). */
typedef int (*ws_clone_piece_fn)(void *arg, const char *piece, size_t len);

/* Replies by generating one candidate on the model (the base + adapter, or the model from
 * scratch) and calling on_piece with its text as it is decoded (reply_stream.c). The pieces
 * carry no leading or trailing white space of the reply: they concatenate to out->reply unless
 * out->fallback is set, where out->reply is the persona's fallback (the generation was under
 * the threshold or not a whole turn: cut off, empty, an echo, a stutter, invalid UTF-8) and
 * replaces what was streamed.
 * Confidence: 0.7 exp(mean token log-prob) + 0.3 x the similarity a generated candidate gets in
 * ws_clone_reply (docs/clone.md). opts->n_samples and n_retrieved are ignored. Errors: as
 * ws_clone_reply; WS_EAGAIN when on_piece returned non-zero or opts->cancel was raised. */
int ws_clone_reply_stream(const ws_clone *c, const char *message, const ws_clone_turn *context,
                          size_t n_context, const ws_clone_reply_opts *opts, ws_clone_piece_fn on_piece,
                          void *arg, ws_clone_answer *out, ws_error *err);

/* A context given by a user: a JSON array of {"author", "text"} or "Name: text" lines (untrusted
 * input: capped at WS_CLONE_CONTEXT_BYTES, the latest WS_CLONE_CONTEXT_MAX turns kept). *out is
 * malloc'd (ws_clone_context_free). Errors: WS_ETOOBIG, WS_EFORMAT. */
#define WS_CLONE_CONTEXT_BYTES (1u << 20)
#define WS_CLONE_CONTEXT_MAX 64
int ws_clone_context_parse(const char *data, size_t len, ws_clone_turn **out, size_t *n_out, ws_error *err);
void ws_clone_context_free(ws_clone_turn *t, size_t n);

const char *ws_clone_model_version(const ws_clone *c);
const char *ws_clone_persona(const ws_clone *c);
const char *ws_clone_profile_json(const ws_clone *c);
const char *ws_clone_profile_summary(const ws_clone *c);
double ws_clone_threshold(const ws_clone *c);
const char *ws_clone_fallback_text(const ws_clone *c);
bool ws_clone_has_base(const ws_clone *c);

#endif
