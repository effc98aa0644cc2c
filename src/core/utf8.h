/* UTF-8 helpers shared by every part. Pure functions over caller-owned bytes; thread-safe. */
#ifndef WS_CORE_UTF8_H
#define WS_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[*i] (n bytes in all) and advances *i by at least one byte.
 * Malformed or truncated sequences and surrogates decode as U+FFFD, consuming one byte. */
uint32_t ws_utf8_next(const char *s, size_t n, size_t *i);
/* Encodes cp into out (4 bytes room); surrogates and values above U+10FFFF become U+FFFD.
 * Returns the number of bytes written (1-4). */
size_t ws_utf8_put(char *out, uint32_t cp);
size_t ws_utf8_count(const char *s, size_t n); /* number of code points */

/* Validation (utf8_check.c), the one validator of the project: the length of the longest valid
 * prefix of s[0..n) (strict: no overlongs, surrogates or values above U+10FFFF; a sequence cut
 * short by n counts as invalid). The fastest implementation this CPU has (scalar, AVX2,
 * AVX-512BW: every one returns the same answer) is picked once; thread-safe. */
size_t ws_utf8_valid_prefix(const char *s, size_t n);
bool ws_utf8_valid(const char *s, size_t n); /* the whole of s[0..n) is valid */
/* ws_utf8_valid_prefix(s, n) into *valid and, from the same loads, a line index: bit k of
 * lf[w] set when s[w * 64 + k] is '\n', for every w < (n + 63) / 64 (the bytes up to that
 * multiple of 64 must be readable; bits past n come from whatever they hold), and *any_cr
 * whether those bytes hold a '\r'. One pass over the bytes instead of two; only the AVX-512BW
 * version has it: false (nothing done) when ws_utf8_impl_used() is another. */
bool ws_utf8_valid_prefix_lines(const char *s, size_t n, uint64_t *lf, bool *any_cr, size_t *valid);
typedef enum { WS_UTF8_SCALAR, WS_UTF8_AVX2, WS_UTF8_AVX512 } ws_utf8_impl;
size_t ws_utf8_valid_prefix_scalar(const unsigned char *s, size_t n);
/* With one implementation; false (and *out untouched) when this CPU or build lacks it. */
bool ws_utf8_valid_prefix_with(ws_utf8_impl impl, const unsigned char *s, size_t n, size_t *out);
ws_utf8_impl ws_utf8_impl_used(void); /* the one ws_utf8_valid_prefix uses */
/* Length of the valid sequence at s, or 0 with *bad = bytes of the maximal invalid subpart. */
size_t ws_utf8_seq(const unsigned char *s, size_t n, size_t *bad);
bool ws_cpu_avx2(void); /* this CPU has AVX2 (checked once) */

#endif
