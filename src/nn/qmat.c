/* Matrix products with a quantized weight matrix (quant.h: ws_qmat_*). Few input rows: each
 * is quantized once to the weights' dot type and every output is a quantized dot product, the
 * weight rows split over the engine's pool (a row is read, and where the instruction set has a
 * multi-row kernel unpacked, once for all the inputs). Many rows: tiles of W are dequantized to
 * f32 and multiplied with sgemm (training: the same arithmetic as its backward). Inference
 * (ws_qmat_infer), any number of rows: where the instruction set has a many-row kernel for the
 * type (Q4_1), the rows are quantized to 8 bits and multiplied with the 4-bit blocks 16 weight
 * rows at a time (quant_int.h: q_gemm_fn); otherwise as above. Training's input gradients
 * through a frozen quantized W run the same way on a transposed Q8_0 copy of W
 * (ws_qmat_transpose_q8_0), whose blocks lie along the dimension dX = dY W contracts over. The
 * scratch (quantized
 * inputs, f32 tiles) is per thread, kept between calls and freed when the thread ends. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/ops.h"
#include "nn/parallel.h"
#include "nn/quant_int.h"

/* below this many input rows the quantized dot products win over dequantize + sgemm (the
 * crossover measured with Q4_1 and Q8_0 1536x576 on one AVX-512 core: about 12) */
#ifndef QMAT_SMALL_N
#define QMAT_SMALL_N 12
#endif
/* weight rows per dequantized tile of the sgemm path (forward), and per step of backward */
#define FWD_TILE 64
#define BWD_TILE 256
/* about this many weight elements per chunk of the pool before splitting pays: ~3.5 us of int8
 * dots on one AVX-512 core, well above a fork-join (SmolLM2's 192x576 K/V stay on one thread) */
#define MIN_CHUNK_ELEMS 131072

enum { SCRATCH_INPUT, SCRATCH_TILE, SCRATCH_SCALES, SCRATCH_SLOTS };
typedef struct {
    void *p[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS];
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *s = p;
    for (int i = 0; i < SCRATCH_SLOTS; i++)
        free(s->p[i]);
    free(s);
}

static void scratch_make_key(void)
{
    if (pthread_key_create(&scratch_key, scratch_free))
        abort();
}

/* this thread's buffer `slot` of at least `bytes` bytes (64-byte aligned, contents undefined) */
static void *scratch_get(int slot, size_t bytes)
{
    pthread_once(&scratch_once, scratch_make_key);
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = ws_xcalloc(1, sizeof *s);
        pthread_setspecific(scratch_key, s);
    }
    if (s->cap[slot] < bytes) {
        free(s->p[slot]);
        s->cap[slot] = (bytes + 4095) & ~(size_t)4095;
        s->p[slot] = ws_xaligned(64, s->cap[slot]);
    }
    return s->p[slot];
}

static const uint8_t *wrow(const ws_qmat *w, int r)
{
    return w->data + (size_t)r * w->row_bytes;
}

static size_t min_rows(size_t elems_per_row)
{
    size_t r = MIN_CHUNK_ELEMS / (elems_per_row ? elems_per_row : 1);
    return r ? r : 1;
}

static void store(float *o, float v, float beta)
{
    *o = beta != 0.0f ? *o + v : v;
}

/* ---- few rows: quantized dot products ----------------------------------------------------- */

typedef struct {
    const ws_qmat *w;
    q_dot_fn dot;
    q_dotn_fn dotn; /* NULL: one dot per input row */
    const uint8_t *xq;
    size_t xq_bytes;
    const float *bias;
    float *out, beta;
    int N;
} dot_job;

static void dot_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const dot_job *j = p;
    int OC = j->w->rows, IC = j->w->cols;
    float v[QMAT_SMALL_N];
    for (size_t r = lo; r < hi; r++) {
        const uint8_t *wr = wrow(j->w, (int)r);
        float b = j->bias ? j->bias[r] : 0.0f;
        if (j->dotn) /* each weight block unpacked once for all the input rows */
            j->dotn(IC, wr, j->xq, j->xq_bytes, j->N, v);
        else
            for (int n = 0; n < j->N; n++)
                v[n] = j->dot(IC, wr, j->xq + n * j->xq_bytes);
        for (int n = 0; n < j->N; n++)
            store(&j->out[(size_t)n * OC + r], v[n] + b, j->beta);
    }
}

static void forward_dots(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta)
{
    ws_qtype dt = ws_qtype_dot_type(w->type);
    dot_job j = {w,
                 ws__quant_dot_fn(w->type),
                 ws__quant_dotn_fn(w->type),
                 NULL,
                 ws_qtype_row_bytes(dt, w->cols),
                 bias,
                 out,
                 beta,
                 N};
    if (dt == WS_QT_F32) {
        j.xq = (const uint8_t *)inp; /* f32 activations as they are */
    } else {
        uint8_t *xq = scratch_get(SCRATCH_INPUT, (size_t)N * j.xq_bytes);
        for (int n = 0; n < N; n++)
            ws_quantize_row(dt, inp + (size_t)n * w->cols, xq + n * j.xq_bytes, w->cols);
        j.xq = xq;
    }
    ws_parallel_for((size_t)w->rows, min_rows((size_t)w->cols * N), dot_rows, &j);
}

/* ---- many rows: 8-bit activations times the quantized blocks ------------------------------ */

#define GEMM_ROWS 16 /* weight rows a chunk of the pool takes at least (the kernel's step) */

typedef struct {
    const ws_qmat *w;
    q_gemm_fn gemm;
    const uint8_t *xq;
    size_t xq_bytes;
    const float *xds, *bias;
    float *out, beta;
    int N;
} gemm_job;

static void gemm_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const gemm_job *j = p;
    int OC = j->w->rows, r0 = (int)lo * GEMM_ROWS, r1 = (int)hi * GEMM_ROWS < OC ? (int)hi * GEMM_ROWS : OC;
    j->gemm(j->w->cols, wrow(j->w, r0), j->w->row_bytes, r1 - r0, j->xq, j->xq_bytes, j->xds, j->N,
            j->out + r0, (size_t)OC, j->beta);
    if (j->bias)
        for (int n = 0; n < j->N; n++)
            for (int r = r0; r < r1; r++)
                j->out[(size_t)n * OC + r] += j->bias[r];
}

/* several products of one input: the weight-row groups of all of them in one fork-join */
typedef struct {
    gemm_job part[WS_QMAT_MAX_GROUP];
    size_t first[WS_QMAT_MAX_GROUP + 1]; /* group index where part i starts */
    int n;
} gemm_group_job;

static void gemm_group_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const gemm_group_job *g = p;
    for (int i = 0; i < g->n; i++) {
        size_t a = lo > g->first[i] ? lo : g->first[i], b = hi < g->first[i + 1] ? hi : g->first[i + 1];
        if (a < b)
            gemm_rows((void *)&g->part[i], a - g->first[i], b - g->first[i], chunk);
    }
}

/* out[i] = beta*out[i] + inp w[i]^T (+ bias[i]) for n weights of one type and width: the input
 * rows quantized once to the dot type, every weight row of them all in one fork-join */
static void gemm_group(float *const *out, const float *inp, const ws_qmat *const *w, const float *const *bias,
                       int n, int N, float beta, q_gemm_fn gemm)
{
    ws_qtype dt = ws_qtype_dot_type(w[0]->type);
    size_t xq_bytes = ws_qtype_row_bytes(dt, w[0]->cols), nb = (size_t)w[0]->cols / 32;
    uint8_t *xq = scratch_get(SCRATCH_INPUT, (size_t)N * xq_bytes);
    float *xds = scratch_get(SCRATCH_SCALES, (size_t)N * 2 * nb * sizeof *xds + 1);
    for (int r = 0; r < N; r++)
        ws_quantize_row(dt, inp + (size_t)r * w[0]->cols, xq + r * xq_bytes, w[0]->cols);
    ws__quant_gemm_scales(dt, xq, xq_bytes, N, w[0]->cols, xds);
    gemm_group_job g = {.n = n};
    for (int i = 0; i < n; i++) {
        g.part[i] = (gemm_job){w[i], gemm, xq, xq_bytes, xds, bias[i], out[i], beta, N};
        g.first[i + 1] = g.first[i] + ((size_t)w[i]->rows + GEMM_ROWS - 1) / GEMM_ROWS;
    }
    ws_parallel_for(g.first[n], 1, gemm_group_rows, &g);
}

static void forward_gemm(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta,
                         q_gemm_fn gemm)
{
    gemm_group(&out, inp, &w, &bias, 1, N, beta, gemm);
}

/* ---- gradients: 8-bit rows with f32 scales ------------------------------------------------ */

typedef struct {
    const float *x;
    int n;
    uint8_t *xq;
    size_t xq_bytes;
    float *xds;
} q8f_job;

/* rows lo..hi of x as Q8_0 blocks whose scale (and -128 x the quants' sum) go to xds as f32: a
 * gradient's blocks can lie far below the smallest half-precision scale (the head's dlogits of
 * a 49k vocabulary: ~1e-9), where Q8_0's f16 scale would round them to zero. The blocks' own
 * f16 scale is written too (only the kernels' last rows, a count not a multiple of 16, read it) */
static void q8f_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const q8f_job *j = p;
    size_t nb = (size_t)j->n / QK;
    for (size_t r = lo; r < hi; r++)
        ws__quant_q8_0_fs(j->x + r * (size_t)j->n, j->xq + r * j->xq_bytes, j->xds + r * 2 * nb, j->n);
}

void ws_qmat_backward_input_t(float *dinp, float beta, const float *dout, const ws_qmat *t, int N)
{
    if (N <= 0 || t->rows <= 0)
        return;
    q_gemm_fn gemm = ws__quant_gemm_fn(WS_QT_Q8_0);
    if (t->type != WS_QT_Q8_0 || !gemm || t->rows % GEMM_ROWS || t->cols % QK) {
        ws_qmat_forward(dinp, dout, t, NULL, N, beta);
        return;
    }
    size_t xq_bytes = ws_qtype_row_bytes(WS_QT_Q8_0, t->cols), nb = (size_t)t->cols / QK;
    q8f_job q = {dout, t->cols, scratch_get(SCRATCH_INPUT, (size_t)N * xq_bytes), xq_bytes,
                 scratch_get(SCRATCH_SCALES, (size_t)N * 2 * nb * sizeof(float) + 1)};
    ws_parallel_for((size_t)N, min_rows((size_t)t->cols), q8f_rows, &q);
    gemm_job j = {t, gemm, q.xq, xq_bytes, q.xds, NULL, dinp, beta, N};
    ws_parallel_for(((size_t)t->rows + GEMM_ROWS - 1) / GEMM_ROWS, 1, gemm_rows, &j);
}

/* ---- many rows: dequantized tiles and sgemm ---------------------------------------------- */

typedef struct {
    const ws_qmat *w;
    const float *inp, *bias;
    float *out, beta;
    int N, tile;
} tile_job;

static void tile_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const tile_job *j = p;
    int OC = j->w->rows, IC = j->w->cols;
    float *t = scratch_get(SCRATCH_TILE, (size_t)j->tile * IC * sizeof(float));
    for (size_t ti = lo; ti < hi; ti++) {
        int r0 = (int)ti * j->tile, r1 = r0 + j->tile < OC ? r0 + j->tile : OC;
        for (int r = r0; r < r1; r++)
            ws_dequant_row(j->w->type, wrow(j->w, r), t + (size_t)(r - r0) * IC, IC);
        /* nested in the pool, sgemm runs on this thread */
        ws_sgemm(false, true, j->N, r1 - r0, IC, 1.0f, j->inp, IC, t, IC, j->beta, j->out + r0, OC);
        if (j->bias)
            for (int n = 0; n < j->N; n++)
                for (int r = r0; r < r1; r++)
                    j->out[(size_t)n * OC + r] += j->bias[r];
    }
}

static void forward_tiles(float *out, const float *inp, const ws_qmat *w, const float *bias, int N,
                          float beta)
{
    if (w->type == WS_QT_F32 && ((uintptr_t)w->data & 3) == 0) {
        ws_sgemm(false, true, N, w->rows, w->cols, 1.0f, inp, w->cols, (const float *)w->data, w->cols, beta,
                 out, w->rows);
        if (bias)
            for (int n = 0; n < N; n++)
                for (int r = 0; r < w->rows; r++)
                    out[(size_t)n * w->rows + r] += bias[r];
        return;
    }
    tile_job j = {w, inp, bias, out, beta, N, FWD_TILE};
    size_t tiles = ((size_t)w->rows + FWD_TILE - 1) / FWD_TILE;
    ws_parallel_for(tiles, 1, tile_rows, &j);
}

void ws_qmat_forward(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta)
{
    if (N <= 0 || w->rows <= 0)
        return;
    if (N < QMAT_SMALL_N && ws__quant_dot_fn(w->type))
        forward_dots(out, inp, w, bias, N, beta);
    else
        forward_tiles(out, inp, w, bias, N, beta);
}

void ws_qmat_infer_group(float *const *out, const float *inp, const ws_qmat *const *w,
                         const float *const *bias, int n, int N)
{
    if (N <= 0 || n <= 0)
        return;
    q_gemm_fn gemm = ws__quant_gemm_fn(w[0]->type);
    bool same = n <= WS_QMAT_MAX_GROUP && gemm && w[0]->cols % 32 == 0;
    for (int i = 0; i < n && same; i++) /* GGML's order goes through ws_qmat_infer, one by one */
        same = w[i]->type == w[0]->type && w[i]->cols == w[0]->cols && w[i]->rows > 0 && !w[i]->ggml_order;
    if (!same || w[0]->rows <= 0) {
        for (int i = 0; i < n; i++)
            ws_qmat_infer(out[i], inp, w[i], bias[i], N, 0.0f);
        return;
    }
    gemm_group(out, inp, w, bias, n, N, 0.0f, gemm);
}

bool ws_qmat_infer_is_8bit(ws_qtype wt)
{
    return ws__quant_gemm_fn(wt) != NULL;
}

/* ---- GGML's order: one dot per row and input, ws_quant_dot_q4_1_ggml ---------------------- */

static void ggml_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const dot_job *j = p;
    for (size_t r = lo; r < hi; r++)
        for (int n = 0; n < j->N; n++) {
            float b = j->bias ? j->bias[r] : 0.0f;
            store(&j->out[(size_t)n * j->w->rows + r],
                  ws_quant_dot_q4_1_ggml(j->w->cols, wrow(j->w, (int)r), j->xq + n * j->xq_bytes) + b,
                  j->beta);
        }
}

static void forward_ggml(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta)
{
    dot_job j = {w, NULL, NULL, NULL, ws_qtype_row_bytes(WS_QT_Q8_1, w->cols), bias, out, beta, N};
    uint8_t *xq = scratch_get(SCRATCH_INPUT, (size_t)N * j.xq_bytes);
    for (int n = 0; n < N; n++)
        ws_quantize_row(WS_QT_Q8_1, inp + (size_t)n * w->cols, xq + n * j.xq_bytes, w->cols);
    j.xq = xq;
    ws_parallel_for((size_t)w->rows, min_rows((size_t)w->cols * N), ggml_rows, &j);
}

void ws_qmat_infer(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta)
{
    if (N <= 0 || w->rows <= 0)
        return;
    if (w->ggml_order && w->type == WS_QT_Q4_1 && w->cols % 32 == 0) {
        forward_ggml(out, inp, w, bias, N, beta);
        return;
    }
    /* the many-row kernel wins from one row on (bench_quant_bench: a 576x1536 Q4_1 product on one
     * AVX-512 core, 26 against 46 us for 1 row, 67 against 232 us for 8) */
    q_gemm_fn gemm = ws__quant_gemm_fn(w->type);
    if (gemm && w->cols % 32 == 0)
        forward_gemm(out, inp, w, bias, N, beta, gemm);
    else
        ws_qmat_forward(out, inp, w, bias, N, beta);
}

/* ---- input gradient ---------------------------------------------------------------------- */

typedef struct {
    const ws_qmat *w;
    float *t;
    int r0;
} deq_job;

static void deq_rows(void *p, size_t lo, size_t hi, int chunk)
{
    const deq_job *j = p;
    for (size_t r = lo; r < hi; r++)
        ws_dequant_row(j->w->type, wrow(j->w, j->r0 + (int)r), j->t + r * (size_t)j->w->cols, j->w->cols);
}

void ws_qmat_backward_input(float *dinp, float beta, const float *dout, const ws_qmat *w, int N)
{
    int OC = w->rows, IC = w->cols;
    if (N <= 0)
        return;
    if (OC <= 0) {
        if (beta == 0.0f)
            memset(dinp, 0, (size_t)N * IC * sizeof(float));
        return;
    }
    if (w->type == WS_QT_F32 && ((uintptr_t)w->data & 3) == 0) {
        ws_sgemm(false, false, N, IC, OC, 1.0f, dout, OC, (const float *)w->data, IC, beta, dinp, IC);
        return;
    }
    /* the tiles add into the same dinp, so they go one after another, each product (and each
     * tile's dequantization) split over the pool */
    float *t = scratch_get(SCRATCH_TILE, (size_t)BWD_TILE * IC * sizeof(float));
    for (int r0 = 0; r0 < OC; r0 += BWD_TILE) {
        int rows = OC - r0 < BWD_TILE ? OC - r0 : BWD_TILE;
        deq_job j = {w, t, r0};
        ws_parallel_for((size_t)rows, min_rows((size_t)IC), deq_rows, &j);
        ws_sgemm(false, false, N, IC, rows, 1.0f, dout + r0, OC, t, IC, r0 == 0 ? beta : 1.0f, dinp, IC);
    }
}

/* ---- transposed Q8_0 copy ----------------------------------------------------------------- */

typedef struct {
    const ws_qmat *w;
    uint8_t *dst;
    size_t drow; /* bytes of a transposed row */
} tr_job;

/* blocks lo..hi of 32 rows of w: dequantized, then each column's 32 values one Q8_0 block */
static void tr_blocks(void *p, size_t lo, size_t hi, int chunk)
{
    const tr_job *j = p;
    int IC = j->w->cols;
    float *t = scratch_get(SCRATCH_TILE, (size_t)QK * IC * sizeof(float)), col[QK];
    for (size_t b = lo; b < hi; b++) {
        for (int i = 0; i < QK; i++)
            ws_dequant_row(j->w->type, wrow(j->w, (int)b * QK + i), t + (size_t)i * IC, IC);
        for (int c = 0; c < IC; c++) {
            for (int i = 0; i < QK; i++)
                col[i] = t[(size_t)i * IC + c];
            ws_quantize_row(WS_QT_Q8_0, col, j->dst + (size_t)c * j->drow + b * Q8_0_BYTES, QK);
        }
    }
}

uint8_t *ws_qmat_transpose_q8_0(const ws_qmat *w, ws_qmat *t)
{
    if (w->rows <= 0 || w->cols <= 0 || w->rows % QK)
        return NULL;
    size_t drow = ws_qtype_row_bytes(WS_QT_Q8_0, w->rows);
    uint8_t *d = ws_xaligned(64, drow * (size_t)w->cols);
    tr_job j = {w, d, drow};
    ws_parallel_for((size_t)w->rows / QK, min_rows((size_t)QK * w->cols), tr_blocks, &j);
    *t = (ws_qmat){WS_QT_Q8_0, w->cols, w->rows, drow, d, false};
    return d;
}

void ws_qmat_row(const ws_qmat *w, int r, float *dst)
{
    ws_dequant_row(w->type, wrow(w, r), dst, w->cols);
}
