/* Tests of the streamed reply (ws_clone_reply_stream): the pieces are whole UTF-8 characters
 * and concatenate to the final reply (or the fallback replaces them), a callback that asks to
 * stop ends the generation at once, a raised cancel flag stops it before any piece, bad input,
 * and a lower-case writer's generations come in their case.
 * The clone is trained on the sample chat (Tomás: Spanish, accents, emoji). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/utf8.h"
#include "harness.h"
#include "style/text.h"
#include "tiny_gguf.h"

typedef struct collect {
    ws_buf all;
    int pieces, stop_after;
    bool utf8_ok, empty_piece;
} collect;

static bool utf8_whole(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t at = i;
        if (ws_utf8_next(s, n, &i) == 0xFFFD && !(i - at == 3 && !memcmp(s + at, "\xEF\xBF\xBD", 3)))
            return false;
    }
    return true;
}

static int on_piece(void *arg, const char *piece, size_t len)
{
    collect *k = arg;
    k->pieces++;
    if (!len)
        k->empty_piece = true;
    if (!utf8_whole(piece, len))
        k->utf8_ok = false;
    ws_buf_append(&k->all, piece, len);
    return k->stop_after && k->pieces >= k->stop_after;
}

static ws_clone *train(const char *dir)
{
    char *out = ws__clone_path(dir, "tomas");
    ws_error err = {0};
    ws_clone_train_result res;
    ws_clone_train_opts o = {.export_path = "samples/group_chat.txt",
                             .persona = "Tomás",
                             .out_dir = out,
                             .budget_s = 12,
                             .quiet = true,
                             .embed_dir = "none"};
    ws_clone *c = NULL;
    int rc = ws_clone_train(&o, &res, &err);
    CHECK_EQ_INT(rc, 0);
    if (!rc) {
        ws_clone_train_result_clear(&res);
        CHECK_EQ_INT(ws_clone_open(out, &c, &err), 0);
    } else {
        fprintf(stderr, "train: %s\n", err.msg);
    }
    free(out);
    return c;
}

/* A persona who writes in lower case (c->lower_case, set as ws_clone_open would for one): the
 * same seeds give the same generations with their capitalised words lower-cased, on the streamed
 * path (piece by piece: a word is never cut between pieces) and on the ranked one. */
static void in_their_case(ws_clone *c, const ws_clone_turn *ctx)
{
    const char *msg = "¿vienes mañana a la fiesta?";
    int lowered = 0;
    ws_error err = {0};
    for (uint64_t seed = 1; seed <= 24; seed++) {
        ws_clone_reply_opts ro = {.seed = seed, .no_fallback = true};
        ws_clone_answer as[4];
        collect k = {.all = WS_BUF_INIT, .utf8_ok = true};
        c->lower_case = false;
        CHECK_EQ_INT(ws_clone_reply_stream(c, msg, ctx, 2, &ro, NULL, NULL, &as[0], &err), 0);
        CHECK_EQ_INT(ws_clone_reply(c, msg, ctx, 2, &ro, &as[1], &err), 0);
        c->lower_case = true;
        CHECK_EQ_INT(ws_clone_reply_stream(c, msg, ctx, 2, &ro, on_piece, &k, &as[2], &err), 0);
        CHECK_EQ_INT(ws_clone_reply(c, msg, ctx, 2, &ro, &as[3], &err), 0);
        for (int path = 0; path < 2; path++) {
            ws_clone_answer *plain = &as[path], *low = &as[path + 2];
            if (!plain->reply || !low->reply || plain->source != WS_CLONE_SRC_GENERATED)
                continue;
            ws_buf want = WS_BUF_INIT;
            ws_text_lower_capitalised(plain->reply, strlen(plain->reply), &want);
            ws_buf_putc(&want, '\0');
            CHECK_EQ_STR(low->reply, want.data);
            ws_case_shapes cs = {0};
            ws_text_case_shapes(low->reply, &cs);
            CHECK_EQ_INT((int)cs.capitalised, 0);
            lowered += strcmp(plain->reply, low->reply) != 0;
            ws_buf_free(&want);
        }
        if (as[2].source == WS_CLONE_SRC_GENERATED)
            CHECK_EQ_STR(k.all.data ? k.all.data : "", as[2].reply);
        for (int i = 0; i < 4; i++)
            ws_clone_answer_clear(&as[i]);
        ws_buf_free(&k.all);
    }
    c->lower_case = false;
    printf("lower-cased: %d generations\n", lowered);
    CHECK(lowered > 0);
}

static void stream(void)
{
    char tmpl[] = "/tmp/ws_test_clone_stream_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    ws_clone *c = train(dir);
    if (!c)
        goto out;
    ws_error err = {0};
    ws_clone_turn ctx[] = {{"Priya", "Who's driving??"}, {"Maya", "not me lol"}};
    int generated = 0, fallbacks = 0;
    clone_guard g;
    ws__clone_guard_set(&g, c, "¿vienes mañana a la fiesta?", ctx, 2);
    for (uint64_t seed = 1; seed <= 120 && generated < 3; seed++) {
        collect k = {.all = WS_BUF_INIT, .utf8_ok = true};
        ws_clone_answer a;
        ws_clone_reply_opts ro = {.seed = seed, .no_fallback = seed % 3 != 0};
        int rc = ws_clone_reply_stream(c, "¿vienes mañana a la fiesta?", ctx, 2, &ro, on_piece, &k, &a, &err);
        CHECK_EQ_INT(rc, 0);
        if (rc) {
            ws_buf_free(&k.all);
            continue;
        }
        CHECK(k.utf8_ok && !k.empty_piece);
        CHECK(a.reply && *a.reply && a.confidence >= 0 && a.confidence <= 1);
        CHECK(!ws__clone_is_echo(a.reply, "¿vienes mañana a la fiesta?"));
        if (!a.fallback) {
            generated++;
            CHECK(k.pieces >= 1);
            CHECK_EQ_STR(k.all.data ? k.all.data : "", a.reply);              /* the pieces are the reply */
            CHECK_EQ_INT(ws__clone_guard_check(&g, a.reply), CLONE_GUARD_OK); /* the guard ran before done */
            CHECK(a.source == WS_CLONE_SRC_GENERATED);
            CHECK(ro.no_fallback || a.confidence >= ws_clone_threshold(c));
        } else {
            fallbacks++;
            CHECK(!k.all.data ||
                  ws__clone_guard_label_start(&g, k.all.data, true) == 0); /* a label is never sent */
            CHECK(a.source == WS_CLONE_SRC_FALLBACK);
            CHECK(!ro.no_fallback || a.confidence == 0); /* no_fallback: only a refused generation */
        }
        ws_clone_answer_clear(&a);
        ws_buf_free(&k.all);
    }
    ws__clone_guard_clear(&g);
    printf("streamed: %d generated, %d fallback\n", generated, fallbacks);
    CHECK(generated > 0);
    in_their_case(c, ctx);

    /* a callback asking to stop after its first piece: WS_EAGAIN, no further piece */
    int stopped = 0;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        collect k = {.all = WS_BUF_INIT, .utf8_ok = true, .stop_after = 1};
        ws_clone_answer a;
        ws_clone_reply_opts ro = {.seed = seed};
        int rc = ws_clone_reply_stream(c, "¿vienes mañana a la fiesta?", ctx, 2, &ro, on_piece, &k, &a, &err);
        if (k.pieces) {
            CHECK_EQ_INT(rc, WS_EAGAIN);
            CHECK_EQ_INT(k.pieces, 1);
            CHECK(a.reply == NULL);
            stopped++;
        }
        ws_clone_answer_clear(&a);
        ws_buf_free(&k.all);
    }
    CHECK(stopped > 0);

    /* a cancel flag already raised: nothing generated */
    volatile int cancel = 1;
    collect k = {.all = WS_BUF_INIT, .utf8_ok = true};
    ws_clone_answer a;
    ws_clone_reply_opts ro = {.cancel = &cancel};
    CHECK_EQ_INT(ws_clone_reply_stream(c, "hello?", NULL, 0, &ro, on_piece, &k, &a, &err), WS_EAGAIN);
    CHECK_EQ_INT(k.pieces, 0);
    CHECK_EQ_INT(ws_clone_reply_stream(c, "  \n ", NULL, 0, NULL, on_piece, &k, &a, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_clone_reply_stream(c, NULL, NULL, 0, NULL, on_piece, &k, &a, &err), WS_EINVAL);
    /* without a callback it is a plain one-candidate reply */
    CHECK_EQ_INT(ws_clone_reply_stream(c, "see you later?", NULL, 0, NULL, NULL, NULL, &a, &err), 0);
    CHECK(a.reply && *a.reply);
    ws_clone_answer_clear(&a);
    ws_buf_free(&k.all);
    ws_clone_free(c);
out:;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* On a base (a tiny random GGUF): the streamed reply runs only the prompt past the last reply's
 * (prefix.c), so the same message again gives the same reply from the cache; a conversation
 * that grew reuses it too; the ranked path shares the same cache. A spent latency budget gives
 * no generation on either path. */
static void stream_on_base(void)
{
    char tmpl[] = "/tmp/ws_test_clone_stream_base_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    char *gguf = ws__clone_path(dir, "tiny.gguf"), *out = ws__clone_path(dir, "maya");
    ws_model_config mc = {.arch = WS_ARCH_LLAMA,
                          .vocab_size = VOCAB,
                          .dim = 64,
                          .hidden_dim = 128,
                          .n_layers = 2,
                          .n_heads = 4,
                          .n_kv_heads = 2,
                          .head_dim = 16,
                          .max_pos = 512,
                          .norm_eps = 1e-5f,
                          .rope_theta = 10000,
                          .tied = true,
                          .bos_id = -1,
                          .eos_ids = {2},
                          .n_eos = 1};
    ws_model *m = ws_model_new(&mc, 7);
    CHECK_EQ_INT(write_gguf(m, WS_QT_Q4_1, gguf, NULL), 0);
    ws_model_free(m);
    ws_error err = {0};
    ws_clone_train_result res;
    ws_clone_train_opts o = {.export_path = "samples/group_chat.txt",
                             .persona = "Maya",
                             .out_dir = out,
                             .base_model = gguf,
                             .budget_s = 6,
                             .quiet = true,
                             .embed_dir = "none"};
    ws_clone *c = NULL;
    int rc = ws_clone_train(&o, &res, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "train: %s\n", err.msg);
        goto out;
    }
    ws_clone_train_result_clear(&res);
    CHECK_EQ_INT(ws_clone_open(out, &c, &err), 0);
    if (!c)
        goto out;
    ws_clone_turn ctx[] = {{"Priya", "Who's driving??"}, {"Maya", "not me lol"}};
    ws_clone_reply_opts ro = {.seed = 5, .no_fallback = true};
    ws_clone_answer a1, a2, a3, a4;
    collect k1 = {.all = WS_BUF_INIT, .utf8_ok = true}, k2 = {.all = WS_BUF_INIT, .utf8_ok = true};
    CHECK_EQ_INT(ws_clone_reply_stream(c, "are you coming tonight?", ctx, 2, &ro, on_piece, &k1, &a1, &err),
                 0);
    CHECK_EQ_INT(ws_clone_reply_stream(c, "are you coming tonight?", ctx, 2, &ro, on_piece, &k2, &a2, &err),
                 0);
    CHECK(a1.reply && a2.reply && !strcmp(a1.reply, a2.reply)); /* the second from the cached prompt */
    CHECK(a1.confidence == a2.confidence);
    CHECK_EQ_STR(k1.all.data ? k1.all.data : "", k2.all.data ? k2.all.data : "");
    /* the ranked path after it (same cache), then a conversation that grew */
    CHECK_EQ_INT(ws_clone_reply(c, "are you coming tonight?", ctx, 2, &ro, &a3, &err), 0);
    ws_clone_turn ctx2[] = {{"Priya", "Who's driving??"},
                            {"Maya", "not me lol"},
                            {"Priya", "are you coming tonight?"},
                            {"Maya", a3.reply ? a3.reply : "ok"}};
    CHECK_EQ_INT(ws_clone_reply_stream(c, "ok see you at 8", ctx2, 4, &ro, NULL, NULL, &a4, &err), 0);
    CHECK(a4.reply && *a4.reply);
    /* a latency budget spent before the first sampled token ends: no generation is given */
    ws_clone_reply_opts rb = {.seed = 5, .budget_ms = 0.001};
    ws_clone_answer a5, a6;
    CHECK_EQ_INT(ws_clone_reply_stream(c, "are you coming tonight?", ctx, 2, &rb, NULL, NULL, &a5, &err), 0);
    CHECK(a5.fallback && a5.reply && *a5.reply);
    CHECK_EQ_INT(ws_clone_reply(c, "are you coming tonight?", ctx, 2, &rb, &a6, &err), 0);
    CHECK(a6.reply && *a6.reply && a6.source != WS_CLONE_SRC_GENERATED);
    ws_clone_answer_clear(&a5);
    ws_clone_answer_clear(&a6);
    ws_clone_answer_clear(&a1);
    ws_clone_answer_clear(&a2);
    ws_clone_answer_clear(&a3);
    ws_clone_answer_clear(&a4);
    ws_buf_free(&k1.all);
    ws_buf_free(&k2.all);
    ws_clone_free(c);
out:;
    free(gguf);
    free(out);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

WS_TEST_MAIN(T(stream), T(stream_on_base))
