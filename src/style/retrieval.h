/* Retrieval over one persona's examples (DESIGN.md §3.3): each training example's context is
 * embedded and indexed; the contexts nearest to a new conversation give the persona's real
 * replies as candidates and as in-context examples. Persisted in the model directory as
 * retrieval.idx (ws_vindex file) and retrieval.jsonl (one {"context","reply"} per indexed row).
 *
 * Ownership: a ws_retrieval belongs to the caller (ws_retrieval_free); hits point into it and
 * stay valid until it is freed. Queries may run concurrently; build/load need exclusive use.
 * The embedder passed to a query must be the one the index was built with (same space name). */
#ifndef WS_STYLE_RETRIEVAL_H
#define WS_STYLE_RETRIEVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "style/embed.h"
#include "style/pairs.h"
#include "style/vindex.h"

#define WS_RETRIEVAL_KEY_TURNS 2            /* context turns that form the search key */
#define WS_RETRIEVAL_MAX_JSONL (1ull << 30) /* cap on retrieval.jsonl */

typedef struct ws_retrieval_options {
    bool include_heldout; /* index the held-out examples too (not for evaluation runs) */
    size_t hnsw_min;      /* build an HNSW graph from this many examples on; 0 = WS_VINDEX_HNSW_FROM */
    ws_hnsw_params hnsw;  /* zeros = defaults */
    int threads;          /* embedding threads; 0 = online CPUs */
} ws_retrieval_options;

typedef struct ws_retrieval_hit {
    uint32_t row;        /* row in the index */
    float score;         /* cosine similarity of the contexts */
    const char *context; /* the example's key text */
    const char *reply;   /* what the persona answered */
} ws_retrieval_hit;

typedef struct ws_retrieval ws_retrieval;

/* The search key of a conversation: its last WS_RETRIEVAL_KEY_TURNS turn texts, '\n'-joined. */
void ws_retrieval_key(const char *const *turn_texts, size_t n, ws_buf *out);

int ws_retrieval_build(const ws_pairs *p, ws_embedder *e, const ws_retrieval_options *opt, ws_retrieval **out,
                       ws_error *err);
int ws_retrieval_save(const ws_retrieval *r, const char *dir, ws_error *err);
int ws_retrieval_load(const char *dir, ws_retrieval **out, ws_error *err);
void ws_retrieval_free(ws_retrieval *r); /* NULL is a no-op */

size_t ws_retrieval_count(const ws_retrieval *r);
const ws_vindex *ws_retrieval_index(const ws_retrieval *r);

/* Embeds key (see ws_retrieval_key) and returns up to k hits, best first, in hits[]; *n_hits
 * says how many. WS_EINVAL when e's space differs from the index's. */
int ws_retrieval_query(const ws_retrieval *r, ws_embedder *e, const char *key, size_t len, size_t k,
                       ws_retrieval_hit *hits, size_t *n_hits, ws_error *err);

#endif
