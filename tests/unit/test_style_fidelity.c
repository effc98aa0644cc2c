/* Unit tests for the fidelity report (src/style/fidelity): a perfect clone, a clone that writes
 * like someone else, and the retrieval baseline. */
#include "harness.h"

#include "core/json.h"
#include "style/embed.h"
#include "style/fidelity.h"
#include "style/pairs.h"
#include "style/retrieval.h"

static const char *ann_words[] = {"haha", "omg", "yes", "no",    "lol", "ok",
                                  "cool", "see", "u",   "later", "pls", "yay"};
static const char *bob_lines[] = {
    "Good morning. Are we still meeting at the office tomorrow?",
    "I have sent the documents to the accountant, please check them.",
    "The weather is lovely today, I think we should go for a walk.",
    "Please remember to bring the keys when you come over.",
    "I will be a bit late, the train is delayed again.",
    "Thank you for dinner yesterday, it was wonderful.",
};

static uint64_t rs = 99;
static unsigned rnd(unsigned n)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rs >> 33) % n);
}

static ws_pairs *chat(size_t turns)
{
    ws_pairs_builder *b = ws_pairs_builder_new("Ann", NULL);
    char text[128];
    for (size_t i = 0; i < turns; i++) {
        bool ann = i % 2;
        if (ann) {
            /* 2-4 lower-case slang words, sometimes an emoji */
            int w = 2 + (int)rnd(3);
            text[0] = '\0';
            for (int k = 0; k < w; k++) {
                strcat(text, k ? " " : "");
                strcat(text, ann_words[rnd(12)]);
            }
            if (rnd(3) == 0)
                strcat(text, " \xf0\x9f\x98\x82");
        } else {
            snprintf(text, sizeof text, "%s", bob_lines[rnd(6)]);
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
    (void)arg;
    (void)err;
    ws_buf_puts(reply, p->turns[ex->turn].reply);
    return 0;
}

static int impostor(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    (void)arg;
    (void)p;
    (void)err;
    ws_buf_puts(reply, bob_lines[ex->turn % 6]);
    return 0;
}

static int failing(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    return ws_error_set(err, WS_EIO, "model went away");
}

static void perfect_and_impostor_clones(void)
{
    ws_pairs *p = chat(400);
    if (!p)
        return;
    CHECK_EQ_INT(p->n_heldout, 20);
    ws_fidelity_report good, bad;
    ws_error err = {0};
    CHECK_EQ_INT(ws_fidelity_evaluate(p, oracle, NULL,
                                      &(ws_fidelity_options){.base_loss = 3.2, .model_loss = 2.5}, &good,
                                      &err),
                 0);
    CHECK_EQ_INT(good.n_evaluated, 20);
    CHECK(good.have_loss);
    CHECK_NEAR(good.loss_lift, 0.7, 1e-9);
    CHECK_NEAR(good.distance.total, 0, 1e-9);
    CHECK(good.verifier_accuracy <= 0.6);
    CHECK_NEAR(good.attribution, good.attribution_real, 1e-9);
    CHECK(good.attribution > 0.8);
    CHECK_EQ_INT(good.n_candidates, 2);
    CHECK_NEAR(good.len_ratio, 1, 1e-9);
    CHECK_NEAR(good.empty_rate, 0, 0);

    CHECK_EQ_INT(ws_fidelity_evaluate(p, impostor, NULL, NULL, &bad, &err), 0);
    CHECK(!bad.have_loss);
    CHECK(bad.distance.total > good.distance.total + 0.3);
    CHECK(bad.verifier_accuracy > 0.9);
    CHECK(bad.attribution < 0.2);
    CHECK(bad.len_ratio > 2);
    CHECK(bad.top_reply_share >= 0.15);
    CHECK(bad.natural_distance.total < bad.distance.total);

    ws_buf j = WS_BUF_INIT;
    ws_fidelity_to_json(&bad, &j);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(j.data, j.len, &doc, NULL), 0);
    if (doc) {
        double v = 0;
        const ws_json *root = ws_json_root(doc);
        CHECK(ws_json_get_num(root, "verifier_accuracy", &v) && v > 0.9);
        CHECK(ws_json_get(root, "loss") && ws_json_get(root, "loss")->type == WS_JSON_NULL);
        CHECK(ws_json_get_num(ws_json_get(root, "attribution"), "clone", &v));
        CHECK(ws_json_get_num(ws_json_get(root, "stylometric_distance"), "total", &v) && v > 0.3);
        ws_json_doc_free(doc);
    }
    ws_buf_free(&j);
    CHECK_EQ_INT(ws_fidelity_evaluate(p, failing, NULL, NULL, &bad, &err), WS_EIO);
    CHECK(strstr(err.msg, "went away") != NULL);
    ws_pairs_free(p);
}

static void retrieval_baseline(void)
{
    ws_pairs *p = chat(400);
    if (!p)
        return;
    ws_embedder *e = ws_embed_hash_new(256);
    ws_retrieval *r = NULL;
    CHECK_EQ_INT(ws_retrieval_build(p, e, NULL, &r, NULL), 0);
    ws_fidelity_retrieval_arg a = {r, e};
    ws_fidelity_report rep;
    CHECK_EQ_INT(ws_fidelity_evaluate(p, ws_fidelity_retrieval_gen, &a,
                                      &(ws_fidelity_options){.max_examples = 10}, &rep, NULL),
                 0);
    CHECK_EQ_INT(rep.n_evaluated, 10);
    CHECK_NEAR(rep.copy_rate, 1.0, 1e-9); /* it only ever answers with training replies */
    CHECK(rep.attribution > 0.7);
    CHECK(rep.distance.total < 0.3);
    ws_retrieval_free(r);
    ws_embedder_free(e);
    ws_pairs_free(p);
}

static void needs_heldout_examples(void)
{
    ws_pairs *p = chat(2); /* one example: nothing held out */
    if (!p)
        return;
    ws_fidelity_report rep;
    ws_error err = {0};
    CHECK_EQ_INT(ws_fidelity_evaluate(p, oracle, NULL, NULL, &rep, &err), WS_EEMPTY);
    ws_pairs_free(p);
}

WS_TEST_MAIN(T(perfect_and_impostor_clones), T(retrieval_baseline), T(needs_heldout_examples))
