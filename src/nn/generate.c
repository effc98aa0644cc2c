/* Sampling and the generation loop (see generate.h). */
#include "nn/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

void ws_gen_opts_init(ws_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 64;
    o->top_p = 1.0f;
    o->repetition_penalty = 1.0f;
}

void ws_gen_result_free(ws_gen_result *r)
{
    if (!r)
        return;
    free(r->tokens);
    free(r->logprobs);
    r->tokens = NULL;
    r->logprobs = NULL;
    r->n = 0;
}

float ws_logprob(const float *logits, int V, int32_t id)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++)
        s += exp((double)logits[i] - mx);
    return (float)((double)logits[id] - mx - log(s));
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    float v;
    int32_t id;
} cand;

static int cand_desc(const void *a, const void *b)
{
    float x = ((const cand *)a)->v, y = ((const cand *)b)->v;
    if (x != y)
        return x < y ? 1 : -1;
    return ((const cand *)a)->id - ((const cand *)b)->id;
}

/* Moves the entries of c[V] not below the k-th largest value (ties with it included) to the
 * front, sorted as a full sort would order them; returns how many. A min-heap of the k largest
 * values so far: one pass, most entries rejected by one comparison (a full sort of a 49k
 * vocabulary cost more than a batched decoding step). */
static int top_sorted(cand *c, int V, int k)
{
    float *h = ws_xmalloc((size_t)k * sizeof *h);
    int n = 0;
    for (int i = 0; i < V; i++) {
        float v = c[i].v;
        if (n == k && !(v > h[0]))
            continue;
        int at;
        if (n < k) { /* sift up */
            at = n++;
            while (at > 0 && h[(at - 1) / 2] > v) {
                h[at] = h[(at - 1) / 2];
                at = (at - 1) / 2;
            }
        } else { /* replace the root, sift down */
            at = 0;
            for (;;) {
                int l = 2 * at + 1, m = l + 1 < k && h[l + 1] < h[l] ? l + 1 : l;
                if (l >= k || !(h[m] < v))
                    break;
                h[at] = h[m];
                at = m;
            }
        }
        h[at] = v;
    }
    float kth = h[0];
    free(h);
    int m = 0;
    for (int i = 0; i < V; i++)
        if (c[i].v >= kth) {
            cand t = c[m];
            c[m++] = c[i];
            c[i] = t;
        }
    qsort(c, (size_t)m, sizeof *c, cand_desc);
    return m;
}

int32_t ws_sample(float *logits, int V, const ws_gen_opts *o, const int32_t *history, int n_hist,
                  uint64_t *rng, float *logprob)
{
    float lp_id_dummy;
    float *lp = logprob ? logprob : &lp_id_dummy;
    /* the model's log-probabilities are taken before any transform */
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double lse = 0;
    for (int i = 0; i < V; i++)
        lse += exp((double)logits[i] - mx);
    lse = log(lse) + mx;
    float *orig = NULL;
    float rp = o->repetition_penalty, g = o->guidance_logits ? o->guidance : 0;
    bool penalise = rp > 0 && rp != 1.0f && n_hist > 0;
    if (g > 0 || penalise) {
        orig = ws_xmalloc((size_t)V * sizeof(float));
        memcpy(orig, logits, (size_t)V * sizeof(float));
    }
    if (g > 0)
        for (int i = 0; i < V; i++)
            logits[i] = orig[i] + g * (orig[i] - o->guidance_logits[i]);
    for (int i = 0; penalise && i < n_hist; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= V || (o->repetition_exempt && o->repetition_exempt[t]))
            continue;
        /* from the unpenalised value, so each distinct id is penalised once */
        float x = g > 0 ? orig[t] + g * (orig[t] - o->guidance_logits[t]) : orig[t];
        logits[t] = x < 0 ? x * rp : x / rp;
    }
    int32_t pick = 0;
    if (o->temperature <= 0) {
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[pick])
                pick = i;
    } else {
        cand *c = ws_xmalloc((size_t)V * sizeof *c);
        for (int i = 0; i < V; i++)
            c[i] = (cand){logits[i] / o->temperature, i};
        int n = V;
        if (o->top_k > 0 && o->top_k < V)
            n = top_sorted(c, V, o->top_k);
        else if (o->top_p < 1.0f)
            qsort(c, (size_t)V, sizeof *c, cand_desc);
        if (o->top_k > 0 && o->top_k < n) {
            int k = o->top_k;
            while (k < n && c[k].v == c[k - 1].v) /* keep ties with the k-th, as transformers */
                k++;
            n = k;
        }
        float cmx = -INFINITY;
        for (int i = 0; i < n; i++)
            cmx = c[i].v > cmx ? c[i].v : cmx;
        double sum = 0;
        double *p = ws_xmalloc((size_t)n * sizeof *p);
        for (int i = 0; i < n; i++)
            sum += p[i] = exp((double)c[i].v - cmx);
        if (o->top_p < 1.0f) {
            double cum = 0;
            int keep = n;
            for (int i = 0; i < n; i++) {
                cum += p[i] / sum;
                if (cum >= o->top_p) {
                    keep = i + 1;
                    break;
                }
            }
            n = keep;
            sum = 0;
            for (int i = 0; i < n; i++)
                sum += p[i];
        }
        double u = (next_u64(rng) >> 11) * (1.0 / 9007199254740992.0) * sum, acc = 0;
        pick = c[n - 1].id;
        for (int i = 0; i < n; i++) {
            acc += p[i];
            if (u < acc) {
                pick = c[i].id;
                break;
            }
        }
        free(p);
        free(c);
    }
    *lp = (float)((double)(orig ? orig[pick] : logits[pick]) - lse);
    free(orig);
    return pick;
}

static bool ends_with_stop(const ws_buf *text, const ws_gen_opts *o, size_t scan_from)
{
    for (int s = 0; s < o->n_stop_strings; s++) {
        size_t n = strlen(o->stop_strings[s]);
        if (!n || n > text->len)
            continue;
        /* any occurrence that ends in the newest token's bytes */
        size_t lo = scan_from >= n ? scan_from - n + 1 : 0;
        for (size_t i = lo; i + n <= text->len; i++)
            if (!memcmp(text->data + i, o->stop_strings[s], n))
                return true;
    }
    return false;
}

int ws_generate(const ws_model *m, const ws_lora *lora, const int32_t *prompt, int n_prompt,
                const ws_gen_opts *opts, ws_gen_result *out, ws_error *err)
{
    ws_gen_opts o;
    if (opts)
        o = *opts;
    else
        ws_gen_opts_init(&o);
    memset(out, 0, sizeof *out);
    int V = m->cfg.vocab_size;
    if (n_prompt <= 0)
        return ws_error_set(err, WS_EINVAL, "generation needs a non-empty prompt");
    if (o.n_stop_strings > 0 && !o.token_bytes)
        return ws_error_set(err, WS_EINVAL, "stop strings need a token_bytes function");
    if (o.max_new_tokens < 0)
        o.max_new_tokens = 0;
    int ctx = n_prompt + o.max_new_tokens;
    if (ctx > m->cfg.max_pos)
        ctx = m->cfg.max_pos;
    if (n_prompt >= ctx && o.max_new_tokens > 0)
        return ws_error_set(err, WS_ETOOBIG,
                            "prompt of %d tokens leaves no room under max_position_embeddings %d", n_prompt,
                            m->cfg.max_pos);
    ws_kv_cache *kc = ws_kv_cache_new(m, ctx > n_prompt ? ctx : n_prompt);
    float *logits = ws_xmalloc((size_t)V * sizeof(float));
    int32_t *hist = ws_xmalloc((size_t)(n_prompt + o.max_new_tokens + 1) * sizeof(int32_t));
    memcpy(hist, prompt, (size_t)n_prompt * sizeof(int32_t));
    int n_hist = n_prompt;
    out->tokens = ws_xmalloc((size_t)(o.max_new_tokens + 1) * sizeof(int32_t));
    out->logprobs = ws_xmalloc((size_t)(o.max_new_tokens + 1) * sizeof(float));
    out->stop = WS_GEN_LENGTH;
    ws_buf text = WS_BUF_INIT;
    uint64_t rng = o.seed ^ 0x5deece66dull;
    const int32_t *stops = o.stop_ids ? o.stop_ids : (const int32_t *)m->cfg.eos_ids;
    int n_stops = o.stop_ids ? o.n_stop_ids : m->cfg.n_eos;
    int rc = ws_model_infer(m, lora, kc, prompt, n_prompt, logits, NULL, err);
    if (rc)
        goto out;
    for (int step = 0; step < o.max_new_tokens; step++) {
        if (ws_kv_cache_len(kc) >= ctx) {
            out->stop = WS_GEN_LENGTH;
            break;
        }
        float lp;
        int32_t id = ws_sample(logits, V, &o, hist, n_hist, &rng, &lp);
        out->tokens[out->n] = id;
        out->logprobs[out->n] = lp;
        out->n++;
        hist[n_hist++] = id;
        if (o.on_token && o.on_token(o.on_token_ctx, id, lp)) {
            out->stop = WS_GEN_CALLBACK;
            break;
        }
        bool stop = false;
        for (int i = 0; i < n_stops && !stop; i++)
            stop = stops[i] == id;
        if (stop) {
            out->stop = WS_GEN_EOS;
            break;
        }
        if (o.n_stop_strings) {
            const char *b = NULL;
            size_t bl = 0;
            size_t before = text.len;
            if (o.token_bytes(o.token_ctx, id, &b, &bl) == 0 && bl)
                ws_buf_append(&text, b, bl);
            if (text.len > before && ends_with_stop(&text, &o, before)) {
                out->stop = WS_GEN_STOP_STRING;
                break;
            }
        }
        if (step + 1 == o.max_new_tokens)
            break;
        if ((rc = ws_model_infer(m, lora, kc, &id, 1, logits, NULL, err)))
            goto out;
    }
out:
    ws_buf_free(&text);
    free(hist);
    free(logits);
    ws_kv_cache_free(kc);
    if (rc)
        ws_gen_result_free(out);
    return rc;
}
