/* A persona's style model as one object and one set of files: the profile, the retrieval index
 * of their examples and the embedder that index needs. The trainer builds and saves it next to
 * the language model; the AI service loads it and answers with ws_style_reply (retrieval and
 * generated candidates, fallback).
 *
 * Files in the model directory: style.json (manifest: version, embedder, counts), profile.json,
 * retrieval.idx and retrieval.jsonl (src/style/retrieval.h).
 * Ownership: a ws_style owns its parts (ws_style_free). Loaded or built, it is read-only and
 * ws_style_reply may run on it from several threads at once. */
#ifndef WS_STYLE_STYLE_H
#define WS_STYLE_STYLE_H

#include "core/error.h"
#include "style/embed.h"
#include "style/pairs.h"
#include "style/profile.h"
#include "style/reply.h"
#include "style/retrieval.h"

#define WS_STYLE_VERSION 1
#define WS_STYLE_MAX_JSON (4u << 20) /* cap on style.json and profile.json */

typedef struct ws_style {
    ws_profile *profile;
    ws_retrieval *retrieval; /* NULL when the persona never answered anyone */
    ws_embedder *embedder;
} ws_style;

/* Builds the profile (training examples and everything else the persona wrote, minus the
 * held-out replies) and the retrieval index (training examples). Takes ownership of e, also on
 * error. opt may be NULL. */
int ws_style_build(const ws_pairs *p, ws_embedder *e, const ws_retrieval_options *opt, ws_style **out,
                   ws_error *err);
int ws_style_save(const ws_style *s, const char *dir, ws_error *err);
/* Loads a saved style model; the embedder named in style.json is created (MiniLM from
 * minilm_dir, NULL = default). WS_ENOENT / WS_EFORMAT / WS_EUNSUPPORTED as for the parts. */
int ws_style_load(const char *dir, const char *minilm_dir, ws_style **out, ws_error *err);
void ws_style_free(ws_style *s); /* NULL is a no-op */

static inline int ws_style_reply(const ws_style *s, const char *const *turns, size_t n_turns,
                                 const ws_reply_generated *gen, size_t n_gen, const ws_reply_options *opt,
                                 ws_reply_choice *out, ws_error *err)
{
    return ws_reply_choose(s->retrieval, s->embedder, s->profile, turns, n_turns, gen, n_gen, opt, out, err);
}

#endif
