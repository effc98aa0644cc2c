/* libFuzzer target: the W3C traceparent parser (an HTTP header anyone can send) must never
 * crash or read out of bounds, and what it accepts must format back to a valid value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1); /* exactly size bytes: ASan sees any over-read */
    memcpy(s, data, size);
    ws_trace_ctx c;
    if (ws_traceparent_parse(s, size, &c) == 0) {
        char out[WS_TRACEPARENT_LEN + 1];
        ws_traceparent_format(&c, out);
        ws_trace_ctx back;
        if (ws_traceparent_parse(out, strlen(out), &back) != 0 || memcmp(&back, &c, sizeof c) != 0)
            abort();
    }
    free(s);
    return 0;
}
