/* Private to the quantized kernels (src/nn/quant*.c): the block layouts as byte offsets, the
 * half/bfloat conversions, and the kernel tables each instruction-set file fills in.
 * Blocks are read through byte pointers and memcpy, so rows need no particular alignment. */
#ifndef WS_NN_QUANT_INT_H
#define WS_NN_QUANT_INT_H

#include <stdint.h>
#include <string.h>

#include "nn/quant.h"

/* Block layouts (GGML's), as byte offsets inside one block. */
#define QK 32   /* elements of a Q4_0/Q4_1/Q8_0/Q8_1 block */
#define QKK 256 /* elements of a k-quant super-block */
enum {
    Q4_0_BYTES = 18,
    Q4_0_QS = 2, /* d; qs[16] */
    Q4_1_BYTES = 20,
    Q4_1_M = 2,
    Q4_1_QS = 4, /* d, m; qs[16] */
    Q8_0_BYTES = 34,
    Q8_0_QS = 2, /* d; qs[32] */
    Q8_1_BYTES = 36,
    Q8_1_S = 2,
    Q8_1_QS = 4, /* d, s = d * sum(qs); qs[32] */
    Q4_K_BYTES = 144,
    QK_DMIN = 2,
    QK_SCALES = 4,
    Q4_K_QS = 16, /* d, dmin, scales[12], qs[128] */
    Q5_K_BYTES = 176,
    Q5_K_QH = 16,
    Q5_K_QS = 48, /* d, dmin, scales[12], qh[32], qs[128] */
    Q6_K_BYTES = 210,
    Q6_K_QH = 128,
    Q6_K_SC = 192,
    Q6_K_D = 208, /* ql[128], qh[64], sc[16], d */
    Q8_K_BYTES = 292,
    Q8_K_QS = 4,
    Q8_K_BSUMS = 260, /* f32 d; qs[256]; int16 bsums[16] */
};

static inline uint16_t q_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline float q_ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

static inline int16_t q_ldi16(const uint8_t *p)
{
    int16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline float q_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t q_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* IEEE half -> float, exact (subnormals, infinities and NaNs included). */
static inline float q_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    if (e == 31)
        return q_bits_f32(sign | 0x7f800000u | (m << 13));
    return q_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

static inline float q_ld_f16(const uint8_t *p)
{
    return q_f16(q_ld16(p));
}

/* float -> IEEE half, rounding to nearest even (as F16C and numpy do); NaNs stay quiet NaNs. */
static inline uint16_t q_to_f16(float f)
{
    uint32_t u = q_f32_bits(f), sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x1ff));
    if (a >= 0x477ff000u) /* rounds to 65536 or more (or is infinite) */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) { /* below 2^-14: a half subnormal; the FPU rounds when adding 0.5 */
        float t = q_bits_f32(a) + 0.5f;
        return (uint16_t)(sign | (q_f32_bits(t) - 0x3f000000u));
    }
    a += 0xc8000fffu + ((a >> 13) & 1); /* rebias the exponent (-112 << 23) and round */
    return (uint16_t)(sign | (a >> 13));
}

static inline float q_bf16(uint16_t h)
{
    return q_bits_f32((uint32_t)h << 16);
}

/* float -> bfloat16, nearest even; NaNs quiet (as GGML). */
static inline uint16_t q_to_bf16(float f)
{
    uint32_t u = q_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block's 12 scale bytes. */
static inline void q_scale_min_k4(int j, const uint8_t *s, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* One instruction set's kernels, indexed by ws_qtype; NULL where it has no own version. */
typedef void (*q_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*q_quantize_fn)(const float *x, void *dst, int64_t n);
typedef float (*q_dot_fn)(int64_t n, const void *w, const void *x);
/* out[r] = the dot of one weight row with each of nx activation rows x_stride bytes apart, every
 * one bit for bit what the same instruction set's q_dot_fn gives (each weight block is unpacked
 * once for Q_DOTN_MAX rows) */
typedef void (*q_dotn_fn)(int64_t n, const void *w, const void *x, size_t x_stride, int nx, float *out);
#define Q_DOTN_MAX 4
/* Many activation rows (a prompt): out[i * out_stride + r] = beta * out[..] + the dot of weight
 * row r (rows of them, w_stride bytes apart) with activation row i (nx of them, quantized to the
 * dot type, x_stride bytes apart), for r < rows and i < nx. xds holds each activation row's
 * block terms as floats (ws__quant_gemm_scales: 2 per block, row i at xds + i * 2 * (n / 32)).
 * Equal to the dots up to the order of the float sums (not bit for bit). beta is 0 or 1. */
typedef void (*q_gemm_fn)(int64_t n, const void *w, size_t w_stride, int rows, const void *x, size_t x_stride,
                          const float *xds, int nx, float *out, size_t out_stride, float beta);
/* x[n] as Q8_0 blocks at dst (as its quantize kernel) and each block's scale d and -128 x the
 * sum of its quants as floats at ds[2 * b], ds[2 * b + 1] (what q_gemm_fn reads as xds): a
 * gradient's blocks may lie below half precision's smallest scale, the f32 one keeps them. */
typedef void (*q_quantize_fs_fn)(const float *x, void *dst, float *ds, int64_t n);
typedef struct {
    q_quantize_fs_fn quantize_q8_0_fs;
    q_dequant_fn dequant[WS_QT_COUNT];
    q_quantize_fn quantize[WS_QT_COUNT];
    q_dot_fn dot[WS_QT_COUNT];
    q_dotn_fn dotn[WS_QT_COUNT]; /* NULL: the caller loops over dot */
    q_gemm_fn gemm[WS_QT_COUNT]; /* NULL: none (the caller dequantizes tiles for sgemm) */
} q_kernels;

/* The dot kernel in use for weight type wt (qmat.c calls it directly, once per row); NULL for a
 * type without one. */
q_dot_fn ws__quant_dot_fn(ws_qtype wt);
/* The multi-row dot kernel in use for wt; NULL where the instruction set has none (a dot per
 * row is the same thing then). */
q_dotn_fn ws__quant_dotn_fn(ws_qtype wt);
/* The many-row kernel in use for wt (only where the instruction set has one: Q4_1 and Q8_0 under
 * AVX2 and AVX-512); NULL otherwise. */
q_gemm_fn ws__quant_gemm_fn(ws_qtype wt);
/* What q_gemm_fn reads of the nx activation rows at x (x_stride bytes apart) quantized to dt
 * (Q8_1 or Q8_0), per block b (nb = n / 32): xds[i * 2 * nb + 2 * b] = the scale d, and [.. + 1]
 * Q8_1's sum term s, or for Q8_0 -128 x the sum of the block's quants (the kernels add 128 to
 * the Q8_0 weights to multiply them as unsigned bytes). */
/* The kernel in use (q_quantize_fs_fn). */
void ws__quant_q8_0_fs(const float *x, void *dst, float *ds, int64_t n);
void ws__quant_gemm_scales(ws_qtype dt, const void *x, size_t x_stride, int nx, int64_t n, float *xds);

void ws__quant_fill_scalar(q_kernels *k); /* quant_ref.c: every entry */
void ws__quant_fill_avx2(q_kernels *k);   /* quant_avx2.c: overrides its own entries */
void ws__quant_fill_avx512(q_kernels *k); /* quant_avx512.c */
/* Q4_1 x Q8_1 dot in GGML's order (ws_quant_dot_q4_1_ggml): quant_ref.c, and quant_avx2.c's
 * version (NULL where built without AVX2) */
float ws__dot_q4_1_ggml_ref(int64_t n, const void *w, const void *x);
extern float (*const ws__dot_q4_1_ggml_avx2)(int64_t n, const void *w, const void *x);

#endif
