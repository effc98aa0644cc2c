/* libFuzzer target: the API key parser and the Authorization header's Bearer extraction
 * (both read untrusted request headers) must never crash or read past the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a heap copy without a terminator, so ASan sees any over-read */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    char id[WS_KEY_ID_LEN + 1];
    if (ws_auth_key_parse(buf, size, id) == 0) {
        if (size != WS_KEY_LEN || memcmp(id, buf, WS_KEY_ID_LEN) != 0)
            abort();
    }
    const char *tok;
    size_t tl;
    if (ws_auth_bearer_token(buf, size, &tok, &tl) == 0) {
        if (tok < buf || tok + tl > buf + size || tl == 0)
            abort();
        ws_auth_key_parse(tok, tl, id);
    }
    free(buf);
    return 0;
}
