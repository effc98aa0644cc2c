/* The held-out topic check of tests/fixtures/eval/: each person's clone answers the questions
 * that person answers in questions.json (unseen messages on the chat's topics) and every answer
 * is judged on-topic, off-topic or neutral by the topics' keywords — the clone's answers next to
 * the person's real ones. Goal (issue 8): on-topic at least 90% as often as the real answers and
 * off-topic at most 1 time in 16. --draws N asks every question N times (the first draw with the
 * reply's own seed, as the product answers; the others with other sampling seeds) and reports
 * the counts per 16 questions averaged over the draws, since one draw is a noisy estimate.
 * --answers FILE judges a peer's answers instead (bench/relevance_peer.py writes them: PyTorch +
 * PEFT on the same base), with the same judge, so the two are counted alike. A NAME given more
 * than once (clones of separate trainings) also gets the mean of its clones' counts. The keyword
 * judge is a quick proxy that blind readers often overrule (a reply's word that is also another
 * topic's keyword makes it "off-topic"): bench/relevance_readers.py scores the --show output by
 * readers' labels instead (tests/fixtures/eval/README.md). Beside the topic, the goal keeps the
 * style: each answer, the clone's and the real one, is attributed to one of the chat's people by
 * Cosine Delta over every turn of the chat (ws_stylo_attributor), and the share attributed to
 * the person who answers is printed (the goal: 16 of 20, 0.8).
 *
 * Usage: bench_relevance_check QUESTIONS.json NAME=CLONE_DIR [NAME=CLONE_DIR...] [--show]
 *        [--draws N]
 *        bench_relevance_check QUESTIONS.json --answers FILE [--show] */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone.h"
#include "core/file.h"
#include "core/json.h"
#include "style/pairs.h"
#include "style/stylometry.h"
#include "bench_env.h"

typedef enum { ON, NEUTRAL, OFF } verdict;
static const char *const vnames[] = {"on-topic", "neutral", "OFF-TOPIC"};

static void lower(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    for (; *s && k + 1 < cap; s++)
        out[k++] = (char)tolower((unsigned char)*s);
    out[k] = 0;
}

/* Occurrences of kw in text as a whole word (or as a phrase when it has a space). */
static int hits(const char *text, const char *kw)
{
    int n = 0;
    size_t kl = strlen(kw);
    for (const char *p = strstr(text, kw); p; p = strstr(p + 1, kw)) {
        bool left = p == text || !isalnum((unsigned char)p[-1]);
        bool right = !isalnum((unsigned char)p[kl]);
        n += left && right;
    }
    return n;
}

/* The topic an answer is about: keyword hits per topic; on-topic when the question's topic has
 * the most hits (ties to it), off-topic when another topic has hits and it has none. */
static verdict judge(const ws_json *topics, const char *topic, const char *answer, const char **other)
{
    char low[4096];
    lower(answer, low, sizeof low);
    int own = 0, best_other = 0;
    *other = NULL;
    for (size_t t = 0; t < topics->len; t++) {
        const ws_json *kws = ws_json_get(&topics->items[t], "keywords");
        int h = 0;
        for (size_t k = 0; kws && k < kws->len; k++)
            if (kws->items[k].type == WS_JSON_STRING)
                h += hits(low, kws->items[k].str);
        if (!strcmp(topics->keys[t], topic))
            own = h;
        else if (h > best_other)
            best_other = h, *other = topics->keys[t];
    }
    if (own > 0 && own >= best_other)
        return ON;
    return best_other > 0 ? OFF : NEUTRAL;
}

/* What every answer is judged by. */
typedef struct check {
    const ws_json *topics;
    bool show;
    const ws_pairs *chat;            /* the chat the clones learnt from: its people's names */
    ws_stylo_attributor *attributor; /* Cosine Delta over the chat's turns */
} check;

typedef struct {
    const char *name, *dir;
    ws_clone *c;
    size_t author; /* index among the chat's participants; SIZE_MAX: not in it */
    int n, clone_v[3], real_v[3];
    int clone_answers, clone_theirs, real_theirs; /* answers attributed to this person */
} person;

static person new_person(const check *chk, const char *name, const char *dir)
{
    person p = {.name = name, .dir = dir, .author = SIZE_MAX};
    for (size_t a = 0; chk->chat && a < chk->chat->n_participants; a++)
        if (!strcmp(chk->chat->participants[a], name))
            p.author = a;
    return p;
}

/* The chat of questions.json ("chat", beside it) read whole, and an attributor over its turns;
 * NULL with a message when it cannot be read (the topic counts go on without attribution). */
static ws_pairs *read_chat(const char *questions_path, const ws_json *root, ws_stylo_attributor **attr)
{
    const ws_json *qs = ws_json_get(root, "questions");
    const char *name = ws_json_get_str(root, "chat"), *slash = strrchr(questions_path, '/'),
               *someone = qs && qs->len ? ws_json_get_str(&qs->items[0], "answerer") : NULL;
    if (!name || !someone)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%.*s%s", slash ? (int)(slash - questions_path + 1) : 0, questions_path,
             name);
    ws_pairs *chat = NULL;
    ws_error err = {0};
    ws_pairs_options o = {.heldout_fraction = -1};
    if (ws_pairs_from_file(path, someone, &o, &chat, &err)) { /* any person: only the turns are used */
        fprintf(stderr, "%s: %s (no style attribution)\n", path, err.msg);
        return NULL;
    }
    *attr = ws_stylo_attributor_new(chat->n_participants);
    for (size_t t = 0; t < chat->n_turns; t++)
        if (chat->turns[t].reply)
            ws_stylo_attributor_add(*attr, chat->turns[t].author_idx, chat->turns[t].reply);
    ws_stylo_attributor_fit(*attr, 3, SIZE_MAX);
    return chat;
}

/* Judges one answer of p (and, on the first draw, the real one) into p's counts. */
static void tally(person *p, const check *chk, const ws_json *q, const char *reply, double ms, int draw)
{
    const char *o1, *o2, *real = ws_json_get_str(q, "real_answer"), *topic = ws_json_get_str(q, "topic");
    verdict vc = judge(chk->topics, topic, reply, &o1), vr = judge(chk->topics, topic, real, &o2);
    p->clone_v[vc]++;
    if (!draw) {
        p->real_v[vr]++;
        p->n++;
    }
    const char *style_of = NULL; /* another person's, when the clone's answer is attributed to them */
    if (chk->attributor && p->author != SIZE_MAX) {
        size_t a = ws_stylo_attribute(chk->attributor, reply);
        p->clone_answers++;
        p->clone_theirs += a == p->author;
        p->real_theirs += !draw && ws_stylo_attribute(chk->attributor, real) == p->author;
        style_of = a != p->author && a != SIZE_MAX ? chk->chat->participants[a] : NULL;
    }
    if (chk->show)
        printf("[%s] %s\n  Q: %s\n  clone (%s%s%s, %.0f ms%s%s): %s\n  real  (%s): %s\n", p->name, topic,
               ws_json_get_str(q, "question"), vnames[vc], vc == OFF ? " -> " : "", vc == OFF ? o1 : "", ms,
               style_of ? ", style of " : "", style_of ? style_of : "", reply, vnames[vr], real);
}

/* Share of p's clone answers attributed to p; -1 when not measured. */
static double attributed(const person *p)
{
    return p->clone_answers ? (double)p->clone_theirs / p->clone_answers : -1;
}

/* The goal: on the topic at least 90% as often as the real answers, off it at most 1 in
 * 16, with the style kept: at least 16 answers of 20 attributed to the person (when measured). */
static bool goal_met(const person *p, double on, double off, double attr)
{
    return on * 10 >= p->real_v[ON] * 9 && off * 16 <= p->n && (attr < 0 || attr >= 0.8);
}

/* A person given several clones (adapters of separate trainings, NAME=DIR more than once): the
 * counts averaged over them, judged against the goal, since one training's adapter is a noisy
 * sample of what training gives. Printed once, at the person's first clone. */
static void print_means(const person *ps, int np, int draws)
{
    for (int k = 0; k < np; k++) {
        bool seen = false;
        for (int j = 0; j < k && !seen; j++)
            seen = !strcmp(ps[j].name, ps[k].name);
        if (seen)
            continue;
        int n_clones = 0;
        double on = 0, off = 0, attr = 0;
        for (int j = k; j < np; j++)
            if (!strcmp(ps[j].name, ps[k].name)) {
                n_clones++;
                on += (double)ps[j].clone_v[ON] / draws;
                off += (double)ps[j].clone_v[OFF] / draws;
                attr += attributed(&ps[j]);
            }
        if (n_clones < 2)
            continue;
        on /= n_clones;
        off /= n_clones;
        attr /= n_clones;
        printf("%s: mean of %d clones %.4g on / %.4g off of %d, attributed %.3f | %s\n", ps[k].name, n_clones,
               on, off, ps[k].n, attr, goal_met(&ps[k], on, off, attr) ? "met" : "NOT met");
    }
}

static int ask(person *p, const check *chk, const ws_json *q, int draw)
{
    const ws_json *ctx = ws_json_get(q, "context");
    size_t nc = ctx ? ctx->len : 0;
    ws_clone_turn *turns = calloc(nc + 1, sizeof *turns);
    for (size_t i = 0; i < nc; i++) {
        turns[i].author = ws_json_get_str(&ctx->items[i], "author");
        turns[i].text = ws_json_get_str(&ctx->items[i], "text");
    }
    ws_clone_answer a;
    ws_error err = {0};
    const char *question = ws_json_get_str(q, "question");
    ws_clone_reply_opts o = {.seed = draw ? 0x9E3779B97F4A7C15ull * (uint64_t)draw + strlen(question) : 0};
    int rc = ws_clone_reply(p->c, question, turns, nc, &o, &a, &err);
    free(turns);
    if (rc) {
        fprintf(stderr, "%s: %s\n", p->name, err.msg);
        return rc;
    }
    tally(p, chk, q, a.reply, a.processing_ms, draw);
    ws_clone_answer_clear(&a);
    return 0;
}

/* The question of questions.json with this id, or NULL. */
static const ws_json *question_by_id(const ws_json *qs, double id)
{
    double v;
    for (size_t i = 0; qs && i < qs->len; i++)
        if (ws_json_get_num(&qs->items[i], "id", &v) && v == id)
            return &qs->items[i];
    return NULL;
}

/* A peer's answers ({"answers": [{"id", "answerer", "draw", "reply"}...]}) judged into ps[];
 * the people's names point into *doc (the caller frees it and *data). */
static int judge_peer(const char *path, const ws_json *qs, const check *chk, person *ps, int *np, int *draws,
                      char **data, ws_json_doc **doc)
{
    size_t len = 0;
    ws_error err = {0};
    if (ws_file_read(path, 16u << 20, data, &len, &err) || ws_json_parse(*data, len, doc, &err)) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return 1;
    }
    const ws_json *root = ws_json_root(*doc);
    const ws_json *as = ws_json_get(root, "answers");
    for (size_t i = 0; as && i < as->len; i++) { /* the real answers count once, on draw 0 */
        const ws_json *a = &as->items[i];
        const char *who = ws_json_get_str(a, "answerer"), *reply = ws_json_get_str(a, "reply");
        double id = -1, dr = -1;
        ws_json_get_num(a, "id", &id);
        const ws_json *q = question_by_id(qs, id);
        if (!q || !who || !reply || !ws_json_get_num(a, "draw", &dr) || dr < 0 || dr >= 64) {
            fprintf(stderr, "%s: answer %zu lacks a known id, answerer, reply or draw (0..63)\n", path, i);
            return 1;
        }
        int k = 0;
        while (k < *np && strcmp(ps[k].name, who))
            k++;
        if (k == *np) {
            if (*np == 8)
                return 1;
            ps[(*np)++] = new_person(chk, who, NULL);
        }
        tally(&ps[k], chk, q, reply, 0, (int)dr);
        *draws = (int)dr + 1 > *draws ? (int)dr + 1 : *draws;
    }
    const char *peer = ws_json_get_str(root, "peer");
    printf("answers of %s\n", peer ? peer : path);
    return 0;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s QUESTIONS.json (NAME=CLONE_DIR... [--draws N] | --answers FILE) [--show]\n",
                argv[0]);
        return 2;
    }
    char *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    ws_error err = {0};
    if (ws_file_read(argv[1], 4u << 20, &data, &len, &err) || ws_json_parse(data, len, &doc, &err)) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        return 1;
    }
    const ws_json *root = ws_json_root(doc), *qs = ws_json_get(root, "questions");
    check chk = {.topics = ws_json_get(root, "topics")};
    ws_pairs *chat = read_chat(argv[1], root, &chk.attributor);
    chk.chat = chat;
    person ps[8];
    int np = 0;
    int draws = 1;
    const char *answers = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--show")) {
            chk.show = true;
            continue;
        }
        if (!strcmp(argv[i], "--answers") && i + 1 < argc) {
            answers = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--draws") && i + 1 < argc) {
            draws = atoi(argv[++i]);
            draws = draws < 1 ? 1 : draws > 64 ? 64 : draws;
            continue;
        }
        char *eq = strchr(argv[i], '=');
        if (!eq || np == 8)
            return 2;
        *eq = 0;
        ps[np] = new_person(&chk, argv[i], eq + 1);
        if (ws_clone_open(ps[np].dir, &ps[np].c, &err)) {
            fprintf(stderr, "%s: %s\n", ps[np].dir, err.msg);
            return 1;
        }
        np++;
    }
    char *peer_data = NULL;
    ws_json_doc *peer_doc = NULL;
    if (answers) {
        draws = 0;
        if (judge_peer(answers, qs, &chk, ps, &np, &draws, &peer_data, &peer_doc) || !draws)
            return 1;
    }
    for (int d = 0; d < draws && !answers; d++)
        for (size_t i = 0; qs && i < qs->len; i++) {
            const char *who = ws_json_get_str(&qs->items[i], "answerer");
            for (int k = 0; k < np; k++)
                if (who && !strcmp(who, ps[k].name) && ask(&ps[k], &chk, &qs->items[i], d))
                    return 1;
        }
    if (draws > 1)
        printf("clone counts: mean over %d draws\n", draws);
    printf("%-10s %9s %10s %9s %6s | %9s %10s %6s | %s\n", "person", "on-topic", "off-topic", "neutral",
           "style", "real on", "real off", "style", "goal (on >= 90% of real, off <= 1/16, style >= 0.8)");
    for (int k = 0; k < np; k++) {
        person *p = &ps[k];
        double on = (double)p->clone_v[ON] / draws, off = (double)p->clone_v[OFF] / draws,
               neu = (double)p->clone_v[NEUTRAL] / draws, attr = attributed(p);
        printf("%-10s %6.4g/%-2d %7.4g/%-2d %6.4g/%-2d %6.3f | %6d/%-2d %7d/%-2d %6.3f | %s\n", p->name, on,
               p->n, off, p->n, neu, p->n, attr, p->real_v[ON], p->n, p->real_v[OFF], p->n,
               p->n && attr >= 0 ? (double)p->real_theirs / p->n : -1,
               goal_met(p, on, off, attr) ? "met" : "NOT met");
        ws_clone_free(p->c);
    }
    if (chk.attributor)
        printf("style: share of the answers that Cosine Delta over the chat's turns gives to the person "
               "answering (-1: not measured)\n");
    print_means(ps, np, draws);
    ws_stylo_attributor_free(chk.attributor);
    ws_pairs_free(chat);
    ws_json_doc_free(peer_doc);
    free(peer_data);
    ws_json_doc_free(doc);
    free(data);
    return 0;
}
