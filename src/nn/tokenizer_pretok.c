/* The pre-tokenizer regexes of GPT-2, Llama-3 and Qwen2 tokenizer.json files, as hand-written
 * matchers that reproduce the Oniguruma semantics `tokenizers` runs them with (leftmost
 * alternative first, greedy with backtracking). Only these exact pattern strings are accepted;
 * anything else is rejected by the loader. */
#include <string.h>

#include "nn/tokenizer_int.h"

static const char *const pattern_src[WS_PAT_COUNT] = {
    [WS_PAT_GPT2] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    [WS_PAT_LLAMA3] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
                      " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [WS_PAT_QWEN2] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
                     " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

int ws_pattern_lookup(const char *src, size_t len)
{
    for (int p = 0; p < WS_PAT_COUNT; p++)
        if (strlen(pattern_src[p]) == len && memcmp(pattern_src[p], src, len) == 0)
            return p;
    return -1;
}

const char *ws_pattern_source(ws_pattern p)
{
    return p >= 0 && p < WS_PAT_COUNT ? pattern_src[p] : "";
}

/* Classes used by the matchers: L, N, S from the table plus CR/LF. "Other" is none of L/N/S. */
enum { C_L = WS_UNI_L, C_N = WS_UNI_N, C_S = WS_UNI_S, C_CRLF = 16 };

static inline unsigned cls_at(const char *s, size_t len, size_t i, size_t *n)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *n = 1;
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            return C_L;
        if (c >= '0' && c <= '9')
            return C_N;
        if (c == '\r' || c == '\n')
            return C_S | C_CRLF;
        if (c == ' ' || (c >= 9 && c <= 13))
            return C_S;
        return 0;
    }
    uint32_t cp;
    *n = ws_utf8_at(s, len, i, &cp);
    return ws_uni_class(cp) & (C_L | C_N | C_S);
}

#define IS_OTHER(k) (((k) & (C_L | C_N | C_S)) == 0)

/* End of the run of characters from i whose class has any bit of `want` (want_other: none of
 * L/N/S). At most max characters (0 = unlimited). */
static size_t run_end(const char *s, size_t len, size_t i, unsigned want, bool want_other, size_t max)
{
    size_t count = 0;
    while (i < len && (max == 0 || count < max)) {
        size_t n;
        unsigned k = cls_at(s, len, i, &n);
        if (want_other ? !IS_OTHER(k) : !(k & want))
            break;
        i += n;
        count++;
    }
    return i;
}

static size_t contraction(const char *s, size_t len, size_t pos, bool icase)
{
    if (s[pos] != '\'' || pos + 1 >= len)
        return 0;
    char c = s[pos + 1];
    if (icase) {
        if ((unsigned char)c == 0xC5 && pos + 2 < len && (unsigned char)s[pos + 2] == 0xBF)
            return 3; /* U+017F LATIN SMALL LETTER LONG S case-folds to 's' */
        c = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (c == 's' || c == 't' || c == 'm' || c == 'd')
        return 2;
    if (pos + 2 >= len)
        return 0;
    char c2 = s[pos + 2];
    if (icase)
        c2 = (char)(c2 >= 'A' && c2 <= 'Z' ? c2 + 32 : c2);
    if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S) then \s+, for a whitespace character at pos. */
static size_t space_run(const char *s, size_t len, size_t pos)
{
    size_t q = run_end(s, len, pos, C_S, false, 0);
    if (q == len)
        return q - pos;
    size_t last = ws_utf8_prev(s, q);
    if (last > pos)
        return last - pos; /* \s+(?!\S): give back the last space */
    return q - pos;        /* \s+ */
}

static size_t match_gpt2(const char *s, size_t len, size_t pos)
{
    size_t m = contraction(s, len, pos, false);
    if (m)
        return m;
    size_t q = pos, n;
    if (s[q] == ' ' && q + 1 < len)
        q++;
    unsigned k = cls_at(s, len, q, &n);
    if (k & C_L)
        return run_end(s, len, q, C_L, false, 0) - pos;
    if (k & C_N)
        return run_end(s, len, q, C_N, false, 0) - pos;
    if (IS_OTHER(k))
        return run_end(s, len, q, 0, true, 0) - pos;
    /* s[q] is whitespace: the optional space cannot help, so q == pos or s[pos] == ' ' */
    return space_run(s, len, pos);
}

static size_t match_llama(const char *s, size_t len, size_t pos, size_t max_digits)
{
    size_t m = contraction(s, len, pos, true);
    if (m)
        return m;
    size_t n0, n1;
    unsigned k0 = cls_at(s, len, pos, &n0);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 & C_L)
        return run_end(s, len, pos, C_L, false, 0) - pos;
    if (!(k0 & (C_CRLF | C_N)) && pos + n0 < len && (cls_at(s, len, pos + n0, &n1) & C_L))
        return run_end(s, len, pos + n0, C_L, false, 0) - pos;
    /* \p{N}{1,max} */
    if (k0 & C_N)
        return run_end(s, len, pos, C_N, false, max_digits) - pos;
    /* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t q = pos;
    unsigned k = k0;
    if (s[pos] == ' ' && pos + 1 < len) {
        k = cls_at(s, len, pos + 1, &n1);
        if (IS_OTHER(k))
            q = pos + 1;
        else
            k = k0;
    }
    if (IS_OTHER(k)) {
        q = run_end(s, len, q, 0, true, 0);
        while (q < len && (s[q] == '\r' || s[q] == '\n'))
            q++;
        return q - pos;
    }
    /* whitespace at pos: \s*[\r\n]+ ends after the run's last CR/LF */
    size_t end = run_end(s, len, pos, C_S, false, 0), last_crlf = 0;
    for (size_t i = pos; i < end; i++)
        if (s[i] == '\r' || s[i] == '\n')
            last_crlf = i + 1;
    if (last_crlf)
        return last_crlf - pos;
    return space_run(s, len, pos);
}

size_t ws_pattern_match_at(ws_pattern p, const char *s, size_t len, size_t pos)
{
    if (pos >= len)
        return 0;
    switch (p) {
    case WS_PAT_GPT2: return match_gpt2(s, len, pos);
    case WS_PAT_LLAMA3: return match_llama(s, len, pos, 3);
    case WS_PAT_QWEN2: return match_llama(s, len, pos, 1);
    default: return 0;
    }
}
