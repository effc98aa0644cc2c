/* The style model on samples/group_chat.txt (tools/make-sample-chat.py): four friends who write
 * in clearly different ways. Each profile must show its writer's habits, each writer must be
 * closer to their own held-out replies than to anyone else's, and a clone that answers with
 * another person's replies, their typical reply every time or an echo of the message must
 * fail the fidelity report's verdict, while their own held-out replies pass its style criteria. */
#include "harness.h"

#include "style/fidelity.h"
#include "style/pairs.h"
#include "style/profile.h"

static const char *const people[4] = {"Maya", "Henrik", "Tom\xc3\xa1s", "Priya"};

static void profiles_show_each_writer(void)
{
    ws_profile *pf[4] = {0};
    ws_pairs *pr[4] = {0};
    for (int i = 0; i < 4; i++) {
        ws_error err = {0};
        CHECK_EQ_INT(ws_pairs_from_file("samples/group_chat.txt", people[i], NULL, &pr[i], &err), 0);
        if (!pr[i])
            goto out;
        CHECK(pr[i]->n_examples > 300);
        pf[i] = ws_profile_from_pairs(pr[i], WS_PROFILE_TRAIN);
    }
    CHECK(pf[0]->all_lower > 0.9 && pf[0]->emoji_messages > 0.9); /* Maya */
    CHECK(pf[1]->ends_period > 0.9 && pf[1]->starts_upper > 0.9); /* Henrik */
    CHECK(pf[1]->emoji_messages < 0.01 && pf[1]->chars.p[2] > 2 * pf[0]->chars.p[2]);
    CHECK(pf[2]->excl_per_message > 1.0); /* Tomás */
    bool es = false;
    for (size_t k = 0; k < pf[2]->n_langs; k++)
        es |= !strcmp(pf[2]->langs[k].code, "es") && pf[2]->langs[k].share > 0.1;
    CHECK(es);
    CHECK(pf[3]->quest_per_message > 1.0); /* Priya */
    for (int i = 0; i < 3; i++)
        CHECK(pf[3]->caps_words > 2 * pf[i]->caps_words);
    /* own held-out replies are closer than anyone else's */
    for (int i = 0; i < 4; i++) {
        ws_profile *held = ws_profile_from_pairs(pr[i], WS_PROFILE_HELDOUT);
        double own = ws_profile_distance(pf[i], held, NULL);
        for (int j = 0; j < 4; j++)
            if (j != i) {
                double other = ws_profile_distance(pf[j], held, NULL);
                if (!(own < other))
                    fprintf(stderr, "%s held out: own %.3f, %s %.3f\n", people[i], own, people[j], other);
                CHECK(own < other);
            }
        ws_profile_free(held);
    }
out:
    for (int i = 0; i < 4; i++) {
        ws_profile_free(pf[i]);
        ws_pairs_free(pr[i]);
    }
}

/* A clone of Maya that answers like Henrik: his training replies, in turn. */
typedef struct swap {
    const ws_pairs *henrik;
    size_t next;
} swap;

static int henrik_says(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    swap *s = arg;
    (void)p;
    (void)ex;
    (void)err;
    const ws_example *e = &s->henrik->examples[s->next++ % s->henrik->n_examples];
    ws_buf_puts(reply, s->henrik->turns[e->turn].reply);
    return 0;
}

static int maya_says(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    (void)arg;
    (void)err;
    ws_buf_puts(reply, p->turns[ex->turn].reply);
    return 0;
}

/* The persona's fallback: their most typical short reply, every time. */
static int typical_says(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    ws_buf_puts(reply, arg);
    return 0;
}

static int echo_says(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply, ws_error *err)
{
    ws_buf_puts(reply, p->turns[ex->turn - 1].text);
    return 0;
}

static bool passes(const ws_fidelity_report *r, const char *name)
{
    for (size_t i = 0; i < r->n_criteria; i++)
        if (!strcmp(r->criteria[i].name, name))
            return r->criteria[i].measured && r->criteria[i].pass;
    return false;
}

static void fidelity_catches_the_wrong_voice(void)
{
    ws_pairs *maya = NULL, *henrik = NULL;
    CHECK_EQ_INT(ws_pairs_from_file("samples/group_chat.txt", "Maya", NULL, &maya, NULL), 0);
    CHECK_EQ_INT(ws_pairs_from_file("samples/group_chat.txt", "Henrik", NULL, &henrik, NULL), 0);
    if (maya && henrik) {
        ws_fidelity_report good, bad;
        swap s = {henrik, 0};
        CHECK_EQ_INT(ws_fidelity_evaluate(maya, maya_says, NULL, NULL, &good, NULL), 0);
        ws_buf b = WS_BUF_INIT;
        ws_fidelity_summary(&good, &b);
        fprintf(stderr, "Maya's own held-out replies:\n%s", b.data);
        ws_buf_free(&b);
        CHECK_EQ_INT(good.n_candidates, 4);
        CHECK(good.set[WS_FID_CLONE].attribution > 0.8);
        CHECK(passes(&good, "style_distance") && passes(&good, "verifier") &&
              passes(&good, "distinct_replies") && passes(&good, "copy_rate") && passes(&good, "echo_rate"));
        CHECK_EQ_INT(ws_fidelity_evaluate(maya, henrik_says, &s, NULL, &bad, NULL), 0);
        CHECK(!bad.pass && !passes(&bad, "style_distance") && !passes(&bad, "verifier"));
        CHECK(bad.set[WS_FID_CLONE].attribution < 0.2);
        CHECK(bad.set[WS_FID_CLONE].verifier > 0.9);
        CHECK(bad.set[WS_FID_CLONE].style_distance > 3 * good.set[WS_FID_SAME].style_distance);
        ws_profile *pf = ws_profile_from_pairs(maya, WS_PROFILE_TRAIN);
        CHECK(pf->typical_reply[0] != '\0');
        CHECK_EQ_INT(ws_fidelity_evaluate(maya, typical_says, pf->typical_reply, NULL, &bad, NULL), 0);
        CHECK(!bad.pass && !passes(&bad, "distinct_replies") && !passes(&bad, "copy_rate"));
        ws_profile_free(pf);
        CHECK_EQ_INT(ws_fidelity_evaluate(maya, echo_says, NULL, NULL, &bad, NULL), 0);
        CHECK(!bad.pass && !passes(&bad, "echo_rate"));
    }
    ws_pairs_free(maya);
    ws_pairs_free(henrik);
}

WS_TEST_MAIN(T(profiles_show_each_writer), T(fidelity_catches_the_wrong_voice))
