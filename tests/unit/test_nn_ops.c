/* Finite-difference gradient checks of every op on its own: the analytic backward of
 * L = sum(forward(x) * R) (R random) against central differences, for each input and weight. */
#include "harness.h"

#include <stdbool.h>

#include "nn/config.h"
#include "nn/ops.h"
#include "nn/parallel.h"
#include "nn/vexp.h"

static uint64_t rs = 12345;
static float frand(void)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rs >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float scale)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * frand();
    return p;
}
static float *zeros(size_t n)
{
    return calloc(n, sizeof(float));
}

typedef double (*loss_fn)(void *ctx);

/* Checks analytic[i] against (L(x+h) - L(x-h)) / 2h for up to 40 entries of x. */
static void fd_check(const char *what, float *x, size_t n, const float *analytic, loss_fn L, void *ctx)
{
    double md = 0, ma = 0;
    size_t stride = n > 40 ? n / 40 : 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        const float h = 1e-2f;
        x[i] = keep + h;
        double lp = L(ctx);
        x[i] = keep - h;
        double lm = L(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * h), d = fabs(fd - analytic[i]);
        md = d > md ? d : md;
        ma = fabs(fd) > ma ? fabs(fd) : ma;
    }
    bool ok = md <= 2e-3 + 1e-2 * ma;
    printf("  %-34s max|analytic - finite difference| %.3g (max %.3g)%s\n", what, md, ma,
           ok ? "" : "  <-- FAIL");
    CHECK(ok);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- matmul ---- */
typedef struct {
    float *out, *inp, *w, *b, *R;
    int N, IC, OC;
} mm_ctx;
static double mm_loss(void *p)
{
    mm_ctx *c = p;
    ws_matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->IC, c->OC, 0.0f);
    return dot(c->out, c->R, (size_t)c->N * c->OC);
}
static void matmul_grad(void)
{
    mm_ctx c = {.N = 5, .IC = 7, .OC = 6};
    c.out = zeros(30);
    c.inp = rnd(35, 1);
    c.w = rnd(42, 1);
    c.b = rnd(6, 1);
    c.R = rnd(30, 1);
    float *di = zeros(35), *dw = zeros(42), *db = zeros(6);
    mm_loss(&c);
    ws_matmul_backward(di, dw, db, c.R, c.inp, c.w, c.N, c.IC, c.OC);
    fd_check("matmul d input", c.inp, 35, di, mm_loss, &c);
    fd_check("matmul d weight", c.w, 42, dw, mm_loss, &c);
    fd_check("matmul d bias", c.b, 6, db, mm_loss, &c);
    /* N = 1 goes through gemv */
    c.N = 1;
    float *di1 = zeros(7), *dw1 = zeros(42), *db1 = zeros(6);
    mm_loss(&c);
    ws_matmul_backward(di1, dw1, db1, c.R, c.inp, c.w, 1, c.IC, c.OC);
    fd_check("matmul (N=1) d input", c.inp, 7, di1, mm_loss, &c);
    free(c.out);
    free(c.inp);
    free(c.w);
    free(c.b);
    free(c.R);
    free(di);
    free(dw);
    free(db);
    free(di1);
    free(dw1);
    free(db1);
}

/* ---- rmsnorm ---- */
typedef struct {
    float *out, *rstd, *inp, *w, *R;
    int N, C;
} rn_ctx;
static double rn_loss(void *p)
{
    rn_ctx *c = p;
    ws_rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void rmsnorm_grad(void)
{
    rn_ctx c = {.N = 4, .C = 9};
    c.out = zeros(36);
    c.rstd = zeros(4);
    c.inp = rnd(36, 2);
    c.w = rnd(9, 1);
    c.R = rnd(36, 1);
    float *di = zeros(36), *dw = zeros(9);
    rn_loss(&c);
    ws_rmsnorm_backward(di, dw, c.R, c.inp, c.w, c.rstd, c.N, c.C);
    fd_check("rmsnorm d input", c.inp, 36, di, rn_loss, &c);
    fd_check("rmsnorm d weight", c.w, 9, dw, rn_loss, &c);
    free(c.out);
    free(c.rstd);
    free(c.inp);
    free(c.w);
    free(c.R);
    free(di);
    free(dw);
}

/* ---- rope ---- */
typedef struct {
    float *x, *tmp, *R, *cs, *sn;
    int N, T, H, D;
} rope_ctx;
static double rope_loss(void *p)
{
    rope_ctx *c = p;
    size_t n = (size_t)c->N * c->H * c->D;
    memcpy(c->tmp, c->x, n * sizeof(float));
    ws_rope_forward(c->tmp, NULL, c->N, c->T, c->H, c->D, c->cs, c->sn);
    return dot(c->tmp, c->R, n);
}
static void rope_grad(void)
{
    rope_ctx c = {.N = 6, .T = 3, .H = 2, .D = 8};
    size_t n = 6 * 2 * 8;
    c.cs = zeros(16 * 4);
    c.sn = zeros(16 * 4);
    ws_rope_tables(c.cs, c.sn, 16, 8, 10000.0f, WS_ROPE_LLAMA3, 8.0f, 1.0f, 4.0f, 8);
    c.x = rnd(n, 1);
    c.tmp = zeros(n);
    c.R = rnd(n, 1);
    float *dx = malloc(n * sizeof(float));
    memcpy(dx, c.R, n * sizeof(float));
    ws_rope_backward(dx, NULL, c.N, c.T, c.H, c.D, c.cs, c.sn);
    fd_check("rope d input", c.x, n, dx, rope_loss, &c);
    free(c.cs);
    free(c.sn);
    free(c.x);
    free(c.tmp);
    free(c.R);
    free(dx);
}

/* ---- swiglu ---- */
typedef struct {
    float *h, *g, *u, *R;
    size_t n;
} sw_ctx;
static double sw_loss(void *p)
{
    sw_ctx *c = p;
    ws_swiglu_forward(c->h, c->g, c->u, c->n);
    return dot(c->h, c->R, c->n);
}
static void swiglu_grad(void)
{
    sw_ctx c = {.n = 50};
    c.h = zeros(50);
    c.g = rnd(50, 3);
    c.u = rnd(50, 2);
    c.R = rnd(50, 1);
    float *dg = zeros(50), *du = zeros(50);
    ws_swiglu_backward(dg, du, c.R, c.g, c.u, c.n);
    fd_check("swiglu d gate", c.g, 50, dg, sw_loss, &c);
    fd_check("swiglu d up", c.u, 50, du, sw_loss, &c);
    free(c.h);
    free(c.g);
    free(c.u);
    free(c.R);
    free(dg);
    free(du);
}

/* ---- attention ---- */
typedef struct {
    float *out, *att, *q, *k, *v, *R;
    int B, T, H, KV, D;
} at_ctx;
static double at_loss(void *p)
{
    at_ctx *c = p;
    ws_attention_forward(c->out, c->att, c->q, c->k, c->v, NULL, c->B, c->T, c->H, c->KV, c->D);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->H * c->D);
}
static void attention_grad(void)
{
    at_ctx c = {.B = 2, .T = 5, .H = 4, .KV = 2, .D = 4};
    size_t nq = 2 * 5 * 4 * 4, nk = 2 * 5 * 2 * 4;
    c.out = zeros(nq);
    c.att = zeros(2 * 4 * 5 * 5);
    c.q = rnd(nq, 1);
    c.k = rnd(nk, 1);
    c.v = rnd(nk, 1);
    c.R = rnd(nq, 1);
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    at_loss(&c);
    ws_attention_backward(dq, dk, dv, c.R, c.att, c.q, c.k, c.v, c.B, c.T, c.H, c.KV, c.D);
    fd_check("attention (GQA, causal) d q", c.q, nq, dq, at_loss, &c);
    fd_check("attention (GQA, causal) d k", c.k, nk, dk, at_loss, &c);
    fd_check("attention (GQA, causal) d v", c.v, nk, dv, at_loss, &c);
    /* causality: the first position attends only to itself */
    at_loss(&c);
    CHECK_NEAR(c.att[0], 1.0, 1e-6);
    CHECK(c.att[1] == 0.0f);
    free(c.out);
    free(c.att);
    free(c.q);
    free(c.k);
    free(c.v);
    free(c.R);
    free(dq);
    free(dk);
    free(dv);
}

/* ---- embedding ---- */
typedef struct {
    float *out, *table, *R;
    int32_t *ids;
    int N, C;
} em_ctx;
static double em_loss(void *p)
{
    em_ctx *c = p;
    ws_embedding_forward(c->out, c->ids, c->table, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void embedding_grad(void)
{
    int32_t ids[5] = {3, 0, 3, 7, 1};
    em_ctx c = {.N = 5, .C = 4, .ids = ids};
    c.out = zeros(20);
    c.table = rnd(32, 1);
    c.R = rnd(20, 1);
    float *dt = zeros(32);
    ws_embedding_backward(dt, c.R, ids, c.N, c.C);
    fd_check("embedding d table (repeated ids)", c.table, 32, dt, em_loss, &c);
    free(c.out);
    free(c.table);
    free(c.R);
    free(dt);
}

/* ---- cross-entropy with a loss mask ---- */
typedef struct {
    float *logits;
    int32_t *tg;
    int N, V;
} ce_ctx;
static double ce_loss(void *p)
{
    ce_ctx *c = p;
    int cnt;
    double s = ws_crossentropy_forward(c->logits, c->tg, c->N, c->V, &cnt, NULL);
    return s / cnt;
}
static const float ce_w[4] = {0.5f, 9.0f, -0.25f, 1.5f};
static double ce_loss_weighted(void *p)
{
    ce_ctx *c = p;
    double s = 0;
    for (int r = 0; r < c->N; r++) {
        int cnt;
        s += ce_w[r] * ws_crossentropy_forward(c->logits + r * c->V, c->tg + r, 1, c->V, &cnt, NULL);
    }
    return s;
}
static void crossentropy_grad(void)
{
    int32_t tg[4] = {2, -100, 0, 5};
    ce_ctx c = {.tg = tg, .N = 4, .V = 6};
    c.logits = rnd(24, 3);
    float *d = malloc(24 * sizeof(float));
    memcpy(d, c.logits, 24 * sizeof(float));
    int cnt;
    ws_crossentropy_forward(c.logits, tg, 4, 6, &cnt, NULL);
    CHECK_EQ_INT(cnt, 3);
    ws_crossentropy_backward(d, tg, 4, 6, 1.0f / cnt, NULL, NULL);
    fd_check("cross-entropy (masked) d logits", c.logits, 24, d, ce_loss, &c);
    for (int i = 6; i < 12; i++)
        CHECK(d[i] == 0.0f); /* the ignored row */
    /* weighted rows, one of them negative: the gradient of sum_r w[r] * loss_r */
    memcpy(d, c.logits, 24 * sizeof(float));
    ws_crossentropy_backward(d, tg, 4, 6, 1.0f, NULL, ce_w);
    fd_check("cross-entropy (weighted rows) d logits", c.logits, 24, d, ce_loss_weighted, &c);
    for (int i = 6; i < 12; i++)
        CHECK(d[i] == 0.0f); /* the ignored row, whatever its weight */
    free(c.logits);
    free(d);
}

/* ---- the vectorised exp, long cross-entropy rows and multi-block attention against doubles ---- */
static void vexp_accuracy(void)
{
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
        double e = exp((double)x), d = fabs(ws_vexpf(x) - e) / e;
        worst = d > worst ? d : worst;
    }
    printf("  ws_vexpf max relative error on [-87, 88]: %.3g\n", worst);
    CHECK(worst < 2.4e-7); /* about 2 ulp */
    CHECK(ws_vexpf(-100.0f) == 0.0f && ws_vexpf(0.0f) == 1.0f);
}

static void crossentropy_long_rows(void)
{
    int N = 3, V = 1500; /* rows over several of the one-pass log-sum-exp blocks */
    float *l = rnd((size_t)N * V, 6), *d = malloc((size_t)N * V * sizeof(float)), lse[3];
    int32_t tg[3] = {7, 1499, 700};
    memcpy(d, l, (size_t)N * V * sizeof(float));
    int cnt;
    double got = ws_crossentropy_forward(l, tg, N, V, &cnt, lse), want = 0, md = 0;
    ws_crossentropy_backward(d, tg, N, V, 0.5f, lse, NULL);
    for (int r = 0; r < N; r++) {
        double mx = -1e30, s = 0;
        for (int i = 0; i < V; i++)
            mx = fmax(mx, l[r * V + i]);
        for (int i = 0; i < V; i++)
            s += exp(l[r * V + i] - mx);
        want += log(s) + mx - l[r * V + tg[r]];
        for (int i = 0; i < V; i++) {
            double p = exp(l[r * V + i] - mx) / s * 0.5 - (i == tg[r] ? 0.5 : 0);
            md = fmax(md, fabs(p - d[r * V + i]));
        }
    }
    printf("  cross-entropy V=%d: loss %.7f vs %.7f in double, max|dlogit diff| %.3g\n", V, got, want, md);
    CHECK(cnt == 3 && fabs(got - want) < 1e-5 && md < 1e-7);
    free(l);
    free(d);
}

static void attention_blocks_match_naive(void)
{
    int B = 2, T = 150, H = 4, KV = 2, D = 16, grp = H / KV; /* T over three causal blocks */
    size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KV * D;
    float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *dout = rnd(nq, 1), *out = zeros(nq);
    float *att = zeros((size_t)B * H * T * T), *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    ws_attention_forward(out, att, q, k, v, NULL, B, T, H, KV, D);
    ws_attention_backward(dq, dk, dv, dout, att, q, k, v, B, T, H, KV, D);
    double *rq = calloc(nq, sizeof(double)), *rk = calloc(nk, sizeof(double)),
           *rv = calloc(nk, sizeof(double));
    double *p = malloc((size_t)T * sizeof(double)), *dp = malloc((size_t)T * sizeof(double)), mo = 0, mg = 0;
    double sc = 1.0 / sqrt((double)D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *qi = q + ((size_t)(b * T + i) * H + h) * D;
                double mx = -1e30, s = 0, dot = 0;
                for (int j = 0; j <= i; j++) {
                    const float *kj = k + ((size_t)(b * T + j) * KV + h / grp) * D;
                    double a = 0;
                    for (int e = 0; e < D; e++)
                        a += (double)qi[e] * kj[e];
                    p[j] = a * sc;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j <= i; j++)
                    s += (p[j] = exp(p[j] - mx));
                const float *doi = dout + ((size_t)(b * T + i) * H + h) * D;
                for (int e = 0; e < D; e++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++)
                        o += p[j] / s * v[((size_t)(b * T + j) * KV + h / grp) * D + e];
                    mo = fmax(mo, fabs(o - out[((size_t)(b * T + i) * H + h) * D + e]));
                }
                for (int j = 0; j <= i; j++) {
                    p[j] /= s;
                    const float *vj = v + ((size_t)(b * T + j) * KV + h / grp) * D;
                    dp[j] = 0;
                    for (int e = 0; e < D; e++) {
                        dp[j] += (double)doi[e] * vj[e];
                        rv[((size_t)(b * T + j) * KV + h / grp) * D + e] += p[j] * doi[e];
                    }
                    dot += p[j] * dp[j];
                }
                for (int j = 0; j <= i; j++) {
                    double ds = p[j] * (dp[j] - dot) * sc;
                    for (int e = 0; e < D; e++) {
                        rq[((size_t)(b * T + i) * H + h) * D + e] +=
                            ds * k[((size_t)(b * T + j) * KV + h / grp) * D + e];
                        rk[((size_t)(b * T + j) * KV + h / grp) * D + e] += ds * qi[e];
                    }
                }
            }
    for (size_t i = 0; i < nq; i++)
        mg = fmax(mg, fabs(rq[i] - dq[i]));
    for (size_t i = 0; i < nk; i++)
        mg = fmax(mg, fmax(fabs(rk[i] - dk[i]), fabs(rv[i] - dv[i])));
    printf("  attention T=%d (causal blocks): max|out diff| %.3g, max|grad diff| %.3g vs double\n", T, mo,
           mg);
    CHECK(mo < 1e-5 && mg < 1e-4);
    free(q);
    free(k);
    free(v);
    free(dout);
    free(out);
    free(att);
    free(dq);
    free(dk);
    free(dv);
    free(rq);
    free(rk);
    free(rv);
    free(p);
    free(dp);
}

/* The pool: every index exactly once, chunks deterministic, no lost wake-ups across thousands of
 * fork-joins and thread-count changes (a worker started just before the first job once missed it). */
typedef struct {
    int *hits;
    size_t lo[WS_MAX_THREADS], hi[WS_MAX_THREADS];
} par_ctx;
static void mark(void *p, size_t lo, size_t hi, int chunk)
{
    par_ctx *c = p;
    c->lo[chunk] = lo;
    c->hi[chunk] = hi;
    for (size_t i = lo; i < hi; i++)
        c->hits[i]++;
}
static void parallel_pool(void)
{
    int *hits = calloc(1000, sizeof(int));
    for (int round = 0; round < 1000; round++) {
        if (round % 200 == 0)
            ws_parallel_set_threads(1 + round / 200 % 4);
        size_t n = 1 + (size_t)(round * 37 % 1000);
        par_ctx c = {.hits = hits};
        memset(hits, 0, 1000 * sizeof(int));
        ws_parallel_for(n, 1, mark, &c);
        for (size_t i = 0; i < n; i++)
            if (hits[i] != 1) {
                CHECK_EQ_INT(hits[i], 1);
                break;
            }
    }
    ws_parallel_set_threads(2);
    par_ctx a = {.hits = hits}, b = {.hits = hits};
    ws_parallel_for(999, 1, mark, &a);
    ws_parallel_for(999, 1, mark, &b);
    CHECK(!memcmp(a.lo, b.lo, sizeof a.lo) && !memcmp(a.hi, b.hi, sizeof a.hi));
    CHECK_EQ_INT(ws_parallel_threads(), 2);
    free(hits);
}

WS_TEST_MAIN(T(parallel_pool), T(matmul_grad), T(rmsnorm_grad), T(rope_grad), T(swiglu_grad),
             T(attention_grad), T(embedding_grad), T(crossentropy_grad), T(vexp_accuracy),
             T(crossentropy_long_rows), T(attention_blocks_match_naive))
