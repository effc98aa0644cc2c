/* The in-process AI (the embedded default of `whatstyle serve`). generate() replies with the
 * user's clone, train() trains a new one and installs it atomically, reload() drops the cached
 * clone, forget() deletes every artifact of the user.
 *
 * Where clones live: with opts->blobs (what `serve` uses), encrypted in the blobs under
 * users/<id>/models/ — a model directory is decrypted only into a private scratch directory
 * (models_root/.scratch, 0700) while training or opening it, and deleted right after; without
 * blobs, as plaintext directories models_root/<user_id>/ (the layout `whatstyle train` writes). A
 * plaintext directory found there while blobs are in use is moved into the blobs on first use.
 *
 * Opened clones stay cached (within opts->memory_budget, least recently used dropped first; the
 * base model they share is counted once, by whoever holds it). status() lists them.
 *
 * Ownership: the returned ws_ai belongs to the caller (ws_ai_free). Thread-safe: opened clones
 * are cached (reference-counted, so a reload while replies run is safe); any number of threads
 * may call generate() at once. */
#ifndef WS_AI_AI_LOCAL_H
#define WS_AI_AI_LOCAL_H

#include "ai/ai.h"

typedef struct ws_blobs ws_blobs;

typedef struct ws_ai_local_opts {
    const char *base_model;  /* default base model for train() when the request names none */
    double default_budget_s; /* 0 = WS_CLONE_DEFAULT_BUDGET_S */
    ws_blobs *blobs;         /* borrowed, must outlive the ws_ai; NULL = plaintext directories */
    uint64_t memory_budget;  /* bytes of opened clones kept in memory (least recently used
                              * evicted first); 0 = unbounded */
} ws_ai_local_opts;

/* models_root (and its scratch directory) is created if missing. opts may be NULL. Errors:
 * WS_EIO (cannot create it). */
int ws_ai_local_new(const char *models_root, const ws_ai_local_opts *opts, ws_ai **out, ws_error *err);

/* Process-wide counters of the clone cache of every in-process AI: lookups that found the
 * clone opened, lookups that opened it (loads), and clones resident now. Thread-safe. */
typedef struct ws_ai_local_stats {
    uint64_t cache_hits, cache_misses;
    int64_t resident;
} ws_ai_local_stats;
void ws_ai_local_get_stats(ws_ai_local_stats *out);

#endif
