/* libFuzzer target: the JSON parser must never crash or leak on any input. */
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_json_doc *doc = NULL;
    if (ws_json_parse((const char *)data, size, &doc, NULL) == 0) {
        const ws_json *root = ws_json_root(doc);
        ws_buf b = WS_BUF_INIT;
        if (root->type == WS_JSON_STRING)
            ws_json_put_str(&b, root->str, root->len);
        ws_buf_free(&b);
        ws_json_doc_free(doc);
    }
    return 0;
}
