/* Safetensors reader (memory-mapped, single file or a sharded `*.index.json` set) and writer.
 *
 * A ws_safetensors holds one or more mapped files and the tensors their headers describe;
 * tensor data pointers point into the mappings and stay valid until ws_st_close(). Headers are
 * untrusted input: their size is capped (WS_ST_MAX_HEADER), every offset and shape is checked
 * against the file, and bad files give WS_EFORMAT with a message. A loaded set is immutable and
 * may be read from several threads at once. */
#ifndef WS_NN_SAFETENSORS_H
#define WS_NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define WS_ST_MAX_HEADER (100u << 20)
#define WS_ST_MAX_DIMS 8

typedef enum { WS_DT_F32, WS_DT_F16, WS_DT_BF16, WS_DT_I32, WS_DT_I64 } ws_dtype;

typedef struct ws_st_tensor {
    const char *name;
    ws_dtype dtype;
    int ndim;
    int64_t shape[WS_ST_MAX_DIMS];
    size_t numel;
    const void *data; /* into the mapping (or the parsed buffer); may be unaligned */
    size_t nbytes;
} ws_st_tensor;

typedef struct ws_safetensors ws_safetensors;

/* Maps one .safetensors file. *out belongs to the caller (ws_st_close). */
int ws_st_open(const char *path, ws_safetensors **out, ws_error *err);
/* Opens the weights of a model directory: model.safetensors, or the shards listed by
 * model.safetensors.index.json (a tensor name may appear only once across shards). */
int ws_st_open_dir(const char *dir, ws_safetensors **out, ws_error *err);
/* Parses a safetensors image already in memory; data is borrowed and must outlive *out. */
int ws_st_parse(const void *data, size_t len, ws_safetensors **out, ws_error *err);
void ws_st_close(ws_safetensors *st);

size_t ws_st_count(const ws_safetensors *st);
const ws_st_tensor *ws_st_at(const ws_safetensors *st, size_t i);
const ws_st_tensor *ws_st_find(const ws_safetensors *st, const char *name); /* NULL if absent */
/* Value of a key of the header's "__metadata__" (string map), or NULL. */
const char *ws_st_metadata(const ws_safetensors *st, const char *key);

size_t ws_dtype_size(ws_dtype dt);
const char *ws_dtype_name(ws_dtype dt);
/* Converts a floating-point tensor (F32/F16/BF16) to f32; dst holds t->numel floats. */
int ws_st_to_f32(const ws_st_tensor *t, float *dst);
float ws_f16_to_f32(uint16_t h);
float ws_bf16_to_f32(uint16_t h);

/* ---- writer ---- */
typedef struct ws_st_entry {
    const char *name;
    ws_dtype dtype; /* F32 or I32 */
    int ndim;
    int64_t shape[WS_ST_MAX_DIMS];
    const void *data;
} ws_st_entry;

/* Writes tensors (and optional string metadata pairs meta[2*i], meta[2*i+1]) to path,
 * atomically (temp file + rename). */
int ws_st_write(const char *path, const ws_st_entry *entries, size_t n, const char *const *meta,
                size_t n_meta, ws_error *err);

#endif
