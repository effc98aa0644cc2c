/* UTF-8 helpers shared by every part. Pure functions over caller-owned bytes; thread-safe. */
#ifndef WS_CORE_UTF8_H
#define WS_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[*i] (n bytes in all) and advances *i by at least one byte.
 * Malformed or truncated sequences and surrogates decode as U+FFFD, consuming one byte. */
uint32_t ws_utf8_next(const char *s, size_t n, size_t *i);
/* Encodes cp into out (4 bytes room); surrogates and values above U+10FFFF become U+FFFD.
 * Returns the number of bytes written (1-4). */
size_t ws_utf8_put(char *out, uint32_t cp);
size_t ws_utf8_count(const char *s, size_t n);   /* number of code points */

#endif
