/* Generation: greedy tokens and log-probabilities against transformers for every reference
 * variant, sampling transforms (temperature, top-k, top-p, repetition penalty), stop tokens,
 * stop strings and the streaming callback. */
#include "harness.h"
#include "nn_ref.h"

#include "nn/generate.h"
#include "nn/model.h"

enum { MIN_DISTINCT = 5 }; /* distinct tokens a greedy reference must hold (make_nn_ref.py) */

/* Number of distinct token ids in a JSON array of numbers. */
static int ref_distinct(const ws_json *toks)
{
    int n = 0;
    for (size_t i = 0; i < toks->len; i++) {
        size_t j = 0;
        while (j < i && toks->items[j].number != toks->items[i].number)
            j++;
        n += j == i;
    }
    return n;
}

static void greedy_matches_transformers(void)
{
    for (int v = 0; v < NN_N_VARIANTS; v++) {
        nn_ref r;
        CHECK(nn_ref_open(&r, nn_variants[v]) == 0);
        ws_model *m = NULL;
        ws_error err = {0};
        CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
        const ws_json *gens = ws_json_get(r.json, "generations");
        CHECK(gens && gens->len == 2);
        for (size_t g = 0; g < gens->len; g++) {
            const ws_json *pj = ws_json_get(&gens->items[g], "prompt"),
                          *tj = ws_json_get(&gens->items[g], "tokens"),
                          *lj = ws_json_get(&gens->items[g], "logprobs");
            int32_t prompt[16];
            CHECK(pj->len <= 16);
            for (size_t i = 0; i < pj->len; i++)
                prompt[i] = (int32_t)pj->items[i].number;
            /* a reference that collapses into one repeated token checks little: keep it varied */
            CHECK(ref_distinct(tj) >= MIN_DISTINCT);
            ws_gen_opts o;
            ws_gen_opts_init(&o);
            o.max_new_tokens = (int)tj->len;
            o.stop_ids = NULL;
            int32_t none = -1;
            o.stop_ids = &none; /* the reference generated a fixed length */
            o.n_stop_ids = 1;
            ws_gen_result res;
            CHECK_EQ_INT(ws_generate(m, NULL, prompt, (int)pj->len, &o, &res, &err), 0);
            CHECK_EQ_INT(res.n, (int)tj->len);
            double md = 0;
            int same = 1;
            for (int i = 0; i < res.n && i < (int)tj->len; i++) {
                same &= res.tokens[i] == (int32_t)tj->items[i].number;
                double d = fabs(res.logprobs[i] - lj->items[i].number);
                md = d > md ? d : md;
            }
            printf("  %s prompt %zu: tokens %s, max|logprob diff| %.3g\n", nn_variants[v], g,
                   same ? "identical" : "DIFFER", md);
            CHECK(same);
            CHECK(md < 1e-4);
            ws_gen_result_free(&res);
        }
        ws_model_free(m);
        nn_ref_close(&r);
    }
}

static void sampling_transforms(void)
{
    enum { V = 6 };
    const float base[V] = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f};
    float l[V];
    ws_gen_opts o;
    ws_gen_opts_init(&o);
    uint64_t rng = 1;
    float lp;
    memcpy(l, base, sizeof l);
    CHECK_EQ_INT(ws_sample(l, V, &o, NULL, 0, &rng, &lp), 1);
    CHECK_NEAR(lp, ws_logprob(base, V, 1), 1e-6);
    /* repetition penalty: token 1 seen -> 3/1.5 = 2 < 2.9 -> argmax 5; the log-prob stays the model's */
    o.repetition_penalty = 1.5f;
    int32_t hist[2] = {1, 1};
    memcpy(l, base, sizeof l);
    CHECK_EQ_INT(ws_sample(l, V, &o, hist, 2, &rng, &lp), 5);
    CHECK_NEAR(lp, ws_logprob(base, V, 5), 1e-6);
    /* negative logits are multiplied */
    int32_t h3 = 3;
    memcpy(l, base, sizeof l);
    ws_sample(l, V, &o, &h3, 1, &rng, &lp);
    CHECK_NEAR(l[3], -1.5, 1e-6);
    /* an exempt id keeps its logit: token 1 stays the argmax */
    const uint8_t exempt[V] = {0, 1, 0, 0, 0, 0};
    o.repetition_exempt = exempt;
    memcpy(l, base, sizeof l);
    CHECK_EQ_INT(ws_sample(l, V, &o, hist, 2, &rng, &lp), 1);
    CHECK_NEAR(l[1], 3.0, 1e-6);
    o.repetition_exempt = NULL;
    /* guidance 1: l + (l - u) raises what the condition raised (token 5: 2.9 + 0.9) over token 1
     * (3 - 0.2); the log-prob stays the model's; the penalty then acts once on the guided value */
    const float uncond[V] = {1.0f, 3.2f, 2.5f, -1.0f, 0.0f, 2.0f};
    o.repetition_penalty = 1.0f;
    o.guidance = 1.0f;
    o.guidance_logits = uncond;
    memcpy(l, base, sizeof l);
    CHECK_EQ_INT(ws_sample(l, V, &o, NULL, 0, &rng, &lp), 5);
    CHECK_NEAR(lp, ws_logprob(base, V, 5), 1e-6);
    CHECK_NEAR(l[1], 2.8, 1e-6);
    o.repetition_penalty = 2.0f;
    int32_t h5[2] = {5, 5};
    memcpy(l, base, sizeof l);
    CHECK_EQ_INT(ws_sample(l, V, &o, h5, 2, &rng, &lp), 1); /* 3.8 / 2 = 1.9 < 2.8 */
    CHECK_NEAR(l[5], 1.9, 1e-6);
    CHECK_NEAR(lp, ws_logprob(base, V, 1), 1e-6);
    o.guidance_logits = NULL; /* no unconditioned logits: no guidance */
    memcpy(l, base, sizeof l);
    CHECK_EQ_INT(ws_sample(l, V, &o, NULL, 0, &rng, &lp), 1);
    o.guidance = 0;
    o.repetition_penalty = 1.0f;
    /* top_k = 1 and tiny top_p are greedy whatever the temperature */
    o.temperature = 5.0f;
    o.top_k = 1;
    for (int i = 0; i < 50; i++) {
        memcpy(l, base, sizeof l);
        CHECK_EQ_INT(ws_sample(l, V, &o, NULL, 0, &rng, NULL), 1);
    }
    o.top_k = 0;
    o.top_p = 0.01f;
    for (int i = 0; i < 50; i++) {
        memcpy(l, base, sizeof l);
        CHECK_EQ_INT(ws_sample(l, V, &o, NULL, 0, &rng, NULL), 1);
    }
    /* top_k = 3 never picks outside {1, 5, 2}; frequencies follow softmax at T=1 */
    o.temperature = 1.0f;
    o.top_p = 1.0f;
    o.top_k = 3;
    int counts[V] = {0};
    for (int i = 0; i < 20000; i++) {
        memcpy(l, base, sizeof l);
        counts[ws_sample(l, V, &o, NULL, 0, &rng, NULL)]++;
    }
    CHECK(counts[0] == 0 && counts[3] == 0 && counts[4] == 0);
    double z = exp(3.0) + exp(2.9) + exp(2.5);
    CHECK_NEAR(counts[1] / 20000.0, exp(3.0) / z, 0.02);
    CHECK_NEAR(counts[2] / 20000.0, exp(2.5) / z, 0.02);
    /* top_p = 0.5: smallest set with mass >= 0.5 over the full softmax: {1, 5} */
    o.top_k = 0;
    o.top_p = 0.5f;
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 5000; i++) {
        memcpy(l, base, sizeof l);
        counts[ws_sample(l, V, &o, NULL, 0, &rng, NULL)]++;
    }
    CHECK(counts[1] > 0 && counts[5] > 0 && counts[1] + counts[5] == 5000);
}

/* top_k on a large vocabulary with many ties (the selection of the k largest, ties with the
 * k-th kept): every pick is among them, and each of them is picked (top_p off). */
static void top_k_large_vocab(void)
{
    enum { NV = 5000, K = 40 };
    static float base[NV], l[NV];
    uint64_t r = 7;
    for (int i = 0; i < NV; i++) { /* 64 distinct values: about 78 ids share each */
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        base[i] = (float)((r >> 33) % 64) / 8.0f;
    }
    float top = 0;
    for (int i = 0; i < NV; i++)
        top = base[i] > top ? base[i] : top;
    int n_top = 0; /* the 40 largest values are all ties with the largest: the set is every one of them */
    for (int i = 0; i < NV; i++)
        n_top += base[i] == top;
    CHECK(n_top > K);
    ws_gen_opts o;
    ws_gen_opts_init(&o);
    o.temperature = 1.0f;
    o.top_k = K;
    uint64_t rng = 3;
    static int counts[NV];
    for (int i = 0; i < 20000; i++) {
        memcpy(l, base, sizeof l);
        counts[ws_sample(l, NV, &o, NULL, 0, &rng, NULL)]++;
    }
    int outside = 0, hit = 0;
    for (int i = 0; i < NV; i++) {
        outside += base[i] != top && counts[i] > 0;
        hit += base[i] == top && counts[i] > 0;
    }
    CHECK_EQ_INT(outside, 0);
    CHECK_EQ_INT(hit, n_top);
}

typedef struct {
    int calls;
    int stop_after;
} stream_ctx;

static int on_token(void *ctx, int32_t id, float lp)
{
    stream_ctx *s = ctx;
    s->calls++;
    return s->stop_after && s->calls >= s->stop_after;
}

/* each token "is" the letter 'a' + id % 26 */
static int token_bytes(void *ctx, int32_t id, const char **b, size_t *len)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    *b = letters + id % 26;
    *len = 1;
    return 0;
}

static void stops_and_streaming(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama_tied") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    int32_t prompt[] = {1, 17, 42, 99, 7};
    ws_gen_opts o;
    ws_gen_opts_init(&o);
    o.max_new_tokens = 12;
    int32_t none = -1;
    o.stop_ids = &none;
    o.n_stop_ids = 1;
    ws_gen_result full;
    CHECK_EQ_INT(ws_generate(m, NULL, prompt, 5, &o, &full, &err), 0);
    CHECK_EQ_INT(full.stop, WS_GEN_LENGTH);
    /* stop at the 4th token as a stop id: it is included, nothing after */
    int32_t stop_id = full.tokens[3];
    int first = 0;
    while (full.tokens[first] != stop_id)
        first++;
    o.stop_ids = &stop_id;
    ws_gen_result res;
    CHECK_EQ_INT(ws_generate(m, NULL, prompt, 5, &o, &res, &err), 0);
    CHECK_EQ_INT(res.stop, WS_GEN_EOS);
    CHECK_EQ_INT(res.n, first + 1);
    ws_gen_result_free(&res);
    /* stop string made of tokens 2..3 */
    char stop[3] = {(char)('a' + full.tokens[2] % 26), (char)('a' + full.tokens[3] % 26), 0};
    const char *stops[] = {stop};
    o.stop_ids = &none;
    o.stop_strings = stops;
    o.n_stop_strings = 1;
    o.token_bytes = token_bytes;
    CHECK_EQ_INT(ws_generate(m, NULL, prompt, 5, &o, &res, &err), 0);
    CHECK_EQ_INT(res.stop, WS_GEN_STOP_STRING);
    CHECK(res.n <= 4 && res.n >= 2);
    ws_gen_result_free(&res);
    o.n_stop_strings = 0;
    /* streaming: every token reported; a nonzero return stops */
    stream_ctx sc = {0, 0};
    o.on_token = on_token;
    o.on_token_ctx = &sc;
    CHECK_EQ_INT(ws_generate(m, NULL, prompt, 5, &o, &res, &err), 0);
    CHECK_EQ_INT(sc.calls, 12);
    ws_gen_result_free(&res);
    sc = (stream_ctx){0, 3};
    CHECK_EQ_INT(ws_generate(m, NULL, prompt, 5, &o, &res, &err), 0);
    CHECK_EQ_INT(res.n, 3);
    CHECK_EQ_INT(res.stop, WS_GEN_CALLBACK);
    ws_gen_result_free(&res);
    /* errors */
    sc = (stream_ctx){0, 0};
    CHECK_EQ_INT(ws_generate(m, NULL, prompt, 0, &o, &res, &err), WS_EINVAL);
    int32_t bad[] = {1, 100000};
    CHECK_EQ_INT(ws_generate(m, NULL, bad, 2, &o, &res, &err), WS_EINVAL);
    CHECK_EQ_INT(sc.calls, 0);
    ws_gen_result_free(&full);
    ws_model_free(m);
    nn_ref_close(&r);
}

WS_TEST_MAIN(T(greedy_matches_transformers), T(sampling_transforms), T(top_k_large_vocab),
             T(stops_and_streaming))
