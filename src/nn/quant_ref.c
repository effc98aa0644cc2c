/* The scalar reference kernels of the quantized formats: dequantizing rows, quantizing
 * activations (and Q4_0/Q4_1 weights) and dot products on the blocks, computed the way GGML's
 * reference C code computes them (integer dot of the quants, then the scales), so results
 * agree with llama.cpp; the SIMD versions are tested against these. */
#include <math.h>

#include "nn/quant_int.h"

/* ---- dequantization ---------------------------------------------------------------------- */

static void deq_f32(const void *src, float *y, int64_t n)
{
    memcpy(y, src, (size_t)n * sizeof(float));
}

static void deq_f16(const void *src, float *y, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        y[i] = q_ld_f16(p + 2 * i);
}

static void deq_bf16(const void *src, float *y, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        y[i] = q_bf16(q_ld16(p + 2 * i));
}

static void deq_q8_0(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, y += QK) {
        float d = q_ld_f16(b);
        const int8_t *q = (const int8_t *)(b + Q8_0_QS);
        for (int j = 0; j < QK; j++)
            y[j] = q[j] * d;
    }
}

static void deq_q8_1(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_1_BYTES, y += QK) {
        float d = q_ld_f16(b);
        const int8_t *q = (const int8_t *)(b + Q8_1_QS);
        for (int j = 0; j < QK; j++)
            y[j] = q[j] * d;
    }
}

static void deq_q4_0(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_0_BYTES, y += QK) {
        float d = q_ld_f16(b);
        const uint8_t *q = b + Q4_0_QS;
        for (int j = 0; j < QK / 2; j++) {
            y[j] = ((q[j] & 0xF) - 8) * d;
            y[j + QK / 2] = ((q[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_1_BYTES, y += QK) {
        float d = q_ld_f16(b), m = q_ld_f16(b + Q4_1_M);
        const uint8_t *q = b + Q4_1_QS;
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (q[j] & 0xF) * d + m;
            y[j + QK / 2] = (q[j] >> 4) * d + m;
        }
    }
}

static void deq_q4_k(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += Q4_K_BYTES) {
        float d = q_ld_f16(b), dmin = q_ld_f16(b + QK_DMIN);
        const uint8_t *q = b + Q4_K_QS, *s = b + QK_SCALES;
        for (int j = 0; j < 4; j++, q += 32) {
            int sc, m;
            q_scale_min_k4(2 * j, s, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            q_scale_min_k4(2 * j + 1, s, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void deq_q5_k(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += Q5_K_BYTES) {
        float d = q_ld_f16(b), dmin = q_ld_f16(b + QK_DMIN);
        const uint8_t *ql = b + Q5_K_QS, *qh = b + Q5_K_QH, *s = b + QK_SCALES;
        for (int j = 0; j < 4; j++, ql += 32) {
            int sc, m;
            q_scale_min_k4(2 * j, s, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            q_scale_min_k4(2 * j + 1, s, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* The 6-bit quant (0..63) of element e (0..255) of a Q6_K block. */
static inline int q6_quant(const uint8_t *b, int e)
{
    int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    const uint8_t *ql = b + 64 * h, *qh = b + Q6_K_QH + 32 * h;
    int lo = quarter & 1 ? ql[l + 32] : ql[l];
    lo = quarter >= 2 ? lo >> 4 : lo & 0xF;
    return lo | (((qh[l] >> (2 * quarter)) & 3) << 4);
}

static void deq_q6_k(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += Q6_K_BYTES, y += QKK) {
        float d = q_ld_f16(b + Q6_K_D);
        const int8_t *sc = (const int8_t *)(b + Q6_K_SC);
        for (int e = 0; e < QKK; e++)
            y[e] = d * sc[e / 16] * (q6_quant(b, e) - 32);
    }
}

static void deq_q8_k(const void *src, float *y, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QKK; i++, b += Q8_K_BYTES, y += QKK) {
        float d = q_ldf(b);
        const int8_t *q = (const int8_t *)(b + Q8_K_QS);
        for (int j = 0; j < QKK; j++)
            y[j] = d * q[j];
    }
}

/* ---- quantization ------------------------------------------------------------------------ */

static void qz_f32(const float *x, void *dst, int64_t n)
{
    memcpy(dst, x, (size_t)n * sizeof(float));
}

static void qz_f16(const float *x, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = q_to_f16(x[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void qz_bf16(const float *x, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = q_to_bf16(x[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void st16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* One block of 32 to int8 with d = amax/127, as GGML's x86 kernels quantize activations (not its
 * scalar reference): x * (127/amax) rounded to nearest, ties to even; returns the sum. */
static int q8_block(const float *x, uint8_t *dhalf, int8_t *q, float *d_out)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; j++) {
        q[j] = (int8_t)nearbyintf(x[j] * id);
        sum += q[j];
    }
    st16(dhalf, q_to_f16(d));
    *d_out = d;
    return sum;
}

float ws__dot_q4_1_ggml_ref(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float acc[8] = {0}, summs = 0;
    for (int64_t i = 0; i < n / QK; i++, a += Q4_1_BYTES, b += Q8_1_BYTES) {
        summs += q_ld_f16(a + Q4_1_M) * q_ld_f16(b + Q8_1_S);
        float dd = q_ld_f16(a) * q_ld_f16(b);
        const int8_t *y = (const int8_t *)(b + Q8_1_QS);
        for (int k = 0; k < 8; k++) { /* elements 0..15 are the low nibbles, 16..31 the high ones */
            int s = 0;
            for (int e = 4 * k; e < 4 * k + 4; e++)
                s += (e < 16 ? a[Q4_1_QS + e] & 15 : a[Q4_1_QS + e - 16] >> 4) * y[e];
            acc[k] = fmaf(dd, (float)s, acc[k]);
        }
    }
    float r0 = (acc[0] + acc[4]) + (acc[2] + acc[6]), r1 = (acc[1] + acc[5]) + (acc[3] + acc[7]);
    return (r0 + r1) + summs;
}

static void qz_q8_0(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, x += QK) {
        float d;
        q8_block(x, b, (int8_t *)(b + Q8_0_QS), &d);
    }
}

static void qz_q8_0_fs(const float *x, void *dst, float *ds, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, x += QK) {
        int sum = q8_block(x, b, (int8_t *)(b + Q8_0_QS), &ds[2 * i]);
        ds[2 * i + 1] = -128.0f * (float)sum;
    }
}

static void qz_q8_1(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_1_BYTES, x += QK) {
        float d;
        int sum = q8_block(x, b, (int8_t *)(b + Q8_1_QS), &d);
        st16(b + Q8_1_S, q_to_f16((float)sum * d));
    }
}

/* round to nearest, ties to even, for |f| < 2^22 (GGML's nearest_int) */
static inline int nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static void qz_q8_k(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QKK; i++, b += Q8_K_BYTES, x += QKK) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QKK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        int8_t *q = (int8_t *)(b + Q8_K_QS);
        memset(b, 0, Q8_K_BYTES);
        if (amax == 0.0f)
            continue;
        float iscale = -127.0f / max, d = 1.0f / iscale;
        for (int j = 0; j < QKK; j++) {
            int v = nearest_int(iscale * x[j]);
            q[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < QKK / 16; g++) {
            int16_t s = 0;
            for (int j = 0; j < 16; j++)
                s = (int16_t)(s + q[16 * g + j]);
            memcpy(b + Q8_K_BSUMS + 2 * g, &s, 2);
        }
        memcpy(b, &d, 4);
    }
}

/* Q4_0 weights as gguf-py quantizes them (GGML's reference with the product and the +8.5
 * rounded once, as with FMA): d = -max/8 of the largest-magnitude value. */
static void qz_q4_0(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_0_BYTES, x += QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *q = b + Q4_0_QS;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (int)truncf((float)((double)x[j] * id + 8.5));
            int hi = (int)truncf((float)((double)x[j + QK / 2] * id + 8.5));
            q[j] = (uint8_t)((lo > 15 ? 15 : lo) | (hi > 15 ? 15 : hi) << 4);
        }
        st16(b, q_to_f16(d));
    }
}

/* Q4_1 weights as GGML's reference quantizes them: d = (max-min)/15, m = min. */
static void qz_q4_1(const float *x, void *dst, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_1_BYTES, x += QK) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < QK; j++) {
            mn = x[j] < mn ? x[j] : mn;
            mx = x[j] > mx ? x[j] : mx;
        }
        float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *q = b + Q4_1_QS;
        for (int j = 0; j < QK / 2; j++) {
            float v0 = (x[j] - mn) * id, v1 = (x[j + QK / 2] - mn) * id;
            int lo = (int)truncf(v0 + 0.5f), hi = (int)truncf(v1 + 0.5f);
            q[j] = (uint8_t)((lo > 15 ? 15 : lo) | (hi > 15 ? 15 : hi) << 4);
        }
        st16(b, q_to_f16(d));
        st16(b + Q4_1_M, q_to_f16(mn));
    }
}

/* ---- dot products ------------------------------------------------------------------------ */

static float dot_f32(int64_t n, const void *w, const void *x)
{
    const float *a = w, *b = x;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = 0.0f;
    for (int l = 0; l < 8; l++)
        s += acc[l];
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float dot_f16(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w;
    const float *b = x;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += q_ld_f16(a + 2 * (i + l)) * b[i + l];
    float s = 0.0f;
    for (int l = 0; l < 8; l++)
        s += acc[l];
    for (; i < n; i++)
        s += q_ld_f16(a + 2 * i) * b[i];
    return s;
}

static float dot_bf16(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w;
    const float *b = x;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += q_bf16(q_ld16(a + 2 * (i + l))) * b[i + l];
    float s = 0.0f;
    for (int l = 0; l < 8; l++)
        s += acc[l];
    for (; i < n; i++)
        s += q_bf16(q_ld16(a + 2 * i)) * b[i];
    return s;
}

static float dot_q4_0(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, a += Q4_0_BYTES, b += Q8_0_BYTES) {
        const uint8_t *q = a + Q4_0_QS;
        const int8_t *y = (const int8_t *)(b + Q8_0_QS);
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++)
            sumi += ((q[j] & 0xF) - 8) * y[j] + ((q[j] >> 4) - 8) * y[j + QK / 2];
        s += sumi * q_ld_f16(a) * q_ld_f16(b);
    }
    return s;
}

static float dot_q4_1(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, a += Q4_1_BYTES, b += Q8_1_BYTES) {
        const uint8_t *q = a + Q4_1_QS;
        const int8_t *y = (const int8_t *)(b + Q8_1_QS);
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++)
            sumi += (q[j] & 0xF) * y[j] + (q[j] >> 4) * y[j + QK / 2];
        s += (q_ld_f16(a) * q_ld_f16(b)) * sumi + q_ld_f16(a + Q4_1_M) * q_ld_f16(b + Q8_1_S);
    }
    return s;
}

static float dot_q8_0(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, a += Q8_0_BYTES, b += Q8_0_BYTES) {
        const int8_t *q = (const int8_t *)(a + Q8_0_QS), *y = (const int8_t *)(b + Q8_0_QS);
        int sumi = 0;
        for (int j = 0; j < QK; j++)
            sumi += q[j] * y[j];
        s += sumi * (q_ld_f16(a) * q_ld_f16(b));
    }
    return s;
}

/* k-quants: integer products per sub-block scaled by the 6/8-bit scale, accumulated in 8
 * int32 lanes per super-block, then d * lanes into 8 float lanes (GGML's scalar order). */
static void lanes_add(int32_t acc[8], const int8_t *q, const int8_t *y, int scale, int len)
{
    for (int j = 0; j < len; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += scale * (q[j + l] * y[j + l]);
}

static float k_finish(const float sums[8], float s)
{
    for (int l = 0; l < 8; l++)
        s += sums[l];
    return s;
}

/* the mins' part of a Q4_K/Q5_K super-block: sum over sub-blocks of min * the sums of y */
static int k_mins(const uint8_t *scales, const uint8_t *y)
{
    int sumi = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        q_scale_min_k4(j, scales, &sc, &m);
        sumi += m * (q_ldi16(y + Q8_K_BSUMS + 4 * j) + q_ldi16(y + Q8_K_BSUMS + 4 * j + 2));
    }
    return sumi;
}

static float dot_q45_k(int64_t n, const void *w, const void *x, bool five)
{
    const uint8_t *a = w, *b = x;
    size_t bytes = five ? Q5_K_BYTES : Q4_K_BYTES;
    float sums[8] = {0}, s = 0.0f;
    int8_t aux[QKK];
    for (int64_t i = 0; i < n / QKK; i++, a += bytes, b += Q8_K_BYTES) {
        const uint8_t *q = a + (five ? Q5_K_QS : Q4_K_QS), *qh = a + Q5_K_QH, *sc6 = a + QK_SCALES;
        for (int j = 0; j < 4; j++, q += 32)
            for (int l = 0; l < 32; l++) {
                int hi0 = five && (qh[l] >> (2 * j) & 1), hi1 = five && (qh[l] >> (2 * j + 1) & 1);
                aux[64 * j + l] = (int8_t)((q[l] & 0xF) + 16 * hi0);
                aux[64 * j + 32 + l] = (int8_t)((q[l] >> 4) + 16 * hi1);
            }
        int32_t acc[8] = {0};
        const int8_t *y = (const int8_t *)(b + Q8_K_QS);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q_scale_min_k4(j, sc6, &sc, &m);
            lanes_add(acc, aux + 32 * j, y + 32 * j, sc, 32);
        }
        float yd = q_ldf(b), d = q_ld_f16(a) * yd, dmin = q_ld_f16(a + QK_DMIN) * yd;
        for (int l = 0; l < 8; l++)
            sums[l] += d * acc[l];
        s -= dmin * k_mins(sc6, b);
    }
    return k_finish(sums, s);
}

static float dot_q4_k(int64_t n, const void *w, const void *x)
{
    return dot_q45_k(n, w, x, false);
}

static float dot_q5_k(int64_t n, const void *w, const void *x)
{
    return dot_q45_k(n, w, x, true);
}

static float dot_q6_k(int64_t n, const void *w, const void *x)
{
    const uint8_t *a = w, *b = x;
    float sums[8] = {0};
    int8_t aux[QKK];
    for (int64_t i = 0; i < n / QKK; i++, a += Q6_K_BYTES, b += Q8_K_BYTES) {
        for (int e = 0; e < QKK; e++)
            aux[e] = (int8_t)(q6_quant(a, e) - 32);
        int32_t acc[8] = {0};
        const int8_t *y = (const int8_t *)(b + Q8_K_QS), *sc = (const int8_t *)(a + Q6_K_SC);
        for (int g = 0; g < QKK / 16; g++)
            lanes_add(acc, aux + 16 * g, y + 16 * g, sc[g], 16);
        float d = q_ld_f16(a + Q6_K_D) * q_ldf(b);
        for (int l = 0; l < 8; l++)
            sums[l] += d * acc[l];
    }
    return k_finish(sums, 0.0f);
}

void ws__quant_fill_scalar(q_kernels *k)
{
    memset(k, 0, sizeof *k);
    k->dequant[WS_QT_F32] = deq_f32;
    k->dequant[WS_QT_F16] = deq_f16;
    k->dequant[WS_QT_BF16] = deq_bf16;
    k->dequant[WS_QT_Q8_0] = deq_q8_0;
    k->dequant[WS_QT_Q8_1] = deq_q8_1;
    k->dequant[WS_QT_Q4_0] = deq_q4_0;
    k->dequant[WS_QT_Q4_1] = deq_q4_1;
    k->dequant[WS_QT_Q4_K] = deq_q4_k;
    k->dequant[WS_QT_Q5_K] = deq_q5_k;
    k->dequant[WS_QT_Q6_K] = deq_q6_k;
    k->dequant[WS_QT_Q8_K] = deq_q8_k;
    k->quantize[WS_QT_F32] = qz_f32;
    k->quantize[WS_QT_F16] = qz_f16;
    k->quantize[WS_QT_BF16] = qz_bf16;
    k->quantize[WS_QT_Q8_0] = qz_q8_0;
    k->quantize_q8_0_fs = qz_q8_0_fs;
    k->quantize[WS_QT_Q8_1] = qz_q8_1;
    k->quantize[WS_QT_Q8_K] = qz_q8_k;
    k->quantize[WS_QT_Q4_0] = qz_q4_0;
    k->quantize[WS_QT_Q4_1] = qz_q4_1;
    k->dot[WS_QT_F32] = dot_f32;
    k->dot[WS_QT_F16] = dot_f16;
    k->dot[WS_QT_BF16] = dot_bf16;
    k->dot[WS_QT_Q4_0] = dot_q4_0;
    k->dot[WS_QT_Q4_1] = dot_q4_1;
    k->dot[WS_QT_Q8_0] = dot_q8_0;
    k->dot[WS_QT_Q4_K] = dot_q4_k;
    k->dot[WS_QT_Q5_K] = dot_q5_k;
    k->dot[WS_QT_Q6_K] = dot_q6_k;
}
