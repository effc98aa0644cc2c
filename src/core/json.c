/* JSON writer and bounded recursive-descent DOM parser. */
#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/hex.h"
#include "core/mem.h"
#include "core/utf8.h"

/* ------------------------------------------------------------------ writer */

int ws_json_put_str(ws_buf *b, const char *s, size_t n)
{
    int rc = ws_buf_putc(b, '"');
    size_t run = 0; /* start of the current run of bytes copied verbatim */
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = ws_buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            ws_hex_encode(&c, 1, esc + 4); /* and the NUL in esc[6] */
            elen = 6;
        }
        if (!rc)
            rc = ws_buf_append(b, esc, elen);
    }
    if (!rc)
        rc = ws_buf_append(b, s + run, n - run);
    if (!rc)
        rc = ws_buf_putc(b, '"');
    return rc;
}

int ws_json_put_cstr(ws_buf *b, const char *s)
{
    return s ? ws_json_put_str(b, s, strlen(s)) : ws_buf_puts(b, "null");
}

int ws_json_put_num(ws_buf *b, double v)
{
    if (!isfinite(v))
        return ws_buf_puts(b, "null");
    /* the range first: converting a double outside long long's range is undefined; -0 keeps
     * its sign through the %g path below */
    if (fabs(v) < 1e15 && v == (double)(long long)v && !(v == 0 && signbit(v)))
        return ws_buf_put_i64(b, (long long)v);
    char tmp[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    return ws_buf_puts(b, tmp);
}

/* ------------------------------------------------------------------ parser */

struct ws_json_doc {
    ws_arena *arena;
    ws_json root;
};

typedef struct parser {
    const char *p, *end, *start;
    ws_arena *arena;
    ws_error *err;
    ws_buf scratch;
} parser;

static int fail(parser *ps, const char *what)
{
    return ws_error_set(ps->err, WS_EFORMAT, "invalid JSON at byte %zu: %s", (size_t)(ps->p - ps->start),
                        what);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4)
        return fail(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = ws_hex_digit(ps->p[i]);
        if (d < 0)
            return fail(ps, "bad \\u escape");
        v = v << 4 | (unsigned)d;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static void put_utf8(ws_buf *b, unsigned cp)
{
    char o[4];
    ws_buf_append(b, o, ws_utf8_put(o, cp));
}

/* Parses a string at ps->p (which points at the opening quote). */
static int parse_string(parser *ps, const char **out, size_t *out_len)
{
    ps->p++;
    ws_buf_reset(&ps->scratch);
    for (;;) {
        const char *run = ps->p;
        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && (unsigned char)*ps->p >= 0x20)
            ps->p++;
        ws_buf_append(&ps->scratch, run, (size_t)(ps->p - run));
        if (ps->p >= ps->end)
            return fail(ps, "unterminated string");
        char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if ((unsigned char)c < 0x20)
            return fail(ps, "control character in string");
        ps->p++; /* backslash */
        if (ps->p >= ps->end)
            return fail(ps, "unterminated escape");
        c = *ps->p++;
        switch (c) {
        case '"': ws_buf_putc(&ps->scratch, '"'); break;
        case '\\': ws_buf_putc(&ps->scratch, '\\'); break;
        case '/': ws_buf_putc(&ps->scratch, '/'); break;
        case 'b': ws_buf_putc(&ps->scratch, '\b'); break;
        case 'f': ws_buf_putc(&ps->scratch, '\f'); break;
        case 'n': ws_buf_putc(&ps->scratch, '\n'); break;
        case 'r': ws_buf_putc(&ps->scratch, '\r'); break;
        case 't': ws_buf_putc(&ps->scratch, '\t'); break;
        case 'u': {
            unsigned cp, lo;
            int rc = hex4(ps, &cp);
            if (rc)
                return rc;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                    const char *save = ps->p;
                    ps->p += 2;
                    if ((rc = hex4(ps, &lo)))
                        return rc;
                    if (lo >= 0xDC00 && lo <= 0xDFFF)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else {
                        ps->p = save;
                        cp = 0xFFFD;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            put_utf8(&ps->scratch, cp);
            break;
        }
        default: return fail(ps, "bad escape");
        }
    }
    *out = ws_arena_strndup(ps->arena, ps->scratch.data ? ps->scratch.data : "", ps->scratch.len);
    *out_len = ps->scratch.len;
    return 0;
}

static int parse_value(parser *ps, ws_json *v, int depth);

/* Children are collected in a temporary growable array, then copied into the arena. */
static int parse_container(parser *ps, ws_json *v, int depth, bool is_object)
{
    size_t n = 0, cap = 0;
    ws_json *items = NULL;
    const char **keys = NULL;
    size_t *key_lens = NULL;
    int rc = 0;
    char close = is_object ? '}' : ']';

    if (depth >= WS_JSON_MAX_DEPTH)
        return fail(ps, "nesting too deep");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        goto done;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            items = ws_xrealloc(items, cap * sizeof *items);
            if (is_object) {
                keys = ws_xrealloc(keys, cap * sizeof *keys);
                key_lens = ws_xrealloc(key_lens, cap * sizeof *key_lens);
            }
        }
        skip_ws(ps);
        if (is_object) {
            if (ps->p >= ps->end || *ps->p != '"') {
                rc = fail(ps, "expected object key");
                goto out;
            }
            if ((rc = parse_string(ps, &keys[n], &key_lens[n])))
                goto out;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                rc = fail(ps, "expected ':'");
                goto out;
            }
            ps->p++;
        }
        if ((rc = parse_value(ps, &items[n], depth + 1)))
            goto out;
        n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        rc = fail(ps, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto out;
    }
done:
    v->type = is_object ? WS_JSON_OBJECT : WS_JSON_ARRAY;
    v->len = n;
    if (n) {
        v->items = ws_arena_alloc(ps->arena, n * sizeof *items);
        memcpy(v->items, items, n * sizeof *items);
        if (is_object) {
            v->keys = ws_arena_alloc(ps->arena, n * sizeof *keys);
            memcpy(v->keys, keys, n * sizeof *keys);
            v->key_lens = ws_arena_alloc(ps->arena, n * sizeof *key_lens);
            memcpy(v->key_lens, key_lens, n * sizeof *key_lens);
        }
    }
out:
    free(items);
    free(keys);
    free(key_lens);
    return rc;
}

static int parse_number(parser *ps, ws_json *v)
{
    const char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9'))
        return fail(ps, "bad number");
    if (*ps->p == '0')
        ps->p++;
    else
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9'))
            return fail(ps, "bad number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9'))
            return fail(ps, "bad number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    char tmp[64];
    size_t n = (size_t)(ps->p - s);
    if (n >= sizeof tmp) {
        char *big = ws_xstrndup(s, n);
        v->number = strtod(big, NULL);
        free(big);
    } else {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        v->number = strtod(tmp, NULL);
    }
    v->type = WS_JSON_NUMBER;
    return 0;
}

static int literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "unexpected token");
    ps->p += n;
    return 0;
}

static int parse_value(parser *ps, ws_json *v, int depth)
{
    memset(v, 0, sizeof *v);
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, depth, true);
    case '[': return parse_container(ps, v, depth, false);
    case '"': v->type = WS_JSON_STRING; return parse_string(ps, &v->str, &v->len);
    case 't':
        v->type = WS_JSON_BOOL;
        v->boolean = true;
        return literal(ps, "true");
    case 'f': v->type = WS_JSON_BOOL; return literal(ps, "false");
    case 'n': v->type = WS_JSON_NULL; return literal(ps, "null");
    default: return parse_number(ps, v);
    }
}

int ws_json_parse(const char *text, size_t len, ws_json_doc **out, ws_error *err)
{
    ws_json_doc *doc = ws_xcalloc(1, sizeof *doc);
    doc->arena = ws_arena_new(len < 4096 ? 4096 : 65536);
    parser ps = {.p = text, .end = text + len, .start = text, .arena = doc->arena, .err = err};
    int rc = parse_value(&ps, &doc->root, 0);
    if (!rc) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            rc = fail(&ps, "trailing characters");
    }
    ws_buf_free(&ps.scratch);
    if (rc) {
        ws_json_doc_free(doc);
        *out = NULL;
        return rc;
    }
    *out = doc;
    return 0;
}

const ws_json *ws_json_root(const ws_json_doc *doc)
{
    return &doc->root;
}

void ws_json_doc_free(ws_json_doc *doc)
{
    if (!doc)
        return;
    ws_arena_free(doc->arena);
    free(doc);
}

const ws_json *ws_json_get(const ws_json *obj, const char *key)
{
    if (!obj || obj->type != WS_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->len; i++)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0)
            return &obj->items[i];
    return NULL;
}

const ws_json *ws_json_at(const ws_json *arr, size_t i)
{
    if (!arr || (arr->type != WS_JSON_ARRAY && arr->type != WS_JSON_OBJECT) || i >= arr->len)
        return NULL;
    return &arr->items[i];
}

const char *ws_json_get_str(const ws_json *obj, const char *key)
{
    const ws_json *v = ws_json_get(obj, key);
    return v && v->type == WS_JSON_STRING ? v->str : NULL;
}

bool ws_json_get_num(const ws_json *obj, const char *key, double *out)
{
    const ws_json *v = ws_json_get(obj, key);
    if (!v || v->type != WS_JSON_NUMBER)
        return false;
    *out = v->number;
    return true;
}

bool ws_json_get_bool(const ws_json *obj, const char *key, bool *out)
{
    const ws_json *v = ws_json_get(obj, key);
    if (!v || v->type != WS_JSON_BOOL)
        return false;
    *out = v->boolean;
    return true;
}
