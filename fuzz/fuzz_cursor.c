/* libFuzzer target: the pagination cursor decoder (clients send cursors back verbatim) must
 * never crash, and whatever it accepts must re-encode to the same cursor (one canonical
 * form, so a cursor cannot be forged into two meanings). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ts, id;
    if (ws_store_cursor_decode((const char *)data, size, &ts, &id) == 0) {
        char again[WS_STORE_CURSOR_MAX];
        if (ts < 0 || id < 0 || ws_store_cursor_encode(ts, id, again, sizeof again) != 0 ||
            strlen(again) != size || memcmp(again, data, size) != 0)
            abort();
    }
    return 0;
}
