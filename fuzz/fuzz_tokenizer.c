/* libFuzzer target: the tokenizer must never crash or leak on any bytes, and must round-trip:
 * for tokenizers without a normalizer or prefix space (llama3, smollm2) decoding the ids of
 * valid UTF-8 gives the text back. The first byte picks the tokenizer and add_special; the
 * rest is the text. Also decodes the input read as arbitrary ids. Run from the repo root.
 * (fuzz_tokenizer_json fuzzes the loader.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"llama3", "smollm2", "qwen2", "gpt2", "mixed"};
#define N_NAMES (sizeof names / sizeof names[0])
static ws_tokenizer *toks[N_NAMES];

static void load_all(void)
{
    for (size_t i = 0; i < N_NAMES; i++) {
        char path[128];
        snprintf(path, sizeof path, "tests/reference/tokenizer/%s.json", names[i]);
        ws_error err = {0};
        if (ws_tokenizer_load(path, &toks[i], &err) != 0) {
            fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", err.msg);
            abort();
        }
    }
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    /* decode of encode must be identity exactly for well-formed input */
    int32_t cp;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (!k || i + k > n)
            return false;
        cp = k == 1 ? c : k == 2 ? (c & 0x1F) : k == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) ||
            (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!toks[0])
        load_all();
    if (size == 0)
        return 0;
    size_t which = (data[0] & 0x7F) % N_NAMES;
    bool add_special = data[0] & 0x80;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const ws_tokenizer *t = toks[which];

    int32_t *ids = NULL;
    size_t n = 0;
    if (ws_tokenizer_encode(t, text, len, add_special, &ids, &n, NULL) != 0)
        abort();
    size_t dlen = 0;
    char *dec = ws_tokenizer_decode_len(t, ids, n, false, &dlen);
    if (which <= 1 && !add_special && valid_utf8((const uint8_t *)text, len) &&
        (dlen != len || memcmp(dec, text, len) != 0))
        abort(); /* lossless tokenizers must round-trip */
    for (size_t i = 0; i < n; i++) {
        const char *b;
        size_t bl;
        if (ws_tokenizer_token_bytes(t, ids[i], &b, &bl) != 0)
            abort(); /* every id produced must be a real token */
    }
    free(dec);
    free(ids);

    /* the input read as ids, most of them out of range */
    size_t nid = len / 4;
    int32_t *raw = malloc(nid * sizeof *raw + 1);
    memcpy(raw, text, nid * sizeof *raw);
    for (size_t i = 0; i < nid; i++)
        raw[i] = (int32_t)((uint32_t)raw[i] % 2048u) - 64;
    free(ws_tokenizer_decode(t, raw, nid, data[0] & 1));
    free(raw);
    return 0;
}
