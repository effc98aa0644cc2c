/* AVX2 (+FMA, F16C) versions of the hot quantized kernels: Q4_0/Q4_1/Q8_0 dequantization,
 * Q8_0/Q8_1 activation quantization (bit-identical to the scalar reference) and the dot
 * products of Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K weights with quantized activations (Q4_0,
 * Q4_1, Q8_0 also one weight row against several activation rows, each block unpacked once).
 * Compiled with -mavx2 -mfma -mf16c; used only when the CPU has them (quant.c).
 * Activation quants are assumed in [-127, 127], as the quantizers produce them. */
#include "nn/quant_int.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

static inline float h2f(const uint8_t *p)
{
    return _cvtsh_ss(q_ld16(p));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high ones */
static inline __m256i nibbles(const uint8_t *q)
{
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* sums of unsigned x times signed y, 8 int32 lanes (x * y pairs must fit int16) */
static inline __m256i dot_u8s8(__m256i x, __m256i y)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* ---- dequantization (same products as the scalar code, no fused multiply-add) ---------- */

static inline void store_scaled(float *y, __m128i q8, __m256 d)
{
    _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d));
}

static void deq_q8_0(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, y += QK) {
        __m256 d = _mm256_set1_ps(h2f(b));
        for (int j = 0; j < QK; j += 8)
            store_scaled(y + j, _mm_loadl_epi64((const __m128i *)(b + Q8_0_QS + j)), d);
    }
}

static void deq_q4_0(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_0_BYTES, y += QK) {
        __m256 d = _mm256_set1_ps(h2f(b));
        __m256i q = _mm256_sub_epi8(nibbles(b + Q4_0_QS), _mm256_set1_epi8(8));
        __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        store_scaled(y, lo, d);
        store_scaled(y + 8, _mm_srli_si128(lo, 8), d);
        store_scaled(y + 16, hi, d);
        store_scaled(y + 24, _mm_srli_si128(hi, 8), d);
    }
}

static inline void store_affine(float *y, __m128i q8, __m256 d, __m256 m)
{
    __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q8));
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_mul_ps(v, d), m));
}

static void deq_q4_1(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_1_BYTES, y += QK) {
        __m256 d = _mm256_set1_ps(h2f(b)), m = _mm256_set1_ps(h2f(b + Q4_1_M));
        __m256i q = nibbles(b + Q4_1_QS);
        __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        store_affine(y, lo, d, m);
        store_affine(y + 8, _mm_srli_si128(lo, 8), d, m);
        store_affine(y + 16, hi, d, m);
        store_affine(y + 24, _mm_srli_si128(hi, 8), d, m);
    }
}

/* ---- activation quantization ------------------------------------------------------------ */

/* one block of 32 floats -> 32 int8 at q, d (as f16) at dh; returns the sum of the quants */
static int q8_block(const float *x, uint8_t *dh, uint8_t *q, float *d_out)
{
    __m256 v[4], amax = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[j]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mx = _mm_cvtss_f32(m4), d = mx / 127.0f, id = mx != 0.0f ? 127.0f / mx : 0.0f;
    __m256 idv = _mm256_set1_ps(id);
    __m256i i32[4];
    for (int j = 0; j < 4; j++)
        i32[j] = _mm256_cvtps_epi32(
            _mm256_round_ps(_mm256_mul_ps(v[j], idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
    /* pack to int8 in order: packs interleaves the 128-bit lanes, the permute undoes it */
    __m256i p16a = _mm256_packs_epi32(i32[0], i32[1]), p16b = _mm256_packs_epi32(i32[2], i32[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p8);
    uint16_t h = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    memcpy(dh, &h, 2);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    *d_out = d;
    return _mm_cvtsi128_si32(s4);
}

static void qz_q8_0(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, x += QK) {
        float d;
        q8_block(x, b, b + Q8_0_QS, &d);
    }
}

static void qz_q8_0_fs(const float *x, void *dst, float *ds, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, x += QK) {
        int sum = q8_block(x, b, (b + Q8_0_QS), &ds[2 * i]);
        ds[2 * i + 1] = -128.0f * (float)sum;
    }
}

static void qz_q8_1(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_1_BYTES, x += QK) {
        float d;
        int sum = q8_block(x, b, b + Q8_1_QS, &d);
        uint16_t h = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(b + Q8_1_S, &h, 2);
    }
}

/* ---- dot products: 4 blocks a step, their f16 headers converted together ------------------- */

enum { K_Q4_0, K_Q4_1, K_Q8_0 };

static inline int ld32(const uint8_t *p)
{
    int v;
    memcpy(&v, p, 4);
    return v;
}

/* the first 4 bytes of 4 blocks `stride` apart, built in registers */
static inline __m128i headers4(const uint8_t *p, size_t stride)
{
    __m128i v = _mm_cvtsi32_si128(ld32(p));
    v = _mm_insert_epi32(v, ld32(p + stride), 1);
    v = _mm_insert_epi32(v, ld32(p + 2 * stride), 2);
    return _mm_insert_epi32(v, ld32(p + 3 * stride), 3);
}

/* The weight side of one block: its bytes as the integer dot takes them (Q4_0/Q4_1: the
 * nibbles 0..15; Q8_0: |q|, its signs in sgn). */
static inline __m256i wblock(const uint8_t *a, int kind, __m256i *sgn)
{
    if (kind == K_Q8_0) {
        __m256i qx = _mm256_loadu_si256((const __m256i *)(a + Q8_0_QS));
        *sgn = qx;
        return _mm256_sign_epi8(qx, qx);
    }
    *sgn = _mm256_setzero_si256();
    return nibbles(a + (kind == K_Q4_1 ? Q4_1_QS : Q4_0_QS));
}

/* the integer dot of one block's weight side (Q4_0 as q - 8 through 8 * sum(y); Q8_0 by the
 * sign trick, y in [-127, 127]) with the activation block's 32 int8 */
static inline __m256i wblock_dot(__m256i qx, __m256i sgn, const uint8_t *b, int kind)
{
    if (kind == K_Q8_0) {
        __m256i qy = _mm256_loadu_si256((const __m256i *)(b + Q8_0_QS));
        return dot_u8s8(qx, _mm256_sign_epi8(qy, sgn));
    }
    __m256i qy = _mm256_loadu_si256((const __m256i *)(b + (kind == K_Q4_1 ? Q8_1_QS : Q8_0_QS)));
    if (kind == K_Q4_1)
        return dot_u8s8(qx, qy);
    __m256i p16 =
        _mm256_sub_epi16(_mm256_maddubs_epi16(qx, qy), _mm256_maddubs_epi16(_mm256_set1_epi8(8), qy));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline __m256i block_dot(const uint8_t *a, const uint8_t *b, int kind)
{
    __m256i sgn, qx = wblock(a, kind, &sgn);
    return wblock_dot(qx, sgn, b, kind);
}

/* the low halves of 4 headers (d only) */
#define LOWS _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1)

/* The weight side of 4 blocks: their bytes and f16 headers (Q4_1: [d0, m0, d1, m1, ...]). */
static inline __m256 wside4(const uint8_t *a, size_t xs, int kind, __m256i wq[4], __m256i sg[4])
{
    for (int k = 0; k < 4; k++)
        wq[k] = wblock(a + k * xs, kind, &sg[k]);
    __m128i xh = headers4(a, xs);
    if (kind == K_Q4_1)
        return _mm256_cvtph_ps(xh);
    return _mm256_castps128_ps256(_mm_cvtph_ps(_mm_shuffle_epi8(xh, LOWS)));
}

/* One activation row's 4 blocks at b against the weight side. */
static inline void step4(const __m256i wq[4], const __m256i sg[4], __m256 dx, const uint8_t *b, size_t ys,
                         int kind, __m256 *acc0, __m256 *acc1, __m256 *accm)
{
    __m128i yh = headers4(b, ys);
    __m256 d; /* lane 2k (Q4_1) or k: block k's dx * dy */
    if (kind == K_Q4_1) {
        d = _mm256_mul_ps(dx, _mm256_cvtph_ps(yh)); /* [dd0, ms0, dd1, ms1, ...] */
        *accm = _mm256_add_ps(*accm, d);
    } else {
        d = _mm256_castps128_ps256(
            _mm_mul_ps(_mm256_castps256_ps128(dx), _mm_cvtph_ps(_mm_shuffle_epi8(yh, LOWS))));
    }
    int sh = kind == K_Q4_1 ? 1 : 0;
    for (int k = 0; k < 4; k++) {
        __m256 dk = _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(k << sh));
        __m256 p = _mm256_cvtepi32_ps(wblock_dot(wq[k], sg[k], b + k * ys, kind));
        if (k & 1)
            *acc1 = _mm256_fmadd_ps(dk, p, *acc1);
        else
            *acc0 = _mm256_fmadd_ps(dk, p, *acc0);
    }
}

/* The blocks from i on (fewer than 4), added to the accumulators of the 4-block steps. */
static inline float dot_finish(int64_t nb, int64_t i, const uint8_t *a, const uint8_t *b, __m256 acc0,
                               __m256 acc1, __m256 accm, int kind)
{
    size_t xs = kind == K_Q4_1 ? Q4_1_BYTES : kind == K_Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
    size_t ys = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES;
    float ms = 0.0f;
    for (; i < nb; i++, a += xs, b += ys) {
        __m256 d = _mm256_set1_ps(h2f(a) * h2f(b));
        acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(block_dot(a, b, kind)), acc0);
        if (kind == K_Q4_1)
            ms += h2f(a + Q4_1_M) * h2f(b + Q8_1_S);
    }
    float sum = hsum8(_mm256_add_ps(acc0, acc1));
    if (kind == K_Q4_1) { /* the odd lanes: m * s */
        __m256 odd = _mm256_and_ps(accm, _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1)));
        sum += hsum8(odd) + ms;
    }
    return sum;
}

static inline float dot_blocks(int64_t n, const uint8_t *a, const uint8_t *b, int kind)
{
    size_t xs = kind == K_Q4_1 ? Q4_1_BYTES : kind == K_Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
    size_t ys = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    int64_t nb = n / QK, i = 0;
    for (; i + 4 <= nb; i += 4, a += 4 * xs, b += 4 * ys) {
        __m256i wq[4], sg[4];
        __m256 dx = wside4(a, xs, kind, wq, sg);
        step4(wq, sg, dx, b, ys, kind, &acc0, &acc1, &accm);
    }
    return dot_finish(nb, i, a, b, acc0, acc1, accm, kind);
}

/* nx (a constant once inlined) activation rows bs bytes apart against one weight row, each
 * weight block unpacked once; bit for bit dot_blocks' results. */
static inline __attribute__((always_inline)) void dotn_blocks(int64_t n, const uint8_t *a, const uint8_t *b,
                                                              size_t bs, const int nx, float *out, int kind)
{
    size_t xs = kind == K_Q4_1 ? Q4_1_BYTES : kind == K_Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
    size_t ys = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES;
    __m256 acc0[Q_DOTN_MAX], acc1[Q_DOTN_MAX], accm[Q_DOTN_MAX];
    for (int r = 0; r < nx; r++)
        acc0[r] = acc1[r] = accm[r] = _mm256_setzero_ps();
    int64_t nb = n / QK, i = 0;
    for (; i + 4 <= nb; i += 4, a += 4 * xs) {
        __m256i wq[4], sg[4];
        __m256 dx = wside4(a, xs, kind, wq, sg);
        for (int r = 0; r < nx; r++)
            step4(wq, sg, dx, b + r * bs + (size_t)i * ys, ys, kind, &acc0[r], &acc1[r], &accm[r]);
    }
    for (int r = 0; r < nx; r++)
        out[r] = dot_finish(nb, i, a, b + r * bs + (size_t)i * ys, acc0[r], acc1[r], accm[r], kind);
}

#define DOTN_KIND(name, kind)                                                                                \
    static void name(int64_t n, const void *w, const void *x, size_t bs, int nx, float *out)                 \
    {                                                                                                        \
        const uint8_t *b = x;                                                                                \
        for (; nx >= Q_DOTN_MAX; nx -= Q_DOTN_MAX, b += Q_DOTN_MAX * bs, out += Q_DOTN_MAX)                  \
            dotn_blocks(n, w, b, bs, Q_DOTN_MAX, out, kind);                                                 \
        if (nx == 3)                                                                                         \
            dotn_blocks(n, w, b, bs, 3, out, kind);                                                          \
        else if (nx == 2)                                                                                    \
            dotn_blocks(n, w, b, bs, 2, out, kind);                                                          \
        else if (nx == 1)                                                                                    \
            out[0] = dot_blocks(n, w, b, kind);                                                              \
    }
DOTN_KIND(dotn_q4_0, K_Q4_0)
DOTN_KIND(dotn_q4_1, K_Q4_1)
DOTN_KIND(dotn_q8_0, K_Q8_0)

static float dot_q8_0(int64_t n, const void *w, const void *x)
{
    return dot_blocks(n, w, x, K_Q8_0);
}

static float dot_q4_0(int64_t n, const void *w, const void *x)
{
    return dot_blocks(n, w, x, K_Q4_0);
}

static float dot_q4_1(int64_t n, const void *w, const void *x)
{
    return dot_blocks(n, w, x, K_Q4_1);
}

/* ---- many activation rows: 8 weight rows x up to 4 activation rows a step ----------------- */

/* Q4_1 weight rows expanded for vpmaddubsw: for each block, 8 registers (4 elements of each of
 * 8 rows per register, values 0..15) and the 8 rows' d and m. GEMM_NB blocks at a time. */
#define GEMM_NB 48
typedef struct {
    __m256i q[GEMM_NB][8];
    __m256 d[GEMM_NB], m[GEMM_NB];
} q41_tile;

/* 16-byte pieces at offset off of 8 rows, as 4 registers: register k holds dword k of every
 * row (lane = row) */
static inline void rows8_dwords(const uint8_t *w, size_t ws, size_t off, __m256i out[4])
{
    __m256i z[4];
    for (int a = 0; a < 4; a++) /* 128-bit lane L of z[a] is row 4L + a */
        z[a] = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(w + (4 + a) * ws + off)),
                                _mm_loadu_si128((const __m128i *)(w + a * ws + off)));
    __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm256_unpacklo_epi64(t0, t2);
    out[1] = _mm256_unpackhi_epi64(t0, t2);
    out[2] = _mm256_unpacklo_epi64(t1, t3);
    out[3] = _mm256_unpackhi_epi64(t1, t3);
}

static void q41_expand(const uint8_t *w, size_t ws, int b0, int nb, q41_tile *t)
{
    __m256i lo4 = _mm256_set1_epi8(0x0F);
    for (int b = 0; b < nb; b++) {
        size_t off = (size_t)(b0 + b) * Q4_1_BYTES;
        __m256i q[4], h[4];
        rows8_dwords(w, ws, off + Q4_1_QS, q);
        for (int k = 0; k < 4; k++) { /* elements 4k.. are low nibbles, 16 + 4k.. high ones */
            t->q[b][k] = _mm256_and_si256(q[k], lo4);
            t->q[b][k + 4] = _mm256_and_si256(_mm256_srli_epi16(q[k], 4), lo4);
        }
        rows8_dwords(w, ws, off, h); /* dword 0: d | m << 16 */
        __m256i lo = _mm256_and_si256(h[0], _mm256_set1_epi32(0xFFFF)), hi = _mm256_srli_epi32(h[0], 16);
        /* [d of rows 0..7, m of rows 0..7] as halves */
        __m256i dm = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
        t->d[b] = _mm256_cvtph_ps(_mm256_castsi256_si128(dm));
        t->m[b] = _mm256_cvtph_ps(_mm256_extracti128_si256(dm, 1));
    }
}

/* NX activation rows against the 8 rows of t, blocks [b0, b0 + nb) */
static inline __attribute__((always_inline)) void q41_tile_rows(const q41_tile *t, int b0, int nb,
                                                                const uint8_t *x, size_t xs, const float *xds,
                                                                size_t dss, int NX, __m256 acc[4])
{
    __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < NX; i++)
        acc[i] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i s[4];
        const uint8_t *xb = x + (size_t)(b0 + b) * Q8_1_BYTES + Q8_1_QS;
        for (int i = 0; i < NX; i++)
            s[i] = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) { /* 16-bit sums: 8 x 2 x 15 x 127 < 32768 */
            __m256i wq = t->q[b][k];
            for (int i = 0; i < NX; i++)
                s[i] = _mm256_add_epi16(
                    s[i], _mm256_maddubs_epi16(wq, _mm256_set1_epi32(ld32(xb + i * xs + 4 * k))));
        }
        for (int i = 0; i < NX; i++) {
            const float *ds = xds + i * dss + 2 * (b0 + b);
            __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(s[i], ones));
            acc[i] = _mm256_fmadd_ps(p, _mm256_mul_ps(t->d[b], _mm256_broadcast_ss(ds)), acc[i]);
            acc[i] = _mm256_fmadd_ps(t->m[b], _mm256_broadcast_ss(ds + 1), acc[i]);
        }
    }
}

static void q41_tile_out(const __m256 *acc, int nx, float *out, size_t os, int add)
{
    for (int i = 0; i < nx; i++) {
        float *o = out + (size_t)i * os;
        _mm256_storeu_ps(o, add ? _mm256_add_ps(acc[i], _mm256_loadu_ps(o)) : acc[i]);
    }
}

static void gemm_q4_1(int64_t n, const void *w, size_t w_stride, int rows, const void *x, size_t x_stride,
                      const float *xds, int nx, float *out, size_t out_stride, float beta)
{
    int nb_all = (int)(n / QK), r8 = rows & ~7;
    size_t dss = 2 * (size_t)nb_all;
    q41_tile t;
    for (int r = 0; r < r8; r += 8) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;
        for (int b0 = 0; b0 < nb_all; b0 += GEMM_NB) {
            int nb = nb_all - b0 < GEMM_NB ? nb_all - b0 : GEMM_NB, add = b0 > 0 || beta != 0.0f, i = 0;
            q41_expand(wr, w_stride, b0, nb, &t);
            __m256 acc[4];
            for (; i + 4 <= nx; i += 4) {
                q41_tile_rows(&t, b0, nb, (const uint8_t *)x + (size_t)i * x_stride, x_stride, xds + i * dss,
                              dss, 4, acc);
                q41_tile_out(acc, 4, out + (size_t)i * out_stride + r, out_stride, add);
            }
            for (; i < nx; i++) {
                q41_tile_rows(&t, b0, nb, (const uint8_t *)x + (size_t)i * x_stride, x_stride, xds + i * dss,
                              dss, 1, acc);
                q41_tile_out(acc, 1, out + (size_t)i * out_stride + r, out_stride, add);
            }
        }
    }
    for (int r = r8; r < rows; r++) /* the last rows of a count not a multiple of 8 */
        for (int i = 0; i < nx; i++) {
            float v = dot_q4_1(n, (const uint8_t *)w + (size_t)r * w_stride,
                               (const uint8_t *)x + (size_t)i * x_stride);
            float *o = out + (size_t)i * out_stride + r;
            *o = beta != 0.0f ? *o + v : v;
        }
}

/* Q8_0 weights: vpmaddubsw multiplies unsigned by signed bytes, so each register holds |w| and
 * the activations take w's sign (as the dot does); products go to 32 bits at every step */
typedef struct {
    __m256i a[GEMM_NB][8], s[GEMM_NB][8]; /* |w|, w */
    __m256 d[GEMM_NB];
} q80_tile;

static void q80_expand(const uint8_t *w, size_t ws, int b0, int nb, q80_tile *t)
{
    for (int b = 0; b < nb; b++) {
        size_t off = (size_t)(b0 + b) * Q8_0_BYTES;
        __m256i q[4], h[4];
        for (int half = 0; half < 2; half++) {
            rows8_dwords(w, ws, off + Q8_0_QS + 16 * (size_t)half, q);
            for (int k = 0; k < 4; k++) {
                t->s[b][4 * half + k] = q[k];
                t->a[b][4 * half + k] = _mm256_sign_epi8(q[k], q[k]);
            }
        }
        rows8_dwords(w, ws, off, h); /* the low half of dword 0: d */
        __m256i lo = _mm256_and_si256(h[0], _mm256_set1_epi32(0xFFFF));
        t->d[b] = _mm256_cvtph_ps(_mm256_castsi256_si128(
            _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, lo), _MM_SHUFFLE(3, 1, 2, 0))));
    }
}

static inline __attribute__((always_inline)) void q80_tile_rows(const q80_tile *t, int b0, int nb,
                                                                const uint8_t *x, size_t xs, const float *xds,
                                                                size_t dss, int NX, __m256 acc[4])
{
    __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < NX; i++)
        acc[i] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i s[4];
        const uint8_t *xb = x + (size_t)(b0 + b) * Q8_0_BYTES + Q8_0_QS;
        for (int i = 0; i < NX; i++)
            s[i] = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) {
            __m256i wa = t->a[b][k], wsg = t->s[b][k];
            for (int i = 0; i < NX; i++) {
                __m256i xv = _mm256_sign_epi8(_mm256_set1_epi32(ld32(xb + i * xs + 4 * k)), wsg);
                s[i] = _mm256_add_epi32(s[i], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, xv), ones));
            }
        }
        for (int i = 0; i < NX; i++) {
            const float *ds = xds + i * dss + 2 * (b0 + b);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i]),
                                     _mm256_mul_ps(t->d[b], _mm256_broadcast_ss(ds)), acc[i]);
        }
    }
}

static void gemm_q8_0(int64_t n, const void *w, size_t w_stride, int rows, const void *x, size_t x_stride,
                      const float *xds, int nx, float *out, size_t out_stride, float beta)
{
    int nb_all = (int)(n / QK), r8 = rows & ~7;
    size_t dss = 2 * (size_t)nb_all;
    const uint8_t *xu = x;
    q80_tile t;
    for (int r = 0; r < r8; r += 8) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;
        for (int b0 = 0; b0 < nb_all; b0 += GEMM_NB) {
            int nb = nb_all - b0 < GEMM_NB ? nb_all - b0 : GEMM_NB, add = b0 > 0 || beta != 0.0f, i = 0;
            q80_expand(wr, w_stride, b0, nb, &t);
            __m256 acc[4];
            for (; i + 4 <= nx; i += 4) {
                q80_tile_rows(&t, b0, nb, xu + i * x_stride, x_stride, xds + i * dss, dss, 4, acc);
                q41_tile_out(acc, 4, out + (size_t)i * out_stride + r, out_stride, add);
            }
            for (; i < nx; i++) {
                q80_tile_rows(&t, b0, nb, xu + i * x_stride, x_stride, xds + i * dss, dss, 1, acc);
                q41_tile_out(acc, 1, out + (size_t)i * out_stride + r, out_stride, add);
            }
        }
    }
    for (int r = r8; r < rows; r++) /* the last rows of a count not a multiple of 8 */
        for (int i = 0; i < nx; i++) {
            float v = dot_q8_0(n, (const uint8_t *)w + (size_t)r * w_stride, xu + i * x_stride);
            float *o = out + (size_t)i * out_stride + r;
            *o = beta != 0.0f ? *o + v : v;
        }
}

/* ---- k-quants ------------------------------------------------------------------------- */

static int k_mins(const int m[8], const uint8_t *y)
{
    int sumi = 0;
    for (int j = 0; j < 8; j++)
        sumi += m[j] * (q_ldi16(y + Q8_K_BSUMS + 4 * j) + q_ldi16(y + Q8_K_BSUMS + 4 * j + 2));
    return sumi;
}

static float dot_q45_k(int64_t n, const uint8_t *a, const uint8_t *b, int five)
{
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    const __m256i lo4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    size_t bytes = five ? Q5_K_BYTES : Q4_K_BYTES;
    for (int64_t i = 0; i < n / QKK; i++, a += bytes, b += Q8_K_BYTES) {
        int sc[8], m[8];
        for (int j = 0; j < 8; j++)
            q_scale_min_k4(j, a + QK_SCALES, &sc[j], &m[j]);
        const uint8_t *q = a + (five ? Q5_K_QS : Q4_K_QS), *y = b + Q8_K_QS;
        __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(a + Q5_K_QH)) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
            __m256i x0 = _mm256_and_si256(v, lo4), x1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
            if (five) {
                x0 = _mm256_or_si256(x0, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
                x1 = _mm256_or_si256(x1,
                                     _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4));
                qh = _mm256_srli_epi16(qh, 2);
            }
            __m256i y0 = _mm256_loadu_si256((const __m256i *)(y + 64 * j));
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(y + 64 * j + 32));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(x0, y0), _mm256_set1_epi16((short)sc[2 * j]));
            __m256i p1 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(x1, y1), _mm256_set1_epi16((short)sc[2 * j + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        float yd = q_ldf(b);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * yd), _mm256_cvtepi32_ps(sumi), acc);
        mins += h2f(a + QK_DMIN) * yd * (float)k_mins(m, b);
    }
    return hsum8(acc) - mins;
}

static float dot_q4_k(int64_t n, const void *w, const void *x)
{
    return dot_q45_k(n, w, x, 0);
}

static float dot_q5_k(int64_t n, const void *w, const void *x)
{
    return dot_q45_k(n, w, x, 1);
}

static float dot_q6_k(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / QKK; i++, a += Q6_K_BYTES, b += Q8_K_BYTES) {
        const int8_t *sc = (const int8_t *)(a + Q6_K_SC);
        __m256i sumi = _mm256_setzero_si256();
        int corr = 0;
        for (int g = 0; g < 16; g++)
            corr += sc[g] * q_ldi16(b + Q8_K_BSUMS + 2 * g);
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(a + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(a + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(a + Q6_K_QH + 32 * h));
            __m256i lows[4] = {_mm256_and_si256(l0, lo4), _mm256_and_si256(l1, lo4),
                               _mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4),
                               _mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4)};
            for (int k = 0; k < 4; k++) {
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), three);
                __m256i q = _mm256_or_si256(lows[k], _mm256_slli_epi16(hb, 4));
                __m256i y = _mm256_loadu_si256((const __m256i *)(b + Q8_K_QS + 128 * h + 32 * k));
                __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * k + 1]),
                                             _mm_set1_epi16(sc[8 * h + 2 * k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), s));
            }
        }
        /* the quants are stored +32: take 32 * (scale * sum of y) per group off */
        sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a + Q6_K_D) * q_ldf(b)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* ---- Q4_1 x Q8_1 in GGML's order: 8 lanes of 4-element sums, each fused over the blocks -- */

static float dot_q4_1_ggml(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0;
    for (int64_t i = 0; i < n / QK; i++, a += Q4_1_BYTES, b += Q8_1_BYTES) {
        summs += q_ld_f16(a + Q4_1_M) * q_ld_f16(b + Q8_1_S);
        __m256 dd = _mm256_set1_ps(q_ld_f16(a) * q_ld_f16(b));
        __m128i raw = _mm_loadu_si128((const __m128i *)(a + Q4_1_QS));
        __m256i qw = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(15));
        __m256i qx = _mm256_loadu_si256((const __m256i *)(b + Q8_1_QS));
        __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(qw, qx), _mm256_set1_epi16(1));
        acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s), acc);
    }
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r) + summs;
}

float (*const ws__dot_q4_1_ggml_avx2)(int64_t n, const void *w, const void *x) = dot_q4_1_ggml;

/* ---- f16 (F16C: rounding to nearest even, as the scalar code does) ----------------------- */

static void deq_f16(const void *src, float *y, int64_t n)
{
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    for (; i < n; i++)
        y[i] = q_ld_f16(p + 2 * i);
}

static void qz_f16(const float *x, void *dst, int64_t n)
{
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(
            (__m128i *)(p + 2 * i),
            _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) {
        uint16_t h = q_to_f16(x[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void ws__quant_fill_avx2(q_kernels *k)
{
    k->dequant[WS_QT_F16] = deq_f16;
    k->quantize[WS_QT_F16] = qz_f16;
    k->dequant[WS_QT_Q8_0] = deq_q8_0;
    k->dequant[WS_QT_Q4_0] = deq_q4_0;
    k->dequant[WS_QT_Q4_1] = deq_q4_1;
    k->quantize[WS_QT_Q8_0] = qz_q8_0;
    k->quantize_q8_0_fs = qz_q8_0_fs;
    k->quantize[WS_QT_Q8_1] = qz_q8_1;
    k->dot[WS_QT_Q8_0] = dot_q8_0;
    k->dot[WS_QT_Q4_0] = dot_q4_0;
    k->dot[WS_QT_Q4_1] = dot_q4_1;
    k->dotn[WS_QT_Q8_0] = dotn_q8_0;
    k->dotn[WS_QT_Q4_0] = dotn_q4_0;
    k->dotn[WS_QT_Q4_1] = dotn_q4_1;
    k->gemm[WS_QT_Q4_1] = gemm_q4_1;
    k->gemm[WS_QT_Q8_0] = gemm_q8_0;
    k->dot[WS_QT_Q4_K] = dot_q4_k;
    k->dot[WS_QT_Q5_K] = dot_q5_k;
    k->dot[WS_QT_Q6_K] = dot_q6_k;
}

#else
float (*const ws__dot_q4_1_ggml_avx2)(int64_t n, const void *w, const void *x) = NULL;
/* built without AVX2 code generation (another architecture): nothing to add */
void ws__quant_fill_avx2(q_kernels *k)
{
    (void)k;
}
#endif
