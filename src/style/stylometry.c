/* General stylometric profiles, distance, verifier and attribution (see stylometry.h). */
#include "style/stylometry.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/strset.h"
#include "core/utf8.h"
#include "style/embed.h"
#include "style/text.h"

enum { ANY = -1, EN, ES, DE, FR, IT, PT, NL }; /* ANY: shared by several languages, no vote */
#define LANG_OTHER_SCRIPT 7
#define WINDOW 50 /* words per vocabulary window */
#define MAX_WORD 48

typedef struct fword {
    const char *w;
    int lang;
} fword;

/* Closed-class words (pronouns, articles, prepositions, conjunctions, auxiliaries, common
 * particles); a word shared by several of the languages is tagged ANY. */
static const fword fwords[] = {
    {"i", EN},     {"you", EN},   {"he", EN},    {"she", EN},     {"it", EN},     {"we", EN},
    {"they", EN},  {"me", ANY},   {"my", EN},    {"your", EN},    {"our", EN},    {"their", EN},
    {"the", EN},   {"a", ANY},    {"an", EN},    {"this", EN},    {"that", EN},   {"these", EN},
    {"of", EN},    {"to", EN},    {"in", ANY},   {"on", EN},      {"at", EN},     {"for", EN},
    {"with", EN},  {"from", EN},  {"by", EN},    {"about", EN},   {"and", EN},    {"or", EN},
    {"but", EN},   {"if", EN},    {"so", EN},    {"because", EN}, {"as", EN},     {"than", EN},
    {"is", EN},    {"are", EN},   {"was", EN},   {"be", EN},      {"been", EN},   {"have", EN},
    {"has", EN},   {"had", EN},   {"do", EN},    {"does", EN},    {"did", EN},    {"will", EN},
    {"would", EN}, {"can", EN},   {"could", EN}, {"shall", EN},   {"should", EN}, {"may", EN},
    {"not", EN},   {"no", ANY},   {"just", EN},  {"very", EN},    {"too", EN},    {"all", EN},
    {"what", EN},  {"who", EN},   {"when", EN},  {"where", EN},   {"how", EN},    {"there", EN},
    {"here", EN},  {"then", EN},  {"now", EN},   {"also", EN},    {"yeah", EN},   {"oh", ANY},
    {"el", ES},    {"la", ANY},   {"los", ES},   {"las", ES},     {"un", ANY},    {"una", ANY},
    {"de", ANY},   {"que", ANY},  {"y", ES},     {"en", ANY},     {"con", ANY},   {"por", ANY},
    {"para", ANY}, {"es", ES},    {"lo", ES},    {"pero", ES},    {"muy", ES},    {"yo", ES},
    {"tu", ANY},   {"mi", ANY},   {"se", ANY},   {"si", ANY},     {"del", ANY},   {"der", DE},
    {"die", DE},   {"das", DE},   {"und", DE},   {"ich", DE},     {"du", ANY},    {"nicht", DE},
    {"ist", DE},   {"mit", DE},   {"auf", DE},   {"zu", DE},      {"ein", DE},    {"eine", DE},
    {"aber", DE},  {"wir", DE},   {"auch", DE},  {"le", FR},      {"les", FR},    {"et", FR},
    {"je", FR},    {"pas", FR},   {"est", FR},   {"une", FR},     {"des", FR},    {"vous", FR},
    {"nous", FR},  {"il", ANY},   {"dans", FR},  {"mais", FR},    {"pour", FR},   {"che", IT},
    {"di", IT},    {"non", ANY},  {"sono", IT},  {"ma", ANY},     {"per", ANY},   {"gli", IT},
    {"della", IT}, {"anche", IT}, {"o", ANY},    {"e", ANY},      {"não", PT},    {"um", PT},
    {"uma", PT},   {"os", PT},    {"você", PT},  {"eu", PT},      {"mas", PT},    {"com", PT},
    {"muito", PT}, {"het", NL},   {"een", NL},   {"ik", NL},      {"niet", NL},   {"wat", NL},
    {"maar", NL},  {"ook", NL},   {"dat", NL},
};
#define N_FWORDS (sizeof fwords / sizeof fwords[0])

/* Index of a lower-cased word in fwords (first entry wins), or -1. */
static int fword_index(const char *w, size_t n)
{
    for (size_t i = 0; i < N_FWORDS && i < WS_STYLO_FW; i++)
        if (strlen(fwords[i].w) == n && !memcmp(fwords[i].w, w, n))
            return (int)i;
    return -1;
}

/* What one pass over a text finds. */
typedef struct scan {
    size_t chars, words, bubbles, upper, digits, punct, letters, other_script, word_chars;
    double *fw, *ngram, *lang; /* counts added (may be NULL) */
    void (*on_word)(void *arg, const char *w, size_t n);
    void *word_arg;
} scan;

static void add_ngram(scan *s, const uint32_t *h, size_t have)
{
    if (!s->ngram)
        return;
    uint64_t x = 1469598103934665603ull;
    for (size_t k = 0; k < have; k++) {
        x = (x ^ h[k]) * 1099511628211ull;
        s->ngram[(x ^ (x >> 29)) % WS_STYLO_NGRAM] += 1;
    }
}

static void end_word(scan *s, const char *w, size_t n)
{
    if (!n)
        return;
    s->words++;
    int fi = fword_index(w, n);
    if (s->fw)
        s->fw[fi >= 0 ? (size_t)fi : WS_STYLO_FW] += 1;
    if (fi >= 0 && s->lang && fwords[fi].lang != ANY)
        s->lang[fwords[fi].lang] += 1;
    if (s->on_word)
        s->on_word(s->word_arg, w, n);
}

/* One pass: characters (n-grams over the last three code points, case kept), words
 * (lower-cased letters and digits), bubbles ('\n' separated). */
static void scan_text(scan *s, const char *t)
{
    size_t n = strlen(t), i = 0, wl = 0;
    char word[MAX_WORD * 4 + 4];
    uint32_t hist[3] = {' ', ' ', ' '};
    s->bubbles = 1;
    while (i < n) {
        uint32_t cp = ws_utf8_next(t, n, &i);
        s->chars++;
        hist[0] = hist[1], hist[1] = hist[2], hist[2] = cp;
        uint32_t h[3] = {hist[2], hist[1], hist[0]};
        add_ngram(s, h, 3);
        if (cp == '\n')
            s->bubbles++;
        if (ws_cp_is_alnum(cp)) {
            s->letters += ws_cp_case(cp) != 0 || ws_script_of(cp) != WS_SCRIPT_NONE;
            s->upper += ws_cp_case(cp) > 0;
            s->digits += cp >= '0' && cp <= '9';
            ws_script sc = ws_script_of(cp);
            s->other_script += sc != WS_SCRIPT_NONE && sc != WS_SCRIPT_LATIN;
            if (wl < MAX_WORD * 4)
                wl += ws_utf8_put(word + wl, ws_cp_lower(cp));
            s->word_chars++;
            continue;
        }
        if (!ws_cp_is_space(cp) && cp < 0x2000)
            s->punct++;
        end_word(s, word, wl);
        wl = 0;
    }
    end_word(s, word, wl);
    if (s->lang)
        s->lang[LANG_OTHER_SCRIPT] += (double)s->other_script / 4.0;
}

static size_t len_bucket(size_t chars)
{
    size_t b = 0;
    while (b + 1 < WS_STYLO_LEN && chars >= ((size_t)2 << b))
        b++;
    return b;
}

/* Vocabulary over consecutive windows of WINDOW words. */
typedef struct vocab {
    ws_strset win;
    size_t *counts, in_win, n_windows;
    double ttr_sum, rare_sum, len_sum, words;
} vocab;

static void close_window(vocab *v)
{
    if (!v->in_win)
        return;
    size_t once = 0;
    for (size_t k = 0; k < v->win.count; k++)
        once += v->counts[k] == 1;
    v->ttr_sum += (double)v->win.count / (double)v->in_win;
    v->rare_sum += (double)once / (double)v->in_win;
    v->n_windows++;
    ws_strset_free(&v->win);
    v->win = (ws_strset)WS_STRSET_INIT;
    memset(v->counts, 0, WINDOW * sizeof *v->counts);
    v->in_win = 0;
}

static void vocab_word(void *arg, const char *w, size_t n)
{
    vocab *v = arg;
    v->counts[ws_strset_add(&v->win, w, n)]++;
    v->len_sum += (double)ws_utf8_count(w, n);
    v->words += 1;
    if (++v->in_win == WINDOW)
        close_window(v);
}

void ws_stylo_profile_of(const char *const *texts, size_t n, ws_stylo_profile *out)
{
    memset(out, 0, sizeof *out);
    out->n_texts = n;
    vocab v = {.win = WS_STRSET_INIT, .counts = ws_xcalloc(WINDOW + 1, sizeof(size_t))};
    for (size_t i = 0; i < n; i++) {
        scan s = {
            .fw = out->fw, .ngram = out->ngram, .lang = out->lang, .on_word = vocab_word, .word_arg = &v};
        scan_text(&s, texts[i]);
        out->len[len_bucket(s.chars)] += 1;
        out->burst[s.bubbles < WS_STYLO_BURST ? s.bubbles - 1 : WS_STYLO_BURST - 1] += 1;
    }
    /* a last window only counts when it is at least half full (a short one inflates the ratio) */
    if (v.in_win * 2 >= WINDOW || !v.n_windows)
        close_window(&v);
    if (v.n_windows) {
        out->ttr = v.ttr_sum / (double)v.n_windows;
        out->rare_rate = v.rare_sum / (double)v.n_windows;
    }
    out->word_len = v.words > 0 ? v.len_sum / v.words : 0;
    ws_strset_free(&v.win);
    free(v.counts);
}

/* Jensen-Shannon divergence (base 2, in [0,1]) of two count vectors; 0 when both are empty,
 * 1 when only one is. */
static double js(const double *a, const double *b, size_t n)
{
    double sa = 0, sb = 0;
    for (size_t i = 0; i < n; i++)
        sa += a[i], sb += b[i];
    if (sa <= 0 && sb <= 0)
        return 0;
    if (sa <= 0 || sb <= 0)
        return 1;
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double p = a[i] / sa, q = b[i] / sb, m = 0.5 * (p + q);
        if (p > 0)
            d += 0.5 * p * log2(p / m);
        if (q > 0)
            d += 0.5 * q * log2(q / m);
    }
    return d < 0 ? 0 : d > 1 ? 1 : d;
}

static double clip01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

double ws_stylo_distance(const ws_stylo_profile *a, const ws_stylo_profile *b, ws_stylo_parts *parts)
{
    ws_stylo_parts p;
    p.function_words = js(a->fw, b->fw, WS_STYLO_FW + 1);
    p.char_ngrams = js(a->ngram, b->ngram, WS_STYLO_NGRAM);
    p.length = js(a->len, b->len, WS_STYLO_LEN);
    p.bursts = js(a->burst, b->burst, WS_STYLO_BURST);
    double wl =
        fabs(a->word_len - b->word_len) / (a->word_len > b->word_len ? a->word_len : b->word_len + 1e-9);
    p.vocabulary = clip01((fabs(a->ttr - b->ttr) + fabs(a->rare_rate - b->rare_rate) + clip01(wl)) / 1.5);
    p.language = js(a->lang, b->lang, WS_STYLO_LANG);
    p.total = 0.25 * p.function_words + 0.25 * p.char_ngrams + 0.15 * p.length + 0.10 * p.bursts +
              0.15 * p.vocabulary + 0.10 * p.language;
    if (parts)
        *parts = p;
    return p.total;
}

typedef struct msg_vocab {
    ws_strset set;
    double len_sum;
} msg_vocab;

static void msg_word(void *arg, const char *w, size_t n)
{
    msg_vocab *m = arg;
    ws_strset_add(&m->set, w, n);
    m->len_sum += (double)ws_utf8_count(w, n);
}

void ws_stylo_vector(const char *text, float *out)
{
    double fw[WS_STYLO_FW + 1] = {0}, ng[WS_STYLO_NGRAM] = {0}, lang[WS_STYLO_LANG] = {0};
    msg_vocab mv = {WS_STRSET_INIT, 0};
    scan s = {.fw = fw, .ngram = ng, .lang = lang, .on_word = msg_word, .word_arg = &mv};
    scan_text(&s, text);
    double wn = s.words ? (double)s.words : 1, nn = 0, ln = 0;
    for (size_t k = 0; k < WS_STYLO_NGRAM; k++)
        nn += ng[k] * ng[k];
    for (size_t k = 0; k < WS_STYLO_LANG; k++)
        ln += lang[k];
    float *o = out;
    for (size_t k = 0; k < WS_STYLO_FW; k++)
        *o++ = (float)(fw[k] / wn);
    for (size_t k = 0; k < WS_STYLO_NGRAM; k++)
        *o++ = nn > 0 ? (float)(ng[k] / sqrt(nn)) : 0.0f;
    for (size_t k = 0; k < WS_STYLO_LANG; k++)
        *o++ = ln > 0 ? (float)(lang[k] / ln) : 0.0f;
    double cn = s.chars ? (double)s.chars : 1, let = s.letters ? (double)s.letters : 1;
    *o++ = (float)(log1p((double)s.chars) / 6.0);
    *o++ = (float)(log1p((double)s.words) / 4.0);
    *o++ = (float)((s.bubbles < 5 ? (double)s.bubbles : 5.0) / 5.0);
    *o++ = (float)(s.words ? (double)mv.set.count / wn : 0);
    *o++ = (float)(s.words ? mv.len_sum / wn / 10.0 : 0);
    *o++ = (float)((double)s.upper / let);
    *o++ = (float)((double)s.digits / cn);
    *o++ = (float)((double)s.punct / cn);
    ws_strset_free(&mv.set);
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Standardises the columns of x (n rows of WS_STYLO_DIM) to mean 0, deviation 1. */
static void standardise(float *x, size_t n)
{
    for (size_t d = 0; d < WS_STYLO_DIM; d++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            m += x[i * WS_STYLO_DIM + d];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double t = x[i * WS_STYLO_DIM + d] - m;
            v += t * t;
        }
        double sd = sqrt(v / (double)n);
        for (size_t i = 0; i < n; i++)
            x[i * WS_STYLO_DIM + d] = sd > 1e-9 ? (float)((x[i * WS_STYLO_DIM + d] - m) / sd) : 0.0f;
    }
}

static float dotf(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Logistic regression by SGD on the rows outside fold f; counts right answers (in halves)
 * among the rows of fold f that are not matched copies. */
static size_t fit_and_test(const float *x, const int *y, const size_t *fold, const bool *matched,
                           const size_t *order, size_t n, size_t f, float *w)
{
    enum { EPOCHS = 20 };
    memset(w, 0, (WS_STYLO_DIM + 1) * sizeof *w);
    size_t cnt[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        cnt[y[i]] += fold[i] != f;
    if (!cnt[0] || !cnt[1])
        return 0;
    /* each class weighs the same, so a fold's share of one class does not tilt the prior */
    float cw[2] = {(float)(cnt[0] + cnt[1]) / (2.0f * (float)cnt[0]),
                   (float)(cnt[0] + cnt[1]) / (2.0f * (float)cnt[1])};
    for (int ep = 0; ep < EPOCHS; ep++) {
        float lr = 0.05f / (1.0f + 0.2f * (float)ep);
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            if (fold[i] == f)
                continue;
            const float *xi = x + i * WS_STYLO_DIM;
            float z = w[WS_STYLO_DIM] + dotf(w, xi, WS_STYLO_DIM);
            float g = cw[y[i]] * ((float)y[i] - 1.0f / (1.0f + expf(-z)));
            for (size_t d = 0; d < WS_STYLO_DIM; d++)
                w[d] += lr * (g * xi[d] - 1e-3f * w[d]);
            w[WS_STYLO_DIM] += lr * g;
        }
    }
    size_t right2 = 0; /* in halves: a score of exactly 0 counts half */
    for (size_t i = 0; i < n; i++)
        if (fold[i] == f && !matched[i]) {
            float z = w[WS_STYLO_DIM] + dotf(w, x + i * WS_STYLO_DIM, WS_STYLO_DIM);
            right2 += z == 0 ? 1 : ((z > 0) == (y[i] == 1)) * 2;
        }
    return right2;
}

/* Marks one-to-one copies across the sides: a text found k times in a and m times in b has
 * min(k, m) copies on each side marked. */
static size_t match_copies(const char *const *a, size_t na, const char *const *b, size_t nb, bool *matched)
{
    ws_strset set = WS_STRSET_INIT;
    size_t n = na + nb, *ca = ws_xcalloc(n + 1, sizeof *ca), *cb = ws_xcalloc(n + 1, sizeof *cb),
           *idx = ws_xmalloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++) {
        const char *t = i < na ? a[i] : b[i - na];
        idx[i] = ws_strset_add(&set, t, strlen(t));
        (i < na ? ca : cb)[idx[i]]++;
    }
    size_t marked = 0;
    for (size_t k = 0; k < set.count; k++)
        ca[k] = cb[k] = ca[k] < cb[k] ? ca[k] : cb[k]; /* quota per side */
    for (size_t i = 0; i < n; i++) {
        size_t *q = i < na ? ca : cb;
        matched[i] = q[idx[i]] > 0;
        q[idx[i]] -= matched[i];
        marked += matched[i];
    }
    ws_strset_free(&set);
    free(ca);
    free(cb);
    free(idx);
    return marked;
}

double ws_stylo_verifier(const char *const *a, size_t na, const char *const *b, size_t nb, uint64_t seed)
{
    enum { FOLDS = 5 };
    size_t n = na + nb;
    if (n < 4 || !na || !nb)
        return 0.5;
    float *x = ws_xmalloc(n * WS_STYLO_DIM * sizeof *x), *w = ws_xmalloc((WS_STYLO_DIM + 1) * sizeof *w);
    int *y = ws_xmalloc(n * sizeof *y);
    size_t *fold = ws_xmalloc(n * sizeof *fold), *order = ws_xmalloc(n * sizeof *order);
    bool *matched = ws_xmalloc(n * sizeof *matched);
    for (size_t i = 0; i < n; i++) {
        ws_stylo_vector(i < na ? a[i] : b[i - na], x + i * WS_STYLO_DIM);
        y[i] = i < na;
        order[i] = i;
    }
    standardise(x, n);
    for (size_t i = n; i > 1; i--) {
        size_t j = next_rand(&seed) % i, t = order[i - 1];
        order[i - 1] = order[j], order[j] = t;
    }
    for (size_t k = 0; k < n; k++)
        fold[order[k]] = k % FOLDS;
    /* a copy of a text on the other side cannot be told apart: half right, without a model
     * that has seen its twin with the other label (that would make it wrong every time) */
    size_t right2 = match_copies(a, na, b, nb, matched);
    for (size_t f = 0; f < FOLDS; f++)
        right2 += fit_and_test(x, y, fold, matched, order, n, f, w);
    free(x);
    free(w);
    free(y);
    free(fold);
    free(order);
    free(matched);
    return (double)right2 / (double)(2 * n);
}

struct ws_stylo_attributor {
    size_t n_authors, n_texts;
    size_t *count;         /* texts per author; 0 once fitted = no candidate */
    double *mean, *inv_sd; /* per feature over all texts: sum and sum of squares until fitted */
    double *author_sum;    /* n_authors x WS_STYLO_DIM sums while fed (NULL once fitted) */
    float *centroid;       /* once fitted: n_authors x WS_STYLO_DIM unit z-scored means */
};

ws_stylo_attributor *ws_stylo_attributor_new(size_t n_authors)
{
    ws_stylo_attributor *a = ws_xcalloc(1, sizeof *a);
    a->n_authors = n_authors;
    a->count = ws_xcalloc(n_authors + 1, sizeof *a->count);
    a->mean = ws_xcalloc(WS_STYLO_DIM, sizeof *a->mean);
    a->inv_sd = ws_xcalloc(WS_STYLO_DIM, sizeof *a->inv_sd);
    a->author_sum = ws_xcalloc((n_authors + 1) * WS_STYLO_DIM, sizeof *a->author_sum);
    return a;
}

void ws_stylo_attributor_add(ws_stylo_attributor *a, size_t author, const char *text)
{
    if (a->centroid || author >= a->n_authors)
        return;
    float v[WS_STYLO_DIM];
    ws_stylo_vector(text, v);
    double *c = a->author_sum + author * WS_STYLO_DIM;
    for (size_t d = 0; d < WS_STYLO_DIM; d++) {
        a->mean[d] += v[d];
        a->inv_sd[d] += (double)v[d] * v[d];
        c[d] += v[d];
    }
    a->count[author]++;
    a->n_texts++;
}

size_t ws_stylo_attributor_fit(ws_stylo_attributor *a, size_t min_texts, size_t keep)
{
    if (a->centroid)
        return 0;
    double n = a->n_texts ? (double)a->n_texts : 1;
    for (size_t d = 0; d < WS_STYLO_DIM; d++) {
        double m = a->mean[d] / n, var = a->inv_sd[d] / n - m * m;
        a->mean[d] = m;
        a->inv_sd[d] = var > 1e-12 ? 1.0 / sqrt(var) : 0; /* a constant feature tells nothing */
    }
    a->centroid = ws_xcalloc((a->n_authors + 1) * WS_STYLO_DIM, sizeof *a->centroid);
    size_t candidates = 0;
    for (size_t k = 0; k < a->n_authors; k++) {
        if (a->count[k] < min_texts && !(k == keep && a->count[k]))
            a->count[k] = 0;
        if (!a->count[k])
            continue;
        const double *sum = a->author_sum + k * WS_STYLO_DIM;
        float *c = a->centroid + k * WS_STYLO_DIM;
        for (size_t d = 0; d < WS_STYLO_DIM; d++)
            c[d] = (float)((sum[d] / (double)a->count[k] - a->mean[d]) * a->inv_sd[d]);
        ws_vec_normalize(c, WS_STYLO_DIM);
        candidates++;
    }
    free(a->author_sum);
    a->author_sum = NULL;
    return candidates;
}

size_t ws_stylo_attribute(const ws_stylo_attributor *a, const char *text)
{
    if (!a->centroid)
        return SIZE_MAX;
    float v[WS_STYLO_DIM];
    ws_stylo_vector(text, v);
    for (size_t d = 0; d < WS_STYLO_DIM; d++)
        v[d] = (float)((v[d] - a->mean[d]) * a->inv_sd[d]);
    size_t best = SIZE_MAX;
    float best_cos = 0;
    for (size_t k = 0; k < a->n_authors; k++) {
        if (!a->count[k])
            continue;
        float dot = ws_vec_dot(v, a->centroid + k * WS_STYLO_DIM, WS_STYLO_DIM);
        if (best == SIZE_MAX || dot > best_cos)
            best = k, best_cos = dot;
    }
    return best;
}

void ws_stylo_attributor_free(ws_stylo_attributor *a)
{
    if (!a)
        return;
    free(a->count);
    free(a->mean);
    free(a->inv_sd);
    free(a->author_sum);
    free(a->centroid);
    free(a);
}
