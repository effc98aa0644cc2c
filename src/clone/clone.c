/* Opening a trained clone directory (manifest + hash checks, its parts loaded) and the
 * persona's vocabulary; replying is reply.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "nn/generate.h"
#include "nn/ops.h"
#include "style/text.h"

#define MANIFEST_CAP (1u << 20)
#define REPLIES_CAP (256u << 20)
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

static void add_word(void *arg, const char *w, size_t n)
{
    ws_strset_add(arg, w, n);
}

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

bool ws__clone_words_known(const ws_clone *c, const char *s)
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

/* Whether the persona writes in lower case: at most 1 in 50 of their words that are lower-case
 * or capitalised are capitalised (all-caps emphasis aside), over 200 words or more. */
static bool writes_lower_case(const ws_clone *c)
{
    ws_case_shapes cs = {0};
    for (size_t i = 0; i < c->n_replies; i++)
        ws_text_case_shapes(c->replies[i], &cs);
    size_t words = cs.lower + cs.capitalised;
    return words >= 200 && cs.capitalised * 50 <= words;
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
    ws__clone_style_rates((const char *const *)c->replies, c->n_replies, c->rates);
    c->lower_case = writes_lower_case(c);
    /* generations stop a little past the persona's long replies (in tokens ~ bytes here) */
    size_t *lens = ws_xcalloc(c->n_replies + 1, sizeof *lens);
    for (size_t i = 0; i < c->n_replies; i++)
        lens[i] = strlen(c->replies[i]);
    qsort(lens, c->n_replies, sizeof *lens, cmp_size);
    /* a generation must be at least as typical as the persona's own replies at the 25th percentile */
    double *fits = ws_xcalloc(c->n_replies + 1, sizeof *fits);
    for (size_t i = 0; i < c->n_replies; i++)
        fits[i] = ws__clone_style_fit(c->replies[i], c->rates);
    qsort(fits, c->n_replies, sizeof *fits, cmp_double);
    c->fit_gate = c->n_replies ? fits[c->n_replies / 4] : 0;
    free(fits);
    size_t k95 = c->n_replies ? lens[c->n_replies * 19 / 20] : CLONE_REPLY_BYTES;
    free(lens);
    c->gen_max = (int)(k95 * 5 / 4 + 8);
    if (c->gen_max > CLONE_REPLY_BYTES)
        c->gen_max = CLONE_REPLY_BYTES;
out:
    ws_json_doc_free(doc);
    free(data);
    return rc;
}

static _Atomic int clone_threads = -1; /* ws_clone_set_threads */

void ws_clone_set_threads(int n)
{
    clone_threads = n < 0 ? -1 : n;
}

int ws__clone_threads(void)
{
    return clone_threads;
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
                         "(run tools/setup-minilm.sh, or give --minilm-dir / WS_MINILM_DIR)",
                         ws_embed_minilm_default_dir());
        return rc;
    }
    return ws_error_set(err, WS_EUNSUPPORTED, "unknown embedder %s", name);
}

int ws__clone_load(ws_clone *c, const char *dir, const char *kind, const char *base_dir, const char *base_id,
                   const char *persona, const char *embedder, ws_error *err)
{
    int rc = 0;
    char *p = NULL;
    c->dir = ws_xstrdup(dir);
    c->kind = ws_xstrdup(kind);
    if (!strcmp(kind, "scratch")) {
        p = ws__clone_path(dir, "model");
        char *tp = ws__clone_path(p, "tokenizer.json");
        rc = ws_tokenizer_load(tp, &c->tok, err);
        free(tp);
        if (rc)
            goto out;
        if ((rc = ws_model_load(p, 0, &c->model, err)))
            goto out;
        if ((size_t)c->model->cfg.vocab_size != ws_tokenizer_vocab_size(c->tok)) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: model vocabulary %d, tokenizer %zu", p,
                              c->model->cfg.vocab_size, ws_tokenizer_vocab_size(c->tok));
            goto out;
        }
        if (c->model->cfg.vocab_size == CLONE_VOCAB)
            ws__clone_fmt_init(&c->fmt, NULL, err); /* bytes are their own ids */
        else if ((rc = ws__clone_fmt_init(&c->fmt, c->tok, err)))
            goto out;
    } else if (!strcmp(kind, "lora")) {
        if (!base_dir || !ws__clone_exists(base_dir)) {
            rc = ws_error_set(err, WS_ENOENT, "the base model %s of this clone is missing",
                              base_dir ? base_dir : "?");
            goto out;
        }
        c->base_dir = ws_xstrdup(base_dir);
        if ((rc = ws_base_acquire(base_dir, &c->base, err)))
            goto out;
        if (base_id && strcmp(base_id, c->base->id)) {
            rc = ws_error_set(err, WS_EFORMAT,
                              "this clone's adapter was trained on another base than %s "
                              "(SHA-256 %.12s..., the adapter's %.12s...): train it again",
                              base_dir, c->base->id, base_id);
            goto out;
        }
        c->model = c->base->model;
        c->tok = c->base->tok;
        p = ws__clone_path(dir, "adapter");
        if ((rc = ws_lora_load(p, &c->model->cfg, &c->lora, err)))
            goto out;
        rc = c->base->has_template ? ws__clone_fmt_init_chat(&c->fmt, c->base, persona, err)
                                   : ws__clone_fmt_init(&c->fmt, c->tok, err);
        if (rc)
            goto out;
        if (c->fmt.chat)
            c->repeat_exempt = ws__clone_repeat_exempt_new(c->tok, c->model->cfg.vocab_size);
        c->prefix = ws__clone_prefix_new();
    } else {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "unknown model kind %s", kind);
        goto out;
    }
    if ((rc = open_embedder(embedder, &c->emb, err)))
        goto out;
    free(p);
    p = ws__clone_path(dir, "index.bin");
    if ((rc = ws_vindex_load(p, &c->ix, err)))
        goto out;
    if (strcmp(ws_vindex_space(c->ix), c->emb->name) != 0 || ws_vindex_dim(c->ix) != c->emb->dim) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: made by %s, not %s", p, ws_vindex_space(c->ix), c->emb->name);
        goto out;
    }
    free(p);
    p = ws__clone_path(dir, "replies.json");
    if ((rc = load_replies(c, p, err)))
        goto out;
    for (size_t i = 0; i < ws_vindex_count(c->ix); i++)
        if (ws_vindex_id(c->ix, i) >= c->n_replies) {
            rc = ws_error_set(err, WS_EFORMAT, "%s/index.bin points past replies.json", dir);
            goto out;
        }
    size_t len;
    free(p);
    p = ws__clone_path(dir, "profile.json");
    if ((rc = ws_file_read(p, MANIFEST_CAP, &c->profile_json, &len, err)))
        goto out;
    free(p);
    p = ws__clone_path(dir, "profile.txt");
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
    ws__clone_prefix_free(c->prefix);
    ws_lora_free(c->lora);
    if (c->base) {
        ws_base_release(c->base); /* model and tokenizer are the base's */
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
    free(c->repeat_exempt);
    free(c);
}

int ws_clone_open(const char *dir, ws_clone **out, ws_error *err)
{
    *out = NULL;
    char *mpath = ws__clone_path(dir, "manifest.json"), *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    ws_clone *c = ws_xcalloc(1, sizeof *c);
    int rc = ws_file_read(mpath, MANIFEST_CAP, &data, &len, err);
    if (rc == WS_ENOENT) {
        rc = ws_error_set(err, WS_ENOENT, "%s is not a trained clone (no manifest.json; run whatstyle train)",
                          dir);
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
        rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: format %s, this build reads %s", mpath, format,
                          WS_CLONE_FORMAT);
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
        char *fp = ws__clone_path(dir, files->keys[i]), hex[65];
        int hr = ws_file_sha256(fp, hex, NULL);
        free(fp);
        if (hr) {
            rc = ws_error_set(err, WS_EFORMAT, "corrupted model directory %s: %s is missing", dir,
                              files->keys[i]);
            goto out;
        }
        if (strcmp(hex, h->str) != 0) {
            rc = ws_error_set(err, WS_EFORMAT, "corrupted model directory %s: %s does not match its hash",
                              dir, files->keys[i]);
            goto out;
        }
    }
    if ((rc = ws__clone_load(c, dir, kind, ws_json_get_str(m, "base_model"), ws_json_get_str(m, "base_id"),
                             persona, emb, err)))
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

const char *ws_clone_model_version(const ws_clone *c)
{
    return c->model_version;
}
const char *ws_clone_persona(const ws_clone *c)
{
    return c->persona;
}
const char *ws_clone_profile_json(const ws_clone *c)
{
    return c->profile_json;
}
const char *ws_clone_profile_summary(const ws_clone *c)
{
    return c->profile_summary;
}
double ws_clone_threshold(const ws_clone *c)
{
    return c->threshold;
}
const char *ws_clone_fallback_text(const ws_clone *c)
{
    return c->fallback;
}
bool ws_clone_has_base(const ws_clone *c)
{
    return c->lora != NULL;
}

void ws_clone_answer_clear(ws_clone_answer *r)
{
    free(r->reply);
    memset(r, 0, sizeof *r);
}
