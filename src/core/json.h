/* JSON: a writer that appends to a ws_buf, and a bounded DOM parser.
 *
 * Parser: ws_json_parse() builds a tree in an arena owned by the returned ws_json_doc;
 * every node and string lives until ws_json_doc_free(). Input is capped by the caller's
 * length; nesting is capped at WS_JSON_MAX_DEPTH. Strings are decoded to UTF-8 (\u escapes,
 * surrogate pairs); a lone surrogate becomes U+FFFD. Numbers are doubles (exact to 2^53).
 * Errors report the byte offset. Thread-safe: no shared state. */
#ifndef WS_CORE_JSON_H
#define WS_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_JSON_MAX_DEPTH 128

/* ---- writer ---- */
/* Appends s (n bytes of UTF-8) as a quoted JSON string; control characters are escaped,
 * everything else (including non-ASCII) is copied verbatim. */
int ws_json_put_str(ws_buf *b, const char *s, size_t n);
int ws_json_put_cstr(ws_buf *b, const char *s); /* NULL writes null */
int ws_json_put_num(ws_buf *b, double v);       /* shortest round-trip form; NaN/Inf -> null */

/* ---- parser ---- */
typedef enum {
    WS_JSON_NULL,
    WS_JSON_BOOL,
    WS_JSON_NUMBER,
    WS_JSON_STRING,
    WS_JSON_ARRAY,
    WS_JSON_OBJECT
} ws_json_type;

typedef struct ws_json ws_json;
struct ws_json {
    ws_json_type type;
    bool boolean;
    double number;
    const char *str;   /* STRING: NUL-terminated (may contain NUL; use len) */
    size_t len;        /* STRING: bytes; ARRAY/OBJECT: number of children */
    ws_json *items;    /* ARRAY/OBJECT: children, contiguous */
    const char **keys; /* OBJECT: keys[i] names items[i] */
    size_t *key_lens;
};

typedef struct ws_json_doc ws_json_doc;

int ws_json_parse(const char *text, size_t len, ws_json_doc **out, ws_error *err);
const ws_json *ws_json_root(const ws_json_doc *doc);
void ws_json_doc_free(ws_json_doc *doc);

/* Lookups; all return NULL when absent or of the wrong type. */
const ws_json *ws_json_get(const ws_json *obj, const char *key);
const ws_json *ws_json_at(const ws_json *arr, size_t i);
const char *ws_json_get_str(const ws_json *obj, const char *key);       /* STRING value */
bool ws_json_get_num(const ws_json *obj, const char *key, double *out); /* NUMBER value */
bool ws_json_get_bool(const ws_json *obj, const char *key, bool *out);

#endif
