/* Sentence embedders behind one small interface: text in, an L2-normalised float vector out.
 * Two implementations: a model-free hashed character n-gram embedder (always available) and
 * all-MiniLM-L6-v2 run by our own BERT code (src/nn/bert.h), when its files are installed.
 *
 * Ownership: an embedder is created by its constructor and released with ws_embedder_free.
 * Thread-safety: embed() may be called from several threads at once on the same embedder
 * (implementations keep no mutable shared state, or lock it). */
#ifndef WS_STYLE_EMBED_H
#define WS_STYLE_EMBED_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct ws_embedder ws_embedder;

typedef struct ws_embedder_ops {
    /* Writes dim floats (L2 norm 1, or all zero for text with no features) to out. */
    int (*embed)(ws_embedder *e, const char *text, size_t len, float *out, ws_error *err);
    void (*destroy)(ws_embedder *e);
    /* Optional (NULL = one embed() per text): n texts at once, out gets n * dim floats. */
    int (*embed_batch)(ws_embedder *e, const char *const *texts, const size_t *lens, size_t n, float *out,
                       ws_error *err);
} ws_embedder_ops;

struct ws_embedder {
    const ws_embedder_ops *ops;
    char name[64]; /* identifies the embedding space, stored in index files ("hash-ngram-512") */
    size_t dim;
    void *impl;
};

static inline int ws_embedder_embed(ws_embedder *e, const char *text, size_t len, float *out, ws_error *err)
{
    return e->ops->embed(e, text, len, out, err);
}

static inline int ws_embedder_embed_batch(ws_embedder *e, const char *const *texts, const size_t *lens,
                                          size_t n, float *out, ws_error *err)
{
    if (e->ops->embed_batch)
        return e->ops->embed_batch(e, texts, lens, n, out, err);
    for (size_t i = 0; i < n; i++) {
        int rc = e->ops->embed(e, texts[i], lens[i], out + i * e->dim, err);
        if (rc)
            return rc;
    }
    return 0;
}

static inline void ws_embedder_free(ws_embedder *e)
{
    if (e)
        e->ops->destroy(e);
}

/* Model-free embedder: 1- to 4-grams of code points of the lowercased, space-collapsed text
 * (with a space at both ends), signed feature hashing into dim buckets (64..65536), L2 norm.
 * Name "hash-ngram-<dim>". Never fails except for a bad dim (returns NULL). */
ws_embedder *ws_embed_hash_new(size_t dim);

/* all-MiniLM-L6-v2 from a directory holding config.json, vocab.txt and model.safetensors
 * (tools/setup-minilm.sh installs them into models/minilm/). Name "all-MiniLM-L6-v2", dim 384.
 * Errors: WS_ENOENT (files missing), WS_EFORMAT / WS_EUNSUPPORTED (unexpected model). */
int ws_embed_minilm_new(const char *model_dir, ws_embedder **out, ws_error *err);

/* The default MiniLM directory: the one set (the CLI's --minilm-dir / WS_MINILM_DIR), else
 * "models/minilm". Set it before threads start (not thread-safe); NULL or "" = the default. */
void ws_embed_minilm_set_default_dir(const char *dir);
const char *ws_embed_minilm_default_dir(void);

/* The best embedder available: MiniLM from model_dir (NULL = the default dir) when its files are
 * there, else hash-ngram-512. Never fails (*used_fallback tells which, may be NULL). */
ws_embedder *ws_embed_best(const char *model_dir, bool *used_fallback);
/* The embedder of a named space (as stored in an index): "hash-ngram-<dim>" or
 * "all-MiniLM-L6-v2" (from model_dir, NULL = default). WS_EUNSUPPORTED for other names. */
int ws_embed_for_space(const char *space, const char *model_dir, ws_embedder **out, ws_error *err);

/* Cosine similarity of two L2-normalised vectors (their dot product), vectorisable loop. */
float ws_vec_dot(const float *a, const float *b, size_t dim);
/* Scales v to L2 norm 1 (leaves an all-zero vector alone). */
void ws_vec_normalize(float *v, size_t dim);

#endif
