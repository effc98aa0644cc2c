/* Private: the generated Unicode tables of the WordPiece tokenizer (wordpiece_tables.c, made by
 * tools/gen_wordpiece_tables.py). All sorted by code point. */
#ifndef WS_NN_WORDPIECE_TABLES_H
#define WS_NN_WORDPIECE_TABLES_H

#include <stddef.h>
#include <stdint.h>

enum { WS_WP_CTRL = 1, WS_WP_MN = 2, WS_WP_PUNCT = 4 };

typedef struct ws_wp_range {
    uint32_t lo, hi;
    uint8_t cls;
} ws_wp_range;
typedef struct ws_wp_strip {
    uint32_t cp;
    uint16_t off;
    uint8_t len;
} ws_wp_strip;
typedef struct ws_wp_case {
    uint32_t cp, lower;
} ws_wp_case;

extern const ws_wp_range ws_wp_class_ranges[];
extern const size_t ws_wp_n_class_ranges;
extern const uint32_t ws_wp_strip_data[];
extern const ws_wp_strip ws_wp_strip_table[];
extern const size_t ws_wp_n_strip;
extern const ws_wp_case ws_wp_lower_table[];
extern const size_t ws_wp_n_lower;

#endif
