/* Tests of the quantized formats and kernels (nn/quant.h): every SIMD version against the
 * scalar one, the scalar one against gguf-py's reference data (tests/reference/quant/, made by
 * tools/reference/make_quant_ref.py), the base model's own tensors, and the quantized matrix
 * products against f32 products on the dequantized matrices. */
#include "harness.h"

#include <stdbool.h>

#include "nn/quant.h"
#include "nn/quant_int.h"

#define REF_DIR "tests/reference/quant/"
#define MODEL_PATH "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static float rndf(void) /* roughly normal, mean 0, sd 1 */
{
    float s = 0.0f;
    for (int i = 0; i < 4; i++)
        s += (float)rnd() / 4294967296.0f;
    return (s - 2.0f) * 1.7320508f;
}

static const ws_qtype weight_types[] = {WS_QT_F32,  WS_QT_F16,  WS_QT_BF16, WS_QT_Q8_0, WS_QT_Q4_0,
                                        WS_QT_Q4_1, WS_QT_Q4_K, WS_QT_Q5_K, WS_QT_Q6_K};
#define N_WEIGHT_TYPES (sizeof weight_types / sizeof weight_types[0])

/* the instruction sets this CPU runs (scalar first) */
static int isas(ws_isa out[3])
{
    ws_isa best = ws_quant_isa();
    int n = 0;
    for (int i = WS_ISA_SCALAR; i <= WS_ISA_AVX512; i++)
        if (ws_quant_force_isa((ws_isa)i))
            out[n++] = (ws_isa)i;
    ws_quant_force_isa(best);
    return n;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* a finite half scale: mostly small normal values of both signs, sometimes extreme */
static uint16_t rnd_scale(int i)
{
    switch (i % 11) {
    case 3: return 0;      /* zero */
    case 5: return 0x7bff; /* 65504 */
    case 7: return 0xfbff; /* -65504 */
    case 9: return 0x0001; /* smallest subnormal */
    default: return q_to_f16(rndf() * 0.05f);
    }
}

/* where a block's quants lie (the bytes that are not scales) */
static void quant_area(ws_qtype t, size_t *off, size_t *len)
{
    size_t bb = ws_qtype_block_bytes(t);
    switch (t) {
    case WS_QT_Q8_0:
    case WS_QT_Q4_0: *off = 2; break;
    case WS_QT_Q4_1: *off = 4; break;
    case WS_QT_Q4_K:
    case WS_QT_Q5_K: *off = 16; break;
    case WS_QT_Q6_K:
        *off = 0;
        *len = Q6_K_SC;
        return;
    default:
        *off = 0;
        *len = 0;
        return;
    }
    *len = bb - *off;
}

/* n elements' worth of random blocks of a weight type, all finite; with `extreme`, scales
 * include 0, +-65504 and subnormals, and some blocks have all-zero or all-maximum quants */
static void rnd_weights(ws_qtype t, uint8_t *dst, int64_t n, bool extreme)
{
    size_t nb = (size_t)(n / (int64_t)ws_qtype_block_elems(t)), bb = ws_qtype_block_bytes(t);
    for (size_t i = 0; i < nb * bb; i++)
        dst[i] = (uint8_t)rnd();
    for (size_t b = 0; b < nb; b++) {
        uint8_t *p = dst + b * bb;
        int k = extreme ? (int)(rnd() % 11) : 0;
        switch (t) {
        case WS_QT_F32: {
            float v = rndf();
            memcpy(p, &v, 4);
            break;
        }
        case WS_QT_F16: put16(p, extreme ? (uint16_t)(rnd() & 0xfbff) : q_to_f16(rndf())); break;
        case WS_QT_BF16: put16(p, (uint16_t)(q_f32_bits(rndf() * (extreme ? 1e30f : 1.0f)) >> 16)); break;
        case WS_QT_Q8_0:
        case WS_QT_Q4_0: put16(p, rnd_scale(k)); break;
        case WS_QT_Q4_1:
        case WS_QT_Q4_K:
        case WS_QT_Q5_K:
            put16(p, rnd_scale(k));
            put16(p + 2, rnd_scale(k + 1));
            break;
        case WS_QT_Q6_K: put16(p + Q6_K_D, rnd_scale(k)); break;
        default: break;
        }
        size_t off, len;
        quant_area(t, &off, &len);
        if (extreme && len && b % 5 == 1)
            memset(p + off, 0, len);
        if (extreme && len && b % 5 == 3)
            memset(p + off, t == WS_QT_Q8_0 ? 0x80 : 0xFF, len); /* -128 / 15 / 63 */
    }
}

/* random activations quantized to the dot type of wt (f32 for float weights) */
static void rnd_acts(ws_qtype wt, float *x, uint8_t *xq, int64_t n, bool extreme)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rndf() * (extreme && i % 97 == 5 ? 1000.0f : 1.0f);
    if (extreme && n >= 64)
        memset(x + 32, 0, 32 * sizeof(float)); /* an all-zero block */
    ws_quantize_row(ws_qtype_dot_type(wt), x, xq, n);
}

/* ---- half and bfloat conversions ------------------------------------------------------------ */

static void test_f16_convert(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN */
        float f = q_f16((uint16_t)h);
        if (q_to_f16(f) != h)
            bad++;
        /* the midpoint to the next half up rounds to the even one of the two */
        if ((h & 0x7fff) < 0x7bff) {
            float g = q_f16((uint16_t)(h + 1));
            float mid = (float)(((double)f + (double)g) / 2);
            uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if ((h & 0x7fff) == 0 && (h & 0x8000))
                continue; /* -0 next to the subnormals: the midpoint is -tiny, not positive */
            if (q_to_f16(mid) != want)
                bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(q_to_f16(1e6f), 0x7c00);
    CHECK_EQ_INT(q_to_f16(-65520.0f), 0xfc00);
    CHECK_EQ_INT(q_to_f16(65519.0f), 0x7bff);
    CHECK(isnan(q_f16(q_to_f16(NAN))));
    CHECK_EQ_INT(q_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(q_to_bf16(q_bits_f32(0x3f808000u)), 0x3f80); /* tie to even (down) */
    CHECK_EQ_INT(q_to_bf16(q_bits_f32(0x3f818000u)), 0x3f82); /* tie to even (up) */
    float src[3] = {1.5f, -2.25f, 65504.0f}, back[3];
    uint16_t h[3];
    ws_quantize_row(WS_QT_F16, src, h, 3);
    ws_dequant_row(WS_QT_F16, h, back, 3);
    CHECK(memcmp(src, back, sizeof src) == 0);
    ws_quantize_row(WS_QT_BF16, src, h, 3);
    ws_dequant_row(WS_QT_BF16, h, back, 3);
    CHECK(back[0] == 1.5f && back[1] == -2.25f && back[2] == 65536.0f);
}

static void test_table(void)
{
    CHECK_EQ_STR(ws_qtype_name(WS_QT_Q4_1), "Q4_1");
    CHECK(ws_qtype_name(7) == NULL);
    CHECK_EQ_INT(ws_qtype_row_bytes(WS_QT_Q4_1, 576), 360);
    CHECK_EQ_INT(ws_qtype_row_bytes(WS_QT_Q6_K, 512), 420);
    CHECK_EQ_INT(ws_qtype_row_bytes(WS_QT_Q4_1, 33), 0);
    CHECK(ws_qtype_dot_type(WS_QT_Q4_1) == WS_QT_Q8_1);
    CHECK(ws_qtype_dot_type(WS_QT_Q5_K) == WS_QT_Q8_K);
    ws_isa list[3];
    int n = isas(list);
    CHECK(n >= 1 && list[0] == WS_ISA_SCALAR);
    printf("     kernels in use: %s (%d instruction sets testable)\n", ws_isa_name(ws_quant_isa()), n);
}

/* ---- reference data from gguf-py ------------------------------------------------------------ */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    *len = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    return buf;
}

static void test_dequant_reference(void)
{
    static const char *names[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"};
    ws_isa list[3];
    int n_isa = isas(list), files = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, REF_DIR "deq_%s.bin", names[i]);
        size_t len = 0;
        uint8_t *buf = read_file(path, &len);
        CHECK(buf != NULL);
        if (!buf)
            continue;
        uint32_t type, n;
        memcpy(&type, buf + 4, 4);
        memcpy(&n, buf + 8, 4);
        size_t rb = ws_qtype_row_bytes((ws_qtype)type, n);
        CHECK_EQ_STR(ws_qtype_name((int)type), names[i]);
        CHECK_EQ_INT(len, 12 + rb + 4 * (size_t)n);
        if (memcmp(buf, "WSQD", 4) || len != 12 + rb + 4 * (size_t)n) {
            free(buf);
            continue;
        }
        float *want = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
        memcpy(want, buf + 12 + rb, 4 * (size_t)n);
        for (int k = 0; k < n_isa; k++) {
            ws_quant_force_isa(list[k]);
            memset(got, 0xAB, 4 * (size_t)n);
            ws_dequant_row((ws_qtype)type, buf + 12, got, n);
            int bad = 0;
            for (uint32_t e = 0; e < n; e++)
                bad += q_f32_bits(got[e]) != q_f32_bits(want[e]);
            if (bad)
                fprintf(stderr, "  %s under %s: %d of %u values differ\n", names[i], ws_isa_name(list[k]),
                        bad, n);
            CHECK_EQ_INT(bad, 0);
        }
        ws_quant_force_isa(list[n_isa - 1]);
        files++;
        free(want);
        free(got);
        free(buf);
    }
    CHECK_EQ_INT(files, 9);
}

static void test_quantize_reference(void)
{
    static const char *names[] = {"Q8_0", "Q4_0", "Q4_1"};
    ws_isa list[3];
    int n_isa = isas(list);
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, REF_DIR "quant_%s.bin", names[i]);
        size_t len = 0;
        uint8_t *buf = read_file(path, &len);
        CHECK(buf != NULL);
        if (!buf)
            continue;
        uint32_t type, n;
        memcpy(&type, buf + 4, 4);
        memcpy(&n, buf + 8, 4);
        size_t rb = ws_qtype_row_bytes((ws_qtype)type, n);
        CHECK_EQ_INT(len, 12 + 4 * (size_t)n + rb);
        if (len != 12 + 4 * (size_t)n + rb) {
            free(buf);
            continue;
        }
        float *x = malloc(4 * (size_t)n);
        memcpy(x, buf + 12, 4 * (size_t)n);
        uint8_t *got = malloc(rb);
        for (int k = 0; k < n_isa; k++) {
            ws_quant_force_isa(list[k]);
            ws_quantize_row((ws_qtype)type, x, got, n);
            size_t bad = 0;
            for (size_t b = 0; b < rb; b++)
                bad += got[b] != buf[12 + 4 * (size_t)n + b];
            if (bad)
                fprintf(stderr, "  %s under %s: %zu bytes differ\n", names[i], ws_isa_name(list[k]), bad);
            CHECK_EQ_INT(bad, 0);
        }
        ws_quant_force_isa(list[n_isa - 1]);
        free(got);
        free(x);
        free(buf);
    }
}

/* the base model's own tensors: the first rows at the offsets gguf-py reported */
static void test_model_rows(void)
{
    size_t len = 0;
    uint8_t *ref = read_file(REF_DIR "model.bin", &len);
    CHECK(ref != NULL && len > 16 && memcmp(ref, "WSQM", 4) == 0);
    FILE *f = fopen(MODEL_PATH, "rb");
    if (!ref || !f) {
        printf("     (base model not installed: tools/setup-base-model.sh; its rows not checked)\n");
        free(ref);
        if (f)
            fclose(f);
        return;
    }
    uint32_t count;
    uint64_t size;
    memcpy(&count, ref + 4, 4);
    memcpy(&size, ref + 8, 8);
    fseek(f, 0, SEEK_END);
    CHECK_EQ_INT((uint64_t)ftell(f), size);
    size_t at = 16;
    ws_isa list[3];
    int n_isa = isas(list), checked = 0;
    for (uint32_t t = 0; t < count && at + 20 <= len; t++) {
        uint32_t type, cols, rows;
        uint64_t off;
        memcpy(&type, ref + at, 4);
        memcpy(&cols, ref + at + 4, 4);
        memcpy(&rows, ref + at + 8, 4);
        memcpy(&off, ref + at + 12, 8);
        at += 20;
        size_t rb = ws_qtype_row_bytes((ws_qtype)type, cols), nf = (size_t)rows * cols;
        CHECK(rb > 0 && at + 4 * nf <= len);
        if (!rb || at + 4 * nf > len)
            break;
        uint8_t *raw = malloc(rb * rows);
        float *got = malloc(4 * nf);
        fseek(f, (long)off, SEEK_SET);
        CHECK_EQ_INT(fread(raw, 1, rb * rows, f), rb * rows);
        for (int k = 0; k < n_isa; k++) {
            ws_quant_force_isa(list[k]);
            for (uint32_t r = 0; r < rows; r++)
                ws_dequant_row((ws_qtype)type, raw + r * rb, got + (size_t)r * cols, cols);
            CHECK(memcmp(got, ref + at, 4 * nf) == 0);
        }
        ws_quant_force_isa(list[n_isa - 1]);
        at += 4 * nf;
        checked++;
        free(raw);
        free(got);
    }
    CHECK_EQ_INT(checked, count);
    CHECK(count >= 2);
    fclose(f);
    free(ref);
}

/* ---- every instruction set against the scalar kernels ---------------------------------------- */

static void test_isa_dequant(void)
{
    ws_isa list[3];
    int n_isa = isas(list);
    const int64_t n = 4096;
    uint8_t *w = malloc(ws_qtype_row_bytes(WS_QT_F32, n));
    float *want = malloc(4 * n), *got = malloc(4 * n);
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
        rnd_weights(weight_types[t], w, n, true);
        ws_quant_force_isa(WS_ISA_SCALAR);
        ws_dequant_row(weight_types[t], w, want, n);
        for (int k = 1; k < n_isa; k++) {
            ws_quant_force_isa(list[k]);
            ws_dequant_row(weight_types[t], w, got, n);
            CHECK(memcmp(want, got, 4 * n) == 0);
        }
    }
    ws_quant_force_isa(list[n_isa - 1]);
    free(w);
    free(want);
    free(got);
}

static void test_isa_quantize(void)
{
    static const ws_qtype types[] = {WS_QT_Q8_0, WS_QT_Q8_1, WS_QT_Q8_K, WS_QT_Q4_0,
                                     WS_QT_Q4_1, WS_QT_F16,  WS_QT_BF16};
    ws_isa list[3];
    int n_isa = isas(list);
    const int64_t n = 8192;
    float *x = malloc(4 * n);
    uint8_t *want = malloc(4 * n), *got = malloc(4 * n);
    for (int rep = 0; rep < 4; rep++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = rndf() * (rep == 1 ? 1e-30f : rep == 2 ? 1e4f : 1.0f);
        memset(x + 256, 0, 256 * sizeof(float)); /* zero blocks */
        for (int i = 0; i < 32; i++)             /* exact halves of d: ties */
            x[512 + i] = (float)(i - 16) * 0.5f;
        x[512] = -127.0f;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            size_t rb = ws_qtype_row_bytes(types[t], n);
            ws_quant_force_isa(WS_ISA_SCALAR);
            ws_quantize_row(types[t], x, want, n);
            for (int k = 1; k < n_isa; k++) {
                ws_quant_force_isa(list[k]);
                memset(got, 0x55, rb);
                ws_quantize_row(types[t], x, got, n);
                CHECK(memcmp(want, got, rb) == 0);
            }
        }
    }
    /* what the scalar quantizers write: Q8_1's s is d * the sum of the quants, Q8_K's sums per 16 */
    ws_quant_force_isa(WS_ISA_SCALAR);
    ws_quantize_row(WS_QT_Q8_1, x, got, 256);
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += (int8_t)got[Q8_1_QS + j];
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    CHECK_EQ_INT(q_ld16(got + Q8_1_S), q_to_f16((float)sum * (amax / 127.0f)));
    ws_quantize_row(WS_QT_Q8_K, x, got, 256);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += (int8_t)got[Q8_K_QS + 16 * g + j];
        CHECK_EQ_INT(q_ldi16(got + Q8_K_BSUMS + 2 * g), s);
    }
    float back[256];
    ws_dequant_row(WS_QT_Q8_K, got, back, 256);
    for (int j = 0; j < 256; j++)
        CHECK_NEAR(back[j], x[j], fabsf(q_ldf(got)) * 0.5001f);
    ws_quant_force_isa(list[n_isa - 1]);
    free(x);
    free(want);
    free(got);
}

/* sum of |w_i x_i| over the dequantized rows (+ |m s| of Q4_1), the scale of a dot's rounding */
static double abs_dot(ws_qtype wt, const uint8_t *w, const uint8_t *xq, const float *x, int64_t n,
                      double *exact)
{
    float *wd = malloc(4 * n), *xd = malloc(4 * n);
    ws_dequant_row(wt, w, wd, n);
    ws_qtype dt = ws_qtype_dot_type(wt);
    if (dt == WS_QT_F32)
        memcpy(xd, x, 4 * n);
    else
        ws_dequant_row(dt, xq, xd, n);
    double s = 0.0, e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += fabs((double)wd[i] * xd[i]);
        e += (double)wd[i] * xd[i];
    }
    if (wt == WS_QT_Q4_1) /* GGML's Q4_1 dot takes m * s, s the block's stored (f16) d * sum */
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *yb = xq + b * Q8_1_BYTES;
            double m = q_ld_f16(w + b * Q4_1_BYTES + Q4_1_M), ysum = 0.0;
            for (int j = 0; j < 32; j++)
                ysum += (int8_t)yb[Q8_1_QS + j];
            s += fabs(m * q_ld_f16(yb + Q8_1_S));
            e += m * (q_ld_f16(yb + Q8_1_S) - ysum * q_ld_f16(yb));
        }
    *exact = e;
    free(wd);
    free(xd);
    return s;
}

/* The multi-row dot under every instruction set: bit for bit the single-row dot of the same
 * set (so a batch of replies computes what each alone would), for 1..9 activation rows, whole
 * and odd block counts; and within the single-row test's bound of the scalar reference. */
static void test_isa_dotn(void)
{
    ws_isa list[3];
    int n_isa = isas(list);
    const int64_t n = 2048 + 256;
    enum { ROWS = 9 };
    uint8_t *w = malloc(4 * n), *xq = malloc(4 * n * ROWS);
    float *x = malloc(4 * n), got[ROWS], ref[ROWS];
    for (int rep = 0; rep < 4; rep++) {
        for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
            ws_qtype wt = weight_types[t];
            int64_t len =
                ws_qtype_block_elems(wt) == 32 && rep >= 2 ? 32 * 13 : n; /* 13 blocks: every tail */
            size_t stride = ws_qtype_row_bytes(ws_qtype_dot_type(wt), len);
            rnd_weights(wt, w, len, rep % 2 == 1);
            for (int r = 0; r < ROWS; r++)
                rnd_acts(wt, x, xq + r * stride, len, rep % 2 == 1);
            for (int k = 0; k < n_isa; k++) {
                ws_quant_force_isa(list[k]);
                for (int nx = 1; nx <= ROWS; nx++) {
                    ws_quant_vec_dotn(wt, len, w, xq, stride, nx, got);
                    for (int r = 0; r < nx; r++)
                        ref[r] = ws_quant_vec_dot(wt, len, w, xq + r * stride);
                    bool same = !memcmp(got, ref, (size_t)nx * sizeof *got);
                    if (!same)
                        fprintf(stderr, "  dotn %s under %s, %d rows (rep %d): %.9g vs %.9g\n",
                                ws_qtype_name(wt), ws_isa_name(list[k]), nx, rep, got[nx - 1], ref[nx - 1]);
                    CHECK(same);
                }
            }
            ws_quant_force_isa(WS_ISA_SCALAR);
            float sref = ws_quant_vec_dot(wt, len, w, xq + (ROWS - 1) * stride);
            ws_quant_force_isa(list[n_isa - 1]);
            double exact, scale = abs_dot(wt, w, xq + (ROWS - 1) * stride, x, len, &exact);
            CHECK_NEAR(got[ROWS - 1], sref, 1e-5 * scale + 1e-30);
        }
    }
    ws_quant_force_isa(list[n_isa - 1]);
    free(w);
    free(xq);
    free(x);
}

/* The many-row kernels (8-bit activations x Q4_1 or Q8_0 blocks, 16 (AVX-512) or 8 (AVX2) weight
 * rows x up to 8 or 4 activation rows a step) under every instruction set that has them: each
 * output within the single-row test's bound of the scalar reference dot, for row counts with and
 * without a tail, 1..13 and 20 activation rows (every step size and remainder), 13 blocks, the 18
 * of a 576-wide row and 50 (over the kernels' 48-block tile: two passes adding into the output);
 * extreme weights and activations in some rows (Q8_0 weights of -128 included). */
static void test_isa_gemm(void)
{
    ws_isa list[3];
    int n_isa = isas(list);
    static const int64_t lens[] = {32 * 13, 576, 32 * 50};
    static const int rows_list[] = {16, 37};
    static const ws_qtype gemm_types[] = {WS_QT_Q4_1, WS_QT_Q8_0};
    enum { NX = 20, MAXR = 37 };
    int tested = 0;
    for (size_t ti = 0; ti < 2 * sizeof lens / sizeof lens[0]; ti++) {
        ws_qtype wt = gemm_types[ti % 2];
        size_t li = ti / 2;
        int64_t len = lens[li];
        size_t ws = ws_qtype_row_bytes(wt, len), xs = ws_qtype_row_bytes(ws_qtype_dot_type(wt), len);
        uint8_t *w = malloc(ws * MAXR), *xq = malloc(xs * NX);
        float *x = malloc(sizeof(float) * len * NX), *ref = malloc(sizeof(float) * MAXR * NX);
        float *got = malloc(sizeof(float) * MAXR * NX);
        double *scale = malloc(sizeof(double) * MAXR * NX);
        for (int r = 0; r < MAXR; r++)
            rnd_weights(wt, w + r * ws, len, (r + (int)li) % 5 == 3);
        if (wt == WS_QT_Q8_0) /* a quant of -128 (GGML's quantizer never writes one; a file may) */
            w[3 * ws + Q8_0_QS + 5] = 0x80;
        for (int i = 0; i < NX; i++)
            rnd_acts(wt, x + i * len, xq + i * xs, len, i % 7 == 2);
        ws_quant_force_isa(WS_ISA_SCALAR);
        for (int i = 0; i < NX; i++)
            for (int r = 0; r < MAXR; r++) {
                double exact;
                ref[i * MAXR + r] = ws_quant_vec_dot(wt, len, w + r * ws, xq + i * xs);
                scale[i * MAXR + r] = abs_dot(wt, w + r * ws, xq + i * xs, x + i * len, len, &exact);
            }
        for (int k = 0; k < n_isa; k++) {
            ws_quant_force_isa(list[k]);
            if (!ws__quant_gemm_fn(wt))
                continue;
            for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
                for (int nx = 1; nx <= NX; nx = nx == 13 ? NX : nx + 1) {
                    int rows = rows_list[ri], bad = 0;
                    ws_quant_gemm(wt, len, w, ws, rows, xq, xs, nx, got, MAXR);
                    for (int i = 0; i < nx; i++)
                        for (int r = 0; r < rows; r++)
                            bad += !(fabs(got[i * MAXR + r] - ref[i * MAXR + r]) <=
                                     1e-5 * scale[i * MAXR + r] + 1e-30);
                    if (bad)
                        fprintf(stderr, "  gemm %s under %s, %d x %d, %d elems: %d outputs off\n",
                                ws_qtype_name(wt), ws_isa_name(list[k]), rows, nx, (int)len, bad);
                    CHECK_EQ_INT(bad, 0);
                    tested++;
                }
        }
        free(w), free(xq), free(x), free(ref), free(got), free(scale);
    }
    ws_quant_force_isa(list[n_isa - 1]);
    /* this test runs on AVX2 machines at least (the project's build and CI machines) */
    CHECK(tested > 0);
}

static void test_isa_dot(void)
{
    ws_isa list[3];
    int n_isa = isas(list);
    const int64_t n = 2048 + 256;
    uint8_t *w = malloc(4 * n), *xq = malloc(4 * n);
    float *x = malloc(4 * n);
    for (int rep = 0; rep < 6; rep++) {
        bool extreme = rep % 2 == 1;
        for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
            ws_qtype wt = weight_types[t];
            int64_t len = ws_qtype_block_elems(wt) == 32 && rep >= 4 ? n - 32 * 3 : n; /* odd block count */
            rnd_weights(wt, w, len, extreme);
            rnd_acts(wt, x, xq, len, extreme);
            ws_quant_force_isa(WS_ISA_SCALAR);
            float ref = ws_quant_vec_dot(wt, len, w, xq);
            double exact, scale = abs_dot(wt, w, xq, x, len, &exact);
            /* the scalar dot is the math: the products of the dequantized rows */
            if (!(fabs((double)ref - exact) <= 1e-5 * scale + 1e-30))
                fprintf(stderr, "  scalar %s (rep %d): %g vs %g\n", ws_qtype_name(wt), rep, ref, exact);
            CHECK_NEAR(ref, exact, 1e-5 * scale + 1e-30);
            for (int k = 1; k < n_isa; k++) {
                ws_quant_force_isa(list[k]);
                float got = ws_quant_vec_dot(wt, len, w, xq);
                if (!(fabs((double)got - ref) <= 1e-5 * scale + 1e-30))
                    fprintf(stderr, "  %s under %s (rep %d): %g vs %g\n", ws_qtype_name(wt),
                            ws_isa_name(list[k]), rep, got, ref);
                CHECK_NEAR(got, ref, 1e-5 * scale + 1e-30);
            }
        }
    }
    ws_quant_force_isa(list[n_isa - 1]);
    free(w);
    free(xq);
    free(x);
}

/* ---- matrix products ---------------------------------------------------------------------- */

typedef struct {
    ws_qmat m;
    uint8_t *data;
    float *deq; /* rows x cols, what the matrix holds */
} test_mat;

static void make_mat(test_mat *t, ws_qtype type, int rows, int cols)
{
    size_t rb = ws_qtype_row_bytes(type, cols);
    t->data = malloc(rb * rows);
    t->deq = malloc(sizeof(float) * rows * cols);
    float *tmp = malloc(sizeof(float) * cols);
    for (int r = 0; r < rows; r++) {
        if (type == WS_QT_Q4_0 || type == WS_QT_Q4_1 || type == WS_QT_Q8_0 || type <= WS_QT_F16 ||
            type == WS_QT_BF16) {
            for (int c = 0; c < cols; c++)
                tmp[c] = rndf() * 0.1f;
            ws_quantize_row(type, tmp, t->data + rb * r, cols);
        } else {
            rnd_weights(type, t->data + rb * r, cols, false);
        }
    }
    t->m = (ws_qmat){type, rows, cols, rb, t->data, false};
    for (int r = 0; r < rows; r++)
        ws_qmat_row(&t->m, r, t->deq + (size_t)r * cols);
    free(tmp);
}

static void free_mat(test_mat *t)
{
    free(t->data);
    free(t->deq);
}

static double norm(const float *v, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

static void check_forward(ws_qtype type, int N)
{
    const int OC = 200, IC = 512;
    test_mat t;
    make_mat(&t, type, OC, IC);
    float *inp = malloc(sizeof(float) * N * IC), *out = malloc(sizeof(float) * N * OC);
    float *out0 = malloc(sizeof(float) * N * OC), *bias = malloc(sizeof(float) * OC);
    for (int i = 0; i < N * IC; i++)
        inp[i] = rndf();
    for (int i = 0; i < OC; i++)
        bias[i] = rndf();
    for (int i = 0; i < N * OC; i++)
        out0[i] = rndf();
    double tol_rel = N < 16 && ws_qtype_dot_type(type) != WS_QT_F32 ? 1e-2 : 1e-5;
    for (int variant = 0; variant < 2; variant++) { /* no bias, beta 0; bias, beta 1 */
        memcpy(out, out0, sizeof(float) * N * OC);
        ws_qmat_forward(out, inp, &t.m, variant ? bias : NULL, N, variant ? 1.0f : 0.0f);
        int bad = 0;
        for (int n = 0; n < N; n++)
            for (int r = 0; r < OC; r++) {
                double want = 0.0;
                for (int c = 0; c < IC; c++)
                    want += (double)inp[n * IC + c] * t.deq[r * IC + c];
                if (variant)
                    want += bias[r] + out0[n * OC + r];
                double tol = tol_rel * norm(inp + n * IC, IC) * norm(t.deq + r * IC, IC) + 1e-5 * fabs(want);
                bad += !(fabs(out[n * OC + r] - want) <= tol);
            }
        if (bad)
            fprintf(stderr, "  forward %s N=%d variant %d: %d outputs off\n", ws_qtype_name(type), N, variant,
                    bad);
        CHECK_EQ_INT(bad, 0);
    }
    free(inp);
    free(out);
    free(out0);
    free(bias);
    free_mat(&t);
}

static void test_qmat_forward(void)
{
    static const ws_qtype types[] = {WS_QT_Q4_1, WS_QT_Q8_0, WS_QT_Q4_0, WS_QT_Q4_K, WS_QT_Q5_K,
                                     WS_QT_Q6_K, WS_QT_F16,  WS_QT_BF16, WS_QT_F32};
    static const int Ns[] = {1, 3, 64};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t k = 0; k < 3; k++)
            check_forward(types[t], Ns[k]);
}

static void check_backward(ws_qtype type, int N, float beta)
{
    const int OC = 300, IC = 256; /* OC over one 256-row tile */
    test_mat t;
    make_mat(&t, type, OC, IC);
    float *dout = malloc(sizeof(float) * N * OC), *dinp = malloc(sizeof(float) * N * IC);
    float *dinp0 = malloc(sizeof(float) * N * IC);
    for (int i = 0; i < N * OC; i++)
        dout[i] = rndf();
    for (int i = 0; i < N * IC; i++)
        dinp0[i] = rndf();
    memcpy(dinp, dinp0, sizeof(float) * N * IC);
    ws_qmat_backward_input(dinp, beta, dout, &t.m, N);
    int bad = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < IC; c++) {
            double want = beta * dinp0[n * IC + c], col = 0.0;
            for (int r = 0; r < OC; r++) {
                want += (double)dout[n * OC + r] * t.deq[r * IC + c];
                col += (double)t.deq[r * IC + c] * t.deq[r * IC + c];
            }
            double tol = 1e-5 * norm(dout + n * OC, OC) * sqrt(col) + 1e-5 * fabs(want);
            bad += !(fabs(dinp[n * IC + c] - want) <= tol);
        }
    CHECK_EQ_INT(bad, 0);
    free(dout);
    free(dinp);
    free(dinp0);
    free_mat(&t);
}

static void test_qmat_backward(void)
{
    static const ws_qtype types[] = {WS_QT_Q4_1, WS_QT_Q8_0, WS_QT_Q6_K, WS_QT_F32};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        check_backward(types[t], 3, 0.0f);
        check_backward(types[t], 64, 1.0f);
    }
}

/* The input gradient through a transposed Q8_0 copy (LoRA training's 8-bit backward) against
 * the f64 product with the dequantized weights, under every instruction set; gradients of any
 * magnitude (dlogits of a large vocabulary reach ~1e-9, below half precision's scales). */
static void check_backward_t(ws_qtype type, int N, float beta, float mag)
{
    const int OC = 320, IC = 256;
    test_mat t;
    make_mat(&t, type, OC, IC);
    ws_qmat tr;
    uint8_t *own = ws_qmat_transpose_q8_0(&t.m, &tr);
    CHECK(own && tr.type == WS_QT_Q8_0 && tr.rows == IC && tr.cols == OC);
    if (!own) {
        free_mat(&t);
        return;
    }
    float *col = malloc(sizeof(float) * OC);
    int bad = 0;
    for (int c = 0; c < IC; c++) { /* each column of W, to Q8_0's half step of its block's largest */
        ws_qmat_row(&tr, c, col);
        for (int r = 0; r < OC; r++) {
            float amax = 0;
            for (int i = r / 32 * 32; i < r / 32 * 32 + 32; i++)
                amax = fmaxf(amax, fabsf(t.deq[i * IC + c]));
            bad += !(fabsf(col[r] - t.deq[r * IC + c]) <= amax / 254.0f * 1.15f + 1e-7f); /* + f16 d */
        }
    }
    CHECK_EQ_INT(bad, 0);
    float *dout = malloc(sizeof(float) * N * OC), *dinp = malloc(sizeof(float) * N * IC);
    float *dinp0 = malloc(sizeof(float) * N * IC);
    for (int i = 0; i < N * OC; i++)
        dout[i] = rndf() * mag * (i % 7 == 3 ? 100.0f : 1.0f); /* a few large ones */
    for (int i = 0; i < N * IC; i++)
        dinp0[i] = rndf() * mag;
    memcpy(dinp, dinp0, sizeof(float) * N * IC);
    ws_qmat_backward_input_t(dinp, beta, dout, &tr, N);
    double worst = 0;
    bad = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < IC; c++) {
            double want = beta * dinp0[n * IC + c], cn = 0.0;
            for (int r = 0; r < OC; r++) {
                want += (double)dout[n * OC + r] * t.deq[r * IC + c];
                cn += (double)t.deq[r * IC + c] * t.deq[r * IC + c];
            }
            /* both sides 8-bit: ~1/254 of each block's largest, as the forward's 8-bit bound */
            double scale = norm(dout + n * OC, OC) * sqrt(cn), err = fabs(dinp[n * IC + c] - want);
            worst = fmax(worst, err / scale);
            bad += !(err <= 1e-2 * scale + 1e-5 * fabs(want));
        }
    if (bad)
        fprintf(stderr, "  backward_t %s N=%d mag %g: %d off, worst %g\n", ws_qtype_name(type), N, mag, bad,
                worst);
    CHECK_EQ_INT(bad, 0);
    CHECK(worst > 0); /* 8-bit: not the f32 product */
    free(col);
    free(dout);
    free(dinp);
    free(dinp0);
    free(own);
    free_mat(&t);
}

static void test_qmat_backward_transposed(void)
{
    ws_isa list[3];
    int n_isa = isas(list);
    static const ws_qtype types[] = {WS_QT_Q4_1, WS_QT_Q8_0, WS_QT_Q6_K};
    for (int k = 0; k < n_isa; k++) {
        ws_quant_force_isa(list[k]);
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            check_backward_t(types[t], 3, 0.0f, 1.0f);
            check_backward_t(types[t], 64, 1.0f, 1.0f);
            check_backward_t(types[t], 37, 0.0f, 1e-9f);
        }
    }
    ws_quant_force_isa(list[n_isa - 1]);
    test_mat t; /* rows not a multiple of 32: no copy */
    make_mat(&t, WS_QT_Q8_0, 40, 64);
    ws_qmat tr = {0};
    CHECK(ws_qmat_transpose_q8_0(&t.m, &tr) == NULL && tr.data == NULL);
    free_mat(&t);
}

static void test_qmat_row(void)
{
    test_mat t;
    make_mat(&t, WS_QT_Q4_1, 5, 64);
    float row[64], direct[64];
    ws_qmat_row(&t.m, 3, row);
    ws_dequant_row(WS_QT_Q4_1, t.data + 3 * t.m.row_bytes, direct, 64);
    CHECK(memcmp(row, direct, sizeof row) == 0);
    free_mat(&t);
}

/* GGML's order of the Q4_1 x Q8_1 sums: the same bits under every instruction set, the value
 * within float rounding of the plain dot (the parity test compares it with llama.cpp itself) */
static void test_isa_dot_ggml(void)
{
    ws_isa list[3];
    int n_isa = isas(list);
    const int64_t n = 1536;
    uint8_t *w = malloc(ws_qtype_row_bytes(WS_QT_Q4_1, n)), *xq = malloc(ws_qtype_row_bytes(WS_QT_Q8_1, n));
    float *x = malloc(4 * n);
    for (int rep = 0; rep < 8; rep++) {
        rnd_weights(WS_QT_Q4_1, w, n, false);
        for (int64_t i = 0; i < n; i++)
            x[i] = rndf() * (rep + 1);
        ws_quant_force_isa(WS_ISA_SCALAR);
        ws_quantize_row(WS_QT_Q8_1, x, xq, n);
        float want = ws_quant_dot_q4_1_ggml(n, w, xq), plain = ws_quant_vec_dot(WS_QT_Q4_1, n, w, xq);
        CHECK(fabsf(want - plain) <= 1e-4f * (1.0f + fabsf(plain)));
        for (int k = 1; k < n_isa; k++) {
            ws_quant_force_isa(list[k]);
            float got = ws_quant_dot_q4_1_ggml(n, w, xq);
            CHECK(memcmp(&got, &want, 4) == 0);
        }
    }
    ws_quant_force_isa(list[n_isa - 1]);
    free(w);
    free(xq);
    free(x);
}

WS_TEST_MAIN(T(test_table), T(test_f16_convert), T(test_dequant_reference), T(test_quantize_reference),
             T(test_model_rows), T(test_isa_dequant), T(test_isa_quantize), T(test_isa_dot), T(test_isa_dotn),
             T(test_isa_gemm), T(test_isa_dot_ggml), T(test_qmat_forward), T(test_qmat_backward),
             T(test_qmat_backward_transposed), T(test_qmat_row))
