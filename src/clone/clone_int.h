/* Internals shared by the clone's training, reply and fidelity code: the turn format the
 * language model sees, per-reply style features, the byte-level tokenizer file, small file
 * helpers, and the opened clone itself. */
#ifndef WS_CLONE_CLONE_INT_H
#define WS_CLONE_CLONE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clone/clone.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/strset.h"
#include "nn/base.h"
#include "nn/generate.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "nn/tokenizer.h"
#include "style/embed.h"
#include "style/pairs.h"
#include "style/vindex.h"

/* The clone's private functions shared between its files are named ws__clone_* (every symbol
 * the library exports starts with ws_, tools/check-symbols.sh). */

/* ---- the byte-level vocabulary of a model trained from scratch ----
 * ids 0..255 are the bytes themselves; then three special tokens. */
#define CLONE_TOK_END 256   /* "<|endoftext|>": ends every turn */
#define CLONE_TOK_ME 257    /* "<|me|>": starts a persona turn */
#define CLONE_TOK_OTHER 258 /* "<|other|>": starts someone else's turn */
#define CLONE_TOK_PAD 259
#define CLONE_VOCAB 260

/* Writes the tokenizer.json (a standard byte-level BPE file with no merges) to path. */
int ws__clone_write_byte_tokenizer(const char *path, ws_error *err);
/* The same vocabulary plus up to n_merges byte-pair merges learned from texts (ids 260..). */
int ws__clone_write_bpe_tokenizer(const char *path, const char *const *texts, size_t n_texts, size_t n_merges,
                                  ws_error *err);

/* How turns become token ids: prefix ids, text ids, end id; or, on a base with a chat template
 * (chat), one example = system + user message (the context, "Name: text" lines) + assistant
 * message (the reply), as ws__clone_chat_prompt builds it. */
typedef struct clone_fmt {
    bool bytes;              /* byte-level model: text ids are the bytes */
    bool chat;               /* the base's chat template */
    const ws_base *base;     /* chat: the base (its template) */
    char persona[128];       /* chat: the name the system message gives */
    const ws_tokenizer *tok; /* otherwise encode with this (no special tokens added) */
    int32_t me[16], other[16];
    int n_me, n_other;
    int32_t end;
} clone_fmt;

/* A growable array of token ids. */
typedef struct ibuf {
    int32_t *v;
    size_t n, cap;
} ibuf;

void ws__clone_ibuf_push(ibuf *b, int32_t x);
void ws__clone_ibuf_free(ibuf *b);

/* Sets up fmt for a byte-level model (tok NULL) or a base model's tokenizer. */
int ws__clone_fmt_init(clone_fmt *f, const ws_tokenizer *tok, ws_error *err);
/* Appends the ids of text cut to at most max_bytes (from the end when tail, at a UTF-8
 * boundary); returns how many ids. */
size_t ws__clone_fmt_text(const clone_fmt *f, const char *text, size_t max_bytes, bool tail, ibuf *out);
/* Appends one whole turn: prefix, text, end. Returns the index where the text starts. */
size_t ws__clone_fmt_turn(const clone_fmt *f, bool me, const char *text, size_t max_bytes, bool tail,
                          ibuf *out);

/* Chat format on a base with a chat template: f->tok = the base's, f->end = the template's end
 * of message token. */
int ws__clone_fmt_init_chat(clone_fmt *f, const ws_base *b, const char *persona, ws_error *err);
/* The ids of the prompt that asks the persona to answer the last of the n turns (authors[i]
 * NULL = someone else, "Friend"): system message, the turns as the user message (at most
 * CLONE_CHAT_TURNS, each cut to CLONE_CHAT_TURN_BYTES from its end), the assistant header.
 * The turns' text can never spell a special token. */
void ws__clone_chat_prompt(const clone_fmt *f, const char *const *authors, const char *const *texts, size_t n,
                           ibuf *out);
/* The system message of the chat prompt, naming the persona (into buf of n bytes). */
void ws__clone_chat_system(const clone_fmt *f, char *buf, size_t n);
#define CLONE_CHAT_TURNS 4
#define CLONE_CHAT_TURN_BYTES 160

/* Byte caps of the turns the model sees (training and replying alike). */
#define CLONE_CTX_BYTES 96
#define CLONE_REPLY_BYTES 160
#define CLONE_CTX_TURNS 3

/* ---- per-reply style features ---- */
#define CLONE_SF_N 10
/* 0/1 features of one reply: all lower case, starts upper case, ends with a full stop, emoji,
 * "!!", '?', a word in capitals, over 60 characters, a comma, several lines. */
void ws__clone_style_feats(const char *s, double out[CLONE_SF_N]);
/* Means of the features over texts (the person's rates). */
void ws__clone_style_rates(const char *const *texts, size_t n, double rates[CLONE_SF_N]);
/* How typical s is of rates: the geometric mean of the per-feature likelihoods, in (0,1]. */
double ws__clone_style_fit(const char *s, const double rates[CLONE_SF_N]);
/* A generation written the persona's way: when c->lower_case, text (malloc'd; taken) comes back
 * with its capitalised words in lower case (ws_text_lower_capitalised); otherwise text itself. */
char *ws__clone_in_their_case(const ws_clone *c, char *text);

/* Lower-cased, trimmed comparison used to refuse echoes. */
bool ws__clone_is_echo(const char *reply, const char *message);
/* True when words repeat back to back in runs of two or three (a small model's loop; reply.c). */
bool ws__clone_stutters(const char *s);
/* The sampling options of a reply at the given temperature (top-k 40, top-p 0.95); on a
 * pretrained chat base also the repetition penalty over the reply so far, with newlines and
 * one-byte pieces exempt (c->repeat_exempt; a model from scratch: none, unmeasured). reply.c */
void ws__clone_sample_opts(const ws_clone *c, float temperature, ws_gen_opts *o);
/* The ids the repetition penalty leaves alone: a malloc'd [vocab] mask, 1 for a piece of fewer
 * than two bytes or with a newline (the caller frees it). */
uint8_t *ws__clone_repeat_exempt_new(const ws_tokenizer *tok, int vocab);
/* Text with leading/trailing white space removed (malloc'd). */
char *ws__clone_trim(const char *s);

/* ---- the candidate guard (guard.c) ----
 * A candidate that leaks the prompt instead of answering is refused: it starts with a speaker
 * label ("Friend: ...", "Maya: ...", a capitalised "Name:"; or a known name starts a later
 * line), repeats the system message (two of its word trigrams, or one that is half of them),
 * mostly echoes the message (the same words, or at least 4 words and 60% of its words are the
 * message's in order, or a message of 4+ words quoted whole), opens with an echo of it (a first
 * bubble of several that is 60% the message's words in order, or a one-bubble candidate made only
 * of the message's words), or mostly echoes a turn of the context (the persona's own turns only
 * from 4 words: repeating "haha" is a style), or is one bracketed stage direction ("(no
 * response)", "[image]"). */
typedef enum {
    CLONE_GUARD_OK = 0,
    CLONE_GUARD_LABEL,
    CLONE_GUARD_SYSTEM,
    CLONE_GUARD_ECHO,
    CLONE_GUARD_CONTEXT,
    CLONE_GUARD_META,
} clone_guard_why;

typedef struct clone_guard {
    const char *persona;            /* borrowed; NULL: none */
    const char *system;             /* the system message the model read; NULL: none */
    const char *message;            /* the incoming message; NULL: none */
    const char *const *ctx_texts;   /* the context turns (n_ctx; borrowed, entries may be NULL) */
    const char *const *ctx_authors; /* their authors (NULL entries: someone else); may be NULL */
    size_t n_ctx;
    char sys_buf[256]; /* ws__clone_guard_set: the system message is kept here */
    const char **own;  /* ws__clone_guard_set: the arrays it allocated (freed by clear) */
} clone_guard;

clone_guard_why ws__clone_guard_check(const clone_guard *g, const char *cand);
/* For a reply being streamed: 1 when its text so far starts with a speaker label, 0 when it
 * does not, -1 when that is not known yet (hold the text back); final: no more text comes. */
int ws__clone_guard_label_start(const clone_guard *g, const char *text, bool final);
/* The share of cand's words that are the message's, in the message's order (the LCS of the two
 * word lists over cand's words; 0 when cand has none): the ranking's echo term (reply.c). */
double ws__clone_echo_share(const char *cand, const char *message);
const char *ws__clone_guard_name(clone_guard_why why);
/* Sets g up for a reply of c to message after the context (all borrowed until
 * ws__clone_guard_clear). */
void ws__clone_guard_set(clone_guard *g, const ws_clone *c, const char *message, const ws_clone_turn *context,
                         size_t n_context);
void ws__clone_guard_clear(clone_guard *g);

bool ws__clone_exists(const char *path);
char *ws__clone_path(const char *dir, const char *name); /* malloc'd dir/name */

/* ---- the KV caches kept between replies (prefix.c) ---- */
typedef struct clone_prefix clone_prefix;
clone_prefix *ws__clone_prefix_new(void);
void ws__clone_prefix_free(clone_prefix *p);
/* Runs prompt through c's model (and adapter) into *kc (malloc'd; the caller owns it, and hands
 * it back with ws__clone_prefix_put or frees it), with room more positions after it; last
 * (vocab floats) gets the logits after the prompt. Only the part past the longest common
 * prefix with the prompt last put back runs (all of it without c->prefix). */
int ws__clone_prefix_run(const ws_clone *c, const ibuf *prompt, int room, ws_kv_cache **kc, float *last,
                         ws_error *err);
/* Keeps kc (ownership passes to the clone) as the cache of prompt, whose logits are last. */
void ws__clone_prefix_put(const ws_clone *c, ws_kv_cache *kc, const ibuf *prompt, const float *last);
/* The cache and last logits of the chat prompt with no conversation (ws__clone_chat_prompt with
 * no turns), run on first use; owned by the clone, read-only. WS_EINVAL without c->prefix. */
int ws__clone_prefix_empty(const ws_clone *c, const ws_kv_cache **kc0, const float **last0, ws_error *err);
/* One sequence sampled with guidance (ws_gen_opts.guidance): its tokens also run after the
 * prompt with no conversation, in the same batched pass. ws__clone_guided_begin sets it up for
 * cache (the sequence's) when o->guidance > 0 and points o->guidance_logits at its logits (else
 * leaves g inactive); ws__clone_guided_next runs token id into cache (logits: its logits) and,
 * when active, into the unconditioned cache; ws__clone_guided_end frees what begin took. */
typedef struct clone_guided {
    ws_kv_cache *kc0; /* NULL: inactive */
    float *logits0, *rows;
} clone_guided;
int ws__clone_guided_begin(const ws_clone *c, const ws_kv_cache *cache, ws_gen_opts *o, clone_guided *g,
                           ws_error *err);
int ws__clone_guided_next(const ws_clone *c, ws_kv_cache *cache, clone_guided *g, int32_t id, float *logits,
                          ws_error *err);
void ws__clone_guided_end(clone_guided *g);

/* ---- the opened clone ---- */
/* True when every word of s (lower-cased) is one the persona wrote in training. */
bool ws__clone_words_known(const ws_clone *c, const char *s);

struct ws_clone {
    char *dir, *persona, *model_version, *fallback, *profile_json, *profile_summary;
    char *kind; /* "scratch" or "lora" */
    double threshold;
    ws_model *model;   /* the base's when base is set (not owned then) */
    ws_lora *lora;     /* NULL for a scratch model */
    ws_tokenizer *tok; /* the base's when base is set (not owned then) */
    ws_base *base;     /* the shared base (ws_base_acquire) of a LoRA clone */
    clone_fmt fmt;
    ws_embedder *emb;
    ws_vindex *ix;
    char **replies, **keys; /* training replies and their context keys, by index id */
    size_t n_replies;
    ws_strset vocab; /* lower-cased words of the training replies */
    double rates[CLONE_SF_N];
    bool lower_case; /* the persona writes in lower case: a generation's capitalised words are too */
    int gen_max;     /* longest generation, in tokens */
    double fit_gate; /* least style fit a generation needs (25th pct of real replies) */
    char *base_dir;
    clone_prefix *prefix;   /* on a base: the caches kept between replies (owned) */
    uint8_t *repeat_exempt; /* on a chat base: ws__clone_repeat_exempt_new (owned) */
};

/* The engine threads set by ws_clone_set_threads (-1 = automatic). */
int ws__clone_threads(void);

/* Opens the parts of a clone directory named by an already parsed manifest (used by
 * ws_clone_open and by training before the final manifest exists). */
int ws__clone_load(ws_clone *c, const char *dir, const char *kind, const char *base_dir, const char *base_id,
                   const char *persona, const char *embedder, ws_error *err);

/* The retrieval key of a context: its last CLONE_CTX_TURNS turns' texts, one per line. */
void ws__clone_context_key(const char *const *texts, size_t n, ws_buf *out);

/* Mean log-probability per token of cand (ids, end included) under the model with adapter lora
 * (NULL: the base alone) after the prompt whose last logits are in last_logits and whose tokens
 * fill cache up to prompt_len. */
int ws__clone_score_ids(const ws_clone *c, const ws_lora *lora, ws_kv_cache *cache, int prompt_len,
                        const float *last_logits, const int32_t *ids, size_t n, double *mean_lp,
                        ws_error *err);

/* What the model reads before the persona's reply to a context (the persona's turn prefix
 * included), and the ids of a reply as it is scored (its text and the end of the turn). */
void ws__clone_reply_prompt(const ws_clone *c, const char *const *ctx, const bool *ctx_me, size_t n_ctx,
                            ibuf *out);
void ws__clone_reply_ids(const ws_clone *c, const char *reply, ibuf *out);

/* Scores replies after a prompt run once: the prompt's KV cache and last logits are kept while
 * the same prompt comes again (R10@1 scores ten replies per context). Zero-initialise with c
 * and lora (NULL: the base alone) set; ws__clone_scorer_free releases it. */
typedef struct clone_scorer {
    const ws_clone *c;
    const ws_lora *lora;
    ws_kv_cache *kc;
    float *last;
    ibuf prompt;
} clone_scorer;
int ws__clone_scorer_prompt(clone_scorer *s, const ibuf *prompt, ws_error *err);
/* Summed negative log-likelihood (nats) of ids after the current prompt. */
int ws__clone_scorer_reply(clone_scorer *s, const int32_t *ids, size_t n, double *nll, ws_error *err);
void ws__clone_scorer_free(clone_scorer *s);

/* Builds the prompt of a reply: retrieved replies as earlier persona turns, the context turns,
 * the message, then the persona's prefix. */
void ws__clone_build_prompt(const ws_clone *c, const char *const *retrieved, size_t n_retrieved,
                            const ws_clone_turn *context, size_t n_context, const char *message, ibuf *out);

/* ---- fidelity ---- */
typedef struct clone_fidelity {
    char *json, *summary;
    double threshold;
    bool beats_baselines;
} clone_fidelity;

/* Evaluates c on the held-out examples of p (at most max_eval; generating and scoring stop
 * after deadline_s of ws_now_s once 5 are done) through ws_fidelity_evaluate (fidelity.c). */
int ws__clone_fidelity_run(const ws_clone *c, const ws_pairs *p, size_t max_eval, double deadline_s,
                           uint64_t seed, clone_fidelity *out, ws_error *err);
void ws__clone_fidelity_clear(clone_fidelity *f);

#endif
