/* Unit tests for the fidelity report (src/style/fidelity, src/style/stylometry) on a synthetic
 * two-person chat where Ann's replies answer Bob's messages (they name his topic): an oracle
 * clone (the true held-out replies) passes the verdict; negative controls — a constant clone
 * (Ann's most frequent training reply), a clone answering with Bob's replies and a clone echoing
 * the message — fail it; R10@1 through a small context-aware word model, and over a pool of distractors
 * (1, chance and 0 for a true reply above, level with and below them all); the retrieval
 * baseline; errors. */
#include "harness.h"

#include <math.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/strset.h"
#include "style/embed.h"
#include "style/fidelity.h"
#include "style/pairs.h"
#include "style/retrieval.h"
#include "style/stylometry.h"

static const char *topics[] = {"pizza",  "cinema", "beach",  "train", "dentist", "football",
                               "garden", "guitar", "museum", "party", "exam",    "bakery"};
static const char *slang_a[] = {"omg", "lol", "haha", "wait", "ugh", "yay", "ok so", "ngl"};
static const char *slang_b[] = {"yes", "tmrw?", "im in", "pls", "no way", "same", "later", "cool"};

static uint64_t rs = 99;
static unsigned rnd(unsigned n)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rs >> 33) % n);
}

/* Bob writes formal sentences about a topic; Ann answers in short lower-case slang that names it. */
static ws_pairs *chat(size_t turns)
{
    ws_pairs_builder *b = ws_pairs_builder_new("Ann", NULL);
    char text[192];
    rs = 99;
    const char *topic = topics[0];
    for (size_t i = 0; i < turns; i++) {
        bool ann = i % 2;
        if (ann) {
            if (rnd(6) == 0)
                snprintf(text, sizeof text, "%s", "haha ok");
            else
                snprintf(text, sizeof text, "%s the %s %s", slang_a[rnd(8)], topic, slang_b[rnd(8)]);
        } else {
            topic = topics[rnd(12)];
            snprintf(text, sizeof text,
                     "Good morning. I have been thinking about the %s, and I would like to %s.", topic,
                     rnd(2) ? "hear what you think of it" : "plan it with you this week");
        }
        ws_message m = {0};
        m.ts = (ws_datetime){2024, 1 + (int)(i / 400), 1 + (int)(i / 16) % 25, 10, (int)(i % 16) * 3, 0};
        m.author = ann ? "Ann" : "Bob";
        m.author_len = 3;
        m.text = text;
        m.text_len = strlen(text);
        ws_pairs_builder_add(b, &m);
    }
    ws_pairs *p = NULL;
    CHECK_EQ_INT(ws_pairs_builder_finish(b, &p, NULL), 0);
    return p;
}

static int oracle(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    ws_buf_puts(reply, p->turns[ex->turn].reply);
    return 0;
}

/* Always the persona's most frequent training reply. */
static int constant(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    ws_strset s = WS_STRSET_INIT;
    size_t *count = ws_xcalloc(p->n_examples + 1, sizeof *count), best = 0;
    for (size_t i = 0; i < p->n_examples; i++)
        if (!p->examples[i].heldout) {
            const char *r = p->turns[p->examples[i].turn].reply;
            size_t k = ws_strset_add(&s, r, strlen(r));
            if (++count[k] > count[best])
                best = k;
        }
    ws_buf_puts(reply, s.items[best]);
    free(count);
    ws_strset_free(&s);
    return 0;
}

/* Another participant's replies: Bob's turns, in turn. */
static int other_person(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    size_t *next = arg;
    for (size_t t = (*next)++ % p->n_turns; t < p->n_turns; t++)
        if (!p->turns[t].persona && p->turns[t].reply) {
            ws_buf_puts(reply, p->turns[t].reply);
            *next = t + 1;
            return 0;
        }
    ws_buf_puts(reply, p->turns[0].reply);
    return 0;
}

static int echo(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    ws_buf_puts(reply, p->turns[ex->turn - 1].text);
    return 0;
}

static int failing(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    return ws_error_set(err, WS_EIO, "model went away");
}

static const ws_fidelity_criterion *criterion(const ws_fidelity_report *r, const char *name)
{
    for (size_t i = 0; i < r->n_criteria; i++)
        if (!strcmp(r->criteria[i].name, name))
            return &r->criteria[i];
    return NULL;
}

static bool passes(const ws_fidelity_report *r, const char *name)
{
    const ws_fidelity_criterion *c = criterion(r, name);
    return c && c->measured && c->pass;
}

static void show(const char *what, const ws_fidelity_report *r)
{
    ws_buf b = WS_BUF_INIT;
    ws_fidelity_summary(r, &b);
    fprintf(stderr, "--- %s\n%s", what, b.data);
    ws_buf_free(&b);
}

static void oracle_passes(void)
{
    ws_pairs *p = chat(600);
    if (!p)
        return;
    CHECK_EQ_INT(p->n_heldout, 30);
    ws_fidelity_report r;
    ws_error err = {0};
    CHECK_EQ_INT(ws_fidelity_evaluate(p, oracle, NULL, NULL, &r, &err), 0);
    show("oracle", &r);
    CHECK_EQ_INT(r.n_evaluated, 30);
    CHECK(r.other_from_heldout);
    CHECK_NEAR(r.set[WS_FID_CLONE].style_distance, 0, 1e-12);
    CHECK_NEAR(r.set[WS_FID_CLONE].verifier, 0.5, 1e-12); /* same texts: one of each pair right */
    CHECK(r.set[WS_FID_OTHER].verifier > 0.9);
    CHECK(r.set[WS_FID_OTHER].style_distance > 3 * r.set[WS_FID_SAME].style_distance);
    CHECK(r.set[WS_FID_CLONE].relevance > r.set[WS_FID_SAME].relevance);
    CHECK(passes(&r, "relevance_embedding"));
    CHECK_NEAR(r.set[WS_FID_CLONE].copy_rate, r.set[WS_FID_REAL].copy_rate, 1e-12);
    CHECK(r.set[WS_FID_CLONE].attribution > 0.8 && r.set[WS_FID_OTHER].attribution < 0.2);
    CHECK_EQ_INT(r.n_candidates, 2);
    CHECK(!r.have_loss && !r.have_rank);
    CHECK(criterion(&r, "loss_lift") && !criterion(&r, "loss_lift")->measured);
    CHECK(r.pass && r.beats_other && r.beats_same);
    ws_pairs_free(p);
}

static void negative_controls_fail(void)
{
    ws_pairs *p = chat(600);
    if (!p)
        return;
    ws_fidelity_report r;
    ws_error err = {0};
    CHECK_EQ_INT(ws_fidelity_evaluate(p, constant, NULL, NULL, &r, &err), 0);
    show("constant", &r);
    CHECK(!r.pass);
    CHECK(!passes(&r, "distinct_replies") && !passes(&r, "copy_rate"));
    CHECK(r.set[WS_FID_CLONE].distinct < 0.05 && r.set[WS_FID_CLONE].copy_rate == 1.0);
    CHECK(!passes(&r, "relevance_embedding"));

    size_t next = 0;
    CHECK_EQ_INT(ws_fidelity_evaluate(p, other_person, &next, NULL, &r, &err), 0);
    show("other person", &r);
    CHECK(!r.pass && !r.beats_other);
    CHECK(!passes(&r, "style_distance") && !passes(&r, "verifier"));
    CHECK(r.set[WS_FID_CLONE].attribution < 0.2);

    CHECK_EQ_INT(ws_fidelity_evaluate(p, echo, NULL, NULL, &r, &err), 0);
    show("echo", &r);
    CHECK(!r.pass);
    CHECK(!passes(&r, "echo_rate") && !passes(&r, "style_distance"));
    CHECK_NEAR(r.set[WS_FID_CLONE].echo_rate, 1.0, 1e-12);
    CHECK(r.set[WS_FID_CLONE].relevance > r.set[WS_FID_REAL].relevance); /* relevance alone is not enough */
    ws_pairs_free(p);
}

/* A small real language model over words: a unigram of the training replies (add-one) in
 * which the rarer words (unigram probability under 5%) that occur in the message answered are
 * BOOST + 1 times as likely (renormalised), ending with an end-of-turn token. Base: the unigram
 * alone. */
#define BOOST 30.0
typedef struct wordlm {
    ws_strset vocab;
    double *count, total;
} wordlm;

static double unigram(const wordlm *m, const char *w, size_t n)
{
    long k = ws_strset_find(&m->vocab, w, n);
    return ((k >= 0 ? m->count[k] : 0) + 1) / (m->total + (double)m->vocab.count + 1);
}

static bool in_context(const char *ctx, const char *w, size_t n)
{
    for (const char *s = ctx; *s;) {
        size_t l = strcspn(s, " ,.\n");
        if (l == n && !memcmp(s, w, n))
            return true;
        s += l + (s[l] != '\0');
    }
    return false;
}

static double word_logp(const wordlm *m, const char *w, size_t n, const char *ctx, bool base)
{
    double uni = unigram(m, w, n);
    if (base)
        return log(uni);
    double z = 1;
    for (const char *s = ctx; *s;) { /* the normaliser: boosted mass of the message's rare words */
        size_t l = strcspn(s, " ,.\n");
        double u = l ? unigram(m, s, l) : 1;
        if (u < 0.05 && ws_strset_find(&m->vocab, s, l) >= 0)
            z += BOOST * u;
        s += l + (s[l] != '\0');
    }
    return log(uni * (uni < 0.05 && in_context(ctx, w, n) ? 1 + BOOST : 1) / z);
}

static int wordlm_score(void *arg, const ws_pairs *p, const ws_example *ex, const char *reply, bool base,
                        ws_fidelity_score *out, ws_error *err)
{
    const wordlm *m = arg;
    const char *ctx = p->turns[ex->turn - 1].text;
    out->nll = -log(0.2); /* end of turn */
    out->n_tok = 1;
    for (const char *s = reply; *s;) {
        size_t l = strcspn(s, " ");
        if (l) {
            out->nll -= word_logp(m, s, l, ctx, base);
            out->n_tok++;
        }
        s += l + (s[l] != '\0');
    }
    out->n_bytes = strlen(reply) + 1;
    return 0;
}

static void ranking_with_a_scorer(void)
{
    ws_pairs *p = chat(600);
    if (!p)
        return;
    wordlm m = {WS_STRSET_INIT, ws_xcalloc(4096, sizeof(double)), 0};
    for (size_t i = 0; i < p->n_examples; i++)
        if (!p->examples[i].heldout)
            for (const char *s = p->turns[p->examples[i].turn].reply; *s;) {
                size_t l = strcspn(s, " ");
                if (l && m.vocab.count < 4000) {
                    m.count[ws_strset_add(&m.vocab, s, l)] += 1;
                    m.total += 1;
                }
                s += l + (s[l] != '\0');
            }
    ws_fidelity_options o = {
        .score = wordlm_score, .score_arg = &m, .base_is_model = true, .base_name = "unigram"};
    ws_fidelity_report r;
    CHECK_EQ_INT(ws_fidelity_evaluate(p, oracle, NULL, &o, &r, NULL), 0);
    show("oracle with a word model", &r);
    CHECK(r.have_loss && r.have_rank && r.have_base_rank);
    CHECK_EQ_INT(r.n_ranked, 30);
    CHECK_EQ_INT(r.n_rank_candidates, WS_FIDELITY_RANK_CANDIDATES);
    CHECK(r.rank_chance >= 0.1 && r.rank_chance < 0.12);
    CHECK(r.rank_model.by_mean_logprob > 0.4); /* the topic word gives the true reply away */
    CHECK(r.rank_base.by_mean_logprob < r.rank_model.by_mean_logprob);
    CHECK(r.loss_lift > 0 && r.base_nll_byte > r.model_nll_byte);
    CHECK(passes(&r, "relevance_ranking") && passes(&r, "loss_lift"));
    CHECK(r.pass);

    ws_buf j = WS_BUF_INIT;
    ws_fidelity_to_json(&r, &j);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(j.data, j.len, &doc, NULL), 0);
    if (doc) {
        const ws_json *root = ws_json_root(doc),
                      *rank = ws_json_get(ws_json_get(root, "relevance"), "ranking");
        double v = 0;
        bool beats = false;
        CHECK(ws_json_get_bool(root, "beats_baselines", &beats) && beats);
        CHECK(ws_json_get_num(ws_json_get(rank, "model"), "r10_at_1_mean_logprob", &v) && v > 0.4);
        CHECK(ws_json_get_num(rank, "pool", &v) && v == (double)r.n_rank_pool && v > 9);
        CHECK(ws_json_get_num(ws_json_get(ws_json_get(root, "sets"), "clone"), "copy_rate", &v));
        CHECK(ws_json_get_num(ws_json_get(root, "loss"), "lift", &v) && v > 0);
        const ws_json *crit = ws_json_get(ws_json_get(root, "verdict"), "criteria");
        CHECK(crit && crit->type == WS_JSON_ARRAY && crit->len == r.n_criteria);
        ws_json_doc_free(doc);
    }
    ws_buf_free(&j);
    ws_strset_free(&m.vocab);
    free(m.count);
    ws_pairs_free(p);
}

/* Scores every distractor alike and the true reply above them (*arg 0), level with them (1) or
 * below them (2). */
static int placed_score(void *arg, const ws_pairs *p, const ws_example *ex, const char *reply, bool base,
                        ws_fidelity_score *out, ws_error *err)
{
    int place = *(const int *)arg;
    bool truth = !strcmp(reply, p->turns[ex->turn].reply);
    out->nll = truth ? 1.0 + place : 2.0;
    out->n_tok = 1;
    out->n_bytes = strlen(reply) + 1;
    return 0;
}

/* R10@1 is the expected share of first place over every draw of 9 distractors from a pool of up
 * to WS_FIDELITY_RANK_POOL: 1 above them all, exactly chance level with them all (ties split),
 * 0 below them all. */
static void ranking_over_a_pool(void)
{
    ws_pairs *p = chat(600);
    if (!p)
        return;
    for (int place = 0; place < 3; place++) {
        ws_fidelity_options o = {.score = placed_score, .score_arg = &place};
        ws_fidelity_report r;
        CHECK_EQ_INT(ws_fidelity_evaluate(p, oracle, NULL, &o, &r, NULL), 0);
        CHECK(r.have_rank && !r.have_base_rank);
        CHECK_EQ_INT(r.n_rank_candidates, WS_FIDELITY_RANK_CANDIDATES);
        CHECK(r.n_rank_pool > 2 * WS_FIDELITY_RANK_CANDIDATES && r.n_rank_pool <= WS_FIDELITY_RANK_POOL);
        double want = place == 0 ? 1.0 : place == 1 ? r.rank_chance : 0.0;
        CHECK_NEAR(r.rank_model.by_mean_logprob, want, 1e-9);
        CHECK_NEAR(r.rank_model.by_total_logprob, want, 1e-9);
    }
    ws_pairs_free(p);
}

static void stylometry_tells_writers_apart(void)
{
    const char *ann[] = {"omg the pizza yes", "lol cinema tmrw?", "haha ok", "ugh the exam\nsame",
                         "yay beach"};
    const char *bob[] = {"Good morning. I would like to plan it with you this week.",
                         "Thank you for the invitation, I shall be there on time.",
                         "I have been thinking about the museum, and I would like to hear from you.",
                         "Please let me know when the train leaves.",
                         "That is a very kind offer, thank you."};
    ws_stylo_profile a, a2, b;
    ws_stylo_profile_of(ann, 5, &a);
    ws_stylo_profile_of(ann, 5, &a2);
    ws_stylo_profile_of(bob, 5, &b);
    ws_stylo_parts parts;
    CHECK_NEAR(ws_stylo_distance(&a, &a2, NULL), 0, 1e-12);
    double d = ws_stylo_distance(&a, &b, &parts);
    CHECK(d > 0.3 && d <= 1);
    CHECK(parts.function_words > 0.3 && parts.length > 0.3 && parts.bursts > 0);
    CHECK(a.burst[1] == 1 && b.burst[0] == 5);
    ws_stylo_profile es;
    const char *spanish[] = {"pero que es lo que pasa con el tren", "yo no se si la fiesta es hoy"};
    ws_stylo_profile_of(spanish, 2, &es);
    CHECK(es.lang[1] > es.lang[0]);
    ws_stylo_profile_of(NULL, 0, &es);
    CHECK(ws_stylo_distance(&es, &es, NULL) == 0);
    CHECK(ws_stylo_verifier(ann, 5, bob, 5, 3) > 0.8);
    CHECK_NEAR(ws_stylo_verifier(ann, 5, ann, 5, 3), 0.5, 1e-12);
}

static const char *const known_texts[3][4] = {
    {"omg the pizza yes", "lol cinema tmrw?", "haha ok", "ugh the exam\nsame"},
    {"Good morning. I would like to plan it with you this week.",
     "Thank you for the invitation, I shall be there on time.", "Please let me know when the train leaves.",
     "That is a very kind offer, thank you."},
    {"WHAT!! NO WAY!!", "THE BEACH!!! NOW!!", "YES YES YES!!", "CALL ME!!"}};

/* An attributor fed the known texts, the third writer's first `third` only. */
static ws_stylo_attributor *fed(size_t third)
{
    ws_stylo_attributor *a = ws_stylo_attributor_new(3);
    for (size_t w = 0; w < 3; w++)
        for (size_t k = 0; k < (w == 2 ? third : 4); k++)
            ws_stylo_attributor_add(a, w, known_texts[w][k]);
    return a;
}

/* Cosine Delta: three writers who differ in case, length and punctuation; texts not fed are
 * given to their writer; an author under min_texts stands only when kept. */
static void attribution_by_cosine_delta(void)
{
    const char *unseen[3] = {"yay beach tmrw?", "I would be glad to come, thank you for asking.",
                             "STOP IT!! NOW!!"};
    ws_stylo_attributor *a = fed(4);
    ws_stylo_attributor_add(a, 7, "no such author: ignored");
    CHECK(ws_stylo_attribute(a, "x") == SIZE_MAX); /* not fitted */
    CHECK_EQ_INT((int)ws_stylo_attributor_fit(a, 3, SIZE_MAX), 3);
    for (size_t w = 0; w < 3; w++) {
        CHECK_EQ_INT((int)ws_stylo_attribute(a, unseen[w]), (int)w);
        for (size_t k = 0; k < 4; k++)
            CHECK_EQ_INT((int)ws_stylo_attribute(a, known_texts[w][k]), (int)w);
    }
    ws_stylo_attributor_free(a);
    a = fed(1); /* the third writer with one text: no candidate unless kept */
    ws_stylo_attributor *kept = fed(1);
    CHECK_EQ_INT((int)ws_stylo_attributor_fit(a, 3, SIZE_MAX), 2);
    CHECK_EQ_INT((int)ws_stylo_attributor_fit(kept, 3, 2), 3);
    CHECK(ws_stylo_attribute(a, unseen[2]) != 2);
    CHECK_EQ_INT((int)ws_stylo_attribute(kept, unseen[2]), 2);
    ws_stylo_attributor_free(a);
    ws_stylo_attributor_free(kept);
    ws_stylo_attributor_free(NULL);
}

static void retrieval_baseline(void)
{
    ws_pairs *p = chat(600);
    if (!p)
        return;
    ws_embedder *e = ws_embed_hash_new(256);
    ws_retrieval *r = NULL;
    CHECK_EQ_INT(ws_retrieval_build(p, e, NULL, &r, NULL), 0);
    ws_fidelity_retrieval_arg a = {r, e};
    ws_fidelity_report rep;
    CHECK_EQ_INT(ws_fidelity_evaluate(p, ws_fidelity_retrieval_gen, &a,
                                      &(ws_fidelity_options){.max_examples = 20, .embedder = e}, &rep, NULL),
                 0);
    CHECK_EQ_INT(rep.n_evaluated, 20);
    CHECK_NEAR(rep.set[WS_FID_CLONE].copy_rate, 1.0, 1e-9); /* it only ever answers with training replies */
    CHECK(!passes(&rep, "copy_rate") && !rep.pass);
    CHECK(strcmp(rep.embedder, "hash-ngram-256") == 0);
    ws_retrieval_free(r);
    ws_embedder_free(e);
    ws_pairs_free(p);
}

static void errors(void)
{
    ws_pairs *p = chat(2); /* one example: nothing held out */
    ws_fidelity_report rep;
    ws_error err = {0};
    if (p)
        CHECK_EQ_INT(ws_fidelity_evaluate(p, oracle, NULL, NULL, &rep, &err), WS_EEMPTY);
    ws_pairs_free(p);
    p = chat(100);
    if (p) {
        CHECK_EQ_INT(ws_fidelity_evaluate(p, failing, NULL, NULL, &rep, &err), WS_EIO);
        CHECK(strstr(err.msg, "went away") != NULL);
    }
    ws_pairs_free(p);
}

WS_TEST_MAIN(T(oracle_passes), T(negative_controls_fail), T(ranking_with_a_scorer), T(ranking_over_a_pool),
             T(stylometry_tells_writers_apart), T(attribution_by_cosine_delta), T(retrieval_baseline),
             T(errors))
