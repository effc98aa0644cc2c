/* Safetensors: mmap-based reader with strict header validation, sharded index support, dtype
 * conversion to f32, and an atomic writer. */
#include "nn/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"

typedef struct {
    void *map;
    size_t len;
} mapping;

struct ws_safetensors {
    mapping *maps;
    size_t n_maps;
    ws_st_tensor *tensors;
    size_t n, cap;
    char **meta; /* key, value pairs */
    size_t n_meta;
};

size_t ws_dtype_size(ws_dtype dt)
{
    switch (dt) {
    case WS_DT_F32:
    case WS_DT_I32: return 4;
    case WS_DT_F16:
    case WS_DT_BF16: return 2;
    case WS_DT_I64: return 8;
    }
    return 0;
}

const char *ws_dtype_name(ws_dtype dt)
{
    static const char *names[] = {"F32", "F16", "BF16", "I32", "I64"};
    return (unsigned)dt < 5 ? names[dt] : "?";
}

static int dtype_from(const char *s, ws_dtype *dt)
{
    static const char *names[] = {"F32", "F16", "BF16", "I32", "I64"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *dt = (ws_dtype)i;
            return 0;
        }
    return -1;
}

float ws_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float ws_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int ws_st_to_f32(const ws_st_tensor *t, float *dst)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case WS_DT_F32: memcpy(dst, p, t->numel * 4); return 0;
    case WS_DT_F16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ws_f16_to_f32(h);
        }
        return 0;
    case WS_DT_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ws_bf16_to_f32(h);
        }
        return 0;
    default: return WS_EINVAL;
    }
}

void ws_st_close(ws_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_maps; i++)
        if (st->maps[i].map)
            munmap(st->maps[i].map, st->maps[i].len);
    for (size_t i = 0; i < st->n; i++)
        free((char *)st->tensors[i].name);
    for (size_t i = 0; i < 2 * st->n_meta; i++)
        free(st->meta[i]);
    free(st->meta);
    free(st->maps);
    free(st->tensors);
    free(st);
}

size_t ws_st_count(const ws_safetensors *st)
{
    return st->n;
}
const ws_st_tensor *ws_st_at(const ws_safetensors *st, size_t i)
{
    return i < st->n ? &st->tensors[i] : NULL;
}

const ws_st_tensor *ws_st_find(const ws_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, name))
            return &st->tensors[i];
    return NULL;
}

const char *ws_st_metadata(const ws_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key))
            return st->meta[2 * i + 1];
    return NULL;
}

/* Adds the tensors of one image (header + data) to st. what names the source in errors. */
static int parse_image(ws_safetensors *st, const unsigned char *img, size_t len, const char *what,
                       ws_error *err)
{
    ws_json_doc *doc = NULL;
    int rc = 0;
    if (len < 8)
        return ws_error_set(err, WS_EFORMAT, "%s: too short for a safetensors file", what);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | img[i];
    if (hlen > WS_ST_MAX_HEADER)
        return ws_error_set(err, WS_ETOOBIG, "%s: header of %llu bytes is over the cap", what,
                            (unsigned long long)hlen);
    if (hlen > len - 8)
        return ws_error_set(err, WS_EFORMAT, "%s: header runs past the end of the file", what);
    const unsigned char *data = img + 8 + hlen;
    size_t data_len = len - 8 - hlen;
    ws_error jerr = {0};
    if ((rc = ws_json_parse((const char *)img + 8, hlen, &doc, &jerr))) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: bad header JSON: %s", what, jerr.msg);
        goto out;
    }
    const ws_json *root = ws_json_root(doc);
    if (root->type != WS_JSON_OBJECT) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: header is not a JSON object", what);
        goto out;
    }
    for (size_t i = 0; i < root->len; i++) {
        const char *key = root->keys[i];
        const ws_json *v = &root->items[i];
        if (!strcmp(key, "__metadata__")) {
            if (v->type != WS_JSON_OBJECT)
                continue;
            for (size_t j = 0; j < v->len; j++) {
                if (v->items[j].type != WS_JSON_STRING)
                    continue;
                st->meta = ws_xrealloc(st->meta, (st->n_meta + 1) * 2 * sizeof *st->meta);
                st->meta[2 * st->n_meta] = ws_xstrdup(v->keys[j]);
                st->meta[2 * st->n_meta + 1] = ws_xstrdup(v->items[j].str);
                st->n_meta++;
            }
            continue;
        }
        ws_st_tensor t = {0};
        const char *dts = ws_json_get_str(v, "dtype");
        const ws_json *shape = ws_json_get(v, "shape"), *offs = ws_json_get(v, "data_offsets");
        if (v->type != WS_JSON_OBJECT || !dts || !shape || shape->type != WS_JSON_ARRAY || !offs ||
            offs->type != WS_JSON_ARRAY || offs->len != 2) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: tensor '%.100s': missing dtype/shape/data_offsets", what,
                              key);
            goto out;
        }
        if (dtype_from(dts, &t.dtype)) {
            rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: tensor '%.100s': unsupported dtype %.20s", what, key,
                              dts);
            goto out;
        }
        if (shape->len > WS_ST_MAX_DIMS) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: tensor '%.100s': too many dimensions", what, key);
            goto out;
        }
        t.ndim = (int)shape->len;
        size_t numel = 1;
        for (size_t d = 0; d < shape->len; d++) {
            double x = shape->items[d].number;
            if (shape->items[d].type != WS_JSON_NUMBER || x < 0 || x > 1e15 || x != (double)(int64_t)x) {
                rc = ws_error_set(err, WS_EFORMAT, "%s: tensor '%.100s': bad shape", what, key);
                goto out;
            }
            t.shape[d] = (int64_t)x;
            if (t.shape[d] && numel > SIZE_MAX / 8 / (size_t)t.shape[d]) {
                rc = ws_error_set(err, WS_EFORMAT, "%s: tensor '%.100s': shape overflows", what, key);
                goto out;
            }
            numel *= (size_t)t.shape[d];
        }
        double b = offs->items[0].number, e = offs->items[1].number;
        if (offs->items[0].type != WS_JSON_NUMBER || offs->items[1].type != WS_JSON_NUMBER || b < 0 ||
            e < b || e > (double)data_len || b != (double)(size_t)b || e != (double)(size_t)e ||
            (size_t)e - (size_t)b != numel * ws_dtype_size(t.dtype)) {
            rc = ws_error_set(err, WS_EFORMAT,
                              "%s: tensor '%.100s': data_offsets do not match its "
                              "shape or the file",
                              what, key);
            goto out;
        }
        t.numel = numel;
        t.nbytes = (size_t)e - (size_t)b;
        t.data = data + (size_t)b;
        if (ws_st_find(st, key)) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: tensor '%.100s' appears twice", what, key);
            goto out;
        }
        t.name = ws_xstrdup(key);
        if (st->n == st->cap) {
            st->cap = st->cap ? 2 * st->cap : 64;
            st->tensors = ws_xrealloc(st->tensors, st->cap * sizeof *st->tensors);
        }
        st->tensors[st->n++] = t;
    }
out:
    ws_json_doc_free(doc);
    return rc;
}

int ws_st_parse(const void *data, size_t len, ws_safetensors **out, ws_error *err)
{
    ws_safetensors *st = ws_xcalloc(1, sizeof *st);
    int rc = parse_image(st, data, len, "safetensors", err);
    if (rc) {
        ws_st_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

static int map_file(ws_safetensors *st, const char *path, ws_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        rc = ws_error_set(err, WS_EIO, "%s: not a regular file", path);
        goto out;
    }
    size_t len = (size_t)sb.st_size;
    void *map = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (len && map == MAP_FAILED) {
        rc = ws_error_set(err, WS_EIO, "%s: mmap: %s", path, strerror(errno));
        goto out;
    }
    st->maps = ws_xrealloc(st->maps, (st->n_maps + 1) * sizeof *st->maps);
    st->maps[st->n_maps++] = (mapping){map, len};
    rc = parse_image(st, map, len, path, err);
out:
    close(fd);
    return rc;
}

int ws_st_open(const char *path, ws_safetensors **out, ws_error *err)
{
    ws_safetensors *st = ws_xcalloc(1, sizeof *st);
    int rc = map_file(st, path, err);
    if (rc) {
        ws_st_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

int ws_st_open_dir(const char *dir, ws_safetensors **out, ws_error *err)
{
    char path[4096];
    ws_safetensors *st = ws_xcalloc(1, sizeof *st);
    ws_json_doc *doc = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, F_OK) == 0) {
        rc = map_file(st, path, err);
        goto out;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if ((rc = ws_file_read(path, 64u << 20, &text, &len, err))) {
        if (rc == WS_ENOENT)
            ws_error_set(err, WS_ENOENT,
                         "%s: neither model.safetensors nor "
                         "model.safetensors.index.json found",
                         dir);
        goto out;
    }
    ws_error jerr = {0};
    if ((rc = ws_json_parse(text, len, &doc, &jerr))) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: %s", path, jerr.msg);
        goto out;
    }
    const ws_json *map = ws_json_get(ws_json_root(doc), "weight_map");
    if (!map || map->type != WS_JSON_OBJECT) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: no weight_map object", path);
        goto out;
    }
    /* each distinct shard once, in order of first mention */
    for (size_t i = 0; i < map->len; i++) {
        const ws_json *v = &map->items[i];
        if (v->type != WS_JSON_STRING || strchr(v->str, '/') || v->str[0] == '.' || !v->len) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: bad shard name for '%.100s'", path, map->keys[i]);
            goto out;
        }
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(map->items[j].str, v->str);
        if (seen)
            continue;
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, v->str);
        if ((rc = map_file(st, shard, err)))
            goto out;
    }
    for (size_t i = 0; i < map->len; i++)
        if (!ws_st_find(st, map->keys[i])) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: tensor '%.100s' is not in its shard", path, map->keys[i]);
            goto out;
        }
out:
    ws_json_doc_free(doc);
    free(text);
    if (rc) {
        ws_st_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

int ws_st_write(const char *path, const ws_st_entry *entries, size_t n, const char *const *meta,
                size_t n_meta, ws_error *err)
{
    ws_buf h = WS_BUF_INIT;
    char tmp[4096];
    FILE *f = NULL;
    int rc = 0;
    size_t off = 0;
    ws_buf_putc(&h, '{');
    if (n_meta) {
        ws_buf_puts(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i)
                ws_buf_putc(&h, ',');
            ws_json_put_cstr(&h, meta[2 * i]);
            ws_buf_putc(&h, ':');
            ws_json_put_cstr(&h, meta[2 * i + 1]);
        }
        ws_buf_putc(&h, '}');
    }
    for (size_t i = 0; i < n; i++) {
        const ws_st_entry *e = &entries[i];
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++)
            numel *= (size_t)e->shape[d];
        size_t nb = numel * ws_dtype_size(e->dtype);
        if (i || n_meta)
            ws_buf_putc(&h, ',');
        ws_json_put_cstr(&h, e->name);
        ws_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", ws_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++)
            ws_buf_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        ws_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    ws_buf_putc(&h, '}');
    while (h.len % 8)
        ws_buf_putc(&h, ' ');
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    if (!(f = fopen(tmp, "wb"))) {
        rc = ws_error_set(err, WS_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    unsigned char hl[8];
    for (int i = 0; i < 8; i++)
        hl[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    bool ok = fwrite(hl, 1, 8, f) == 8 && fwrite(h.data, 1, h.len, f) == h.len;
    for (size_t i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++)
            numel *= (size_t)entries[i].shape[d];
        size_t nb = numel * ws_dtype_size(entries[i].dtype);
        ok = !nb || fwrite(entries[i].data, 1, nb, f) == nb;
    }
    if (fclose(f) || !ok) {
        f = NULL;
        rc = ws_error_set(err, WS_EIO, "%s: write failed", tmp);
        unlink(tmp);
        goto out;
    }
    f = NULL;
    if (rename(tmp, path)) {
        rc = ws_error_set(err, WS_EIO, "%s: rename: %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    ws_buf_free(&h);
    return rc;
}
