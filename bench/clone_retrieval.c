/* Retrieval benchmark for the clone: N example contexts (default 50,000), each three real turns
 * of samples/group_chat.txt drawn at random (so the text is chat-like and the contexts are
 * distinct), embedded with the hashed n-gram embedder (and MiniLM for the query cost when
 * installed); then per-query search latency p50/p95 of the exact scan and of HNSW, HNSW
 * recall@10 against the exact answer, build times and index size.
 * Usage: bench_clone_retrieval [N] [EXPORT] [QUERIES] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/progress.h"
#include "style/embed.h"
#include "style/vindex.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void context_of(char **turns, size_t n, ws_buf *out)
{
    ws_buf_reset(out);
    size_t at = rnd() % (n - 3);
    for (int k = 0; k < 3; k++) {
        if (k)
            ws_buf_putc(out, '\n');
        ws_buf_puts(out, turns[(at + k + (rnd() % 5 == 0 ? rnd() % 50 : 0)) % n]);
    }
}

int main(int argc, char **argv)
{
    size_t N = argc > 1 ? strtoull(argv[1], NULL, 10) : 50000;
    const char *path = argc > 2 ? argv[2] : "samples/group_chat.txt";
    size_t Q = argc > 3 ? strtoull(argv[3], NULL, 10) : 500;
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    if (ws_chat_open_file(path, NULL, &r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char **turns = NULL;
    size_t nt = 0;
    ws_message m;
    while (ws_chat_next(r, &m, &err) == 1)
        if (m.kind == WS_MSG_TEXT) {
            turns = ws_xrealloc(turns, (nt + 1) * sizeof *turns);
            turns[nt++] = ws_xstrdup(m.text);
        }
    ws_chat_close(r);
    ws_embedder *e = ws_embed_hash_new(512);
    ws_vindex *ix = ws_vindex_new(e->dim, e->name);
    float *v = ws_xmalloc(e->dim * sizeof *v);
    ws_buf b = WS_BUF_INIT;
    double t0 = ws_now_s();
    for (size_t i = 0; i < N; i++) {
        context_of(turns, nt, &b);
        ws_embedder_embed(e, b.data, b.len, v, NULL);
        ws_vindex_add(ix, (uint32_t)i, v);
    }
    double t_embed = ws_now_s() - t0;
    t0 = ws_now_s();
    ws_hnsw_params hp = {.M = 16, .ef_construction = 100, .seed = 1};
    ws_vindex *hx = ws_vindex_new(e->dim, e->name);
    for (size_t i = 0; i < N; i++)
        ws_vindex_add(hx, ws_vindex_id(ix, i), ws_vindex_vector(ix, i));
    ws_vindex_build_hnsw(hx, &hp);
    double t_hnsw = ws_now_s() - t0;

    float *qs = ws_xmalloc(Q * e->dim * sizeof *qs);
    double *te = ws_xmalloc(Q * sizeof *te), *th = ws_xmalloc(Q * sizeof *th),
           *tq = ws_xmalloc(Q * sizeof *tq);
    for (size_t q = 0; q < Q; q++) {
        context_of(turns, nt, &b);
        double s = ws_now_s();
        ws_embedder_embed(e, b.data, b.len, qs + q * e->dim, NULL);
        tq[q] = ws_now_s() - s;
    }
    ws_vhit ex[10], ap[10];
    size_t hit = 0;
    for (size_t q = 0; q < Q; q++) {
        double s = ws_now_s();
        size_t ne = ws_vindex_search_exact(ix, qs + q * e->dim, 10, ex);
        te[q] = ws_now_s() - s;
        s = ws_now_s();
        size_t na = ws_vindex_search(hx, qs + q * e->dim, 10, 64, ap);
        th[q] = ws_now_s() - s;
        for (size_t i = 0; i < ne; i++)
            for (size_t j = 0; j < na; j++)
                if (ex[i].id == ap[j].id) {
                    hit++;
                    break;
                }
    }
    qsort(te, Q, sizeof *te, cmp_d);
    qsort(th, Q, sizeof *th, cmp_d);
    qsort(tq, Q, sizeof *tq, cmp_d);
    char tmp[] = "/tmp/bench_clone_ix_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0)
        close(fd);
    ws_vindex_save(hx, tmp, NULL);
    FILE *f = fopen(tmp, "rb");
    long size = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    remove(tmp);
    printf("retrieval over %zu contexts (%s, dim %zu), %zu queries, 1 thread\n", N, e->name, e->dim, Q);
    printf("  embed+add all: %.2f s (%.1f us per context); HNSW build (M 16, efC 100): %.2f s\n", t_embed,
           t_embed / (double)N * 1e6, t_hnsw);
    printf("  query embedding      p50 %8.1f us  p95 %8.1f us\n", tq[Q / 2] * 1e6, tq[Q * 95 / 100] * 1e6);
    printf("  exact scan           p50 %8.1f us  p95 %8.1f us\n", te[Q / 2] * 1e6, te[Q * 95 / 100] * 1e6);
    printf("  HNSW (ef 64)         p50 %8.1f us  p95 %8.1f us  (%.1fx faster at p50)\n", th[Q / 2] * 1e6,
           th[Q * 95 / 100] * 1e6, te[Q / 2] / th[Q / 2]);
    printf("  HNSW recall@10 vs exact: %.3f; index file with graph: %.1f MB\n",
           (double)hit / (double)(Q * 10), (double)size / 1048576.0);
    ws_embedder *mini = NULL;
    if (ws_embed_minilm_new(ws_embed_minilm_default_dir(), &mini, NULL) == 0) {
        float *mv = ws_xmalloc(mini->dim * sizeof *mv);
        double *tm = ws_xmalloc(50 * sizeof *tm);
        for (int q = 0; q < 50; q++) {
            context_of(turns, nt, &b);
            double s = ws_now_s();
            ws_embedder_embed(mini, b.data, b.len, mv, NULL);
            tm[q] = ws_now_s() - s;
        }
        qsort(tm, 50, sizeof *tm, cmp_d);
        printf("  MiniLM query embedding p50 %.1f ms  p95 %.1f ms (all-MiniLM-L6-v2, our BERT)\n",
               tm[25] * 1e3, tm[47] * 1e3);
        free(mv);
        free(tm);
        ws_embedder_free(mini);
    } else {
        printf("  MiniLM not installed (tools/setup-minilm.sh): query embedding cost not measured\n");
    }
    for (size_t i = 0; i < nt; i++)
        free(turns[i]);
    free(turns);
    free(qs);
    free(te);
    free(th);
    free(tq);
    free(v);
    ws_buf_free(&b);
    ws_vindex_free(ix);
    ws_vindex_free(hx);
    ws_embedder_free(e);
    return 0;
}
