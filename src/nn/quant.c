/* The quantized formats' table (names, block sizes) and the scalar reference kernels:
 * dequantizing rows, quantizing activations and dot products on quantized blocks. The AVX2
 * and AVX-512 versions live in quant_avx2.c / quant_avx512.c and are picked here at run time. */
#include "nn/quant.h"

#include <stddef.h>

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
    [WS_QT_F32] = {"F32", 1, 4, true},
    [WS_QT_F16] = {"F16", 1, 2, true},
    [WS_QT_Q4_0] = {"Q4_0", 32, 18, true},
    [WS_QT_Q4_1] = {"Q4_1", 32, 20, true},
    [WS_QT_Q8_0] = {"Q8_0", 32, 34, true},
    [WS_QT_Q8_1] = {"Q8_1", 32, 36, false},
    [WS_QT_Q4_K] = {"Q4_K", 256, 144, true},
    [WS_QT_Q5_K] = {"Q5_K", 256, 176, true},
    [WS_QT_Q6_K] = {"Q6_K", 256, 210, true},
    [WS_QT_Q8_K] = {"Q8_K", 256, 292, false},
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
    case WS_QT_Q8_0:
        return WS_QT_Q8_0;
    case WS_QT_Q4_1:
        return WS_QT_Q8_1;
    case WS_QT_Q4_K:
    case WS_QT_Q5_K:
    case WS_QT_Q6_K:
        return WS_QT_Q8_K;
    default:
        return WS_QT_F32;
    }
}
