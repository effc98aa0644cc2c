/* The clone's fidelity report (DESIGN.md §3.6): the generic evaluation of src/style/fidelity.h
 * run through the clone's real reply path (without the fallback), with the clone's scorer
 * (clone_scorer: loss and R10@1, the context run once per example, under the model and under its base — the
 * base model without the adapter, or for a model trained from scratch a unigram byte model fitted on the
 * training period only), the clone's embedder for relevance and its style fit as typicality
 * (information). It also sets the persona's confidence threshold from the held-out
 * confidences and keeps a few samples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/json.h"
#include "core/mem.h"
#include "style/fidelity.h"

#define MAX_CTX 16
#define N_SAMPLES 6

/* What the callbacks share. */
typedef struct clone_eval {
    const ws_clone *c;
    uint64_t seed;
    double *conf; /* confidence of each generated reply */
    size_t n, n_gen, cap;
    char *s_msg[N_SAMPLES], *s_real[N_SAMPLES], *s_clone[N_SAMPLES];
    double unigram[CLONE_VOCAB]; /* log-probabilities (scratch models' base) */
    clone_scorer model, base;    /* the context's prompt run once for the replies ranked after it */
} clone_eval;

/* The context turns of ex (the last MAX_CTX). */
static size_t context_of(const ws_pairs *p, const ws_example *ex, const char **texts, bool *me,
                         ws_clone_turn *turns)
{
    uint32_t first = ex->turn - ex->ctx_first > MAX_CTX ? ex->turn - MAX_CTX : ex->ctx_first;
    size_t n = 0;
    for (uint32_t t = first; t < ex->turn; t++, n++) {
        texts[n] = p->turns[t].text;
        me[n] = p->turns[t].persona;
        if (turns)
            turns[n] = (ws_clone_turn){p->turns[t].author, p->turns[t].text};
    }
    return n;
}

static int gen(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    clone_eval *e = arg;
    const char *texts[MAX_CTX];
    bool me[MAX_CTX];
    ws_clone_turn ctx[MAX_CTX];
    size_t n_ctx = context_of(p, ex, texts, me, ctx);
    if (!n_ctx)
        return ws_error_set(err, WS_EINVAL, "a held-out example without context");
    ws_clone_reply_opts ro = {.no_fallback = true, .seed = e->seed + e->n};
    ws_clone_answer a;
    int rc = ws_clone_reply(e->c, ctx[n_ctx - 1].text, ctx, n_ctx - 1, &ro, &a, err);
    if (rc)
        return rc;
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->conf = ws_xrealloc(e->conf, e->cap * sizeof *e->conf);
    }
    e->conf[e->n] = a.confidence;
    e->n_gen += a.source == WS_CLONE_SRC_GENERATED;
    if (e->n < N_SAMPLES) {
        e->s_msg[e->n] = ws_xstrdup(ctx[n_ctx - 1].text);
        e->s_real[e->n] = ws_xstrdup(p->turns[ex->turn].reply);
        e->s_clone[e->n] = ws_xstrdup(a.reply);
    }
    e->n++;
    ws_buf_puts(reply, a.reply);
    ws_clone_answer_clear(&a);
    return 0;
}

static int score(void *arg, const ws_pairs *p, const ws_example *ex, const char *reply, bool base,
                 ws_fidelity_score *out, ws_error *err)
{
    clone_eval *e = arg;
    size_t len = strlen(reply), bytes = len < CLONE_REPLY_BYTES ? len : CLONE_REPLY_BYTES;
    out->n_bytes = bytes + 1; /* + the end of the turn */
    if (base && !e->c->lora) {
        double nll = -e->unigram[CLONE_TOK_END];
        for (size_t i = 0; i < bytes; i++)
            nll -= e->unigram[(unsigned char)reply[i]];
        out->nll = nll;
        out->n_tok = bytes + 1;
        return 0;
    }
    const char *texts[MAX_CTX];
    bool me[MAX_CTX];
    size_t n_ctx = context_of(p, ex, texts, me, NULL);
    clone_scorer *sc = base ? &e->base : &e->model;
    ibuf prompt = {0}, ids = {0};
    ws__clone_reply_prompt(e->c, texts, me, n_ctx, &prompt);
    ws__clone_reply_ids(e->c, reply, &ids);
    int rc = ws__clone_scorer_prompt(sc, &prompt, err);
    if (!rc)
        rc = ws__clone_scorer_reply(sc, ids.v, ids.n, &out->nll, err);
    out->n_tok = ids.n;
    ws__clone_ibuf_free(&prompt);
    ws__clone_ibuf_free(&ids);
    return rc;
}

static double typicality(void *arg, const char *reply)
{
    const clone_eval *e = arg;
    return ws__clone_style_fit(reply, e->c->rates);
}

/* A unigram byte model (add-one) of every turn before the held-out period. */
static void fit_unigram(const ws_pairs *p, double *lp)
{
    int64_t cut = INT64_MAX;
    for (size_t i = 0; i < p->n_examples; i++)
        if (p->examples[i].heldout && p->turns[p->examples[i].turn].start < cut)
            cut = p->turns[p->examples[i].turn].start;
    double tot = 0;
    for (int i = 0; i < CLONE_VOCAB; i++)
        lp[i] = 1, tot += 1;
    for (size_t i = 0; i < p->n_turns; i++) {
        if (p->turns[i].start >= cut)
            continue;
        for (const unsigned char *s = (const unsigned char *)p->turns[i].text; *s; s++)
            lp[*s] += 1, tot += 1;
        lp[CLONE_TOK_END] += 1, tot += 1;
    }
    for (int i = 0; i < CLONE_VOCAB; i++)
        lp[i] = log(lp[i] / tot);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Half the 2nd percentile of the held-out confidences; their mean. */
static double threshold_of(const clone_eval *e, double *mean)
{
    double *s = ws_xmalloc((e->n + 1) * sizeof *s), m = 0;
    memcpy(s, e->conf, e->n * sizeof *s);
    qsort(s, e->n, sizeof *s, cmp_d);
    for (size_t i = 0; i < e->n; i++)
        m += s[i];
    *mean = e->n ? m / (double)e->n : 0;
    double t = e->n ? 0.5 * s[(size_t)(0.02 * (double)e->n)] : 0;
    free(s);
    return t;
}

static void write_json(const ws_clone *c, const clone_eval *e, const ws_fidelity_report *r, double mean_conf,
                       double threshold, ws_buf *b)
{
    ws_buf_puts(b, "{\n  \"persona\": ");
    ws_json_put_cstr(b, c->persona);
    ws_buf_printf(b,
                  ",\n  \"generated_share\": %.3f,\n  \"confidence_mean\": %.4f,\n  \"threshold\": %.4f,\n  ",
                  e->n ? (double)e->n_gen / (double)e->n : 0, mean_conf, threshold);
    ws_fidelity_json_members(r, b);
    ws_buf_puts(b, ",\n  \"samples\": [");
    for (size_t i = 0; i < e->n && i < N_SAMPLES; i++) {
        ws_buf_puts(b, i ? ",\n    {\"message\": " : "\n    {\"message\": ");
        ws_json_put_cstr(b, e->s_msg[i]);
        ws_buf_puts(b, ", \"real\": ");
        ws_json_put_cstr(b, e->s_real[i]);
        ws_buf_puts(b, ", \"clone\": ");
        ws_json_put_cstr(b, e->s_clone[i]);
        ws_buf_printf(b, ", \"confidence\": %.3f}", e->conf[i]);
    }
    ws_buf_puts(b, "\n  ]\n}\n");
}

void ws__clone_fidelity_clear(clone_fidelity *f)
{
    free(f->json);
    free(f->summary);
    memset(f, 0, sizeof *f);
}

int ws__clone_fidelity_run(const ws_clone *c, const ws_pairs *p, size_t max_eval, double deadline_s,
                           uint64_t seed, clone_fidelity *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    clone_eval *e = ws_xcalloc(1, sizeof *e);
    e->c = c;
    e->seed = seed;
    e->model = (clone_scorer){.c = c, .lora = c->lora};
    e->base = (clone_scorer){.c = c, .lora = NULL};
    fit_unigram(p, e->unigram);
    ws_fidelity_options o = {.max_examples = max_eval,
                             .seed = seed ? seed : 1,
                             .deadline_s = deadline_s,
                             .embedder = c->emb,
                             .score = score,
                             .score_arg = e,
                             .base_is_model = c->lora != NULL,
                             .base_name = c->lora ? "base model without the adapter"
                                                  : "unigram byte model of the training period",
                             .typicality = typicality,
                             .typicality_arg = e};
    ws_fidelity_report r;
    int rc = ws_fidelity_evaluate(p, gen, e, &o, &r, err);
    if (rc)
        goto out;
    double mean_conf = 0;
    out->threshold = threshold_of(e, &mean_conf);
    out->beats_baselines = r.pass;
    ws_buf b = WS_BUF_INIT;
    write_json(c, e, &r, mean_conf, out->threshold, &b);
    out->json = ws_buf_take(&b);
    ws_buf_printf(&b, "Fidelity of the clone of %s\n", c->persona);
    ws_fidelity_summary(&r, &b);
    ws_buf_printf(&b, "  confidence threshold %.3f (half the 2nd percentile of held-out confidences); %s\n",
                  out->threshold, r.pass ? "passes the verdict" : "does NOT pass the verdict");
    out->summary = ws_buf_take(&b);
out:
    for (size_t i = 0; i < N_SAMPLES; i++) {
        free(e->s_msg[i]);
        free(e->s_real[i]);
        free(e->s_clone[i]);
    }
    free(e->conf);
    ws__clone_scorer_free(&e->model);
    ws__clone_scorer_free(&e->base);
    free(e);
    return rc;
}
