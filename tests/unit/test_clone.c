/* Tests of the clone: style features, echo detection, the byte-level tokenizer file, the turn
 * format, and a small end-to-end run (train within a tiny budget on a generated two-person
 * chat, cancel + resume, open, reply, corrupted directory, bad input). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clone/clone_int.h"
#include "clone/train_data.h"
#include "core/json.h"
#include "core/mem.h"
#include "harness.h"

static void style_features(void)
{
    double f[CLONE_SF_N];
    ws__clone_style_feats("omg yes 😂😂\nill bring snacks", f);
    CHECK(f[0] == 1 && f[1] == 0 && f[2] == 0 && f[3] == 1 && f[9] == 1);
    ws__clone_style_feats("Thank you for organising this. I shall be there, although I may arrive late.", f);
    CHECK(f[0] == 0 && f[1] == 1 && f[2] == 1 && f[3] == 0 && f[7] == 1 && f[8] == 1);
    ws__clone_style_feats("no manches!! jajaja", f);
    CHECK(f[4] == 1 && f[0] == 1);
    ws__clone_style_feats("haha okay but WHO is booking??", f);
    CHECK(f[5] == 1 && f[6] == 1);
    /* typical texts fit their own rates better than someone else's */
    const char *maya[] = {"lol same 😂", "omg yes", "brb 🙈", "wait what 💀\nwho said that"};
    const char *henrik[] = {"Indeed. I agree entirely.", "Noted. I will reply tomorrow.",
                            "Thank you, that is kind."};
    double rm[CLONE_SF_N], rh[CLONE_SF_N];
    ws__clone_style_rates(maya, 4, rm);
    ws__clone_style_rates(henrik, 3, rh);
    CHECK(ws__clone_style_fit("ok ok im in 🙈", rm) > ws__clone_style_fit("ok ok im in 🙈", rh));
    CHECK(ws__clone_style_fit("Certainly. I will bring bread.", rh) >
          ws__clone_style_fit("Certainly. I will bring bread.", rm));
    double fit = ws__clone_style_fit("anything at all", rm);
    CHECK(fit > 0 && fit <= 1);
}

static void echo_and_trim(void)
{
    CHECK(ws__clone_is_echo("Are you coming?", "are you coming"));
    CHECK(ws__clone_is_echo("  hi!! ", "Hi"));
    CHECK(!ws__clone_is_echo("hi there", "hi"));
    char *t = ws__clone_trim("  \n hello \t\n");
    CHECK_EQ_STR(t, "hello");
    free(t);
}

/* The candidate guard on the strings of the demo where it was found (Maya's clone on the base
 * repeated its system message and echoed the message behind a "Friend:" label) and on replies
 * that must pass. */
static void guard(void)
{
    const char *texts[] = {"Who's driving tomorrow??", "not me lol, my car is at the garage until friday",
                           "ok"};
    const char *authors[] = {"Priya", "Maya", "Maya"};
    clone_guard g = {.persona = "Maya",
                     .system = "You are Maya, chatting on WhatsApp. Reply to the last message as Maya.",
                     .message = "Are you coming to the party tonight?",
                     .ctx_texts = texts,
                     .ctx_authors = authors,
                     .n_ctx = 3};
    /* leaks */
    CHECK_EQ_INT(ws__clone_guard_check(&g, "You're Maya, chatting on WhatsApp..."), CLONE_GUARD_SYSTEM);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "Reply to the last message as Maya."), CLONE_GUARD_SYSTEM);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "chatting on whatsapp"), CLONE_GUARD_SYSTEM);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "Friend: Are you coming to the party tonight?"),
                 CLONE_GUARD_LABEL);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "Maya: yes!! 🎉"), CLONE_GUARD_LABEL);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "priya: who's driving"), CLONE_GUARD_LABEL);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "Sam K: see you there"), CLONE_GUARD_LABEL);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "omg yes\nFriend: cool see you"), CLONE_GUARD_LABEL);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "are you coming to the party tonight?? 😂"), CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "coming to the party tonight?"), CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "lol are you coming to the party tonight? I am"),
                 CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "who's driving tomorrow"), CLONE_GUARD_CONTEXT);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "my car is at the garage until friday"), CLONE_GUARD_CONTEXT);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "(no response)"),
                 CLONE_GUARD_META); /* Maya's clone, --budget 20 */
    CHECK_EQ_INT(ws__clone_guard_check(&g, " [image] "), CLONE_GUARD_META);
    /* answers */
    CHECK_EQ_INT(ws__clone_guard_check(&g, "(sorry) or [maybe]"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "(jk) see you there"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "yes!! wouldn't miss it 🎉"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "ok"), CLONE_GUARD_OK); /* her own short turn again: a style */
    CHECK_EQ_INT(ws__clone_guard_check(&g, "I'm coming, what time does the party start?"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "we went to the last show and it was great"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "10:30 works for me"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "haha: no idea"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "not tonight, I'm at my mum's"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g, "Note that Friday works better"), CLONE_GUARD_OK);
    /* a short answer that takes up the question's words (the topic check's Sam clone) */
    clone_guard g3 = {.message = "Have you worked out how you're getting to Stansted for the 06:40 flight?"};
    CHECK_EQ_INT(ws__clone_guard_check(&g3, "The 06:40 plane."), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g3, "how you're getting to Stansted"), CLONE_GUARD_ECHO);
    /* replies that open by restating the message (the topic check's Sam clone, blind readers'
     * NEUTRAL), and real answers of the check that pass */
    clone_guard g5 = {.message = "49:58 in Regent's Park. Under fifty."};
    CHECK_EQ_INT(ws__clone_guard_check(&g5, "49:58 in Regent's Park\nu are a friend now"), CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g5, "under fifty\n11:48 in Regent's Park"), CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g5, "JORDAN\nthats insane\nso proud of u"), CLONE_GUARD_OK);
    clone_guard g6 = {.message = "Payday today, isn't it? Don't forget the Lisbon flat."};
    CHECK_EQ_INT(ws__clone_guard_check(&g6, "Lisbon flat??"), CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g6, "Lisbon flat is the best"), CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g6, "omg\nsending rn\n180 right?"), CLONE_GUARD_OK);
    clone_guard g7 = {.message = "Have you booked somewhere for when Ellie's down?"};
    CHECK_EQ_INT(
        ws__clone_guard_check(&g7, "yes!! booked somewhere for Ellie down\nbooking it in advance lol"),
        CLONE_GUARD_ECHO);
    CHECK_EQ_INT(ws__clone_guard_check(&g7, "yes!! booked o cantinho, friday at 8\ntable for 4"),
                 CLONE_GUARD_OK);
    CHECK_EQ_INT(ws__clone_guard_check(&g3, "06:40??\nhow do u get from London to Stansted"),
                 CLONE_GUARD_ECHO);
    /* the ranking's echo term: the share of the candidate's words that are the message's (11 words,
     * 6 of them the message's in its order) */
    CHECK(fabs(ws__clone_echo_share("49:58 in Regent's Park\nu are a friend now", g5.message) - 6.0 / 11) <
          1e-9);
    CHECK(fabs(ws__clone_echo_share("8 weeks before Lisbon", "Eight weeks until Lisbon. Bora!") - 0.5) <
          1e-9);
    CHECK(ws__clone_echo_share("JORDAN\nthats insane", g5.message) == 0);
    CHECK(ws__clone_echo_share("!!", g5.message) == 0);
    /* the topic check's Jordan clone without the guard */
    clone_guard g4 = {.persona = "Jordan", .message = "Did you find a graduate in the end?"};
    CHECK_EQ_INT(ws__clone_guard_check(&g4, "Friend: Did u find a graduate in the end?"), CLONE_GUARD_LABEL);
    /* without a system message (a model from scratch) only the rest applies */
    clone_guard g2 = g;
    g2.system = NULL;
    CHECK_EQ_INT(ws__clone_guard_check(&g2, "chatting on whatsapp"), CLONE_GUARD_OK);
    CHECK(strcmp(ws__clone_guard_name(CLONE_GUARD_LABEL), "speaker label") == 0);
    /* the streamed start: held while it could still be a label */
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "Fri", false), -1);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, " Friend", false), -1);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "Friend:", false), 1);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "Friend: are", false), 1);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "yes I", false), -1);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "yes I am", false), 0);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "omg, yes", false), 0);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "😂", false), -1);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "😂", true), 0);
    CHECK_EQ_INT(ws__clone_guard_label_start(&g, "10:30", false), 0);
}

static void context_parse(void)
{
    ws_clone_turn *t = NULL;
    size_t n = 0;
    ws_error err = {0};
    const char *lines = "Priya: who is coming??\r\nno name here\n\nHenrik: I shall: be there.";
    CHECK_EQ_INT(ws_clone_context_parse(lines, strlen(lines), &t, &n, &err), 0);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        CHECK_EQ_STR(t[0].author, "Priya");
        CHECK_EQ_STR(t[0].text, "who is coming??");
        CHECK(t[1].author == NULL);
        CHECK_EQ_STR(t[2].text, "I shall: be there.");
    }
    ws_clone_context_free(t, n);
    const char *js = " [{\"author\": \"A\", \"text\": \"hi\"}, {\"text\": \"yo\"}]";
    CHECK_EQ_INT(ws_clone_context_parse(js, strlen(js), &t, &n, &err), 0);
    CHECK(n == 2 && t[1].author == NULL && !strcmp(t[0].author, "A"));
    ws_clone_context_free(t, n);
    const char *bad = "[{\"author\": 1, \"text\": \"x\"}]";
    CHECK_EQ_INT(ws_clone_context_parse(bad, strlen(bad), &t, &n, &err), WS_EFORMAT);
    CHECK(t == NULL && n == 0);
    /* only the latest turns are kept */
    ws_buf many = WS_BUF_INIT;
    for (int i = 0; i < WS_CLONE_CONTEXT_MAX + 10; i++)
        ws_buf_printf(&many, "P: turn %d\n", i);
    CHECK_EQ_INT(ws_clone_context_parse(many.data, many.len, &t, &n, &err), 0);
    CHECK_EQ_INT(n, WS_CLONE_CONTEXT_MAX);
    CHECK_EQ_STR(t[n - 1].text, "turn 73");
    ws_clone_context_free(t, n);
    ws_buf_free(&many);
}

static void byte_tokenizer(void)
{
    char path[] = "/tmp/ws_test_clone_tok_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    ws_error err = {0};
    CHECK_EQ_INT(ws__clone_write_byte_tokenizer(path, &err), 0);
    ws_tokenizer *tok = NULL;
    CHECK_EQ_INT(ws_tokenizer_load(path, &tok, &err), 0);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        remove(path);
        return;
    }
    CHECK_EQ_INT(ws_tokenizer_vocab_size(tok), CLONE_VOCAB);
    CHECK_EQ_INT(ws_tokenizer_token_id(tok, "<|me|>"), CLONE_TOK_ME);
    CHECK_EQ_INT(ws_tokenizer_eos_id(tok), CLONE_TOK_END);
    const char *s = "héllo 😂 <|me|>x";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ws_tokenizer_encode(tok, s, strlen(s), false, &ids, &n, &err), 0);
    /* bytes are their own ids; the special token is one id */
    size_t plain = strlen("héllo 😂 ");
    CHECK_EQ_INT(n, plain + 2);
    for (size_t i = 0; i < plain && i < n; i++)
        CHECK_EQ_INT(ids[i], (unsigned char)s[i]);
    CHECK_EQ_INT(ids[plain], CLONE_TOK_ME);
    char *back = ws_tokenizer_decode(tok, ids, n, false);
    CHECK_EQ_STR(back, s);
    free(back);
    free(ids);
    /* the clone's own turn format agrees with the file */
    clone_fmt f;
    CHECK_EQ_INT(ws__clone_fmt_init(&f, tok, &err), 0);
    CHECK(f.n_me == 1 && f.me[0] == CLONE_TOK_ME && f.end == CLONE_TOK_END);
    clone_fmt fb;
    ws__clone_fmt_init(&fb, NULL, &err);
    ibuf b = {0};
    size_t at = ws__clone_fmt_turn(&fb, true, "abcdef", 4, false, &b);
    CHECK_EQ_INT(at, 1);
    CHECK_EQ_INT(b.n, 6);
    CHECK(b.v[0] == CLONE_TOK_ME && b.v[1] == 'a' && b.v[4] == 'd' && b.v[5] == CLONE_TOK_END);
    b.n = 0;
    ws__clone_fmt_turn(&fb, false, "h\xC3\xA9llo", 4, true, &b); /* tail cut lands inside é: skipped */
    CHECK(b.v[0] == CLONE_TOK_OTHER && b.v[1] == 'l' && b.n == 5);
    ws__clone_ibuf_free(&b);
    ws_tokenizer_free(tok);
    remove(path);
}

static void bpe_tokenizer(void)
{
    char path[] = "/tmp/ws_test_clone_bpe_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char *texts[] = {"lol same lol same", "lol what", "same same 😂😂", "ok lol"};
    ws_error err = {0};
    CHECK_EQ_INT(ws__clone_write_bpe_tokenizer(path, texts, 4, 20, &err), 0);
    ws_tokenizer *tok = NULL;
    CHECK_EQ_INT(ws_tokenizer_load(path, &tok, &err), 0);
    if (tok) {
        size_t v = ws_tokenizer_vocab_size(tok);
        CHECK(v > CLONE_VOCAB && v <= CLONE_VOCAB + 20);
        int32_t *ids = NULL;
        size_t n = 0;
        const char *s = "lol same 😂 new";
        CHECK_EQ_INT(ws_tokenizer_encode(tok, s, strlen(s), false, &ids, &n, &err), 0);
        CHECK(n < strlen(s)); /* merges shorten the text */
        char *back = ws_tokenizer_decode(tok, ids, n, false);
        CHECK_EQ_STR(back, s);
        free(back);
        free(ids);
        clone_fmt f;
        CHECK_EQ_INT(ws__clone_fmt_init(&f, tok, &err), 0);
        CHECK(f.n_me == 1 && f.me[0] == CLONE_TOK_ME && f.end == CLONE_TOK_END);
        /* a message cannot smuggle in a turn marker */
        ibuf b = {0};
        ws__clone_fmt_text(&f, "hi <|me|> <|endoftext|>", 200, false, &b);
        for (size_t i = 0; i < b.n; i++)
            CHECK(b.v[i] < CLONE_TOK_END || b.v[i] >= CLONE_VOCAB);
        char *dec = ws_tokenizer_decode(tok, b.v, b.n, false);
        CHECK_EQ_STR(dec, "hi <|me|> <|endoftext|>");
        free(dec);
        ws__clone_ibuf_free(&b);
        ws_tokenizer_free(tok);
    }
    remove(path);
}

/* A two-person chat: Ana writes lower case with emoji, Bo formal sentences. */
static char *write_chat(const char *dir, int days)
{
    char *path = ws__clone_path(dir, "chat.txt");
    FILE *f = fopen(path, "w");
    static const char *const ana[] = {"omg yes 😂", "lol same",   "wait what 🙈", "ok ok im in",
                                      "brb 😅",     "nooo why 😭", "see u there", "yesss 🥹"};
    static const char *const bo[] = {"Good evening. Shall we meet at seven?",
                                     "Thank you, that is very kind.",
                                     "I am afraid I cannot attend.",
                                     "Indeed. I agree entirely.",
                                     "Please confirm the time.",
                                     "Noted. I will check my schedule."};
    unsigned r = 7;
    for (int d = 0; d < days; d++)
        for (int k = 0; k < 6; k++) {
            r = r * 1103515245u + 12345u;
            fprintf(f, "%02d/%02d/2024, %02d:%02d - Bo: %s\n", d % 28 + 1, d / 28 + 1, 9 + k, 0,
                    bo[(r >> 16) % 6]);
            r = r * 1103515245u + 12345u;
            fprintf(f, "%02d/%02d/2024, %02d:%02d - Ana: %s\n", d % 28 + 1, d / 28 + 1, 9 + k, 5,
                    ana[(r >> 16) % 8]);
        }
    fclose(f);
    return path;
}

static int cancel_after(void *arg, double fraction, const char *phase, uint64_t samples)
{
    int *calls = arg;
    if (!strcmp(phase, "training"))
        (*calls)++;
    return *calls > 1; /* the second training step (there are always at least two) */
}

static void end_to_end(void)
{
    char tmpl[] = "/tmp/ws_test_clone_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    char *chat = write_chat(dir, 12);
    char *out = ws__clone_path(dir, "ana");
    ws_error err = {0};
    ws_clone_train_result res;

    /* cancelled after a few steps: WS_EAGAIN with a checkpoint, then a rerun resumes */
    int calls = 0;
    ws_clone_train_opts o = {.export_path = chat,
                             .persona = "Ana",
                             .out_dir = out,
                             .budget_s = 5,
                             .quiet = true,
                             .embed_dir = "none",
                             .progress = cancel_after,
                             .progress_arg = &calls};
    CHECK_EQ_INT(ws_clone_train(&o, &res, &err), WS_EAGAIN);
    ws_clone_train_result_clear(&res);
    char *ck = ws__clone_path(out, "checkpoint.safetensors");
    CHECK(ws__clone_exists(ck));
    free(ck);
    o.progress = NULL;
    int rc = ws_clone_train(&o, &res, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "train: %s\n", err.msg);
        goto out;
    }
    CHECK(res.resumed);
    CHECK(res.steps > 0 && res.steps <= res.total_steps);
    CHECK(res.n_heldout > 0 && res.n_examples > res.n_heldout);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(res.fidelity_json, strlen(res.fidelity_json), &doc, &err), 0);
    const ws_json *sets = ws_json_get(ws_json_root(doc), "sets");
    double a_clone = -1, a_other = -1;
    ws_json_get_num(ws_json_get(sets, "clone"), "attribution", &a_clone);
    ws_json_get_num(ws_json_get(sets, "other_participant"), "attribution", &a_other);
    CHECK(a_clone > a_other);
    ws_json_doc_free(doc);
    ws_clone_train_result_clear(&res);

    ws_clone *c = NULL;
    CHECK_EQ_INT(ws_clone_open(out, &c, &err), 0);
    if (!c) {
        fprintf(stderr, "open: %s\n", err.msg);
        goto out;
    }
    CHECK_EQ_STR(ws_clone_persona(c), "Ana");
    ws_clone_turn ctx[] = {{"Bo", "Good evening. Shall we meet at seven?"}, {"Ana", "omg yes 😂"}};
    ws_clone_answer a;
    CHECK_EQ_INT(ws_clone_reply(c, "Is anybody bringing snacks tonight?", ctx, 2, NULL, &a, &err), 0);
    CHECK(a.reply && *a.reply);
    CHECK(a.confidence >= 0 && a.confidence <= 1);
    CHECK(!ws__clone_is_echo(a.reply, "Is anybody bringing snacks tonight?"));
    double f[CLONE_SF_N];
    ws__clone_style_feats(a.reply, f);
    CHECK(f[1] == 0); /* Ana never starts with a capital */
    ws_clone_answer_clear(&a);
    /* a message that is one of Ana's own replies is never echoed back */
    CHECK_EQ_INT(ws_clone_reply(c, "lol same", NULL, 0, NULL, &a, &err), 0);
    CHECK(!ws__clone_is_echo(a.reply, "lol same"));
    ws_clone_answer_clear(&a);
    CHECK_EQ_INT(ws_clone_reply(c, "   ", NULL, 0, NULL, &a, &err), WS_EINVAL);
    ws_clone_free(c);

    /* a corrupted file is caught by its hash */
    char *rp = ws__clone_path(out, "replies.json");
    FILE *fp = fopen(rp, "a");
    fputs(" ", fp);
    fclose(fp);
    free(rp);
    CHECK_EQ_INT(ws_clone_open(out, &c, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "replies.json") != NULL);

    /* bad input */
    ws_clone_train_opts bad = o;
    bad.persona = "Nobody";
    CHECK_EQ_INT(ws_clone_train(&bad, &res, &err), WS_EINVAL);
    CHECK(strstr(err.msg, "Ana") && strstr(err.msg, "Bo"));
    bad = o;
    bad.base_model = "/nonexistent/model";
    CHECK_EQ_INT(ws_clone_train(&bad, &res, &err), WS_ENOENT);
    char *few = write_chat(dir, 1); /* overwrites chat.txt with 6 messages each */
    bad = o;
    bad.export_path = few;
    CHECK_EQ_INT(ws_clone_train(&bad, &res, &err), WS_EINVAL);
    CHECK(strstr(err.msg, "at least") != NULL);
    free(few);
    CHECK_EQ_INT(ws_clone_open(dir, &c, &err), WS_ENOENT);
out:
    free(out);
    free(chat);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* The training objective with mismatched twins: its weights are its derivative by each
 * position's loss (central differences), the real replies' tokens weigh more than the plain mean
 * and the twins' less than nothing, a twin likelier than its real reply costs more than one less
 * likely, and without twins it is the mean loss with weights 1 / count. */
static void contrast_objective(void)
{
    enum { B = 2, T = 8 };
    /* row 0: a segment without twin (0-2), pair 0's real reply (3-4) and twin (5-7, 5 no target);
     * row 1: pair 0 (0-2 real, 3-5 twin), pair 1 (6 real, 7 twin) */
    const int32_t tag[B * T] = {0, 0, 0, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 4};
    int32_t tg[B * T];
    float nll[B * T], w[B * T], wd[B * T];
    for (int i = 0; i < B * T; i++) {
        tg[i] = i == 5 ? -1 : 7;
        nll[i] = 0.5f + 0.37f * (float)((i * 5) % 7);
    }
    double j = ws__clone_contrast_objective(tg, tag, B, T, nll, w), worst = 0;
    for (int i = 0; i < B * T; i++) {
        float keep = nll[i];
        nll[i] = keep + 0.01f;
        double up = ws__clone_contrast_objective(tg, tag, B, T, nll, wd);
        nll[i] = keep - 0.01f;
        double down = ws__clone_contrast_objective(tg, tag, B, T, nll, wd);
        nll[i] = keep;
        double fd = tg[i] >= 0 ? (up - down) / 0.02 : 0;
        worst = fmax(worst, fabs(fd - w[i]));
    }
    printf("  objective %.4f, weights vs central differences: max |diff| %.2g\n", j, worst);
    CHECK(worst < 1e-4);
    CHECK(w[5] == 0.0f);                                /* no target, no weight */
    CHECK(w[3] > 1.0f / 9 && w[6] < 0 && w[0] == w[1]); /* 9 real-reply tokens */
    /* the same pair with the twin likelier (lower loss) costs more */
    for (int i = 11; i < 14; i++)
        nll[i] = 0.1f;
    CHECK(ws__clone_contrast_objective(tg, tag, B, T, nll, wd) > j);
    const int32_t none[B * T] = {0};
    double mean = 0;
    for (int i = 0; i < B * T; i++)
        mean += tg[i] >= 0 ? nll[i] / 15 : 0;
    CHECK(fabs(ws__clone_contrast_objective(tg, none, B, T, nll, w) - mean) < 1e-6);
    for (int i = 0; i < B * T; i++)
        CHECK(w[i] == (tg[i] >= 0 ? 1.0f / 15 : 0.0f));
}

/* Packing: each segment's twin follows it in its row, sharing its prompt: the prompt's last
 * token again (no target), then the twin's reply, skipping the true reply (skip_from at the
 * prompt's last token, skip_to where the twin begins); tags 2k+1, 2k+2. A segment without a
 * twin packs alone (tag 0). */
static void twins_share_the_prompt(void)
{
    enum { N = 12, LEN = 5, TW = 2, T = 16 };
    clone_seg segs[N], twins[N];
    int32_t ids[LEN] = {1, 2, 3, 4, 5}, tids[TW] = {9, 9};
    uint8_t learn[LEN] = {0, 0, 0, 1, 1}, tlearn[TW] = {1, 1};
    for (int round = 0; round < 2; round++) {
        bool twin = round == 0;
        for (int i = 0; i < N; i++) {
            twins[i] = (clone_seg){tids, tlearn, TW, 0, NULL};
            segs[i] = (clone_seg){ids, learn, LEN, 3, twin ? &twins[i] : NULL};
        }
        clone_packer pk = {.segs = segs, .n_segs = N, .T = T, .pad = 0, .isolate = true, .seed = 3};
        ws__clone_pack_epoch(&pk);
        int max_tag = 0, learned = 0;
        for (size_t i = 0; i < pk.n_rows * T; i++) {
            max_tag = pk.rows_tag[i] > max_tag ? pk.rows_tag[i] : max_tag;
            learned += pk.rows_tg[i] >= 0;
        }
        printf("  %s: %zu rows, largest tag %d, %d targets\n", twin ? "twins" : "alone", pk.n_rows, max_tag,
               learned);
        /* a pair takes 5 + 1 + 2 tokens: two a row of 17; alone, three */
        CHECK_EQ_INT((int)pk.n_rows, twin ? 6 : 4);
        CHECK_EQ_INT(max_tag, twin ? 4 : 0);
        CHECK_EQ_INT(learned, (twin ? 4 : 2) * N);
        if (twin) { /* row 0: the pair at 0..4, its twin at 5..7, the next pair from 8 */
            const int32_t *in = pk.rows_in, *tg = pk.rows_tg, *st = pk.rows_st, *sf = pk.rows_sf,
                          *sk = pk.rows_sk;
            CHECK(in[5] == 3 && tg[4] < 0 && tg[5] == 9 && tg[6] == 9 && tg[7] < 0);
            CHECK(st[5] == 0 && sf[5] == 2 && sk[5] == 5 && sf[7] == 2 && sk[7] == 5);
            CHECK(st[4] == 0 && sf[4] == 0 && sk[4] == 0 && st[8] == 8 && sf[8] == 8 && sk[8] == 8);
            CHECK(pk.rows_tag[4] == 1 && pk.rows_tag[5] == 2 && pk.rows_tag[8] == 3);
        }
        ws__clone_packer_free(&pk);
    }
}

WS_TEST_MAIN(T(style_features), T(contrast_objective), T(twins_share_the_prompt), T(echo_and_trim), T(guard),
             T(context_parse), T(byte_tokenizer), T(bpe_tokenizer), T(end_to_end))
