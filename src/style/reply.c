/* Choosing the reply among retrieved and generated candidates (see reply.h). */
#include "style/reply.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"

const char *ws_reply_source_name(ws_reply_source s)
{
    switch (s) {
    case WS_REPLY_RETRIEVED: return "retrieved";
    case WS_REPLY_GENERATED: return "generated";
    case WS_REPLY_FALLBACK: return "fallback";
    }
    return "?";
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

static int cmp_cand(const void *a, const void *b)
{
    const ws_reply_candidate *x = a, *y = b;
    if (x->confidence != y->confidence)
        return x->confidence > y->confidence ? -1 : 1;
    return (int)x->source - (int)y->source;
}

int ws_reply_choose(const ws_retrieval *r, ws_embedder *e, const ws_profile *persona,
                    const char *const *turns, size_t n_turns, const ws_reply_generated *gen, size_t n_gen,
                    const ws_reply_options *opt, ws_reply_choice *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    ws_reply_options o = opt ? *opt : (ws_reply_options){0};
    if (!o.k)
        o.k = 8;
    if (o.k > WS_REPLY_MAX_CANDIDATES)
        o.k = WS_REPLY_MAX_CANDIDATES;
    if (o.threshold == 0)
        o.threshold = 0.35;
    if (o.sim_floor == 0 && o.sim_ceil == 0) {
        o.sim_floor = 0.2;
        o.sim_ceil = 0.9;
    }
    double span = o.sim_ceil > o.sim_floor ? o.sim_ceil - o.sim_floor : 1;
    double best_sim = 0;
    int rc = 0;
    if (r && e && n_turns) {
        ws_buf key = WS_BUF_INIT;
        ws_retrieval_hit hits[WS_REPLY_MAX_CANDIDATES];
        size_t n = 0;
        ws_retrieval_key(turns, n_turns, &key);
        rc = ws_retrieval_query(r, e, key.data, key.len, o.k, hits, &n, err);
        ws_buf_free(&key);
        if (rc)
            return rc;
        for (size_t i = 0; i < n; i++) {
            /* several near contexts answered the same way: agreement adds confidence */
            size_t same = 0;
            for (size_t j = 0; j < n; j++)
                same += j != i && strcasecmp(hits[i].reply, hits[j].reply) == 0;
            double conf = clamp01((hits[i].score - o.sim_floor) / span + 0.05 * (double)same);
            out->cand[out->n_cand++] =
                (ws_reply_candidate){hits[i].reply, WS_REPLY_RETRIEVED, hits[i].score, conf};
            if (hits[i].score > best_sim)
                best_sim = hits[i].score;
        }
    }
    for (size_t i = 0; i < n_gen && out->n_cand < WS_REPLY_MAX_CANDIDATES; i++) {
        if (!gen[i].text || !gen[i].text[0])
            continue;
        double p = exp(gen[i].mean_logprob < 0 ? gen[i].mean_logprob : 0);
        /* token probability, and how familiar the situation is (nearest retrieved context) */
        double conf = r ? 0.5 * p + 0.5 * clamp01((best_sim - o.sim_floor) / span) : p;
        out->cand[out->n_cand++] =
            (ws_reply_candidate){gen[i].text, WS_REPLY_GENERATED, best_sim, clamp01(conf)};
    }
    qsort(out->cand, out->n_cand, sizeof *out->cand, cmp_cand);
    if (out->n_cand) {
        out->text = out->cand[0].text;
        out->confidence = out->cand[0].confidence;
        out->source = out->cand[0].source;
    }
    if (!out->n_cand || (o.threshold > 0 && out->confidence < o.threshold)) {
        out->fallback = true;
        out->source = WS_REPLY_FALLBACK;
        if (o.fallback_text)
            out->text = o.fallback_text;
        else if (persona && persona->typical_reply[0])
            out->text = persona->typical_reply;
        else
            out->text = WS_REPLY_DEFAULT_FALLBACK;
    }
    return 0;
}
