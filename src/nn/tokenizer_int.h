/* Private to the tokenizer (src/nn/tokenizer*.c): Unicode helpers (character classes of the
 * tokenizers regex engine, UTF-8, NFC) and the hand-written pre-tokenizer matchers.
 * Everything here is pure and thread-safe. */
#ifndef WS_NN_TOKENIZER_INT_H
#define WS_NN_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/utf8.h"

/* ---- Unicode (tokenizer_unicode.c) ---- */
enum {
    WS_UNI_L = 1,          /* \p{L} */
    WS_UNI_N = 2,          /* \p{N} */
    WS_UNI_S = 4,          /* \s (White_Space; also Rust char::is_whitespace) */
    WS_UNI_W = 8,          /* \w of the Rust regex crate (single_word added tokens) */
    WS_UNI_NFC_CHECK = 16, /* NFC quick check is not "yes" */
    WS_UNI_DIGIT = 32,     /* Rust char::is_numeric (the Digits pre-tokenizer) */
};
unsigned ws_uni_class(uint32_t cp);

/* Decodes the character at s[i] of VALID UTF-8 (i < len); returns its byte length. A character
 * cut short by len (never in valid input) decodes as U+FFFD over the bytes that remain. */
static inline size_t ws_utf8_at(const char *s, size_t len, size_t i, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s + i;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t need = u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
    if (need > len - i) {
        *cp = 0xFFFD;
        return len - i;
    }
    if (u[0] < 0xE0) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
          (u[3] & 0x3F);
    return 4;
}
/* Start of the character that ends just before byte i of valid UTF-8 (i > 0). */
static inline size_t ws_utf8_prev(const char *s, size_t i)
{
    do
        i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

/* Length of the trailing bytes of s that are a proper prefix of a well-formed sequence (a
 * character cut short, 1-3 bytes), else 0. */
size_t ws_utf8_unfinished_tail(const char *s, size_t len);
/* Appends s to out with every ill-formed sequence replaced by U+FFFD, one per maximal
 * subpart (the rule of Python's errors="replace" and Rust's from_utf8_lossy). */
void ws_utf8_sanitize(const char *s, size_t len, ws_buf *out);

/* Appends the NFC form of valid UTF-8 s to out. */
void ws_uni_nfc(const char *s, size_t len, ws_buf *out);

/* ---- pre-tokenizer patterns (tokenizer_pretok.c) ---- */
typedef enum {
    WS_PAT_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    WS_PAT_LLAMA3, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|... */
    WS_PAT_QWEN2,  /* as LLAMA3 with \p{N} (single digits) */
    WS_PAT_COUNT
} ws_pattern;

/* The pattern whose source text (as written in tokenizer.json) is src, or -1 when unknown. */
int ws_pattern_lookup(const char *src, size_t len);
const char *ws_pattern_source(ws_pattern p);
/* Length of the match of pattern p starting exactly at byte pos of valid UTF-8 s, or 0 when the
 * pattern does not match there. */
size_t ws_pattern_match_at(ws_pattern p, const char *s, size_t len, size_t pos);

#endif
