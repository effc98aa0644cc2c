/* Measuring a clone on held-out examples (see fidelity.h): one function per phase — choose
 * the examples, generate, draw the baselines, measure each reply set, attribution, relevance
 * by embedding, then loss and R10@1 with the caller's scorer. The verdict and the rendering
 * are in fidelity_report.c. */
#include "style/fidelity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/strset.h"
#include "style/text.h"

#define EMB_DIM 512
#define MIN_EXAMPLES 5
#define MIN_RANKED 20 /* R10@1 examples ranked even past the deadline */

/* The evaluation under way. */
typedef struct eval {
    const ws_pairs *p;
    ws_fidelity_options o;
    size_t *held, n_held; /* every held-out example (indices into p->examples) */
    size_t *ex, n;        /* the evaluated ones */
    char **txt[WS_FID_SETS];
    char **ctx;       /* context key of each evaluated example */
    const char **msg; /* the message answered (last context turn) */
    ws_strset train;  /* trimmed training replies of the persona */
    int64_t cutoff;   /* start of the held-out period */
    uint64_t rng;
} eval;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool over_deadline(const eval *e, size_t done)
{
    return e->o.deadline_s > 0 && done >= MIN_EXAMPLES && ws_now_s() > e->o.deadline_s;
}

static const char *trimmed(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n && (unsigned char)*s <= ' ')
        s++, n--;
    while (n && (unsigned char)s[n - 1] <= ' ')
        n--;
    *len = n;
    return s;
}

/* Held-out examples, the evaluated ones spread evenly, the training replies, the cut. */
static void choose_examples(eval *e)
{
    const ws_pairs *p = e->p;
    size_t cap = e->o.max_examples && e->o.max_examples < WS_FIDELITY_MAX_EXAMPLES ? e->o.max_examples
                                                                                   : WS_FIDELITY_MAX_EXAMPLES;
    e->held = ws_xmalloc((p->n_heldout + 1) * sizeof *e->held);
    e->cutoff = INT64_MAX;
    for (size_t i = 0; i < p->n_examples; i++) {
        const ws_example *x = &p->examples[i];
        size_t l;
        const char *s = trimmed(p->turns[x->turn].reply, &l);
        if (!x->heldout) {
            ws_strset_add(&e->train, s, l);
            continue;
        }
        e->held[e->n_held++] = i;
        if (p->turns[x->turn].start < e->cutoff)
            e->cutoff = p->turns[x->turn].start;
    }
    size_t n = e->n_held < cap ? e->n_held : cap;
    e->ex = ws_xmalloc((n + 1) * sizeof *e->ex);
    for (size_t k = 0; k < n; k++)
        e->ex[k] = e->held[k * e->n_held / n];
    e->n = n;
    for (int s = 0; s < WS_FID_SETS; s++)
        e->txt[s] = ws_xcalloc(n + 1, sizeof(char *));
    e->ctx = ws_xcalloc(n + 1, sizeof *e->ctx);
    e->msg = ws_xcalloc(n + 1, sizeof *e->msg);
}

/* The clone's replies (until the deadline), the real ones, contexts and messages. */
static int generate(eval *e, ws_fidelity_gen_fn gen, void *arg, ws_error *err)
{
    const ws_pairs *p = e->p;
    ws_buf reply = WS_BUF_INIT, key = WS_BUF_INIT;
    size_t done = 0;
    int rc = 0;
    for (; done < e->n && !over_deadline(e, done); done++) {
        const ws_example *x = &p->examples[e->ex[done]];
        ws_buf_reset(&reply);
        if ((rc = gen(arg, p, x, &reply, err)))
            break;
        e->txt[WS_FID_CLONE][done] = ws_xstrdup(reply.data ? reply.data : "");
        e->txt[WS_FID_REAL][done] = ws_xstrdup(p->turns[x->turn].reply);
        const char *turns[WS_RETRIEVAL_KEY_TURNS];
        size_t nt = 0;
        uint32_t first =
            x->turn - (x->n_context < WS_RETRIEVAL_KEY_TURNS ? x->n_context : WS_RETRIEVAL_KEY_TURNS);
        for (uint32_t t = first; t < x->turn; t++)
            turns[nt++] = p->turns[t].text;
        ws_buf_reset(&key);
        ws_retrieval_key(turns, nt, &key);
        e->ctx[done] = ws_xstrdup(key.data ? key.data : "");
        e->msg[done] = x->n_context ? p->turns[x->turn - 1].text : "";
    }
    ws_buf_free(&reply);
    ws_buf_free(&key);
    e->n = rc ? e->n : done;
    return rc;
}

/* Same person: another held-out example's reply (a different text where one exists). Other
 * participant: a held-out-period turn of someone else, else one of the latest before it. */
static void draw_baselines(eval *e, ws_fidelity_report *r)
{
    const ws_pairs *p = e->p;
    size_t *others = ws_xmalloc((p->n_turns + 1) * sizeof *others), n_late = 0, n_early = 0;
    for (size_t t = 0; t < p->n_turns; t++)
        if (p->turns[t].reply && !p->turns[t].persona && p->turns[t].start >= e->cutoff)
            others[n_late++] = t;
    r->other_from_heldout = n_late > 0;
    for (size_t t = p->n_turns; !n_late && t-- > 0 && n_early < e->n;)
        if (p->turns[t].reply && !p->turns[t].persona)
            others[n_early++] = t;
    size_t n_oth = n_late ? n_late : n_early;
    for (size_t k = 0; k < e->n; k++) {
        const char *real = e->txt[WS_FID_REAL][k], *pick = real;
        for (int tries = 0; tries < 8 && e->n_held > 1; tries++) {
            size_t j = e->held[rnd(&e->rng) % e->n_held];
            if (j == e->ex[k])
                continue;
            pick = p->turns[p->examples[j].turn].reply;
            if (strcmp(pick, real) != 0)
                break;
        }
        e->txt[WS_FID_SAME][k] = ws_xstrdup(pick);
        const char *o = n_oth ? p->turns[others[rnd(&e->rng) % n_oth]].reply : "";
        e->txt[WS_FID_OTHER][k] = ws_xstrdup(o);
    }
    free(others);
}

/* True when a word trigram occurs twice in s. */
static bool repeats_trigram(const char *s)
{
    char *c = ws_xstrdup(s);
    const char *w[128];
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(c, " \n", &save); tok && n < 128;
         tok = strtok_r(NULL, " \n", &save))
        w[n++] = tok;
    bool rep = false;
    for (size_t i = 0; i + 2 < n && !rep; i++)
        for (size_t j = i + 1; j + 2 < n && !rep; j++)
            rep = !strcmp(w[i], w[j]) && !strcmp(w[i + 1], w[j + 1]) && !strcmp(w[i + 2], w[j + 2]);
    free(c);
    return rep;
}

/* Repetition, copies, echoes, length and typicality of one set. */
static void measure_texts(const eval *e, char **t, ws_fidelity_set *s)
{
    ws_strset distinct = WS_STRSET_INIT;
    double real_chars = 0, dn = e->n ? (double)e->n : 1;
    for (size_t k = 0; k < e->n; k++) {
        size_t l;
        const char *tr = trimmed(t[k], &l);
        ws_strset_add(&distinct, tr, l);
        s->copy_rate += l && ws_strset_find(&e->train, tr, l) >= 0;
        s->empty_rate += l == 0;
        s->echo_rate += l && ws_text_is_echo(t[k], e->msg[k]);
        s->repetition += repeats_trigram(t[k]);
        s->mean_chars += (double)ws_utf8_count(t[k], strlen(t[k]));
        real_chars += (double)ws_utf8_count(e->txt[WS_FID_REAL][k], strlen(e->txt[WS_FID_REAL][k]));
        if (e->o.typicality)
            s->typicality += e->o.typicality(e->o.typicality_arg, t[k]);
    }
    s->distinct = (double)distinct.count / dn;
    s->copy_rate /= dn;
    s->empty_rate /= dn;
    s->echo_rate /= dn;
    s->repetition /= dn;
    s->mean_chars /= dn;
    s->typicality /= dn;
    s->length_ratio = real_chars > 0 ? s->mean_chars / (real_chars / dn) : 0;
    ws_strset_free(&distinct);
}

/* Stylometric distance and verifier against the real replies, then the text measures. */
static void measure_sets(eval *e, ws_fidelity_report *r)
{
    ws_stylo_profile real, other;
    ws_stylo_profile_of((const char *const *)e->txt[WS_FID_REAL], e->n, &real);
    for (int s = 0; s < WS_FID_SETS; s++) {
        ws_fidelity_set *m = &r->set[s];
        ws_stylo_profile_of((const char *const *)e->txt[s], e->n, &other);
        m->style_distance = ws_stylo_distance(&other, &real, &m->parts);
        m->verifier = s == WS_FID_REAL
                          ? 0.5
                          : ws_stylo_verifier((const char *const *)e->txt[WS_FID_REAL], e->n,
                                              (const char *const *)e->txt[s], e->n, e->o.seed + 7);
        measure_texts(e, e->txt[s], m);
    }
}

/* Attribution (information): Cosine Delta (ws_stylo_attributor) over the participants'
 * training-period turns; the judged replies are all held out, so none is among them. */
static void attribute(eval *e, ws_fidelity_report *r)
{
    const ws_pairs *p = e->p;
    ws_stylo_attributor *at = ws_stylo_attributor_new(p->n_participants);
    uint32_t me = p->turns[p->examples[e->ex[0]].turn].author_idx;
    for (size_t t = 0; t < p->n_turns; t++) {
        const ws_turn *tu = &p->turns[t];
        if (tu->reply && tu->start < e->cutoff)
            ws_stylo_attributor_add(at, tu->author_idx, tu->reply);
    }
    /* fewer than 3 turns is too little to stand for a person (the persona always stands) */
    r->n_candidates = ws_stylo_attributor_fit(at, 3, me);
    for (int s = 0; s < WS_FID_SETS; s++) {
        size_t hits = 0;
        for (size_t k = 0; k < e->n; k++)
            hits += ws_stylo_attribute(at, e->txt[s][k]) == me;
        r->set[s].attribution = (double)hits / (double)e->n;
    }
    ws_stylo_attributor_free(at);
}

/* Context-reply cosine for each set; the same-person baseline is its exact expectation over
 * the other held-out replies (sum of their vectors minus this one's); paired t of the clone's
 * gain over it. */
static int relevance(eval *e, ws_fidelity_report *r, ws_error *err)
{
    ws_embedder *own = e->o.embedder ? NULL : ws_embed_hash_new(EMB_DIM),
                *em = e->o.embedder ? e->o.embedder : own;
    size_t D = em->dim, n = e->n;
    snprintf(r->embedder, sizeof r->embedder, "%s", em->name);
    float *c = ws_xmalloc(n * D * sizeof *c), *real = ws_xmalloc(n * D * sizeof *real);
    float *v = ws_xmalloc(D * sizeof *v), *sum = ws_xcalloc(D, sizeof *sum);
    double *gain = ws_xmalloc(n * sizeof *gain);
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++)
        if (!(rc = ws_embedder_embed(em, e->ctx[k], strlen(e->ctx[k]), c + k * D, err)))
            rc = ws_embedder_embed(em, e->txt[WS_FID_REAL][k], strlen(e->txt[WS_FID_REAL][k]), real + k * D,
                                   err);
    for (size_t k = 0; k < n && !rc; k++)
        for (size_t d = 0; d < D; d++)
            sum[d] += real[k * D + d];
    for (int s = 0; s < WS_FID_SETS && !rc; s++) {
        double tot = 0;
        for (size_t k = 0; k < n && !rc; k++) {
            double cos;
            if (s == WS_FID_SAME) {
                double dot = ws_vec_dot(c + k * D, sum, D) - ws_vec_dot(c + k * D, real + k * D, D);
                cos = n > 1 ? dot / (double)(n - 1) : 0;
            } else {
                if ((rc = ws_embedder_embed(em, e->txt[s][k], strlen(e->txt[s][k]), v, err)))
                    break;
                cos = ws_vec_dot(c + k * D, v, D);
            }
            tot += cos;
            if (s == WS_FID_CLONE)
                gain[k] = cos;
            else if (s == WS_FID_SAME)
                gain[k] -= cos;
        }
        r->set[s].relevance = tot / (double)n;
    }
    if (!rc) {
        double m = 0, var = 0;
        for (size_t k = 0; k < n; k++)
            m += gain[k];
        m /= (double)n;
        for (size_t k = 0; k < n; k++)
            var += (gain[k] - m) * (gain[k] - m);
        double se = n > 1 ? sqrt(var / (double)(n - 1) / (double)n) : 0;
        r->relevance_gain = m;
        r->relevance_t = se > 0 ? m / se : (m > 0 ? 99 : 0);
    }
    free(c);
    free(real);
    free(v);
    free(sum);
    free(gain);
    ws_embedder_free(own);
    return rc;
}

/* Up to want distinct held-out replies of the persona other than the true one of example k. */
static size_t rank_candidates(eval *e, size_t k, const char **out, size_t want)
{
    const char *real = e->txt[WS_FID_REAL][k];
    size_t n = 0;
    for (size_t tries = 0; n < want && tries < 40 * want; tries++) {
        size_t j = e->held[rnd(&e->rng) % e->n_held];
        const char *s = e->p->turns[e->p->examples[j].turn].reply;
        bool dup = !strcmp(s, real);
        for (size_t i = 0; i < n && !dup; i++)
            dup = !strcmp(out[i], s);
        if (!dup)
            out[n++] = s;
    }
    return n;
}

/* Distractors a ranking draws from a pool of n. */
static size_t drawn(size_t n)
{
    return n < WS_FIDELITY_RANK_CANDIDATES - 1 ? n : WS_FIDELITY_RANK_CANDIDATES - 1;
}

/* n choose r, in double (n is at most WS_FIDELITY_RANK_POOL). */
static double choose(size_t n, size_t r)
{
    if (r > n)
        return 0;
    double c = 1;
    for (size_t i = 1; i <= r; i++)
        c = c * (double)(n - r + i) / (double)i;
    return c;
}

/* The true reply's expected share (in [0,1]) of first place among itself and drawn(n) of the n
 * scored distractors, over every such draw: a draw with a better distractor gives 0, one with t
 * ties 1 / (t + 1). */
static double first_share(double truth, const double *cand, size_t n)
{
    size_t better = 0, ties = 0, k = drawn(n);
    for (size_t i = 0; i < n; i++) {
        better += cand[i] > truth;
        ties += cand[i] == truth;
    }
    size_t worse = n - better - ties;
    double share = 0;
    for (size_t t = 0; t <= ties && t <= k; t++)
        share += choose(ties, t) * choose(worse, k - t) / (double)(t + 1);
    return share / choose(n, k);
}

/* Scores the true reply and, for ranked examples, the candidates under one model (base or not);
 * adds to the loss sums and the rank shares. */
static int score_example(eval *e, size_t k, bool base, const char **cands, size_t nc, double *nll,
                         size_t *ntok, size_t *nbytes, ws_fidelity_rank *rank, ws_error *err)
{
    const ws_example *x = &e->p->examples[e->ex[k]];
    ws_fidelity_score t = {0}, s = {0};
    int rc = e->o.score(e->o.score_arg, e->p, x, e->txt[WS_FID_REAL][k], base, &t, err);
    if (rc)
        return rc;
    *nll += t.nll, *ntok += t.n_tok, *nbytes += t.n_bytes;
    double mean[WS_FIDELITY_RANK_POOL], total[WS_FIDELITY_RANK_POOL];
    for (size_t i = 0; i < nc; i++) {
        if ((rc = e->o.score(e->o.score_arg, e->p, x, cands[i], base, &s, err)))
            return rc;
        mean[i] = -s.nll / (double)(s.n_tok ? s.n_tok : 1);
        total[i] = -s.nll;
    }
    if (nc) {
        rank->by_mean_logprob += first_share(-t.nll / (double)(t.n_tok ? t.n_tok : 1), mean, nc);
        rank->by_total_logprob += first_share(-t.nll, total, nc);
    }
    return 0;
}

/* Loss of the true replies under the model and its base; R10@1 on the first max_ranked, each
 * against a pool of up to WS_FIDELITY_RANK_POOL distractors. */
static int score_all(eval *e, ws_fidelity_report *r, ws_error *err)
{
    size_t max_ranked = e->o.max_ranked ? e->o.max_ranked : 40, ranked = 0, done = 0,
           want = WS_FIDELITY_RANK_POOL;
    size_t step = e->n > max_ranked ? e->n / max_ranked : 1, ntok = 0, nbytes = 0, ntok_b = 0, nbytes_b = 0;
    double nll = 0, nll_b = 0;
    const char *cands[WS_FIDELITY_RANK_POOL];
    double chance = 0;
    int rc = 0;
    /* past the deadline only while fewer than MIN_RANKED are ranked: R10@1 on fewer is too
     * coarse to judge (10 examples need 3 hits to clear chance + 1.645 standard errors) */
    size_t min_ranked = max_ranked < MIN_RANKED ? max_ranked : MIN_RANKED;
    for (; done < e->n && !rc && (ranked < min_ranked || !over_deadline(e, done)); done++) {
        bool rank_it = done % step == 0 && ranked < max_ranked;
        size_t nc = rank_it ? rank_candidates(e, done, cands, want) : 0;
        rank_it = nc > 0;
        rc = score_example(e, done, false, cands, nc, &nll, &ntok, &nbytes, &r->rank_model, err);
        if (!rc)
            rc = score_example(e, done, true, e->o.base_is_model ? cands : NULL, e->o.base_is_model ? nc : 0,
                               &nll_b, &ntok_b, &nbytes_b, &r->rank_base, err);
        size_t k = drawn(nc);
        ranked += rank_it;
        chance += rank_it ? 1.0 / (double)(k + 1) : 0;
        r->n_rank_candidates = k + 1 > r->n_rank_candidates ? k + 1 : r->n_rank_candidates;
        r->n_rank_pool = nc > r->n_rank_pool ? nc : r->n_rank_pool;
    }
    if (rc || !done)
        return rc;
    r->have_loss = true;
    r->n_scored = done;
    r->model_nll_byte = nll / (double)(nbytes ? nbytes : 1);
    r->base_nll_byte = nll_b / (double)(nbytes_b ? nbytes_b : 1);
    r->loss_lift = r->base_nll_byte - r->model_nll_byte;
    r->model_nll_token = nll / (double)(ntok ? ntok : 1);
    if (ranked) {
        r->have_rank = true;
        r->have_base_rank = e->o.base_is_model;
        r->n_ranked = ranked;
        r->rank_chance = chance / (double)ranked;
        ws_fidelity_rank *rk[2] = {&r->rank_model, &r->rank_base};
        for (int i = 0; i < 2; i++)
            rk[i]->by_mean_logprob /= (double)ranked, rk[i]->by_total_logprob /= (double)ranked;
    }
    return 0;
}

static void eval_free(eval *e)
{
    for (int s = 0; s < WS_FID_SETS; s++) {
        for (size_t k = 0; e->txt[s] && e->txt[s][k]; k++)
            free(e->txt[s][k]);
        free(e->txt[s]);
    }
    for (size_t k = 0; e->ctx && e->ctx[k]; k++)
        free(e->ctx[k]);
    free(e->ctx);
    free(e->msg);
    free(e->held);
    free(e->ex);
    ws_strset_free(&e->train);
}

int ws_fidelity_evaluate(const ws_pairs *p, ws_fidelity_gen_fn gen, void *gen_arg,
                         const ws_fidelity_options *opt, ws_fidelity_report *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    out->n_heldout = p->n_heldout;
    if (!p->n_heldout)
        return ws_error_set(err, WS_EEMPTY, "no held-out examples to evaluate (chat too small)");
    eval e = {.p = p, .train = WS_STRSET_INIT};
    e.o = opt ? *opt : (ws_fidelity_options){0};
    e.o.seed = e.o.seed ? e.o.seed : 1;
    e.rng = e.o.seed * 0x2545F4914F6CDD1Dull;
    out->base_name = e.o.base_name ? e.o.base_name : "base";
    choose_examples(&e);
    int rc = generate(&e, gen, gen_arg, err);
    if (rc)
        goto out;
    out->n_evaluated = e.n;
    draw_baselines(&e, out);
    measure_sets(&e, out);
    attribute(&e, out);
    if ((rc = relevance(&e, out, err)))
        goto out;
    if (e.o.score && (rc = score_all(&e, out, err)))
        goto out;
    ws_fidelity_judge(out);
out:
    eval_free(&e);
    return rc;
}

int ws_fidelity_retrieval_gen(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply,
                              ws_error *err)
{
    const ws_fidelity_retrieval_arg *a = arg;
    const char *turns[WS_RETRIEVAL_KEY_TURNS];
    size_t nt = 0;
    uint32_t first =
        ex->turn - (ex->n_context < WS_RETRIEVAL_KEY_TURNS ? ex->n_context : WS_RETRIEVAL_KEY_TURNS);
    for (uint32_t t = first; t < ex->turn; t++)
        turns[nt++] = p->turns[t].text;
    ws_buf key = WS_BUF_INIT;
    ws_retrieval_key(turns, nt, &key);
    ws_retrieval_hit hit;
    size_t n = 0;
    int rc = ws_retrieval_query(a->r, a->e, key.data, key.len, 1, &hit, &n, err);
    ws_buf_free(&key);
    if (!rc && n)
        ws_buf_puts(reply, hit.reply);
    return rc;
}
