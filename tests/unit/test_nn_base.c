/* The real pretrained base, SmolLM2-135M-Instruct Q4_1 (installed by tools/setup-base-model.sh;
 * missing, the tests fail), against reference data made with transformers and llama.cpp
 * (tests/reference/gguf/, tools/reference/make_gguf_ref.py):
 *   - the tokenizer built from the GGUF metadata gives the ids of SmolLM2's own tokenizer (the
 *     tokenizers library with its Digits + ByteLevel pre-tokenizer; transformers' GGUF loader drops
 *     the Digits step, and its ids, kept as "ids_hf_gguf", differ on a few numerals) on 300 texts,
 *     the ill-formed UTF-8 ones from their raw bytes ("hex") too;
 *   - the chat template renders and encodes as transformers' apply_chat_template;
 *   - the dequantized f32 path gives transformers' logits within 1e-3;
 *   - the quantized path (the one that serves) follows llama.cpp's greedy tokens. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "nn/base.h"
#include "nn/chat_template.h"
#include "nn/model.h"
#include "nn/safetensors.h"
#include "nn/tokenizer.h"

#ifndef REF
#define REF "tests/reference/gguf"
#endif

static ws_base *shared_base;

static ws_base *base(void)
{
    if (!shared_base) {
        ws_error err = {0};
        int rc = ws_base_load(WS_BASE_DEFAULT_PATH, 0, &shared_base, &err);
        if (rc)
            fprintf(stderr, "%s (run tools/setup-base-model.sh)\n", err.msg);
        CHECK_EQ_INT(rc, 0);
    }
    return shared_base;
}

/* Calls fn on every JSON line of path; returns the number of lines. */
static size_t each_line(const char *path, void (*fn)(const ws_json *, void *), void *arg)
{
    char *data = NULL;
    size_t len = 0, n = 0;
    ws_error err = {0};
    CHECK_EQ_INT(ws_file_read(path, 64u << 20, &data, &len, &err), 0);
    for (char *line = data, *nl; line && line < data + len; line = nl ? nl + 1 : NULL) {
        nl = memchr(line, '\n', (size_t)(data + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(data + len - line);
        ws_json_doc *doc = NULL;
        if (ll == 0)
            continue;
        CHECK_EQ_INT(ws_json_parse(line, ll, &doc, &err), 0);
        if (doc)
            fn(ws_json_root(doc), arg), n++;
        ws_json_doc_free(doc);
    }
    free(data);
    return n;
}

static bool ids_equal(const ws_json *want, const int32_t *ids, size_t n)
{
    if (!want || want->len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((int32_t)want->items[i].number != ids[i])
            return false;
    return true;
}

typedef struct {
    size_t bad;
} tally;

static void check_tokenize(const ws_json *row, void *arg)
{
    tally *t = arg;
    const ws_json *tj = ws_json_get(row, "text"); /* may hold NUL bytes: use its length */
    const char *text = tj ? tj->str : NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    ws_error err = {0};
    if (!text || ws_tokenizer_encode(base()->tok, text, tj->len, false, &ids, &n, &err) ||
        !ids_equal(ws_json_get(row, "ids"), ids, n)) {
        if (t->bad++ < 5)
            fprintf(stderr, "tokenizer differs on: %s\n", text ? text : "?");
    }
    free(ids);
    const char *hex = ws_json_get_str(row, "hex"); /* the raw bytes of an ill-formed text */
    if (hex) {
        size_t hl = strlen(hex) / 2;
        char *raw = malloc(hl + 1);
        for (size_t i = 0; i < hl; i++) {
            unsigned v = 0;
            sscanf(hex + 2 * i, "%2x", &v);
            raw[i] = (char)v;
        }
        ids = NULL;
        if (ws_tokenizer_encode(base()->tok, raw, hl, false, &ids, &n, &err) ||
            !ids_equal(ws_json_get(row, "ids"), ids, n)) {
            if (t->bad++ < 5)
                fprintf(stderr, "tokenizer differs on the raw bytes %s\n", hex);
        }
        free(ids);
        free(raw);
    }
}

static void test_tokenizer_matches_transformers(void)
{
    if (!base())
        return;
    tally t = {0};
    size_t n = each_line(REF "/tokenizer.jsonl", check_tokenize, &t);
    CHECK(n >= 200);
    CHECK_EQ_INT(t.bad, 0);
}

static void check_template(const ws_json *row, void *arg)
{
    tally *t = arg;
    const ws_json *msgs = ws_json_get(row, "messages");
    bool gen = false;
    ws_json_get_bool(row, "add_generation_prompt", &gen);
    ws_chat_msg m[32];
    size_t n = 0;
    for (size_t i = 0; msgs && i < msgs->len && n < 32; i++, n++) {
        m[n].role = ws_json_get_str(&msgs->items[i], "role");
        m[n].content = ws_json_get_str(&msgs->items[i], "content");
    }
    ws_buf text = WS_BUF_INIT;
    ws_chat_template_render(&base()->tpl, m, n, gen, &text);
    int32_t *ids = NULL;
    size_t nid = 0;
    ws_error err = {0};
    bool ok = text.data && !strcmp(text.data, ws_json_get_str(row, "text")) &&
              !ws_base_encode_chat(base(), m, n, gen, &ids, &nid, &err) &&
              ids_equal(ws_json_get(row, "ids"), ids, nid);
    if (!ok && t->bad++ < 3)
        fprintf(stderr, "template differs:\n%s\n--- expected:\n%s\n", text.data,
                ws_json_get_str(row, "text"));
    free(ids);
    ws_buf_free(&text);
}

static void test_chat_template_matches_transformers(void)
{
    if (!base())
        return;
    CHECK(base()->has_template && base()->tpl.kind == WS_TPL_CHATML);
    tally t = {0};
    CHECK(each_line(REF "/chat_template.jsonl", check_template, &t) >= 4);
    CHECK_EQ_INT(t.bad, 0);
}

/* The f32 copy of the model (every tensor dequantized, as transformers loads a GGUF). */
static void test_f32_logits_match_transformers(void)
{
    ws_model *m = NULL;
    ws_safetensors *st = NULL;
    ws_error err = {0};
    char *meta = NULL;
    size_t mlen = 0;
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_model_load(WS_BASE_DEFAULT_PATH, WS_LOAD_COPY, &m, &err), 0);
    CHECK_EQ_INT(ws_st_open(REF "/logits_f32.safetensors", &st, &err), 0);
    CHECK_EQ_INT(ws_file_read(REF "/logits_f32.json", 1 << 20, &meta, &mlen, &err), 0);
    CHECK_EQ_INT(ws_json_parse(meta, mlen, &doc, &err), 0);
    if (!m || !st || !doc)
        goto out;
    const ws_json *prompts = ws_json_get(ws_json_root(doc), "prompts");
    int V = m->cfg.vocab_size;
    double worst = 0;
    for (size_t p = 0; prompts && p < prompts->len; p++) {
        char name[64];
        snprintf(name, sizeof name, "prompt%zu_ids", p);
        const ws_st_tensor *ti = ws_st_find(st, name);
        snprintf(name, sizeof name, "prompt%zu_logits", p);
        const ws_st_tensor *tl = ws_st_find(st, name);
        CHECK(ti && tl);
        if (!ti || !tl)
            continue;
        int n = (int)ti->numel;
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        memcpy(ids, ti->data, (size_t)n * sizeof *ids);
        float *ref = malloc(tl->numel * sizeof *ref), *all = malloc((size_t)n * V * sizeof *all);
        ws_st_to_f32(tl, ref);
        ws_kv_cache *kc = ws_kv_cache_new(m, n + 1);
        CHECK_EQ_INT(ws_model_infer(m, NULL, kc, ids, n, NULL, all, &err), 0);
        const ws_json *pos = ws_json_get(&prompts->items[p], "positions");
        for (size_t k = 0; pos && k < pos->len; k++) {
            int at = (int)pos->items[k].number;
            for (int v = 0; v < V; v++)
                worst = fmax(worst, fabs((double)all[(size_t)at * V + v] - ref[k * (size_t)V + v]));
        }
        ws_kv_cache_free(kc);
        free(ids), free(ref), free(all);
    }
    printf("     largest logit difference to transformers (f32 path): %.2e\n", worst);
    CHECK(worst <= 1e-3);
out:
    ws_json_doc_free(doc);
    free(meta);
    ws_st_close(st);
    ws_model_free(m);
}

#if defined(__SANITIZE_ADDRESS__)
#define GREEDY_PROMPTS 2 /* -O0 with sanitizers: a taste of the same path */
#else
#define GREEDY_PROMPTS 40
#endif

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

typedef struct {
    int n_run, n_same, agree;
    double worst;
} greedy_stats;

/* The reference's prompts through m, fed llama.cpp's 32 tokens: our top-1 against its token and
 * our logits against its top-16 at each step; a sequence whose every step agrees is one greedy
 * decoding would reproduce. */
static void greedy_vs_llamacpp(const ws_model *m, const ws_json *prompts, const int32_t *top_ids,
                               const float *top_lg, greedy_stats *gs)
{
    int V = m->cfg.vocab_size, steps = 32;
    ws_error err = {0};
    float *logits = malloc((size_t)V * sizeof *logits);
    memset(gs, 0, sizeof *gs);
    for (size_t p = 0; p < prompts->len && (int)p < GREEDY_PROMPTS; p++, gs->n_run++) {
        const ws_json *pj = &prompts->items[p], *pid = ws_json_get(pj, "prompt_ids"),
                      *lt = ws_json_get(pj, "llamacpp_tokens");
        int np = (int)pid->len;
        int32_t *ids = malloc((size_t)np * sizeof *ids);
        for (int i = 0; i < np; i++)
            ids[i] = (int32_t)pid->items[i].number;
        /* teacher-forced on llama.cpp's tokens (its top-16 logits at each step); while our top-1
         * is its token this is also the free-running greedy run, so identical = never parted */
        ws_kv_cache *kc = ws_kv_cache_new(m, np + steps + 1);
        CHECK_EQ_INT(ws_model_infer(m, NULL, kc, ids, np, logits, NULL, &err), 0);
        bool same = true;
        for (int s = 0; s < steps; s++) {
            const int32_t *tid = top_ids + ((size_t)p * steps + s) * 16;
            const float *tlg = top_lg + ((size_t)p * steps + s) * 16;
            for (int k = 0; k < 16; k++)
                gs->worst = fmax(gs->worst, fabs((double)logits[tid[k]] - tlg[k]));
            int32_t tok = (int32_t)lt->items[s].number;
            bool hit = argmax(logits, V) == tok;
            gs->agree += hit;
            same &= hit;
            CHECK_EQ_INT(ws_model_infer(m, NULL, kc, &tok, 1, logits, NULL, &err), 0);
        }
        gs->n_same += same;
        ws_kv_cache_free(kc);
        free(ids);
    }
    free(logits);
}

/* The quantized path against llama.cpp on the same file (the reference's 40 chat prompts, 32
 * greedy steps each), as it runs by default and with llama.cpp's sum order
 * (ws_model_set_llamacpp_order). By default, fed llama.cpp's own tokens, our top-1 must agree
 * with its token at 96% of the steps or more and our logits of its top-16 tokens stay within 2.0
 * of its own; free-running, at least 16 of the 32-token sequences must come out identical
 * (measured 97.6%, 1.57, 19: the rounding is llama.cpp's, the order of the float sums is not, and
 * a 1-ulp difference grows through the 8-bit roundings; docs/nn.md). In llama.cpp's order the
 * computation is its own bit for bit up to the tied Q8_0 head: 38 of 40 identical or more
 * (issue 8's goal), top-1 at 99.5% or more, logits within 1e-3. */
static void test_greedy_matches_llamacpp(void)
{
    char *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    ws_safetensors *st = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_file_read(REF "/llamacpp_greedy.json", 16u << 20, &data, &len, &err), 0);
    CHECK_EQ_INT(ws_json_parse(data, len, &doc, &err), 0);
    CHECK_EQ_INT(ws_st_open(REF "/llamacpp_top16.safetensors", &st, &err), 0);
    const ws_st_tensor *ti = st ? ws_st_find(st, "top16_ids") : NULL,
                       *tl = st ? ws_st_find(st, "top16_logits") : NULL;
    const ws_json *prompts = doc ? ws_json_get(ws_json_root(doc), "prompts") : NULL;
    if (!base() || !prompts || !ti || !tl) {
        CHECK(0);
        goto out;
    }
    ws_model *m = (ws_model *)base()->model;                /* the order is switched back before the end */
    int32_t *top_ids = malloc(ti->numel * sizeof *top_ids); /* copies: the data may be unaligned */
    float *top_lg = malloc(tl->numel * sizeof *top_lg);
    memcpy(top_ids, ti->data, ti->numel * sizeof *top_ids);
    ws_st_to_f32(tl, top_lg);
    greedy_stats d, g;
    greedy_vs_llamacpp(m, prompts, top_ids, top_lg, &d);
    ws_model_set_llamacpp_order(m, true);
    CHECK(m->llamacpp_order);
    greedy_vs_llamacpp(m, prompts, top_ids, top_lg, &g);
    ws_model_set_llamacpp_order(m, false);
    double tf = (double)d.agree / (double)(d.n_run * 32), tg = (double)g.agree / (double)(g.n_run * 32);
    printf(
        "     on llama.cpp's tokens our top-1 agrees at %.1f%% of %d steps; largest difference to its top-16 "
        "logits %.3f; free-running, %d of %d 32-token sequences identical\n",
        100 * tf, d.n_run * 32, d.worst, d.n_same, d.n_run);
    printf("     in llama.cpp's sum order: %.1f%%, largest difference %.2g, %d of %d identical\n", 100 * tg,
           g.worst, g.n_same, g.n_run);
    CHECK(tf >= (d.n_run < 40 ? 0.9 : 0.96)); /* a few prompts (sanitizer build): a coarser bound */
    CHECK(d.worst < 2.0);
    CHECK(d.n_run < 40 || d.n_same >= 16);
    CHECK(tg >= 0.995);
    CHECK(g.worst < 1e-3);
    CHECK(g.n_run < 40 || g.n_same >= 38);
    free(top_ids);
    free(top_lg);
out:
    ws_st_close(st);
    ws_json_doc_free(doc);
    free(data);
}

static void cleanup(void)
{
    ws_base_free(shared_base);
    shared_base = NULL;
}

WS_TEST_MAIN(T(test_tokenizer_matches_transformers), T(test_chat_template_matches_transformers),
             T(test_f32_logits_match_transformers), T(test_greedy_matches_llamacpp), T(cleanup))
