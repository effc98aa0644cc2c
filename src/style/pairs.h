/* Training pairs from a chat (DESIGN.md §3.1). Messages stream in (ws_message from src/chat);
 * system lines are dropped; media and deleted messages stay only as markers ("<media>",
 * "<deleted>") in context; one sender's consecutive messages within merge_gap_s are merged into
 * one turn (bubbles joined with '\n'); a gap over session_gap_s starts a new session; every
 * persona turn that follows someone else's turn (in the same session) and holds text becomes an
 * example, with up to max_context earlier turns of its session as context; the last
 * heldout_fraction of examples by time is held out for evaluation. Phone numbers, e-mail
 * addresses and links are masked (src/style/mask.h) in everything kept.
 *
 * Ownership: the builder copies what it needs from each ws_message (so the reader may move on);
 * a finished ws_pairs owns every string in it (ws_pairs_free). Not thread-safe while building;
 * a finished ws_pairs is read-only and may be shared. */
#ifndef WS_STYLE_PAIRS_H
#define WS_STYLE_PAIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "core/error.h"
#include "style/mask.h"

#define WS_PAIRS_MEDIA_MARKER "<media>"
#define WS_PAIRS_DELETED_MARKER "<deleted>"

typedef struct ws_pairs_options {
    int64_t merge_gap_s;       /* 0 = 120 */
    int64_t session_gap_s;     /* 0 = 3600 */
    uint32_t max_context;      /* 0 = 8 */
    double heldout_fraction;   /* 0 = 0.10; negative = hold nothing out */
    const ws_mask_rules *mask; /* NULL = ws_mask_rules_default */
    bool no_mask;              /* keep personal data (tests, local analysis) */
} ws_pairs_options;

typedef struct ws_turn {
    const char *author;  /* display name: a phone-number name is masked ("<phone> 1") */
    uint32_t author_idx; /* index into ws_pairs.participants */
    const char *text;    /* all bubbles, markers for media/deleted, masked */
    const char *reply;   /* text bubbles only, masked; NULL when the turn has no text */
    int64_t start, end;  /* seconds (wall-clock time read as UTC) of first/last bubble */
    uint32_t session;
    uint32_t n_bubbles;
    uint8_t hour, weekday; /* of the first bubble; weekday 0 = Monday */
    bool persona;
} ws_turn;

typedef struct ws_example {
    uint32_t turn;      /* the persona's turn (its reply is the target) */
    uint32_t ctx_first; /* context = turns[ctx_first .. turn-1] */
    uint32_t n_context;
    double response_s; /* persona turn start - previous turn end (>= 0) */
    bool heldout;
} ws_example;

typedef struct ws_pairs {
    const char *persona;
    ws_turn *turns;
    size_t n_turns;
    ws_example *examples;
    size_t n_examples, n_heldout;
    const char **participants;  /* names as written in the export, in order of first appearance
                                 * (for choosing the persona; personal data: do not log) */
    const char **display_names; /* the same, with phone-number names masked as in the turns */
    uint64_t *participant_msgs; /* messages (bubbles) per participant */
    size_t n_participants;
    size_t n_sessions;
    uint64_t n_messages, n_system_dropped, n_media, n_deleted, n_masked;
    void *priv;
} ws_pairs;

typedef struct ws_pairs_builder ws_pairs_builder;

/* persona is copied. opt may be NULL. */
ws_pairs_builder *ws_pairs_builder_new(const char *persona, const ws_pairs_options *opt);
/* Feeds the next message of the export (in file order). */
void ws_pairs_builder_add(ws_pairs_builder *b, const ws_message *m);
/* Finishes and frees the builder (also on error). WS_EINVAL when the persona wrote nothing
 * (err lists the participants), WS_EEMPTY for a chat without messages. A chat where the persona
 * never answers anyone succeeds with n_examples == 0 (the caller decides). */
int ws_pairs_builder_finish(ws_pairs_builder *b, ws_pairs **out, ws_error *err);
void ws_pairs_builder_free(ws_pairs_builder *b); /* abandons a build; NULL is a no-op */

void ws_pairs_free(ws_pairs *p); /* NULL is a no-op */

/* Reads every remaining message of an open reader into pairs (errors of the reader pass
 * through, with its message in err). The reader stays open (the caller closes it). */
int ws_pairs_from_chat(ws_chat_reader *r, const char *persona, const ws_pairs_options *opt, ws_pairs **out,
                       ws_error *err);
/* Opens an export (.txt or .zip) and builds pairs from it. */
int ws_pairs_from_file(const char *path, const char *persona, const ws_pairs_options *opt, ws_pairs **out,
                       ws_error *err);

/* Seconds since 1970-01-01 of a wall-clock time read as UTC, and its weekday (0 = Monday). */
int64_t ws_datetime_seconds(const ws_datetime *t);
int ws_weekday_of(int64_t seconds);

#endif
