/* The model-free embedder: signed feature hashing of character 1-4 grams (see embed.h). */
#include "style/embed.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "style/text.h"

/* Portable dot product: eight independent sums, which compilers turn into SIMD lanes. */
static float dot_plain(const float *a, const float *b, size_t dim)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= dim; i += 8)
        for (size_t k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

typedef float (*dot_fn)(const float *, const float *, size_t);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* AVX2 + FMA: four 8-lane accumulators (32 floats per step), chosen at run time. */
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, size_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    float r = _mm_cvtss_f32(h);
    for (; i < dim; i++)
        r += a[i] * b[i];
    return r;
}

static dot_fn pick_dot(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? dot_avx2 : dot_plain;
}
#else
static dot_fn pick_dot(void)
{
    return dot_plain;
}
#endif

static _Atomic(dot_fn) the_dot;

float ws_vec_dot(const float *a, const float *b, size_t dim)
{
    dot_fn f = atomic_load_explicit(&the_dot, memory_order_relaxed);
    if (!f) {
        f = pick_dot();
        atomic_store_explicit(&the_dot, f, memory_order_relaxed);
    }
    return f(a, b, dim);
}

void ws_vec_normalize(float *v, size_t dim)
{
    double ss = 0;
    for (size_t i = 0; i < dim; i++)
        ss += (double)v[i] * v[i];
    if (ss <= 0)
        return;
    float inv = (float)(1.0 / sqrt(ss));
    for (size_t i = 0; i < dim; i++)
        v[i] *= inv;
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int hash_embed(ws_embedder *e, const char *text, size_t len, float *out, ws_error *err)
{
    (void)err;
    size_t dim = e->dim;
    memset(out, 0, dim * sizeof *out);
    /* Code points of " " + lowercase(collapsed text) + " ", in a small ring of the last 4. */
    uint32_t win[4] = {0, 0, 0, ' '};
    size_t have = 1;
    bool last_space = true;
    size_t i = 0;
    for (;;) {
        uint32_t cp;
        if (i < len) {
            cp = ws_utf8_next(text, len, &i);
            if (ws_cp_is_space(cp))
                cp = ' ';
            if (cp == ' ' && last_space)
                continue;
            last_space = cp == ' ';
            cp = ws_cp_lower(cp);
        } else if (!last_space) {
            cp = ' ';
            last_space = true;
        } else {
            break;
        }
        memmove(win, win + 1, 3 * sizeof win[0]);
        win[3] = cp;
        if (have < 4)
            have++;
        /* n-grams ending at this code point: win[4-n .. 3] */
        uint64_t h = 0x9e3779b97f4a7c15ull;
        for (size_t n = 1; n <= 4 && n <= have; n++) {
            uint32_t c = win[4 - n];
            if (c == 0)
                break;
            h = mix64(h ^ ((uint64_t)c * 0x100000001b3ull + n));
            if (n == 1 && cp == ' ')
                continue; /* a lone space says nothing */
            float w = n == 1 ? 0.5f : 1.0f;
            size_t idx = (size_t)(h % dim);
            out[idx] += (h >> 63) ? -w : w;
        }
    }
    ws_vec_normalize(out, dim);
    return 0;
}

static void hash_destroy(ws_embedder *e)
{
    free(e);
}

static const ws_embedder_ops hash_ops = {hash_embed, hash_destroy, NULL};

ws_embedder *ws_embed_hash_new(size_t dim)
{
    if (dim < 64 || dim > 65536)
        return NULL;
    ws_embedder *e = ws_xcalloc(1, sizeof *e);
    e->ops = &hash_ops;
    e->dim = dim;
    snprintf(e->name, sizeof e->name, "hash-ngram-%zu", dim);
    return e;
}
