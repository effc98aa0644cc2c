/* Streaming a reply (ws_clone_reply_stream, clone.h): one candidate sampled on the model (the
 * base + adapter, guided as reply.c's samples; or the model from scratch) with its text handed
 * out in whole UTF-8 characters as it is decoded, then its confidence and, under the threshold,
 * the fallback. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/trace.h"
#include "nn/generate.h"
#include "nn/ops.h"
#include "style/text.h"

#define STREAM_MAX_TOKENS 48 /* as a sampled candidate of ws_clone_reply on a base */
#define STREAM_HITS 18
#define STREAM_RETRIEVED 2   /* real replies put in the prompt of a model from scratch */
#define STREAM_SIM_SHARE 0.9 /* a generation gets 0.9 x the best retrieval similarity (reply.c) */
/* One candidate and no ranking to pick a good sample: a cooler sampling than the ranked path's
 * T 0.8 (on the sample chat's model from scratch 17/60 replies fell back instead of 26/60). */
#define STREAM_TEMPERATURE 0.6f

typedef struct stream_run {
    const ws_clone *c;
    const char *msg;
    ws_clone_piece_fn fn;
    void *arg;
    const volatile int *cancel;
    ws_tokenizer_stream ts;
    ws_buf text; /* decoded so far: whole characters */
    size_t sent; /* bytes of text handed out (leading white space counts as sent) */
    ibuf ids;
    double lp, top_sim;
    bool ended, bad_text, begun;       /* begun: the reply's first character came */
    bool label;                        /* the text starts with a speaker label (refused) */
    bool over;                         /* no more text comes (stream_emit hands out the rest) */
    clone_guard guard;                 /* the candidate guard (guard.c), as ws_clone_reply's */
    const char *ret[STREAM_RETRIEVED]; /* borrowed from c->replies */
    size_t n_ret;
} stream_run;

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
}

/* The nearest training contexts: the best similarity, and (model from scratch) the persona's
 * replies to them for the prompt, as ws_clone_reply does. */
static int stream_retrieve(stream_run *sr, const ws_clone_turn *context, size_t n_context, ws_error *err)
{
    const ws_clone *c = sr->c;
    if (c->fmt.chat)
        return 0; /* on a base neither the prompt nor the confidence of a generation uses it */
    ws_buf key = WS_BUF_INIT;
    ws_vhit hits[STREAM_HITS];
    float *q = ws_xmalloc(c->emb->dim * sizeof *q);
    const char **texts = ws_xcalloc(n_context + 1, sizeof *texts);
    for (size_t i = 0; i < n_context; i++)
        texts[i] = context[i].text ? context[i].text : "";
    texts[n_context] = sr->msg;
    ws__clone_context_key(texts, n_context + 1, &key);
    int rc = ws_embedder_embed(c->emb, key.data, key.len, q, err);
    size_t nh = rc ? 0 : ws_vindex_search(c->ix, q, STREAM_HITS, 64, hits);
    sr->top_sim = nh ? hits[0].score : 0;
    for (size_t i = 0; i < nh && sr->n_ret < STREAM_RETRIEVED; i++) {
        const char *r = c->replies[hits[i].id];
        if (!ws__clone_is_echo(r, sr->msg) && (!sr->n_ret || strcmp(sr->ret[0], r)))
            sr->ret[sr->n_ret++] = r;
    }
    free(texts);
    free(q);
    ws_buf_free(&key);
    return rc;
}

/* Hands out the text decoded since the last piece, up to its last character that is not white
 * space (what follows may be trimmed at the end), with the reply's leading white space skipped.
 * The start is held back while it could still be a speaker label ("Friend:"); a label stops the
 * generation (sr->label) and is never handed out. */
static int stream_emit(stream_run *sr, ws_error *err)
{
    const char *t = sr->text.data;
    size_t end = sr->text.len;
    if (!sr->begun && t) {
        int lab = ws__clone_guard_label_start(&sr->guard, t, sr->over);
        if (lab)
            sr->label = lab > 0;
        if (lab)
            return 0;
    }
    if (!sr->begun) {
        size_t lead = t ? strspn(t, " \n\t\r") : 0;
        if (lead >= end)
            return 0;
        sr->sent = lead;
        sr->begun = true;
    }
    while (end > sr->sent && is_space(t[end - 1]))
        end--;
    if (sr->c->lower_case && !sr->over) { /* a word still coming is held: is it "Lisbon" or "LISBON"? */
        end = sr->sent + ws_text_whole_words(t + sr->sent, end - sr->sent);
        while (end > sr->sent && is_space(t[end - 1]))
            end--;
    }
    if (end <= sr->sent)
        return 0;
    int stop = 0;
    if (sr->fn && sr->c->lower_case) { /* in the persona's case, as the final reply */
        ws_buf piece = WS_BUF_INIT;
        ws_text_lower_capitalised(t + sr->sent, end - sr->sent, &piece);
        stop = sr->fn(sr->arg, piece.data, piece.len);
        ws_buf_free(&piece);
    } else if (sr->fn) {
        stop = sr->fn(sr->arg, t + sr->sent, end - sr->sent);
    }
    sr->sent = end;
    return stop ? ws_error_set(err, WS_EAGAIN, "the reply was cancelled") : 0;
}

/* One sampled token: false when the generation stops here (sr->ended when by the end of the
 * turn). The stopping rules are those of ws_clone_reply's samples. */
static bool stream_take(stream_run *sr, int32_t id)
{
    const ws_clone *c = sr->c;
    if (id == c->fmt.end) {
        sr->ended = true;
        return false;
    }
    bool turn = c->fmt.bytes
                    ? id >= CLONE_TOK_END
                    : ws_tokenizer_is_special(c->tok, id) || id == c->fmt.me[0] || id == c->fmt.other[0];
    if (turn)
        return false;
    ws__clone_ibuf_push(&sr->ids, id);
    size_t before = sr->text.len;
    ws_tokenizer_stream_put(c->tok, &sr->ts, id, true, &sr->text);
    if (sr->text.len > before && (memchr(sr->text.data + before, '\0', sr->text.len - before) ||
                                  strstr(sr->text.data + before, "\xEF\xBF\xBD"))) {
        sr->bad_text = true; /* never handed out: the reply would be refused anyway */
        sr->text.len = before;
        sr->text.data[before] = '\0';
        return false;
    }
    if (c->fmt.bytes && (id == ' ' || id == '\n') && sr->text.len > 1) {
        size_t st = sr->text.len - 1;
        while (st > 0 && !is_space(sr->text.data[st - 1]))
            st--;
        char *word = ws_xstrndup(sr->text.data + st, sr->text.len - 1 - st);
        bool known = !*word || ws__clone_words_known(c, word);
        free(word);
        if (!known)
            return false;
    }
    return (int)sr->ids.n < c->gen_max;
}

/* One candidate only, so the sampling avoids what would get it refused: a first token that ends
 * the turn or starts another (it would say nothing), and, between whole characters, a token that
 * starts in the middle of one (invalid UTF-8). */
static void mask_tokens(const stream_run *sr, float *logits, int V, bool first)
{
    const ws_clone *c = sr->c;
    for (int32_t t = 0; t < V; t++) {
        const char *b = NULL;
        size_t n = 0;
        bool turn = first && (c->fmt.bytes ? t >= CLONE_TOK_END
                                           : t == c->fmt.end || ws_tokenizer_is_special(c->tok, t) ||
                                                 t == c->fmt.me[0] || t == c->fmt.other[0]);
        bool cont = !sr->ts.n_held && ws_tokenizer_token_bytes(c->tok, t, &b, &n) == 0 && n &&
                    ((unsigned char)b[0] & 0xC0) == 0x80;
        if (turn || cont)
            logits[t] = -INFINITY;
    }
}

/* The sampling loop: one token at a time through the model, each piece handed out at once; on a
 * chat base guided by the prompt without the conversation, as ws_clone_reply's samples are. */
static int stream_generate(stream_run *sr, ws_kv_cache *cache, float *logits, uint64_t rng, double deadline,
                           ws_error *err)
{
    const ws_clone *c = sr->c;
    int V = c->model->cfg.vocab_size, maxn = c->fmt.bytes ? c->gen_max + 1 : STREAM_MAX_TOKENS, rc = 0;
    ws_gen_opts o;
    ws__clone_sample_opts(c, STREAM_TEMPERATURE, &o);
    clone_guided g;
    if ((rc = ws__clone_guided_begin(c, cache, &o, &g, err)))
        return rc;
    ws_span *sp = ws_span_begin("generation", WS_SPAN_INTERNAL, NULL);
    ws_span_attr_int(sp, "gen.sequences", 1);
    double t_prev = ws_now_s();
    for (int step = 0; step < maxn && !rc; step++) {
        if (sr->cancel && *sr->cancel) {
            rc = ws_error_set(err, WS_EAGAIN, "the reply was cancelled");
            break;
        }
        mask_tokens(sr, logits, V, step == 0);
        float l;
        int32_t id = ws_sample(logits, V, &o, sr->ids.v, (int)sr->ids.n, &rng, &l);
        sr->lp += l;
        bool more = stream_take(sr, id);
        double t = ws_now_s(); /* a budget: no step that would end past it (not ended: the fallback) */
        more = more && !(deadline > 0 && t + (t - t_prev) > deadline);
        t_prev = t;
        sr->over = !more;
        rc = stream_emit(sr, err);
        if (!more || rc || sr->label)
            break;
        rc = ws__clone_guided_next(c, cache, &g, id, logits, err);
    }
    ws_span_attr_int(sp, "gen.tokens", (int64_t)sr->ids.n);
    if (rc)
        ws_span_error(sp, "generation stopped");
    ws_span_end(sp);
    ws__clone_guided_end(&g);
    return rc;
}

/* The answer from the one candidate: its text when it is a whole turn (ended, valid UTF-8, not
 * empty, no echo, no stutter) and its confidence reaches the threshold, else the fallback (as
 * ws_clone_reply gives it). The style gates that sort ws_clone_reply's many candidates are left
 * to the confidence here: one candidate has nothing to be sorted against. */
static void stream_answer(stream_run *sr, bool no_fallback, ws_clone_answer *out)
{
    const ws_clone *c = sr->c;
    ws_tokenizer_stream_flush(&sr->ts, &sr->text);
    char *gt = ws__clone_trim(sr->text.data ? sr->text.data : "");
    bool ok = sr->ended && sr->ids.n && !sr->bad_text && !sr->label && !strstr(gt, "\xEF\xBF\xBD") && *gt &&
              !ws__clone_is_echo(gt, sr->msg) && !ws__clone_stutters(gt) &&
              ws__clone_guard_check(&sr->guard, gt) == CLONE_GUARD_OK;
    if (ok) {
        double sim = c->fmt.chat ? 0 : sr->top_sim * STREAM_SIM_SHARE;
        double conf = 0.7 * exp(sr->lp / (double)(sr->ids.n + 1)) + 0.3 * (sim > 0 ? sim : 0);
        out->confidence = conf < 0 ? 0 : conf > 1 ? 1 : conf;
    }
    if (ok)
        gt = ws__clone_in_their_case(c, gt); /* as its pieces were handed out */
    if (ok && (no_fallback || out->confidence >= c->threshold)) {
        out->reply = gt;
        out->source = WS_CLONE_SRC_GENERATED;
        return;
    }
    out->fallback = true;
    out->source = WS_CLONE_SRC_FALLBACK;
    if (!ws__clone_is_echo(c->fallback, sr->msg))
        out->reply = ws_xstrdup(c->fallback);
    else if (ok)
        out->reply = ws_xstrdup(gt);
    for (size_t i = 0; i < c->n_replies && !out->reply; i++)
        if (!ws__clone_is_echo(c->replies[i], sr->msg))
            out->reply = ws_xstrdup(c->replies[i]);
    if (!out->reply)
        out->reply = ws_xstrdup("...");
    free(gt);
}

int ws_clone_reply_stream(const ws_clone *c, const char *message, const ws_clone_turn *context,
                          size_t n_context, const ws_clone_reply_opts *opts, ws_clone_piece_fn on_piece,
                          void *arg, ws_clone_answer *out, ws_error *err)
{
    double t0 = ws_now_s();
    memset(out, 0, sizeof *out);
    if (!message)
        return ws_error_set(err, WS_EINVAL, "no message");
    if (c->model->cfg.dim < 512 && ws__clone_threads() < 0)
        ws_nn_set_threads(1); /* a small model: threads cost more than they give */
    ws_clone_reply_opts o = {0};
    if (opts)
        o = *opts;
    stream_run sr = {.c = c, .fn = on_piece, .arg = arg, .cancel = o.cancel, .text = WS_BUF_INIT};
    char *msg = ws__clone_trim(message);
    if (strlen(msg) > WS_CLONE_MAX_MESSAGE)
        msg[WS_CLONE_MAX_MESSAGE] = '\0';
    ibuf prompt = {0};
    ws_kv_cache *cache = NULL;
    float *logits = NULL, *last = NULL; /* last: the logits after the prompt (for the cache) */
    int rc = 0;
    if (!*msg) {
        rc = ws_error_set(err, WS_EINVAL, "the message is empty");
        goto out;
    }
    sr.msg = msg;
    ws__clone_guard_set(&sr.guard, c, msg, context, n_context);
    rc = stream_retrieve(&sr, context, n_context, err);
    if (rc)
        goto out;
    ws__clone_build_prompt(c, sr.ret, sr.n_ret, context, n_context, msg, &prompt);
    size_t V = (size_t)c->model->cfg.vocab_size;
    logits = ws_xmalloc(V * sizeof *logits);
    if (c->prefix) { /* on a base: only the prompt past the last reply's (prefix.c) runs */
        rc = ws__clone_prefix_run(c, &prompt, CLONE_REPLY_BYTES + 8, &cache, logits, err);
        if (!rc) {
            last = ws_xmalloc(V * sizeof *last);
            memcpy(last, logits, V * sizeof *last);
        }
    } else {
        cache = ws_kv_cache_new(c->model, (int)prompt.n + CLONE_REPLY_BYTES + 8);
        rc = ws_model_infer(c->model, c->lora, cache, prompt.v, (int)prompt.n, logits, NULL, err);
    }
    if (!rc)
        rc = stream_generate(&sr, cache, logits, o.seed ? o.seed : ws_hash_fnv1a(msg, strlen(msg)) | 1,
                             o.budget_ms > 0 ? t0 + o.budget_ms / 1000.0 : 0, err);
    if (!rc) {
        stream_answer(&sr, o.no_fallback, out);
        out->processing_ms = (ws_now_s() - t0) * 1000.0;
    }
    if (!rc && last) { /* the next reply starts from this prompt's cache */
        ws__clone_prefix_put(c, cache, &prompt, last);
        cache = NULL;
    }
out:
    ws__clone_guard_clear(&sr.guard);
    ws__clone_ibuf_free(&prompt);
    ws__clone_ibuf_free(&sr.ids);
    ws_buf_free(&sr.text);
    ws_kv_cache_free(cache);
    free(logits);
    free(last);
    free(msg);
    return rc;
}
