/* libFuzzer target: the clone's context parser (JSON array or "Name: text" lines, given by
 * users to `whatstyle reply --context-file`) must never crash or leak on any input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clone/clone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_clone_turn *t = NULL;
    size_t n = 0;
    if (ws_clone_context_parse((const char *)data, size, &t, &n, NULL) == 0) {
        size_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += strlen(t[i].text) + (t[i].author ? strlen(t[i].author) : 0);
        (void)sum;
        ws_clone_context_free(t, n);
    }
    return 0;
}
