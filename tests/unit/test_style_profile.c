/* Unit tests for the style profile and the stylometric distance (src/style/profile). */
#include "harness.h"

#include "core/buf.h"
#include "core/json.h"
#include "style/pairs.h"
#include "style/profile.h"
#include "style/text.h"

/* Ann writes short lower-case messages with "haha" and 😂; Bob writes long formal sentences. */
static const char *ann_lines[] = {
    "haha yes \xf0\x9f\x98\x82",
    "omg no way!!",
    "haha true",
    "see u later \xf0\x9f\x98\x82\xf0\x9f\x98\x82",
    "ok cool",
    "haha omg \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "lol what??",
    "yes pls",
    "haha no \xf0\x9f\x98\x82",
    "omg really",
    "ok",
    "on my way \xf0\x9f\x87\xa9\xf0\x9f\x87\xaa",
};
static const char *bob_lines[] = {
    "Good morning. Are we still meeting at the office tomorrow?",
    "I have sent the documents to the accountant, please check them.",
    "The weather is lovely today, I think we should go for a walk.",
    "Please remember to bring the keys when you come over.",
    "I will be a bit late, the train is delayed again.",
    "Thank you for dinner yesterday, it was wonderful.",
};

static ws_pairs *chat(void)
{
    ws_pairs_builder *b = ws_pairs_builder_new("Ann", NULL);
    for (int i = 0; i < 48; i++) {
        bool ann = i % 2;
        const char *t = ann ? ann_lines[(i / 2) % 12] : bob_lines[(i / 2) % 6];
        ws_message m = {0};
        /* a turn every 5 minutes, a new session every 8 turns, evenings */
        int slot = i % 8, day = 1 + i / 8;
        m.ts = (ws_datetime){2024, 5, day, 20, (slot / 2) * 10 + (ann ? 3 : 0), 0};
        m.author = ann ? "Ann" : "Bob";
        m.author_len = 3;
        m.text = t;
        m.text_len = strlen(t);
        ws_pairs_builder_add(b, &m);
    }
    ws_pairs *p = NULL;
    CHECK_EQ_INT(ws_pairs_builder_finish(b, &p, NULL), 0);
    return p;
}

static void profile_measures_style(void)
{
    ws_pairs *pr = chat();
    if (!pr)
        return;
    ws_profile *p = ws_profile_from_pairs(pr, WS_PROFILE_ALL);
    CHECK_EQ_INT(p->n_messages, 24);
    CHECK_EQ_INT(p->n_other_messages, 24);
    CHECK(p->chars.p[2] < 15);
    CHECK(p->chars.p[0] <= p->chars.p[2] && p->chars.p[2] <= p->chars.p[4]);
    CHECK_NEAR(p->emoji_messages, 10.0 / 24, 1e-9); /* 5 of 12 lines, twice */
    CHECK_NEAR(p->emoji_per_message, 12.0 / 24, 1e-9);
    CHECK(p->n_emoji >= 3);
    CHECK_EQ_STR(p->emoji[0].text, "\xf0\x9f\x98\x82"); /* 😂 favourite */
    CHECK_EQ_INT(p->emoji[0].count, 8);
    CHECK_NEAR(p->all_lower, 1.0, 1e-9);
    CHECK_NEAR(p->starts_upper, 0.0, 1e-9);
    CHECK_NEAR(p->multi_excl, 2.0 / 24, 1e-9);
    CHECK_NEAR(p->multi_quest, 2.0 / 24, 1e-9);
    CHECK(p->n_langs >= 1);
    CHECK_EQ_STR(p->langs[0].code, "en");
    CHECK(p->response_s.n > 0);
    CHECK_NEAR(p->response_s.p[2], 180, 1e-9);
    CHECK(p->hours[20] > 0.5);
    CHECK(p->n_phrases >= 2);
    bool haha = false, omg = false;
    for (size_t i = 0; i < p->n_phrases; i++) {
        haha |= strcmp(p->phrases[i].text, "haha") == 0;
        omg |= strcmp(p->phrases[i].text, "omg") == 0;
        CHECK(strcmp(p->phrases[i].text, "the") != 0);
    }
    CHECK(haha && omg);
    /* every short line is said twice: the tie goes to the first in byte order */
    CHECK_EQ_STR(p->typical_reply, "haha no \xf0\x9f\x98\x82");
    CHECK_EQ_INT(p->typical_reply_count, 2);

    ws_buf j = WS_BUF_INIT;
    ws_profile_to_json(p, &j);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(j.data, j.len, &doc, NULL), 0);
    if (doc) {
        const ws_json *root = ws_json_root(doc);
        double v = 0;
        CHECK(ws_json_get_num(root, "messages", &v) && v == 24);
        const ws_json *fav = ws_json_get(ws_json_get(root, "emoji"), "favourites");
        CHECK(fav && fav->len >= 3);
        CHECK_EQ_STR(ws_json_get_str(ws_json_at(fav, 0), "emoji"), "\xf0\x9f\x98\x82");
        CHECK(ws_json_get_num(ws_json_get(ws_json_get(root, "length"), "chars"), "p50", &v));
        const ws_json *hours = ws_json_get(root, "active_hours");
        CHECK(hours && hours->len == 24);
        CHECK(ws_json_get(root, "signature_phrases") && ws_json_get(root, "signature_phrases")->len >= 2);
        ws_json_doc_free(doc);
    }
    ws_buf s = WS_BUF_INIT;
    ws_profile_summary(p, &s);
    CHECK(strstr(s.data, "Emoji: 0.50 per message") != NULL);
    CHECK(strstr(s.data, "Languages: en") != NULL);
    CHECK(strstr(s.data, "\"haha\"") != NULL);
    ws_buf_free(&s);
    ws_buf_free(&j);
    ws_profile_free(p);
    ws_pairs_free(pr);
}

static void participant_profiles(void)
{
    ws_pairs *pr = chat();
    if (!pr)
        return;
    ws_profile *bob = ws_profile_of_participant(pr, 0), *ann = ws_profile_of_participant(pr, 1);
    CHECK_EQ_INT(bob->n_messages, 24);
    CHECK(bob->starts_upper > 0.99);
    CHECK(bob->typical_reply[0] == '\0'); /* Bob never says anything short */
    CHECK(ann->all_lower > 0.99);
    CHECK_NEAR(ann->response_s.p[2], 180, 1e-9);
    CHECK(ws_profile_distance(ann, bob, NULL) > 0.3);
    ws_profile_free(bob);
    ws_profile_free(ann);
    ws_pairs_free(pr);
}

static void json_round_trip(void)
{
    ws_pairs *pr = chat();
    if (!pr)
        return;
    ws_profile *p = ws_profile_from_pairs(pr, WS_PROFILE_ALL);
    ws_buf a = WS_BUF_INIT, b = WS_BUF_INIT;
    ws_profile_to_json(p, &a);
    ws_profile *back = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_profile_from_json(a.data, a.len, &back, &err), 0);
    if (back) {
        ws_profile_to_json(back, &b);
        CHECK_EQ_STR(b.data, a.data);
        CHECK_EQ_STR(back->typical_reply, p->typical_reply);
        CHECK_EQ_INT(back->n_phrases, p->n_phrases);
        CHECK(ws_profile_distance(p, back, NULL) < 1e-3);
        ws_profile_free(back);
    }
    CHECK_EQ_INT(ws_profile_from_json("{\"version\":2}", 13, &back, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_profile_from_json("[", 1, &back, &err), WS_EFORMAT);
    CHECK(back == NULL);
    ws_buf_free(&a);
    ws_buf_free(&b);
    ws_profile_free(p);
    ws_pairs_free(pr);
}

static void languages_and_scripts(void)
{
    const char *texts[] = {"ich bin heute nicht da", "das ist doch schon gut",
                           "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "und du?",
                           "ja klar, mal sehen"};
    ws_profile *p = ws_profile_from_texts(texts, 5);
    CHECK_EQ_STR(p->langs[0].code, "de");
    CHECK_NEAR(p->langs[0].share, 0.8, 1e-9);
    CHECK_EQ_STR(p->langs[1].code, "ru");
    CHECK(p->scripts[WS_SCRIPT_CYRILLIC] > 0 && p->scripts[WS_SCRIPT_LATIN] > 0.5);
    CHECK_EQ_INT(p->response_s.n, 0);
    ws_profile_free(p);
}

static void distance_separates_people(void)
{
    const char *ann_a[6], *ann_b[6], *bob[6];
    for (int i = 0; i < 6; i++) {
        ann_a[i] = ann_lines[i];
        ann_b[i] = ann_lines[6 + i];
        bob[i] = bob_lines[i];
    }
    ws_profile *a1 = ws_profile_from_texts(ann_a, 6), *a2 = ws_profile_from_texts(ann_b, 6);
    ws_profile *b = ws_profile_from_texts(bob, 6);
    ws_style_distance same, diff;
    double ds = ws_profile_distance(a1, a2, &same), dd = ws_profile_distance(a1, b, &diff);
    CHECK_NEAR(ws_profile_distance(a1, a1, NULL), 0.0, 1e-12);
    CHECK(ds < dd);
    CHECK(dd > 0.3 && dd <= 1.0);
    CHECK(same.casing < diff.casing);
    CHECK(same.length < diff.length);
    CHECK(diff.emoji > 0.5);
    CHECK_NEAR(ws_profile_distance(a1, b, NULL), ws_profile_distance(b, a1, NULL), 1e-12);
    ws_profile_free(a1);
    ws_profile_free(a2);
    ws_profile_free(b);
}

static void empty_profile_is_sane(void)
{
    ws_profile *p = ws_profile_from_texts(NULL, 0);
    CHECK_EQ_INT(p->n_messages, 0);
    ws_buf j = WS_BUF_INIT;
    ws_profile_to_json(p, &j);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(j.data, j.len, &doc, NULL), 0);
    ws_json_doc_free(doc);
    ws_buf_free(&j);
    double d = ws_profile_distance(p, p, NULL);
    CHECK(d >= 0 && d <= 1);
    ws_profile_free(p);
    ws_profile_builder_free(ws_profile_builder_new());
}

WS_TEST_MAIN(T(profile_measures_style), T(participant_profiles), T(json_round_trip), T(languages_and_scripts),
             T(distance_separates_people), T(empty_profile_is_sane))
