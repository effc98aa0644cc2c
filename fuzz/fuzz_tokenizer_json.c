/* libFuzzer target: loading any bytes as a tokenizer.json must fail cleanly or give a tokenizer
 * that encodes and decodes a fixed text without crashing or leaking. */
#include <stdint.h>
#include <stdlib.h>

#include "nn/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sample[] =
        "Hi <|im_end|> I'LL pay 1234\xe2\x82\xac \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd e\xcc\x81 ab--ab\n\n";
    ws_tokenizer *t = NULL;
    if (ws_tokenizer_load_mem((const char *)data, size, "fuzz", &t, NULL) != 0)
        return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (ws_tokenizer_encode(t, sample, sizeof sample - 1, true, &ids, &n, NULL) != 0)
        abort();
    free(ws_tokenizer_decode(t, ids, n, true));
    free(ids);
    ws_tokenizer_free(t);
    return 0;
}
