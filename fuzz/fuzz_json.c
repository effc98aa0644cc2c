/* libFuzzer target: the JSON parser must never crash or leak on any input, and what it accepts
 * must survive a round trip: parse -> write (ws_json_put_*) -> parse gives the same tree
 * (numbers bit-equal; a number too large for a double, read as infinity, comes back as null). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_tree(ws_buf *b, const ws_json *v)
{
    switch (v->type) {
    case WS_JSON_NULL: ws_buf_puts(b, "null"); break;
    case WS_JSON_BOOL: ws_buf_puts(b, v->boolean ? "true" : "false"); break;
    case WS_JSON_NUMBER: ws_json_put_num(b, v->number); break;
    case WS_JSON_STRING: ws_json_put_str(b, v->str, v->len); break;
    case WS_JSON_ARRAY:
    case WS_JSON_OBJECT:
        ws_buf_putc(b, v->type == WS_JSON_ARRAY ? '[' : '{');
        for (size_t i = 0; i < v->len; i++) {
            if (i)
                ws_buf_putc(b, ',');
            if (v->type == WS_JSON_OBJECT) {
                ws_json_put_str(b, v->keys[i], v->key_lens[i]);
                ws_buf_putc(b, ':');
            }
            write_tree(b, &v->items[i]);
        }
        ws_buf_putc(b, v->type == WS_JSON_ARRAY ? ']' : '}');
        break;
    }
}

static int same_tree(const ws_json *a, const ws_json *b)
{
    if (a->type == WS_JSON_NUMBER && !isfinite(a->number))
        return b->type == WS_JSON_NULL;
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case WS_JSON_NULL: return 1;
    case WS_JSON_BOOL: return a->boolean == b->boolean;
    case WS_JSON_NUMBER: return a->number == b->number && signbit(a->number) == signbit(b->number);
    case WS_JSON_STRING: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    case WS_JSON_ARRAY:
    case WS_JSON_OBJECT:
        if (a->len != b->len)
            return 0;
        for (size_t i = 0; i < a->len; i++) {
            if (a->type == WS_JSON_OBJECT &&
                (a->key_lens[i] != b->key_lens[i] || memcmp(a->keys[i], b->keys[i], a->key_lens[i])))
                return 0;
            if (!same_tree(&a->items[i], &b->items[i]))
                return 0;
        }
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_json_doc *doc = NULL;
    if (ws_json_parse((const char *)data, size, &doc, NULL) != 0)
        return 0;
    ws_buf b = WS_BUF_INIT;
    write_tree(&b, ws_json_root(doc));
    ws_json_doc *again = NULL;
    if (ws_json_parse(b.data, b.len, &again, NULL) != 0 || !same_tree(ws_json_root(doc), ws_json_root(again)))
        abort(); /* what the writer wrote, the parser must read back as the same tree */
    ws_json_doc_free(again);
    ws_buf_free(&b);
    ws_json_doc_free(doc);
    return 0;
}
