/* libFuzzer target: loading a vector index file must never crash, leak or read out of bounds,
 * and a loaded index must be searchable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "style/vindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_vindex *ix = NULL;
    if (ws_vindex_load_memory(data, size, &ix, NULL) == 0) {
        size_t dim = ws_vindex_dim(ix);
        float *q = calloc(dim, sizeof *q);
        q[0] = 1;
        ws_vhit hits[4];
        ws_vindex_search(ix, q, 4, 16, hits);
        ws_vindex_search_exact(ix, q, 4, hits);
        free(q);
        ws_vindex_free(ix);
    }
    return 0;
}
