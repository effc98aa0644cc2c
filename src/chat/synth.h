/* Deterministic synthetic WhatsApp exports (Android en-GB layout) for tests and benchmarks:
 * a chat of several people with multi-line bodies, media, deletions and system events, and
 * a checksum of the messages it holds so a parser can be checked without storing them. */
#ifndef WS_CHAT_SYNTH_H
#define WS_CHAT_SYNTH_H

#include <stdint.h>

#include "chat/chat.h"
#include "core/buf.h"

typedef struct ws_chat_synth {
    uint64_t rng;
    uint64_t count;
    long long minutes; /* minutes since 2019-01-01 00:00 of the current message */
} ws_chat_synth;

void ws_chat_synth_init(ws_chat_synth *s, uint64_t seed);
/* Appends the next message (header, body, "\n") to out and folds it into *checksum. */
void ws_chat_synth_next(ws_chat_synth *s, ws_buf *out, uint64_t *checksum);
/* Folds a parsed message into *checksum the same way (start both from the same value). */
void ws_chat_checksum_add(uint64_t *checksum, const ws_message *m);

#endif
