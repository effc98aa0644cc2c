/* libFuzzer target: the GGUF reader must refuse any malformed image cleanly (no crash, no
 * read outside the input, no leak, a message on every failure), and everything it accepts
 * must be readable: every key with the getter of its type, every element of every array, and
 * every byte of every tensor's data, which must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_array(const ws_gguf *g, const char *key)
{
    ws_gguf_vtype et;
    uint64_t n = 0;
    if (ws_gguf_get_arr(g, key, &et, &n, NULL))
        abort();
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        int64_t v;
        double d;
        if (et == WS_GGUF_STRING) {
            if (ws_gguf_arr_str(g, key, i, &s, &len, NULL))
                abort();
            if (len)
                sink += (uint8_t)s[0] + (uint8_t)s[len - 1];
        } else if (et != WS_GGUF_ARRAY) {
            if (ws_gguf_arr_f64(g, key, i, &d, NULL))
                abort();
            if (ws_gguf_arr_i64(g, key, i, &v, NULL) == 0)
                sink += (uint64_t)v;
        } else if (ws_gguf_arr_i64(g, key, i, &v, NULL) != WS_EFORMAT) {
            abort(); /* the elements of arrays of arrays are not served */
        }
    }
    ws_error err = {0};
    int64_t v;
    if (ws_gguf_arr_i64(g, key, n, &v, &err) == 0) /* one past the end */
        abort();
}

static void walk_key(const ws_gguf *g, int i)
{
    const char *key = ws_gguf_key_name(g, i);
    if (!key || ws_gguf_find_key(g, key) != i)
        abort();
    ws_gguf_vtype t = ws_gguf_key_type(g, i);
    uint32_t u;
    int64_t v;
    float f;
    bool b;
    const char *s;
    size_t len;
    int rc_u = ws_gguf_get_u32(g, key, &u, NULL), rc_i = ws_gguf_get_i64(g, key, &v, NULL);
    if (t == WS_GGUF_STRING) {
        if (ws_gguf_get_str(g, key, &s, &len, NULL))
            abort();
        if (len)
            sink += (uint8_t)s[0] + (uint8_t)s[len - 1];
    } else if (t == WS_GGUF_ARRAY) {
        walk_array(g, key);
    } else if (t == WS_GGUF_F32 || t == WS_GGUF_F64) {
        if (ws_gguf_get_f32(g, key, &f, NULL))
            abort();
    } else if (t == WS_GGUF_BOOL) {
        if (ws_gguf_get_bool(g, key, &b, NULL))
            abort();
    } else if (rc_i && t != WS_GGUF_U64) {
        abort(); /* every integer type but U64 fits I64 */
    } else if (!rc_u && (rc_i || v < 0 || v != (int64_t)u)) {
        abort(); /* what fits U32 fits I64 with the same value */
    }
}

static void walk_tensor(const ws_gguf *g, int i, const uint8_t *data, size_t size)
{
    const ws_gguf_tensor *t = ws_gguf_tensor_at(g, i);
    if (!t || ws_gguf_find_tensor(g, t->name) != t || t->n_dims < 1 || t->n_dims > WS_GGUF_MAX_DIMS)
        abort();
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    const uint8_t *p = t->data;
    if (t->nbytes != ws_qtype_row_bytes(t->type, t->ne[0]) * (size_t)rows || p < data || t->nbytes > size ||
        p > data + size - t->nbytes || t->offset % ws_gguf_alignment(g))
        abort();
    uint8_t x = 0;
    for (size_t k = 0; k < t->nbytes; k++)
        x ^= p[k];
    sink += x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_gguf *g = NULL;
    ws_error err = {0};
    if (ws_gguf_open_mem(data, size, "fuzz", &g, &err)) {
        if (g || !err.msg[0])
            abort();
        return 0;
    }
    for (int i = 0; i < ws_gguf_n_keys(g); i++)
        walk_key(g, i);
    for (int i = 0; i < ws_gguf_n_tensors(g); i++)
        walk_tensor(g, i, data, size);
    ws_gguf_close(g);
    return 0;
}
