/* Replying as the persona (DESIGN.md §3.5): retrieval and generation candidates (on a base
 * sampled with classifier-free guidance), scored by the model's log-probabilities (with the
 * context's prompt run once), ranked with style and, on a base, pointwise mutual information and
 * the cosine to the message; the confidence and the fallback. Also the scorers the fidelity
 * report uses. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/mem.h"
#include "core/trace.h"
#include "core/progress.h"
#include "nn/generate.h"
#include "nn/ops.h"
#include "style/text.h"

#define PROMPT_MAX 384
#define GEN_MAX_BYTES CLONE_REPLY_BYTES
#define GEN_MAX_TOKENS 48
#define RANK_TEMP 0.4
/* candidate score = mean token log-prob + STYLE_WEIGHT log(style fit) + SIM_WEIGHT similarity */
#define STYLE_WEIGHT 3.0
#define SIM_WEIGHT 2.0
/* On a pretrained base (chat format) the adapted model writes the replies: a real reply of the
 * persona is a candidate only when its context is nearly the same as this one (an old reply to
 * another message is what made clones answer beside the point), and style weighs less in the
 * ranking because the adapter already carries it. */
#define CHAT_RETRIEVE_SIM 0.85
#define CHAT_STYLE_WEIGHT 1.0
/* The ranking's pointwise mutual information (log p(reply | conversation) - log p(reply | none))
 * counts per token (CHAT_PMI_WEIGHT): it prefers replies the conversation makes likely over
 * replies likely anywhere ("haha"). It used to count in total as well (0.3 x tokens x the
 * mean), against two-token answers to anything, before the cosine and the guidance below
 * carried relevance; with them that term only made replies long: Sam's clone wrote 1.7x his
 * length and failed its style distance (0.088, bound 0.085; without the term 0.048, Jordan's
 * 0.045 -> 0.048, docs/clone.md "Classifier-free guidance"). */
/* A reply on a base samples CHAT_SAMPLES candidates and draws among them at CHAT_RANK_TEMP:
 * held-out topic check (set B's adapters, 12 draws, on / off the question's topic of 16), 8
 * samples at 0.4: Sam 10.3 / 1.8, Jordan 13.5 / 1.25; 16 at 0.2 (cosine x16): 11.3 / 1.5 and
 * 14.5 / 0.92; 24 at 0.2: 10.8 / 2.5 and 14.3 / 1.4 (more candidates, more an off-topic one
 * the ranking takes for an answer). 16 cost a ranked reply p50 376 -> 667 ms. A fresh pair of
 * adapters scored 11.2 / 3.2 and 10.0 / 4.25 with 16: adapters vary a lot between trainings, and
 * the old setting was not run on that pair (docs/clone.md "Sixteen samples"). */
#define CHAT_SAMPLES 16
#define CHAT_SAMPLES_BUDGET 2 /* with a latency budget */
#define CHAT_RANK_TEMP 0.2
#define CHAT_PMI_WEIGHT 1.0
/* The ranking also counts the embedder's cosine of candidate and message, x CHAT_COSINE_WEIGHT:
 * of a reply's candidates many land on another topic while one on the question's topic exists
 * for 13-15 of the 16 questions, and the model's own terms pick it only half the time. Held-out
 * topic check (16-sample dumps of every reply judged, the 8-candidate ranking's expected
 * counts): x8 took Sam from 8.3 / 3.3 on / off of 16 to 9.3 / 3.5 and Jordan from 9.3 / 3.0
 * to 11.3 / 1.8; x12 with the guidance and without the total PMI, 10.5 / 2.7 and 12.0 / 2.0
 * against 10.7 / 3.6 and 10.6 / 2.6 at x8 with it; +50 ms on a ranked reply. x16 with 16
 * samples: 11.3 / 1.5 and 14.5 / 0.92 on the real check, against 10.9 / 1.6 and 14.6 / 1.0 at x12. */
#define CHAT_COSINE_WEIGHT 16.0
/* The cosine above also rewards a candidate for repeating the message's words, so the ranking
 * takes CHAT_ECHO_WEIGHT x the share of the candidate's words that are the message's (in its
 * order) off the score: the guard refuses outright echoes, this prefers, among what is left, the
 * candidate that says something of its own. Held-out topic check by blind readers (8 draws, on
 * the question's topic of 16, three trainings; docs/clone.md "Blind readers"), with the guard:
 * Sam 14.1 / 11.75 / 13.1 -> 14.5 / 12.5 / 13.1, Jordan 15.4 / 14.9 / 15.75 -> 14.75 / 15.5 /
 * 16.0; off it 0-0.25 in 16 before and after but Jordan's seed 1, 0.12 -> 0.62. A small gain. */
#define CHAT_ECHO_WEIGHT 8.0
/* A word piece the sample already wrote gets its logit divided (or a negative one multiplied) by
 * REPEAT_PENALTY, once however often it came: a small model otherwise says the same words again
 * ("ok ok", "the tablets ... the tablets"), and its replies came out poorer in vocabulary than the
 * person's. Newlines (the person's bubbles) and one-byte pieces are exempt. On the held-out
 * report of the two clones of tests/fixtures/eval (same adapters, only this changed): style
 * distance 0.105 -> 0.078 (Sam; bound 0.085) and 0.066 -> 0.045 (Jordan; bound 0.063), the
 * vocabulary part 0.399 -> ~0.2 for Sam; 1.2 and 1.3 cost Jordan the verifier criterion. The
 * penalty only steers the sampling (ws_sample): the ranking and the confidence read the model's
 * own log-probabilities. */
#define REPEAT_PENALTY 1.15f
/* Classifier-free guidance of the samples (ws_gen_opts.guidance): each step is drawn from
 * l + CHAT_GUIDANCE (l - l0), l0 being the same tokens' logits after the prompt without the
 * conversation, which the PMI term already runs beside every sample; it amplifies what the
 * conversation changes, so the adapted model answers the message rather than writing a likely
 * reply of the person to anything. Held-out topic check (same adapters, 16 samples a reply
 * dumped and judged, the 8-candidate ranking averaged over both halves): on-topic candidates
 * 25% -> 42% (Sam) and 39% -> 51% (Jordan); the replies on / off of 16 from 6.2 / 5.4 to
 * 10.7 / 3.6 (Sam) and 9.4 / 3.7 to 10.6 / 2.6 (Jordan); 0.5 and 1.5 did as well within the
 * noise, but 1.5 failed Jordan's verifier. Both fidelity reports PASS at 1.0, Sam's style
 * distance 0.101 -> 0.081 (docs/clone.md, "Classifier-free guidance"). The streamed reply
 * (reply_stream.c) is guided alike. */
#define CHAT_GUIDANCE 1.0f

/* ---- scoring ---- */
int ws__clone_score_ids(const ws_clone *c, const ws_lora *lora, ws_kv_cache *cache, int prompt_len,
                        const float *last_logits, const int32_t *ids, size_t n, double *mean_lp,
                        ws_error *err)
{
    int V = c->model->cfg.vocab_size;
    ws_kv_cache_truncate(cache, prompt_len);
    double lp = ws_logprob(last_logits, V, ids[0]);
    if (n > 1) {
        float *all = ws_xmalloc((n - 1) * (size_t)V * sizeof *all);
        int rc = ws_model_infer(c->model, lora, cache, ids, (int)n - 1, NULL, all, err);
        if (rc) {
            free(all);
            return rc;
        }
        for (size_t j = 1; j < n; j++)
            lp += ws_logprob(all + (j - 1) * (size_t)V, V, ids[j]);
        free(all);
    }
    *mean_lp = lp / (double)n;
    return 0;
}

void ws__clone_build_prompt(const ws_clone *c, const char *const *retrieved, size_t n_retrieved,
                            const ws_clone_turn *context, size_t n_context, const char *message, ibuf *out)
{
    ibuf t = {0};
    if (c->fmt.chat) { /* the base's chat template: the turns, then the message, as the user message */
        const char **authors = ws_xcalloc(n_context + 1, sizeof *authors),
                   **texts = ws_xcalloc(n_context + 1, sizeof *texts);
        for (size_t i = 0; i < n_context; i++) {
            bool me = context[i].author && c->persona && !strcmp(context[i].author, c->persona);
            authors[i] = me ? c->persona : context[i].author;
            texts[i] = context[i].text ? context[i].text : "";
        }
        texts[n_context] = message;
        ws__clone_chat_prompt(&c->fmt, authors, texts, n_context + 1, out);
        free(authors);
        free(texts);
        return;
    }
    for (size_t i = 0; i < n_retrieved; i++)
        ws__clone_fmt_turn(&c->fmt, true, retrieved[i], CLONE_REPLY_BYTES, false, &t);
    size_t first = n_context > CLONE_CTX_TURNS - 1 ? n_context - (CLONE_CTX_TURNS - 1) : 0;
    for (size_t i = first; i < n_context; i++) {
        bool me = context[i].author && c->persona && !strcmp(context[i].author, c->persona);
        ws__clone_fmt_turn(&c->fmt, me, context[i].text ? context[i].text : "", CLONE_CTX_BYTES, true, &t);
    }
    ws__clone_fmt_turn(&c->fmt, false, message, CLONE_CTX_BYTES, true, &t);
    for (int i = 0; i < c->fmt.n_me; i++)
        ws__clone_ibuf_push(&t, c->fmt.me[i]);
    size_t from = t.n > PROMPT_MAX ? t.n - PROMPT_MAX : 0;
    for (size_t i = from; i < t.n; i++)
        ws__clone_ibuf_push(out, t.v[i]);
    ws__clone_ibuf_free(&t);
}

typedef struct cand {
    char *text;
    double lp, lp_any, sim, fit, score; /* lp_any: without the conversation (chat format) */
    double cos;                         /* chat format: the embedder's cosine with the message */
    bool have_any;                      /* lp_any is set (scored while it was sampled) */
    ws_clone_source src;
} cand;

/* Chat format: each candidate's mean log-probability after a prompt with no conversation, so
 * the ranking can prefer replies the conversation makes likely over replies likely anywhere
 * ("no", "haha"): pointwise mutual information, the usual cure for generic answers. */
static int score_without_context(const ws_clone *c, cand *cs, size_t nc, ws_error *err)
{
    ibuf ids = {0};
    const ws_kv_cache *kc0 = NULL;
    const float *last0 = NULL;
    ws_kv_cache *kc = NULL;
    int rc = 0;
    for (size_t i = 0; i < nc && !rc; i++) { /* the generations were scored as they were sampled */
        if (cs[i].have_any)
            continue;
        if (!kc && !(rc = ws__clone_prefix_empty(c, &kc0, &last0, err)))
            kc = ws_kv_cache_dup_room(c->model, kc0, ws_kv_cache_len(kc0) + CLONE_REPLY_BYTES + 8);
        ids.n = 0;
        ws__clone_reply_ids(c, cs[i].text, &ids);
        if (!rc)
            rc = ws__clone_score_ids(c, c->lora, kc, ws_kv_cache_len(kc0), last0, ids.v, ids.n, &cs[i].lp_any,
                                     err);
    }
    ws_kv_cache_free(kc);
    ws__clone_ibuf_free(&ids);
    return rc;
}

static bool have_cand(const cand *cs, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cs[i].text, s))
            return true;
    return false;
}

static bool is_turn_token(const ws_clone *c, int32_t id)
{
    if (c->fmt.bytes)
        return id >= CLONE_TOK_END;
    return ws_tokenizer_is_special(c->tok, id) || id == c->fmt.me[0] || id == c->fmt.other[0];
}

/* At each space of a byte-level model's sample: false when the word just finished is one the
 * persona never wrote (the sample is given up). */
static bool last_word_known(const ws_clone *c, const ibuf *ids)
{
    size_t st = ids->n - 1;
    while (st > 0 && ids->v[st - 1] != ' ' && ids->v[st - 1] != '\n')
        st--;
    char word[CLONE_REPLY_BYTES + 1];
    size_t wl = 0;
    for (size_t j = st; j + 1 < ids->n && wl < CLONE_REPLY_BYTES; j++)
        word[wl++] = (char)ids->v[j];
    word[wl] = '\0';
    return !wl || ws__clone_words_known(c, word);
}

typedef struct sample {
    ibuf ids;
    double lp, lp0; /* lp0: the same tokens after the prompt without the conversation */
    bool alive, ended;
    ws_kv_cache *kc, *kc0;
} sample;

static _Atomic uint64_t tokens_generated;

uint64_t ws_clone_tokens_generated(void)
{
    return atomic_load_explicit(&tokens_generated, memory_order_relaxed);
}

uint8_t *ws__clone_repeat_exempt_new(const ws_tokenizer *tok, int vocab)
{
    uint8_t *m = ws_xcalloc((size_t)vocab, 1);
    for (int t = 0; t < vocab; t++) {
        const char *b;
        size_t bl;
        m[t] = ws_tokenizer_token_bytes(tok, t, &b, &bl) || bl < 2 || memchr(b, '\n', bl);
    }
    return m;
}

void ws__clone_sample_opts(const ws_clone *c, float temperature, ws_gen_opts *o)
{
    ws_gen_opts_init(o);
    o->temperature = temperature;
    o->top_k = 40;
    o->top_p = 0.95f;
    if (c->fmt.chat) {
        o->repetition_penalty = REPEAT_PENALTY;
        o->repetition_exempt = c->repeat_exempt;
        o->guidance = CHAT_GUIDANCE; /* where the caller gives the unconditioned logits */
    }
}

/* One sampling step of sample s from its logits (logits0: the same step without the
 * conversation, or NULL): false when the sample stops here. */
static bool sample_step(const ws_clone *c, sample *s, float *logits, const float *logits0,
                        const ws_gen_opts *o, uint64_t *rng, int32_t *next)
{
    float l;
    int V = c->model->cfg.vocab_size;
    ws_gen_opts step = *o;
    step.guidance_logits = logits0;
    int32_t id = ws_sample(logits, V, &step, s->ids.v, (int)s->ids.n, rng, &l);
    s->lp += l;
    if (logits0)
        s->lp0 += ws_logprob(logits0, V, id);
    if (id == c->fmt.end) {
        s->ended = true;
        return false;
    }
    if (is_turn_token(c, id))
        return false;
    ws__clone_ibuf_push(&s->ids, id);
    if (c->fmt.bytes && (id == ' ' || id == '\n') && s->ids.n > 1 && !last_word_known(c, &s->ids))
        return false;
    if ((int)s->ids.n >= c->gen_max)
        return false;
    *next = id;
    return true;
}

/* A batch of samples: each sequence's cache and logits, and on a chat base the same tokens
 * after the prompt without the conversation (the ranking's PMI term) in the same passes. */
typedef struct sample_set {
    int n, V;
    sample *ss;
    float *logits, *logits0, *bl; /* [n][V] each; bl [2n][V]: one batched pass */
    ws_kv_cache **live;
    int32_t *next;
    int *who;
} sample_set;

static void set_init(sample_set *st, const ws_clone *c, ws_kv_cache *cache, const float *last,
                     const ws_kv_cache *kc0, const float *last0, int n)
{
    int V = c->model->cfg.vocab_size;
    *st = (sample_set){.n = n, .V = V};
    st->ss = ws_xcalloc((size_t)n, sizeof *st->ss);
    st->logits = ws_xmalloc((size_t)n * V * sizeof *st->logits);
    st->logits0 = kc0 ? ws_xmalloc((size_t)n * V * sizeof *st->logits0) : NULL;
    st->bl = ws_xmalloc(2 * (size_t)n * V * sizeof *st->bl);
    st->live = ws_xcalloc(2 * (size_t)n, sizeof *st->live);
    st->next = ws_xcalloc(2 * (size_t)n, sizeof *st->next);
    st->who = ws_xcalloc((size_t)n, sizeof *st->who);
    for (int i = 0; i < n; i++) {
        st->ss[i].alive = true;
        st->ss[i].kc = ws_kv_cache_dup(c->model, cache);
        memcpy(st->logits + (size_t)i * V, last, (size_t)V * sizeof *last);
        if (kc0) { /* all of one size, to share the batched pass */
            st->ss[i].kc0 = ws_kv_cache_dup_room(c->model, kc0, ws_kv_cache_room(cache));
            memcpy(st->logits0 + (size_t)i * V, last0, (size_t)V * sizeof *last0);
        }
    }
}

static void set_free(sample_set *st)
{
    for (int i = 0; i < st->n; i++) {
        ws__clone_ibuf_free(&st->ss[i].ids);
        ws_kv_cache_free(st->ss[i].kc);
        ws_kv_cache_free(st->ss[i].kc0);
    }
    free(st->ss);
    free(st->logits);
    free(st->logits0);
    free(st->bl);
    free(st->live);
    free(st->next);
    free(st->who);
}

/* One step of every live sample, then one batched pass; *done when none is left. */
static int set_step(const ws_clone *c, sample_set *st, const ws_gen_opts *o, uint64_t *rng, bool *done,
                    ws_error *err)
{
    int k = 0, V = st->V;
    size_t row = (size_t)V * sizeof *st->bl;
    for (int i = 0; i < st->n; i++) {
        sample *s = &st->ss[i];
        if (!s->alive)
            continue;
        s->alive = sample_step(c, s, st->logits + (size_t)i * V,
                               st->logits0 ? st->logits0 + (size_t)i * V : NULL, o, rng, &st->next[k]);
        if (s->alive)
            st->live[k] = s->kc, st->who[k++] = i;
    }
    *done = !k;
    if (!k)
        return 0;
    int rows = k;
    if (st->logits0) {
        for (int j = 0; j < k; j++)
            st->live[k + j] = st->ss[st->who[j]].kc0, st->next[k + j] = st->next[j];
        rows = 2 * k;
    }
    int rc = ws_model_infer_batch(c->model, c->lora, st->live, st->next, rows, st->bl, err);
    for (int j = 0; j < k && !rc; j++) {
        memcpy(st->logits + (size_t)st->who[j] * V, st->bl + (size_t)j * V, row);
        if (st->logits0)
            memcpy(st->logits0 + (size_t)st->who[j] * V, st->bl + (size_t)(k + j) * V, row);
    }
    return rc;
}

/* True when half the samples have ended and the rest already ran past twice the longest of
 * them: they are given up (a step costs as much for one sample as for four, and a reply that
 * long is rarely the one chosen). */
static bool straggling(const sample_set *st, int step)
{
    int ended = 0;
    size_t longest = 0;
    for (int i = 0; i < st->n; i++)
        if (st->ss[i].ended) {
            ended++;
            longest = st->ss[i].ids.n > longest ? st->ss[i].ids.n : longest;
        }
    return ended > 0 && 2 * ended >= st->n && (size_t)step >= 2 * longest + 4;
}

/* The longest generation of a chat base, in tokens: a little past the persona's long replies
 * (c->gen_max is in bytes; a token of chat text is ~3 bytes). */
static int chat_max_tokens(const ws_clone *c)
{
    int n = c->gen_max / 3 + 8;
    return n < 16 ? 16 : n > GEN_MAX_TOKENS ? GEN_MAX_TOKENS : n;
}

/* One sampled continuation: its text (NULL when it ran into the length cap or a turn marker;
 * owned by whoever takes it), its mean log-probability over n_tokens (the end of turn included)
 * and, with a prompt without the conversation, the same tokens' mean after that (mean_lp0). */
typedef struct sample_out {
    char *text;
    double mean_lp, mean_lp0;
    int n_tokens;
} sample_out;

/* Samples n continuations of the prompt (in cache up to plen, last logits given) side by side,
 * one batched pass per step, into out[0..n); kc0 is the prompt without the conversation (last0
 * its logits), or NULL. */
static int sample_batch(const ws_clone *c, ws_kv_cache *cache, int plen, const float *last_logits,
                        const ws_kv_cache *kc0, const float *last0, uint64_t *rng, int n, sample_out *out,
                        const volatile int *cancel, double deadline, ws_error *err)
{
    int rc = 0, maxn = c->fmt.bytes ? c->gen_max + 1 : chat_max_tokens(c);
    ws_gen_opts o;
    ws__clone_sample_opts(c, 0.8f, &o);
    ws_span *sp = ws_span_begin("generation", WS_SPAN_INTERNAL, NULL);
    ws_span_attr_int(sp, "gen.sequences", n);
    ws_kv_cache_truncate(cache, plen);
    sample_set st;
    set_init(&st, c, cache, last_logits, kc0, last0, n);
    for (int i = 0; i < n; i++)
        out[i] = (sample_out){0};
    bool done = false;
    double t_prev = ws_now_s();
    for (int step = 0; step < maxn && !done && !rc; step++) {
        if (cancel && *cancel)
            rc = ws_error_set(err, WS_EAGAIN, "the reply was cancelled");
        else
            rc = set_step(c, &st, &o, rng, &done, err);
        done = done || straggling(&st, step);
        double t = ws_now_s(); /* a budget: no step that would end past it */
        done = done || (deadline > 0 && t + (t - t_prev) > deadline);
        t_prev = t;
    }
    if (rc)
        goto out;
    uint64_t sampled = 0;
    for (int i = 0; i < n; i++)
        sampled += st.ss[i].ids.n;
    atomic_fetch_add_explicit(&tokens_generated, sampled, memory_order_relaxed);
    ws_span_attr_int(sp, "gen.tokens", (int64_t)sampled);
    for (int i = 0; i < n; i++) {
        sample *s = &st.ss[i];
        if (!s->ended || !s->ids.n)
            continue;
        out[i].n_tokens = (int)s->ids.n + 1;
        out[i].mean_lp = s->lp / (double)out[i].n_tokens;
        out[i].mean_lp0 = s->lp0 / (double)out[i].n_tokens;
        size_t len = 0;
        char *t = ws_tokenizer_decode_len(c->tok, s->ids.v, s->ids.n, true, &len);
        if (strlen(t) == len && !strstr(t, "\xEF\xBF\xBD"))
            out[i].text = t;
        else
            free(t);
    }
out:
    set_free(&st);
    if (rc)
        ws_span_error(sp, "generation failed");
    ws_span_end(sp);
    return rc;
}

/* True when words repeat back to back in runs of two or three ("at Marco's at Marco's"), the
 * usual loop of a small model; single-word doubling ("sí sí") is a style, not a loop. */
bool ws__clone_stutters(const char *s)
{
    char *c = ws_xstrdup(s);
    const char *w[96];
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(c, " \n", &save); tok && n < 96;
         tok = strtok_r(NULL, " \n", &save))
        w[n++] = tok;
    bool rep = false;
    for (size_t len = 2; len <= 3 && !rep; len++)
        for (size_t i = 0; i + 2 * len <= n && !rep; i++) {
            bool same = true;
            for (size_t k = 0; k < len && same; k++)
                same = !strcmp(w[i + k], w[i + len + k]);
            rep = same;
        }
    free(c);
    return rep;
}

static uint64_t seed_of(const char *s)
{
    return ws_hash_fnv1a(s, strlen(s)) | 1;
}

/* What the phases of one reply share. */
typedef struct reply_run {
    const ws_clone *c;
    const char *msg;
    ws_clone_reply_opts o;
    cand *cs;
    size_t nc;
    double top_sim;
    const char *ret_texts[2]; /* the best retrieved replies (the prompt of a model from scratch) */
    size_t n_ret;
    ws_kv_cache *cache; /* the prompt's (handed back to c->prefix after the reply) */
    ibuf prompt;
    float *last; /* logits after the prompt */
    int plen;
    uint64_t rng;
    clone_guard guard; /* refuses candidates that leak the prompt (guard.c) */
    double deadline;   /* ws_now_s() the sampling must end by (0: none) */
} reply_run;

/* Retrieval: the persona's real replies to the nearest training contexts (on a base, only to
 * nearly the same context). */
static int retrieve(reply_run *rr, const ws_clone_turn *context, size_t n_context, int n_retr, ws_error *err)
{
    const ws_clone *c = rr->c;
    ws_buf key = WS_BUF_INIT;
    ws_vhit *hits = ws_xcalloc((size_t)n_retr * 3, sizeof *hits);
    float *q = ws_xmalloc(c->emb->dim * sizeof *q);
    const char **texts = ws_xcalloc(n_context + 1, sizeof *texts);
    for (size_t i = 0; i < n_context; i++)
        texts[i] = context[i].text ? context[i].text : "";
    texts[n_context] = rr->msg;
    ws__clone_context_key(texts, n_context + 1, &key);
    int rc = ws_embedder_embed(c->emb, key.data, key.len, q, err);
    size_t nh = rc ? 0 : ws_vindex_search(c->ix, q, (size_t)n_retr * 3, 64, hits);
    rr->top_sim = nh ? hits[0].score : 0;
    for (size_t i = 0; i < nh && rr->nc < (size_t)n_retr; i++) {
        const char *r = c->replies[hits[i].id];
        if (ws__clone_is_echo(r, rr->msg) || have_cand(rr->cs, rr->nc, r) ||
            (c->fmt.chat && hits[i].score < CHAT_RETRIEVE_SIM) ||
            ws__clone_guard_check(&rr->guard, r) != CLONE_GUARD_OK)
            continue;
        cand *cd = &rr->cs[rr->nc++];
        cd->text = ws_xstrdup(r);
        cd->sim = hits[i].score;
        cd->src = WS_CLONE_SRC_RETRIEVED;
        if (rr->n_ret < 2)
            rr->ret_texts[rr->n_ret++] = cd->text;
    }
    free(texts);
    free(q);
    free(hits);
    ws_buf_free(&key);
    return rc;
}

/* The prompt once through the model, then every retrieved candidate scored after it. */
static int run_prompt(reply_run *rr, const ws_clone_turn *context, size_t n_context, ws_error *err)
{
    const ws_clone *c = rr->c;
    ibuf ids = {0};
    ws__clone_build_prompt(c, rr->ret_texts, rr->n_ret, context, n_context, rr->msg, &rr->prompt);
    rr->plen = (int)rr->prompt.n;
    int rc = ws__clone_prefix_run(c, &rr->prompt, CLONE_REPLY_BYTES + 8, &rr->cache, rr->last, err);
    for (size_t i = 0; i < rr->nc && !rc; i++) {
        ids.n = 0;
        ws__clone_reply_ids(c, rr->cs[i].text, &ids);
        rc = ws__clone_score_ids(c, c->lora, rr->cache, rr->plen, rr->last, ids.v, ids.n, &rr->cs[i].lp, err);
    }
    ws__clone_ibuf_free(&ids);
    return rc;
}

/* Sampled generations that pass the filters become candidates. */
static int add_generations(reply_run *rr, int n_samples, ws_error *err)
{
    const ws_clone *c = rr->c;
    sample_out *gens = ws_xcalloc((size_t)n_samples + 1, sizeof *gens);
    const ws_kv_cache *kc0 = NULL;
    const float *last0 = NULL;
    int rc = c->fmt.chat ? ws__clone_prefix_empty(c, &kc0, &last0, err) : 0;
    if (!rc)
        rc = sample_batch(c, rr->cache, rr->plen, rr->last, kc0, last0, &rr->rng, n_samples, gens,
                          rr->o.cancel, rr->deadline, err);
    for (int s = 0; s < n_samples && !rc; s++) {
        if (!gens[s].text)
            continue;
        char *gt = ws__clone_trim(gens[s].text);
        bool bad = !*gt || ws__clone_is_echo(gt, rr->msg) || have_cand(rr->cs, rr->nc, gt) ||
                   ws__clone_stutters(gt) || ws__clone_guard_check(&rr->guard, gt) != CLONE_GUARD_OK ||
                   (!c->fmt.chat &&
                    (!ws__clone_words_known(c, gt) || ws__clone_style_fit(gt, c->rates) < c->fit_gate));
        if (bad) {
            free(gt);
            continue;
        }
        cand *cd = &rr->cs[rr->nc++];
        cd->text = gt;
        cd->lp = gens[s].mean_lp;
        cd->lp_any = gens[s].mean_lp0;
        cd->have_any = kc0 != NULL;
        cd->sim = c->fmt.chat ? 0 : rr->top_sim * 0.9;
        cd->src = WS_CLONE_SRC_GENERATED;
    }
    for (int s = 0; s < n_samples; s++)
        free(gens[s].text);
    free(gens);
    return rc;
}

/* Chat format: each candidate's cosine with the message in the clone's embedder. */
static int cosine_to_message(reply_run *rr, ws_error *err)
{
    const ws_clone *c = rr->c;
    size_t nc = rr->nc, dim = c->emb->dim;
    if (!nc)
        return 0;
    const char **texts = ws_xcalloc(nc + 1, sizeof *texts);
    size_t *lens = ws_xcalloc(nc + 1, sizeof *lens);
    float *e = ws_xmalloc((nc + 1) * dim * sizeof *e);
    texts[0] = rr->msg;
    for (size_t i = 0; i < nc; i++)
        texts[i + 1] = rr->cs[i].text;
    for (size_t i = 0; i <= nc; i++)
        lens[i] = strlen(texts[i]);
    int rc = ws_embedder_embed_batch(c->emb, texts, lens, nc + 1, e, err);
    for (size_t i = 0; i < nc && !rc; i++)
        rr->cs[i].cos = ws_vec_dot(e, e + (i + 1) * dim, dim);
    free(e);
    free(lens);
    free(texts);
    return rc;
}

/* Ranks the candidates, then draws among the best (a person does not always give their single
 * most likely reply): softmax of the scores at temperature RANK_TEMP (CHAT_RANK_TEMP on a base),
 * seeded by the message. */
static size_t choose(reply_run *rr)
{
    const ws_clone *c = rr->c;
    cand *cs = rr->cs;
    size_t best = 0, nc = rr->nc;
    double top = -1e300;
    for (size_t i = 0; i < nc; i++) {
        cs[i].fit = ws__clone_style_fit(cs[i].text, c->rates);
        if (c->fmt.chat)
            cs[i].score = cs[i].lp + CHAT_PMI_WEIGHT * (cs[i].lp - cs[i].lp_any) +
                          CHAT_STYLE_WEIGHT * log(cs[i].fit) + SIM_WEIGHT * cs[i].sim +
                          CHAT_COSINE_WEIGHT * cs[i].cos -
                          CHAT_ECHO_WEIGHT * ws__clone_echo_share(cs[i].text, rr->msg);
        else
            cs[i].score = cs[i].lp + STYLE_WEIGHT * log(cs[i].fit) + SIM_WEIGHT * cs[i].sim;
        if (cs[i].score > top)
            top = cs[i].score, best = i;
    }
    if (nc < 2)
        return best;
    double temp = c->fmt.chat ? CHAT_RANK_TEMP : RANK_TEMP, z = 0;
    for (size_t i = 0; i < nc; i++)
        z += exp((cs[i].score - top) / temp);
    uint64_t r = rr->rng ^ 0x9E3779B97F4A7C15ull;
    r ^= r >> 33;
    r *= 0xff51afd7ed558ccdull;
    r ^= r >> 33;
    double u = (double)(r >> 11) / 9007199254740992.0 * z, acc = 0;
    for (size_t i = 0; i < nc; i++) {
        acc += exp((cs[i].score - top) / temp);
        if (u <= acc)
            return i;
    }
    return best;
}

/* b's text, taken: a generation in the persona's case, a retrieved reply as they wrote it. */
static char *take_text(const ws_clone *c, cand *b)
{
    char *t = b->text;
    b->text = NULL;
    return b->src == WS_CLONE_SRC_GENERATED ? ws__clone_in_their_case(c, t) : t;
}

/* The answer: the chosen candidate when confident enough, else the fallback. */
static void answer(reply_run *rr, size_t best, ws_clone_answer *out)
{
    const ws_clone *c = rr->c;
    cand *b = rr->nc ? &rr->cs[best] : NULL;
    double conf = 0;
    if (b) {
        conf = 0.7 * exp(b->lp) + 0.3 * (b->sim > 0 ? b->sim : 0);
        conf = conf < 0 ? 0 : conf > 1 ? 1 : conf;
    }
    out->confidence = conf;
    if (b && (rr->o.no_fallback || conf >= c->threshold)) {
        out->reply = take_text(c, b);
        out->source = b->src;
        return;
    }
    out->fallback = true;
    out->source = WS_CLONE_SRC_FALLBACK;
    if (!ws__clone_is_echo(c->fallback, rr->msg)) {
        out->reply = ws_xstrdup(c->fallback);
    } else if (b) {
        out->reply = take_text(c, b);
    } else { /* the persona's next most common reply that is not the message */
        for (size_t i = 0; i < c->n_replies && !out->reply; i++)
            if (!ws__clone_is_echo(c->replies[i], rr->msg))
                out->reply = ws_xstrdup(c->replies[i]);
        if (!out->reply)
            out->reply = ws_xstrdup("...");
    }
}

int ws_clone_reply(const ws_clone *c, const char *message, const ws_clone_turn *context, size_t n_context,
                   const ws_clone_reply_opts *opts, ws_clone_answer *out, ws_error *err)
{
    double t0 = ws_now_s();
    memset(out, 0, sizeof *out);
    if (c->model->cfg.dim < 512 && ws__clone_threads() < 0)
        ws_nn_set_threads(1); /* a small model: threads cost more than they give */
    if (!message)
        return ws_error_set(err, WS_EINVAL, "no message");
    reply_run rr = {.c = c};
    if (opts)
        rr.o = *opts;
    int n_samples = rr.o.n_samples > 0   ? rr.o.n_samples
                    : !c->fmt.chat       ? 3
                    : rr.o.budget_ms > 0 ? CHAT_SAMPLES_BUDGET
                                         : CHAT_SAMPLES;
    rr.deadline = rr.o.budget_ms > 0 ? t0 + rr.o.budget_ms / 1000.0 : 0;
    int n_retr = rr.o.n_retrieved > 0 ? rr.o.n_retrieved : 6;
    char *msg = ws__clone_trim(message);
    if (strlen(msg) > WS_CLONE_MAX_MESSAGE)
        msg[WS_CLONE_MAX_MESSAGE] = '\0';
    if (!*msg) {
        free(msg);
        return ws_error_set(err, WS_EINVAL, "the message is empty");
    }
    rr.msg = msg;
    rr.cs = ws_xcalloc((size_t)(n_samples + n_retr) + 1, sizeof *rr.cs);
    rr.last = ws_xmalloc((size_t)c->model->cfg.vocab_size * sizeof *rr.last);
    rr.rng = rr.o.seed ? rr.o.seed : seed_of(msg);
    ws__clone_guard_set(&rr.guard, c, msg, context, n_context);
    int rc = retrieve(&rr, context, n_context, n_retr, err);
    if (!rc && rr.o.cancel && *rr.o.cancel)
        rc = ws_error_set(err, WS_EAGAIN, "the reply was cancelled");
    if (!rc)
        rc = run_prompt(&rr, context, n_context, err);
    if (!rc)
        rc = add_generations(&rr, n_samples, err);
    if (!rc && c->fmt.chat)
        rc = score_without_context(c, rr.cs, rr.nc, err);
    if (!rc && c->fmt.chat)
        rc = cosine_to_message(&rr, err);
    if (!rc)
        answer(&rr, choose(&rr), out);
    for (size_t i = 0; i < rr.nc; i++)
        free(rr.cs[i].text);
    free(rr.cs);
    if (!rc && rr.cache) /* the next reply starts from this prompt's cache */
        ws__clone_prefix_put(c, rr.cache, &rr.prompt, rr.last);
    else
        ws_kv_cache_free(rr.cache);
    ws__clone_ibuf_free(&rr.prompt);
    ws__clone_guard_clear(&rr.guard);
    free(rr.last);
    free(msg);
    if (rc)
        ws_clone_answer_clear(out);
    else
        out->processing_ms = (ws_now_s() - t0) * 1000.0;
    return rc;
}

void ws__clone_reply_prompt(const ws_clone *c, const char *const *ctx, const bool *ctx_me, size_t n_ctx,
                            ibuf *out)
{
    if (c->fmt.chat) {
        const char **authors = ws_xcalloc(n_ctx + 1, sizeof *authors);
        for (size_t i = 0; i < n_ctx; i++)
            authors[i] = ctx_me[i] ? c->persona : NULL;
        ws__clone_chat_prompt(&c->fmt, authors, ctx, n_ctx, out);
        free(authors);
        return;
    }
    size_t first = n_ctx > CLONE_CTX_TURNS ? n_ctx - CLONE_CTX_TURNS : 0;
    for (size_t i = first; i < n_ctx; i++)
        ws__clone_fmt_turn(&c->fmt, ctx_me[i], ctx[i], CLONE_CTX_BYTES, true, out);
    for (int i = 0; i < c->fmt.n_me; i++)
        ws__clone_ibuf_push(out, c->fmt.me[i]);
}

void ws__clone_reply_ids(const ws_clone *c, const char *reply, ibuf *out)
{
    ws__clone_fmt_text(&c->fmt, reply, CLONE_REPLY_BYTES, false, out);
    ws__clone_ibuf_push(out, c->fmt.end);
}

int ws__clone_scorer_prompt(clone_scorer *s, const ibuf *prompt, ws_error *err)
{
    const ws_model *m = s->c->model;
    if (s->kc && s->prompt.n == prompt->n && !memcmp(s->prompt.v, prompt->v, prompt->n * sizeof *prompt->v))
        return 0; /* the same prompt: its cache and last logits are still there */
    ws_kv_cache_free(s->kc);
    s->kc = ws_kv_cache_new(m, (int)prompt->n + CLONE_REPLY_BYTES + 8);
    if (!s->last)
        s->last = ws_xmalloc((size_t)m->cfg.vocab_size * sizeof *s->last);
    s->prompt.n = 0;
    int rc = prompt->n ? ws_model_infer(m, s->lora, s->kc, prompt->v, (int)prompt->n, s->last, NULL, err)
                       : ws_error_set(err, WS_EINVAL, "empty prompt");
    if (rc) {
        ws_kv_cache_free(s->kc);
        s->kc = NULL;
        return rc;
    }
    for (size_t i = 0; i < prompt->n; i++)
        ws__clone_ibuf_push(&s->prompt, prompt->v[i]);
    return 0;
}

int ws__clone_scorer_reply(clone_scorer *s, const int32_t *ids, size_t n, double *nll, ws_error *err)
{
    double mean = 0;
    int rc = ws__clone_score_ids(s->c, s->lora, s->kc, (int)s->prompt.n, s->last, ids, n, &mean, err);
    *nll = -mean * (double)n;
    return rc;
}

void ws__clone_scorer_free(clone_scorer *s)
{
    ws_kv_cache_free(s->kc);
    free(s->last);
    ws__clone_ibuf_free(&s->prompt);
    memset(s, 0, sizeof *s);
}
