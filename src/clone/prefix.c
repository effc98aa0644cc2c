/* The KV caches a clone on a base keeps between replies: the last reply's prompt (the next
 * prompt runs only past the longest common prefix: the system message always, the whole
 * conversation when it only grew) and the prompt without a conversation (run once; the ranking's
 * pointwise mutual information scores every candidate after it, and a guided sequence runs its
 * tokens after it too). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clone/clone_int.h"
#include "core/mem.h"

struct clone_prefix {
    pthread_mutex_t mu;
    ws_kv_cache *kc;  /* the last prompt's cache, NULL while a reply holds it */
    ibuf ids;         /* its prompt */
    float *last;      /* the logits after it */
    ws_kv_cache *kc0; /* the prompt without a conversation: set once, then only read */
    float *last0;
};

clone_prefix *ws__clone_prefix_new(void)
{
    clone_prefix *p = ws_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void ws__clone_prefix_free(clone_prefix *p)
{
    if (!p)
        return;
    ws_kv_cache_free(p->kc);
    ws__clone_ibuf_free(&p->ids);
    free(p->last);
    ws_kv_cache_free(p->kc0);
    free(p->last0);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The cached prompt's cache and ids when there is one (the caller owns them then). */
static ws_kv_cache *take(clone_prefix *p, ibuf *ids, float *last, int V)
{
    pthread_mutex_lock(&p->mu);
    ws_kv_cache *kc = p->kc;
    if (kc) {
        *ids = p->ids;
        memcpy(last, p->last, (size_t)V * sizeof *last);
        p->kc = NULL;
        p->ids = (ibuf){0};
    }
    pthread_mutex_unlock(&p->mu);
    return kc;
}

int ws__clone_prefix_run(const ws_clone *c, const ibuf *prompt, int room, ws_kv_cache **out, float *last,
                         ws_error *err)
{
    const ws_model *m = c->model;
    int V = m->cfg.vocab_size, need = (int)prompt->n + room;
    ibuf old = {0};
    ws_kv_cache *kc = c->prefix ? take(c->prefix, &old, last, V) : NULL;
    size_t same = 0;
    if (kc && ws_kv_cache_room(kc) >= need && ws_kv_cache_len(kc) >= (int)old.n)
        while (same < old.n && same < prompt->n && old.v[same] == prompt->v[same])
            same++;
    ws__clone_ibuf_free(&old);
    if (!same) {
        ws_kv_cache_free(kc);
        kc = ws_kv_cache_new(m, need);
    }
    *out = kc;
    if (same == prompt->n) { /* the same prompt again: its logits are the ones taken */
        ws_kv_cache_truncate(kc, (int)same);
        return 0;
    }
    ws_kv_cache_truncate(kc, (int)same);
    if (!same)
        ws_kv_cache_reset(kc);
    return ws_model_infer(m, c->lora, kc, prompt->v + same, (int)(prompt->n - same), last, NULL, err);
}

void ws__clone_prefix_put(const ws_clone *c, ws_kv_cache *kc, const ibuf *prompt, const float *last)
{
    clone_prefix *p = c->prefix;
    if (!p || !kc || ws_kv_cache_len(kc) < (int)prompt->n) {
        ws_kv_cache_free(kc);
        return;
    }
    size_t V = (size_t)c->model->cfg.vocab_size;
    pthread_mutex_lock(&p->mu);
    ws_kv_cache *drop = p->kc; /* another reply's, put back in between: the newer prompt wins */
    p->kc = kc;
    p->ids.n = 0;
    for (size_t i = 0; i < prompt->n; i++)
        ws__clone_ibuf_push(&p->ids, prompt->v[i]);
    if (!p->last)
        p->last = ws_xmalloc(V * sizeof *p->last);
    memcpy(p->last, last, V * sizeof *last);
    pthread_mutex_unlock(&p->mu);
    ws_kv_cache_free(drop);
}

int ws__clone_prefix_empty(const ws_clone *c, const ws_kv_cache **kc0, const float **last0, ws_error *err)
{
    clone_prefix *p = c->prefix;
    if (!p)
        return ws_error_set(err, WS_EINVAL, "no prompt cache on this clone");
    pthread_mutex_lock(&p->mu);
    bool have = p->kc0 != NULL;
    pthread_mutex_unlock(&p->mu);
    if (!have) { /* run outside the lock; the first one to finish installs it */
        ibuf prompt = {0};
        ws__clone_chat_prompt(&c->fmt, NULL, NULL, 0, &prompt);
        ws_kv_cache *kc = ws_kv_cache_new(c->model, (int)prompt.n);
        float *last = ws_xmalloc((size_t)c->model->cfg.vocab_size * sizeof *last);
        int rc = ws_model_infer(c->model, c->lora, kc, prompt.v, (int)prompt.n, last, NULL, err);
        ws__clone_ibuf_free(&prompt);
        if (rc) {
            ws_kv_cache_free(kc);
            free(last);
            return rc;
        }
        pthread_mutex_lock(&p->mu);
        if (!p->kc0) {
            p->kc0 = kc, p->last0 = last;
            kc = NULL, last = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        ws_kv_cache_free(kc);
        free(last);
    }
    pthread_mutex_lock(&p->mu);
    *kc0 = p->kc0;
    *last0 = p->last0;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int ws__clone_guided_begin(const ws_clone *c, const ws_kv_cache *cache, ws_gen_opts *o, clone_guided *g,
                           ws_error *err)
{
    *g = (clone_guided){0};
    if (o->guidance <= 0)
        return 0;
    const ws_kv_cache *kc0 = NULL;
    const float *last0 = NULL;
    int rc = ws__clone_prefix_empty(c, &kc0, &last0, err);
    if (rc)
        return rc;
    size_t V = (size_t)c->model->cfg.vocab_size;
    g->kc0 = ws_kv_cache_dup_room(c->model, kc0, ws_kv_cache_room(cache)); /* one size: one batch */
    g->logits0 = ws_xmalloc(V * sizeof *g->logits0);
    memcpy(g->logits0, last0, V * sizeof *g->logits0);
    g->rows = ws_xmalloc(2 * V * sizeof *g->rows);
    o->guidance_logits = g->logits0;
    return 0;
}

int ws__clone_guided_next(const ws_clone *c, ws_kv_cache *cache, clone_guided *g, int32_t id, float *logits,
                          ws_error *err)
{
    if (!g->kc0)
        return ws_model_infer(c->model, c->lora, cache, &id, 1, logits, NULL, err);
    size_t V = (size_t)c->model->cfg.vocab_size;
    ws_kv_cache *caches[2] = {cache, g->kc0};
    int32_t ids[2] = {id, id};
    int rc = ws_model_infer_batch(c->model, c->lora, caches, ids, 2, g->rows, err);
    if (!rc) {
        memcpy(logits, g->rows, V * sizeof *logits);
        memcpy(g->logits0, g->rows + V, V * sizeof *g->logits0);
    }
    return rc;
}

void ws__clone_guided_end(clone_guided *g)
{
    ws_kv_cache_free(g->kc0);
    free(g->logits0);
    free(g->rows);
    *g = (clone_guided){0};
}
