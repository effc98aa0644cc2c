/* Reply selection (DESIGN.md §3.5): candidates from retrieval (the persona's real replies to the
 * nearest past contexts) and from generation (texts the language model produced, with their
 * mean token log-probability); a confidence in [0,1] for each from retrieval similarity and
 * token probability; the best candidate wins unless its confidence is below the threshold, in
 * which case the fallback answers (a configured text, else the persona's typical short reply).
 *
 * Ownership: every text in a ws_reply_choice is borrowed from the inputs (retrieval index,
 * generated candidates, profile, options) and stays valid as long as they do.
 * Thread-safe when the retrieval index and embedder are (queries only). */
#ifndef WS_STYLE_REPLY_H
#define WS_STYLE_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "style/embed.h"
#include "style/profile.h"
#include "style/retrieval.h"

#define WS_REPLY_MAX_CANDIDATES 24
#define WS_REPLY_DEFAULT_FALLBACK "ok"

typedef enum { WS_REPLY_RETRIEVED, WS_REPLY_GENERATED, WS_REPLY_FALLBACK } ws_reply_source;

typedef struct ws_reply_generated {
    const char *text;
    double mean_logprob; /* mean natural-log probability per generated token (<= 0) */
} ws_reply_generated;

typedef struct ws_reply_candidate {
    const char *text;
    ws_reply_source source;
    double similarity; /* retrieved: cosine of the contexts; generated: best retrieved cosine */
    double confidence;
} ws_reply_candidate;

typedef struct ws_reply_options {
    size_t k;                   /* retrieval hits to consider; 0 = 8 */
    double threshold;           /* fallback below this confidence; 0 = 0.35; negative = never */
    const char *fallback_text;  /* NULL = the profile's typical short reply, else "ok" */
    double sim_floor, sim_ceil; /* cosine mapped linearly onto [0,1]; both 0 = 0.2 .. 0.9 */
} ws_reply_options;

typedef struct ws_reply_choice {
    const char *text;
    double confidence; /* of the chosen candidate (also when the fallback answers) */
    ws_reply_source source;
    bool fallback;
    ws_reply_candidate cand[WS_REPLY_MAX_CANDIDATES]; /* best first */
    size_t n_cand;
} ws_reply_choice;

/* turns: the conversation so far, the message to answer last (n_turns >= 1). r, e, persona and
 * gen may be NULL/0 (no index, no model). Errors come from the embedder or a space mismatch. */
int ws_reply_choose(const ws_retrieval *r, ws_embedder *e, const ws_profile *persona,
                    const char *const *turns, size_t n_turns, const ws_reply_generated *gen, size_t n_gen,
                    const ws_reply_options *opt, ws_reply_choice *out, ws_error *err);

const char *ws_reply_source_name(ws_reply_source s); /* "retrieved", "generated", "fallback" */

#endif
