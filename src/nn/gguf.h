/* Reader of GGUF files (version 3; versions 2 read too): the metadata key/values of every
 * value type, the tensor table and the tensor data, memory-mapped read-only.
 *
 * Untrusted input: every count, length, offset and size is checked against the file before it
 * is used (strings and arrays capped, tensor data inside the file and aligned, byte size equal
 * to what the shape and type imply, no two tensors with one name); anything else is WS_EFORMAT
 * with a message naming the field and, for tensors, the tensor. An unknown tensor type is
 * WS_EUNSUPPORTED naming it. Nothing is allocated in proportion to a count before the bytes it
 * claims have been seen to exist.
 *
 * A ws_gguf is immutable after opening; any number of threads may read it. Pointers it hands
 * out (strings, array data, tensor data) stay valid until ws_gguf_close. */
#ifndef WS_NN_GGUF_H
#define WS_NN_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/quant.h"

typedef enum {
    WS_GGUF_U8 = 0,
    WS_GGUF_I8 = 1,
    WS_GGUF_U16 = 2,
    WS_GGUF_I16 = 3,
    WS_GGUF_U32 = 4,
    WS_GGUF_I32 = 5,
    WS_GGUF_F32 = 6,
    WS_GGUF_BOOL = 7,
    WS_GGUF_STRING = 8,
    WS_GGUF_ARRAY = 9,
    WS_GGUF_U64 = 10,
    WS_GGUF_I64 = 11,
    WS_GGUF_F64 = 12
} ws_gguf_vtype;

#define WS_GGUF_MAX_DIMS 4
/* Cap on one string (a key, a value, a tensor name, each element of an array of strings). */
#define WS_GGUF_MAX_STR (1u << 20)
/* Arrays may hold arrays (the format allows it) this many levels deep; they are checked and
 * skipped, and their elements are not served (the element getters say so). */
#define WS_GGUF_MAX_NEST 8

/* "U8", ..., "F64" ("unknown" for other values). */
const char *ws_gguf_vtype_name(int type);
/* Bytes of one scalar of the type (1, 2, 4 or 8); 0 for strings, arrays and unknown values. */
size_t ws_gguf_scalar_size(uint32_t type);

typedef struct ws_gguf_tensor {
    const char *name; /* NUL-terminated copy */
    int n_dims;
    int64_t ne[WS_GGUF_MAX_DIMS]; /* GGML order: ne[0] is the innermost (row length) */
    ws_qtype type;
    uint64_t offset; /* from the start of the data section */
    size_t nbytes;
    const void *data; /* inside the mapping */
} ws_gguf_tensor;

typedef struct ws_gguf ws_gguf;

/* Maps and parses path. *out belongs to the caller (ws_gguf_close).
 * Errors: WS_ENOENT, WS_EIO, WS_EFORMAT, WS_EUNSUPPORTED (message in err). */
int ws_gguf_open(const char *path, ws_gguf **out, ws_error *err);
/* The same over len bytes in memory (borrowed: they must outlive the ws_gguf); name is used in
 * messages. */
int ws_gguf_open_mem(const void *data, size_t len, const char *name, ws_gguf **out, ws_error *err);
void ws_gguf_close(ws_gguf *g);

uint32_t ws_gguf_version(const ws_gguf *g);
size_t ws_gguf_alignment(const ws_gguf *g);

/* ---- metadata ---- */
/* Index of key, or -1. */
int ws_gguf_find_key(const ws_gguf *g, const char *key);
int ws_gguf_n_keys(const ws_gguf *g);
const char *ws_gguf_key_name(const ws_gguf *g, int i);
ws_gguf_vtype ws_gguf_key_type(const ws_gguf *g, int i);

/* Typed getters by key. Each returns 0, WS_ENOENT when the key is absent, or WS_EFORMAT when
 * it has another type (the message names the key and both types). Integer getters accept any
 * integer type whose value fits; the float getter accepts F32 and F64. */
int ws_gguf_get_u32(const ws_gguf *g, const char *key, uint32_t *out, ws_error *err);
int ws_gguf_get_i64(const ws_gguf *g, const char *key, int64_t *out, ws_error *err);
int ws_gguf_get_f32(const ws_gguf *g, const char *key, float *out, ws_error *err);
int ws_gguf_get_bool(const ws_gguf *g, const char *key, bool *out, ws_error *err);
/* *s points into the mapping (NOT NUL-terminated), *len its length. */
int ws_gguf_get_str(const ws_gguf *g, const char *key, const char **s, size_t *len, ws_error *err);
/* An array: its element type and count. */
int ws_gguf_get_arr(const ws_gguf *g, const char *key, ws_gguf_vtype *elem_type, uint64_t *n, ws_error *err);
/* The element getters below also return WS_EINVAL when i is not below the array's length. */
/* Element i of an array of strings (pointer into the mapping, not NUL-terminated). */
int ws_gguf_arr_str(const ws_gguf *g, const char *key, uint64_t i, const char **s, size_t *len,
                    ws_error *err);
/* Element i of an array of numbers (any integer or float type, or bool) as int64 / double.
 * ws_gguf_arr_i64 refuses (WS_EFORMAT) a U64 above INT64_MAX and a float that is not a whole
 * number in int64's range. */
int ws_gguf_arr_i64(const ws_gguf *g, const char *key, uint64_t i, int64_t *out, ws_error *err);
int ws_gguf_arr_f64(const ws_gguf *g, const char *key, uint64_t i, double *out, ws_error *err);

/* ---- tensors ---- */
int ws_gguf_n_tensors(const ws_gguf *g);
const ws_gguf_tensor *ws_gguf_tensor_at(const ws_gguf *g, int i);
const ws_gguf_tensor *ws_gguf_find_tensor(const ws_gguf *g, const char *name);

/* ---- writing (tests and tools make small models with it) ----
 * The writer checks tensors (a shape or type it cannot lay out makes ws_gguf_write fail with
 * WS_EINVAL naming the tensor) but not keys: a key added twice is written twice (the reader
 * refuses such a file, which tests use). A "general.alignment" U32 that is a power of two sets
 * the alignment the file is laid out with (default 32). Not thread-safe. */
typedef struct ws_gguf_writer ws_gguf_writer;
ws_gguf_writer *ws_gguf_writer_new(void);
void ws_gguf_writer_free(ws_gguf_writer *w);
void ws_gguf_add_u32(ws_gguf_writer *w, const char *key, uint32_t v);
void ws_gguf_add_f32(ws_gguf_writer *w, const char *key, float v);
void ws_gguf_add_bool(ws_gguf_writer *w, const char *key, bool v);
void ws_gguf_add_str(ws_gguf_writer *w, const char *key, const char *v);
void ws_gguf_add_str_arr(ws_gguf_writer *w, const char *key, const char *const *v, size_t n);
void ws_gguf_add_i32_arr(ws_gguf_writer *w, const char *key, const int32_t *v, size_t n);
void ws_gguf_add_f32_arr(ws_gguf_writer *w, const char *key, const float *v, size_t n);
/* Adds a tensor with ne[0..n_dims) (GGML order) whose data (already in type's layout,
 * ws_qtype_row_bytes(type, ne[0]) * rows bytes) is copied. */
void ws_gguf_add_tensor(ws_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, ws_qtype type,
                        const void *data);
/* Any scalar type but STRING/ARRAY (those abort: a programming error): v points to a value of
 * its C type (uint8_t for U8, ..., bool for BOOL, float for F32, double for F64). */
void ws_gguf_add_num(ws_gguf_writer *w, const char *key, ws_gguf_vtype type, const void *v);
/* An array of n values of a scalar type elem (not STRING/ARRAY), v as for ws_gguf_add_num. */
void ws_gguf_add_num_arr(ws_gguf_writer *w, const char *key, ws_gguf_vtype elem, const void *v, size_t n);
/* The key, then the value type id type (any u32, valid or not), then len bytes of value body
 * as they are to appear in the file: for arrays of arrays and for tests of malformed files. */
void ws_gguf_add_raw(ws_gguf_writer *w, const char *key, uint32_t type, const void *body, size_t len);
/* Writes the file (version 3, alignment 32 or general.alignment's) atomically. Errors:
 * WS_EINVAL (a bad tensor), WS_EIO. */
int ws_gguf_write(const ws_gguf_writer *w, const char *path, ws_error *err);
/* The file's bytes (malloc'd, the caller frees *data). Errors: WS_EINVAL (a bad tensor). */
int ws_gguf_writer_bytes(const ws_gguf_writer *w, uint8_t **data, size_t *len, ws_error *err);

#endif
