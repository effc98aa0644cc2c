/* The grammar of WhatsApp message headers, for every export variant we know:
 *
 *   [marks] ["["] DATE [","|"،"] [" " [word " "]] [pre-marker] TIME [post-marker] ("] " | " - ")
 *   [marks] ["["] TIME "," " " DATE ("] " | " - ")                         (time-first)
 *
 * DATE is three numbers (ASCII, Eastern Arabic or Persian digits) separated by one of / . -
 * (dots may be followed by a space, as in Hungarian "2021. 10. 21."); TIME is H:MM[:SS]
 * (or H.MM[.SS]) with an optional trailing dot; AM/PM markers come in many spellings
 * ("AM", "p.m.", "a. m." with ASCII space, NBSP or U+202F, "ص"/"م", "午後", ...).
 * Unbracketed iOS lines without " - " are accepted only with seconds in the time and an
 * "author: " after it, so ordinary text that starts with a date is not taken for a header. */
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "chat/chat_int.h"

typedef const unsigned char *bytes;

/* Bits of chat_header.layout: what stays the same on every header of one export. */
enum {
    LAYOUT_KNOWN = 1u << 0,
    LAYOUT_TIME_FIRST = 1u << 1,
    LAYOUT_BRACKET = 1u << 2,
    LAYOUT_DATE_SLASH = 1u << 3,
    LAYOUT_DATE_DOT = 1u << 4,
    LAYOUT_DATE_DASH = 1u << 5,
    LAYOUT_YEAR_FIRST = 1u << 6,
    LAYOUT_SHORT_YEAR = 1u << 7,
    LAYOUT_TIME_DOT = 1u << 8,
    LAYOUT_SECONDS = 1u << 9,
    LAYOUT_12H = 1u << 10,
    LAYOUT_GAP_COMMA = 1u << 11,
    LAYOUT_GAP_WORD = 1u << 12,
    LAYOUT_END_DASH = 1u << 13,      /* " - " */
    LAYOUT_END_LONG_DASH = 1u << 14, /* " – ", " — " */
    LAYOUT_END_NONE = 1u << 15,      /* iOS without brackets or dash */
};

size_t ws__chat_mark_len(const char *str, size_t n)
{
    bytes s = (bytes)str;
    if (n == 0 || s[0] < 0xD8)
        return 0;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 &&
        (s[2] == 0x8E || s[2] == 0x8F || (s[2] >= 0xAA && s[2] <= 0xAE)))
        return 3; /* LRM, RLM, LRE..RLO */
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] >= 0xA6 && s[2] <= 0xA9)
        return 3; /* LRI..PDI */
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        return 3; /* BOM / ZWNBSP */
    if (n >= 2 && s[0] == 0xD8 && s[1] == 0x9C)
        return 2; /* ALM */
    return 0;
}

static size_t skip_marks(const char *s, size_t n, size_t i)
{
    size_t m;
    while (i < n && (m = ws__chat_mark_len(s + i, n - i)))
        i += m;
    return i;
}

/* Length of one space character at s: ASCII space, NBSP, NNBSP, thin space; else 0. */
static size_t space_len(const char *str, size_t n)
{
    bytes s = (bytes)str;
    if (n >= 1 && s[0] == ' ')
        return 1;
    if (n >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
        return 2;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0xAF || s[2] == 0x89))
        return 3;
    return 0;
}

static size_t skip_spaces(const char *s, size_t n, size_t i)
{
    size_t m;
    while (i < n && ((m = space_len(s + i, n - i)) || (m = ws__chat_mark_len(s + i, n - i))))
        i += m;
    return i;
}

/* One digit at s: value 0-9 and its byte length, or -1. */
static inline int digit_at(const char *str, size_t n, size_t *len)
{
    bytes s = (bytes)str;
    if (n >= 1 && s[0] >= '0' && s[0] <= '9') {
        *len = 1;
        return s[0] - '0';
    }
    if (n >= 2 && s[0] == 0xD9 && s[1] >= 0xA0 && s[1] <= 0xA9) { /* U+0660..0669 */
        *len = 2;
        return s[1] - 0xA0;
    }
    if (n >= 2 && s[0] == 0xDB && s[1] >= 0xB0 && s[1] <= 0xB9) { /* U+06F0..06F9 */
        *len = 2;
        return s[1] - 0xB0;
    }
    if (n >= 3 && s[0] == 0xE0 && s[1] == 0xA5 && s[2] >= 0xA6 && s[2] <= 0xAF) { /* Devanagari */
        *len = 3;
        return s[2] - 0xA6;
    }
    return -1;
}

/* Reads 1..max digits at *i. Returns the digit count (0 = none). */
static int number(const char *s, size_t n, size_t *i, int max, int *value)
{
    int count = 0, v = 0;
    size_t len;
    int d;
    while (count < max && *i < n && (d = digit_at(s + *i, n - *i, &len)) >= 0) {
        v = v * 10 + d;
        *i += len;
        count++;
    }
    /* a longer run of digits is not a date/time field */
    if (count == max && *i < n && digit_at(s + *i, n - *i, &len) >= 0)
        return 0;
    *value = v;
    return count;
}

static bool parse_date(const char *s, size_t n, size_t *pi, chat_header *h)
{
    size_t i = *pi;
    char sep;
    h->pos[0] = (unsigned short)i;
    if (!(h->digits[0] = (unsigned char)number(s, n, &i, 4, &h->field[0])) || h->digits[0] == 3)
        return false;
    i = skip_marks(s, n, i);
    if (i >= n || (s[i] != '/' && s[i] != '.' && s[i] != '-'))
        return false;
    sep = s[i++];
    h->layout |= sep == '/' ? LAYOUT_DATE_SLASH : sep == '.' ? LAYOUT_DATE_DOT : LAYOUT_DATE_DASH;
    if (sep == '.' && i < n && s[i] == ' ')
        i++;
    i = skip_marks(s, n, i);
    h->pos[1] = (unsigned short)i;
    if (!(h->digits[1] = (unsigned char)number(s, n, &i, 2, &h->field[1])))
        return false;
    i = skip_marks(s, n, i);
    if (i >= n || s[i] != sep)
        return false;
    i++;
    if (sep == '.' && i < n && s[i] == ' ')
        i++;
    i = skip_marks(s, n, i);
    h->pos[2] = (unsigned short)i;
    if (!(h->digits[2] = (unsigned char)number(s, n, &i, 4, &h->field[2])))
        return false;
    if (h->digits[0] == 4 ? h->digits[2] > 2 : (h->digits[2] != 2 && h->digits[2] != 4))
        return false;
    h->layout |= h->digits[0] == 4 ? LAYOUT_YEAR_FIRST : h->digits[2] == 2 ? LAYOUT_SHORT_YEAR : 0;
    if (i < n && s[i] == '.' && (i + 1 >= n || s[i + 1] == ' ' || s[i + 1] == ','))
        i++; /* "2021. 10. 21." */
    *pi = i;
    return true;
}

typedef struct marker {
    const char *text;
    int ampm;
} marker;

/* Markers that are not spelled with the Latin a/p + m pattern. */
static const marker other_markers[] = {
    {"\xD8\xB5", 1},                 /* ص (Arabic AM) */
    {"\xD9\x85", 2},                 /* م (Arabic PM) */
    {"\xD9\x82.\xD8\xB8.", 1},       /* ق.ظ. (Persian AM) */
    {"\xD8\xA8.\xD8\xB8.", 2},       /* ب.ظ. (Persian PM) */
    {"\xCF\x80.\xCE\xBC.", 1},       /* π.μ. (Greek AM) */
    {"\xCE\xBC.\xCE\xBC.", 2},       /* μ.μ. (Greek PM) */
    {"\xE5\x8D\x88\xE5\x89\x8D", 1}, /* 午前 */
    {"\xE5\x8D\x88\xE5\xBE\x8C", 2}, /* 午後 */
    {"\xE4\xB8\x8A\xE5\x8D\x88", 1}, /* 上午 */
    {"\xE4\xB8\x8B\xE5\x8D\x88", 2}, /* 下午 */
    {"\xEC\x98\xA4\xEC\xA0\x84", 1}, /* 오전 */
    {"\xEC\x98\xA4\xED\x9B\x84", 2}, /* 오후 */
    {"vorm.", 1},
    {"nachm.", 2},
    {"\xE0\xA4\xAA\xE0\xA5\x82\xE0\xA4\xB0\xE0\xA5\x8D\xE0\xA4\xB5\xE0\xA4\xBE\xE0\xA4\xB9\xE0\xA5\x8D\xE0"
     "\xA4\xA8",
     1}, /* पूर्वाह्न */
    {"\xE0\xA4\x85\xE0\xA4\xAA\xE0\xA4\xB0\xE0\xA4\xBE\xE0\xA4\xB9\xE0\xA5\x8D\xE0\xA4\xA8", 2}, /* अपराह्न */
};

static bool is_ascii_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* An AM/PM marker at *pi: returns 1 (AM), 2 (PM) or 0 (none; *pi unchanged). Sets *us when
 * it is spelled "AM"/"PM" (upper case, no dots). */
static int parse_marker(const char *s, size_t n, size_t *pi, bool *us)
{
    size_t i = *pi;
    if (i < n) {
        char c = s[i];
        if (c == 'a' || c == 'A' || c == 'p' || c == 'P') {
            int ampm = (c == 'a' || c == 'A') ? 1 : 2;
            size_t j = i + 1;
            if (j < n && s[j] == '.')
                j++;
            j = skip_spaces(s, n, j);
            if (j < n && (s[j] == 'm' || s[j] == 'M')) {
                j++;
                if (j < n && s[j] == '.')
                    j++;
                if (j >= n || !is_ascii_letter(s[j])) {
                    *us = j == i + 2 && (c == 'A' || c == 'P') && s[i + 1] == 'M';
                    *pi = j;
                    return ampm;
                }
            }
        }
    }
    unsigned char first = i < n ? (unsigned char)s[i] : 0;
    if (first < 0x80 && first != 'v' && first != 'n')
        return 0;
    for (size_t k = 0; k < sizeof other_markers / sizeof other_markers[0]; k++) {
        if ((unsigned char)other_markers[k].text[0] != first)
            continue;
        size_t len = strlen(other_markers[k].text);
        if (n - i >= len && memcmp(s + i, other_markers[k].text, len) == 0) {
            *pi = i + len;
            return other_markers[k].ampm;
        }
    }
    return 0;
}

static bool parse_time(const char *s, size_t n, size_t *pi, chat_header *h, bool *has_seconds)
{
    size_t i = *pi;
    char sep;
    h->pos[3] = (unsigned short)i;
    if (!(h->digits[3] = (unsigned char)number(s, n, &i, 2, &h->hour)))
        return false;
    if (i >= n || (s[i] != ':' && s[i] != '.'))
        return false;
    sep = s[i++];
    h->layout |= sep == '.' ? LAYOUT_TIME_DOT : 0;
    h->pos[4] = (unsigned short)i;
    if ((h->digits[4] = (unsigned char)number(s, n, &i, 2, &h->minute)) != 2)
        return false;
    *has_seconds = false;
    h->second = 0;
    if (i + 2 < n && s[i] == sep) {
        size_t j = i + 1;
        h->pos[5] = (unsigned short)j;
        if ((h->digits[5] = (unsigned char)number(s, n, &j, 2, &h->second)) == 2) {
            i = j;
            *has_seconds = true;
        } else {
            h->digits[5] = 0;
            h->second = 0;
        }
    }
    if (i < n && s[i] == '.' && (i + 1 >= n || s[i + 1] == ' ' || s[i + 1] == ']'))
        i++; /* "13:34. - " */
    size_t j = skip_spaces(s, n, i);
    int m = parse_marker(s, n, &j, &h->us_marker);
    if (m) {
        if (h->ampm && h->ampm != m)
            return false;
        h->ampm = m;
        i = j;
    }
    if (h->minute > 59 || h->second > 59 || h->hour > 24)
        return false;
    h->layout |= (*has_seconds ? LAYOUT_SECONDS : 0) | (h->ampm ? LAYOUT_12H : 0);
    *pi = i;
    return true;
}

/* Between date and time: a comma (or Arabic comma) and/or spaces, and maybe one locale word
 * ("à", "um", "kl.", "в") or a pre-time AM/PM marker (CJK, Korean). */
static bool parse_date_time_gap(const char *s, size_t n, size_t *pi, chat_header *h)
{
    size_t i = skip_marks(s, n, *pi), start = i;
    if (i < n && s[i] == ',')
        i++;
    else if (n - i >= 2 && (unsigned char)s[i] == 0xD8 && (unsigned char)s[i + 1] == 0x8C)
        i += 2;
    if (i > start)
        h->layout |= LAYOUT_GAP_COMMA;
    i = skip_spaces(s, n, i);
    if (i == start)
        return false;
    size_t digit_len;
    if (i < n && digit_at(s + i, n - i, &digit_len) < 0) {
        size_t j = i;
        int m = parse_marker(s, n, &j, &h->us_marker);
        if (m) {
            h->ampm = m;
            i = skip_spaces(s, n, j);
        } else {
            /* a locale word: up to 16 bytes of letters (any script) and dots, then a space */
            while (j < n && j - i < 16 && (unsigned char)s[j] != ' ' && s[j] != '-' && s[j] != '[' &&
                   s[j] != ']' && s[j] != ',' && s[j] != ':' && digit_at(s + j, n - j, &digit_len) < 0)
                j++;
            if (j == i || j >= n || s[j] != ' ')
                return false;
            h->layout |= LAYOUT_GAP_WORD;
            i = skip_spaces(s, n, j);
        }
    }
    *pi = i;
    return true;
}

bool ws__chat_parse_header(const char *s, size_t n, chat_header *h)
{
    size_t i = skip_marks(s, n, 0);
    bool bracket = false, has_seconds = false;
    memset(h, 0, sizeof *h);
    if (i < n && s[i] == '[') {
        bracket = true;
        i = skip_marks(s, n, i + 1);
    }
    if (i >= n)
        return false;
    size_t start = i;
    if (parse_date(s, n, &i, h)) {
        if (!parse_date_time_gap(s, n, &i, h) || !parse_time(s, n, &i, h, &has_seconds))
            return false;
    } else {
        /* time first: "14:05, 21/10/2021" */
        i = start;
        memset(h, 0, sizeof *h);
        if (!parse_time(s, n, &i, h, &has_seconds))
            return false;
        h->layout |= LAYOUT_TIME_FIRST;
        if (i < n && s[i] == ',')
            i++;
        size_t j = skip_spaces(s, n, i);
        if (j == i)
            return false;
        i = j;
        if (!parse_date(s, n, &i, h))
            return false;
    }
    i = skip_spaces(s, n, i);
    h->layout |= LAYOUT_KNOWN | (bracket ? LAYOUT_BRACKET : 0);
    if (bracket) {
        if (i >= n || s[i] != ']')
            return false;
        i++;
        if (i < n && s[i] == ' ')
            i++;
    } else {
        bytes b = (bytes)s;
        if (i < n && s[i] == '-') {
            i++;
            h->layout |= LAYOUT_END_DASH;
        } else if (n - i >= 3 && b[i] == 0xE2 && b[i + 1] == 0x80 && (b[i + 2] == 0x93 || b[i + 2] == 0x94)) {
            i += 3; /* en/em dash */
            h->layout |= LAYOUT_END_LONG_DASH;
        } else {
            /* iOS without brackets or dash: "15/12/2025, 10:34:00 AM Charlie: text" */
            if (!has_seconds || i == 0 || s[i - 1] != ' ' || i >= n || !memmem(s + i, n - i, ": ", 2))
                return false;
            h->body = i;
            h->no_template = true;
            h->layout |= LAYOUT_END_NONE;
            return true;
        }
        if (i < n && s[i] != ' ')
            return false;
        if (i < n)
            i++;
    }
    h->body = i;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

static bool make_date(int y, int ydigits, int m, int d, ws_datetime *t)
{
    if (ydigits <= 2)
        y += 2000;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return false;
    t->year = y;
    t->month = m;
    t->day = d;
    return true;
}

bool ws__chat_resolve(const chat_header *h, ws_date_order order, ws_datetime *t)
{
    int hour = h->hour;
    if (h->ampm == 1 && hour == 12)
        hour = 0;
    else if (h->ampm == 2 && hour < 12)
        hour += 12;
    if (hour > 23 || (h->ampm && h->hour > 12 && h->ampm == 1))
        return false;
    t->hour = hour;
    t->minute = h->minute;
    t->second = h->second;

    const int *f = h->field;
    const unsigned char *dg = h->digits;
    if (dg[0] == 4 || order == WS_DATE_YMD)
        return make_date(f[0], dg[0], f[1], f[2], t);
    if (order == WS_DATE_MDY)
        return make_date(f[2], dg[2], f[0], f[1], t) || make_date(f[2], dg[2], f[1], f[0], t);
    return make_date(f[2], dg[2], f[1], f[0], t) || make_date(f[2], dg[2], f[0], f[1], t);
}

/* ------------------------------------------------------------------ templates
 * Most exports print every header in one layout ("13/01/2024, 10:00 - "). A template is a
 * header already accepted by the grammar with its ASCII digits turned into wildcards; a line
 * with the same bytes around digits in the same places is a header of the same layout, and
 * its fields are read by position. This is only a faster path to the grammar's answer. */

static bool is_ascii_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool ws__chat_template_make(const char *s, const chat_header *h, chat_template *t)
{
    memset(t, 0, sizeof *t);
    if (h->no_template || h->body > sizeof t->lit)
        return false;
    int fields = h->digits[5] == 2 ? 6 : 5;
    for (int f = 0; f < fields; f++)
        for (int k = 0; k < h->digits[f]; k++)
            if (!is_ascii_digit(s[h->pos[f] + k]))
                return false; /* Eastern Arabic digits: the grammar handles those */
    t->len = h->body;
    t->span = (t->len + 15) & ~(size_t)15;
    memcpy(t->lit, s, t->len);
    memset(t->litmask, 0xFF, t->len);
    for (int f = 0; f < fields; f++) {
        t->fpos[f] = (unsigned char)h->pos[f];
        t->fdigits[f] = (unsigned char)h->digits[f];
        for (int k = 0; k < h->digits[f]; k++) {
            t->lit[h->pos[f] + k] = 0;
            t->litmask[h->pos[f] + k] = 0;
            t->digitmask[h->pos[f] + k] = 0xFF;
        }
    }
    t->proto = *h;
    t->fields = fields;
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < h->digits[f] && h->pos[f] + k < (int)sizeof t->datemask; k++)
            t->datemask[h->pos[f] + k] = 0xFF;
    /* the checks of fill_fields (hour <= 24) and the 12h conversion of ws__chat_resolve */
    for (int hour = 0; hour < 100; hour++) {
        int ampm = h->ampm, h24 = hour;
        if (ampm == 1 && hour == 12)
            h24 = 0;
        else if (ampm == 2 && hour < 12)
            h24 += 12;
        bool ok = hour <= 24 && h24 <= 23 && !(ampm == 1 && hour > 12);
        t->hour24[hour] = (signed char)(ok ? h24 : -1);
    }
#if defined(WS_CHAT_HAVE_MATCH_AVX2)
    t->avx2_32 = t->span == 32 && ws_cpu_avx2();
#endif
    return true;
}

/* The value of a field of 1 to 4 ASCII digits (already checked to be digits). */
static inline int field_value(const unsigned char *d, unsigned digits)
{
    if (digits == 2)
        return (d[0] - '0') * 10 + (d[1] - '0');
    if (digits == 1)
        return d[0] - '0';
    if (digits == 4)
        return ((d[0] - '0') * 10 + (d[1] - '0')) * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    int v = 0;
    for (unsigned k = 0; k < digits; k++)
        v = v * 10 + (d[k] - '0');
    return v;
}

/* The fields of a line whose bytes matched t: false when a value is out of range. */
static inline bool fill_fields(const chat_template *t, const char *s, chat_header *h)
{
    /* literals surround every field, so digit counts (and so values) are the grammar's */
    const unsigned char *b = (const unsigned char *)s;
    int v0 = field_value(b + t->fpos[0], t->fdigits[0]);
    int v1 = field_value(b + t->fpos[1], t->fdigits[1]);
    int v2 = field_value(b + t->fpos[2], t->fdigits[2]);
    int hour = field_value(b + t->fpos[3], t->fdigits[3]);
    int minute = field_value(b + t->fpos[4], t->fdigits[4]);
    int second = t->fields == 6 ? field_value(b + t->fpos[5], t->fdigits[5]) : 0;
    if (minute > 59 || second > 59 || hour > 24)
        return false;
    *h = t->proto;
    h->field[0] = v0;
    h->field[1] = v1;
    h->field[2] = v2;
    h->hour = hour;
    h->minute = minute;
    h->second = second;
    return true;
}

/* The bytes a match compares: the line itself, or a zero-padded copy when fewer than the
 * layout's span can be read from it. */
static inline const unsigned char *match_source(const chat_template *t, const char *s, size_t n,
                                                size_t readable, unsigned char *copy)
{
    if (readable >= t->span)
        return (const unsigned char *)s;
    memset(copy, 0, WS_CHAT_TEMPLATE_READ);
    memcpy(copy, s, n < WS_CHAT_TEMPLATE_READ ? n : WS_CHAT_TEMPLATE_READ);
    return copy;
}

bool ws__chat_template_match(const chat_template *t, const char *s, size_t n, size_t readable, chat_header *h)
{
    if (n <= t->len || !t->len)
        return false;
    _Alignas(16) unsigned char copy[WS_CHAT_TEMPLATE_READ];
    const unsigned char *src = match_source(t, s, n, readable, copy);
    /* literal bytes equal, wildcard bytes ASCII digits */
#if defined(__SSE2__)
    const __m128i zero_char = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    for (size_t k = 0; k < t->span; k += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(src + k));
        __m128i lit = _mm_load_si128((const __m128i *)(t->lit + k));
        __m128i litmask = _mm_load_si128((const __m128i *)(t->litmask + k));
        __m128i digitmask = _mm_load_si128((const __m128i *)(t->digitmask + k));
        __m128i eq = _mm_cmpeq_epi8(_mm_and_si128(x, litmask), lit);
        __m128i d = _mm_sub_epi8(x, zero_char);
        __m128i is_digit = _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d);
        __m128i ok = _mm_andnot_si128(_mm_andnot_si128(is_digit, digitmask), eq);
        if (_mm_movemask_epi8(ok) != 0xFFFF)
            return false;
    }
#else
    for (size_t w = 0; w < t->span / 8; w++) {
        uint64_t word, lit, litmask, digitmask;
        memcpy(&word, src + w * 8, 8);
        memcpy(&lit, t->lit + w * 8, 8);
        memcpy(&litmask, t->litmask + w * 8, 8);
        memcpy(&digitmask, t->digitmask + w * 8, 8);
        if ((word ^ lit) & litmask)
            return false;
        uint64_t x = word ^ 0x3030303030303030ull;
        uint64_t not_digit =
            (((x & 0x7F7F7F7F7F7F7F7Full) + 0x7676767676767676ull) | x) & 0x8080808080808080ull;
        if (not_digit & digitmask)
            return false;
    }
#endif
    return fill_fields(t, s, h);
}

#if defined(WS_CHAT_HAVE_MATCH_AVX2)
#include <immintrin.h>
/* ws__chat_template_match for a 32-byte span, in one AVX2 compare (t->avx2_32). */
__attribute__((target("avx2"))) bool ws__chat_template_match_avx2(const chat_template *t, const char *s,
                                                                  size_t n, size_t readable, chat_header *h)
{
    if (n <= t->len || !t->len)
        return false;
    _Alignas(16) unsigned char copy[WS_CHAT_TEMPLATE_READ];
    const unsigned char *src = match_source(t, s, n, readable, copy);
    __m256i x = _mm256_loadu_si256((const __m256i *)src);
    __m256i lit = _mm256_loadu_si256((const __m256i *)t->lit);
    __m256i litmask = _mm256_loadu_si256((const __m256i *)t->litmask);
    __m256i digitmask = _mm256_loadu_si256((const __m256i *)t->digitmask);
    __m256i eq = _mm256_cmpeq_epi8(_mm256_and_si256(x, litmask), lit);
    __m256i d = _mm256_sub_epi8(x, _mm256_set1_epi8('0'));
    __m256i is_digit = _mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8(9)), d);
    __m256i ok = _mm256_andnot_si256(_mm256_andnot_si256(is_digit, digitmask), eq);
    if ((unsigned)_mm256_movemask_epi8(ok) != 0xFFFFFFFFu)
        return false;
    return fill_fields(t, s, h);
}
#endif

void ws__chat_template_remember_date(chat_template *t, const char *s, size_t readable, const ws_datetime *ts)
{
    if (!t->avx2_32 || readable < sizeof t->date_bytes)
        return;
    for (size_t i = 0; i < sizeof t->date_bytes; i++)
        t->date_bytes[i] = (unsigned char)s[i] & t->datemask[i];
    t->date = *ts;
    t->date_known = true;
}

#if defined(WS_CHAT_HAVE_MATCH_AVX2)
__attribute__((target("avx2"))) bool ws__chat_template_fast(const chat_template *t, const char *s, size_t n,
                                                            size_t readable, ws_datetime *ts)
{
    if (!t->date_known || n <= t->len || readable < 32)
        return false;
    __m256i x = _mm256_loadu_si256((const __m256i *)s);
    __m256i lit = _mm256_loadu_si256((const __m256i *)t->lit);
    __m256i litmask = _mm256_loadu_si256((const __m256i *)t->litmask);
    __m256i digitmask = _mm256_loadu_si256((const __m256i *)t->digitmask);
    __m256i eq = _mm256_cmpeq_epi8(_mm256_and_si256(x, litmask), lit);
    __m256i d = _mm256_sub_epi8(x, _mm256_set1_epi8('0'));
    __m256i is_digit = _mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8(9)), d);
    __m256i ok = _mm256_andnot_si256(_mm256_andnot_si256(is_digit, digitmask), eq);
    /* and the date's digits those of the remembered date */
    __m256i date = _mm256_cmpeq_epi8(_mm256_and_si256(x, _mm256_loadu_si256((const __m256i *)t->datemask)),
                                     _mm256_loadu_si256((const __m256i *)t->date_bytes));
    if ((unsigned)_mm256_movemask_epi8(_mm256_and_si256(ok, date)) != 0xFFFFFFFFu)
        return false;
    /* the time: 1 or 2 digits of hour (hour24 holds the 12h conversion and its checks) */
    const unsigned char *b = (const unsigned char *)s;
    int hour = t->fdigits[3] == 2   ? (b[t->fpos[3]] - '0') * 10 + (b[t->fpos[3] + 1] - '0')
               : t->fdigits[3] == 1 ? b[t->fpos[3]] - '0'
                                    : 100;
    int minute = field_value(b + t->fpos[4], t->fdigits[4]);
    int second = t->fields == 6 ? field_value(b + t->fpos[5], t->fdigits[5]) : 0;
    int h24 = hour < 100 ? t->hour24[hour] : -1;
    if (minute > 59 || second > 59 || h24 < 0)
        return false;
    *ts = t->date;
    ts->hour = h24;
    ts->minute = minute;
    ts->second = second;
    return true;
}
#endif
