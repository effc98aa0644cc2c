/* Retrieval benchmark: search latency (p50/p95) and recall@10 of HNSW against the exact scan at
 * 50k examples, for hashed n-gram embeddings of synthetic chat lines (512-d) and clustered
 * random vectors of MiniLM's size (384-d); plus embedding throughput of both embedders.
 * Usage: build/bench_retrieval [N] [QUERIES]   (defaults 50000, 500) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/progress.h"
#include "style/embed.h"
#include "style/vindex.h"

static uint64_t rs = 0x1234567;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}
static float frand(void)
{
    return (float)(rnd() % 1000000) / 1000000.0f - 0.5f;
}

static const char *generic[] = {"i",      "you",  "we",  "the",   "a",        "is",    "are",   "to",
                                "and",    "so",   "but", "lol",   "haha",     "ok",    "yeah",  "no",
                                "really", "just", "now", "today", "tomorrow", "later", "maybe", "pls",
                                "omg",    "what", "why", "when",  "where",    "how"};

/* A chat-like line: topic words (topic t has words "t<t>w<k>"-ish syllables) mixed with generic ones. */
static void line(ws_buf *b, int topic)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "be", "zo", "pi", "da", "fu", "go"};
    int words = 4 + (int)(rnd() % 9);
    for (int w = 0; w < words; w++) {
        if (w)
            ws_buf_putc(b, ' ');
        if (rnd() % 2) {
            ws_buf_puts(b, generic[rnd() % 30]);
        } else {
            int k = (int)(rnd() % 25); /* one of the topic's 25 words: 3 syllables from (topic, k) */
            ws_buf_puts(b, syl[(topic * 7 + k) % 12]);
            ws_buf_puts(b, syl[(topic * 3 + k * 5) % 12]);
            ws_buf_puts(b, syl[(topic + k * 11) % 12]);
            ws_buf_printf(b, "%d", topic % 10);
        }
    }
    if (rnd() % 4 == 0)
        ws_buf_puts(b, rnd() % 2 ? " \xf0\x9f\x98\x82" : "!!");
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_d);
    return v[(size_t)(q * (double)(n - 1))];
}

static void run(const char *label, ws_vindex *ix, const float *queries, size_t nq, size_t dim)
{
    enum { K = 10 };
    double *lat = malloc(nq * sizeof *lat);
    ws_vhit(*truth)[K] = malloc(nq * sizeof *truth);
    for (size_t q = 0; q < nq; q++) {
        double t0 = ws_now_s();
        ws_vindex_search_exact(ix, queries + q * dim, K, truth[q]);
        lat[q] = (ws_now_s() - t0) * 1e6;
    }
    double ex50 = pct(lat, nq, 0.5), ex95 = pct(lat, nq, 0.95);
    printf("%-22s exact          p50 %8.1f us  p95 %8.1f us  recall@10 1.000\n", label, ex50, ex95);
    static const size_t efs[] = {32, 64, 128, 256};
    for (size_t e = 0; e < 4; e++) {
        size_t found = 0;
        ws_vhit got[K];
        for (size_t q = 0; q < nq; q++) {
            double t0 = ws_now_s();
            size_t n = ws_vindex_search(ix, queries + q * dim, K, efs[e], got);
            lat[q] = (ws_now_s() - t0) * 1e6;
            for (size_t a = 0; a < n; a++)
                for (size_t b = 0; b < K; b++)
                    found += got[a].id == truth[q][b].id;
        }
        double p50 = pct(lat, nq, 0.5), p95 = pct(lat, nq, 0.95);
        printf("%-22s hnsw ef=%-4zu   p50 %8.1f us  p95 %8.1f us  recall@10 %.3f  speed-up (p50) %.1fx\n",
               label, efs[e], p50, p95, (double)found / (double)(nq * K), ex50 / p50);
    }
    free(lat);
    free(truth);
}

static void build_graph(const char *label, ws_vindex *ix)
{
    ws_hnsw_params hp = {.M = 16, .ef_construction = 100, .seed = 1};
    double t0 = ws_now_s();
    ws_vindex_build_hnsw(ix, &hp);
    printf("%-22s hnsw build (M=16, ef_construction=100): %.1f s for %zu vectors\n", label, ws_now_s() - t0,
           ws_vindex_count(ix));
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 50000;
    size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 500;
    if (n < 100 || nq < 10)
        return 2;
    printf("retrieval benchmark: %zu indexed examples, %zu queries, k = 10\n", n, nq);

    /* 1. hashed n-gram embeddings of synthetic chat lines */
    ws_embedder *he = ws_embed_hash_new(512);
    size_t dim = he->dim;
    ws_vindex *ix = ws_vindex_new(dim, he->name);
    float *v = malloc(dim * sizeof *v);
    ws_buf b = WS_BUF_INIT;
    double t0 = ws_now_s();
    for (size_t i = 0; i < n; i++) {
        ws_buf_reset(&b);
        line(&b, (int)(rnd() % 200));
        ws_embedder_embed(he, b.data, b.len, v, NULL);
        ws_vindex_add(ix, (uint32_t)i, v);
    }
    double th = ws_now_s() - t0;
    printf("hash-ngram-512 embedding: %.1f us per line (%zu lines)\n", th / (double)n * 1e6, n);
    float *queries = malloc(nq * dim * sizeof *queries);
    for (size_t q = 0; q < nq; q++) {
        ws_buf_reset(&b);
        line(&b, (int)(rnd() % 200));
        ws_embedder_embed(he, b.data, b.len, queries + q * dim, NULL);
    }
    build_graph("chat lines, 512-d", ix);
    run("chat lines, 512-d", ix, queries, nq, dim);
    ws_vindex_free(ix);
    free(queries);

    /* 2. clustered random vectors, 384-d */
    dim = 384;
    ix = ws_vindex_new(dim, "synthetic-384");
    enum { CENTRES = 500 };
    float *centres = malloc(CENTRES * dim * sizeof *centres);
    for (size_t i = 0; i < CENTRES * dim; i++)
        centres[i] = frand();
    v = realloc(v, dim * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const float *c = centres + (rnd() % CENTRES) * dim;
        for (size_t j = 0; j < dim; j++)
            v[j] = c[j] + 0.6f * frand();
        ws_vindex_add(ix, (uint32_t)i, v);
    }
    queries = malloc(nq * dim * sizeof *queries);
    for (size_t q = 0; q < nq; q++) {
        const float *c = centres + (rnd() % CENTRES) * dim;
        for (size_t j = 0; j < dim; j++)
            queries[q * dim + j] = c[j] + 0.6f * frand();
        ws_vec_normalize(queries + q * dim, dim);
    }
    build_graph("clustered, 384-d", ix);
    run("clustered, 384-d", ix, queries, nq, dim);
    ws_vindex_free(ix);
    free(queries);
    free(centres);

    /* 3. MiniLM embedding cost, when installed */
    ws_embedder *me = NULL;
    if (ws_embed_minilm_new(NULL, &me, NULL) == 0) {
        enum { M = 100 };
        float out[384];
        double *lat = malloc(M * sizeof *lat);
        for (int i = 0; i < M; i++) {
            ws_buf_reset(&b);
            line(&b, i);
            double t1 = ws_now_s();
            ws_embedder_embed(me, b.data, b.len, out, NULL);
            lat[i] = (ws_now_s() - t1) * 1e3;
        }
        double p50 = pct(lat, M, 0.5);
        printf("all-MiniLM-L6-v2 embedding: p50 %.2f ms, p95 %.2f ms per line (hash-ngram %.3f ms: MiniLM "
               "costs %.0fx)\n",
               p50, pct(lat, M, 0.95), th / (double)n * 1e3, p50 / (th / (double)n * 1e3));
        /* batched: 32 lines per call */
        enum { B = 32 };
        ws_buf lines[B];
        const char *texts[B];
        size_t lens[B];
        float *outs = malloc(B * 384 * sizeof *outs);
        for (int i = 0; i < B; i++) {
            lines[i] = (ws_buf)WS_BUF_INIT;
            line(&lines[i], i);
            texts[i] = lines[i].data;
            lens[i] = lines[i].len;
        }
        double t1 = ws_now_s();
        for (int r = 0; r < 4; r++)
            ws_embedder_embed_batch(me, texts, lens, B, outs, NULL);
        double per = (ws_now_s() - t1) / (4.0 * B) * 1e3;
        printf("all-MiniLM-L6-v2 embedding, batches of %d: %.2f ms per line (%.1fx the one-at-a-time p50)\n",
               B, per, p50 / per);
        for (int i = 0; i < B; i++)
            ws_buf_free(&lines[i]);
        free(outs);
        free(lat);
        ws_embedder_free(me);
    } else {
        printf("all-MiniLM-L6-v2 not installed (tools/setup-minilm.sh): embedding cost not measured\n");
    }
    ws_buf_free(&b);
    free(v);
    ws_embedder_free(he);
    return 0;
}
