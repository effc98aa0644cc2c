/* libFuzzer target: the WordPiece normaliser/encoder on any bytes (with a small vocabulary),
 * and the vocabulary loader on any bytes, must never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/wordpiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char vocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n##a\nab\n##b\n!\n\xc3\xa9\n##\xc3\xa9\nhello\n##llo\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ws_wordpiece *wp;
    if (!wp && ws_wordpiece_load_memory(vocab, sizeof vocab - 1, true, &wp, NULL) != 0)
        abort();
    int32_t *ids = NULL;
    size_t n = 0;
    size_t max_len = size ? 2 + data[0] % 64 : 8;
    if (ws_wordpiece_encode(wp, (const char *)data, size, max_len, &ids, &n, NULL) == 0) {
        if (n > max_len || n < 2)
            abort();
        free(ids);
    }
    ws_wordpiece *other = NULL;
    if (ws_wordpiece_load_memory((const char *)data, size, size & 1, &other, NULL) == 0) {
        if (ws_wordpiece_encode(other, "hello", 5, 0, &ids, &n, NULL) == 0)
            free(ids);
        ws_wordpiece_free(other);
    }
    return 0;
}
