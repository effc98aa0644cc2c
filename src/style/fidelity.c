/* Computing the fidelity report of a clone on held-out examples (see fidelity.h). */
#include "style/fidelity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/strset.h"
#include "style/embed.h"
#include "style/text.h"

#define FEAT_DIM 1024

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Cross-validated logistic regression on feature rows x (n x FEAT_DIM), labels y in {0,1}.
 * Returns the share of rows classified right when held out. */
static double cv_accuracy(const float *x, const int *y, size_t n, uint64_t seed)
{
    enum { FOLDS = 5, EPOCHS = 30 };
    if (n < 4)
        return 0.5;
    size_t *fold = ws_xmalloc(n * sizeof *fold), *order = ws_xmalloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) { /* shuffle, then deal into folds */
        size_t j = next_rand(&seed) % i;
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        fold[order[i]] = i % FOLDS;
    float *w = ws_xmalloc((FEAT_DIM + 1) * sizeof *w);
    size_t right = 0;
    for (size_t f = 0; f < FOLDS; f++) {
        memset(w, 0, (FEAT_DIM + 1) * sizeof *w);
        for (int ep = 0; ep < EPOCHS; ep++) {
            float lr = 0.5f / (1.0f + 0.2f * (float)ep);
            for (size_t k = 0; k < n; k++) {
                size_t i = order[k];
                if (fold[i] == f)
                    continue;
                const float *xi = x + i * FEAT_DIM;
                float z = w[FEAT_DIM] + ws_vec_dot(w, xi, FEAT_DIM);
                float g = (float)y[i] - 1.0f / (1.0f + expf(-z));
                for (size_t d = 0; d < FEAT_DIM; d++)
                    w[d] += lr * (g * xi[d] - 1e-4f * w[d]);
                w[FEAT_DIM] += lr * g;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (fold[i] == f) {
                float z = w[FEAT_DIM] + ws_vec_dot(w, x + i * FEAT_DIM, FEAT_DIM);
                right += (z > 0) == (y[i] == 1);
            }
    }
    free(w);
    free(fold);
    free(order);
    return (double)right / (double)n;
}

/* Words of a reply, lowercased, for the distinct-n counts. */
static size_t split_lower(const char *s, ws_buf *out, size_t *starts, size_t max)
{
    ws_buf_reset(out);
    size_t n = 0, i = 0, len = strlen(s);
    bool in = false;
    while (i < len) {
        uint32_t cp = ws_utf8_next(s, len, &i);
        if (ws_cp_is_space(cp)) {
            if (in)
                ws_buf_putc(out, '\0');
            in = false;
            continue;
        }
        if (!in) {
            if (n == max)
                break;
            starts[n++] = out->len;
            in = true;
        }
        char enc[4];
        ws_buf_append(out, enc, ws_utf8_put(enc, ws_cp_lower(cp)));
    }
    if (in)
        ws_buf_putc(out, '\0');
    return n;
}

static const char *trimmed(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n && (unsigned char)*s <= ' ') {
        s++;
        n--;
    }
    while (n && (unsigned char)s[n - 1] <= ' ')
        n--;
    *len = n;
    return s;
}

int ws_fidelity_evaluate(const ws_pairs *p, ws_fidelity_gen_fn gen, void *gen_arg,
                         const ws_fidelity_options *opt, ws_fidelity_report *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    ws_fidelity_options o = opt ? *opt : (ws_fidelity_options){0};
    size_t cap = o.max_examples && o.max_examples < WS_FIDELITY_MAX_EXAMPLES ? o.max_examples
                                                                             : WS_FIDELITY_MAX_EXAMPLES;
    out->n_heldout = p->n_heldout;
    if (!p->n_heldout)
        return ws_error_set(err, WS_EEMPTY, "no held-out examples to evaluate (chat too small)");
    if (o.base_loss > 0 && o.model_loss > 0) {
        out->have_loss = true;
        out->base_loss = o.base_loss;
        out->model_loss = o.model_loss;
        out->loss_lift = o.base_loss - o.model_loss;
    }
    /* held-out examples, spread evenly when there are more than cap */
    size_t *ex = ws_xmalloc(p->n_heldout * sizeof *ex), n_ex = 0;
    for (size_t i = 0; i < p->n_examples; i++)
        if (p->examples[i].heldout)
            ex[n_ex++] = i;
    size_t n = n_ex < cap ? n_ex : cap;
    for (size_t k = 0; k < n; k++)
        ex[k] = ex[k * n_ex / n];
    char **clone = ws_xcalloc(n, sizeof *clone);
    const char **real = ws_xcalloc(n, sizeof *real);
    int rc = 0;
    ws_buf reply = WS_BUF_INIT;
    int64_t cutoff = INT64_MAX;
    for (size_t k = 0; k < n && !rc; k++) {
        const ws_example *e = &p->examples[ex[k]];
        real[k] = p->turns[e->turn].reply;
        ws_buf_reset(&reply);
        rc = gen(gen_arg, p, e, &reply, err);
        clone[k] = ws_xstrdup(reply.data ? reply.data : "");
        if (p->turns[e->turn].start < cutoff)
            cutoff = p->turns[e->turn].start;
    }
    ws_buf_free(&reply);
    if (rc)
        goto out;
    out->n_evaluated = n;

    /* stylometric distances */
    ws_profile *pr = ws_profile_from_texts(real, n),
               *pc = ws_profile_from_texts((const char *const *)clone, n);
    ws_profile_distance(pr, pc, &out->distance);
    {
        size_t nt = 0;
        const char **train = ws_xmalloc((p->n_examples ? p->n_examples : 1) * sizeof *train);
        for (size_t i = 0; i < p->n_examples; i++)
            if (!p->examples[i].heldout)
                train[nt++] = p->turns[p->examples[i].turn].reply;
        ws_profile *pt = ws_profile_from_texts(train, nt);
        ws_profile_distance(pt, pr, &out->natural_distance);
        ws_profile_free(pt);
        free(train);
    }
    ws_profile_free(pr);
    ws_profile_free(pc);

    /* verifier: real (1) vs clone (0) */
    ws_embedder *fe = ws_embed_hash_new(FEAT_DIM);
    {
        float *x = ws_xmalloc(2 * n * FEAT_DIM * sizeof *x);
        int *y = ws_xmalloc(2 * n * sizeof *y);
        for (size_t k = 0; k < n; k++) {
            ws_embedder_embed(fe, real[k], strlen(real[k]), x + (2 * k) * FEAT_DIM, NULL);
            ws_embedder_embed(fe, clone[k], strlen(clone[k]), x + (2 * k + 1) * FEAT_DIM, NULL);
            y[2 * k] = 1;
            y[2 * k + 1] = 0;
        }
        out->verifier_accuracy = cv_accuracy(x, y, 2 * n, o.seed ? o.seed : 1);
        free(x);
        free(y);
    }

    /* attribution: nearest participant centroid of training-period turns */
    {
        size_t np = p->n_participants;
        float *cent = ws_xcalloc(np * FEAT_DIM, sizeof *cent), *v = ws_xmalloc(FEAT_DIM * sizeof *v);
        size_t *cnt = ws_xcalloc(np, sizeof *cnt);
        for (size_t i = 0; i < p->n_turns; i++) {
            const ws_turn *t = &p->turns[i];
            if (!t->reply || t->start >= cutoff)
                continue;
            ws_embedder_embed(fe, t->reply, strlen(t->reply), v, NULL);
            for (size_t d = 0; d < FEAT_DIM; d++)
                cent[t->author_idx * FEAT_DIM + d] += v[d];
            cnt[t->author_idx]++;
        }
        uint32_t me = p->turns[p->examples[ex[0]].turn].author_idx;
        for (size_t a = 0; a < np; a++) {
            if (cnt[a] < 3 && a != me)
                cnt[a] = 0; /* too little to stand for a person */
            if (cnt[a]) {
                ws_vec_normalize(cent + a * FEAT_DIM, FEAT_DIM);
                out->n_candidates++;
            }
        }
        size_t hit_clone = 0, hit_real = 0;
        for (size_t k = 0; k < n; k++)
            for (int which = 0; which < 2; which++) {
                const char *s = which ? clone[k] : real[k];
                ws_embedder_embed(fe, s, strlen(s), v, NULL);
                size_t best = me;
                float bs = -2;
                for (size_t a = 0; a < np; a++) {
                    if (!cnt[a])
                        continue;
                    float sc = ws_vec_dot(v, cent + a * FEAT_DIM, FEAT_DIM);
                    if (sc > bs) {
                        bs = sc;
                        best = a;
                    }
                }
                if (best == me)
                    *(which ? &hit_clone : &hit_real) += 1;
            }
        out->attribution = (double)hit_clone / (double)n;
        out->attribution_real = (double)hit_real / (double)n;
        free(cent);
        free(v);
        free(cnt);
    }
    ws_embedder_free(fe);

    /* repetition and length */
    {
        ws_strset train = WS_STRSET_INIT, uni = WS_STRSET_INIT, bi = WS_STRSET_INIT, replies = WS_STRSET_INIT;
        for (size_t i = 0; i < p->n_examples; i++)
            if (!p->examples[i].heldout) {
                size_t l;
                const char *s = trimmed(p->turns[p->examples[i].turn].reply, &l);
                ws_strset_add(&train, s, l);
            }
        size_t total1 = 0, total2 = 0, copies = 0, empty = 0;
        size_t *counts = ws_xcalloc(n, sizeof *counts);
        double *lr = ws_xmalloc(n * sizeof *lr), *lc = ws_xmalloc(n * sizeof *lc);
        ws_buf words = WS_BUF_INIT, pair = WS_BUF_INIT;
        size_t starts[256];
        for (size_t k = 0; k < n; k++) {
            size_t l;
            const char *s = trimmed(clone[k], &l);
            if (!l)
                empty++;
            if (ws_strset_find(&train, s, l) >= 0)
                copies++;
            counts[ws_strset_add(&replies, s, l)]++;
            lr[k] = (double)ws_utf8_count(real[k], strlen(real[k]));
            lc[k] = (double)ws_utf8_count(clone[k], strlen(clone[k]));
            size_t nw = split_lower(clone[k], &words, starts, 256);
            for (size_t w = 0; w < nw; w++) {
                const char *wd = words.data + starts[w];
                ws_strset_add(&uni, wd, strlen(wd));
                total1++;
                if (w + 1 < nw) {
                    ws_buf_reset(&pair);
                    ws_buf_printf(&pair, "%s %s", wd, words.data + starts[w + 1]);
                    ws_strset_add(&bi, pair.data, pair.len);
                    total2++;
                }
            }
        }
        size_t top = 0;
        for (size_t i = 0; i < replies.count; i++)
            top = counts[i] > top ? counts[i] : top;
        out->distinct1 = total1 ? (double)uni.count / (double)total1 : 0;
        out->distinct2 = total2 ? (double)bi.count / (double)total2 : 0;
        out->copy_rate = (double)copies / (double)n;
        out->top_reply_share = (double)top / (double)n;
        out->empty_rate = (double)empty / (double)n;
        out->real_len_median = median(lr, n);
        out->clone_len_median = median(lc, n);
        out->len_ratio = out->real_len_median > 0 ? out->clone_len_median / out->real_len_median : 0;
        ws_buf_free(&words);
        ws_buf_free(&pair);
        free(counts);
        free(lr);
        free(lc);
        ws_strset_free(&train);
        ws_strset_free(&uni);
        ws_strset_free(&bi);
        ws_strset_free(&replies);
    }
out:
    for (size_t k = 0; k < n; k++)
        free(clone[k]);
    free(clone);
    free(real);
    free(ex);
    return rc;
}

static void num(ws_buf *o, const char *key, double v, bool comma)
{
    if (comma)
        ws_buf_putc(o, ',');
    ws_json_put_cstr(o, key);
    ws_buf_putc(o, ':');
    ws_json_put_num(o, round(v * 10000) / 10000);
}

static void dist(ws_buf *o, const char *key, const ws_style_distance *d)
{
    ws_buf_putc(o, ',');
    ws_json_put_cstr(o, key);
    ws_buf_puts(o, ":{");
    num(o, "total", d->total, false);
    num(o, "length", d->length, true);
    num(o, "emoji", d->emoji, true);
    num(o, "punctuation", d->punctuation, true);
    num(o, "casing", d->casing, true);
    num(o, "language", d->language, true);
    num(o, "vocabulary", d->vocabulary, true);
    ws_buf_putc(o, '}');
}

void ws_fidelity_to_json(const ws_fidelity_report *r, ws_buf *o)
{
    ws_buf_putc(o, '{');
    num(o, "heldout_examples", (double)r->n_heldout, false);
    num(o, "evaluated", (double)r->n_evaluated, true);
    ws_buf_puts(o, ",\"loss\":");
    if (r->have_loss) {
        ws_buf_putc(o, '{');
        num(o, "base", r->base_loss, false);
        num(o, "model", r->model_loss, true);
        num(o, "lift", r->loss_lift, true);
        ws_buf_putc(o, '}');
    } else {
        ws_buf_puts(o, "null");
    }
    dist(o, "stylometric_distance", &r->distance);
    dist(o, "natural_distance", &r->natural_distance);
    num(o, "verifier_accuracy", r->verifier_accuracy, true);
    ws_buf_puts(o, ",\"attribution\":{");
    num(o, "clone", r->attribution, false);
    num(o, "real", r->attribution_real, true);
    num(o, "participants", (double)r->n_candidates, true);
    ws_buf_puts(o, "},\"repetition\":{");
    num(o, "distinct_1", r->distinct1, false);
    num(o, "distinct_2", r->distinct2, true);
    num(o, "copies_of_training_replies", r->copy_rate, true);
    num(o, "most_repeated_reply_share", r->top_reply_share, true);
    num(o, "empty_replies", r->empty_rate, true);
    ws_buf_puts(o, "},\"length\":{");
    num(o, "real_median_chars", r->real_len_median, false);
    num(o, "clone_median_chars", r->clone_len_median, true);
    num(o, "ratio", r->len_ratio, true);
    ws_buf_puts(o, "}}");
}

int ws_fidelity_retrieval_gen(void *arg, const ws_pairs *p, const ws_example *ex, ws_buf *reply,
                              ws_error *err)
{
    const ws_fidelity_retrieval_arg *a = arg;
    const char *turns[WS_RETRIEVAL_KEY_TURNS];
    size_t nt = 0;
    uint32_t first =
        ex->turn - (ex->n_context < WS_RETRIEVAL_KEY_TURNS ? ex->n_context : WS_RETRIEVAL_KEY_TURNS);
    for (uint32_t t = first; t < ex->turn; t++)
        turns[nt++] = p->turns[t].text;
    ws_buf key = WS_BUF_INIT;
    ws_retrieval_key(turns, nt, &key);
    ws_retrieval_hit hit;
    size_t n = 0;
    int rc = ws_retrieval_query(a->r, a->e, key.data, key.len, 1, &hit, &n, err);
    ws_buf_free(&key);
    if (!rc && n)
        ws_buf_puts(reply, hit.reply);
    return rc;
}
