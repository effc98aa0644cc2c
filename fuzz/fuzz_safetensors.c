/* libFuzzer target: the safetensors header parser must reject any malformed image cleanly
 * (no crash, no out-of-bounds read, no leak), and every tensor it accepts must be readable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_safetensors *st = NULL;
    if (ws_st_parse(data, size, &st, NULL) == 0) {
        for (size_t i = 0; i < ws_st_count(st); i++) {
            const ws_st_tensor *t = ws_st_at(st, i);
            if (t->numel > (1u << 16) || t->dtype == WS_DT_I32 || t->dtype == WS_DT_I64)
                continue;
            float *f = malloc(t->numel * sizeof(float) + 1);
            ws_st_to_f32(t, f);
            free(f);
        }
        ws_st_close(st);
    }
    return 0;
}
