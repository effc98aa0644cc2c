/* The fidelity report (DESIGN.md §3.6) on the held-out examples: the clone's replies against
 * two baselines (a random reply of the same person; a reply by another participant) on loss
 * lift, stylometric distance, per-reply style typicality, real-vs-candidate verifier accuracy,
 * attribution to the right participant, echo/repetition and length; it also sets the
 * persona's confidence threshold from the held-out confidences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/utf8.h"
#include "style/profile.h"

#define EMB_DIM 512
#define N_SETS 3

static const char *const set_names[N_SETS] = {"clone", "same_person_random", "other_participant"};

typedef struct metrics {
    double style_distance, typicality, attribution, verifier, echo, distinct, repetition, mean_chars, length_ratio;
} metrics;

typedef struct who {
    float *centroid;        /* [n_participants][EMB_DIM] */
    double (*rates)[CLONE_SF_N];
    size_t n;
} who;

static void embed(ws_embedder *e, const char *s, float *v)
{
    ws_embedder_embed(e, s, strlen(s), v, NULL);
}

static size_t attribute(ws_embedder *e, const who *w, const char *s)
{
    float v[EMB_DIM];
    embed(e, s, v);
    size_t best = 0;
    double bs = -1e9;
    for (size_t i = 0; i < w->n; i++) {
        double sc = ws_vec_dot(v, w->centroid + i * EMB_DIM, EMB_DIM) + 0.25 * log(clone_style_fit(s, w->rates[i]));
        if (sc > bs)
            bs = sc, best = i;
    }
    return best;
}

/* Leave-one-out nearest-centroid accuracy telling real replies from candidates (0.5 = cannot). */
static double verifier(ws_embedder *e, char **real, char **cand, size_t n)
{
    if (n < 2)
        return 0.5;
    float *v = ws_xmalloc(2 * n * EMB_DIM * sizeof *v);
    double sum[2][EMB_DIM] = {{0}};
    for (size_t i = 0; i < 2 * n; i++) {
        embed(e, i < n ? real[i] : cand[i - n], v + i * EMB_DIM);
        for (size_t d = 0; d < EMB_DIM; d++)
            sum[i >= n][d] += v[i * EMB_DIM + d];
    }
    size_t right = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        int cls = i >= n;
        double s[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            double dot = 0, nn = 0;
            for (size_t d = 0; d < EMB_DIM; d++) {
                double cd = sum[k][d] - (k == cls ? v[i * EMB_DIM + d] : 0);
                dot += cd * v[i * EMB_DIM + d];
                nn += cd * cd;
            }
            s[k] = nn > 0 ? dot / sqrt(nn) : 0;
        }
        /* ties (identical texts on both sides) count half */
        if (fabs(s[0] - s[1]) < 1e-9)
            right += 1;
        else if ((s[1] > s[0]) == (cls == 1))
            right += 2;
    }
    free(v);
    return (double)right / (double)(4 * n);
}

static bool repeats_trigram(const char *s)
{
    /* split on spaces, look for a word 3-gram seen twice */
    char *c = ws_xstrdup(s);
    const char *w[128];
    size_t n = 0;
    for (char *tok = strtok(c, " \n"); tok && n < 128; tok = strtok(NULL, " \n"))
        w[n++] = tok;
    bool rep = false;
    for (size_t i = 0; i + 2 < n && !rep; i++)
        for (size_t j = i + 1; j + 2 < n && !rep; j++)
            rep = !strcmp(w[i], w[j]) && !strcmp(w[i + 1], w[j + 1]) && !strcmp(w[i + 2], w[j + 2]);
    free(c);
    return rep;
}

static void measure(ws_embedder *e, const who *w, size_t persona_idx, const double *rates, char **real,
                    const ws_profile *real_prof, char **cand, char **msgs, size_t n, metrics *m)
{
    memset(m, 0, sizeof *m);
    ws_profile *cp = ws_profile_from_texts((const char *const *)cand, n);
    m->style_distance = ws_profile_distance(cp, real_prof, NULL);
    ws_profile_free(cp);
    ws_strset distinct = WS_STRSET_INIT;
    double real_chars = 0;
    for (size_t i = 0; i < n; i++) {
        m->typicality += clone_style_fit(cand[i], rates);
        m->attribution += attribute(e, w, cand[i]) == persona_idx;
        m->echo += clone_is_echo(cand[i], msgs[i]);
        m->repetition += repeats_trigram(cand[i]);
        m->mean_chars += (double)ws_utf8_count(cand[i], strlen(cand[i]));
        real_chars += (double)ws_utf8_count(real[i], strlen(real[i]));
        ws_strset_add(&distinct, cand[i], strlen(cand[i]));
    }
    double dn = n ? (double)n : 1;
    m->typicality /= dn;
    m->attribution /= dn;
    m->echo /= dn;
    m->repetition /= dn;
    m->mean_chars /= dn;
    m->length_ratio = real_chars > 0 ? m->mean_chars / (real_chars / dn) : 0;
    m->distinct = (double)distinct.count / dn;
    m->verifier = verifier(e, real, cand, n);
    ws_strset_free(&distinct);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

void clone_fidelity_clear(clone_fidelity *f)
{
    free(f->json);
    free(f->summary);
    memset(f, 0, sizeof *f);
}

static void put_metrics(ws_buf *b, const metrics *m)
{
    ws_buf_printf(b,
                  "{\"style_distance\": %.4f, \"typicality\": %.4f, \"attribution\": %.4f, \"verifier_accuracy\": %.4f, "
                  "\"echo_rate\": %.4f, \"distinct\": %.4f, \"repetition\": %.4f, \"mean_chars\": %.1f, "
                  "\"length_ratio\": %.3f}",
                  m->style_distance, m->typicality, m->attribution, m->verifier, m->echo, m->distinct, m->repetition,
                  m->mean_chars, m->length_ratio);
}

int clone_fidelity_run(const ws_clone *c, const ws_pairs *p, size_t max_eval, double deadline_s,
                       const double *unigram_logp, uint64_t seed, clone_fidelity *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    ws_embedder *e = ws_embed_hash_new(EMB_DIM);
    size_t np = p->n_participants, persona_idx = 0;
    who w = {ws_xcalloc(np * EMB_DIM, sizeof(float)), ws_xcalloc(np, sizeof(double[CLONE_SF_N])), np};
    size_t *held = ws_xcalloc(p->n_heldout + 1, sizeof *held), nh = 0;
    for (size_t i = 0; i < p->n_examples; i++)
        if (p->examples[i].heldout)
            held[nh++] = i;
    int64_t cut = nh ? p->turns[p->examples[held[0]].turn].start : INT64_MAX;

    /* who writes how, from the training period */
    char ***texts = ws_xcalloc(np, sizeof *texts);
    size_t *nt = ws_xcalloc(np, sizeof *nt);
    char **others_late = ws_xcalloc(p->n_turns + 1, sizeof *others_late);
    size_t n_late = 0;
    float v[EMB_DIM];
    for (size_t t = 0; t < p->n_turns; t++) {
        const ws_turn *tu = &p->turns[t];
        if (!tu->reply)
            continue;
        if (tu->persona)
            persona_idx = tu->author_idx;
        if (tu->start >= cut) {
            if (!tu->persona)
                others_late[n_late++] = (char *)tu->reply;
            continue;
        }
        size_t a = tu->author_idx;
        texts[a] = ws_xrealloc(texts[a], (nt[a] + 1) * sizeof *texts[a]);
        texts[a][nt[a]++] = (char *)tu->reply;
        embed(e, tu->reply, v);
        for (size_t d = 0; d < EMB_DIM; d++)
            w.centroid[a * EMB_DIM + d] += v[d];
    }
    for (size_t a = 0; a < np; a++) {
        ws_vec_normalize(w.centroid + a * EMB_DIM, EMB_DIM);
        clone_style_rates((const char *const *)texts[a], nt[a], w.rates[a]);
    }
    if (!n_late)   /* nobody else wrote after the cut: draw from the training period */
        for (size_t a = 0; a < np; a++)
            if (a != persona_idx)
                for (size_t i = 0; i < nt[a]; i++)
                    others_late[n_late++] = texts[a][i];

    /* replies */
    size_t ne = nh < max_eval ? nh : max_eval;
    char **real = ws_xcalloc(ne + 1, sizeof *real), **msgs = ws_xcalloc(ne + 1, sizeof *msgs);
    char **sets[N_SETS];
    for (int k = 0; k < N_SETS; k++)
        sets[k] = ws_xcalloc(ne + 1, sizeof(char *));
    double *conf = ws_xcalloc(ne + 1, sizeof *conf);
    double nll = 0, nll_base = 0;
    size_t ntok = 0, nbytes = 0, done = 0, n_gen = 0;
    uint64_t rs = seed * 2654435761u + 12345;
    ws_clone_turn *ctx = ws_xcalloc(16, sizeof *ctx);
    for (size_t k = 0; k < ne; k++) {
        if (k >= 5 && ws_now_s() > deadline_s)
            break;
        const ws_example *ex = &p->examples[held[k * nh / ne]];
        size_t n_ctx = 0;
        const char *ctexts[16];
        bool cme[16];
        for (uint32_t t = ex->ctx_first; t < ex->turn && n_ctx < 16; t++) {
            ctx[n_ctx].author = p->turns[t].author;
            ctx[n_ctx].text = p->turns[t].text;
            ctexts[n_ctx] = p->turns[t].text;
            cme[n_ctx] = p->turns[t].persona;
            n_ctx++;
        }
        if (!n_ctx)
            continue;
        const char *message = ctx[n_ctx - 1].text;
        ws_clone_reply_opts ro = {.no_fallback = true, .seed = seed + k};
        ws_clone_answer r;
        if ((rc = ws_clone_reply(c, message, ctx, n_ctx - 1, &ro, &r, err)))
            goto out;
        n_gen += r.source == WS_CLONE_SRC_GENERATED;
        sets[0][done] = r.reply;
        conf[done] = r.confidence;
        r.reply = NULL;
        sets[1][done] = ws_xstrdup(c->replies[rnd(&rs) % c->n_replies]);
        sets[2][done] = ws_xstrdup(n_late ? others_late[rnd(&rs) % n_late] : "ok");
        real[done] = ws_xstrdup(p->turns[ex->turn].reply);
        msgs[done] = ws_xstrdup(message);
        double l = 0;
        size_t n = 0;
        if ((rc = clone_reply_loss(c, ctexts, cme, n_ctx, real[done], false, &l, &n, err)))
            goto out;
        nll += l;
        ntok += n;
        size_t rb = strlen(real[done]);
        nbytes += (rb < CLONE_REPLY_BYTES ? rb : CLONE_REPLY_BYTES) + 1;   /* + the end of the turn */
        if (c->lora) {
            if ((rc = clone_reply_loss(c, ctexts, cme, n_ctx, real[done], true, &l, &n, err)))
                goto out;
            nll_base += l;
        } else if (unigram_logp) {
            for (const unsigned char *s = (const unsigned char *)real[done]; *s && s - (const unsigned char *)real[done] < CLONE_REPLY_BYTES; s++)
                nll_base -= unigram_logp[*s];
            nll_base -= unigram_logp[CLONE_TOK_END];
        }
        done++;
    }
    if (!done) {
        rc = ws_error_set(err, WS_EINVAL, "no held-out example could be evaluated");
        goto out;
    }

    ws_profile *real_prof = ws_profile_from_texts((const char *const *)real, done);
    metrics m[N_SETS];
    for (int k = 0; k < N_SETS; k++)
        measure(e, &w, persona_idx, c->rates, real, real_prof, sets[k], msgs, done, &m[k]);
    ws_profile_free(real_prof);
    double *sorted = ws_xmalloc(done * sizeof *sorted);
    memcpy(sorted, conf, done * sizeof *sorted);
    qsort(sorted, done, sizeof *sorted, cmp_d);
    out->threshold = 0.5 * sorted[(size_t)(0.02 * (double)done)];
    double mean_conf = 0;
    for (size_t i = 0; i < done; i++)
        mean_conf += conf[i];
    mean_conf /= (double)done;
    free(sorted);
    /* per byte of reply text (the end of turn counting as one), comparable across tokenizers */
    double model_nll = nll / (double)(nbytes ? nbytes : 1), base_nll = nll_base / (double)(nbytes ? nbytes : 1);
    double lift = base_nll - model_nll, per_token = nll / (double)(ntok ? ntok : 1);
    bool beats_other = m[0].style_distance < m[2].style_distance && m[0].attribution > m[2].attribution &&
                       m[0].typicality > m[2].typicality;
    bool beats_same = m[0].attribution >= m[1].attribution && m[0].typicality > m[1].typicality;
    out->beats_baselines = beats_other && beats_same && lift > 0;

    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "{\n  \"persona\": ");
    ws_json_put_cstr(&b, c->persona);
    ws_buf_printf(&b, ",\n  \"heldout_examples\": %zu,\n  \"evaluated\": %zu,\n  \"generated_share\": %.3f,\n", nh,
                  done, (double)n_gen / (double)done);
    ws_buf_printf(&b, "  \"loss\": {\"model_nats_per_byte\": %.4f, \"base_nats_per_byte\": %.4f, \"base\": \"%s\", "
                      "\"lift\": %.4f, \"model_nats_per_token\": %.4f},\n",
                  model_nll, base_nll, c->lora ? "base model without adapter" : "unigram byte model of the chat", lift,
                  per_token);
    ws_buf_puts(&b, "  \"sets\": {");
    for (int k = 0; k < N_SETS; k++) {
        ws_buf_printf(&b, "%s\n    \"%s\": ", k ? "," : "", set_names[k]);
        put_metrics(&b, &m[k]);
    }
    ws_buf_printf(&b, "\n  },\n  \"real_mean_chars\": %.1f,\n  \"confidence_mean\": %.4f,\n  \"threshold\": %.4f,\n",
                  m[0].length_ratio > 0 ? m[0].mean_chars / m[0].length_ratio : 0, mean_conf, out->threshold);
    ws_buf_printf(&b, "  \"beats\": {\"other_participant\": %s, \"same_person_random\": %s},\n  \"beats_baselines\": %s,\n",
                  beats_other ? "true" : "false", beats_same ? "true" : "false",
                  out->beats_baselines ? "true" : "false");
    ws_buf_puts(&b, "  \"samples\": [");
    for (size_t i = 0; i < done && i < 6; i++) {
        ws_buf_puts(&b, i ? ",\n    {\"message\": " : "\n    {\"message\": ");
        ws_json_put_cstr(&b, msgs[i]);
        ws_buf_puts(&b, ", \"real\": ");
        ws_json_put_cstr(&b, real[i]);
        ws_buf_puts(&b, ", \"clone\": ");
        ws_json_put_cstr(&b, sets[0][i]);
        ws_buf_printf(&b, ", \"confidence\": %.3f}", conf[i]);
    }
    ws_buf_puts(&b, "\n  ]\n}\n");
    out->json = ws_buf_take(&b);

    ws_buf_printf(&b, "Fidelity of the clone of %s on %zu held-out replies (of %zu)\n", c->persona, done, nh);
    ws_buf_printf(&b, "  loss: %.3f nats/byte vs %.3f for the %s (lift %+.3f)\n", model_nll, base_nll,
                  c->lora ? "base model" : "unigram baseline", lift);
    ws_buf_printf(&b, "  %-26s %10s %12s %16s\n", "", "clone", "same person", "other person");
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "style distance (lower)", m[0].style_distance,
                  m[1].style_distance, m[2].style_distance);
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "style typicality (higher)", m[0].typicality, m[1].typicality,
                  m[2].typicality);
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "attributed to them (higher)", m[0].attribution,
                  m[1].attribution, m[2].attribution);
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "verifier acc. (0.5 ideal)", m[0].verifier, m[1].verifier,
                  m[2].verifier);
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "echoes the message", m[0].echo, m[1].echo, m[2].echo);
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "distinct replies", m[0].distinct, m[1].distinct,
                  m[2].distinct);
    ws_buf_printf(&b, "  %-26s %10.3f %12.3f %16.3f\n", "length / real length", m[0].length_ratio,
                  m[1].length_ratio, m[2].length_ratio);
    ws_buf_printf(&b, "  confidence threshold %.3f (half the 2nd percentile of held-out confidences); %s both baselines\n",
                  out->threshold, out->beats_baselines ? "beats" : "does NOT beat");
    out->summary = ws_buf_take(&b);
out:
    for (int k = 0; k < N_SETS; k++) {
        for (size_t i = 0; i < ne; i++)
            free(sets[k][i]);
        free(sets[k]);
    }
    for (size_t i = 0; i < ne; i++) {
        free(real[i]);
        free(msgs[i]);
    }
    free(real);
    free(msgs);
    free(conf);
    free(ctx);
    for (size_t a = 0; a < np; a++)
        free(texts[a]);
    free(texts);
    free(nt);
    free(others_late);
    free(held);
    free(w.centroid);
    free(w.rates);
    ws_embedder_free(e);
    return rc;
}
