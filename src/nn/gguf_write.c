/* GGUF writer: collects key/values (encoded as they are added) and tensors (copied), then lays
 * out a version 3 file (header, key/values, tensor infos, padding, data with each tensor
 * aligned) in memory and writes it atomically. Tests and tools make small models with it. */
#include "nn/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/mem.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "values and tensors are copied in host order");

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[WS_GGUF_MAX_DIMS];
    ws_qtype type;
    uint8_t *data; /* owned copy */
    size_t nbytes;
} wtensor;

struct ws_gguf_writer {
    ws_buf kv; /* the key/value section as it will be written */
    uint64_t n_kv;
    wtensor *t;
    size_t n_t, cap_t;
    uint32_t alignment;
    char bad[WS_ERROR_MSG_MAX]; /* the first tensor that could not be added, or "" */
};

static void put(ws_buf *b, const void *p, size_t n)
{
    (void)ws_buf_append(b, p, n);
}

static void put_u32(ws_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(ws_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(ws_buf *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

/* One scalar of type t from its C representation at v, little-endian. */
static void put_scalar(ws_buf *b, ws_gguf_vtype t, const void *v)
{
    uint64_t bits = 0;
    size_t n = ws_gguf_scalar_size(t);
    if (t == WS_GGUF_BOOL) {
        bool x;
        memcpy(&x, v, sizeof x);
        bits = x ? 1 : 0;
    } else {
        memcpy(&bits, v, n); /* little-endian host: the value's low bytes */
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t byte = (uint8_t)(bits >> (8 * i));
        put(b, &byte, 1);
    }
}

static void begin_kv(ws_gguf_writer *w, const char *key, uint32_t type)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}

ws_gguf_writer *ws_gguf_writer_new(void)
{
    ws_gguf_writer *w = ws_xcalloc(1, sizeof *w);
    w->alignment = 32;
    return w;
}

void ws_gguf_writer_free(ws_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    ws_buf_free(&w->kv);
    free(w);
}

void ws_gguf_add_num(ws_gguf_writer *w, const char *key, ws_gguf_vtype type, const void *v)
{
    if (!ws_gguf_scalar_size(type))
        abort(); /* a programming error: STRING and ARRAY have their own adders */
    begin_kv(w, key, type);
    put_scalar(&w->kv, type, v);
    if (type == WS_GGUF_U32 && !strcmp(key, "general.alignment")) {
        uint32_t a;
        memcpy(&a, v, 4);
        if (a && !(a & (a - 1)))
            w->alignment = a;
    }
}

void ws_gguf_add_num_arr(ws_gguf_writer *w, const char *key, ws_gguf_vtype elem, const void *v, size_t n)
{
    size_t sz = ws_gguf_scalar_size(elem);
    if (!sz)
        abort();
    begin_kv(w, key, WS_GGUF_ARRAY);
    put_u32(&w->kv, elem);
    put_u64(&w->kv, n);
    size_t csize = elem == WS_GGUF_BOOL ? sizeof(bool) : sz;
    for (size_t i = 0; i < n; i++)
        put_scalar(&w->kv, elem, (const uint8_t *)v + i * csize);
}

void ws_gguf_add_raw(ws_gguf_writer *w, const char *key, uint32_t type, const void *body, size_t len)
{
    begin_kv(w, key, type);
    put(&w->kv, body, len);
}

void ws_gguf_add_u32(ws_gguf_writer *w, const char *key, uint32_t v)
{
    ws_gguf_add_num(w, key, WS_GGUF_U32, &v);
}
void ws_gguf_add_f32(ws_gguf_writer *w, const char *key, float v)
{
    ws_gguf_add_num(w, key, WS_GGUF_F32, &v);
}
void ws_gguf_add_bool(ws_gguf_writer *w, const char *key, bool v)
{
    ws_gguf_add_num(w, key, WS_GGUF_BOOL, &v);
}

void ws_gguf_add_str(ws_gguf_writer *w, const char *key, const char *v)
{
    begin_kv(w, key, WS_GGUF_STRING);
    put_str(&w->kv, v, strlen(v));
}

void ws_gguf_add_str_arr(ws_gguf_writer *w, const char *key, const char *const *v, size_t n)
{
    begin_kv(w, key, WS_GGUF_ARRAY);
    put_u32(&w->kv, WS_GGUF_STRING);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++)
        put_str(&w->kv, v[i], strlen(v[i]));
}

void ws_gguf_add_i32_arr(ws_gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
    ws_gguf_add_num_arr(w, key, WS_GGUF_I32, v, n);
}

void ws_gguf_add_f32_arr(ws_gguf_writer *w, const char *key, const float *v, size_t n)
{
    ws_gguf_add_num_arr(w, key, WS_GGUF_F32, v, n);
}

void ws_gguf_add_tensor(ws_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, ws_qtype type,
                        const void *data)
{
    wtensor t = {.name = ws_xstrdup(name), .n_dims = n_dims, .type = type, .ne = {1, 1, 1, 1}};
    int64_t rows = 1;
    bool ok = n_dims >= 1 && n_dims <= WS_GGUF_MAX_DIMS && ws_qtype_is_weight(type);
    for (int d = 0; ok && d < n_dims; d++) { /* each dimension and the row count at most 2^40 */
        ok = ne[d] >= 1 && ne[d] <= (int64_t)1 << 40 && (d == 0 || rows <= ((int64_t)1 << 40) / ne[d]);
        if (ok) {
            t.ne[d] = ne[d];
            rows *= d > 0 ? ne[d] : 1;
        }
    }
    size_t row = ok ? ws_qtype_row_bytes(type, t.ne[0]) : 0;
    if (!row || (uint64_t)rows > ((uint64_t)1 << 40) / row) {
        if (!w->bad[0])
            snprintf(w->bad, sizeof w->bad, "tensor '%s': the shape or type %d cannot be written", name,
                     (int)type);
        free(t.name);
        return;
    }
    t.nbytes = row * (size_t)rows;
    t.data = ws_xmalloc(t.nbytes);
    memcpy(t.data, data, t.nbytes);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = ws_xrealloc(w->t, w->cap_t * sizeof *w->t);
    }
    w->t[w->n_t++] = t;
}

static size_t pad_to(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

static void put_zeros(ws_buf *b, size_t n)
{
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        put(b, zeros, k);
        n -= k;
    }
}

int ws_gguf_writer_bytes(const ws_gguf_writer *w, uint8_t **data, size_t *len, ws_error *err)
{
    *data = NULL;
    *len = 0;
    if (w->bad[0])
        return ws_error_set(err, WS_EINVAL, "%s", w->bad);
    ws_buf b = WS_BUF_INIT;
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, w->n_t);
    put_u64(&b, w->n_kv);
    put(&b, w->kv.data, w->kv.len);
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&b, t->name, strlen(t->name));
        put_u32(&b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            put_u64(&b, (uint64_t)t->ne[d]);
        put_u32(&b, (uint32_t)t->type);
        put_u64(&b, off);
        off = pad_to(off + t->nbytes, w->alignment);
    }
    put_zeros(&b, pad_to(b.len, w->alignment) - b.len);
    for (size_t i = 0; i < w->n_t; i++) {
        put(&b, w->t[i].data, w->t[i].nbytes);
        put_zeros(&b, pad_to(w->t[i].nbytes, w->alignment) - w->t[i].nbytes);
    }
    *len = b.len;
    *data = (uint8_t *)ws_buf_take(&b);
    return 0;
}

int ws_gguf_write(const ws_gguf_writer *w, const char *path, ws_error *err)
{
    uint8_t *data;
    size_t len;
    int rc = ws_gguf_writer_bytes(w, &data, &len, err);
    if (rc)
        return rc;
    rc = ws_file_write_atomic(path, data, len, err);
    free(data);
    return rc;
}
