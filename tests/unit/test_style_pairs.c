/* Unit tests for personal-data masking and training-pair building (src/style/mask, pairs). */
#include "harness.h"

#include "core/buf.h"
#include "style/mask.h"
#include "style/pairs.h"
#include "style/profile.h"
#include "chat/synth.h"

static char *masked(const char *s, size_t *count)
{
    ws_mask_rules r;
    ws_mask_rules_default(&r);
    ws_buf b = WS_BUF_INIT;
    size_t c = ws_mask_apply(&r, s, strlen(s), &b);
    if (count)
        *count = c;
    return ws_buf_take(&b);
}

#define CHECK_MASK(in, want)                                                                                 \
    do {                                                                                                     \
        char *_m = masked(in, NULL);                                                                         \
        CHECK_EQ_STR(_m, want);                                                                              \
        free(_m);                                                                                            \
    } while (0)

static void masks_personal_data(void)
{
    CHECK_MASK("mail me at jo.doe+x@mail.example.co.uk!", "mail me at <email>!");
    CHECK_MASK("see https://example.com/a?b=c, ok", "see <link>, ok");
    CHECK_MASK("(www.foo.org/path).", "(<link>).");
    CHECK_MASK("google.com is down", "<link> is down");
    CHECK_MASK("site.de/impressum", "<link>");
    CHECK_MASK("call +49 151 2345 6789 now", "call <phone> now");
    CHECK_MASK("my number: 0151-23456789", "my number: <phone>");
    CHECK_MASK("(555) 123-4567 or +1 555 123 4567", "<phone> or <phone>");
    CHECK_MASK("call 015123456789", "call <phone>");
    /* things that are not personal data stay */
    CHECK_MASK("meet at 12:30 on 12.05.2023", "meet at 12:30 on 12.05.2023");
    CHECK_MASK("it costs 1500 euros, 3 4 5", "it costs 1500 euros, 3 4 5");
    CHECK_MASK("ok... fine.then", "ok... fine.then");
    CHECK_MASK("e.g. this", "e.g. this");
    CHECK_MASK("order 1234567", "order 1234567");
    CHECK_MASK("abc@def", "abc@def");
    size_t c = 0;
    char *m = masked("a@b.cd x@y.org https://t.co/x", &c);
    CHECK_EQ_INT(c, 3);
    free(m);
}

static void parses_rules_files(void)
{
    const char *text = "# rules\n  phone  phone  [PHONE]\r\nmail email \"\"\nweb url <a link>\n";
    ws_mask_rules r;
    ws_error err = {0};
    CHECK_EQ_INT(ws_mask_rules_parse(text, strlen(text), &r, &err), 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_STR(r.rule[0].replacement, "[PHONE]");
    CHECK_EQ_STR(r.rule[1].replacement, "");
    CHECK_EQ_STR(r.rule[2].name, "web");
    CHECK_EQ_STR(r.rule[2].replacement, "<a link>");
    ws_buf b = WS_BUF_INIT;
    ws_mask_apply(&r, "x@y.com +44 20 7946 0958 www.a.io", 33, &b);
    CHECK_EQ_STR(b.data, " [PHONE] <a link>");
    ws_buf_free(&b);
    const char *bad = "ok phone x\nbad regex .*\n";
    CHECK_EQ_INT(ws_mask_rules_parse(bad, strlen(bad), &r, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "line 2") != NULL);
    CHECK_EQ_INT(ws_mask_rules_parse("lonely\n", 7, &r, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_mask_rules_load("/nonexistent/rules", &r, &err), WS_ENOENT);
}

typedef struct {
    int d, h, mi, s;
    const char *who, *text;
    ws_msg_kind kind;
} msg_spec;

static ws_pairs *build(const msg_spec *ms, size_t n, const char *persona, const ws_pairs_options *opt,
                       int *rc)
{
    ws_pairs_builder *b = ws_pairs_builder_new(persona, opt);
    for (size_t i = 0; i < n; i++) {
        ws_message m = {0};
        m.ts = (ws_datetime){2024, 3, ms[i].d, ms[i].h, ms[i].mi, ms[i].s};
        m.author = ms[i].who;
        m.author_len = ms[i].who ? strlen(ms[i].who) : 0;
        m.text = ms[i].text;
        m.text_len = strlen(ms[i].text);
        m.kind = ms[i].kind;
        m.line = i + 1;
        ws_pairs_builder_add(b, &m);
    }
    ws_pairs *p = NULL;
    ws_error err = {0};
    *rc = ws_pairs_builder_finish(b, &p, &err);
    return p;
}

static void builds_turns_sessions_and_examples(void)
{
    const msg_spec ms[] = {
        {1, 9, 0, 0, NULL, "Messages are end-to-end encrypted.", WS_MSG_SYSTEM},
        {1, 9, 0, 5, "Bob", "hey", WS_MSG_TEXT},
        {1, 9, 1, 0, "Bob", "you there? call +49 151 2345 6789", WS_MSG_TEXT}, /* merged */
        {1, 9, 2, 0, "Ann", "yes!", WS_MSG_TEXT},                              /* example 1 */
        {1, 9, 3, 0, "Ann", "<Media omitted>", WS_MSG_MEDIA},                  /* merged */
        {1, 9, 10, 0, "Ann", "also this", WS_MSG_TEXT},                        /* new turn, no example */
        {1, 9, 11, 0, "Bob", "<Media omitted>", WS_MSG_MEDIA},
        {1, 9, 12, 30, "Ann", "lol", WS_MSG_TEXT}, /* example 2 */
        {1, 12, 0, 0, "Bob", "new session", WS_MSG_TEXT},
        {1, 12, 5, 0, "Ann", "This message was deleted", WS_MSG_DELETED}, /* no text: no example */
        {1, 12, 6, 0, "Bob", "why deleted", WS_MSG_TEXT},
        {1, 12, 7, 0, "Ann", "oops", WS_MSG_TEXT}, /* example 3 */
    };
    int rc;
    ws_pairs *p = build(ms, sizeof ms / sizeof ms[0], "Ann", NULL, &rc);
    CHECK_EQ_INT(rc, 0);
    if (!p)
        return;
    CHECK_EQ_INT(p->n_messages, 12);
    CHECK_EQ_INT(p->n_system_dropped, 1);
    CHECK_EQ_INT(p->n_participants, 2);
    CHECK_EQ_STR(p->participants[0], "Bob");
    CHECK_EQ_INT(p->participant_msgs[1], 6);
    CHECK_EQ_INT(p->n_sessions, 2);
    CHECK_EQ_INT(p->n_turns, 9);
    CHECK_EQ_STR(p->turns[0].text, "hey\nyou there? call <phone>");
    CHECK_EQ_INT(p->turns[0].n_bubbles, 2);
    CHECK_EQ_STR(p->turns[1].text, "yes!\n" WS_PAIRS_MEDIA_MARKER);
    CHECK_EQ_STR(p->turns[1].reply, "yes!");
    CHECK(p->turns[1].persona);
    CHECK_EQ_INT(p->n_masked, 1);
    CHECK_EQ_INT(p->n_examples, 3);
    const ws_example *e = &p->examples[0];
    CHECK_EQ_INT(e->turn, 1);
    CHECK_EQ_INT(e->n_context, 1);
    CHECK_NEAR(e->response_s, 60, 0);
    e = &p->examples[1];
    CHECK_EQ_INT(e->turn, 4);
    CHECK_EQ_INT(e->ctx_first, 0);
    CHECK_EQ_INT(e->n_context, 4);
    CHECK_EQ_STR(p->turns[3].text, WS_PAIRS_MEDIA_MARKER);
    CHECK_NEAR(e->response_s, 90, 0);
    e = &p->examples[2];
    CHECK_EQ_STR(p->turns[e->turn].reply, "oops");
    CHECK_EQ_INT(p->turns[e->ctx_first].session, 1); /* context stays inside its session */
    CHECK_EQ_INT(e->n_context, 3);
    CHECK(p->turns[e->ctx_first + 1].reply == NULL); /* the deleted-only turn */
    /* 3 examples: 10% rounds to 0, at least one held out: the latest */
    CHECK_EQ_INT(p->n_heldout, 1);
    CHECK(p->examples[2].heldout && !p->examples[0].heldout && !p->examples[1].heldout);
    CHECK_EQ_INT(p->turns[0].hour, 9);
    CHECK_EQ_INT(p->turns[0].weekday, 4); /* 2024-03-01 was a Friday */
    ws_pairs_free(p);
}

static void context_is_capped_and_heldout_is_last_tenth(void)
{
    enum { N = 200 };
    msg_spec ms[N];
    static char texts[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], "m%d", i);
        /* alternate speakers every 3 minutes, all in one session; 1 day = 480 slots */
        ms[i] = (msg_spec){1 + (i * 3) / 1440, ((i * 3) / 60) % 24, (i * 3) % 60, 0, i % 2 ? "Ann" : "Bob",
                           texts[i],           WS_MSG_TEXT};
    }
    int rc;
    ws_pairs_options opt = {.max_context = 5, .no_mask = true};
    ws_pairs *p = build(ms, N, "Ann", &opt, &rc);
    CHECK_EQ_INT(rc, 0);
    if (!p)
        return;
    CHECK_EQ_INT(p->n_turns, N);
    CHECK_EQ_INT(p->n_examples, N / 2);
    CHECK_EQ_INT(p->n_heldout, 10);
    for (size_t i = 0; i < p->n_examples; i++) {
        const ws_example *e = &p->examples[i];
        CHECK(e->n_context <= 5);
        CHECK_EQ_INT(e->heldout, i >= p->n_examples - 10);
    }
    CHECK_EQ_INT(p->examples[50].n_context, 5);
    CHECK_EQ_INT(p->examples[0].n_context, 1);
    ws_pairs_free(p);
}

static void reports_missing_persona(void)
{
    const msg_spec ms[] = {{1, 9, 0, 0, "Bob", "hi", WS_MSG_TEXT}, {1, 9, 1, 0, "Cy", "yo", WS_MSG_TEXT}};
    ws_pairs_builder *b = ws_pairs_builder_new("Ann", NULL);
    for (size_t i = 0; i < 2; i++) {
        ws_message m = {.ts = {2024, 1, 1, 9, (int)i, 0},
                        .author = ms[i].who,
                        .author_len = strlen(ms[i].who),
                        .text = ms[i].text,
                        .text_len = 2};
        ws_pairs_builder_add(b, &m);
    }
    ws_pairs *p = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_pairs_builder_finish(b, &p, &err), WS_EINVAL);
    CHECK(p == NULL);
    CHECK(strstr(err.msg, "\"Bob\", \"Cy\"") != NULL);
    b = ws_pairs_builder_new("Ann", NULL);
    CHECK_EQ_INT(ws_pairs_builder_finish(b, &p, &err), WS_EEMPTY);
    ws_pairs_builder_free(ws_pairs_builder_new("x", NULL));
}

static void datetime_seconds(void)
{
    ws_datetime t = {1970, 1, 1, 0, 0, 0};
    CHECK_EQ_INT(ws_datetime_seconds(&t), 0);
    ws_datetime t2 = {2000, 3, 1, 12, 30, 15};
    CHECK_EQ_INT(ws_datetime_seconds(&t2), 951913815);
    CHECK_EQ_INT(ws_weekday_of(ws_datetime_seconds(&t2)), 2); /* Wednesday */
}

static void from_real_export(void)
{
    ws_pairs *p = NULL;
    ws_error err = {0};
    int rc = ws_pairs_from_file("tests/fixtures/chat/android_en_gb.txt", "Ana Souza", NULL, &p, &err);
    CHECK_EQ_INT(rc, 0);
    if (!p) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(p->n_system_dropped >= 2);
    CHECK(p->n_media >= 1 && p->n_deleted >= 1);
    CHECK(p->n_participants >= 3);
    /* the unsaved contact's name is a phone number: masked wherever the turns name it */
    bool masked_name = false;
    for (size_t i = 0; i < p->n_participants; i++)
        if (strstr(p->participants[i], "7700 900123")) {
            CHECK_EQ_STR(p->display_names[i], "<phone> 1");
            masked_name = true;
        } else {
            CHECK_EQ_STR(p->display_names[i], p->participants[i]);
        }
    CHECK(masked_name);
    for (size_t i = 0; i < p->n_turns; i++)
        CHECK(strstr(p->turns[i].author, "7700") == NULL);
    CHECK(p->n_turns >= 5); /* Ana never answers within a session here: no examples */
    CHECK_EQ_INT(p->n_examples, 0);
    for (size_t i = 0; i < p->n_turns; i++)
        CHECK(strstr(p->turns[i].text, "7700 900123") == NULL); /* masked if present in a body */
    ws_pairs_free(p);
    CHECK_EQ_INT(ws_pairs_from_file("tests/fixtures/chat/android_en_gb.txt", "Nobody", NULL, &p, &err),
                 WS_EINVAL);
    CHECK(strstr(err.msg, "Ana Souza") != NULL);
    CHECK_EQ_INT(ws_pairs_from_file("/nonexistent.txt", "x", NULL, &p, &err), WS_ENOENT);
}

static void from_synthetic_chat(void)
{
    ws_chat_synth s;
    ws_chat_synth_init(&s, 7);
    ws_buf text = WS_BUF_INIT;
    uint64_t sum = 0;
    for (int i = 0; i < 3000; i++)
        ws_chat_synth_next(&s, &text, &sum);
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_chat_open_memory(text.data, text.len, NULL, &r, &err), 0);
    /* the first author the reader sees becomes the persona */
    ws_message m;
    char persona[128] = "";
    while (ws_chat_next(r, &m, &err) == 1)
        if (m.author) {
            snprintf(persona, sizeof persona, "%s", m.author);
            break;
        }
    ws_chat_close(r);
    CHECK_EQ_INT(ws_chat_open_memory(text.data, text.len, NULL, &r, &err), 0);
    ws_pairs *p = NULL;
    CHECK_EQ_INT(ws_pairs_from_chat(r, persona, NULL, &p, &err), 0);
    ws_chat_close(r);
    if (p) {
        CHECK_EQ_INT(p->n_messages, 3000);
        CHECK(p->n_examples > 50);
        size_t held = 0;
        int64_t last_train = INT64_MIN, first_held = INT64_MAX;
        for (size_t i = 0; i < p->n_examples; i++) {
            const ws_example *e = &p->examples[i];
            const ws_turn *t = &p->turns[e->turn];
            CHECK(t->persona && t->reply);
            CHECK(!p->turns[e->turn - 1].persona);
            CHECK(e->n_context >= 1 && e->n_context <= 8);
            CHECK_EQ_INT(p->turns[e->ctx_first].session, t->session);
            held += e->heldout;
            if (e->heldout && t->start < first_held)
                first_held = t->start;
            if (!e->heldout && t->start > last_train)
                last_train = t->start;
        }
        CHECK_EQ_INT(held, p->n_heldout);
        CHECK_EQ_INT(held, (size_t)(p->n_examples * 0.1 + 0.5));
        CHECK(last_train <= first_held);
        ws_profile *pf = ws_profile_from_pairs(p, WS_PROFILE_ALL);
        CHECK(pf->n_messages > 0);
        CHECK(pf->n_other_messages > 0);
        ws_profile *tr = ws_profile_from_pairs(p, WS_PROFILE_TRAIN),
                   *ho = ws_profile_from_pairs(p, WS_PROFILE_HELDOUT);
        CHECK_EQ_INT(tr->n_messages + ho->n_messages, p->n_examples);
        ws_profile_free(pf);
        ws_profile_free(tr);
        ws_profile_free(ho);
        ws_pairs_free(p);
    }
    ws_buf_free(&text);
}

WS_TEST_MAIN(T(masks_personal_data), T(parses_rules_files), T(builds_turns_sessions_and_examples),
             T(context_is_capped_and_heldout_is_last_tenth), T(reports_missing_persona), T(datetime_seconds),
             T(from_real_export), T(from_synthetic_chat))
