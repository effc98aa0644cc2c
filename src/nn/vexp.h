/* exp(x) in a form gcc vectorises inside `#pragma omp simd` loops (libm's expf is a call per
 * element): Cody-Waite range reduction and Cephes' degree-6 polynomial, within 1 ulp of the exact
 * value over the float range (checked against exp in double by test_nn_ops); x below -87 gives 0
 * and x above 88 gives exp(88); a NaN gives a NaN-like garbage value, never undefined behaviour. Needs
 * -fno-trapping-math for the selects to vectorise. */
#ifndef WS_NN_VEXP_H
#define WS_NN_VEXP_H

#include <math.h>
#include <stdint.h>

static inline float ws_vexpf(float x)
{
    float xc = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float t = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    float n = t - 12582912.0f;
    union {
        float f;
        int32_t i;
    } tu = {t};
    int32_t ni = tu.i - 0x4B400000;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        float f;
        int32_t i;
    } pu = {p};
    pu.i = (int32_t)((uint32_t)pu.i + ((uint32_t)ni << 23)); /* unsigned: a NaN input is no UB */
    return x < -87.0f ? 0.0f : pu.f;
}

/* exp(x) as GGML's AVX-512 kernel (ggml_v_expf) computes it, bit for bit: its
 * range reduction and polynomial with fused multiply-adds, scaled by 2^n exactly (one rounding
 * where the result is subnormal or overflows); below -150 it gives 0. Slow unless compiled with FMA. */
static inline float ws_vexpf_ggml(float x)
{
    if (x != x)
        return x; /* NaN in, NaN out (and no NaN converted to int below) */
    float z = fmaf(x, 0x1.715476p+0f, 0x1.8p23f);
    float n = z - 0x1.8p23f;
    n = n < -200.0f ? -200.0f : n > 200.0f ? 200.0f : n; /* ±inf: the result is 0 / inf either way */
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    float u = b * b;
    float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                   u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    int32_t ni = (int32_t)n;
    int32_t e = ni < -126 ? ni + 64 : ni > 127 ? ni - 64 : ni;
    union {
        float f;
        int32_t i;
    } p2 = {.i = (int32_t)((uint32_t)(e + 127) << 23)};
    float r = j * p2.f;
    r = ni < -126 ? r * 0x1p-64f : ni > 127 ? r * 0x1p64f : r;
    return ni < -150 ? 0.0f : ni > 192 ? INFINITY : r;
}

#endif
