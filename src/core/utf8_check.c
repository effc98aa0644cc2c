/* UTF-8 validation (the chat reader's input window, the store's fields, the tokenizer's text): the length of
 * the longest valid prefix, in a portable scalar version and in AVX2 and AVX-512BW versions chosen at run
 * time (the binary still runs on any x86-64 and builds on other architectures).
 *
 * The vector versions check 64 bytes at a time for the errors a byte pair can show, looked up
 * by the nibbles of the two bytes (the method of Keiser and Lemire, "Validating UTF-8 in less
 * than one instruction per byte", 2021), plus the third/fourth-byte rule of 3- and 4-byte
 * sequences, in runs of 16 blocks without a branch per block (the errors of a run are tested
 * once). They only answer "this block is clean": where a block is not, or at the tail,
 * the scalar version finishes from the last character boundary, so every version returns
 * exactly the scalar answer. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core/utf8.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define WS_UTF8_X86 1
#include <immintrin.h>
#else
#define WS_UTF8_X86 0
#endif

#define WORDS_LITTLE_ENDIAN (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

/* Length of the valid UTF-8 sequence at s, or 0 (then *bad = bytes of the maximal invalid
 * subpart, at least 1). */
size_t ws_utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) {
            *bad = i;
            return 0;
        }
    }
    return need;
}

size_t ws_utf8_valid_prefix_scalar(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII runs eight bytes at a time */
        if (WORDS_LITTLE_ENDIAN && i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            uint64_t high = w & 0x8080808080808080ull;
            if (!high) {
                i += 8;
                continue;
            }
            i += (size_t)__builtin_ctzll(high) >> 3; /* little-endian: first high byte */
        } else if (s[i] < 0x80) {
            i++;
            continue;
        }
        unsigned char c = s[i];
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
                i += 2;
                continue;
            }
            return i;
        }
        /* the common 3- and 4-byte leads (emoji are F0 9F ..) */
        if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && i + 2 < n && (s[i + 1] & 0xC0) == 0x80 &&
            (s[i + 2] & 0xC0) == 0x80) {
            i += 3;
            continue;
        }
        if (c >= 0xF0 && c <= 0xF3 && i + 3 < n && (s[i + 1] & 0xC0) == 0x80 &&
            (c != 0xF0 || s[i + 1] >= 0x90) && (s[i + 2] & 0xC0) == 0x80 && (s[i + 3] & 0xC0) == 0x80) {
            i += 4;
            continue;
        }
        size_t bad;
        size_t k = ws_utf8_seq(s + i, n - i, &bad);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

#if WS_UTF8_X86
/* The start of the character that holds byte i-1 when it runs on to i or beyond (s[0..i) has
 * been found valid), else i: where the scalar check can resume. */
static size_t resume_at(const unsigned char *s, size_t i)
{
    if (i >= 1 && s[i - 1] >= 0xC0)
        return i - 1;
    if (i >= 2 && s[i - 2] >= 0xE0)
        return i - 2;
    if (i >= 3 && s[i - 3] >= 0xF0)
        return i - 3;
    return i;
}

/* Does the 64-byte block ending at s[63] end inside a multi-byte character? */
static inline int ends_inside(const unsigned char *s)
{
    return s[63] >= 0xC0 || s[62] >= 0xE0 || s[61] >= 0xF0;
}

/* Error bits of a byte pair (previous byte, this byte); a pair is bad when the three lookups
 * (high and low nibble of the previous byte, high nibble of this one) share a bit. */
enum {
    TOO_SHORT = 1 << 0,      /* lead byte then no continuation */
    TOO_LONG = 1 << 1,       /* ASCII then a continuation */
    OVERLONG_3 = 1 << 2,     /* E0 80..9F */
    TOO_LARGE = 1 << 3,      /* F4 90..BF, F5..FF 90..BF */
    SURROGATE = 1 << 4,      /* ED A0..BF */
    OVERLONG_2 = 1 << 5,     /* C0/C1 then a continuation */
    TOO_LARGE_1000 = 1 << 6, /* F5..FF 80..8F */
    OVERLONG_4 = 1 << 6,     /* F0 80..8F */
    TWO_CONTS = 1 << 7,      /* two continuations: fine only as byte 3 or 4 of a character */
    CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS,
};

#define B1_HIGH                                                                                              \
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TWO_CONTS, TWO_CONTS,    \
        TWO_CONTS, TWO_CONTS, TOO_SHORT | OVERLONG_2, TOO_SHORT, TOO_SHORT | OVERLONG_3 | SURROGATE,         \
        TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4
#define B1_LOW                                                                                               \
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, CARRY | OVERLONG_2, CARRY, CARRY, CARRY | TOO_LARGE,       \
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,                              \
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,                              \
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,                              \
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,                              \
        CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE, CARRY | TOO_LARGE | TOO_LARGE_1000,                  \
        CARRY | TOO_LARGE | TOO_LARGE_1000
#define B2_HIGH                                                                                              \
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,                  \
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,                        \
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,                                          \
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,                                           \
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE, TOO_SHORT, TOO_SHORT, TOO_SHORT,          \
        TOO_SHORT

static const unsigned char b1_high_table[16] = {B1_HIGH}, b1_low_table[16] = {B1_LOW},
                           b2_high_table[16] = {B2_HIGH};

/* ---- AVX2: a block is two 32-byte vectors */

/* Errors of the pairs ending in the 32 bytes in, given the same bytes 1, 2 and 3 places back. */
__attribute__((target("avx2"))) static inline __m256i pair_errors_avx2(__m256i in, __m256i prev1,
                                                                       __m256i prev2, __m256i prev3)
{
    const __m256i b1_high = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b1_high_table));
    const __m256i b1_low = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b1_low_table));
    const __m256i b2_high = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b2_high_table));
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    __m256i e1h = _mm256_shuffle_epi8(b1_high, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nibble));
    __m256i e1l = _mm256_shuffle_epi8(b1_low, _mm256_and_si256(prev1, nibble));
    __m256i e2h = _mm256_shuffle_epi8(b2_high, _mm256_and_si256(_mm256_srli_epi16(in, 4), nibble));
    __m256i special = _mm256_and_si256(_mm256_and_si256(e1h, e1l), e2h);
    /* bytes 3 and 4 of a character must be continuations (and then show TWO_CONTS) */
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, special);
}

/* The same for the first 32 bytes of the input: the bytes before it count as zero. */
__attribute__((target("avx2"))) static inline __m256i first_errors_avx2(__m256i in)
{
    __m256i joined = _mm256_permute2x128_si256(_mm256_setzero_si256(), in, 0x21);
    return pair_errors_avx2(in, _mm256_alignr_epi8(in, joined, 15), _mm256_alignr_epi8(in, joined, 14),
                            _mm256_alignr_epi8(in, joined, 13));
}

/* Loads the 32 bytes at p and the 32 starting 1, 2 and 3 bytes earlier (p - 3 is readable). */
#define AVX2_ERRORS_AT(p)                                                                                    \
    pair_errors_avx2(_mm256_loadu_si256((const __m256i *)(p)), _mm256_loadu_si256((const __m256i *)((p)-1)), \
                     _mm256_loadu_si256((const __m256i *)((p)-2)),                                           \
                     _mm256_loadu_si256((const __m256i *)((p)-3)))

__attribute__((target("avx2"))) static size_t prefix_avx2(const unsigned char *s, size_t n)
{
    size_t i = 0, no_run_before = 64;
    int inside = 0;
    while (i + 64 <= n) {
        /* a run of 16 blocks without a branch per block (as in prefix_avx512): every pair of
         * bytes checked, ASCII blocks too, the errors tested once; after a run with an error,
         * its blocks are checked one by one */
        if (i >= no_run_before && i + 1024 <= n) {
            __m256i err = _mm256_setzero_si256();
            for (size_t k = 0; k < 1024; k += 32)
                err = _mm256_or_si256(err, AVX2_ERRORS_AT(s + i + k));
            if (_mm256_testz_si256(err, err)) {
                i += 1024;
                inside = ends_inside(s + i - 64);
                continue;
            }
            no_run_before = i + 1024;
        }
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        if (!_mm256_movemask_epi8(_mm256_or_si256(a, b))) {
            if (inside)
                break; /* a character cut short by ASCII */
        } else {
            /* the bytes before each vector are read again from memory: cheaper than shuffles */
            __m256i err = i ? AVX2_ERRORS_AT(s + i) : first_errors_avx2(a);
            err = _mm256_or_si256(err, AVX2_ERRORS_AT(s + i + 32));
            if (!_mm256_testz_si256(err, err))
                break;
        }
        inside = ends_inside(s + i);
        i += 64;
    }
    size_t from = resume_at(s, i);
    return from + ws_utf8_valid_prefix_scalar(s + from, n - from);
}

/* ---- AVX-512BW: a block is one 64-byte vector */

__attribute__((target("avx512f,avx512bw"))) static inline __m512i
pair_errors_avx512(__m512i in, __m512i prev1, __m512i prev2, __m512i prev3)
{
    const __m512i b1_high = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b1_high_table));
    const __m512i b1_low = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b1_low_table));
    const __m512i b2_high = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b2_high_table));
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    __m512i e1h = _mm512_shuffle_epi8(b1_high, _mm512_and_si512(_mm512_srli_epi16(prev1, 4), nibble));
    __m512i e1l = _mm512_shuffle_epi8(b1_low, _mm512_and_si512(prev1, nibble));
    __m512i e2h = _mm512_shuffle_epi8(b2_high, _mm512_and_si512(_mm512_srli_epi16(in, 4), nibble));
    __m512i special = _mm512_and_si512(_mm512_and_si512(e1h, e1l), e2h);
    __m512i third = _mm512_subs_epu8(prev2, _mm512_set1_epi8((char)(0xE0 - 0x80)));
    __m512i fourth = _mm512_subs_epu8(prev3, _mm512_set1_epi8((char)(0xF0 - 0x80)));
    __m512i must23 = _mm512_and_si512(_mm512_or_si512(third, fourth), _mm512_set1_epi8((char)0x80));
    return _mm512_xor_si512(must23, special);
}

/* The errors of the 64 bytes at s given the 64 before them (prev): every byte pair, an ASCII
 * block included (a character cut short at the end of prev shows as an error of its first
 * bytes), so blocks need no branch on their content. */
__attribute__((target("avx512f,avx512bw"))) static inline __m512i block_errors_avx512(__m512i a, __m512i prev)
{
    /* each 128-bit lane next to the one before it (prev's last lane for lane 0) */
    __m512i joined = _mm512_alignr_epi64(a, prev, 6);
    return pair_errors_avx512(a, _mm512_alignr_epi8(a, joined, 15), _mm512_alignr_epi8(a, joined, 14),
                              _mm512_alignr_epi8(a, joined, 13));
}

/* prefix_avx512, and with lf set the '\n' bitmap and '\r' presence of the words of s[0..n)
 * (see ws_utf8_valid_prefix_lines) from the same loads: inlined into both callers, so the
 * plain prefix has no trace of the bitmap. */
__attribute__((target("avx512f,avx512bw"), always_inline)) static inline size_t
prefix_avx512_impl(const unsigned char *s, size_t n, uint64_t *lf, bool *any_cr)
{
    size_t i = 0;
    int inside = 0;
    __m512i prev = _mm512_setzero_si512();
    const __m512i nl = _mm512_set1_epi8('\n'), cr = _mm512_set1_epi8('\r');
    __mmask64 crs = 0;
    /* runs of 16 blocks without a branch per block: errors are gathered and tested once per
     * run (mixed ASCII and non-ASCII blocks made the per-block branch mispredict); a run with
     * an error is checked again block by block below, from its start */
    while (i + 1024 <= n) {
        __m512i err = _mm512_setzero_si512(), p = prev;
        for (size_t k = 0; k < 1024; k += 64) {
            __m512i a = _mm512_loadu_si512((const void *)(s + i + k));
            if (lf) {
                lf[(i + k) / 64] = _mm512_cmpeq_epi8_mask(a, nl);
                crs |= _mm512_cmpeq_epi8_mask(a, cr);
            }
            err = _mm512_or_si512(err, block_errors_avx512(a, p));
            p = a;
        }
        if (_mm512_test_epi8_mask(err, err))
            break;
        prev = p;
        i += 1024;
    }
    if (lf) { /* the words the runs did not index (a run with an error is indexed again) */
        for (size_t w = i / 64; w < (n + 63) / 64; w++) {
            __m512i a = _mm512_loadu_si512((const void *)(s + w * 64));
            lf[w] = _mm512_cmpeq_epi8_mask(a, nl);
            crs |= _mm512_cmpeq_epi8_mask(a, cr);
        }
        *any_cr = crs != 0;
    }
    inside = i ? ends_inside(s + i - 64) : 0;
    while (i + 64 <= n) {
        __m512i a = _mm512_loadu_si512((const void *)(s + i));
        if (!_mm512_movepi8_mask(a)) {
            if (inside)
                break;
        } else {
            /* each 128-bit lane next to the one before it (prev's last lane for lane 0) */
            __m512i joined = _mm512_alignr_epi64(a, prev, 6);
            __m512i err =
                pair_errors_avx512(a, _mm512_alignr_epi8(a, joined, 15), _mm512_alignr_epi8(a, joined, 14),
                                   _mm512_alignr_epi8(a, joined, 13));
            if (_mm512_test_epi8_mask(err, err))
                break;
        }
        inside = ends_inside(s + i);
        prev = a;
        i += 64;
    }
    size_t from = resume_at(s, i);
    return from + ws_utf8_valid_prefix_scalar(s + from, n - from);
}

__attribute__((target("avx512f,avx512bw"))) static size_t prefix_avx512(const unsigned char *s, size_t n)
{
    return prefix_avx512_impl(s, n, NULL, NULL);
}

__attribute__((target("avx512f,avx512bw"))) static size_t
prefix_lines_avx512(const unsigned char *s, size_t n, uint64_t *lf, bool *any_cr)
{
    return prefix_avx512_impl(s, n, lf, any_cr);
}
#endif

bool ws_utf8_valid_prefix_with(ws_utf8_impl impl, const unsigned char *s, size_t n, size_t *out)
{
#if WS_UTF8_X86
    __builtin_cpu_init();
#endif
    switch (impl) {
    case WS_UTF8_SCALAR: *out = ws_utf8_valid_prefix_scalar(s, n); return true;
#if WS_UTF8_X86
    case WS_UTF8_AVX2:
        if (!__builtin_cpu_supports("avx2"))
            return false;
        *out = prefix_avx2(s, n);
        return true;
    case WS_UTF8_AVX512:
        if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw"))
            return false;
        *out = prefix_avx512(s, n);
        return true;
#endif
    default: return false;
    }
}

static size_t (*best_prefix)(const unsigned char *, size_t) = ws_utf8_valid_prefix_scalar;
static ws_utf8_impl best_impl = WS_UTF8_SCALAR;
static bool cpu_avx2;
static pthread_once_t pick_once = PTHREAD_ONCE_INIT;

static void pick(void)
{
#if WS_UTF8_X86
    __builtin_cpu_init();
    cpu_avx2 = __builtin_cpu_supports("avx2");
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
        best_prefix = prefix_avx512;
        best_impl = WS_UTF8_AVX512;
    } else if (cpu_avx2) {
        best_prefix = prefix_avx2;
        best_impl = WS_UTF8_AVX2;
    }
#endif
}

ws_utf8_impl ws_utf8_impl_used(void)
{
    pthread_once(&pick_once, pick);
    return best_impl;
}

size_t ws_utf8_valid_prefix(const char *s, size_t n)
{
    pthread_once(&pick_once, pick);
    return best_prefix((const unsigned char *)s, n);
}

bool ws_utf8_valid_prefix_lines(const char *s, size_t n, uint64_t *lf, bool *any_cr, size_t *valid)
{
    pthread_once(&pick_once, pick);
#if WS_UTF8_X86
    if (best_impl == WS_UTF8_AVX512) {
        *valid = prefix_lines_avx512((const unsigned char *)s, n, lf, any_cr);
        return true;
    }
#endif
    (void)s, (void)n, (void)lf, (void)any_cr, (void)valid;
    return false;
}

bool ws_utf8_valid(const char *s, size_t n)
{
    return ws_utf8_valid_prefix(s, n) == n;
}

bool ws_cpu_avx2(void)
{
    pthread_once(&pick_once, pick);
    return cpu_avx2;
}
