/* The persona's style profile (DESIGN.md §3.2): measurable features of how they write, from
 * their messages (and, for contrast, the other participants'): reply length distribution, emoji
 * rate and favourites, punctuation habits, casing, language(s), response times, active hours and
 * signature phrases (word n-grams over-represented against the others). Rendered as JSON and as
 * a readable summary; ws_profile_distance() compares two profiles (stylometric distance).
 *
 * Ownership: builders and profiles belong to the caller (ws_profile_builder_finish consumes the
 * builder; ws_profile_free). A finished profile is read-only and may be shared between threads. */
#ifndef WS_STYLE_PROFILE_H
#define WS_STYLE_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "style/pairs.h"

#define WS_PROFILE_TOP_EMOJI 10
#define WS_PROFILE_TOP_PHRASES 15
#define WS_PROFILE_LANGS 6
#define WS_PROFILE_LEN_BUCKETS 8
#define WS_PROFILE_WORD_BUCKETS 256

typedef struct ws_profile_item {
    char text[64];   /* the emoji or phrase (UTF-8) */
    uint64_t count;  /* persona messages holding it (emoji: occurrences) */
    uint64_t others; /* other participants' messages holding it (phrases) */
    double score;    /* share (emoji) or over-representation z-score (phrases) */
} ws_profile_item;

typedef struct ws_profile_lang {
    char code[16]; /* ISO 639-1 where we can tell ("en"), else "und-<script>" */
    double share;  /* of messages with letters */
} ws_profile_lang;

/* Percentiles p10, p25, p50, p75, p90 and the mean. */
typedef struct ws_profile_dist {
    double p[5];
    double mean;
    uint64_t n;
} ws_profile_dist;

typedef struct ws_profile {
    uint64_t n_messages; /* persona turns analysed */
    uint64_t n_bubbles;
    uint64_t n_other_messages;
    ws_profile_dist chars, words;            /* reply length in code points / words */
    double len_hist[WS_PROFILE_LEN_BUCKETS]; /* share by chars: 1-5,6-10,..,>320 */
    double bubbles_per_turn;
    /* emoji */
    double emoji_per_message, emoji_messages, emoji_only;
    ws_profile_item emoji[WS_PROFILE_TOP_EMOJI];
    size_t n_emoji;
    /* punctuation: rates per message and shares of messages */
    double excl_per_message, quest_per_message, comma_per_message;
    double multi_excl, multi_quest, ellipsis, ends_period, ends_bare;
    /* casing: shares of messages with letters */
    double starts_upper, all_lower, all_caps, upper_letters;
    double caps_words; /* messages with an ALL-CAPS word (>= 3 letters) among lower case */
    /* language */
    ws_profile_lang langs[WS_PROFILE_LANGS];
    size_t n_langs;
    double scripts[16]; /* share of letters by ws_script */
    /* timing */
    ws_profile_dist response_s;
    double hours[24], weekdays[7]; /* shares of turns */
    double week_hours[7 * 24];     /* share of turns by weekday * 24 + hour (the heat map) */
    /* signature phrases */
    ws_profile_item phrases[WS_PROFILE_TOP_PHRASES];
    size_t n_phrases;
    /* the persona's most frequent short reply (<= 3 words, <= 40 bytes, said at least twice;
     * empty when none): the fallback reply when the clone is unsure */
    char typical_reply[48];
    uint64_t typical_reply_count;
    /* word-frequency fingerprint (hashed unigrams, shares) for the stylometric distance */
    double word_hist[WS_PROFILE_WORD_BUCKETS];
} ws_profile;

typedef struct ws_profile_builder ws_profile_builder;

ws_profile_builder *ws_profile_builder_new(void);
/* One persona turn: text (bubbles joined by '\n'), hour 0-23 and weekday 0-6 (-1 = unknown). */
void ws_profile_add_message(ws_profile_builder *b, const char *text, size_t len, int hour, int weekday,
                            uint32_t bubbles);
/* One turn of someone else (for signature-phrase contrast). */
void ws_profile_add_other(ws_profile_builder *b, const char *text, size_t len);
void ws_profile_add_response(ws_profile_builder *b, double seconds);
/* Computes the profile and frees the builder. Never NULL. */
ws_profile *ws_profile_builder_finish(ws_profile_builder *b);
void ws_profile_builder_free(ws_profile_builder *b); /* abandons; NULL is a no-op */

typedef enum { WS_PROFILE_ALL = 0, WS_PROFILE_TRAIN, WS_PROFILE_HELDOUT } ws_profile_set;
/* From pairs: ALL uses every persona turn with text; TRAIN / HELDOUT only the replies of those
 * examples (others' turns always come from the whole chat). */
ws_profile *ws_profile_from_pairs(const ws_pairs *p, ws_profile_set which);
/* The profile of any participant (index into p->participants), against everyone else. */
ws_profile *ws_profile_of_participant(const ws_pairs *p, uint32_t who);
/* From plain texts (e.g. generated replies): no timing, no contrast set. */
ws_profile *ws_profile_from_texts(const char *const *texts, size_t n);
void ws_profile_free(ws_profile *p); /* NULL is a no-op */

void ws_profile_to_json(const ws_profile *p, ws_buf *out);
/* Reads ws_profile_to_json's output back (rounded to 4 decimals; missing fields stay zero).
 * WS_EFORMAT for bad JSON or another version. */
int ws_profile_from_json(const char *text, size_t len, ws_profile **out, ws_error *err);
void ws_profile_summary(const ws_profile *p, ws_buf *out);

/* Stylometric distance in [0,1] (0 = same style) from the profile features; parts (may be NULL)
 * gets each component, also in [0,1]. Timing features are left out (generated text has none). */
typedef struct ws_style_distance {
    double total;
    double length, emoji, punctuation, casing, language, vocabulary;
} ws_style_distance;

double ws_profile_distance(const ws_profile *a, const ws_profile *b, ws_style_distance *parts);

#endif
