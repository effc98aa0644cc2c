/* GGUF reader: maps a file read-only (or borrows bytes in memory), checks every count, length,
 * offset and size in it against the file before using it, and serves the metadata and the
 * tensor table that gguf.h describes. The writer is in gguf_write.c. */
#include "nn/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/strset.h"

#define HEADER_BYTES 24
#define KV_MIN_BYTES 13    /* key length (8), value type (4), one byte of value */
#define TINFO_MIN_BYTES 32 /* name length (8), n_dims (4), one ne (8), type (4), offset (8) */
#define ARR_MIN_BYTES 12   /* an array inside an array: element type (4), count (8) */
#define SHOWN_NAME 80      /* bytes of a key or tensor name quoted in a message */

/* One key's value. val points into the file: at the value of a scalar, at the length field of
 * a string, at the first element of an array. */
typedef struct {
    ws_gguf_vtype type;
    const uint8_t *val;
    ws_gguf_vtype elem;   /* arrays: element type */
    uint64_t n;           /* arrays: element count */
    const uint8_t **strs; /* arrays of strings: each element's length field (owned) */
} gguf_kv;

struct ws_gguf {
    const uint8_t *base;
    size_t len;
    void *map;  /* the mapping (ws_gguf_open), NULL for ws_gguf_open_mem */
    char *name; /* for messages */
    uint32_t version;
    size_t alignment;
    size_t data_off; /* start of the data section */
    ws_strset keys;  /* key names; keys.items[i] is the name of kvs[i] */
    gguf_kv *kvs;
    size_t kv_cap;
    ws_strset tnames; /* tensor names; tensors[i].name is tnames.items[i] */
    ws_gguf_tensor *tensors;
    size_t t_cap;
};

/* A cursor over the file being parsed. */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *name;
    ws_error *err;
} rd;

static const char *const vtype_names[] = {"U8",   "I8",     "U16",   "I16", "U32", "I32", "F32",
                                          "BOOL", "STRING", "ARRAY", "U64", "I64", "F64"};

const char *ws_gguf_vtype_name(int type)
{
    return type >= 0 && type <= WS_GGUF_F64 ? vtype_names[type] : "unknown";
}

/* GGML's names for every tensor type id it has used, for messages about the ones we lack. */
static const char *ggml_type_name(uint32_t t)
{
    static const char *const names[] = {
        "F32",      "F16",      "Q4_0",    "Q4_1",  "Q4_2",       "Q4_3",       "Q5_0",       "Q5_1",
        "Q8_0",     "Q8_1",     "Q2_K",    "Q3_K",  "Q4_K",       "Q5_K",       "Q6_K",       "Q8_K",
        "IQ2_XXS",  "IQ2_XS",   "IQ3_XXS", "IQ1_S", "IQ4_NL",     "IQ3_S",      "IQ2_S",      "IQ4_XS",
        "I8",       "I16",      "I32",     "I64",   "F64",        "IQ1_M",      "BF16",       "Q4_0_4_4",
        "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",   "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

size_t ws_gguf_scalar_size(uint32_t t)
{
    switch (t) {
    case WS_GGUF_U8:
    case WS_GGUF_I8:
    case WS_GGUF_BOOL: return 1;
    case WS_GGUF_U16:
    case WS_GGUF_I16: return 2;
    case WS_GGUF_U32:
    case WS_GGUF_I32:
    case WS_GGUF_F32: return 4;
    case WS_GGUF_U64:
    case WS_GGUF_I64:
    case WS_GGUF_F64: return 8;
    default: return 0;
    }
}

static int fail(rd *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(rd *r, int code, const char *fmt, ...)
{
    char msg[WS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ws_error_set(r->err, code, "%s: %s", r->name, msg);
}

static bool has(const rd *r, uint64_t n)
{
    return n <= r->len - r->pos;
}

static int past_end(rd *r, const char *ctx, const char *field)
{
    return fail(r, WS_EFORMAT, "%s: %s runs past the end of the file (at byte %zu of %zu)", ctx, field,
                r->pos, r->len);
}

static int rd_u32(rd *r, uint32_t *v, const char *ctx, const char *field)
{
    if (!has(r, 4))
        return past_end(r, ctx, field);
    *v = le32(r->p + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *ctx, const char *field)
{
    if (!has(r, 8))
        return past_end(r, ctx, field);
    *v = le64(r->p + r->pos);
    r->pos += 8;
    return 0;
}

/* A string: u64 length (at most WS_GGUF_MAX_STR), then that many bytes. */
static int rd_str(rd *r, const uint8_t **s, uint64_t *n, const char *ctx, const char *field)
{
    int rc = rd_u64(r, n, ctx, field);
    if (rc)
        return rc;
    if (*n > WS_GGUF_MAX_STR)
        return fail(r, WS_EFORMAT, "%s: %s is %llu bytes long, over the cap of %u", ctx, field,
                    (unsigned long long)*n, WS_GGUF_MAX_STR);
    if (!has(r, *n))
        return past_end(r, ctx, field);
    *s = r->p + r->pos;
    r->pos += *n;
    return 0;
}

/* "what 'name'" for messages: at most SHOWN_NAME bytes of the name, control bytes as '?'. */
static void name_ctx(char *buf, size_t cap, const char *what, const uint8_t *s, size_t n)
{
    char shown[SHOWN_NAME + 4];
    size_t k = n < SHOWN_NAME ? n : SHOWN_NAME;
    for (size_t i = 0; i < k; i++)
        shown[i] = s[i] < 0x20 || s[i] == 0x7f ? '?' : (char)s[i];
    memcpy(shown + k, "...", n > k ? 4 : 1);
    if (n <= k)
        shown[k] = 0;
    snprintf(buf, cap, "%s '%s'", what, shown);
}

/* Checks the body of an array (element type, count, elements) at the cursor and steps over
 * it. kv, when not NULL, gets the element type, count and (for strings) each element's
 * position; arrays nested in it are checked and skipped. */
static int parse_array(rd *r, const char *ctx, gguf_kv *kv, int depth)
{
    uint32_t elem = 0;
    uint64_t n = 0;
    int rc;
    if ((rc = rd_u32(r, &elem, ctx, "array element type")) || (rc = rd_u64(r, &n, ctx, "array length")))
        return rc;
    if (elem > WS_GGUF_F64)
        return fail(r, WS_EFORMAT, "%s: array element type %u is not a GGUF value type (0..12)", ctx, elem);
    if (elem == WS_GGUF_ARRAY && depth >= WS_GGUF_MAX_NEST)
        return fail(r, WS_EFORMAT, "%s: arrays nested more than %d deep", ctx, WS_GGUF_MAX_NEST);
    size_t sz = ws_gguf_scalar_size(elem), min = sz ? sz : elem == WS_GGUF_STRING ? 8 : ARR_MIN_BYTES;
    if (n > (r->len - r->pos) / min)
        return fail(r, WS_EFORMAT,
                    "%s: array of %llu %s elements runs past the end of the file (%zu bytes left)", ctx,
                    (unsigned long long)n, vtype_names[elem], r->len - r->pos);
    if (kv) {
        kv->elem = (ws_gguf_vtype)elem;
        kv->n = n;
        kv->val = r->p + r->pos;
        if (elem == WS_GGUF_STRING && n)
            kv->strs = ws_xmalloc((size_t)n * sizeof *kv->strs); /* n * 8 bytes seen to exist */
    }
    if (sz) {
        for (uint64_t i = 0; elem == WS_GGUF_BOOL && i < n; i++)
            if (r->p[r->pos + i] > 1)
                return fail(r, WS_EFORMAT, "%s: element %llu is a bool of value %u (not 0 or 1)", ctx,
                            (unsigned long long)i, r->p[r->pos + i]);
        r->pos += (size_t)n * sz;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        char field[48];
        if (elem == WS_GGUF_ARRAY) {
            if ((rc = parse_array(r, ctx, NULL, depth + 1)))
                return rc;
            continue;
        }
        if (kv)
            kv->strs[i] = r->p + r->pos;
        const uint8_t *s;
        uint64_t len;
        if (!has(r, 8) || le64(r->p + r->pos) > WS_GGUF_MAX_STR || !has(r, 8 + le64(r->p + r->pos))) {
            snprintf(field, sizeof field, "string element %llu", (unsigned long long)i);
            return rd_str(r, &s, &len, ctx, field); /* fails with the reason */
        }
        r->pos += 8 + (size_t)le64(r->p + r->pos);
    }
    return 0;
}

/* One value of the given type at the cursor, into kv (top level: depth 1). */
static int parse_value(rd *r, const char *ctx, uint32_t type, gguf_kv *kv)
{
    if (type > WS_GGUF_F64)
        return fail(r, WS_EFORMAT, "%s: value type %u is not a GGUF value type (0..12)", ctx, type);
    kv->type = (ws_gguf_vtype)type;
    kv->val = r->p + r->pos;
    size_t sz = ws_gguf_scalar_size(type);
    if (sz) {
        if (!has(r, sz))
            return past_end(r, ctx, "value");
        if (type == WS_GGUF_BOOL && r->p[r->pos] > 1)
            return fail(r, WS_EFORMAT, "%s: bool value %u is neither 0 nor 1", ctx, r->p[r->pos]);
        r->pos += sz;
        return 0;
    }
    if (type == WS_GGUF_STRING) {
        const uint8_t *s;
        uint64_t n;
        return rd_str(r, &s, &n, ctx, "string value");
    }
    return parse_array(r, ctx, kv, 1);
}

static int parse_kvs(ws_gguf *g, rd *r, uint64_t n_kv)
{
    int rc;
    for (uint64_t i = 0; i < n_kv; i++) {
        char ctx[SHOWN_NAME + 32];
        const uint8_t *k = NULL;
        uint64_t klen = 0;
        uint32_t type = 0;
        snprintf(ctx, sizeof ctx, "key #%llu", (unsigned long long)i);
        if ((rc = rd_str(r, &k, &klen, ctx, "name")))
            return rc;
        if (klen == 0 || memchr(k, 0, klen))
            return fail(r, WS_EFORMAT, "key #%llu has %s name", (unsigned long long)i,
                        klen ? "a NUL byte in its" : "an empty");
        name_ctx(ctx, sizeof ctx, "key", k, klen);
        if (ws_strset_find(&g->keys, (const char *)k, klen) >= 0)
            return fail(r, WS_EFORMAT, "duplicate %s (keys #%ld and #%llu)", ctx,
                        ws_strset_find(&g->keys, (const char *)k, klen), (unsigned long long)i);
        if ((rc = rd_u32(r, &type, ctx, "value type")))
            return rc;
        if (g->keys.count == g->kv_cap) {
            g->kv_cap = g->kv_cap ? 2 * g->kv_cap : 16;
            g->kvs = ws_xrealloc(g->kvs, g->kv_cap * sizeof *g->kvs);
        }
        gguf_kv *kv = &g->kvs[ws_strset_add(&g->keys, (const char *)k, klen)];
        memset(kv, 0, sizeof *kv);
        if ((rc = parse_value(r, ctx, type, kv)))
            return rc;
    }
    return 0;
}

static int parse_alignment(ws_gguf *g, rd *r)
{
    g->alignment = 32;
    long i = ws_strset_find(&g->keys, "general.alignment", strlen("general.alignment"));
    if (i < 0)
        return 0;
    const gguf_kv *kv = &g->kvs[i];
    if (kv->type != WS_GGUF_U32)
        return fail(r, WS_EFORMAT, "key 'general.alignment' is %s, not U32", vtype_names[kv->type]);
    uint32_t a = le32(kv->val);
    if (a == 0 || (a & (a - 1)))
        return fail(r, WS_EFORMAT, "key 'general.alignment' is %u, not a power of two", a);
    g->alignment = a;
    return 0;
}

/* The shape: n_dims, ne[] (each >= 1, the product within int64). */
static int parse_shape(rd *r, const char *ctx, ws_gguf_tensor *t)
{
    uint32_t n_dims = 0;
    int rc = rd_u32(r, &n_dims, ctx, "n_dims");
    if (rc)
        return rc;
    if (n_dims < 1 || n_dims > WS_GGUF_MAX_DIMS)
        return fail(r, WS_EFORMAT, "%s: n_dims %u is out of range (1..%d)", ctx, n_dims, WS_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t elems = 1;
    for (int d = 0; d < WS_GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        char field[16];
        snprintf(field, sizeof field, "ne[%d]", d);
        if (d < t->n_dims && (rc = rd_u64(r, &v, ctx, field)))
            return rc;
        if (v == 0 || v > INT64_MAX)
            return fail(r, WS_EFORMAT, "%s: ne[%d] is %lld (must be at least 1)", ctx, d,
                        (long long)(int64_t)v);
        if (elems > (uint64_t)INT64_MAX / v)
            return fail(r, WS_EFORMAT, "%s: the shape's element count overflows 64 bits (at ne[%d])", ctx, d);
        elems *= v;
        t->ne[d] = (int64_t)v;
    }
    return 0;
}

/* Type, row length and byte size of t (shape read). */
static int check_type(rd *r, const char *ctx, uint32_t type, ws_gguf_tensor *t)
{
    if (!ws_qtype_is_weight((int)type))
        return fail(r, WS_EUNSUPPORTED,
                    "%s has type %u (%s), which WhatStyle does not read; supported: F32, F16, BF16, Q8_0, "
                    "Q4_0, Q4_1, Q4_K, Q5_K, Q6_K",
                    ctx, type, ggml_type_name(type));
    t->type = (ws_qtype)type;
    size_t be = ws_qtype_block_elems(t->type), bb = ws_qtype_block_bytes(t->type);
    if (t->ne[0] % (int64_t)be)
        return fail(r, WS_EFORMAT, "%s: row length ne[0] = %lld is not a multiple of %s's block of %zu", ctx,
                    (long long)t->ne[0], ws_qtype_name(t->type), be);
    uint64_t blocks = (uint64_t)t->ne[0] / be;
    uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3]; /* shape checked */
    if (blocks > SIZE_MAX / bb || rows > SIZE_MAX / (blocks * bb))
        return fail(r, WS_EFORMAT, "%s: its byte size overflows", ctx);
    t->nbytes = ws_qtype_row_bytes(t->type, t->ne[0]) * (size_t)rows;
    return 0;
}

static int parse_tensor_info(ws_gguf *g, rd *r, uint64_t i)
{
    char ctx[SHOWN_NAME + 32];
    const uint8_t *s = NULL;
    uint64_t n = 0;
    uint32_t type = 0;
    int rc;
    snprintf(ctx, sizeof ctx, "tensor #%llu", (unsigned long long)i);
    if ((rc = rd_str(r, &s, &n, ctx, "name")))
        return rc;
    if (n == 0 || memchr(s, 0, n))
        return fail(r, WS_EFORMAT, "tensor #%llu has %s name", (unsigned long long)i,
                    n ? "a NUL byte in its" : "an empty");
    name_ctx(ctx, sizeof ctx, "tensor", s, n);
    long dup = ws_strset_find(&g->tnames, (const char *)s, n);
    if (dup >= 0)
        return fail(r, WS_EFORMAT, "duplicate tensor name: %s is tensor #%ld and #%llu", ctx, dup,
                    (unsigned long long)i);
    if (g->tnames.count == g->t_cap) {
        g->t_cap = g->t_cap ? 2 * g->t_cap : 16;
        g->tensors = ws_xrealloc(g->tensors, g->t_cap * sizeof *g->tensors);
    }
    size_t k = ws_strset_add(&g->tnames, (const char *)s, n);
    ws_gguf_tensor *t = &g->tensors[k];
    memset(t, 0, sizeof *t);
    t->name = g->tnames.items[k];
    if ((rc = parse_shape(r, ctx, t)) || (rc = rd_u32(r, &type, ctx, "type")) ||
        (rc = check_type(r, ctx, type, t)) || (rc = rd_u64(r, &t->offset, ctx, "data offset")))
        return rc;
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const ws_gguf_tensor *x = *(const ws_gguf_tensor *const *)a, *y = *(const ws_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The data section after the tensor infos (padded to the alignment) and each tensor in it:
 * aligned, inside the file, no two overlapping. */
static int place_tensors(ws_gguf *g, rd *r)
{
    size_t a = g->alignment, n = g->tnames.count;
    uint64_t start = ((uint64_t)r->pos + a - 1) / a * a;
    if (n == 0) {
        g->data_off = start < r->len ? (size_t)start : r->len;
        return 0;
    }
    if (start > r->len)
        return fail(r, WS_EFORMAT,
                    "the data section would start at byte %llu (padded to %zu), past the end "
                    "of the file (%zu bytes)",
                    (unsigned long long)start, a, r->len);
    g->data_off = (size_t)start;
    size_t avail = r->len - g->data_off;
    for (size_t i = 0; i < n; i++) {
        ws_gguf_tensor *t = &g->tensors[i];
        if (t->offset % a)
            return fail(r, WS_EFORMAT,
                        "tensor '%.*s': data offset %llu is not a multiple of the alignment %zu", SHOWN_NAME,
                        t->name, (unsigned long long)t->offset, a);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return fail(r, WS_EFORMAT,
                        "tensor '%.*s': data of %zu bytes at offset %llu lies outside the file's "
                        "data section (%zu bytes)",
                        SHOWN_NAME, t->name, t->nbytes, (unsigned long long)t->offset, avail);
        t->data = r->p + g->data_off + t->offset;
    }
    const ws_gguf_tensor **order = ws_xmalloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = &g->tensors[i];
    qsort(order, n, sizeof *order, by_offset);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset)
            rc = fail(r, WS_EFORMAT, "tensors '%.*s' and '%.*s' overlap in the data section", SHOWN_NAME,
                      order[i - 1]->name, SHOWN_NAME, order[i]->name);
    free(order);
    return rc;
}

/* Magic, version and the two counts, checked against the file's size. */
static int parse_header(rd *r, uint32_t *version, uint64_t *n_t, uint64_t *n_kv)
{
    if (r->len >= 4 && memcmp(r->p, "GGUF", 4))
        return fail(r, WS_EFORMAT, "not a GGUF file (it does not begin with \"GGUF\")");
    if (r->len < HEADER_BYTES)
        return fail(r, WS_EFORMAT, "file of %zu bytes is shorter than the GGUF header (%d bytes)", r->len,
                    HEADER_BYTES);
    uint32_t v = le32(r->p + 4), swapped = __builtin_bswap32(v);
    if (v != 2 && v != 3) {
        if (swapped == 2 || swapped == 3)
            return fail(r, WS_EUNSUPPORTED, "big-endian GGUF (version %u), which WhatStyle does not read",
                        swapped);
        return fail(r, WS_EUNSUPPORTED,
                    "GGUF version %u, which WhatStyle does not read (it reads versions 2 "
                    "and 3)",
                    v);
    }
    *version = v;
    *n_t = le64(r->p + 8);
    *n_kv = le64(r->p + 16);
    size_t room = r->len - HEADER_BYTES;
    if (*n_t > INT_MAX || *n_kv > INT_MAX || *n_kv > room / KV_MIN_BYTES ||
        *n_t > (room - *n_kv * KV_MIN_BYTES) / TINFO_MIN_BYTES)
        return fail(r, WS_EFORMAT,
                    "the header's counts (%llu tensors, %llu keys) are more than the file's "
                    "%zu bytes can hold",
                    (unsigned long long)*n_t, (unsigned long long)*n_kv, r->len);
    r->pos = HEADER_BYTES;
    return 0;
}

static int parse(const void *data, size_t len, const char *name, ws_gguf **out, ws_error *err)
{
    ws_gguf *g = ws_xcalloc(1, sizeof *g);
    g->base = data;
    g->len = len;
    g->name = ws_xstrdup(name ? name : "GGUF image");
    rd r = {data, len, 0, g->name, err};
    uint64_t n_t = 0, n_kv = 0;
    int rc;
    if ((rc = parse_header(&r, &g->version, &n_t, &n_kv)) || (rc = parse_kvs(g, &r, n_kv)) ||
        (rc = parse_alignment(g, &r)))
        goto out;
    for (uint64_t i = 0; i < n_t; i++)
        if ((rc = parse_tensor_info(g, &r, i)))
            goto out;
    rc = place_tensors(g, &r);
out:
    if (rc) {
        ws_gguf_close(g);
        g = NULL;
    }
    *out = g;
    return rc;
}

int ws_gguf_open_mem(const void *data, size_t len, const char *name, ws_gguf **out, ws_error *err)
{
    static const uint8_t none[1];
    return parse(len ? data : none, len, name, out, err);
}

int ws_gguf_open(const char *path, ws_gguf **out, ws_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    void *map = NULL;
    int rc = 0;
    if (fstat(fd, &st)) {
        rc = ws_error_set(err, WS_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ws_error_set(err, WS_EIO, "%s: %s", path,
                          S_ISDIR(st.st_mode) ? "is a folder" : "not a regular file");
        goto out;
    }
    if (st.st_size == 0) {
        rc = ws_gguf_open_mem(NULL, 0, path, out, err);
        goto out;
    }
    if ((unsigned long long)st.st_size > SIZE_MAX) {
        rc = ws_error_set(err, WS_ETOOBIG, "%s: too large to map", path);
        goto out;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        rc = ws_error_set(err, WS_EIO, "%s: cannot map: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = parse(map, (size_t)st.st_size, path, out, err)))
        goto out;
    (*out)->map = map;
    map = NULL;
out:
    if (map)
        munmap(map, (size_t)st.st_size);
    close(fd);
    return rc;
}

void ws_gguf_close(ws_gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->keys.count; i++)
        free(g->kvs[i].strs);
    free(g->kvs);
    ws_strset_free(&g->keys);
    free(g->tensors);
    ws_strset_free(&g->tnames);
    if (g->map)
        munmap(g->map, g->len);
    free(g->name);
    free(g);
}

uint32_t ws_gguf_version(const ws_gguf *g)
{
    return g->version;
}
size_t ws_gguf_alignment(const ws_gguf *g)
{
    return g->alignment;
}

/* ---- metadata ---- */

int ws_gguf_find_key(const ws_gguf *g, const char *key)
{
    return (int)ws_strset_find(&g->keys, key, strlen(key));
}

int ws_gguf_n_keys(const ws_gguf *g)
{
    return (int)g->keys.count;
}

const char *ws_gguf_key_name(const ws_gguf *g, int i)
{
    return i >= 0 && (size_t)i < g->keys.count ? g->keys.items[i] : NULL;
}

ws_gguf_vtype ws_gguf_key_type(const ws_gguf *g, int i)
{
    return i >= 0 && (size_t)i < g->keys.count ? g->kvs[i].type : (ws_gguf_vtype)-1;
}

/* The key's value if it has type want (or any type when want < 0). */
static const gguf_kv *lookup(const ws_gguf *g, const char *key, int want, int *rc, ws_error *err)
{
    int i = ws_gguf_find_key(g, key);
    if (i < 0) {
        *rc = ws_error_set(err, WS_ENOENT, "%s: no key '%s'", g->name, key);
        return NULL;
    }
    if (want >= 0 && g->kvs[i].type != (ws_gguf_vtype)want) {
        *rc = ws_error_set(err, WS_EFORMAT, "%s: key '%s' is %s, not %s", g->name, key,
                           vtype_names[g->kvs[i].type], vtype_names[want]);
        return NULL;
    }
    *rc = 0;
    return &g->kvs[i];
}

/* The integer of type t at p: in *s when *is_signed, else in *u. False for other types. */
static bool read_int(int t, const uint8_t *p, int64_t *s, uint64_t *u, bool *is_signed)
{
    *is_signed = t == WS_GGUF_I8 || t == WS_GGUF_I16 || t == WS_GGUF_I32 || t == WS_GGUF_I64;
    switch (t) {
    case WS_GGUF_U8: *u = p[0]; return true;
    case WS_GGUF_I8: *s = (int8_t)p[0]; return true;
    case WS_GGUF_U16: *u = le16(p); return true;
    case WS_GGUF_I16: *s = (int16_t)le16(p); return true;
    case WS_GGUF_U32: *u = le32(p); return true;
    case WS_GGUF_I32: *s = (int32_t)le32(p); return true;
    case WS_GGUF_U64: *u = le64(p); return true;
    case WS_GGUF_I64: *s = (int64_t)le64(p); return true;
    default: return false;
    }
}

static double read_float(int t, const uint8_t *p)
{
    if (t == WS_GGUF_F32) {
        uint32_t b = le32(p);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    uint64_t b = le64(p);
    double d;
    memcpy(&d, &b, 8);
    return d;
}

/* "key 'k'" or "element i of key 'k'" (elem < 0: the key itself), for messages. */
static void value_ctx(char *buf, size_t cap, const char *key, int64_t elem)
{
    if (elem < 0)
        snprintf(buf, cap, "key '%.*s'", SHOWN_NAME, key);
    else
        snprintf(buf, cap, "element %lld of key '%.*s'", (long long)elem, SHOWN_NAME, key);
}

/* The integer-typed value at p (of key, element elem or -1) into *out if it lies in [lo, hi]. */
static int int_in_range(const ws_gguf *g, const char *key, int64_t elem, int t, const uint8_t *p, int64_t lo,
                        uint64_t hi, const char *want, int64_t *out, ws_error *err)
{
    int64_t s = 0;
    uint64_t u = 0;
    bool sgn;
    char what[SHOWN_NAME + 48], v[24];
    if (!read_int(t, p, &s, &u, &sgn)) {
        value_ctx(what, sizeof what, key, elem);
        return ws_error_set(err, WS_EFORMAT, "%s: %s is %s, not an integer (%s)", g->name, what,
                            vtype_names[t], want);
    }
    if (sgn ? s < lo || (s >= 0 && (uint64_t)s > hi) : u > hi) {
        value_ctx(what, sizeof what, key, elem);
        if (sgn)
            snprintf(v, sizeof v, "%lld", (long long)s);
        else
            snprintf(v, sizeof v, "%llu", (unsigned long long)u);
        return ws_error_set(err, WS_EFORMAT, "%s: %s is %s %s, which does not fit %s", g->name, what,
                            vtype_names[t], v, want);
    }
    *out = sgn ? s : (int64_t)u;
    return 0;
}

int ws_gguf_get_u32(const ws_gguf *g, const char *key, uint32_t *out, ws_error *err)
{
    int rc;
    int64_t v = 0;
    const gguf_kv *kv = lookup(g, key, -1, &rc, err);
    if (!kv)
        return rc;
    if ((rc = int_in_range(g, key, -1, kv->type, kv->val, 0, UINT32_MAX, "U32", &v, err)))
        return rc;
    *out = (uint32_t)v;
    return 0;
}

int ws_gguf_get_i64(const ws_gguf *g, const char *key, int64_t *out, ws_error *err)
{
    int rc;
    const gguf_kv *kv = lookup(g, key, -1, &rc, err);
    if (!kv)
        return rc;
    return int_in_range(g, key, -1, kv->type, kv->val, INT64_MIN, INT64_MAX, "I64", out, err);
}

int ws_gguf_get_f32(const ws_gguf *g, const char *key, float *out, ws_error *err)
{
    int rc;
    const gguf_kv *kv = lookup(g, key, -1, &rc, err);
    if (!kv)
        return rc;
    if (kv->type != WS_GGUF_F32 && kv->type != WS_GGUF_F64)
        return ws_error_set(err, WS_EFORMAT, "%s: key '%s' is %s, not F32 or F64", g->name, key,
                            vtype_names[kv->type]);
    *out = (float)read_float(kv->type, kv->val);
    return 0;
}

int ws_gguf_get_bool(const ws_gguf *g, const char *key, bool *out, ws_error *err)
{
    int rc;
    const gguf_kv *kv = lookup(g, key, WS_GGUF_BOOL, &rc, err);
    if (kv)
        *out = kv->val[0] != 0;
    return rc;
}

int ws_gguf_get_str(const ws_gguf *g, const char *key, const char **s, size_t *len, ws_error *err)
{
    int rc;
    const gguf_kv *kv = lookup(g, key, WS_GGUF_STRING, &rc, err);
    if (kv) {
        *len = (size_t)le64(kv->val);
        *s = (const char *)kv->val + 8;
    }
    return rc;
}

int ws_gguf_get_arr(const ws_gguf *g, const char *key, ws_gguf_vtype *elem_type, uint64_t *n, ws_error *err)
{
    int rc;
    const gguf_kv *kv = lookup(g, key, WS_GGUF_ARRAY, &rc, err);
    if (kv) {
        *elem_type = kv->elem;
        *n = kv->n;
    }
    return rc;
}

/* The array at key with element i in range (of a numeric or bool type when numeric). */
static const gguf_kv *array_elem(const ws_gguf *g, const char *key, uint64_t i, bool numeric, int *rc,
                                 ws_error *err)
{
    const gguf_kv *kv = lookup(g, key, WS_GGUF_ARRAY, rc, err);
    if (!kv)
        return NULL;
    if (numeric ? !ws_gguf_scalar_size(kv->elem) : kv->elem != WS_GGUF_STRING) {
        *rc = ws_error_set(err, WS_EFORMAT, "%s: key '%s' is an array of %s, not of %s", g->name, key,
                           vtype_names[kv->elem], numeric ? "numbers" : "STRING");
        return NULL;
    }
    if (i >= kv->n) {
        *rc = ws_error_set(err, WS_EINVAL, "%s: index %llu is past the end of key '%s' (%llu elements)",
                           g->name, (unsigned long long)i, key, (unsigned long long)kv->n);
        return NULL;
    }
    return kv;
}

int ws_gguf_arr_str(const ws_gguf *g, const char *key, uint64_t i, const char **s, size_t *len, ws_error *err)
{
    int rc;
    const gguf_kv *kv = array_elem(g, key, i, false, &rc, err);
    if (kv) {
        *len = (size_t)le64(kv->strs[i]);
        *s = (const char *)kv->strs[i] + 8;
    }
    return rc;
}

int ws_gguf_arr_i64(const ws_gguf *g, const char *key, uint64_t i, int64_t *out, ws_error *err)
{
    int rc;
    const gguf_kv *kv = array_elem(g, key, i, true, &rc, err);
    if (!kv)
        return rc;
    const uint8_t *p = kv->val + i * ws_gguf_scalar_size(kv->elem);
    if (kv->elem == WS_GGUF_BOOL) {
        *out = p[0];
        return 0;
    }
    if (kv->elem == WS_GGUF_F32 || kv->elem == WS_GGUF_F64) {
        double d = read_float(kv->elem, p);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) {
            char what[SHOWN_NAME + 48];
            value_ctx(what, sizeof what, key, (int64_t)i);
            return ws_error_set(err, WS_EFORMAT, "%s: %s is %g, not an integer in I64's range", g->name, what,
                                d);
        }
        *out = (int64_t)d;
        return 0;
    }
    return int_in_range(g, key, (int64_t)i, kv->elem, p, INT64_MIN, INT64_MAX, "I64", out, err);
}

int ws_gguf_arr_f64(const ws_gguf *g, const char *key, uint64_t i, double *out, ws_error *err)
{
    int rc;
    const gguf_kv *kv = array_elem(g, key, i, true, &rc, err);
    if (!kv)
        return rc;
    const uint8_t *p = kv->val + i * ws_gguf_scalar_size(kv->elem);
    int64_t s = 0;
    uint64_t u = 0;
    bool sgn;
    if (kv->elem == WS_GGUF_BOOL)
        *out = p[0];
    else if (kv->elem == WS_GGUF_F32 || kv->elem == WS_GGUF_F64)
        *out = read_float(kv->elem, p);
    else if (read_int(kv->elem, p, &s, &u, &sgn))
        *out = sgn ? (double)s : (double)u;
    return 0;
}

/* ---- tensors ---- */

int ws_gguf_n_tensors(const ws_gguf *g)
{
    return (int)g->tnames.count;
}

const ws_gguf_tensor *ws_gguf_tensor_at(const ws_gguf *g, int i)
{
    return i >= 0 && (size_t)i < g->tnames.count ? &g->tensors[i] : NULL;
}

const ws_gguf_tensor *ws_gguf_find_tensor(const ws_gguf *g, const char *name)
{
    long i = ws_strset_find(&g->tnames, name, strlen(name));
    return i >= 0 ? &g->tensors[i] : NULL;
}
