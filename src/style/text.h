/* Text helpers the style model shares (UTF-8 decoding itself is core/utf8.h, included here):
 * emoji grapheme detection (ZWJ sequences, flags, keycaps, skin tones, tag sequences), and
 * simple character classes (letters, case, scripts) used by the profile and the embedders.
 * Pure functions over caller-owned bytes; thread-safe. */
#ifndef WS_STYLE_TEXT_H
#define WS_STYLE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/utf8.h"

/* If an emoji grapheme starts at s[i], returns its length in bytes (covers ZWJ sequences,
 * skin-tone modifiers, FE0F, regional-indicator flag pairs, keycaps and tag flags); else 0. */
size_t ws_emoji_at(const char *s, size_t n, size_t i);
/* True for code points that are pictographic emoji by default (no FE0F needed). */
bool ws_emoji_is_pictographic(uint32_t cp);

/* Writing systems the language guess distinguishes. */
typedef enum {
    WS_SCRIPT_NONE = 0,
    WS_SCRIPT_LATIN,
    WS_SCRIPT_CYRILLIC,
    WS_SCRIPT_GREEK,
    WS_SCRIPT_ARABIC,
    WS_SCRIPT_HEBREW,
    WS_SCRIPT_DEVANAGARI,
    WS_SCRIPT_THAI,
    WS_SCRIPT_HANGUL,
    WS_SCRIPT_KANA,
    WS_SCRIPT_HAN,
    WS_SCRIPT_OTHER,
    WS_SCRIPT_COUNT
} ws_script;

ws_script ws_script_of(uint32_t cp);     /* WS_SCRIPT_NONE for non-letters (digits, symbols) */
const char *ws_script_name(ws_script s); /* "latin", "cyrillic", ... */
/* Letter case for the scripts that have it (Latin, Greek, Cyrillic, Armenian): 1 upper,
 * -1 lower, 0 caseless or not a letter. */
int ws_cp_case(uint32_t cp);
/* Lowercase of cp for the cased scripts above (identity elsewhere). */
uint32_t ws_cp_lower(uint32_t cp);
bool ws_cp_is_space(uint32_t cp); /* Unicode White_Space */
bool ws_cp_is_alnum(uint32_t cp); /* a letter or digit in any script we know */

/* True when a and b hold the same letters, digits and pictographic emoji in the same order,
 * case ignored (punctuation and spaces skipped): a reply that only echoes a message. */
bool ws_text_is_echo(const char *a, const char *b);

/* Case shapes of the words of texts (a word: a run of letters and digits): all lower-case
 * ("lisbon"), capitalised (first letter upper-case, the rest lower-case: "Lisbon", and a lone
 * "I" or "A") and all caps of two letters or more ("WAIT"); other words ("iPhone", digits
 * only) count in none. ws_text_case_shapes adds the words of s to *c. */
typedef struct ws_case_shapes {
    size_t lower, capitalised, caps;
} ws_case_shapes;
void ws_text_case_shapes(const char *s, ws_case_shapes *c);
/* Appends s[0..n) to out with every capitalised word (as above) in lower case; every other
 * byte is copied as it is. A word cut at either end of s is judged as the part given. */
void ws_text_lower_capitalised(const char *s, size_t n, ws_buf *out);
/* The length of s[0..n) without its last word when s ends inside one (a word could go on past
 * n): what can be passed to ws_text_lower_capitalised before the rest has come. */
size_t ws_text_whole_words(const char *s, size_t n);

#endif
