/* Personal-data masking for training text: phone numbers, e-mail addresses and links are
 * replaced by configurable placeholders before anything is learned or stored.
 *
 * Rules file (UTF-8 text, one rule per line, '#' starts a comment):
 *     <name> <kind> <replacement>
 * kind is one of phone, email, url; the replacement is the rest of the line (may hold spaces;
 * "" means delete). Earlier rules win where two would match at the same place. Matching is done
 * by hand-written scanners (no regular expressions). Thread-safe: rules are read-only. */
#ifndef WS_STYLE_MASK_H
#define WS_STYLE_MASK_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_MASK_MAX_RULES 16
#define WS_MASK_MAX_RULES_FILE (64 * 1024)

typedef enum { WS_MASK_PHONE, WS_MASK_EMAIL, WS_MASK_URL } ws_mask_kind;

typedef struct ws_mask_rule {
    char name[32];
    ws_mask_kind kind;
    char replacement[64];
} ws_mask_rule;

typedef struct ws_mask_rules {
    ws_mask_rule rule[WS_MASK_MAX_RULES];
    size_t n;
} ws_mask_rules;

/* email -> "<email>", url -> "<link>", phone -> "<phone>" (in that order). */
void ws_mask_rules_default(ws_mask_rules *r);
/* Parses a rules file's text. WS_EFORMAT with the line number for a bad line, WS_ETOOBIG past
 * WS_MASK_MAX_RULES rules or WS_MASK_MAX_RULES_FILE bytes. */
int ws_mask_rules_parse(const char *text, size_t len, ws_mask_rules *out, ws_error *err);
int ws_mask_rules_load(const char *path, ws_mask_rules *out, ws_error *err);

/* Appends s with every match replaced to out; returns the number of replacements. */
size_t ws_mask_apply(const ws_mask_rules *r, const char *s, size_t n, ws_buf *out);

/* The length of a match of kind starting exactly at s[i] (0 for none); for tests and tools. */
size_t ws_mask_match(ws_mask_kind kind, const char *s, size_t n, size_t i);

#endif
