/* AVX-512 (F/BW/VL + VNNI) versions of the hottest quantized kernels: Q4_0/Q4_1/Q8_0 dot
 * products (two blocks per 512-bit register, vpdpbusd; one weight row against several
 * activation rows, each block unpacked once), Q8_0/Q8_1 activation quantization and
 * Q4_0/Q4_1/Q8_0 dequantization, each identical (integers, rounding) to the scalar reference.
 * Compiled with the AVX-512 flags; used only when the CPU has them all (quant.c). The k-quant
 * dots stay with the AVX2 versions. */
#include "nn/quant_int.h"

#include <stdbool.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#include <immintrin.h>

static inline float h2f(const uint8_t *p)
{
    return _cvtsh_ss(q_ld16(p));
}

/* [d0 x8, d1 x8] */
static inline __m512 two_scales(float d0, float d1)
{
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

static inline __m512i load2x32(const uint8_t *p0, const uint8_t *p1)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)p0), hi = _mm256_loadu_si256((const __m256i *)p1);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* the 16-byte nibble arrays of two blocks -> 64 bytes 0..15, each block's 32 in element order */
static inline __m512i nibbles2(const uint8_t *q0, const uint8_t *q1)
{
    __m256i both =
        _mm256_set_m128i(_mm_loadu_si128((const __m128i *)q1), _mm_loadu_si128((const __m128i *)q0));
    __m512i z = _mm512_castsi256_si512(both);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0)); /* q0 q0 q1 q1 */
    z = _mm512_mask_blend_epi64(0xCC, z, _mm512_srli_epi16(z, 4));
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

static inline __m256i nibbles1(const uint8_t *q)
{
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- dot products ------------------------------------------------------------------------ */

enum { K_Q4_0, K_Q4_1, K_Q8_0 };

/* the 64 weight bytes of blocks a0, a1 as unsigned values, and what to take off the unsigned
 * products per 4 (Q4_0: 8 * y, Q8_0: 128 * y, Q4_1: nothing) */
static inline __m512i wbytes2(const uint8_t *a0, const uint8_t *a1, int kind)
{
    if (kind == K_Q8_0)
        return _mm512_xor_si512(load2x32(a0 + Q8_0_QS, a1 + Q8_0_QS), _mm512_set1_epi8((char)0x80));
    return nibbles2(a0 + (kind == K_Q4_1 ? Q4_1_QS : Q4_0_QS), a1 + (kind == K_Q4_1 ? Q4_1_QS : Q4_0_QS));
}

static inline __m512i pair_dot(const uint8_t *a, const uint8_t *b, size_t xs, size_t ys, int kind)
{
    size_t yq = kind == K_Q4_1 ? Q8_1_QS : Q8_0_QS;
    __m512i x = wbytes2(a, a + xs, kind), y = load2x32(b + yq, b + ys + yq);
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x, y);
    if (kind == K_Q4_0)
        p = _mm512_sub_epi32(p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), y));
    else if (kind == K_Q8_0)
        p = _mm512_sub_epi32(p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), y));
    return p;
}

static inline int ld32(const uint8_t *p)
{
    int v;
    memcpy(&v, p, 4);
    return v;
}

/* the first 4 bytes (the f16 header) of 4 and 8 blocks `stride` apart, built in registers
 * (gathers are slow on some CPUs; gcc builds _mm256_setr_epi32 through the stack) */
static inline __m128i headers4(const uint8_t *p, size_t stride)
{
    __m128i v = _mm_cvtsi32_si128(ld32(p));
    v = _mm_insert_epi32(v, ld32(p + stride), 1);
    v = _mm_insert_epi32(v, ld32(p + 2 * stride), 2);
    return _mm_insert_epi32(v, ld32(p + 3 * stride), 3);
}

static inline __m256i headers8(const uint8_t *p, size_t stride)
{
    return _mm256_set_m128i(headers4(p + 4 * stride, stride), headers4(p, stride));
}

/* 16 halves to floats, in registers (gcc otherwise goes through the stack: a stall) */
static inline __m512 cvt16(__m256i h)
{
    __m256 lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h)),
           hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}

/* The weight side of 8 blocks: their bytes, two blocks per register, and their f16 headers
 * converted (Q4_1: [d0, m0, d1, m1, ...]; else d0..d7 in the low 8 lanes). */
static inline __m512 wside8(const uint8_t *a, size_t xs, int kind, __m512i wq[4])
{
    for (int k = 0; k < 4; k++)
        wq[k] = wbytes2(a + 2 * k * xs, a + (2 * k + 1) * xs, kind);
    __m256i xh = headers8(a, xs);
    if (kind == K_Q4_1)
        return cvt16(xh);
    return _mm512_castps256_ps512(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(xh)));
}

/* One activation row's 8 blocks at b against the weight side: each pair of blocks' integer
 * sums scaled by its two d products spread over 8 lanes each (Q4_1: m * s summed in accm). */
static inline void step8(const __m512i wq[4], __m512 dx, const uint8_t *b, size_t ys, int kind, __m512 *acc0,
                         __m512 *acc1, __m512 *accm)
{
    size_t yq = kind == K_Q4_1 ? Q8_1_QS : Q8_0_QS;
    __m256i yh = headers8(b, ys);
    __m512 d; /* lanes 2k (Q4_1) or k (else): block k's dx * dy */
    if (kind == K_Q4_1) {
        d = _mm512_mul_ps(dx, cvt16(yh)); /* [dd0, ms0, dd1, ms1, ...] */
        *accm = _mm512_add_ps(*accm, d);
    } else {
        d = _mm512_castps256_ps512(
            _mm256_mul_ps(_mm512_castps512_ps256(dx), _mm256_cvtph_ps(_mm256_cvtepi32_epi16(yh))));
    }
    int sh = kind == K_Q4_1 ? 1 : 0;
    for (int k = 0; k < 4; k++) {
        __m512i idx = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32((2 * k) << sh),
                                              _mm512_set1_epi32((2 * k + 1) << sh));
        __m512 dk = _mm512_permutexvar_ps(idx, d);
        __m512i y = load2x32(b + 2 * k * ys + yq, b + (2 * k + 1) * ys + yq);
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[k], y);
        if (kind == K_Q4_0)
            p = _mm512_sub_epi32(p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), y));
        else if (kind == K_Q8_0)
            p = _mm512_sub_epi32(
                p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), y));
        if (k & 1)
            *acc1 = _mm512_fmadd_ps(dk, _mm512_cvtepi32_ps(p), *acc1);
        else
            *acc0 = _mm512_fmadd_ps(dk, _mm512_cvtepi32_ps(p), *acc0);
    }
}

/* What is left of a row from block i on (fewer than 8 blocks), added to the accumulators of
 * the 8-block steps: pairs, then single blocks. */
static inline float dot_finish(int64_t nb, int64_t i, const uint8_t *a, const uint8_t *b, __m512 acc0,
                               __m512 acc1, __m512 accm, int kind)
{
    size_t xs = kind == K_Q4_1 ? Q4_1_BYTES : kind == K_Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
    size_t ys = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES;
    for (; i + 2 <= nb; i += 2, a += 2 * xs, b += 2 * ys) {
        __m512 dk = two_scales(h2f(a) * h2f(b), h2f(a + xs) * h2f(b + ys));
        acc0 = _mm512_fmadd_ps(dk, _mm512_cvtepi32_ps(pair_dot(a, b, xs, ys, kind)), acc0);
        if (kind == K_Q4_1)
            for (int k = 0; k < 2; k++)
                accm = _mm512_mask_add_ps(
                    accm, 2, accm, _mm512_set1_ps(h2f(a + k * xs + Q4_1_M) * h2f(b + k * ys + Q8_1_S)));
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    if (kind == K_Q4_1)
        sum += _mm512_mask_reduce_add_ps(0xAAAA, accm);
    __m256 tail = _mm256_setzero_ps();
    const __m256i flip8 = _mm256_set1_epi8((char)0x80);
    for (; i < nb; i++, a += xs, b += ys) {
        size_t yq = kind == K_Q4_1 ? Q8_1_QS : Q8_0_QS;
        __m256i yv = _mm256_loadu_si256((const __m256i *)(b + yq)), xv, off;
        if (kind == K_Q8_0) {
            xv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + Q8_0_QS)), flip8);
            off = flip8;
        } else {
            xv = nibbles1(a + (kind == K_Q4_1 ? Q4_1_QS : Q4_0_QS));
            off = _mm256_set1_epi8(8);
        }
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), xv, yv);
        if (kind != K_Q4_1)
            p = _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, yv));
        else
            sum += h2f(a + Q4_1_M) * h2f(b + Q8_1_S);
        tail = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a) * h2f(b)), _mm256_cvtepi32_ps(p), tail);
    }
    return sum + hsum8(tail);
}

/* Dot of n/32 blocks, 8 at a time (the blocks' f16 headers converted at once), the rest in
 * dot_finish. */
static inline float dot_blocks(int64_t n, const uint8_t *a, const uint8_t *b, int kind)
{
    size_t xs = kind == K_Q4_1 ? Q4_1_BYTES : kind == K_Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
    size_t ys = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), accm = _mm512_setzero_ps();
    int64_t nb = n / QK, i = 0;
    for (; i + 8 <= nb; i += 8, a += 8 * xs, b += 8 * ys) {
        __m512i wq[4];
        __m512 dx = wside8(a, xs, kind, wq);
        step8(wq, dx, b, ys, kind, &acc0, &acc1, &accm);
    }
    return dot_finish(nb, i, a, b, acc0, acc1, accm, kind);
}

/* nx (a constant 1..Q_DOTN_MAX once inlined) activation rows bs bytes apart against one weight
 * row: each weight block is unpacked once for all of them; every result is bit for bit the one
 * dot_blocks gives (same operations in the same order). */
static inline __attribute__((always_inline)) void dotn_blocks(int64_t n, const uint8_t *a, const uint8_t *b,
                                                              size_t bs, const int nx, float *out, int kind)
{
    size_t xs = kind == K_Q4_1 ? Q4_1_BYTES : kind == K_Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
    size_t ys = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES;
    __m512 acc0[Q_DOTN_MAX], acc1[Q_DOTN_MAX], accm[Q_DOTN_MAX];
    for (int r = 0; r < nx; r++)
        acc0[r] = acc1[r] = accm[r] = _mm512_setzero_ps();
    int64_t nb = n / QK, i = 0;
    for (; i + 8 <= nb; i += 8, a += 8 * xs) {
        __m512i wq[4];
        __m512 dx = wside8(a, xs, kind, wq);
        for (int r = 0; r < nx; r++)
            step8(wq, dx, b + r * bs + (size_t)i * ys, ys, kind, &acc0[r], &acc1[r], &accm[r]);
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

/* ---- many activation rows: 16 weight rows x up to 8 activation rows a step ---------------- */

/* Weight rows expanded for vpdpbusd: for each block, 8 registers (4 elements of each of 16 rows
 * per register, unsigned: Q4_1's 0..15, Q8_0's quants + 128) and the 16 rows' d (and Q4_1's m).
 * GEMM_NB blocks at a time. */
#define GEMM_NB 48
typedef struct {
    __m512i q[GEMM_NB][8];
    __m512 d[GEMM_NB], m[GEMM_NB];
} wtile;

/* 16-byte pieces at offset off of 16 rows, as 4 registers: register k holds dword k of every
 * row (lane = row) */
static inline void rows16_dwords(const uint8_t *w, size_t ws, size_t off, __m512i out[4])
{
    __m512i z[4];
    for (int a = 0; a < 4; a++) { /* lane L of z[a] is row 4L + a */
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(w + a * ws + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w + (4 + a) * ws + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w + (8 + a) * ws + off)), 2);
        z[a] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w + (12 + a) * ws + off)), 3);
    }
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

static inline __attribute__((always_inline)) void wtile_expand(const uint8_t *w, size_t ws, int b0, int nb,
                                                               int kind, wtile *t)
{
    __m512i lo4 = _mm512_set1_epi8(0x0F), bias = _mm512_set1_epi8((char)0x80);
    for (int b = 0; b < nb; b++) {
        __m512i q[4], h[4];
        if (kind == K_Q4_1) {
            size_t off = (size_t)(b0 + b) * Q4_1_BYTES;
            rows16_dwords(w, ws, off + Q4_1_QS, q);
            for (int k = 0; k < 4; k++) { /* elements 4k.. are low nibbles, 16 + 4k.. high ones */
                t->q[b][k] = _mm512_and_si512(q[k], lo4);
                t->q[b][k + 4] = _mm512_and_si512(_mm512_srli_epi16(q[k], 4), lo4);
            }
            rows16_dwords(w, ws, off, h); /* dword 0: d | m << 16 */
            t->m[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h[0], 16)));
        } else {
            size_t off = (size_t)(b0 + b) * Q8_0_BYTES;
            rows16_dwords(w, ws, off + Q8_0_QS, q);
            for (int k = 0; k < 4; k++)
                t->q[b][k] = _mm512_xor_si512(q[k], bias);
            rows16_dwords(w, ws, off + Q8_0_QS + 16, q);
            for (int k = 0; k < 4; k++)
                t->q[b][k + 4] = _mm512_xor_si512(q[k], bias);
            rows16_dwords(w, ws, off, h); /* the low half of dword 0: d */
        }
        t->d[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h[0]));
    }
}

/* NX activation rows against the 16 rows of t, blocks [b0, b0 + nb): 16 sums per row in acc.
 * xds per block: Q4_1 d, s; Q8_0 d, -128 * the sum of the quants (the weights' + 128 taken off) */
static inline __attribute__((always_inline)) void wtile_rows(const wtile *t, int b0, int nb, const uint8_t *x,
                                                             size_t xs, const float *xds, size_t dss, int NX,
                                                             int kind, __m512 acc[8])
{
    size_t xbb = kind == K_Q4_1 ? Q8_1_BYTES : Q8_0_BYTES, xqs = kind == K_Q4_1 ? Q8_1_QS : Q8_0_QS;
    for (int i = 0; i < NX; i++)
        acc[i] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i s[8];
        const uint8_t *xb = x + (size_t)(b0 + b) * xbb + xqs;
        for (int i = 0; i < NX; i++)
            s[i] = _mm512_setzero_si512();
        for (int k = 0; k < 8; k++) {
            __m512i wq = t->q[b][k];
            for (int i = 0; i < NX; i++)
                s[i] = _mm512_dpbusd_epi32(s[i], wq, _mm512_set1_epi32(ld32(xb + i * xs + 4 * k)));
        }
        for (int i = 0; i < NX; i++) {
            const float *ds = xds + i * dss + 2 * (b0 + b);
            __m512 p = _mm512_cvtepi32_ps(s[i]), dd = _mm512_mul_ps(t->d[b], _mm512_set1_ps(ds[0]));
            if (kind == K_Q4_1) {
                acc[i] = _mm512_fmadd_ps(p, dd, acc[i]);
                acc[i] = _mm512_fmadd_ps(t->m[b], _mm512_set1_ps(ds[1]), acc[i]);
            } else { /* integers under 2^24: the sum is exact */
                acc[i] = _mm512_fmadd_ps(_mm512_add_ps(p, _mm512_set1_ps(ds[1])), dd, acc[i]);
            }
        }
    }
}

static void wtile_out(const __m512 *acc, int nx, float *out, size_t os, bool add)
{
    for (int i = 0; i < nx; i++) {
        float *o = out + (size_t)i * os;
        _mm512_storeu_ps(o, add ? _mm512_add_ps(acc[i], _mm512_loadu_ps(o)) : acc[i]);
    }
}

/* With few activation rows a step is a pass over the weights, bound by how fast memory delivers
 * them: the weight rows of the tile PREFETCH_TILES ahead (16 consecutive rows, contiguous) are
 * requested while this one is multiplied. One thread, 1-row products: ~5% less CPU per
 * generated token on SmolLM2-135M (the hardware prefetcher does not follow 16 interleaved rows). */
#define PREFETCH_MAX_NX 8
#define PREFETCH_TILES 2

static inline void prefetch_bytes(const uint8_t *p, size_t n)
{
    for (size_t o = 0; o < n; o += 64)
        _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

static inline __attribute__((always_inline)) void gemm_kind(int64_t n, const void *w, size_t w_stride,
                                                            int rows, const void *x, size_t x_stride,
                                                            const float *xds, int nx, float *out,
                                                            size_t out_stride, float beta, int kind)
{
    int nb_all = (int)(n / QK), r16 = rows & ~15;
    size_t dss = 2 * (size_t)nb_all;
    const uint8_t *xu = x;
    wtile t;
    for (int r = 0; r < r16; r += 16) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;
        if (nx <= PREFETCH_MAX_NX && r + 16 * PREFETCH_TILES < r16)
            prefetch_bytes(wr + 16 * PREFETCH_TILES * w_stride, 16 * w_stride);
        for (int b0 = 0; b0 < nb_all; b0 += GEMM_NB) {
            int nb = nb_all - b0 < GEMM_NB ? nb_all - b0 : GEMM_NB, i = 0;
            bool add = b0 > 0 || beta != 0.0f;
            wtile_expand(wr, w_stride, b0, nb, kind, &t);
            __m512 acc[8];
            for (; i + 8 <= nx; i += 8) {
                wtile_rows(&t, b0, nb, xu + i * x_stride, x_stride, xds + i * dss, dss, 8, kind, acc);
                wtile_out(acc, 8, out + (size_t)i * out_stride + r, out_stride, add);
            }
            for (; i + 4 <= nx; i += 4) {
                wtile_rows(&t, b0, nb, xu + i * x_stride, x_stride, xds + i * dss, dss, 4, kind, acc);
                wtile_out(acc, 4, out + (size_t)i * out_stride + r, out_stride, add);
            }
            for (; i < nx; i++) {
                wtile_rows(&t, b0, nb, xu + i * x_stride, x_stride, xds + i * dss, dss, 1, kind, acc);
                wtile_out(acc, 1, out + (size_t)i * out_stride + r, out_stride, add);
            }
        }
    }
    for (int r = r16; r < rows; r++) /* the last rows of a count not a multiple of 16 */
        for (int i = 0; i < nx; i++) {
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;
            float v =
                kind == K_Q4_1 ? dot_q4_1(n, wr, xu + i * x_stride) : dot_q8_0(n, wr, xu + i * x_stride);
            float *o = out + (size_t)i * out_stride + r;
            *o = beta != 0.0f ? *o + v : v;
        }
}

static void gemm_q4_1(int64_t n, const void *w, size_t w_stride, int rows, const void *x, size_t x_stride,
                      const float *xds, int nx, float *out, size_t out_stride, float beta)
{
    gemm_kind(n, w, w_stride, rows, x, x_stride, xds, nx, out, out_stride, beta, K_Q4_1);
}

static void gemm_q8_0(int64_t n, const void *w, size_t w_stride, int rows, const void *x, size_t x_stride,
                      const float *xds, int nx, float *out, size_t out_stride, float beta)
{
    gemm_kind(n, w, w_stride, rows, x, x_stride, xds, nx, out, out_stride, beta, K_Q8_0);
}

/* ---- activation quantization ------------------------------------------------------------- */

static int q8_block(const float *x, uint8_t *dh, uint8_t *q, float *d_out)
{
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m512 idv = _mm512_set1_ps(id);
    __m512i i0 =
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512i i1 =
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(i1));
    uint16_t h = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    memcpy(dh, &h, 2);
    *d_out = d;
    return _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
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

/* ---- dequantization (products as the scalar code computes them) -------------------------- */

static void deq_q8_0(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, y += QK) {
        __m512 d = _mm512_set1_ps(h2f(b));
        for (int j = 0; j < QK; j += 16) {
            __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + Q8_0_QS + j)));
            _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
        }
    }
}

static void deq_q4(const uint8_t *b, float *y, int64_t n, int one)
{
    size_t bytes = one ? Q4_1_BYTES : Q4_0_BYTES, qs = one ? Q4_1_QS : Q4_0_QS;
    const __m128i lo4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / QK; i++, b += bytes, y += QK) {
        __m512 d = _mm512_set1_ps(h2f(b)), m = _mm512_set1_ps(one ? h2f(b + Q4_1_M) : 0.0f);
        __m128i v = _mm_loadu_si128((const __m128i *)(b + qs));
        __m512i q0 = _mm512_cvtepu8_epi32(_mm_and_si128(v, lo4));
        __m512i q1 = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), lo4));
        if (one) {
            _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q0), d), m));
            _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q1), d), m));
        } else {
            __m512i eight = _mm512_set1_epi32(8);
            _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q0, eight)), d));
            _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q1, eight)), d));
        }
    }
}

static void deq_q4_0(const void *src, float *y, int64_t n)
{
    deq_q4(src, y, n, 0);
}

static void deq_q4_1(const void *src, float *y, int64_t n)
{
    deq_q4(src, y, n, 1);
}

void ws__quant_fill_avx512(q_kernels *k)
{
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
}

#else
void ws__quant_fill_avx512(q_kernels *k)
{
    (void)k;
}
#endif
