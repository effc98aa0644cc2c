/* Unit tests for reply selection (src/style/reply): retrieved vs generated candidates,
 * confidence and the fallback. */
#include "harness.h"

#include "style/embed.h"
#include "style/pairs.h"
#include "style/profile.h"
#include "style/reply.h"
#include "style/retrieval.h"

static const char *questions[] = {
    "are we still meeting tomorrow at the cafe?",
    "did you feed the cat this morning?",
    "what time does the football match start tonight?",
    "can you send me the photos from the wedding?",
    "how was your exam today?",
    "do you want pizza or sushi for dinner?",
};
static const char *answers[] = {
    "yes 10am as planned", "yep", "kickoff at 8", "yep", "it went ok I think", "sushi obviously",
};

typedef struct fixture {
    ws_pairs *p;
    ws_profile *prof;
    ws_embedder *e;
    ws_retrieval *r;
} fixture;

static bool setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    ws_pairs_builder *b = ws_pairs_builder_new("Ann", &(ws_pairs_options){.heldout_fraction = -1});
    for (int i = 0; i < 12; i++) {
        ws_message m = {0};
        m.ts = (ws_datetime){2024, 6, 1 + i / 2, 18, (i % 2) * 5, 0};
        m.author = i % 2 ? "Ann" : "Bob";
        m.author_len = 3;
        m.text = i % 2 ? answers[i / 2] : questions[i / 2];
        m.text_len = strlen(m.text);
        ws_pairs_builder_add(b, &m);
    }
    CHECK_EQ_INT(ws_pairs_builder_finish(b, &f->p, NULL), 0);
    if (!f->p)
        return false;
    f->prof = ws_profile_from_pairs(f->p, WS_PROFILE_ALL);
    f->e = ws_embed_hash_new(512);
    CHECK_EQ_INT(ws_retrieval_build(f->p, f->e, NULL, &f->r, NULL), 0);
    return f->r != NULL;
}

static void teardown(fixture *f)
{
    ws_retrieval_free(f->r);
    ws_embedder_free(f->e);
    ws_profile_free(f->prof);
    ws_pairs_free(f->p);
}

static void picks_the_nearest_real_reply(void)
{
    fixture f;
    if (!setup(&f))
        goto out;
    const char *turns[] = {"hi", "are we still meeting at the cafe tomorrow?"};
    ws_reply_choice c;
    CHECK_EQ_INT(ws_reply_choose(f.r, f.e, f.prof, turns, 2, NULL, 0, NULL, &c, NULL), 0);
    CHECK_EQ_STR(c.text, "yes 10am as planned");
    CHECK_EQ_INT(c.source, WS_REPLY_RETRIEVED);
    CHECK(!c.fallback);
    CHECK(c.confidence > 0.35 && c.confidence <= 1);
    CHECK(c.n_cand >= 2);
    for (size_t i = 1; i < c.n_cand; i++)
        CHECK(c.cand[i - 1].confidence >= c.cand[i].confidence);
out:
    teardown(&f);
}

static void falls_back_when_unsure(void)
{
    fixture f;
    if (!setup(&f))
        goto out;
    CHECK_EQ_STR(f.prof->typical_reply, "yep"); /* said twice */
    const char *turns[] = {"qwxz vbnm kjhg"};
    ws_reply_choice c;
    CHECK_EQ_INT(ws_reply_choose(f.r, f.e, f.prof, turns, 1, NULL, 0, NULL, &c, NULL), 0);
    CHECK(c.fallback);
    CHECK_EQ_INT(c.source, WS_REPLY_FALLBACK);
    CHECK_EQ_STR(c.text, "yep");
    CHECK(c.confidence < 0.35);
    ws_reply_options o = {.fallback_text = "brb"};
    CHECK_EQ_INT(ws_reply_choose(f.r, f.e, f.prof, turns, 1, NULL, 0, &o, &c, NULL), 0);
    CHECK_EQ_STR(c.text, "brb");
    o = (ws_reply_options){.threshold = -1};
    CHECK_EQ_INT(ws_reply_choose(f.r, f.e, f.prof, turns, 1, NULL, 0, &o, &c, NULL), 0);
    CHECK(!c.fallback);
    /* nothing at all: no index, no model, no profile */
    CHECK_EQ_INT(ws_reply_choose(NULL, NULL, NULL, turns, 1, NULL, 0, NULL, &c, NULL), 0);
    CHECK(c.fallback);
    CHECK_EQ_STR(c.text, WS_REPLY_DEFAULT_FALLBACK);
out:
    teardown(&f);
}

static void weighs_generated_candidates(void)
{
    fixture f;
    if (!setup(&f))
        goto out;
    const char *turns[] = {"how was your exam today?"};
    ws_reply_generated gen[] = {{"nailed it haha", -0.05}, {"the the the", -4.0}, {"", -0.01}};
    ws_reply_choice c;
    CHECK_EQ_INT(ws_reply_choose(f.r, f.e, f.prof, turns, 1, gen, 3, NULL, &c, NULL), 0);
    /* an exact past context: retrieval is certain; the confident generation is close behind */
    CHECK_EQ_STR(c.text, "it went ok I think");
    bool saw_good = false, saw_bad = false;
    for (size_t i = 0; i < c.n_cand; i++) {
        if (c.cand[i].source != WS_REPLY_GENERATED)
            continue;
        CHECK(c.cand[i].text[0] != '\0'); /* empty generations are ignored */
        if (!strcmp(c.cand[i].text, "nailed it haha")) {
            saw_good = true;
            CHECK(c.cand[i].confidence > 0.9);
        } else {
            saw_bad = true;
            CHECK(c.cand[i].confidence < 0.6);
        }
    }
    CHECK(saw_good && saw_bad);
    /* without an index, generation alone decides */
    CHECK_EQ_INT(ws_reply_choose(NULL, NULL, f.prof, turns, 1, gen, 3, NULL, &c, NULL), 0);
    CHECK_EQ_STR(c.text, "nailed it haha");
    CHECK_EQ_INT(c.source, WS_REPLY_GENERATED);
    CHECK_EQ_STR(ws_reply_source_name(c.source), "generated");
out:
    teardown(&f);
}

WS_TEST_MAIN(T(picks_the_nearest_real_reply), T(falls_back_when_unsure), T(weighs_generated_candidates))
