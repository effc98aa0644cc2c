/* The quantized formats' table (names, block sizes) and the choice of kernels: the scalar
 * reference (quant_ref.c), the AVX2 and the AVX-512 versions (quant_avx2.c, quant_avx512.c),
 * picked at run time from what the CPU supports. */
#include "nn/quant.h"

#include "core/log.h"
#include "core/mem.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/quant_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

typedef struct {
    const char *name;
    size_t elems, bytes;
    bool weight;
} qtype_info;

/* Block layouts (bytes per block) as GGML defines them:
 *   Q4_0: f16 d, 16 bytes of 4-bit quants                    (32 elems, 18 bytes)
 *   Q4_1: f16 d, f16 m, 16 bytes of 4-bit quants             (32 elems, 20 bytes)
 *   Q8_0: f16 d, 32 int8                                      (32 elems, 34 bytes)
 *   Q8_1: f16 d, f16 s (= d * sum of quants), 32 int8         (32 elems, 36 bytes)
 *   Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of 4-bit quants (256, 144)
 *   Q5_K: as Q4_K plus 32 bytes of high bits                  (256 elems, 176 bytes)
 *   Q6_K: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, f16 d (256, 210)
 *   Q8_K: f32 d, 256 int8, 16 int16 block sums                (256 elems, 292 bytes) */
static const qtype_info infos[WS_QT_COUNT] = {
    [WS_QT_F32] = {"F32", 1, 4, true},       [WS_QT_F16] = {"F16", 1, 2, true},
    [WS_QT_Q4_0] = {"Q4_0", 32, 18, true},   [WS_QT_Q4_1] = {"Q4_1", 32, 20, true},
    [WS_QT_Q8_0] = {"Q8_0", 32, 34, true},   [WS_QT_Q8_1] = {"Q8_1", 32, 36, false},
    [WS_QT_Q4_K] = {"Q4_K", 256, 144, true}, [WS_QT_Q5_K] = {"Q5_K", 256, 176, true},
    [WS_QT_Q6_K] = {"Q6_K", 256, 210, true}, [WS_QT_Q8_K] = {"Q8_K", 256, 292, false},
    [WS_QT_BF16] = {"BF16", 1, 2, true},
};

static const qtype_info *info(int type)
{
    if (type < 0 || type >= WS_QT_COUNT || !infos[type].name)
        return NULL;
    return &infos[type];
}

const char *ws_qtype_name(int type)
{
    const qtype_info *i = info(type);
    return i ? i->name : NULL;
}

bool ws_qtype_is_weight(int type)
{
    const qtype_info *i = info(type);
    return i && i->weight;
}

size_t ws_qtype_block_elems(int type)
{
    const qtype_info *i = info(type);
    return i ? i->elems : 0;
}

size_t ws_qtype_block_bytes(int type)
{
    const qtype_info *i = info(type);
    return i ? i->bytes : 0;
}

size_t ws_qtype_row_bytes(int type, int64_t n)
{
    const qtype_info *i = info(type);
    if (!i || n < 0 || n % (int64_t)i->elems)
        return 0;
    return (size_t)(n / (int64_t)i->elems) * i->bytes;
}

ws_qtype ws_qtype_dot_type(ws_qtype t)
{
    switch (t) {
    case WS_QT_Q4_0:
    case WS_QT_Q8_0: return WS_QT_Q8_0;
    case WS_QT_Q4_1: return WS_QT_Q8_1;
    case WS_QT_Q4_K:
    case WS_QT_Q5_K:
    case WS_QT_Q6_K: return WS_QT_Q8_K;
    default: return WS_QT_F32;
    }
}

/* ---- kernels per instruction set --------------------------------------------------------- */

/* tables[isa]: the scalar kernels overridden by each level up to isa (AVX-512 keeps the AVX2
 * versions it has none of its own for) */
static q_kernels tables[3];
static bool isa_ok[3];
static ws_isa active_isa;
static const q_kernels *active;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void merge(q_kernels *dst, const q_kernels *src)
{
    if (src->quantize_q8_0_fs)
        dst->quantize_q8_0_fs = src->quantize_q8_0_fs;
    for (int t = 0; t < WS_QT_COUNT; t++) {
        if (src->dequant[t])
            dst->dequant[t] = src->dequant[t];
        if (src->quantize[t])
            dst->quantize[t] = src->quantize[t];
        if (src->dot[t])
            dst->dot[t] = src->dot[t];
        if (src->dot[t] || src->dotn[t]) /* a dotn goes with the dot it equals */
            dst->dotn[t] = src->dotn[t];
        if (src->gemm[t]) /* AVX-512 without its own keeps AVX2's */
            dst->gemm[t] = src->gemm[t];
    }
}

static void init_kernels(void)
{
    q_kernels own;
    ws__quant_fill_scalar(&tables[WS_ISA_SCALAR]);
    isa_ok[WS_ISA_SCALAR] = true;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    unsigned eax, ebx, ecx = 0, edx;
    bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C); /* clang lacks "f16c" here */
    isa_ok[WS_ISA_AVX2] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    isa_ok[WS_ISA_AVX512] = isa_ok[WS_ISA_AVX2] && __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512vnni");
#endif
    tables[WS_ISA_AVX2] = tables[WS_ISA_SCALAR];
    memset(&own, 0, sizeof own);
    ws__quant_fill_avx2(&own);
    merge(&tables[WS_ISA_AVX2], &own);
    tables[WS_ISA_AVX512] = tables[WS_ISA_AVX2];
    memset(&own, 0, sizeof own);
    ws__quant_fill_avx512(&own);
    merge(&tables[WS_ISA_AVX512], &own);
    active_isa = isa_ok[WS_ISA_AVX512] ? WS_ISA_AVX512 : isa_ok[WS_ISA_AVX2] ? WS_ISA_AVX2 : WS_ISA_SCALAR;
    active = &tables[active_isa];
}

static const q_kernels *kernels(void)
{
    pthread_once(&init_once, init_kernels);
    return active;
}

ws_isa ws_quant_isa(void)
{
    kernels();
    return active_isa;
}

bool ws_quant_force_isa(ws_isa isa)
{
    kernels();
    if ((unsigned)isa > WS_ISA_AVX512 || !isa_ok[isa])
        return false;
    active_isa = isa;
    active = &tables[isa];
    return true;
}

const char *ws_isa_name(ws_isa isa)
{
    static const char *const names[] = {"scalar", "avx2", "avx512"};
    return (unsigned)isa <= WS_ISA_AVX512 ? names[isa] : "unknown";
}

/* a type without the kernel asked for is the caller's bug, not a condition to handle */
static void no_kernel(const char *what, int type)
{
    WS_LOG(WS_LOG_ERROR, "quant.no_kernel", what, WS_LF_I("quant.type", type));
    abort();
}

void ws_dequant_row(ws_qtype type, const void *src, float *dst, int64_t n)
{
    const q_kernels *k = kernels();
    if ((unsigned)type >= WS_QT_COUNT || !k->dequant[type])
        no_kernel("dequantize", type);
    k->dequant[type](src, dst, n);
}

void ws_quantize_row(ws_qtype type, const float *x, void *dst, int64_t n)
{
    const q_kernels *k = kernels();
    if ((unsigned)type >= WS_QT_COUNT || !k->quantize[type])
        no_kernel("quantize", type);
    k->quantize[type](x, dst, n);
}

void ws__quant_q8_0_fs(const float *x, void *dst, float *ds, int64_t n)
{
    kernels()->quantize_q8_0_fs(x, dst, ds, n);
}

float ws_quant_dot_q4_1_ggml(int64_t n, const void *w_row, const void *x_row)
{
    if (ws__dot_q4_1_ggml_avx2 && ws_quant_isa() != WS_ISA_SCALAR)
        return ws__dot_q4_1_ggml_avx2(n, w_row, x_row);
    return ws__dot_q4_1_ggml_ref(n, w_row, x_row);
}

void ws_round_f16(float *x, int64_t n)
{
    uint16_t h[256];
    for (int64_t i = 0; i < n; i += 256) {
        int64_t k = n - i < 256 ? n - i : 256;
        ws_quantize_row(WS_QT_F16, x + i, h, k);
        ws_dequant_row(WS_QT_F16, h, x + i, k);
    }
}

float ws_quant_vec_dot(ws_qtype wt, int64_t n, const void *w_row, const void *x_row)
{
    const q_kernels *k = kernels();
    if ((unsigned)wt >= WS_QT_COUNT || !k->dot[wt])
        no_kernel("dot", wt);
    return k->dot[wt](n, w_row, x_row);
}

q_dot_fn ws__quant_dot_fn(ws_qtype wt)
{
    return (unsigned)wt < WS_QT_COUNT ? kernels()->dot[wt] : NULL;
}

q_dotn_fn ws__quant_dotn_fn(ws_qtype wt)
{
    return (unsigned)wt < WS_QT_COUNT ? kernels()->dotn[wt] : NULL;
}

q_gemm_fn ws__quant_gemm_fn(ws_qtype wt)
{
    return (unsigned)wt < WS_QT_COUNT ? kernels()->gemm[wt] : NULL;
}

void ws__quant_gemm_scales(ws_qtype dt, const void *x, size_t x_stride, int nx, int64_t n, float *xds)
{
    int64_t nb = n / QK;
    size_t bb = dt == WS_QT_Q8_1 ? Q8_1_BYTES : Q8_0_BYTES;
    for (int i = 0; i < nx; i++) {
        const uint8_t *b = (const uint8_t *)x + (size_t)i * x_stride;
        float *o = xds + (size_t)i * 2 * (size_t)nb;
        for (int64_t k = 0; k < nb; k++, b += bb) {
            o[2 * k] = q_ld_f16(b);
            if (dt == WS_QT_Q8_1) {
                o[2 * k + 1] = q_ld_f16(b + Q8_1_S);
                continue;
            }
            int sum = 0;
            for (int j = 0; j < QK; j++)
                sum += (int8_t)b[Q8_0_QS + j];
            o[2 * k + 1] = -128.0f * (float)sum;
        }
    }
}

void ws_quant_gemm(ws_qtype wt, int64_t n, const void *w, size_t w_stride, int rows, const void *x,
                   size_t x_stride, int nx, float *out, size_t out_stride)
{
    const q_kernels *k = kernels();
    if ((unsigned)wt >= WS_QT_COUNT || !k->dot[wt])
        no_kernel("dot", wt);
    if (k->gemm[wt]) {
        float *xds = ws_xmalloc((size_t)nx * 2 * (size_t)(n / QK) * sizeof *xds + 1);
        ws__quant_gemm_scales(ws_qtype_dot_type(wt), x, x_stride, nx, n, xds);
        k->gemm[wt](n, w, w_stride, rows, x, x_stride, xds, nx, out, out_stride, 0.0f);
        free(xds);
        return;
    }
    for (int i = 0; i < nx; i++)
        for (int r = 0; r < rows; r++)
            out[(size_t)i * out_stride + r] = k->dot[wt](n, (const uint8_t *)w + (size_t)r * w_stride,
                                                         (const uint8_t *)x + (size_t)i * x_stride);
}

void ws_quant_vec_dotn(ws_qtype wt, int64_t n, const void *w_row, const void *x_rows, size_t x_stride, int nx,
                       float *out)
{
    const q_kernels *k = kernels();
    if ((unsigned)wt >= WS_QT_COUNT || !k->dot[wt])
        no_kernel("dot", wt);
    if (k->dotn[wt]) {
        k->dotn[wt](n, w_row, x_rows, x_stride, nx, out);
        return;
    }
    for (int r = 0; r < nx; r++)
        out[r] = k->dot[wt](n, w_row, (const uint8_t *)x_rows + (size_t)r * x_stride);
}
