/* Synthetic export generator and the message checksum shared by tests and benchmarks. */
#include "chat/synth.h"

#include <stdio.h>
#include <string.h>

#include "core/hash.h"

static uint64_t next_rand(ws_chat_synth *s)
{
    /* xorshift64* */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ull;
}

void ws_chat_synth_init(ws_chat_synth *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static const char *const people[] = {
    "Ana Souza",         "Bea",  "Jean\xE2\x80\x91Luc", "\xE2\x80\xAA+44 7700 900123\xE2\x80\xAC",
    "~\xE2\x80\xAFMika", "Omar",
};
static const char *const words[] = {
    "ok",
    "lol",
    "see",
    "you",
    "at",
    "the",
    "station",
    "tomorrow",
    "haha",
    "yes",
    "no",
    "maybe",
    "dinner",
    "\xF0\x9F\x98\x82",
    "\xF0\x9F\x91\x8D",
    "running",
    "late",
    "sorry",
    "what",
    "time",
    "is",
    "it",
    "call",
    "me",
    "when",
    "free",
    "\xC3\xA9t\xC3\xA9",
    "caf\xC3\xA9",
    "wow",
    "nice",
    "photo",
    "send",
    "pls",
};

static void day_of(long long days, int *y, int *m, int *d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = 2019;
    for (;;) {
        int len = (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 366 : 365;
        if (days < len)
            break;
        days -= len;
        year++;
    }
    int month = 0;
    for (;; month++) {
        int len = mdays[month] + (month == 1 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0));
        if (days < len)
            break;
        days -= len;
    }
    *y = year;
    *m = month + 1;
    *d = (int)days + 1;
}

void ws_chat_checksum_add(uint64_t *checksum, const ws_message *m)
{
    char ts[20];
    uint64_t h = *checksum;
    ws_datetime_format(&m->ts, ts);
    const char *parts[4] = {ts, m->author ? m->author : "\x01", m->text, ws_msg_kind_name(m->kind)};
    size_t lens[4] = {19, m->author ? m->author_len : 1, m->text_len, strlen(parts[3])};
    for (int p = 0; p < 4; p++) {
        h = ws_hash_fnv1a_more(h, parts[p], lens[p]);
        h = ws_hash_fnv1a_more(h, "\xff", 1); /* separator */
    }
    *checksum = h;
}

void ws_chat_synth_next(ws_chat_synth *s, ws_buf *out, uint64_t *checksum)
{
    uint64_t r = next_rand(s);
    s->minutes += (long long)(r % 13);
    int y, mo, d;
    day_of(s->minutes / 1440, &y, &mo, &d);
    ws_message m = {0};
    m.ts = (ws_datetime){y, mo, d, (int)(s->minutes / 60 % 24), (int)(s->minutes % 60), 0};
    ws_buf_printf(out, "%02d/%02d/%04d, %02d:%02d - ", d, mo, y, m.ts.hour, m.ts.minute);
    size_t body = out->len;
    unsigned kind = (unsigned)(r >> 8) % 100;
    const char *who = people[(r >> 16) % (sizeof people / sizeof people[0])];
    if (kind < 2) {
        ws_buf_printf(out, "%s added Omar", who);
        m.kind = WS_MSG_SYSTEM;
    } else {
        ws_buf_printf(out, "%s: ", who);
        m.author = out->data + body;
        m.author_len = strlen(who);
        if (kind < 6) {
            ws_buf_puts(out, "<Media omitted>");
            m.kind = WS_MSG_MEDIA;
        } else if (kind < 8) {
            ws_buf_puts(out, "This message was deleted");
            m.kind = WS_MSG_DELETED;
        } else {
            int n = 2 + (int)((r >> 24) % 14);
            for (int i = 0; i < n; i++) {
                uint64_t w = next_rand(s);
                if (i)
                    ws_buf_putc(out, (w & 0x3F) == 0 ? '\n' : ' ');
                ws_buf_puts(out, words[(w >> 8) % (sizeof words / sizeof words[0])]);
            }
            m.kind = WS_MSG_TEXT;
        }
    }
    /* pointers into out are only valid now: compute the checksum before the next append */
    const char *b = out->data + body;
    if (m.author) {
        m.author = b;
        m.text = b + m.author_len + 2;
    } else {
        m.text = b;
    }
    m.text_len = out->len - (size_t)(m.text - out->data);
    ws_chat_checksum_add(checksum, &m);
    ws_buf_putc(out, '\n');
    s->count++;
}
