/* libFuzzer target: the reader's UTF-8 validation. Every vector version this CPU has
 * (AVX2, AVX-512BW) must give the scalar answer, and the scalar one the answer of decoding
 * sequence by sequence, on the input and on each of its tails (all block alignments). */
#include <stddef.h>
#include <stdint.h>

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
    return 0;
}
