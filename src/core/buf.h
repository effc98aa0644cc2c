/* A growable byte buffer (always NUL-terminated) used to build output and collect input.
 * The buffer owns its data; ws_buf_free releases it. An optional cap turns growth past a
 * size limit into WS_ETOOBIG instead of an unbounded allocation (for network-fed input). */
#ifndef WS_CORE_BUF_H
#define WS_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct ws_buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;   /* allocated bytes */
    size_t limit; /* 0 = unlimited; else appends that would exceed it fail */
} ws_buf;

#define WS_BUF_INIT                                                                                          \
    {                                                                                                        \
        NULL, 0, 0, 0                                                                                        \
    }

/* Appends; return 0 or WS_ETOOBIG when limit would be exceeded (buffer unchanged). */
int ws_buf_append(ws_buf *b, const void *p, size_t n);
int ws_buf_puts(ws_buf *b, const char *s);
int ws_buf_putc(ws_buf *b, char c);
int ws_buf_printf(ws_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ws_buf_vprintf(ws_buf *b, const char *fmt, va_list ap);
/* Appends v in decimal (what "%lld" writes, without printf's cost). */
int ws_buf_put_i64(ws_buf *b, long long v);
/* Makes room for n more bytes; returns pointer to the free space (len unchanged). */
char *ws_buf_reserve(ws_buf *b, size_t n);
void ws_buf_reset(ws_buf *b); /* len = 0, keeps memory */
void ws_buf_free(ws_buf *b);  /* releases memory; b is reusable as empty */
/* Hands the data to the caller (free() it) and empties the buffer. Never NULL. */
char *ws_buf_take(ws_buf *b);

#endif
