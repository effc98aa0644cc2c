/* The in-process AI (the embedded default of `whatstyle serve`): each user's clone lives in
 * models_root/<user_id>/ (the directory `whatstyle train` writes); generate() replies with it,
 * train() trains a new one into a fresh directory and swaps it in atomically, reload() drops
 * the cached clone, forget() deletes the user's directory.
 *
 * Ownership: the returned ws_ai belongs to the caller (ws_ai_free). Thread-safe: opened clones
 * are cached (reference-counted, so a reload while replies run is safe); any number of threads
 * may call generate() at once. */
#ifndef WS_AI_AI_LOCAL_H
#define WS_AI_AI_LOCAL_H

#include "ai/ai.h"

typedef struct ws_ai_local_opts {
    const char *base_model;    /* default base model for train() when the request names none */
    double default_budget_s;   /* 0 = WS_CLONE_DEFAULT_BUDGET_S */
} ws_ai_local_opts;

/* models_root is created if missing. opts may be NULL. Errors: WS_EIO (cannot create it). */
int ws_ai_local_new(const char *models_root, const ws_ai_local_opts *opts, ws_ai **out, ws_error *err);

#endif
