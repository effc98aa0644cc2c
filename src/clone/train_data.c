/* Training data of a clone: examples as token sequences in the model's format (on a chat
 * base each with a mismatched twin: another example's reply after its conversation), packed into rows
 * of T tokens, and the objective of a step over them (train_data.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clone/train_data.h"
#include "core/hash.h"
#include "core/mem.h"

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void seg_turn(const clone_fmt *f, bool me, const char *text, size_t cap, bool tail, ibuf *ids,
                     ibuf *fl)
{
    size_t before = ids->n;
    size_t at = ws__clone_fmt_turn(f, me, text, cap, tail, ids);
    for (size_t i = before; i < ids->n; i++)
        ws__clone_ibuf_push(fl, me && i >= at);
}

/* A reply and the end-of-message token (learned). */
static void chat_reply(const clone_fmt *f, const char *reply, ibuf *ids, ibuf *fl)
{
    ws__clone_fmt_text(f, reply, CLONE_REPLY_BYTES, false, ids);
    ws__clone_ibuf_push(ids, f->end);
    while (fl->n < ids->n)
        ws__clone_ibuf_push(fl, 1);
}

/* One example in the base's chat template: the prompt (not learned), then its reply. */
static void chat_example(const clone_fmt *f, const ws_pairs *p, const ws_example *ex, ibuf *ids, ibuf *fl)
{
    const char *authors[CLONE_CHAT_TURNS], *texts[CLONE_CHAT_TURNS];
    size_t n = 0;
    uint32_t first = ex->n_context > CLONE_CHAT_TURNS ? ex->turn - CLONE_CHAT_TURNS : ex->ctx_first;
    for (uint32_t t = first; t < ex->turn; t++) {
        const ws_turn *tu = &p->turns[t];
        authors[n] = tu->author;
        texts[n++] = tu->persona && tu->reply ? tu->reply : tu->text;
    }
    ws__clone_chat_prompt(f, authors, texts, n, ids);
    while (fl->n < ids->n)
        ws__clone_ibuf_push(fl, 0);
    chat_reply(f, p->turns[ex->turn].reply, ids, fl);
}

static void seg_set(clone_seg *s, const ibuf *ids, const ibuf *fl, uint64_t *h)
{
    s->n = ids->n;
    s->prompt_n = 0;
    while (s->prompt_n < ids->n && !fl->v[s->prompt_n])
        s->prompt_n++;
    s->ids = ws_xmalloc(ids->n * sizeof *s->ids);
    s->learn = ws_xmalloc(ids->n);
    for (size_t i = 0; i < ids->n; i++) {
        s->ids[i] = ids->v[i];
        s->learn[i] = (uint8_t)fl->v[i];
    }
    *h = (*h ^ ws_hash_fnv1a(ids->v, ids->n * sizeof *ids->v)) * 1099511628211ull;
}

/* The mismatched twin of training example e: the reply of another training example (a
 * different text, drawn with a fixed seed so the data hash is stable), packed after e's prompt. */
static clone_seg *twin_of(const clone_fmt *f, const ws_pairs *p, size_t e, uint64_t *h)
{
    const char *own = p->turns[p->examples[e].turn].reply;
    uint64_t rng = 0x5EEDull + e;
    for (int tries = 0; tries < 16; tries++) {
        const ws_example *o = &p->examples[splitmix(&rng) % p->n_examples];
        const char *r = p->turns[o->turn].reply;
        if (o->heldout || !r || !own || !strcmp(r, own))
            continue;
        ibuf ids = {0}, fl = {0};
        chat_reply(f, r, &ids, &fl);
        clone_seg *t = ws_xcalloc(1, sizeof *t);
        seg_set(t, &ids, &fl, h);
        ws__clone_ibuf_free(&ids);
        ws__clone_ibuf_free(&fl);
        return t;
    }
    return NULL;
}

clone_seg *ws__clone_segments_build(const ws_pairs *p, const clone_fmt *f, size_t *n_out, uint64_t *hash)
{
    clone_seg *s = ws_xcalloc(p->n_examples + 1, sizeof *s);
    size_t n = 0;
    uint64_t h = 1469598103934665603ull;
    ibuf ids = {0}, fl = {0};
    for (size_t e = 0; e < p->n_examples; e++) {
        const ws_example *ex = &p->examples[e];
        if (ex->heldout)
            continue;
        ids.n = fl.n = 0;
        if (f->chat) {
            chat_example(f, p, ex, &ids, &fl);
            s[n].twin = CONTRAST_WEIGHT > 0 ? twin_of(f, p, e, &h) : NULL;
            goto keep;
        }
        uint32_t first = ex->turn - ex->n_context;
        if (ex->n_context > CLONE_CTX_TURNS - 1)
            first = ex->turn - (CLONE_CTX_TURNS - 1);
        for (uint32_t t = first; t < ex->turn; t++) {
            const ws_turn *tu = &p->turns[t];
            seg_turn(f, tu->persona, tu->persona && tu->reply ? tu->reply : tu->text, CLONE_CTX_BYTES, true,
                     &ids, &fl);
        }
        seg_turn(f, true, p->turns[ex->turn].reply, CLONE_REPLY_BYTES, false, &ids, &fl);
    keep:
        seg_set(&s[n++], &ids, &fl, &h);
    }
    ws__clone_ibuf_free(&ids);
    ws__clone_ibuf_free(&fl);
    *n_out = n;
    *hash = h;
    return s;
}

void ws__clone_segments_free(clone_seg *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].ids);
        free(s[i].learn);
        if (s[i].twin) {
            free(s[i].twin->ids);
            free(s[i].twin->learn);
            free(s[i].twin);
        }
    }
    free(s);
}

/* The row being filled: ids, learn flags, segment starts, skips and tags of its first fill
 * positions. */
typedef struct row_fill {
    int32_t *ids, *st, *sf, *sk, *tag;
    uint8_t *learn;
    size_t fill;
    int pairs;
} row_fill;

static void emit_row(clone_packer *pk, row_fill *r)
{
    size_t T = (size_t)pk->T, fill = r->fill;
    r->fill = 0;
    r->pairs = 0;
    if (fill <= 1)
        return;
    if (pk->n_rows == pk->cap) {
        pk->cap = pk->cap ? 2 * pk->cap : 64;
        pk->rows_in = ws_xrealloc(pk->rows_in, pk->cap * T * sizeof(int32_t));
        pk->rows_tg = ws_xrealloc(pk->rows_tg, pk->cap * T * sizeof(int32_t));
        pk->rows_st = ws_xrealloc(pk->rows_st, pk->cap * T * sizeof(int32_t));
        pk->rows_sf = ws_xrealloc(pk->rows_sf, pk->cap * T * sizeof(int32_t));
        pk->rows_sk = ws_xrealloc(pk->rows_sk, pk->cap * T * sizeof(int32_t));
        pk->rows_tag = ws_xrealloc(pk->rows_tag, pk->cap * T * sizeof(int32_t));
    }
    size_t o = pk->n_rows++ * T;
    int32_t *in = pk->rows_in + o, *tg = pk->rows_tg + o, *rs = pk->rows_st + o, *tag = pk->rows_tag + o;
    int32_t *sf = pk->rows_sf + o, *sk = pk->rows_sk + o;
    for (size_t i = 0; i < T; i++) {
        in[i] = i < fill ? r->ids[i] : pk->pad;
        /* a target only inside the same segment (not the next segment's first token) */
        tg[i] = (i + 1 < fill && r->learn[i + 1] && (!pk->isolate || r->st[i + 1] == r->st[i]))
                    ? r->ids[i + 1]
                    : -1;
        rs[i] = i < fill ? r->st[i] : (int32_t)fill; /* the padding: a segment of its own */
        sf[i] = i < fill ? r->sf[i] : rs[i];
        sk[i] = i < fill ? r->sk[i] : rs[i];
        tag[i] = i < fill ? r->tag[i] : 0;
    }
}

static void put(row_fill *r, int32_t id, uint8_t learn, size_t start, size_t skip_from, size_t skip_to,
                int32_t tag)
{
    r->ids[r->fill] = id;
    r->learn[r->fill] = learn;
    r->st[r->fill] = (int32_t)start;
    r->sf[r->fill] = (int32_t)skip_from;
    r->sk[r->fill] = (int32_t)skip_to;
    r->tag[r->fill++] = tag;
}

/* Appends s (its last T+1 tokens when longer) to the row with the given tag. */
static void place(row_fill *r, const clone_seg *s, size_t T, int32_t tag)
{
    size_t from = s->n > T + 1 ? s->n - (T + 1) : 0, start = r->fill;
    for (size_t i = from; i < s->n; i++)
        put(r, s->ids[i], s->learn[i], start, start, start, tag);
}

/* Appends twin tw of the segment placed at start whose prompt's last token is at last: that
 * token again, then tw's reply, seeing the prompt (start..last-1) and themselves only, at the
 * positions that token and the true reply had. */
static void place_twin(row_fill *r, const clone_seg *tw, size_t start, size_t last, int32_t tag)
{
    size_t at = r->fill;
    put(r, r->ids[last], 0, start, last, at, tag);
    for (size_t i = 0; i < tw->n; i++)
        put(r, tw->ids[i], tw->learn[i], start, last, at, tag);
}

void ws__clone_pack_epoch(clone_packer *pk)
{
    size_t ns = pk->n_segs, T = (size_t)pk->T;
    size_t *ord = ws_xmalloc((ns + 1) * sizeof *ord);
    for (size_t i = 0; i < ns; i++)
        ord[i] = i;
    uint64_t rng = pk->seed * 1000003u + (uint64_t)pk->epoch;
    for (size_t i = ns; i > 1; i--) {
        size_t j = splitmix(&rng) % i;
        size_t t = ord[i - 1];
        ord[i - 1] = ord[j];
        ord[j] = t;
    }
    pk->n_rows = 0;
    pk->next = 0;
    size_t rb = (T + 1) * sizeof(int32_t);
    row_fill r = {ws_xmalloc(rb),
                  ws_xmalloc(rb),
                  ws_xmalloc(rb),
                  ws_xmalloc(rb),
                  ws_xmalloc(rb),
                  ws_xmalloc(T + 1),
                  0,
                  0};
    for (size_t k = 0; k < ns; k++) {
        const clone_seg *s = &pk->segs[ord[k]], *tw = s->twin;
        size_t need = s->n + (tw ? 1 + tw->n : 0);
        if (tw && (need > T + 1 || !s->prompt_n))
            tw = NULL, need = s->n;
        if (r.fill && r.fill + need > T + 1)
            emit_row(pk, &r);
        size_t start = r.fill; /* a segment with a twin fits whole: its prompt's last token is at
                                  start + prompt_n - 1 */
        place(&r, s, T, tw ? 2 * r.pairs + 1 : 0);
        if (tw)
            place_twin(&r, tw, start, start + s->prompt_n - 1, 2 * r.pairs++ + 2);
    }
    emit_row(pk, &r);
    free(r.ids);
    free(r.st);
    free(r.sf);
    free(r.sk);
    free(r.tag);
    free(r.learn);
    free(ord);
}

/* Row r of the packed epoch into micro-batch row b. */
void ws__clone_copy_row(const clone_packer *pk, size_t r, clone_batch *bt, int b)
{
    size_t T = (size_t)pk->T, o = (size_t)b * T;
    memcpy(bt->in + o, pk->rows_in + r * T, T * sizeof *bt->in);
    memcpy(bt->tg + o, pk->rows_tg + r * T, T * sizeof *bt->tg);
    memcpy(bt->st + o, pk->rows_st + r * T, T * sizeof *bt->st);
    memcpy(bt->sf + o, pk->rows_sf + r * T, T * sizeof *bt->sf);
    memcpy(bt->sk + o, pk->rows_sk + r * T, T * sizeof *bt->sk);
    memcpy(bt->tag + o, pk->rows_tag + r * T, T * sizeof *bt->tag);
}

/* Copies the next B rows (moving on to the next epoch as needed). */
void ws__clone_next_batch(clone_packer *pk, int B, clone_batch *bt)
{
    for (int b = 0; b < B; b++) {
        if (pk->next >= pk->n_rows) {
            pk->epoch++;
            ws__clone_pack_epoch(pk);
        }
        ws__clone_copy_row(pk, pk->next++, bt, b);
    }
}

/* ---- the objective with mismatched twins ---- */
typedef struct contrast {
    const int32_t *tg, *tag; /* the micro-batches' targets and tags */
    int B, T;
} contrast;

/* Sums and counts of the losses of one row's targets by tag (tags < T + 3). */
static void row_sums(const int32_t *tg, const int32_t *tag, const float *nll, size_t T, double *sum,
                     double *cnt)
{
    memset(sum, 0, (T + 3) * sizeof *sum);
    memset(cnt, 0, (T + 3) * sizeof *cnt);
    for (size_t i = 0; i < T; i++)
        if (tg[i] >= 0 && tag[i] >= 0 && (size_t)tag[i] < T + 3)
            sum[tag[i]] += nll[i], cnt[tag[i]]++;
}

/* The micro-batch's objective (clone_int.h): the mean loss of the real replies' tokens, plus per pair (a
 * segment and its twin) CONTRAST_WEIGHT x softplus(d) / pairs, d = the twin reply's mean
 * log-prob minus the real one's; w gets each position's share of its gradient. */
double ws__clone_contrast_objective(const int32_t *tg, const int32_t *tag, int B, int rowT, const float *nll,
                                    float *w)
{
    size_t T = (size_t)rowT, N = (size_t)B * T;
    double *sum = ws_xmalloc(2 * (T + 3) * sizeof *sum), *cnt = sum + T + 3;
    double real = 0, real_sum = 0, pairs = 0, extra = 0;
    for (size_t b = 0; b < (size_t)B; b++) {
        row_sums(tg + b * T, tag + b * T, nll + b * T, T, sum, cnt);
        for (size_t k = 0; k < T + 3; k++) {
            if (k == 0 || k % 2)
                real += cnt[k], real_sum += sum[k];
            pairs += k % 2 && k + 1 < T + 3 && cnt[k] > 0 && cnt[k + 1] > 0;
        }
    }
    for (size_t i = 0; i < N; i++)
        w[i] = tg[i] >= 0 && (tag[i] == 0 || tag[i] % 2) && real > 0 ? (float)(1.0 / real) : 0.0f;
    for (size_t b = 0; b < (size_t)B && pairs > 0; b++) {
        row_sums(tg + b * T, tag + b * T, nll + b * T, T, sum, cnt);
        for (size_t i = b * T; i < (b + 1) * T; i++) {
            int32_t k = tag[i];
            if (tg[i] < 0 || k <= 0 || (size_t)k + 1 >= T + 3)
                continue;
            int32_t kr = k % 2 ? k : k - 1; /* the pair's real segment */
            if (cnt[kr] == 0 || cnt[kr + 1] == 0)
                continue;
            double d = sum[kr] / cnt[kr] - sum[kr + 1] / cnt[kr + 1], sig = 1.0 / (1.0 + exp(-d));
            double g = CONTRAST_WEIGHT * sig / pairs;
            w[i] += (float)(k == kr ? g / cnt[kr] : -g / cnt[kr + 1]);
        }
        for (size_t k = 1; k + 1 < T + 3; k += 2)
            if (cnt[k] > 0 && cnt[k + 1] > 0) {
                double d = sum[k] / cnt[k] - sum[k + 1] / cnt[k + 1];
                extra += CONTRAST_WEIGHT * (d > 30 ? d : log1p(exp(d))) / pairs;
            }
    }
    free(sum);
    return (real > 0 ? real_sum / real : 0) + extra;
}

static double contrast_weigh(void *arg, int micro, const float *nll, float *w)
{
    const contrast *c = arg;
    size_t off = (size_t)micro * c->B * c->T;
    return ws__clone_contrast_objective(c->tg + off, c->tag + off, c->B, c->T, nll, w);
}

/* One training step: with mismatched twins in the batch the contrastive objective, else the
 * mean loss. */
int ws__clone_train_step(ws_trainer *t, const clone_packer *pk, const clone_batch *bt, int B, float *loss)
{
    contrast c = {bt->tg, bt->tag, B, pk->T};
    bool twins = false;
    for (size_t i = 0; i < (size_t)B * pk->T && !twins; i++)
        twins = bt->tag[i] != 0;
    ws_packing rows = {bt->st, bt->sf, bt->sk};
    return ws_trainer_step_weighted(t, bt->in, pk->isolate ? &rows : NULL, bt->tg,
                                    twins ? contrast_weigh : NULL, &c, loss);
}

void ws__clone_packer_free(clone_packer *pk)
{
    free(pk->rows_in);
    free(pk->rows_tg);
    free(pk->rows_st);
    free(pk->rows_sf);
    free(pk->rows_sk);
    free(pk->rows_tag);
}

clone_batch ws__clone_batch_new(int B, int T)
{
    size_t n = (size_t)B * T;
    size_t b = n * sizeof(int32_t);
    return (clone_batch){ws_xmalloc(b), ws_xmalloc(b), ws_xmalloc(b),
                         ws_xmalloc(b), ws_xmalloc(b), ws_xmalloc(b)};
}

void ws__clone_batch_free(clone_batch *bt)
{
    free(bt->in);
    free(bt->tg);
    free(bt->st);
    free(bt->sf);
    free(bt->sk);
    free(bt->tag);
}
