/* What kind of message a body is: media placeholders, deleted-message notices, "edited" markers
 * and group events, in every language of the phrase table src/chat/locale_strings.tsv (compiled
 * into the binary, read once on first use), plus the placeholders an export teaches by itself
 * (ws__chat_sample_*). Whole-body phrases match ignoring case (ASCII, Latin-1, Latin
 * Extended-A, Greek, Cyrillic), leading direction marks and trailing spaces, dots and marks;
 * group-event templates match their bytes exactly. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_int.h"
#include "core/mem.h"

extern const unsigned char ws__chat_locale_tsv[];
extern const size_t ws__chat_locale_tsv_len;

#define MAX_PHRASE WS_CHAT_MAX_PHRASE
#define BLOOM_BITS WS_CHAT_BLOOM_BITS
#define MAX_SUFFIXES 128
#define MAX_PIECES 5 /* literal pieces of a template (at most 4 placeholders) */

typedef struct phrase {
    uint32_t off, len; /* folded text in table.folded */
    uint8_t kind;      /* WS_MSG_MEDIA or WS_MSG_DELETED; 0 = empty slot */
} phrase;

typedef struct affix {
    const char *s; /* folded */
    size_t len;
} affix;

/* A group-event template split at its placeholders: piece[0] %a piece[1] %b ... piece[n-1]. */
typedef struct event_template {
    const char *piece[MAX_PIECES];
    uint16_t piece_len[MAX_PIECES];
    uint8_t pieces;
    uint8_t quote;       /* which opening quote comes before a placeholder (QUOTE_*), 0 none */
    uint16_t colon_pair; /* the two bytes before a ": " inside a piece (its first), 0 none */
} event_template;

enum {
    QUOTE_NONE,
    QUOTE_ASCII,
    QUOTE_APOS,
    QUOTE_LEFT_DOUBLE,
    QUOTE_LOW_DOUBLE,
    QUOTE_GUILLEMET,
    QUOTE_CORNER
};

static struct {
    char *folded;  /* every whole-body phrase, folded, back to back */
    phrase *slots; /* open addressing on the folded text */
    uint32_t mask;
    uint64_t bloom[BLOOM_BITS / 64]; /* (length, first, last folded byte) of every phrase */
    affix edited[MAX_SUFFIXES], attached_suffix[MAX_SUFFIXES], attached_prefix[MAX_SUFFIXES];
    size_t n_edited, n_attached_suffix, n_attached_prefix;
    uint64_t suffix_last[4]; /* last bytes of the attached_suffix entries */
    struct {
        affix head, tail;
    } attached[MAX_SUFFIXES]; /* iOS "<attached: " + ">" (exact) */
    size_t n_attached;
    uint64_t colon_pairs[65536 / 64]; /* colon_pair of every template (see ws__chat_colon_pairs) */
    event_template *events;           /* loaded apart, on first use (rarely needed) */
    size_t n_events;
    /* the templates by opening quote (QUOTE_*) and last byte, and those with a colon_pair: a
     * line is tried only against the few that can match it */
    const event_template **by_quote, **with_colon;
    uint32_t quote_bucket[QUOTE_CORNER + 1][258]; /* [quote][last byte] -> range in by_quote */
    size_t n_with_colon;
} table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT, events_once = PTHREAD_ONCE_INIT;
static int table_ready, events_ready;

/* ------------------------------------------------------------------ folding and trimming */

/* Case folding that keeps every byte length: ASCII, U+00C0-00DE, U+0100-017F (even -> odd),
 * Greek U+0391-03A9, Cyrillic U+0400-042F. Enough to make upper and lower case of the phrases
 * meet; it is not Unicode's full case folding. This folds the 2-byte character c b. */
static inline void fold_pair(unsigned char c, unsigned char b, unsigned char *lead, unsigned char *next)
{
    *lead = c;
    *next = b;
    if (c == 0xC3 && b >= 0x80 && b <= 0x9E && b != 0x97)
        *next = (unsigned char)(b + 0x20);
    else if ((c == 0xC4 || c == 0xC5) && b >= 0x80 && b <= 0xBF && !(b & 1))
        *next = (unsigned char)(b + 1);
    else if (c == 0xCE && b >= 0x91 && b <= 0x9F)
        *next = (unsigned char)(b + 0x20);
    else if (c == 0xCE && b >= 0xA0 && b <= 0xA9)
        *lead = 0xCF, *next = (unsigned char)(b - 0x20);
    else if (c == 0xD0 && b >= 0x90 && b <= 0x9F)
        *next = (unsigned char)(b + 0x20);
    else if (c == 0xD0 && b >= 0xA0 && b <= 0xAF)
        *lead = 0xD1, *next = (unsigned char)(b - 0x20);
    else if (c == 0xD0 && b >= 0x80 && b <= 0x8F)
        *lead = 0xD1, *next = (unsigned char)(b + 0x10);
}

/* 8 ASCII bytes lower-cased at once (bit 5 set where 'A' <= byte <= 'Z'). */
static inline uint64_t lower8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t ge_a = w + (0x80 - 'A') * ones, gt_z = w + (0x7F - 'Z') * ones;
    return w | ((ge_a & ~gt_z) & 0x8080808080808080ull) >> 2;
}

static void fold(const char *src, size_t n, char *dst)
{
    const unsigned char *s = (const unsigned char *)src;
    unsigned char *d = (unsigned char *)dst;
    uint64_t w;
    size_t i = 0;
    if (n >= 8) {
        /* all ASCII (the usual phrase): words, the last one overlapping (folding is idempotent) */
        for (; i + 8 <= n && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ull)); i += 8) {
            w = lower8(w);
            memcpy(d + i, &w, 8);
        }
        if (i == n)
            return;
        if (i + 8 > n && (memcpy(&w, s + n - 8, 8), !(w & 0x8080808080808080ull))) {
            w = lower8(w);
            memcpy(d + n - 8, &w, 8);
            return;
        }
    }
    for (; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x80) {
            d[i] = (unsigned char)(c + ((unsigned)(c - 'A') < 26u ? 32 : 0));
            continue;
        }
        d[i] = c;
        if (c < 0xC3 || c > 0xD0 || i + 1 >= n)
            continue;
        fold_pair(c, s[i + 1], &d[i], &d[i + 1]);
        i++;
    }
}

/* Trims leading direction marks and trailing spaces, dots and marks. */
static void trim(const char **s, size_t *n)
{
    size_t m;
    while (*n && (m = ws__chat_mark_len(*s, *n))) {
        *s += m;
        *n -= m;
    }
    for (;;) {
        if (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '.'))
            (*n)--;
        else if (*n >= 3 && ws__chat_mark_len(*s + *n - 3, 3) == 3)
            *n -= 3;
        else
            break;
    }
}

#define bloom_hash ws__chat_bloom_hash

static inline bool bloom_has(uint32_t h)
{
    return table.bloom[h >> 6] >> (h & 63) & 1;
}

static void bloom_add(uint32_t h)
{
    table.bloom[h >> 6] |= 1ull << (h & 63);
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t tail = 0;
    if (n >= 8 && i < n)
        memcpy(&tail, s + n - 8, 8); /* the last word again, overlapping */
    else
        for (; i < n; i++)
            tail = tail << 8 | (unsigned char)s[i];
    h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
    return (uint32_t)(h >> 32);
}

/* ------------------------------------------------------------------ loading the table */

typedef struct row {
    const char *kind, *text;
    size_t kind_len, text_len;
} row;

/* Splits the next data row of the TSV at *pos; false at the end. */
static bool next_row(size_t *pos, row *r)
{
    const char *t = (const char *)ws__chat_locale_tsv;
    size_t n = ws__chat_locale_tsv_len;
    while (*pos < n) {
        const char *line = t + *pos;
        const char *nl = memchr(line, '\n', n - *pos);
        size_t len = nl ? (size_t)(nl - line) : n - *pos;
        *pos += len + (nl != NULL);
        if (!len || line[0] == '#')
            continue;
        const char *field[5];
        size_t flen[5], k = 0;
        for (const char *p = line, *end = line + len; k < 5; k++) {
            const char *tab = memchr(p, '\t', (size_t)(end - p));
            field[k] = p;
            flen[k] = tab ? (size_t)(tab - p) : (size_t)(end - p);
            if (!tab) {
                k++;
                break;
            }
            p = tab + 1;
        }
        if (k < 4)
            continue;
        r->kind = field[2];
        r->kind_len = flen[2];
        r->text = field[3];
        r->text_len = flen[3];
        return true;
    }
    return false;
}

/* Is row r of kind k (a string literal)? */
#define KIND_IS(r, k) ((r)->kind_len == sizeof(k) - 1 && memcmp((r)->kind, k, sizeof(k) - 1) == 0)

/* WS_MSG_MEDIA / WS_MSG_DELETED for whole-body kinds, else 0. */
static int whole_body_kind(const row *r)
{
    if (KIND_IS(r, "media") || KIND_IS(r, "image") || KIND_IS(r, "video") || KIND_IS(r, "audio") ||
        KIND_IS(r, "sticker") || KIND_IS(r, "gif") || KIND_IS(r, "document") || KIND_IS(r, "contact"))
        return WS_MSG_MEDIA;
    if (KIND_IS(r, "deleted") || KIND_IS(r, "deleted_you") || KIND_IS(r, "deleted_admin"))
        return WS_MSG_DELETED;
    return 0;
}

static bool is_event_kind(const row *r)
{
    return KIND_IS(r, "joined_link") || KIND_IS(r, "subject") || KIND_IS(r, "created") ||
           KIND_IS(r, "added") || KIND_IS(r, "left") || KIND_IS(r, "removed") || KIND_IS(r, "icon") ||
           KIND_IS(r, "security_code") || KIND_IS(r, "disappearing") || KIND_IS(r, "description");
}

static void add_phrase(const char *s, size_t n, int kind, size_t *used)
{
    trim(&s, &n);
    if (n < 2 || n > MAX_PHRASE)
        return;
    char *f = table.folded + *used;
    fold(s, n, f);
    uint32_t at = hash_bytes(f, n) & table.mask;
    while (table.slots[at].kind) {
        phrase *p = &table.slots[at];
        if (p->len == n && memcmp(table.folded + p->off, f, n) == 0)
            return; /* already there (the same phrase in two languages) */
        at = (at + 1) & table.mask;
    }
    table.slots[at] = (phrase){(uint32_t)*used, (uint32_t)n, (uint8_t)kind};
    *used += n;
    bloom_add(bloom_hash(n, (unsigned char)f[0], (unsigned char)f[n - 1]));
}

static void add_affix(affix *list, size_t *count, const char *s, size_t n)
{
    if (*count >= MAX_SUFFIXES || !n)
        return;
    char *f = ws_xmalloc(n);
    fold(s, n, f);
    for (size_t i = 0; i < *count; i++)
        if (list[i].len == n && memcmp(list[i].s, f, n) == 0) {
            free(f);
            return;
        }
    list[(*count)++] = (affix){f, n};
}

/* An edited marker, with and without a dot before its closing '>': exports of one language
 * write both ("<Diese Nachricht wurde bearbeitet.>" and "...bearbeitet>"). */
static void add_edited(const char *s, size_t n)
{
    char v[MAX_PHRASE + 2];
    trim(&s, &n);
    add_affix(table.edited, &table.n_edited, s, n);
    if (n < 3 || n > MAX_PHRASE || s[n - 1] != '>')
        return;
    bool dot = s[n - 2] == '.';
    size_t m = n - 1 - dot; /* the bytes before ".>" or ">" */
    memcpy(v, s, m);
    if (!dot)
        v[m++] = '.';
    v[m++] = '>';
    add_affix(table.edited, &table.n_edited, v, m);
}

/* The opening quote (QUOTE_*) that ends piece s[0..n), if any. */
static uint8_t quote_before(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 1 && u[n - 1] == '"')
        return QUOTE_ASCII;
    if (n >= 1 && u[n - 1] == '\'')
        return QUOTE_APOS;
    if (n >= 3 && u[n - 3] == 0xE2 && u[n - 2] == 0x80 && u[n - 1] == 0x9C)
        return QUOTE_LEFT_DOUBLE;
    if (n >= 3 && u[n - 3] == 0xE2 && u[n - 2] == 0x80 && u[n - 1] == 0x9E)
        return QUOTE_LOW_DOUBLE;
    if (n >= 2 && u[n - 2] == 0xC2 && u[n - 1] == 0xAB)
        return QUOTE_GUILLEMET;
    if (n >= 3 && u[n - 3] == 0xE3 && u[n - 2] == 0x80 && u[n - 1] == 0x8C)
        return QUOTE_CORNER;
    return QUOTE_NONE;
}

/* The two bytes before the first ": " of a piece, when at least two come before it; else 0. */
static uint16_t colon_pair_of(const char *s, size_t n)
{
    /* ws__chat_colon_space, not memmem: glibc's memmem sets up a two-way search per call, which
     * cost a third of the table's load over its 2,400 short rows */
    const char *p = n >= 4 ? ws__chat_colon_space(s + 2, n - 2) : NULL;
    return p ? (uint16_t)((unsigned char)p[-2] << 8 | (unsigned char)p[-1]) : 0;
}

/* "%1 changed the subject from "%2" to "%3"" -> pieces "", " changed ... from "", "" to "", """.
 * The text points into the embedded table, which lives as long as the program. */
static void add_event(const char *s, size_t n)
{
    trim(&s, &n);
    event_template *t = &table.events[table.n_events];
    memset(t, 0, sizeof *t);
    size_t start = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '%' || s[i + 1] < '1' || s[i + 1] > '9')
            continue;
        if (t->pieces + 1 >= MAX_PIECES)
            return;
        t->piece[t->pieces] = s + start;
        t->piece_len[t->pieces] = (uint16_t)(i - start);
        if (!t->quote)
            t->quote = quote_before(s + start, i - start);
        t->pieces++;
        start = i + 2;
        i++;
    }
    if (t->pieces == 0)
        return; /* no placeholder: nothing can hide a ": " */
    t->piece[t->pieces] = s + start;
    t->piece_len[t->pieces] = (uint16_t)(n - start);
    t->pieces++;
    for (size_t k = 0; k < t->pieces && !t->colon_pair; k++)
        t->colon_pair = colon_pair_of(t->piece[k], t->piece_len[k]);
    table.n_events++;
}

/* Rows in the table: an upper bound from its line count. */
static size_t count_lines(void)
{
    size_t rows = 1;
    const char *t = (const char *)ws__chat_locale_tsv, *end = t + ws__chat_locale_tsv_len;
    for (const char *p = t; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        rows++;
    return rows;
}

static void load_table(void)
{
    size_t rows = count_lines(), cap = 16, used = 0;
    while (cap < rows)
        cap *= 2; /* whole-body phrases are a third of the rows: at most half full */
    table.slots = ws_xcalloc(cap, sizeof *table.slots);
    table.mask = (uint32_t)cap - 1;
    table.folded = ws_xmalloc(ws__chat_locale_tsv_len + 1);
    row r;
    for (size_t pos = 0; next_row(&pos, &r);) {
        int kind = whole_body_kind(&r);
        const char *ph = memchr(r.text, '%', r.text_len);
        if (kind) {
            add_phrase(r.text, r.text_len, kind, &used);
        } else if (KIND_IS(&r, "edited")) {
            add_edited(r.text, r.text_len);
        } else if (is_event_kind(&r)) {
            uint16_t pair = colon_pair_of(r.text, r.text_len);
            if (pair)
                table.colon_pairs[pair >> 6] |= 1ull << (pair & 63);
        } else if (KIND_IS(&r, "file_attached") && ph && ph + 1 < r.text + r.text_len) {
            /* "%1 (file attached)" -> suffix " (file attached)"; "... %1" -> prefix */
            if (ph == r.text) {
                add_affix(table.attached_suffix, &table.n_attached_suffix, ph + 2,
                          r.text_len - (size_t)(ph + 2 - r.text));
                unsigned char c = (unsigned char)table.attached_suffix[table.n_attached_suffix - 1]
                                      .s[table.attached_suffix[table.n_attached_suffix - 1].len - 1];
                table.suffix_last[c >> 6] |= 1ull << (c & 63);
            } else {
                add_affix(table.attached_prefix, &table.n_attached_prefix, r.text, (size_t)(ph - r.text));
            }
        } else if (KIND_IS(&r, "attached") && ph && table.n_attached < MAX_SUFFIXES) {
            /* "<attached: %1>" -> "<attached: " and ">" */
            const char *t = r.text;
            size_t n = r.text_len;
            trim(&t, &n);
            ph = memchr(t, '%', n);
            if (ph && ph + 2 <= t + n) {
                table.attached[table.n_attached].head = (affix){t, (size_t)(ph - t)};
                table.attached[table.n_attached].tail = (affix){ph + 2, (size_t)(t + n - ph - 2)};
                table.n_attached++;
            }
        }
    }
    table.folded = ws_xrealloc(table.folded, used + 1); /* phrases are found by offset */
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

/* The last byte of a template (a placeholder's: 256). */
static unsigned event_last_byte(const event_template *t)
{
    size_t last = t->pieces - 1;
    return t->piece_len[last] ? (unsigned char)t->piece[last][t->piece_len[last] - 1] : 256;
}

static void load_events(void)
{
    table.events = ws_xcalloc(count_lines(), sizeof *table.events);
    row r;
    for (size_t pos = 0; next_row(&pos, &r);)
        if (is_event_kind(&r))
            add_event(r.text, r.text_len);
    /* bucket the quoted templates by (quote, last byte): counts, then starts, then fill */
    uint32_t(*b)[258] = table.quote_bucket;
    for (size_t i = 0; i < table.n_events; i++)
        if (table.events[i].quote)
            b[table.events[i].quote][event_last_byte(&table.events[i]) + 1]++;
    uint32_t at = 0;
    for (int q = 0; q <= QUOTE_CORNER; q++)
        for (int c = 0; c <= 257; c++) {
            uint32_t count = b[q][c];
            b[q][c] = at;
            at += count;
        }
    /* now b[q][c + 1] is where the bucket (q, c) starts; filling moves it to its end */
    table.by_quote = ws_xcalloc(at + 1, sizeof *table.by_quote);
    table.with_colon = ws_xcalloc(table.n_events + 1, sizeof *table.with_colon);
    for (size_t i = 0; i < table.n_events; i++) {
        const event_template *t = &table.events[i];
        if (t->quote)
            table.by_quote[b[t->quote][event_last_byte(t) + 1]++] = t;
        if (t->colon_pair)
            table.with_colon[table.n_with_colon++] = t;
    }
    __atomic_store_n(&events_ready, 1, __ATOMIC_RELEASE);
}

static inline void ensure_table(void)
{
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE))
        pthread_once(&table_once, load_table);
}

static inline void ensure_events(void)
{
    if (!__atomic_load_n(&events_ready, __ATOMIC_ACQUIRE))
        pthread_once(&events_once, load_events);
}

/* ------------------------------------------------------------------ matching */

/* Is the folded s[0..n) a whole-body phrase? Returns its kind or 0. */
static int lookup_folded(const char *f, size_t n)
{
    for (uint32_t at = hash_bytes(f, n) & table.mask; table.slots[at].kind; at = (at + 1) & table.mask) {
        const phrase *p = &table.slots[at];
        if (p->len == n && memcmp(table.folded + p->off, f, n) == 0)
            return p->kind;
    }
    return 0;
}

/* The folded form of the byte at s[i] (what fold() makes of it), reading s[i-1..i+1]. */
static inline unsigned char fold_byte_at(const char *str, size_t n, size_t i)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[i];
    if (c < 0x80)
        return (unsigned char)(c + ((unsigned)(c - 'A') < 26u ? 32 : 0));
    size_t at = c >= 0xC0 ? i : i - 1; /* the 2-byte character holding s[i] starts here */
    if (c < 0xC0 && i == 0)
        return c;
    if (s[at] < 0xC3 || s[at] > 0xD0 || at + 1 >= n)
        return c;
    unsigned char pair[2];
    fold_pair(s[at], s[at + 1], &pair[0], &pair[1]);
    return pair[i - at];
}

/* bloom_hash() of the folded s[0..n) (n >= 1), without folding the rest. */
static inline uint32_t folded_bloom_hash(const char *s, size_t n)
{
    return bloom_hash(n, fold_byte_at(s, n, 0), fold_byte_at(s, n, n - 1));
}

static int lookup(const char *s, size_t n)
{
    if (n < 2 || n > MAX_PHRASE || !bloom_has(folded_bloom_hash(s, n)))
        return 0;
    char f[MAX_PHRASE];
    fold(s, n, f);
    return lookup_folded(f, n);
}

/* Can byte c, the first of a run that fold() turns into f..., become f? (A cheap test before
 * folding: ASCII lowers, and only the leads CE and D0 change, to CF and D1.) */
static inline bool may_fold_to(unsigned char c, unsigned char f)
{
    if (c >= 'A' && c <= 'Z')
        c = (unsigned char)(c + 32);
    return c == f || ((c == 0xCE || c == 0xD0) && f == c + 1);
}

/* Does s[0..n) end with the folded affix a? *at = where it starts. */
static bool ends_with_folded(const char *s, size_t n, const affix *a, size_t *at)
{
    char f[MAX_PHRASE];
    if (a->len > n || a->len > sizeof f)
        return false;
    if (!may_fold_to((unsigned char)s[n - a->len], (unsigned char)a->s[0]))
        return false; /* most bodies differ at the affix's first byte ("<", " ") */
    fold(s + n - a->len, a->len, f);
    if (memcmp(f, a->s, a->len) != 0)
        return false;
    *at = n - a->len;
    return true;
}

static bool starts_with_folded(const char *s, size_t n, const affix *a)
{
    char f[MAX_PHRASE];
    if (a->len >= n || a->len > sizeof f || !may_fold_to((unsigned char)s[0], (unsigned char)a->s[0]))
        return false;
    fold(s, a->len, f);
    return memcmp(f, a->s, a->len) == 0;
}

/* "<attached: 00000012-PHOTO-2021-03-12-14-05-32.jpg>" in any language. */
static bool is_attachment_ref(const char *s, size_t n)
{
    if (!n || s[n - 1] != '>')
        return false;
    const char *lt = NULL;
    for (size_t i = n; i-- > 0;)
        if (s[i] == '<') {
            lt = s + i;
            break;
        }
    if (!lt)
        return false;
    size_t inner = (size_t)(s + n - 1 - (lt + 1));
    const char *colon = memchr(lt + 1, ':', inner);
    if (!colon || colon - lt > 48)
        return false;
    const char *name = colon + 1;
    size_t name_len = (size_t)(s + n - 1 - name);
    return name_len > 2 && memchr(name, '.', name_len) != NULL;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t len = strlen(prefix);
    return n >= len && memcmp(s, prefix, len) == 0;
}

static bool is_learned(const chat_learned *l, const char *s, size_t n)
{
    for (unsigned i = 0; l && i < l->count; i++)
        if (!l->suffix[i] && l->len[i] == n && memcmp(l->text[i], s, n) == 0)
            return true;
    return false;
}

/* Does s[0..n) end with a learned edited marker (after a space)? *at = where it starts. */
static bool ends_with_learned_marker(const chat_learned *l, const char *s, size_t n, size_t *at)
{
    for (unsigned i = 0; l && i < l->count; i++)
        if (l->suffix[i] && l->len[i] < n && s[n - l->len[i] - 1] == ' ' &&
            memcmp(s + n - l->len[i], l->text[i], l->len[i]) == 0) {
            *at = n - l->len[i];
            return true;
        }
    return false;
}

/* After trimming and the edited marker: the placeholder tables. */
static ws_msg_kind classify_trimmed(const char *s, size_t len, const chat_learned *learned)
{
    size_t at;
    int kind = lookup(s, len);
    if (kind)
        return (ws_msg_kind)kind;
    if (is_attachment_ref(s, len))
        return WS_MSG_MEDIA;
    if (len > 2 && s[0] == '<' && s[len - 1] == '>' && is_learned(learned, s, len))
        return WS_MSG_MEDIA;
    unsigned char last = len ? (unsigned char)s[len - 1] : 0;
    bool suffix_may_end_here = len && (table.suffix_last[last >> 6] >> (last & 63) & 1);
    for (size_t i = 0; suffix_may_end_here && i < table.n_attached_suffix; i++)
        if (ends_with_folded(s, len, &table.attached_suffix[i], &at) && at > 0)
            return WS_MSG_MEDIA;
    for (size_t i = 0; last == '>' && i < table.n_attached; i++) {
        const affix *h = &table.attached[i].head, *t = &table.attached[i].tail;
        if (len >= h->len + t->len + 3 && memcmp(s, h->s, h->len) == 0 &&
            memcmp(s + len - t->len, t->s, t->len) == 0)
            return WS_MSG_MEDIA;
    }
    for (size_t i = 0; len && (unsigned char)s[0] >= 0x80 && i < table.n_attached_prefix; i++)
        if (starts_with_folded(s, len, &table.attached_prefix[i]))
            return WS_MSG_MEDIA;
    return WS_MSG_TEXT;
}

ws_msg_kind ws__chat_classify(const char *text, size_t n, const chat_learned *learned, bool *edited)
{
    const char *s = text;
    size_t len = n, at;
    *edited = false;
    ensure_table();
    if (!n)
        return WS_MSG_TEXT;
    unsigned char first = (unsigned char)text[0], last = (unsigned char)text[n - 1];
    if (first < 0x80 && first != 'M' && last < 0x80 && last != ' ' && last != '.' && last != '>' &&
        last != ')') {
        /* nothing to trim, no marker suffix, no LRM, no encryption notice: only the phrases */
        if (n < 2 || n > MAX_PHRASE || !bloom_has(folded_bloom_hash(text, n)))
            return WS_MSG_TEXT;
        char f[MAX_PHRASE];
        fold(s, n, f);
        int kind = lookup_folded(f, n);
        return kind ? (ws_msg_kind)kind : WS_MSG_TEXT;
    }
    if (first < 0x80 && first != 'M' && last >= 0x80 &&
        !(n >= 3 && ws__chat_mark_len(text + n - 3, 3) == 3)) {
        /* a body ending in a non-ASCII character that is no direction mark (an emoji, "café"):
         * nothing to trim at either end, no edited marker, no '<…>', no LRM, no prefix of
         * the table (those begin above ASCII), no encryption notice: the whole-body phrases
         * and the suffixes that end in this byte are all that classify_trimmed could match */
        int kind = lookup(s, n);
        if (kind)
            return (ws_msg_kind)kind;
        if (table.suffix_last[last >> 6] >> (last & 63) & 1)
            for (size_t i = 0; i < table.n_attached_suffix; i++)
                if (ends_with_folded(s, n, &table.attached_suffix[i], &at) && at > 0)
                    return WS_MSG_MEDIA;
        return WS_MSG_TEXT;
    }
    trim(&s, &len);
    for (size_t i = 0; len && s[len - 1] == '>' && i < table.n_edited; i++)
        if (ends_with_folded(s, len, &table.edited[i], &at)) {
            *edited = true;
            len = at;
            trim(&s, &len);
            break;
        }
    if (!*edited && len && s[len - 1] == '>' && learned && learned->count &&
        ends_with_learned_marker(learned, s, len, &at)) {
        *edited = true;
        len = at;
        trim(&s, &len);
    }
    ws_msg_kind kind = classify_trimmed(s, len, learned);
    if (kind != WS_MSG_TEXT)
        return kind;
    /* iOS prints group events (created, added, left, encryption, calls...) as if sent by the
     * group or a person, and starts their text with a left-to-right mark; what people type
     * never does. Media and deletions carry the mark too, and were matched above. */
    if (n >= 3 && (unsigned char)text[0] == 0xE2 && (unsigned char)text[1] == 0x80 &&
        (unsigned char)text[2] == 0x8E)
        return WS_MSG_SYSTEM;
    if (len > 20 && s[0] == 'M' &&
        (starts_with(s, len, "Messages and calls are end-to-end encrypted") ||
         starts_with(s, len, "Messages to this group are now secured with end-to-end encryption")))
        return WS_MSG_SYSTEM;
    return WS_MSG_TEXT;
}

/* Which opening quotes occur in s[0..n) (bit QUOTE_*). */
static unsigned quotes_in(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"')
            bits |= 1u << QUOTE_ASCII;
        else if (c == '\'')
            bits |= 1u << QUOTE_APOS;
        else if (c == 0xE2 && i + 2 < n && s[i + 1] == 0x80 && s[i + 2] == 0x9C)
            bits |= 1u << QUOTE_LEFT_DOUBLE;
        else if (c == 0xE2 && i + 2 < n && s[i + 1] == 0x80 && s[i + 2] == 0x9E)
            bits |= 1u << QUOTE_LOW_DOUBLE;
        else if (c == 0xC2 && i + 1 < n && s[i + 1] == 0xAB)
            bits |= 1u << QUOTE_GUILLEMET;
        else if (c == 0xE3 && i + 2 < n && s[i + 1] == 0x80 && s[i + 2] == 0x8C)
            bits |= 1u << QUOTE_CORNER;
    }
    return bits;
}

static const char *find_bytes(const char *s, size_t n, const char *needle, size_t len)
{
    return len ? memmem(s, n, needle, len) : s;
}

/* Does line s[0..n) have the template's shape, with the ": " at colon inside one of its
 * literal pieces or inside a placeholder that is not the leading one (the actor's name)? */
static bool event_matches(const event_template *t, const char *s, size_t n, size_t colon)
{
    size_t p0 = t->piece_len[0], last = t->pieces - 1, ln = t->piece_len[last];
    if (n < p0 + ln + t->pieces - 1 || memcmp(s, t->piece[0], p0) != 0 ||
        memcmp(s + n - ln, t->piece[last], ln) != 0)
        return false;
    size_t pos = p0;
    bool colon_ok = colon < p0;
    for (size_t k = 1; k <= last; k++) {
        /* placeholder k-1 spans [pos, found), piece k [found, found + its length) */
        size_t from = pos + 1;
        if (from > n - ln)
            return false;
        const char *found =
            k == last ? s + n - ln : find_bytes(s + from, n - ln - from, t->piece[k], t->piece_len[k]);
        if (!found)
            return false;
        size_t end = (size_t)(found - s);
        if ((colon >= pos && colon < end && pos > 0) || (colon >= end && colon < end + t->piece_len[k]))
            colon_ok = true;
        pos = end + t->piece_len[k];
    }
    return colon_ok;
}

/* The filter of ws__chat_plain_text, made from the loaded table (see chat_int.h for why each
 * byte stops it). */
static chat_plain_filter plain_filter;
static pthread_once_t plain_once = PTHREAD_ONCE_INIT;

static void build_plain_filter(void)
{
    ensure_table();
    chat_plain_filter *f = &plain_filter;
    f->bloom = table.bloom;
    /* first bytes: the encryption notice, the leads of direction marks (trim, the iOS LRM) and
     * whatever may fold to the first byte of an attached prefix (tried on non-ASCII starts) */
    f->stop['M'] |= 1;
    f->stop[0xD8] |= 1;
    f->stop[0xE2] |= 1;
    f->stop[0xEF] |= 1;
    for (unsigned c = 0x80; c < 256; c++)
        for (size_t i = 0; i < table.n_attached_prefix; i++)
            if (table.attached_prefix[i].len &&
                may_fold_to((unsigned char)c, (unsigned char)table.attached_prefix[i].s[0]))
                f->stop[c] |= 1;
    /* last bytes: what trim takes off, the end of an edited marker or "<...>", and the last
     * bytes of the attached suffixes */
    f->stop[' '] |= 2;
    f->stop['.'] |= 2;
    f->stop['>'] |= 2;
    for (unsigned c = 0; c < 256; c++)
        if (table.suffix_last[c >> 6] >> (c & 63) & 1)
            f->stop[c] |= 2;
}

const chat_plain_filter *ws__chat_plain_filter(void)
{
    pthread_once(&plain_once, build_plain_filter);
    return &plain_filter;
}

bool ws__chat_plain_text_wide(const chat_plain_filter *f, const char *text, size_t n)
{
    /* trim would take a mark off the end (every 3-byte mark begins with E2 or EF) */
    unsigned char third_last = n >= 3 ? (unsigned char)text[n - 3] : 0;
    if ((third_last == 0xE2 || third_last == 0xEF) && ws__chat_mark_len(text + n - 3, 3) == 3)
        return false;
    if (n < 2 || n > MAX_PHRASE)
        return true;
    uint32_t h = folded_bloom_hash(text, n);
    return !(f->bloom[h >> 6] >> (h & 63) & 1);
}

const uint64_t *ws__chat_colon_pairs(void)
{
    ensure_table();
    return table.colon_pairs;
}

bool ws__chat_is_system_text(const char *text, size_t n, size_t colon)
{
    ensure_events();
    const char *s = text;
    size_t len = n;
    trim(&s, &len);
    if (colon < (size_t)(s - text) || colon - (size_t)(s - text) >= len)
        return false;
    colon -= (size_t)(s - text);
    unsigned quotes = quotes_in(s, colon);
    uint16_t pair =
        colon >= 2 ? (uint16_t)((unsigned char)s[colon - 2] << 8 | (unsigned char)s[colon - 1]) : 0;
    /* (after the fill, bucket (q, c) is by_quote[quote_bucket[q][c] .. quote_bucket[q][c + 1])) */
    for (int q = 1; q <= QUOTE_CORNER; q++) {
        if (!(quotes & (1u << q)))
            continue;
        unsigned lasts[2] = {(unsigned char)s[len - 1], 256}; /* a literal end, or a placeholder */
        for (int k = 0; k < 2; k++)
            for (uint32_t i = table.quote_bucket[q][lasts[k]]; i < table.quote_bucket[q][lasts[k] + 1]; i++)
                if (event_matches(table.by_quote[i], s, len, colon))
                    return true;
    }
    for (size_t i = 0; pair && i < table.n_with_colon; i++)
        if (table.with_colon[i]->colon_pair == pair && event_matches(table.with_colon[i], s, len, colon))
            return true;
    return false;
}

/* ------------------------------------------------------------------ learning placeholders */

void ws__chat_sample_add(chat_sample *sm, const char *author, size_t author_len, const char *body, size_t n)
{
    const char *s = body;
    size_t len = n;
    trim(&s, &len);
    if (len < 6 || s[len - 1] != '>')
        return;
    /* a whole "<…>" body, or the "<…>" ending after a space of a longer one */
    const char *lt = s + len - 1;
    while (lt > s && *lt != '<')
        lt--;
    bool suffix = lt > s;
    if (*lt != '<' || (suffix && lt[-1] != ' '))
        return;
    size_t cand = (size_t)(s + len - lt);
    if (cand < 6 || cand >= sizeof sm->c[0].text || memchr(lt + 1, '>', cand - 2) || memchr(lt, ':', cand))
        return;
    bool letter = false;
    for (size_t i = 1; i + 1 < cand && !letter; i++)
        letter = (unsigned char)lt[i] >= 0x80 || ((lt[i] | 32) >= 'a' && (lt[i] | 32) <= 'z');
    if (!letter)
        return;
    uint32_t who = hash_bytes(author, author_len);
    struct chat_sample_entry *e = NULL;
    for (unsigned i = 0; i < sm->n; i++)
        if (sm->c[i].len == cand && sm->c[i].suffix == suffix && memcmp(sm->c[i].text, lt, cand) == 0)
            e = &sm->c[i];
    if (!e) {
        if (sm->n >= sizeof sm->c / sizeof sm->c[0])
            return;
        e = &sm->c[sm->n++];
        memset(e, 0, sizeof *e);
        e->len = (unsigned char)cand;
        e->suffix = suffix;
        memcpy(e->text, lt, cand);
    }
    e->count++;
    for (unsigned i = 0; i < e->authors; i++)
        if (e->author[i] == who)
            return;
    if (e->authors < sizeof e->author / sizeof e->author[0])
        e->author[e->authors++] = who;
}

void ws__chat_sample_learn(const chat_sample *sm, chat_learned *out)
{
    ensure_table();
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < sm->n && out->count < WS_CHAT_LEARNED_MAX; i++) {
        const struct chat_sample_entry *e = &sm->c[i];
        if (e->count < WS_CHAT_LEARN_MIN_COUNT || e->authors < WS_CHAT_LEARN_MIN_AUTHORS)
            continue;
        bool edited;
        if (ws__chat_classify(e->text, e->len, NULL, &edited) != WS_MSG_TEXT || edited)
            continue; /* the table knows it already */
        out->len[out->count] = e->len;
        out->suffix[out->count] = e->suffix;
        memcpy(out->text[out->count], e->text, e->len);
        out->count++;
    }
}
