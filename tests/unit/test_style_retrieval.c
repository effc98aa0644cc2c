/* Unit tests for retrieval over a persona's examples (src/style/retrieval). */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include "style/embed.h"
#include "style/pairs.h"
#include "style/retrieval.h"

static const char *questions[] = {
    "are we still meeting tomorrow at the cafe?",
    "did you feed the cat this morning?",
    "what time does the football match start tonight?",
    "can you send me the photos from the wedding?",
    "how was your exam today?",
    "do you want pizza or sushi for dinner?",
    "is it raining where you are?",
    "have you seen my blue jacket anywhere?",
};
static const char *answers[] = {
    "yes 10am as planned", "yep she ate everything", "kickoff at 8",    "sure sending them tonight",
    "it went ok I think",  "sushi obviously",        "pouring all day", "check the hallway closet",
};

static ws_pairs *chat(void)
{
    ws_pairs_builder *b = ws_pairs_builder_new("Ann", &(ws_pairs_options){.heldout_fraction = -1});
    for (int i = 0; i < 16; i++) {
        ws_message m = {0};
        m.ts = (ws_datetime){2024, 6, 1 + i / 2, 18, (i % 2) * 5, 0}; /* one session per day */
        m.author = i % 2 ? "Ann" : "Bob";
        m.author_len = 3;
        m.text = i % 2 ? answers[i / 2] : questions[i / 2];
        m.text_len = strlen(m.text);
        ws_pairs_builder_add(b, &m);
    }
    ws_pairs *p = NULL;
    CHECK_EQ_INT(ws_pairs_builder_finish(b, &p, NULL), 0);
    return p;
}

static void key_uses_last_turns(void)
{
    const char *t[] = {"a", "b", "c"};
    ws_buf b = WS_BUF_INIT;
    ws_retrieval_key(t, 3, &b);
    CHECK_EQ_STR(b.data, "b\nc");
    ws_buf_reset(&b);
    ws_retrieval_key(t, 0, &b);
    CHECK_EQ_STR(b.data, "");
    ws_buf_free(&b);
}

static void finds_reply_by_context_and_persists(void)
{
    ws_pairs *p = chat();
    if (!p)
        return;
    CHECK_EQ_INT(p->n_examples, 8);
    ws_embedder *e = ws_embed_hash_new(512);
    ws_retrieval *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_retrieval_build(p, e, &(ws_retrieval_options){.hnsw_min = 4, .threads = 2}, &r, &err), 0);
    if (!r)
        goto out;
    CHECK_EQ_INT(ws_retrieval_count(r), 8);
    CHECK(ws_vindex_has_hnsw(ws_retrieval_index(r)));
    ws_retrieval_hit hits[3];
    size_t n = 0;
    const char *q = "are we still meeting at the cafe tomorrow";
    CHECK_EQ_INT(ws_retrieval_query(r, e, q, strlen(q), 3, hits, &n, &err), 0);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(hits[0].reply, "yes 10am as planned");
    CHECK(hits[0].score > hits[1].score);

    char dir[] = "/tmp/ws_retrXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(ws_retrieval_save(r, dir, &err), 0);
    ws_retrieval *back = NULL;
    CHECK_EQ_INT(ws_retrieval_load(dir, &back, &err), 0);
    if (back) {
        q = "did u feed the cat";
        CHECK_EQ_INT(ws_retrieval_query(back, e, q, strlen(q), 1, hits, &n, &err), 0);
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_STR(hits[0].reply, "yep she ate everything");
        CHECK_EQ_STR(hits[0].context, "did you feed the cat this morning?");
        /* another embedding space is refused */
        ws_embedder *other = ws_embed_hash_new(256);
        CHECK_EQ_INT(ws_retrieval_query(back, other, q, strlen(q), 1, hits, &n, &err), WS_EINVAL);
        ws_embedder_free(other);
        ws_retrieval_free(back);
    }
    /* a truncated examples file is a clean error */
    char path[600];
    snprintf(path, sizeof path, "%s/retrieval.jsonl", dir);
    CHECK_EQ_INT(truncate(path, 40), 0);
    CHECK(ws_retrieval_load(dir, &back, &err) < 0);
    CHECK(back == NULL);
    remove(path);
    snprintf(path, sizeof path, "%s/retrieval.idx", dir);
    remove(path);
    rmdir(dir);
    ws_retrieval_free(r);
out:
    ws_embedder_free(e);
    ws_pairs_free(p);
}

static void minilm_matches_paraphrases(void)
{
    ws_embedder *e = NULL;
    if (ws_embed_minilm_new(NULL, &e, NULL) != 0) {
        printf("FAIL: MiniLM not installed (run tools/setup-minilm.sh); the paraphrase check cannot run\n");
        CHECK(!"MiniLM model installed");
        return;
    }
    ws_pairs *p = chat();
    ws_retrieval *r = NULL;
    CHECK_EQ_INT(ws_retrieval_build(p, e, NULL, &r, NULL), 0);
    /* no shared content words with the indexed questions */
    const char *qs[] = {"any luck with the test you had?", "fancy japanese food tonight or italian?"};
    const char *want[] = {"it went ok I think", "sushi obviously"};
    for (int i = 0; i < 2 && r; i++) {
        ws_retrieval_hit h;
        size_t n = 0;
        CHECK_EQ_INT(ws_retrieval_query(r, e, qs[i], strlen(qs[i]), 1, &h, &n, NULL), 0);
        CHECK(n == 1 && strcmp(h.reply, want[i]) == 0);
    }
    ws_retrieval_free(r);
    ws_pairs_free(p);
    ws_embedder_free(e);
}

static void picks_embedders_by_space(void)
{
    ws_embedder *e = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_embed_for_space("hash-ngram-768", NULL, &e, &err), 0);
    CHECK(e && e->dim == 768);
    ws_embedder_free(e);
    CHECK_EQ_INT(ws_embed_for_space("hash-ngram-3", NULL, &e, &err), WS_EUNSUPPORTED);
    CHECK_EQ_INT(ws_embed_for_space("word2vec", NULL, &e, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "word2vec") != NULL);
    CHECK_EQ_INT(ws_embed_for_space("all-MiniLM-L6-v2", "/nonexistent", &e, &err), WS_ENOENT);
    bool fell_back = false;
    e = ws_embed_best("/nonexistent", &fell_back);
    CHECK(fell_back && e && strcmp(e->name, "hash-ngram-512") == 0);
    ws_embedder_free(e);
}

WS_TEST_MAIN(T(key_uses_last_turns), T(finds_reply_by_context_and_persists), T(minilm_matches_paraphrases),
             T(picks_embedders_by_space))
