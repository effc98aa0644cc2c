/* libFuzzer target: the reader's UTF-8 validation. Every vector version this CPU has
 * (AVX2, AVX-512BW) must give the scalar answer, and the scalar one the answer of decoding
 * sequence by sequence, on the input and on each of its tails (all block alignments); the
 * fused check with its line index (AVX-512BW) the same prefix and every '\n' and '\r'. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t reference_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0, bad;
    while (i < n) {
        size_t k = ws_utf8_seq(s + i, n - i, &bad);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t skip = 0; skip < 64 && skip <= size; skip++) {
        const unsigned char *s = data + skip;
        size_t n = size - skip, want = reference_prefix(s, n), got;
        if (ws_utf8_valid_prefix((const char *)s, n) != want)
            __builtin_trap();
        for (int impl = WS_UTF8_SCALAR; impl <= WS_UTF8_AVX512; impl++)
            if (ws_utf8_valid_prefix_with((ws_utf8_impl)impl, s, n, &got) && got != want)
                __builtin_trap();
    }
    /* the fused version reads up to the next multiple of 64: a padded copy */
    size_t words = (size_t)(size + 63) / 64;
    unsigned char *pad = calloc(words * 64 + 1, 1);
    uint64_t *lf = calloc(words + 1, sizeof *lf);
    bool any_cr, cr = false;
    size_t valid;
    if (pad && size)
        memcpy(pad, data, size);
    if (pad && lf && ws_utf8_valid_prefix_lines((const char *)pad, size, lf, &any_cr, &valid)) {
        if (valid != reference_prefix(pad, size))
            __builtin_trap();
        for (size_t i = 0; i < words * 64; i++) {
            cr |= pad[i] == '\r';
            if (((lf[i / 64] >> (i % 64)) & 1) != (pad[i] == '\n'))
                __builtin_trap();
        }
        if (cr != any_cr)
            __builtin_trap();
    }
    free(pad);
    free(lf);
    return 0;
}
