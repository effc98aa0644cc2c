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
 * readers' labels instead (tests/fixtures/eval/README.md).
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

typedef struct {
    const char *name, *dir;
    ws_clone *c;
    int n, clone_v[3], real_v[3];
} person;

/* Judges one answer of p (and, on the first draw, the real one) into p's counts. */
static void tally(person *p, const ws_json *q, const ws_json *topics, const char *reply, double ms, bool show,
                  int draw)
{
    const char *o1, *o2, *real = ws_json_get_str(q, "real_answer"), *topic = ws_json_get_str(q, "topic");
    verdict vc = judge(topics, topic, reply, &o1), vr = judge(topics, topic, real, &o2);
    p->clone_v[vc]++;
    if (!draw) {
        p->real_v[vr]++;
        p->n++;
    }
    if (show)
        printf("[%s] %s\n  Q: %s\n  clone (%s%s%s, %.0f ms): %s\n  real  (%s): %s\n", p->name, topic,
               ws_json_get_str(q, "question"), vnames[vc], vc == OFF ? " -> " : "", vc == OFF ? o1 : "", ms,
               reply, vnames[vr], real);
}

/* The goal: on the topic at least 90% as often as the real answers, off it at most 1 in 16. */
static bool goal_met(const person *p, double on, double off)
{
    return on * 10 >= p->real_v[ON] * 9 && off * 16 <= p->n;
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
        double on = 0, off = 0;
        for (int j = k; j < np; j++)
            if (!strcmp(ps[j].name, ps[k].name)) {
                n_clones++;
                on += (double)ps[j].clone_v[ON] / draws;
                off += (double)ps[j].clone_v[OFF] / draws;
            }
        if (n_clones < 2)
            continue;
        on /= n_clones;
        off /= n_clones;
        printf("%s: mean of %d clones %.4g on / %.4g off of %d | %s\n", ps[k].name, n_clones, on, off,
               ps[k].n, goal_met(&ps[k], on, off) ? "met" : "NOT met");
    }
}

static int ask(person *p, const ws_json *q, const ws_json *topics, bool show, int draw)
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
    tally(p, q, topics, a.reply, a.processing_ms, show, draw);
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
static int judge_peer(const char *path, const ws_json *qs, const ws_json *topics, bool show, person *ps,
                      int *np, int *draws, char **data, ws_json_doc **doc)
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
            ps[(*np)++] = (person){.name = who};
        }
        tally(&ps[k], q, topics, reply, 0, show, (int)dr);
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
    const ws_json *root = ws_json_root(doc), *topics = ws_json_get(root, "topics"),
                  *qs = ws_json_get(root, "questions");
    person ps[8];
    int np = 0;
    bool show = false;
    int draws = 1;
    const char *answers = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--show")) {
            show = true;
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
        ps[np] = (person){.name = argv[i], .dir = eq + 1};
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
        if (judge_peer(answers, qs, topics, show, ps, &np, &draws, &peer_data, &peer_doc) || !draws)
            return 1;
    }
    for (int d = 0; d < draws && !answers; d++)
        for (size_t i = 0; qs && i < qs->len; i++) {
            const char *who = ws_json_get_str(&qs->items[i], "answerer");
            for (int k = 0; k < np; k++)
                if (who && !strcmp(who, ps[k].name) && ask(&ps[k], &qs->items[i], topics, show, d))
                    return 1;
        }
    if (draws > 1)
        printf("clone counts: mean over %d draws\n", draws);
    printf("%-10s %9s %10s %9s | %9s %10s | %s\n", "person", "on-topic", "off-topic", "neutral", "real on",
           "real off", "goal (on >= 90% of real, off <= 1/16)");
    for (int k = 0; k < np; k++) {
        person *p = &ps[k];
        double on = (double)p->clone_v[ON] / draws, off = (double)p->clone_v[OFF] / draws,
               neu = (double)p->clone_v[NEUTRAL] / draws;
        printf("%-10s %6.4g/%-2d %7.4g/%-2d %6.4g/%-2d | %6d/%-2d %7d/%-2d | %s\n", p->name, on, p->n, off,
               p->n, neu, p->n, p->real_v[ON], p->n, p->real_v[OFF], p->n,
               goal_met(p, on, off) ? "met" : "NOT met");
        ws_clone_free(p->c);
    }
    print_means(ps, np, draws);
    ws_json_doc_free(peer_doc);
    free(peer_data);
    ws_json_doc_free(doc);
    free(data);
    return 0;
}
