/* Private to src/chat: the header grammar and the message-kind phrase tables. */
#ifndef WS_CHAT_CHAT_INT_H
#define WS_CHAT_CHAT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat/chat.h"
#include "core/utf8.h"

/* The bytes a reader reads (source.c): a file (fd), memory (mem, borrowed) or one entry of a
 * zip. The path is owned (freed by ws__chat_source_close, which closes fd and the zip too). */
typedef enum { SRC_FILE, SRC_MEM, SRC_ZIP } chat_source_kind;

typedef struct chat_source {
    chat_source_kind kind;
    int fd;
    const char *mem;
    size_t mem_len, mem_pos;
    struct zip *zip; /* libzip's zip_t */
    uint64_t entry;
    struct zip_file *zf; /* libzip's zip_file_t */
    uint64_t read_total, cap, size;
    char *path;
} chat_source;
void ws__chat_source_close(chat_source *s);
/* Reads up to n bytes; returns the count, 0 at the end, or a negative code (WS_ETOOBIG past cap). */
long ws__chat_source_read(chat_source *s, char *buf, size_t n, ws_error *err);
/* Back to the first byte. */
int ws__chat_source_rewind(chat_source *s, ws_error *err);
/* Opens the zip in s (its fd's file or its memory) and picks the chat entry: WS_EFORMAT,
 * WS_EUNSAFE, WS_EUNSUPPORTED, WS_ETOOBIG (entry above cap) as ws_chat_open_file says. */
int ws__chat_source_open_zip(chat_source *s, uint64_t cap, ws_error *err);

/* A message header as written, before the date order is applied. */
typedef struct chat_header {
    int field[3];            /* date fields in written order */
    unsigned char digits[6]; /* how many digits field[0..2], hour, minute, second had */
    int hour, minute, second;
    int ampm;              /* 0 none, 1 AM, 2 PM */
    bool us_marker;        /* spelled "AM"/"PM" exactly, as en-US writes it */
    size_t body;           /* offset of the body (author + text) in the line */
    unsigned short pos[6]; /* where field[0..2], hour, minute, second start */
    bool no_template;      /* layouts the template path must not learn */
    uint32_t layout;       /* the layout's signature (separators, brackets, 12h/24h, seconds,
                            * order of date and time...): digits, padding and marks aside */
} chat_header;

/* A learned header layout (see header.c). */
typedef struct chat_template {
    _Alignas(16) unsigned char lit[64];
    _Alignas(16) unsigned char litmask[64];
    _Alignas(16) unsigned char digitmask[64];
    size_t len;
    size_t span; /* len rounded up to 16: the bytes the match compares */
    int fields;
    unsigned char fpos[6], fdigits[6]; /* where each field starts and its digit count */
    bool avx2_32;                      /* span is 32 and this CPU has AVX2: one 32-byte compare */
    chat_header proto;
    /* The last date a line of this layout resolved to (avx2_32 templates only): the line's
     * bytes under datemask (the date fields' digits) and that date under the reader's order.
     * A line with the same date bytes has the same date: only its time is read. */
    _Alignas(16) unsigned char datemask[32];
    _Alignas(16) unsigned char date_bytes[32];
    bool date_known;
    ws_datetime date;
    /* The fast path's time: hour24[h] is written hour h (0..99) on the 24h clock under the
     * layout's AM/PM marker, or -1 when the grammar and ws__chat_resolve reject it. */
    signed char hour24[100];
} chat_template;

/* Bytes a match may read from the line start (the layout span, at most 64): lines with fewer
 * readable bytes are copied to a padded scratch first. */
#define WS_CHAT_TEMPLATE_READ 64

/* Learns the layout of a header the grammar accepted; false when it cannot be templated. */
bool ws__chat_template_make(const char *s, const chat_header *h, chat_template *t);
/* True when line s[0..n) has the template's layout; fills h as the grammar would. readable
 * (>= n) is how many bytes from s may be read (the bytes after the line do not change the
 * answer; reading them only saves a copy). */
bool ws__chat_template_match(const chat_template *t, const char *s, size_t n, size_t readable,
                             chat_header *h);

/* The same for a template with avx2_32 set (x86-64 with GCC or Clang; elsewhere never set). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WS_CHAT_HAVE_MATCH_AVX2 1
bool ws__chat_template_match_avx2(const chat_template *t, const char *s, size_t n, size_t readable,
                                  chat_header *h);
/* The fast path of a line of t's layout on the date t remembers: returns true and fills *ts
 * (and the body starts at t->len) when line s[0..n) matches t, its date bytes are those of
 * t's remembered date and its time is valid; false sends the caller to the general path
 * (another date, another layout, not a header). The answer is the general path's. */
bool ws__chat_template_fast(const chat_template *t, const char *s, size_t n, size_t readable,
                            ws_datetime *ts);
#else
#define ws__chat_template_match_avx2 ws__chat_template_match
static inline bool ws__chat_template_fast(const chat_template *t, const char *s, size_t n, size_t readable,
                                          ws_datetime *ts)
{
    (void)t, (void)s, (void)n, (void)readable, (void)ts;
    return false;
}
/* Length of an invisible direction mark or BOM at s (LRM, RLM, ALM, U+202A-U+202E,
 * U+2066-U+2069, U+FEFF), or 0. */
size_t ws__chat_mark_len(const char *s, size_t n);

#endif
/* Remembers the date ts of line s (a header of t's layout that resolved, readable bytes from
 * s) for ws__chat_template_fast; a no-op for templates without the AVX2 compare. */
void ws__chat_template_remember_date(chat_template *t, const char *s, size_t readable, const ws_datetime *ts);

/* Parses a message header at the start of line s[0..n). Returns true and fills h when the
 * line is one. Allocates nothing; reads at most n bytes. */
bool ws__chat_parse_header(const char *s, size_t n, chat_header *h);

/* Applies a date order (DMY/MDY/YMD; a 4-digit first field always means Y/M/D) and fills t.
 * Falls back to the other of D/M when the chosen order gives an impossible date. Returns
 * false when no order gives a valid date/time. */
bool ws__chat_resolve(const chat_header *h, ws_date_order order, ws_datetime *t);

/* Placeholders one export taught by itself: angle-bracketed whole bodies that several authors
 * send many times (an export in a language the phrase table lacks), and angle-bracketed
 * endings ("text <…>") that many of their messages share: its "edited" marker. */
#define WS_CHAT_LEARNED_MAX 8
#define WS_CHAT_LEARN_MIN_COUNT 4       /* times one body must occur in the sample */
#define WS_CHAT_LEARN_MIN_AUTHORS 2     /* distinct authors who sent it */
#define WS_CHAT_SAMPLE_BYTES (1u << 20) /* the sample: the first MiB of the export */
typedef struct chat_learned {
    unsigned count;
    unsigned char len[WS_CHAT_LEARNED_MAX];
    bool suffix[WS_CHAT_LEARNED_MAX]; /* an edited marker, not a whole-body placeholder */
    char text[WS_CHAT_LEARNED_MAX][64];
} chat_learned;
/* Candidate bodies counted over the sample (the first 32 distinct ones). */
typedef struct chat_sample {
    unsigned n;
    struct chat_sample_entry {
        unsigned char len;
        bool suffix; /* the "<…>" ending of a longer body */
        char text[64];
        unsigned count, authors;
        uint32_t author[4];
    } c[32];
} chat_sample;
/* Counts one authored message of the sample (only "<…>" bodies and endings are candidates). */
void ws__chat_sample_add(chat_sample *s, const char *author, size_t author_len, const char *body, size_t n);
/* The candidates that pass the thresholds and that the phrase table does not know. */
void ws__chat_sample_learn(const chat_sample *s, chat_learned *out);

/* Learns the layout (*layout, 0 = none dominant) and placeholders (*learned) of an export from
 * its first bytes buf[0..n) (complete: they are the whole export). sample.c. */
void ws__chat_sample_scan(const char *buf, size_t n, bool complete, uint32_t *layout, chat_learned *learned);

/* Could line s[0..n) start a header? A cheap check before the full grammar. */
static inline bool ws__chat_maybe_header(const char *s, size_t n)
{
    if (n < 8)
        return false;
    unsigned char c = (unsigned char)s[0];
    return (c >= '0' && c <= '9') || c == '[' || c >= 0xC0;
}

/* The first ": " in s[0..n), or NULL (scalar). */
static inline const char *ws__chat_colon_space(const char *s, size_t n)
{
    for (const char *p = s, *end = s + n; (p = memchr(p, ':', (size_t)(end - p))); p++)
        if (p + 1 < end && p[1] == ' ')
            return p;
    return NULL;
}

#define WS_CHAT_MAX_PHRASE 192   /* bytes; a longer body is never a whole-body placeholder */
#define WS_CHAT_BLOOM_BITS 65536 /* one probe per phrase: ~1% false hits with the 650 distinct phrases */

/* The filter bit of a whole-body phrase of length len with these first and last folded bytes. */
static inline uint32_t ws__chat_bloom_hash(size_t len, unsigned char first, unsigned char last)
{
    return (((uint32_t)len << 16 | (uint32_t)first << 8 | last) * 0x9E3779B1u) >> 16;
}

/* A filter of the phrase table that answers "plain text" for most bodies from their two ends
 * (ws__chat_plain_filter, valid for the life of the program). */
typedef struct chat_plain_filter {
    unsigned char stop[256]; /* bit 0: a first byte, bit 1: a last byte that needs ws__chat_classify */
    const uint64_t *bloom;   /* WS_CHAT_BLOOM_BITS bits: (length, folded first, folded last byte) */
} chat_plain_filter;
const chat_plain_filter *ws__chat_plain_filter(void);
/* ws__chat_plain_text for a body with a non-ASCII first or last byte (kinds.c). */
bool ws__chat_plain_text_wide(const chat_plain_filter *f, const char *text, size_t n);

/* True when ws__chat_classify(text, n) is WS_MSG_TEXT, not edited, for certain from the two
 * ends of the body alone (most bodies, with or without non-ASCII ends): no first byte that
 * could start a direction mark, the encryption notice ('M') or an attached prefix; no last
 * byte that trim would take off (' ' '.' or the end of a mark), that ends an edited marker, a
 * placeholder ('>') or an attached suffix; and no phrase of this length and folded end bytes
 * in the filter. False means "ask ws__chat_classify". Inline, so that most messages make no
 * call (a non-ASCII end costs one). tests/unit/test_chat_plain.c checks the promise. */
static inline bool ws__chat_plain_text(const chat_plain_filter *f, const char *text, size_t n)
{
    if (n < 1)
        return false;
    unsigned char first = (unsigned char)text[0], last = (unsigned char)text[n - 1];
    if ((f->stop[first] & 1) | (f->stop[last] & 2))
        return false;
    if ((first | last) >= 0x80)
        return ws__chat_plain_text_wide(f, text, n);
    if (n < 2 || n > WS_CHAT_MAX_PHRASE)
        return true;
    unsigned char f0 = (unsigned char)(first + ((unsigned)(first - 'A') < 26u ? 32 : 0));
    unsigned char f1 = (unsigned char)(last + ((unsigned)(last - 'A') < 26u ? 32 : 0));
    uint32_t h = ws__chat_bloom_hash(n, f0, f1);
    return !(f->bloom[h >> 6] >> (h & 63) & 1);
}

/* Classifies an authored message body (media, deleted, iOS system events, edited marker) with
 * the phrase table (src/chat/locale_strings.tsv, loaded once, thread-safe) and what this export
 * taught (learned may be NULL). */
ws_msg_kind ws__chat_classify(const char *text, size_t n, const chat_learned *learned, bool *edited);
/* True when a line "X ...: ..." that looks authored is a group event of the phrase table whose
 * text holds the ": " at offset colon: in a placeholder (a quoted subject) other than the
 * actor's name that leads it, or in the template's own words (Hungarian "erről: "). Worth
 * asking only when an opening quote comes before the colon or ws__chat_colon_pairs() has the
 * two bytes before it. Thread-safe. */
bool ws__chat_is_system_text(const char *text, size_t n, size_t colon);
/* Bit (b1 << 8 | b2) set: some template has b1 b2 right before a ": " of its own words. 65536
 * bits, valid for the life of the program. */
const uint64_t *ws__chat_colon_pairs(void);

/* UTF-8 validation and the AVX2 check: core/utf8.h (core/utf8_check.c). */

/* The reader's newline index (reader.c) with one implementation (WS_UTF8_SCALAR: the portable
 * one, SSE2 where the build has it): bit k of out[w] set when b[w * 64 + k] is '\n', for
 * words * 64 bytes; *any_cr: whether they hold a '\r'. False when this CPU or build lacks it. */
bool ws__chat_newline_bits_with(ws_utf8_impl impl, const unsigned char *b, size_t words, uint64_t *out,
                                bool *any_cr);

/* Length of an invisible direction mark or BOM at s (LRM, RLM, ALM, U+202A-U+202E,
 * U+2066-U+2069, U+FEFF), or 0. */
size_t ws__chat_mark_len(const char *s, size_t n);

#endif
