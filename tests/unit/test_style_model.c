/* Unit tests for the persona's style model as a whole (src/style/style): build from the sample
 * group chat, save, load, reply. */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include "style/style.h"

static void remove_dir(const char *dir)
{
    static const char *files[] = {"style.json", "profile.json", "retrieval.idx", "retrieval.jsonl"};
    char path[600];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

static void build_save_load_reply(void)
{
    ws_pairs *p = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_pairs_from_file("samples/group_chat.txt", "Maya", NULL, &p, &err), 0);
    if (!p)
        return;
    ws_style *s = NULL;
    CHECK_EQ_INT(ws_style_build(p, ws_embed_hash_new(512), NULL, &s, &err), 0);
    if (!s)
        goto out;
    CHECK_EQ_INT(ws_retrieval_count(s->retrieval), p->n_examples - p->n_heldout);
    /* the profile leaves the held-out replies out */
    ws_profile *train = ws_profile_from_pairs(p, WS_PROFILE_TRAIN);
    CHECK(s->profile->n_messages >= train->n_messages);
    CHECK(s->profile->n_messages < train->n_messages + p->n_turns);
    ws_profile_free(train);

    char dir[] = "/tmp/ws_styleXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(ws_style_save(s, dir, &err), 0);
    ws_style *back = NULL;
    CHECK_EQ_INT(ws_style_load(dir, NULL, &back, &err), 0);
    if (back) {
        CHECK_EQ_STR(back->embedder->name, "hash-ngram-512");
        CHECK_EQ_STR(back->profile->typical_reply, s->profile->typical_reply);
        CHECK_EQ_INT(ws_retrieval_count(back->retrieval), ws_retrieval_count(s->retrieval));
        /* a context straight from the training examples gets Maya's own answer */
        const ws_example *e = NULL;
        for (size_t i = 0; i < p->n_examples && !e; i++)
            if (!p->examples[i].heldout && p->examples[i].n_context >= 2)
                e = &p->examples[i];
        const char *turns[2] = {p->turns[e->turn - 2].text, p->turns[e->turn - 1].text};
        ws_reply_choice c1, c2;
        CHECK_EQ_INT(ws_style_reply(s, turns, 2, NULL, 0, NULL, &c1, &err), 0);
        CHECK_EQ_INT(ws_style_reply(back, turns, 2, NULL, 0, NULL, &c2, &err), 0);
        CHECK_EQ_STR(c1.text, c2.text);
        CHECK(!c2.fallback);
        CHECK_EQ_INT(c2.source, WS_REPLY_RETRIEVED);
        CHECK(c2.cand[0].similarity > 0.99);
        ws_style_free(back);
    }
    /* a manifest from the future is refused */
    char path[600];
    snprintf(path, sizeof path, "%s/style.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"version\":9,\"embedder\":\"hash-ngram-512\"}", f);
    fclose(f);
    CHECK_EQ_INT(ws_style_load(dir, NULL, &back, &err), WS_EUNSUPPORTED);
    CHECK(back == NULL);
    remove_dir(dir);
    CHECK_EQ_INT(ws_style_load(dir, NULL, &back, &err), WS_ENOENT);
    ws_style_free(s);
out:
    ws_pairs_free(p);
}

static void persona_without_examples(void)
{
    ws_pairs *p = NULL;
    CHECK_EQ_INT(ws_pairs_from_file("tests/fixtures/chat/android_en_gb.txt", "Ana Souza", NULL, &p, NULL), 0);
    if (!p)
        return;
    ws_style *s = NULL;
    CHECK_EQ_INT(ws_style_build(p, ws_embed_hash_new(256), NULL, &s, NULL), 0);
    if (s) {
        CHECK(s->retrieval == NULL);
        char dir[] = "/tmp/ws_styleXXXXXX";
        CHECK(mkdtemp(dir) != NULL);
        CHECK_EQ_INT(ws_style_save(s, dir, NULL), 0);
        ws_style *back = NULL;
        CHECK_EQ_INT(ws_style_load(dir, NULL, &back, NULL), 0);
        const char *turns[] = {"hello?"};
        ws_reply_choice c;
        if (back) {
            CHECK(back->retrieval == NULL);
            CHECK_EQ_INT(ws_style_reply(back, turns, 1, NULL, 0, NULL, &c, NULL), 0);
            CHECK(c.fallback);
        }
        ws_style_free(back);
        remove_dir(dir);
        ws_style_free(s);
    }
    ws_pairs_free(p);
}

WS_TEST_MAIN(T(build_save_load_reply), T(persona_without_examples))
