/* Quantized weight formats of GGUF/GGML and the arithmetic on them: block layouts, dequantizing
 * rows to f32, quantizing activations per block to 8 bits, and dot products computed directly
 * on the quantized blocks (as llama.cpp does), with scalar, AVX2 and AVX-512 versions chosen at
 * run time from the CPU (each tested against the scalar reference).
 *
 * Types (GGML ids, as stored in GGUF): F32, F16, BF16, Q8_0, Q4_0, Q4_1 and the k-quants Q4_K,
 * Q5_K, Q6_K. Activations are quantized to the weight type's "dot type": Q8_0 for Q4_0/Q8_0,
 * Q8_1 for Q4_1, Q8_K for the k-quants; F32/F16/BF16 weights take f32 activations.
 * Every function is pure and thread-safe; none allocates but ws_quant_gemm (its scale buffer). */
#ifndef WS_NN_QUANT_H
#define WS_NN_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    WS_QT_F32 = 0,
    WS_QT_F16 = 1,
    WS_QT_Q4_0 = 2,
    WS_QT_Q4_1 = 3,
    WS_QT_Q8_0 = 8,
    WS_QT_Q8_1 = 9, /* activations only */
    WS_QT_Q4_K = 12,
    WS_QT_Q5_K = 13,
    WS_QT_Q6_K = 14,
    WS_QT_Q8_K = 15, /* activations only */
    WS_QT_BF16 = 30,
    WS_QT_COUNT = 40 /* ids are < this */
} ws_qtype;

/* Name as GGML writes it ("Q4_1"), or NULL for an id we do not know at all. */
const char *ws_qtype_name(int type);
/* True for the types a weight tensor may have (listed above, not Q8_1/Q8_K). */
bool ws_qtype_is_weight(int type);
/* Elements per block (1 for F32/F16/BF16, 32 for Q*_0/Q*_1, 256 for k-quants) and bytes per
 * block; 0 for an unknown type. */
size_t ws_qtype_block_elems(int type);
size_t ws_qtype_block_bytes(int type);
/* Bytes of a row of n elements (n a multiple of the block size), 0 otherwise. */
size_t ws_qtype_row_bytes(int type, int64_t n);
/* The type activations are quantized to for a dot product with weights of this type. */
ws_qtype ws_qtype_dot_type(ws_qtype weight_type);

/* dst[n] = the values of the n elements at src (n a multiple of the block size). */
void ws_dequant_row(ws_qtype type, const void *src, float *dst, int64_t n);
/* Quantizes x[n] into dst as type (Q8_0, Q8_1 or Q8_K as llama.cpp quantizes activations;
 * Q4_0/Q4_1 as GGML's reference quantizer and gguf-py do; F16/BF16 round to nearest even;
 * F32 copy). dst holds ws_qtype_row_bytes(type, n) bytes. Any other type aborts. */
void ws_quantize_row(ws_qtype type, const float *x, void *dst, int64_t n);
/* x[i] rounded to the nearest IEEE half (ties to even) and back, in place: the values an f16
 * tensor holds (llama.cpp's default KV cache and the f16 operands of its attention). */
void ws_round_f16(float *x, int64_t n);
/* A Q4_1 row times a Q8_1 row with GGML's float sums bit for bit (its x86 kernel: 8 lanes of
 * 4-element integer sums, each accumulated over the blocks by fused multiply-add, the lanes
 * folded 4+4, 2+2, 1+1, then the m*s terms added); slower than ws_quant_vec_dot. */
float ws_quant_dot_q4_1_ggml(int64_t n, const void *w_row, const void *x_row);

/* Dot product of one weight row (type wt, n elements) with one activation row already
 * quantized to ws_qtype_dot_type(wt) (f32 for F32/F16/BF16 weights). The activation quants
 * must lie in [-127, 127] (ws_quantize_row never writes -128). Named ws_quant_vec_dot, not
 * ws_vec_dot: style/embed.h already has a ws_vec_dot for f32 vectors. */
float ws_quant_vec_dot(ws_qtype wt, int64_t n, const void *w_row, const void *x_row);
/* out[r] = ws_quant_vec_dot(wt, n, w_row, x_rows + r * x_stride) for r < nx, bit for bit; where
 * the instruction set has a multi-row kernel (Q4_0, Q4_1, Q8_0 under AVX2 and AVX-512) each
 * weight block is unpacked once for several activation rows. */
void ws_quant_vec_dotn(ws_qtype wt, int64_t n, const void *w_row, const void *x_rows, size_t x_stride, int nx,
                       float *out);
/* out[i * out_stride + r] = ws_quant_vec_dot(wt, n, w + r * w_stride, x + i * x_stride) for
 * r < rows, i < nx, up to the order of the float sums: where the instruction set has a many-row
 * kernel (Q4_1 under AVX2 and AVX-512, 8-bit activations times the 4-bit blocks, several weight
 * rows x several activation rows per step) it is used, else the dots one by one. Allocates the
 * activations' float scales (aborts on OOM). */
void ws_quant_gemm(ws_qtype wt, int64_t n, const void *w, size_t w_stride, int rows, const void *x,
                   size_t x_stride, int nx, float *out, size_t out_stride);

/* Instruction sets the kernels have versions for. ws_quant_isa() is the one in use (the best
 * the CPU has, unless forced); forcing one the CPU lacks is ignored (returns false). Tests use
 * this to compare every version with the scalar one. Not thread-safe against running kernels. */
/* AVX2 means AVX2 + FMA + F16C; AVX-512 means F, BW, VL and VNNI (CPUs without VNNI use AVX2). */
typedef enum { WS_ISA_SCALAR, WS_ISA_AVX2, WS_ISA_AVX512 } ws_isa;
ws_isa ws_quant_isa(void);
bool ws_quant_force_isa(ws_isa isa);
const char *ws_isa_name(ws_isa isa);

/* A quantized (or f16/bf16/f32) weight matrix of rows x cols, row-major, each row
 * ws_qtype_row_bytes(type, cols) bytes apart; data is borrowed (usually the mapped file). */
typedef struct ws_qmat {
    ws_qtype type;
    int rows, cols;
    size_t row_bytes;
    const uint8_t *data;
    bool ggml_order; /* inference of a Q4_1 matrix sums as GGML does (ws_quant_dot_q4_1_ggml) */
} ws_qmat;

/* out[N,OC] = beta*out + inp[N,IC] W^T (+ bias[OC]) with W = w (OC rows of IC). Few rows: the
 * rows of inp are quantized to the dot type once and every output is a quantized dot product;
 * many rows: W is dequantized a tile at a time and multiplied with sgemm. Runs on the engine's
 * pool (parallel.h). beta is 0 (overwrite) or 1 (add). */
void ws_qmat_forward(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta);
/* The same product for inference (a prompt, a token): the activations are quantized to 8 bits
 * per block and multiplied with the quantized blocks by the many-row kernel where the
 * instruction set has one for w's type (Q4_1 under AVX2 and AVX-512; llama.cpp's arithmetic, the
 * few-row dots' up to the order of the float sums), for one row as for 500; else as
 * ws_qmat_forward. LoRA training uses it too (ws_acts_base_8bit); its exact mode keeps
 * ws_qmat_forward, whose f32 products match the dequantized weights. */
void ws_qmat_infer(float *out, const float *inp, const ws_qmat *w, const float *bias, int N, float beta);
/* out[i] = inp w[i]^T (+ bias[i], each may be NULL) for n <= WS_QMAT_MAX_GROUP weights of one
 * input (Q, K and V; gate and up): as ws_qmat_infer with beta 0, the input quantized once and
 * every weight row of them all in one fork-join of the pool (a token's K and V alone are too
 * small to split). */
#define WS_QMAT_MAX_GROUP 4
void ws_qmat_infer_group(float *const *out, const float *inp, const ws_qmat *const *w,
                         const float *const *bias, int n, int N);
/* True when ws_qmat_infer multiplies weights of type wt with 8-bit activations for any number
 * of rows (the instruction set has a many-row kernel for it). */
bool ws_qmat_infer_is_8bit(ws_qtype wt);
/* dinp[N,IC] = beta*dinp + dout[N,OC] W (the input gradient through a frozen quantized W):
 * W dequantized a tile at a time, products with sgemm. */
void ws_qmat_backward_input(float *dinp, float beta, const float *dout, const ws_qmat *w, int N);
/* W^T (cols x rows) in Q8_0, each column of w's values (dequantized) quantized in blocks of 32
 * along w's rows: the blocks of the input gradient dinp = dout W through a frozen base
 * (ws_qmat_backward_input_t). Fills *t and
 * returns its rows (owned by the caller, free()); NULL (t untouched) when w->rows is not a
 * multiple of 32. Memory: 34 bytes per 32 weights. Runs on the engine's pool. */
uint8_t *ws_qmat_transpose_q8_0(const ws_qmat *w, ws_qmat *t);
/* dinp[N, t->rows] = beta*dinp + dout[N, t->cols] t^T for t = ws_qmat_transpose_q8_0(w):
 * dinp = beta*dinp + dout W. The rows of dout are quantized to 8 bits per block of 32 with f32
 * scales (a gradient's values may lie below half precision's range) and multiplied with t's
 * blocks by the many-row Q8_0 kernel (where the instruction set has none: f32 products on t's
 * dequantized tiles). Runs on the engine's pool. beta is 0 or 1. */
void ws_qmat_backward_input_t(float *dinp, float beta, const float *dout, const ws_qmat *t, int N);
/* Row r of w as f32 (cols values), e.g. an embedding lookup. */
void ws_qmat_row(const ws_qmat *w, int r, float *dst);

#endif
