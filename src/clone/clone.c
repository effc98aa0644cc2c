/* Opening a trained clone directory (manifest + hash checks) and replying as the persona:
 * retrieval and generation candidates, ranked by log-probability, similarity and style. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/progress.h"
#include "nn/generate.h"
#include "nn/ops.h"
#include "style/text.h"

#define MANIFEST_CAP (1u << 20)
#define REPLIES_CAP (256u << 20)
#define PROMPT_MAX 384
#define GEN_MAX_BYTES CLONE_REPLY_BYTES
#define GEN_MAX_TOKENS 48
#define RANK_TEMP 0.4
/* candidate score = mean token log-prob + STYLE_WEIGHT log(style fit) + SIM_WEIGHT similarity */
#define STYLE_WEIGHT 3.0
#define SIM_WEIGHT 2.0
/* On a pretrained base (chat format) the adapted model writes the replies: a real reply of the
 * persona is a candidate only when its context is nearly the same as this one (an old reply to
 * another message is what made clones answer beside the point), and style weighs less in the
 * ranking because the adapter already carries it. */
#define CHAT_RETRIEVE_SIM 0.85
#define CHAT_STYLE_WEIGHT 1.0
#define CHAT_SAMPLES 4
#define CHAT_PMI_WEIGHT 1.0

/* ---- vocabulary of the persona's words (for vetting generated text) ---- */
static void for_words(const char *s, void (*fn)(void *arg, const char *w, size_t n), void *arg)
{
    ws_buf w = WS_BUF_INIT;
    size_t n = strlen(s), i = 0;
    while (i <= n) {
        size_t at = i;
        uint32_t cp = i < n ? ws_utf8_next(s, n, &i) : ' ';
        if (at == n)
            i = n + 1;
        if (ws_cp_is_space(cp)) {
            if (w.len)
                fn(arg, w.data, w.len);
            ws_buf_reset(&w);
            continue;
        }
        char u[8];
        ws_buf_append(&w, u, ws_utf8_put(u, ws_cp_lower(cp)));
    }
    ws_buf_free(&w);
}

static void add_word(void *arg, const char *w, size_t n) { ws_strset_add(arg, w, n); }

typedef struct {
    const ws_strset *set;
    bool ok;
} known_ctx;

static void check_word(void *arg, const char *w, size_t n)
{
    known_ctx *k = arg;
    if (ws_strset_find(k->set, w, n) < 0)
        k->ok = false;
}

static bool all_words_known(const ws_clone *c, const char *s)
{
    known_ctx k = {&c->vocab, true};
    for_words(s, check_word, &k);
    return k.ok;
}

/* ---- loading ---- */
static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int load_replies(ws_clone *c, const char *path, ws_error *err)
{
    char *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    int rc = ws_file_read(path, REPLIES_CAP, &data, &len, err);
    if (rc)
        return rc;
    ws_error jerr = {0};
    if (ws_json_parse(data, len, &doc, &jerr)) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: %s", path, jerr.msg);
        goto out;
    }
    const ws_json *root = ws_json_root(doc);
    if (!root || root->type != WS_JSON_ARRAY) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: not a JSON array", path);
        goto out;
    }
    c->n_replies = root->len;
    c->replies = ws_xcalloc(root->len + 1, sizeof *c->replies);
    c->keys = ws_xcalloc(root->len + 1, sizeof *c->keys);
    for (size_t i = 0; i < root->len; i++) {
        const char *r = ws_json_get_str(&root->items[i], "r"), *k = ws_json_get_str(&root->items[i], "c");
        if (!r || !k) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: entry %zu needs \"r\" and \"c\"", path, i);
            goto out;
        }
        c->replies[i] = ws_xstrdup(r);
        c->keys[i] = ws_xstrdup(k);
        for_words(r, add_word, &c->vocab);
    }
    clone_style_rates((const char *const *)c->replies, c->n_replies, c->rates);
    /* generations stop a little past the persona's long replies (in tokens ~ bytes here) */
    size_t *lens = ws_xcalloc(c->n_replies + 1, sizeof *lens);
    for (size_t i = 0; i < c->n_replies; i++)
        lens[i] = strlen(c->replies[i]);
    qsort(lens, c->n_replies, sizeof *lens, cmp_size);
    /* a generation must be at least as typical as the persona's own replies at the 25th percentile */
    double *fits = ws_xcalloc(c->n_replies + 1, sizeof *fits);
    for (size_t i = 0; i < c->n_replies; i++)
        fits[i] = clone_style_fit(c->replies[i], c->rates);
    qsort(fits, c->n_replies, sizeof *fits, cmp_double);
    c->fit_gate = c->n_replies ? fits[c->n_replies / 4] : 0;
    free(fits);
    size_t k95 = c->n_replies ? lens[c->n_replies * 19 / 20] : GEN_MAX_BYTES;
    free(lens);
    c->gen_max = (int)(k95 * 5 / 4 + 8);
    if (c->gen_max > GEN_MAX_BYTES)
        c->gen_max = GEN_MAX_BYTES;
out:
    ws_json_doc_free(doc);
    free(data);
    return rc;
}

static int open_embedder(const char *name, ws_embedder **out, ws_error *err)
{
    *out = NULL;
    if (!strncmp(name, "hash-ngram-", 11)) {
        *out = ws_embed_hash_new((size_t)strtoul(name + 11, NULL, 10));
        return *out ? 0 : ws_error_set(err, WS_EFORMAT, "unknown embedder %s", name);
    }
    if (!strcmp(name, "all-MiniLM-L6-v2")) {
        int rc = ws_embed_minilm_new(ws_embed_minilm_default_dir(), out, err);
        if (rc == WS_ENOENT)
            ws_error_set(err, WS_ENOENT,
                         "the clone was indexed with all-MiniLM-L6-v2 but it is not installed in %s "
                         "(run tools/setup-minilm.sh or set WS_MINILM_DIR)",
                         ws_embed_minilm_default_dir());
        return rc;
    }
    return ws_error_set(err, WS_EUNSUPPORTED, "unknown embedder %s", name);
}

int clone_load(ws_clone *c, const char *dir, const char *kind, const char *base_dir, const char *base_id,
               const char *persona, const char *embedder, ws_error *err)
{
    int rc = 0;
    char *p = NULL;
    c->dir = ws_xstrdup(dir);
    c->kind = ws_xstrdup(kind);
    if (!strcmp(kind, "scratch")) {
        p = clone_path(dir, "model");
        char *tp = clone_path(p, "tokenizer.json");
        rc = ws_tokenizer_load(tp, &c->tok, err);
        free(tp);
        if (rc)
            goto out;
        if ((rc = ws_model_load(p, 0, &c->model, err)))
            goto out;
        if ((size_t)c->model->cfg.vocab_size != ws_tokenizer_vocab_size(c->tok)) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: model vocabulary %d, tokenizer %zu", p, c->model->cfg.vocab_size,
                              ws_tokenizer_vocab_size(c->tok));
            goto out;
        }
        if (c->model->cfg.vocab_size == CLONE_VOCAB)
            clone_fmt_init(&c->fmt, NULL, err);   /* bytes are their own ids */
        else if ((rc = clone_fmt_init(&c->fmt, c->tok, err)))
            goto out;
    } else if (!strcmp(kind, "lora")) {
        if (!base_dir || !clone_exists(base_dir)) {
            rc = ws_error_set(err, WS_ENOENT, "the base model %s of this clone is missing", base_dir ? base_dir : "?");
            goto out;
        }
        c->base_dir = ws_xstrdup(base_dir);
        if ((rc = ws_base_acquire(base_dir, &c->base, err)))
            goto out;
        if (base_id && strcmp(base_id, c->base->id)) {
            rc = ws_error_set(err, WS_EFORMAT, "this clone's adapter was trained on another base than %s "
                              "(SHA-256 %.12s..., the adapter's %.12s...): train it again", base_dir, c->base->id,
                              base_id);
            goto out;
        }
        c->model = c->base->model;
        c->tok = c->base->tok;
        p = clone_path(dir, "adapter");
        if ((rc = ws_lora_load(p, &c->model->cfg, &c->lora, err)))
            goto out;
        rc = c->base->has_template ? clone_fmt_init_chat(&c->fmt, c->base, persona, err)
                                   : clone_fmt_init(&c->fmt, c->tok, err);
        if (rc)
            goto out;
    } else {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "unknown model kind %s", kind);
        goto out;
    }
    if ((rc = open_embedder(embedder, &c->emb, err)))
        goto out;
    free(p);
    p = clone_path(dir, "index.bin");
    if ((rc = ws_vindex_load(p, &c->ix, err)))
        goto out;
    if (strcmp(ws_vindex_space(c->ix), c->emb->name) != 0 || ws_vindex_dim(c->ix) != c->emb->dim) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: made by %s, not %s", p, ws_vindex_space(c->ix), c->emb->name);
        goto out;
    }
    free(p);
    p = clone_path(dir, "replies.json");
    if ((rc = load_replies(c, p, err)))
        goto out;
    for (size_t i = 0; i < ws_vindex_count(c->ix); i++)
        if (ws_vindex_id(c->ix, i) >= c->n_replies) {
            rc = ws_error_set(err, WS_EFORMAT, "%s/index.bin points past replies.json", dir);
            goto out;
        }
    size_t len;
    free(p);
    p = clone_path(dir, "profile.json");
    if ((rc = ws_file_read(p, MANIFEST_CAP, &c->profile_json, &len, err)))
        goto out;
    free(p);
    p = clone_path(dir, "profile.txt");
    rc = ws_file_read(p, MANIFEST_CAP, &c->profile_summary, &len, err);
out:
    free(p);
    return rc;
}

void ws_clone_free(ws_clone *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_replies; i++) {
        free(c->replies[i]);
        free(c->keys[i]);
    }
    free(c->replies);
    free(c->keys);
    ws_strset_free(&c->vocab);
    ws_vindex_free(c->ix);
    ws_embedder_free(c->emb);
    ws_lora_free(c->lora);
    if (c->base) {
        ws_base_release(c->base);   /* model and tokenizer are the base's */
    } else {
        ws_model_free(c->model);
        ws_tokenizer_free(c->tok);
    }
    free(c->dir);
    free(c->persona);
    free(c->model_version);
    free(c->fallback);
    free(c->profile_json);
    free(c->profile_summary);
    free(c->kind);
    free(c->base_dir);
    free(c);
}

int ws_clone_open(const char *dir, ws_clone **out, ws_error *err)
{
    *out = NULL;
    char *mpath = clone_path(dir, "manifest.json"), *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    ws_clone *c = ws_xcalloc(1, sizeof *c);
    int rc = ws_file_read(mpath, MANIFEST_CAP, &data, &len, err);
    if (rc == WS_ENOENT) {
        rc = ws_error_set(err, WS_ENOENT, "%s is not a trained clone (no manifest.json; run whatstyle train)", dir);
        goto out;
    }
    if (rc)
        goto out;
    ws_error jerr = {0};
    if (ws_json_parse(data, len, &doc, &jerr)) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: corrupted manifest: %s", mpath, jerr.msg);
        goto out;
    }
    const ws_json *m = ws_json_root(doc);
    const char *format = ws_json_get_str(m, "format");
    if (!format) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: corrupted manifest (no format)", mpath);
        goto out;
    }
    if (strcmp(format, WS_CLONE_FORMAT) != 0) {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: format %s, this build reads %s", mpath, format, WS_CLONE_FORMAT);
        goto out;
    }
    const ws_json *files = ws_json_get(m, "files");
    const char *kind = ws_json_get_str(m, "kind"), *emb = ws_json_get_str(m, "embedder");
    const char *persona = ws_json_get_str(m, "persona"), *ver = ws_json_get_str(m, "model_version");
    const char *fb = ws_json_get_str(m, "fallback_reply");
    double thr = 0;
    if (!files || files->type != WS_JSON_OBJECT || !kind || !emb || !persona || !ver || !fb ||
        !ws_json_get_num(m, "threshold", &thr)) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: corrupted manifest (missing fields)", mpath);
        goto out;
    }
    for (size_t i = 0; i < files->len; i++) {
        const ws_json *h = &files->items[i];
        if (h->type != WS_JSON_STRING || strstr(files->keys[i], "..") || files->keys[i][0] == '/') {
            rc = ws_error_set(err, WS_EFORMAT, "%s: corrupted manifest (bad file entry)", mpath);
            goto out;
        }
        char *fp = clone_path(dir, files->keys[i]), hex[65];
        int hr = ws_file_sha256(fp, hex, NULL);
        free(fp);
        if (hr) {
            rc = ws_error_set(err, WS_EFORMAT, "corrupted model directory %s: %s is missing", dir, files->keys[i]);
            goto out;
        }
        if (strcmp(hex, h->str) != 0) {
            rc = ws_error_set(err, WS_EFORMAT, "corrupted model directory %s: %s does not match its hash", dir,
                              files->keys[i]);
            goto out;
        }
    }
    if ((rc = clone_load(c, dir, kind, ws_json_get_str(m, "base_model"), ws_json_get_str(m, "base_id"), persona, emb,
                         err)))
        goto out;
    c->persona = ws_xstrdup(persona);
    c->model_version = ws_xstrdup(ver);
    c->fallback = ws_xstrdup(fb);
    c->threshold = thr;
out:
    ws_json_doc_free(doc);
    free(data);
    free(mpath);
    if (rc) {
        ws_clone_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

const char *ws_clone_model_version(const ws_clone *c) { return c->model_version; }
const char *ws_clone_persona(const ws_clone *c) { return c->persona; }
const char *ws_clone_profile_json(const ws_clone *c) { return c->profile_json; }
const char *ws_clone_profile_summary(const ws_clone *c) { return c->profile_summary; }
double ws_clone_threshold(const ws_clone *c) { return c->threshold; }
const char *ws_clone_fallback_text(const ws_clone *c) { return c->fallback; }
bool ws_clone_has_base(const ws_clone *c) { return c->lora != NULL; }

void ws_clone_answer_clear(ws_clone_answer *r)
{
    free(r->reply);
    memset(r, 0, sizeof *r);
}

/* ---- scoring ---- */
int clone_score_ids(const ws_clone *c, const ws_lora *lora, ws_kv_cache *cache, int prompt_len,
                    const float *last_logits, const int32_t *ids, size_t n, double *mean_lp, ws_error *err)
{
    int V = c->model->cfg.vocab_size;
    ws_kv_cache_truncate(cache, prompt_len);
    double lp = ws_logprob(last_logits, V, ids[0]);
    if (n > 1) {
        float *all = ws_xmalloc((n - 1) * (size_t)V * sizeof *all);
        int rc = ws_model_infer(c->model, lora, cache, ids, (int)n - 1, NULL, all, err);
        if (rc) {
            free(all);
            return rc;
        }
        for (size_t j = 1; j < n; j++)
            lp += ws_logprob(all + (j - 1) * (size_t)V, V, ids[j]);
        free(all);
    }
    *mean_lp = lp / (double)n;
    return 0;
}

void clone_build_prompt(const ws_clone *c, const char *const *retrieved, size_t n_retrieved,
                        const ws_clone_turn *context, size_t n_context, const char *message, ibuf *out)
{
    ibuf t = {0};
    if (c->fmt.chat) {   /* the base's chat template: the turns, then the message, as the user message */
        const char **authors = ws_xcalloc(n_context + 1, sizeof *authors), **texts = ws_xcalloc(n_context + 1, sizeof *texts);
        for (size_t i = 0; i < n_context; i++) {
            bool me = context[i].author && c->persona && !strcmp(context[i].author, c->persona);
            authors[i] = me ? c->persona : context[i].author;
            texts[i] = context[i].text ? context[i].text : "";
        }
        texts[n_context] = message;
        clone_chat_prompt(&c->fmt, authors, texts, n_context + 1, out);
        free(authors);
        free(texts);
        return;
    }
    for (size_t i = 0; i < n_retrieved; i++)
        clone_fmt_turn(&c->fmt, true, retrieved[i], CLONE_REPLY_BYTES, false, &t);
    size_t first = n_context > CLONE_CTX_TURNS - 1 ? n_context - (CLONE_CTX_TURNS - 1) : 0;
    for (size_t i = first; i < n_context; i++) {
        bool me = context[i].author && c->persona && !strcmp(context[i].author, c->persona);
        clone_fmt_turn(&c->fmt, me, context[i].text ? context[i].text : "", CLONE_CTX_BYTES, true, &t);
    }
    clone_fmt_turn(&c->fmt, false, message, CLONE_CTX_BYTES, true, &t);
    for (int i = 0; i < c->fmt.n_me; i++)
        ibuf_push(&t, c->fmt.me[i]);
    size_t from = t.n > PROMPT_MAX ? t.n - PROMPT_MAX : 0;
    for (size_t i = from; i < t.n; i++)
        ibuf_push(out, t.v[i]);
    ibuf_free(&t);
}

typedef struct cand {
    char *text;
    double lp, lp_any, sim, fit, score;   /* lp_any: without the conversation (chat format) */
    ws_clone_source src;
} cand;

/* Chat format: each candidate's mean log-probability after a prompt with no conversation, so
 * the ranking can prefer replies the conversation makes likely over replies likely anywhere
 * ("no", "haha"): pointwise mutual information, the usual cure for generic answers. */
static int score_without_context(const ws_clone *c, cand *cs, size_t nc, ws_error *err)
{
    ibuf prompt = {0}, ids = {0};
    clone_scorer sc = {.c = c, .lora = c->lora};
    clone_chat_prompt(&c->fmt, NULL, NULL, 0, &prompt);
    int rc = clone_scorer_prompt(&sc, &prompt, err);
    for (size_t i = 0; i < nc && !rc; i++) {
        ids.n = 0;
        clone_reply_ids(c, cs[i].text, &ids);
        double nll = 0;
        rc = clone_scorer_reply(&sc, ids.v, ids.n, &nll, err);
        cs[i].lp_any = -nll / (double)ids.n;
    }
    clone_scorer_free(&sc);
    ibuf_free(&prompt);
    ibuf_free(&ids);
    return rc;
}

static bool have_cand(const cand *cs, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cs[i].text, s))
            return true;
    return false;
}

static bool is_turn_token(const ws_clone *c, int32_t id)
{
    if (c->fmt.bytes)
        return id >= CLONE_TOK_END;
    return ws_tokenizer_is_special(c->tok, id) || id == c->fmt.me[0] || id == c->fmt.other[0];
}

/* At each space of a byte-level model's sample: false when the word just finished is one the
 * persona never wrote (the sample is given up). */
static bool last_word_known(const ws_clone *c, const ibuf *ids)
{
    size_t st = ids->n - 1;
    while (st > 0 && ids->v[st - 1] != ' ' && ids->v[st - 1] != '\n')
        st--;
    char word[CLONE_REPLY_BYTES + 1];
    size_t wl = 0;
    for (size_t j = st; j + 1 < ids->n && wl < CLONE_REPLY_BYTES; j++)
        word[wl++] = (char)ids->v[j];
    word[wl] = '\0';
    return !wl || all_words_known(c, word);
}

typedef struct sample {
    ibuf ids;
    double lp;
    bool alive, ended;
    ws_kv_cache *kc;
} sample;

/* One sampling step of sample s from its logits: false when the sample stops here. */
static bool sample_step(const ws_clone *c, sample *s, float *logits, const ws_gen_opts *o, uint64_t *rng,
                        int32_t *next)
{
    float l;
    int32_t id = ws_sample(logits, c->model->cfg.vocab_size, o, s->ids.v, (int)s->ids.n, rng, &l);
    s->lp += l;
    if (id == c->fmt.end) {
        s->ended = true;
        return false;
    }
    if (is_turn_token(c, id))
        return false;
    ibuf_push(&s->ids, id);
    if (c->fmt.bytes && (id == ' ' || id == '\n') && s->ids.n > 1 && !last_word_known(c, &s->ids))
        return false;
    if ((int)s->ids.n >= c->gen_max)
        return false;
    *next = id;
    return true;
}

/* Samples n continuations of the prompt (in cache up to plen, last logits given) side by side,
 * one batched pass per step; texts[i] gets the text of each (NULL when it ran into the length
 * cap or a turn marker) and mean_lp[i] its mean log-probability. */
static int sample_batch(const ws_clone *c, ws_kv_cache *cache, int plen, const float *last_logits, uint64_t *rng,
                        int n, char **texts, double *mean_lp, ws_error *err)
{
    int V = c->model->cfg.vocab_size, rc = 0, maxn = c->fmt.bytes ? c->gen_max + 1 : GEN_MAX_TOKENS;
    ws_gen_opts o;
    ws_gen_opts_init(&o);
    o.temperature = 0.8f;
    o.top_k = 40;
    o.top_p = 0.95f;
    sample *ss = ws_xcalloc((size_t)n, sizeof *ss);
    float *logits = ws_xmalloc((size_t)n * V * sizeof *logits);
    ws_kv_cache **live = ws_xcalloc((size_t)n, sizeof *live);
    int32_t *next = ws_xcalloc((size_t)n, sizeof *next);
    int *who = ws_xcalloc((size_t)n, sizeof *who);
    ws_kv_cache_truncate(cache, plen);
    for (int i = 0; i < n; i++) {
        ss[i].alive = true;
        ss[i].kc = ws_kv_cache_dup(c->model, cache);
        memcpy(logits + (size_t)i * V, last_logits, (size_t)V * sizeof *logits);
        texts[i] = NULL;
    }
    for (int step = 0; step < maxn; step++) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!ss[i].alive)
                continue;
            ss[i].alive = sample_step(c, &ss[i], logits + (size_t)i * V, &o, rng, &next[k]);
            if (ss[i].alive)
                live[k] = ss[i].kc, who[k++] = i;
        }
        if (!k)
            break;
        float *bl = ws_xmalloc((size_t)k * V * sizeof *bl);
        rc = ws_model_infer_batch(c->model, c->lora, live, next, k, bl, err);
        for (int j = 0; j < k && !rc; j++)
            memcpy(logits + (size_t)who[j] * V, bl + (size_t)j * V, (size_t)V * sizeof *bl);
        free(bl);
        if (rc)
            goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!ss[i].ended || !ss[i].ids.n)
            continue;
        mean_lp[i] = ss[i].lp / (double)(ss[i].ids.n + 1);
        size_t len = 0;
        char *t = ws_tokenizer_decode_len(c->tok, ss[i].ids.v, ss[i].ids.n, true, &len);
        if (strlen(t) == len && !strstr(t, "\xEF\xBF\xBD"))
            texts[i] = t;
        else
            free(t);
    }
out:
    for (int i = 0; i < n; i++) {
        ibuf_free(&ss[i].ids);
        ws_kv_cache_free(ss[i].kc);
    }
    free(ss);
    free(logits);
    free(live);
    free(next);
    free(who);
    return rc;
}

/* True when words repeat back to back in runs of two or three ("at Marco's at Marco's"), the
 * usual loop of a small model; single-word doubling ("sí sí") is a style, not a loop. */
static bool stutters(const char *s)
{
    char *c = ws_xstrdup(s);
    const char *w[96];
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(c, " \n", &save); tok && n < 96; tok = strtok_r(NULL, " \n", &save))
        w[n++] = tok;
    bool rep = false;
    for (size_t len = 2; len <= 3 && !rep; len++)
        for (size_t i = 0; i + 2 * len <= n && !rep; i++) {
            bool same = true;
            for (size_t k = 0; k < len && same; k++)
                same = !strcmp(w[i + k], w[i + len + k]);
            rep = same;
        }
    free(c);
    return rep;
}

static uint64_t seed_of(const char *s)
{
    return ws_hash_fnv1a(s, strlen(s)) | 1;
}

int ws_clone_reply(const ws_clone *c, const char *message, const ws_clone_turn *context, size_t n_context,
                   const ws_clone_reply_opts *opts, ws_clone_answer *out, ws_error *err)
{
    double t0 = ws_now_s();
    memset(out, 0, sizeof *out);
    if (c->model->cfg.dim < 512 && !getenv("WS_NN_THREADS"))
        ws_nn_set_threads(1);   /* a small model: threads cost more than they give */
    ws_clone_reply_opts o = {0};
    if (opts)
        o = *opts;
    int n_samples = o.n_samples > 0 ? o.n_samples : c->fmt.chat ? CHAT_SAMPLES : 3;
    int n_retr = o.n_retrieved > 0 ? o.n_retrieved : 6;
    if (!message)
        return ws_error_set(err, WS_EINVAL, "no message");
    char *msg = clone_trim(message);
    if (strlen(msg) > WS_CLONE_MAX_MESSAGE)
        msg[WS_CLONE_MAX_MESSAGE] = '\0';
    if (!*msg) {
        free(msg);
        return ws_error_set(err, WS_EINVAL, "the message is empty");
    }
    int rc = 0;
    cand *cs = ws_xcalloc((size_t)(n_samples + n_retr) + 1, sizeof *cs);
    size_t nc = 0;
    ws_vhit *hits = ws_xcalloc((size_t)n_retr * 3, sizeof *hits);
    float *q = ws_xmalloc(c->emb->dim * sizeof *q);
    float *last = ws_xmalloc((size_t)c->model->cfg.vocab_size * sizeof *last);
    ws_kv_cache *cache = NULL;
    ibuf prompt = {0}, ids = {0};
    ws_buf key = WS_BUF_INIT;

    /* retrieval */
    const char **texts = ws_xcalloc(n_context + 1, sizeof *texts);
    for (size_t i = 0; i < n_context; i++)
        texts[i] = context[i].text ? context[i].text : "";
    texts[n_context] = msg;
    clone_context_key(texts, n_context + 1, &key);
    free(texts);
    if ((rc = ws_embedder_embed(c->emb, key.data, key.len, q, err)))
        goto out;
    size_t nh = ws_vindex_search(c->ix, q, (size_t)n_retr * 3, 64, hits);
    double top_sim = nh ? hits[0].score : 0;
    const char *ret_texts[2];
    size_t n_ret_prompt = 0;
    for (size_t i = 0; i < nh && nc < (size_t)n_retr; i++) {
        const char *r = c->replies[hits[i].id];
        if (clone_is_echo(r, msg) || have_cand(cs, nc, r) || (c->fmt.chat && hits[i].score < CHAT_RETRIEVE_SIM))
            continue;
        cs[nc].text = ws_xstrdup(r);
        cs[nc].sim = hits[i].score;
        cs[nc].src = WS_CLONE_SRC_RETRIEVED;
        if (n_ret_prompt < 2)
            ret_texts[n_ret_prompt++] = cs[nc].text;
        nc++;
    }

    /* the prompt, once through the model */
    clone_build_prompt(c, ret_texts, n_ret_prompt, context, n_context, msg, &prompt);
    cache = ws_kv_cache_new(c->model, (int)prompt.n + GEN_MAX_BYTES + 8);
    if ((rc = ws_model_infer(c->model, c->lora, cache, prompt.v, (int)prompt.n, last, NULL, err)))
        goto out;
    int plen = (int)prompt.n;

    /* score the retrieved replies */
    for (size_t i = 0; i < nc; i++) {
        ids.n = 0;
        clone_fmt_text(&c->fmt, cs[i].text, CLONE_REPLY_BYTES, false, &ids);
        ibuf_push(&ids, c->fmt.end);
        if ((rc = clone_score_ids(c, c->lora, cache, plen, last, ids.v, ids.n, &cs[i].lp, err)))
            goto out;
    }
    /* sampled generations */
    uint64_t rng = o.seed ? o.seed : seed_of(msg);
    char **gens = ws_xcalloc((size_t)n_samples + 1, sizeof *gens);
    double *glp = ws_xcalloc((size_t)n_samples + 1, sizeof *glp);
    if ((rc = sample_batch(c, cache, plen, last, &rng, n_samples, gens, glp, err))) {
        free(gens);
        free(glp);
        goto out;
    }
    for (int s = 0; s < n_samples; s++) {
        char *g = gens[s];
        double lp = glp[s];
        if (!g)
            continue;
        char *gt = clone_trim(g);
        free(g);
        if (!*gt || clone_is_echo(gt, msg) || have_cand(cs, nc, gt) || (!c->fmt.chat && !all_words_known(c, gt)) ||
            stutters(gt) || (!c->fmt.chat && clone_style_fit(gt, c->rates) < c->fit_gate)) {
            free(gt);
            continue;
        }
        cs[nc].text = gt;
        cs[nc].lp = lp;
        cs[nc].sim = c->fmt.chat ? 0 : top_sim * 0.9;
        cs[nc].src = WS_CLONE_SRC_GENERATED;
        nc++;
    }
    free(gens);
    free(glp);
    if (c->fmt.chat && (rc = score_without_context(c, cs, nc, err)))
        goto out;

    /* rank, then draw among the best (a person does not always give their single most
     * likely reply): softmax of the scores at temperature RANK_TEMP, seeded by the message */
    size_t best = 0;
    double top = -1e300;
    for (size_t i = 0; i < nc; i++) {
        cs[i].fit = clone_style_fit(cs[i].text, c->rates);
        if (c->fmt.chat)
            cs[i].score = cs[i].lp + CHAT_PMI_WEIGHT * (cs[i].lp - cs[i].lp_any) + CHAT_STYLE_WEIGHT * log(cs[i].fit) +
                          SIM_WEIGHT * cs[i].sim;
        else
            cs[i].score = cs[i].lp + STYLE_WEIGHT * log(cs[i].fit) + SIM_WEIGHT * cs[i].sim;
        if (cs[i].score > top)
            top = cs[i].score, best = i;
    }
    if (nc > 1) {
        double z = 0;
        for (size_t i = 0; i < nc; i++)
            z += exp((cs[i].score - top) / RANK_TEMP);
        uint64_t r = rng ^ 0x9E3779B97F4A7C15ull;
        r ^= r >> 33;
        r *= 0xff51afd7ed558ccdull;
        r ^= r >> 33;
        double u = (double)(r >> 11) / 9007199254740992.0 * z, acc = 0;
        for (size_t i = 0; i < nc; i++) {
            acc += exp((cs[i].score - top) / RANK_TEMP);
            if (u <= acc) {
                best = i;
                break;
            }
        }
    }
    double conf = 0;
    if (nc) {
        double s = cs[best].sim > 0 ? cs[best].sim : 0;
        conf = 0.7 * exp(cs[best].lp) + 0.3 * s;
        conf = conf < 0 ? 0 : conf > 1 ? 1 : conf;
    }
    out->confidence = conf;
    if (nc && (o.no_fallback || conf >= c->threshold)) {
        out->reply = cs[best].text;
        cs[best].text = NULL;
        out->source = cs[best].src;
    } else {
        out->fallback = true;
        out->source = WS_CLONE_SRC_FALLBACK;
        if (!clone_is_echo(c->fallback, msg)) {
            out->reply = ws_xstrdup(c->fallback);
        } else if (nc) {
            out->reply = cs[best].text;
            cs[best].text = NULL;
        } else {
            /* the persona's next most common reply that is not the message */
            for (size_t i = 0; i < c->n_replies && !out->reply; i++)
                if (!clone_is_echo(c->replies[i], msg))
                    out->reply = ws_xstrdup(c->replies[i]);
            if (!out->reply)
                out->reply = ws_xstrdup("...");
        }
    }
out:
    for (size_t i = 0; i < nc; i++)
        free(cs[i].text);
    free(cs);
    free(hits);
    free(q);
    free(last);
    ws_kv_cache_free(cache);
    ibuf_free(&prompt);
    ibuf_free(&ids);
    ws_buf_free(&key);
    free(msg);
    if (rc)
        ws_clone_answer_clear(out);
    else
        out->processing_ms = (ws_now_s() - t0) * 1000.0;
    return rc;
}

void clone_reply_prompt(const ws_clone *c, const char *const *ctx, const bool *ctx_me, size_t n_ctx, ibuf *out)
{
    if (c->fmt.chat) {
        const char **authors = ws_xcalloc(n_ctx + 1, sizeof *authors);
        for (size_t i = 0; i < n_ctx; i++)
            authors[i] = ctx_me[i] ? c->persona : NULL;
        clone_chat_prompt(&c->fmt, authors, ctx, n_ctx, out);
        free(authors);
        return;
    }
    size_t first = n_ctx > CLONE_CTX_TURNS ? n_ctx - CLONE_CTX_TURNS : 0;
    for (size_t i = first; i < n_ctx; i++)
        clone_fmt_turn(&c->fmt, ctx_me[i], ctx[i], CLONE_CTX_BYTES, true, out);
    for (int i = 0; i < c->fmt.n_me; i++)
        ibuf_push(out, c->fmt.me[i]);
}

void clone_reply_ids(const ws_clone *c, const char *reply, ibuf *out)
{
    clone_fmt_text(&c->fmt, reply, CLONE_REPLY_BYTES, false, out);
    ibuf_push(out, c->fmt.end);
}

int clone_scorer_prompt(clone_scorer *s, const ibuf *prompt, ws_error *err)
{
    const ws_model *m = s->c->model;
    if (s->kc && s->prompt.n == prompt->n && !memcmp(s->prompt.v, prompt->v, prompt->n * sizeof *prompt->v))
        return 0;   /* the same prompt: its cache and last logits are still there */
    ws_kv_cache_free(s->kc);
    s->kc = ws_kv_cache_new(m, (int)prompt->n + CLONE_REPLY_BYTES + 8);
    if (!s->last)
        s->last = ws_xmalloc((size_t)m->cfg.vocab_size * sizeof *s->last);
    s->prompt.n = 0;
    int rc = prompt->n ? ws_model_infer(m, s->lora, s->kc, prompt->v, (int)prompt->n, s->last, NULL, err)
                       : ws_error_set(err, WS_EINVAL, "empty prompt");
    if (rc) {
        ws_kv_cache_free(s->kc);
        s->kc = NULL;
        return rc;
    }
    for (size_t i = 0; i < prompt->n; i++)
        ibuf_push(&s->prompt, prompt->v[i]);
    return 0;
}

int clone_scorer_reply(clone_scorer *s, const int32_t *ids, size_t n, double *nll, ws_error *err)
{
    double mean = 0;
    int rc = clone_score_ids(s->c, s->lora, s->kc, (int)s->prompt.n, s->last, ids, n, &mean, err);
    *nll = -mean * (double)n;
    return rc;
}

void clone_scorer_free(clone_scorer *s)
{
    ws_kv_cache_free(s->kc);
    free(s->last);
    ibuf_free(&s->prompt);
    memset(s, 0, sizeof *s);
}

int clone_reply_loss(const ws_clone *c, const char *const *ctx, const bool *ctx_me, size_t n_ctx,
                     const char *reply, bool base_only, double *nll, size_t *n_tok, ws_error *err)
{
    ibuf prompt = {0}, ids = {0};
    clone_scorer s = {.c = c, .lora = base_only ? NULL : c->lora};
    clone_reply_prompt(c, ctx, ctx_me, n_ctx, &prompt);
    clone_reply_ids(c, reply, &ids);
    int rc = clone_scorer_prompt(&s, &prompt, err);
    if (!rc)
        rc = clone_scorer_reply(&s, ids.v, ids.n, nll, err);
    *n_tok = ids.n;
    clone_scorer_free(&s);
    ibuf_free(&prompt);
    ibuf_free(&ids);
    return rc;
}
