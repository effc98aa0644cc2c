/* Hexadecimal: lower-case encoding of bytes and the value of one hex digit. Header-only; no
 * state, thread-safe. */
#ifndef WS_CORE_HEX_H
#define WS_CORE_HEX_H

#include <stddef.h>

/* Writes the 2n lower-case hex digits of d[0..n) to out and a NUL (out holds 2n + 1 bytes). */
static inline void ws_hex_encode(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The value (0-15) of the hex digit c, either case; -1 when c is not one. */
static inline int ws_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
