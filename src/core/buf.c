/* Growable NUL-terminated byte buffer with an optional size cap. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"

static int grow(ws_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (b->limit && b->len + extra > b->limit)
        return WS_ETOOBIG;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap * 2;
    b->data = ws_xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int ws_buf_append(ws_buf *b, const void *p, size_t n)
{
    int rc = grow(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ws_buf_puts(ws_buf *b, const char *s)
{
    return ws_buf_append(b, s, strlen(s));
}

int ws_buf_putc(ws_buf *b, char c)
{
    return ws_buf_append(b, &c, 1);
}

int ws_buf_vprintf(ws_buf *b, const char *fmt, va_list ap)
{
    /* one pass when the text fits the free space (the usual case); else measure, grow and
     * format again */
    size_t room = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
    if (room < 64 && grow(b, 64) == 0)
        room = b->cap - b->len - 1;
    va_list ap2;
    va_copy(ap2, ap);
    int n = room ? vsnprintf(b->data + b->len, room + 1, fmt, ap2) : vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n >= 0 && (size_t)n <= room && !(b->limit && b->len + (size_t)n > b->limit)) {
        b->len += (size_t)n;
        return 0;
    }
    if (b->data)
        b->data[b->len] = '\0'; /* undo the partial text */
    if (n < 0)
        return WS_EINVAL;
    int rc = grow(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int ws_buf_put_i64(ws_buf *b, long long v)
{
    char num[24];
    size_t k = sizeof num;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        num[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        num[--k] = '-';
    return ws_buf_append(b, num + k, sizeof num - k);
}

int ws_buf_printf(ws_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ws_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *ws_buf_reserve(ws_buf *b, size_t n)
{
    if (grow(b, n))
        return NULL;
    return b->data + b->len;
}

void ws_buf_reset(ws_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ws_buf_free(ws_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ws_buf_take(ws_buf *b)
{
    char *p = b->data ? b->data : ws_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
