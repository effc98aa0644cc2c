/* Emoji grapheme detection and character classes for the style model. */
#include "style/text.h"

#include <string.h>

/* BMP symbols that show as emoji without a variation selector (Emoji_Presentation=Yes),
 * plus U+2764 (heart), which chat apps render as emoji either way. */
static const uint32_t bmp_presentation[][2] = {
    {0x231A, 0x231B}, {0x23E9, 0x23EC}, {0x23F0, 0x23F0}, {0x23F3, 0x23F3}, {0x25FD, 0x25FE},
    {0x2614, 0x2615}, {0x2648, 0x2653}, {0x267F, 0x267F}, {0x2693, 0x2693}, {0x26A1, 0x26A1},
    {0x26AA, 0x26AB}, {0x26BD, 0x26BE}, {0x26C4, 0x26C5}, {0x26CE, 0x26CE}, {0x26D4, 0x26D4},
    {0x26EA, 0x26EA}, {0x26F2, 0x26F3}, {0x26F5, 0x26F5}, {0x26FA, 0x26FA}, {0x26FD, 0x26FD},
    {0x2705, 0x2705}, {0x270A, 0x270B}, {0x2728, 0x2728}, {0x274C, 0x274C}, {0x274E, 0x274E},
    {0x2753, 0x2755}, {0x2757, 0x2757}, {0x2764, 0x2764}, {0x2795, 0x2797}, {0x27B0, 0x27B0},
    {0x27BF, 0x27BF}, {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50}, {0x2B55, 0x2B55},
};

/* Extended_Pictographic symbols that need FE0F to show as emoji (text presentation default). */
static const uint32_t bmp_text_default[][2] = {
    {0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049}, {0x2122, 0x2122},
    {0x2139, 0x2139}, {0x2194, 0x2199}, {0x21A9, 0x21AA}, {0x2328, 0x2328}, {0x23CF, 0x23CF},
    {0x23ED, 0x23EF}, {0x23F1, 0x23F2}, {0x23F8, 0x23FA}, {0x24C2, 0x24C2}, {0x25AA, 0x25AB},
    {0x25B6, 0x25B6}, {0x25C0, 0x25C0}, {0x25FB, 0x25FC}, {0x2600, 0x27BF}, {0x2934, 0x2935},
    {0x2B05, 0x2B07}, {0x3030, 0x3030}, {0x303D, 0x303D}, {0x3297, 0x3297}, {0x3299, 0x3299},
};

static bool in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (cp >= r[k][0] && cp <= r[k][1])
            return true;
    return false;
}

static bool is_regional(uint32_t cp)
{
    return cp >= 0x1F1E6 && cp <= 0x1F1FF;
}
static bool is_skin_tone(uint32_t cp)
{
    return cp >= 0x1F3FB && cp <= 0x1F3FF;
}

bool ws_emoji_is_pictographic(uint32_t cp)
{
    if (cp == 0x1F18E || (cp >= 0x1F191 && cp <= 0x1F19A))
        return true; /* squared AB, CL, COOL, ... */
    if (cp >= 0x1F000 && cp <= 0x1FAFF)
        return !is_regional(cp) && !is_skin_tone(cp) && !(cp >= 0x1F100 && cp <= 0x1F1E5);
    if (cp >= 0x1FC00 && cp <= 0x1FFFD)
        return true;
    return in_ranges(cp, bmp_presentation, sizeof bmp_presentation / sizeof bmp_presentation[0]);
}

static bool is_text_default(uint32_t cp)
{
    return in_ranges(cp, bmp_text_default, sizeof bmp_text_default / sizeof bmp_text_default[0]) ||
           (cp >= 0x1F100 && cp <= 0x1F1E5);
}

static uint32_t peek(const char *s, size_t n, size_t i, size_t *next)
{
    size_t j = i;
    uint32_t cp = i < n ? ws_utf8_next(s, n, &j) : 0;
    *next = j;
    return cp;
}

/* One emoji "element": a pictograph with optional FE0F / skin tone / tags. Returns end or 0. */
static size_t element_at(const char *s, size_t n, size_t i)
{
    size_t j;
    uint32_t cp = peek(s, n, i, &j);
    if (i >= n)
        return 0;
    size_t k;
    uint32_t nx = peek(s, n, j, &k);
    if (!ws_emoji_is_pictographic(cp)) {
        if (!(is_text_default(cp) && j < n && nx == 0xFE0F))
            return 0;
    }
    for (;;) {
        if (j >= n)
            break;
        nx = peek(s, n, j, &k);
        if (nx == 0xFE0F || is_skin_tone(nx) || (nx >= 0xE0020 && nx <= 0xE007F))
            j = k;
        else
            break;
    }
    return j;
}

size_t ws_emoji_at(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    size_t j, k;
    uint32_t cp = peek(s, n, i, &j);
    if (is_regional(cp)) { /* flag: exactly two regional indicators */
        uint32_t nx = peek(s, n, j, &k);
        return j < n && is_regional(nx) ? k - i : 0;
    }
    if ((cp >= '0' && cp <= '9') || cp == '#' || cp == '*') { /* keycap */
        uint32_t nx = peek(s, n, j, &k);
        if (j < n && nx == 0xFE0F) {
            j = k;
            nx = peek(s, n, j, &k);
        }
        return j < n && nx == 0x20E3 ? k - i : 0;
    }
    size_t end = element_at(s, n, i);
    if (!end)
        return 0;
    for (;;) { /* ZWJ sequence: element (ZWJ element)* */
        uint32_t nx = peek(s, n, end, &k);
        if (end >= n || nx != 0x200D)
            break;
        size_t e2 = element_at(s, n, k);
        if (!e2)
            break;
        end = e2;
    }
    return end - i;
}

ws_script ws_script_of(uint32_t cp)
{
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z'))
        return WS_SCRIPT_LATIN;
    if (cp < 0xC0)
        return cp == 0xAA || cp == 0xBA ? WS_SCRIPT_LATIN : WS_SCRIPT_NONE;
    if (cp == 0xD7 || cp == 0xF7)
        return WS_SCRIPT_NONE;
    if (cp <= 0x24F || (cp >= 0x1E00 && cp <= 0x1EFF) || (cp >= 0x2C60 && cp <= 0x2C7F) ||
        (cp >= 0xA720 && cp <= 0xA7FF) || (cp >= 0xFF21 && cp <= 0xFF3A) || (cp >= 0xFF41 && cp <= 0xFF5A))
        return WS_SCRIPT_LATIN;
    if (cp >= 0x370 && cp <= 0x3FF)
        return WS_SCRIPT_GREEK;
    if ((cp >= 0x400 && cp <= 0x52F) || (cp >= 0x1C80 && cp <= 0x1C8F))
        return WS_SCRIPT_CYRILLIC;
    if (cp >= 0x530 && cp <= 0x58F)
        return WS_SCRIPT_OTHER; /* Armenian */
    if (cp >= 0x590 && cp <= 0x5FF)
        return WS_SCRIPT_HEBREW;
    if ((cp >= 0x600 && cp <= 0x6FF) || (cp >= 0x750 && cp <= 0x77F) || (cp >= 0xFB50 && cp <= 0xFDFF) ||
        (cp >= 0xFE70 && cp <= 0xFEFF))
        return (cp >= 0x660 && cp <= 0x669) || (cp >= 0x6F0 && cp <= 0x6F9) ? WS_SCRIPT_NONE
                                                                            : WS_SCRIPT_ARABIC;
    if (cp >= 0x900 && cp <= 0x97F)
        return WS_SCRIPT_DEVANAGARI;
    if (cp >= 0xE00 && cp <= 0xE7F)
        return WS_SCRIPT_THAI;
    if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F) || (cp >= 0xAC00 && cp <= 0xD7AF))
        return WS_SCRIPT_HANGUL;
    if (cp >= 0x3040 && cp <= 0x30FF)
        return WS_SCRIPT_KANA;
    if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0x20000 && cp <= 0x2FA1F) || (cp >= 0xF900 && cp <= 0xFAFF))
        return WS_SCRIPT_HAN;
    if ((cp >= 0x980 && cp <= 0xDFF) || (cp >= 0xE80 && cp <= 0x10FF) || (cp >= 0x1200 && cp <= 0x137F))
        return WS_SCRIPT_OTHER; /* other Indic, Lao, Tibetan, Myanmar, Georgian, Ethiopic */
    return WS_SCRIPT_NONE;
}

const char *ws_script_name(ws_script s)
{
    static const char *names[WS_SCRIPT_COUNT] = {"none",   "latin",  "cyrillic",   "greek",
                                                 "arabic", "hebrew", "devanagari", "thai",
                                                 "hangul", "kana",   "han",        "other"};
    return (unsigned)s < WS_SCRIPT_COUNT ? names[s] : "none";
}

int ws_cp_case(uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z')
        return 1;
    if (cp >= 'a' && cp <= 'z')
        return -1;
    if (cp < 0xC0)
        return 0;
    if (cp <= 0xDE && cp != 0xD7)
        return 1;
    if (cp >= 0xDF && cp <= 0xFF && cp != 0xF7)
        return -1;
    if (cp >= 0x100 && cp <= 0x17F) { /* Latin Extended-A alternates upper/lower (mostly) */
        if (cp == 0x138 || cp == 0x149 || cp == 0x17F)
            return -1;
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
            return (cp & 1) ? 1 : -1;
        return (cp & 1) ? -1 : 1;
    }
    if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2)
        return 1;
    if (cp >= 0x3AC && cp <= 0x3CE)
        return -1;
    if (cp >= 0x400 && cp <= 0x42F)
        return 1;
    if (cp >= 0x430 && cp <= 0x45F)
        return -1;
    if (cp >= 0x460 && cp <= 0x4FF && cp != 0x482 && !(cp >= 0x483 && cp <= 0x489))
        return (cp & 1) ? -1 : 1;
    if (cp >= 0x531 && cp <= 0x556)
        return 1;
    if (cp >= 0x561 && cp <= 0x587)
        return -1;
    if (cp >= 0x1E00 && cp <= 0x1EFF)
        return (cp & 1) ? -1 : 1;
    return 0;
}

uint32_t ws_cp_lower(uint32_t cp)
{
    if (ws_cp_case(cp) != 1)
        return cp;
    if (cp < 0x80)
        return cp + 32;
    if (cp <= 0xDE)
        return cp + 32;
    if ((cp >= 0x100 && cp <= 0x17F) || (cp >= 0x460 && cp <= 0x4FF) || (cp >= 0x1E00 && cp <= 0x1EFF))
        return cp + 1;
    if (cp >= 0x391 && cp <= 0x3AB)
        return cp + 32;
    if (cp >= 0x410 && cp <= 0x42F)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 80;
    if (cp >= 0x531 && cp <= 0x556)
        return cp + 48;
    return cp;
}

bool ws_cp_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

bool ws_cp_is_alnum(uint32_t cp)
{
    if (cp >= '0' && cp <= '9')
        return true;
    if ((cp >= 0x660 && cp <= 0x669) || (cp >= 0x6F0 && cp <= 0x6F9) || (cp >= 0x966 && cp <= 0x96F))
        return true;
    return ws_script_of(cp) != WS_SCRIPT_NONE;
}

/* The next letter, digit or pictographic emoji of s from *i, lower-cased; 0 at the end. */
static uint32_t next_word_cp(const char *s, size_t n, size_t *i)
{
    while (*i < n) {
        uint32_t cp = ws_utf8_next(s, n, i);
        if (ws_cp_is_alnum(cp) || ws_emoji_is_pictographic(cp))
            return ws_cp_lower(cp);
    }
    return 0;
}

bool ws_text_is_echo(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), i = 0, j = 0;
    for (;;) {
        uint32_t x = next_word_cp(a, na, &i), y = next_word_cp(b, nb, &j);
        if (x != y)
            return false;
        if (!x)
            return true;
    }
}

typedef enum { SHAPE_NONE, SHAPE_LOWER, SHAPE_CAPITALISED, SHAPE_CAPS } case_shape;

/* The word starting at s[i] (a letter or digit there): its end in *end and its shape. */
static case_shape word_shape(const char *s, size_t n, size_t i, size_t *end)
{
    size_t letters = 0, upper = 0, j = i;
    bool first_upper = false;
    while (j < n) {
        size_t at = j;
        uint32_t cp = ws_utf8_next(s, n, &j);
        if (!ws_cp_is_alnum(cp)) {
            j = at;
            break;
        }
        int c = ws_cp_case(cp);
        if (c) {
            first_upper |= !letters && c > 0;
            upper += c > 0;
            letters++;
        }
    }
    *end = j;
    if (!letters)
        return SHAPE_NONE;
    if (!upper)
        return SHAPE_LOWER;
    if (upper == letters)
        return letters >= 2 ? SHAPE_CAPS : SHAPE_CAPITALISED;
    return first_upper && upper == 1 ? SHAPE_CAPITALISED : SHAPE_NONE;
}

void ws_text_case_shapes(const char *s, ws_case_shapes *c)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t at = i, end;
        if (!ws_cp_is_alnum(ws_utf8_next(s, n, &i)))
            continue;
        case_shape sh = word_shape(s, n, at, &end);
        c->lower += sh == SHAPE_LOWER;
        c->capitalised += sh == SHAPE_CAPITALISED;
        c->caps += sh == SHAPE_CAPS;
        i = end;
    }
}

void ws_text_lower_capitalised(const char *s, size_t n, ws_buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t at = i, end;
        if (!ws_cp_is_alnum(ws_utf8_next(s, n, &i))) {
            ws_buf_append(out, s + at, i - at);
            continue;
        }
        if (word_shape(s, n, at, &end) != SHAPE_CAPITALISED) {
            ws_buf_append(out, s + at, end - at);
        } else {
            for (size_t k = at; k < end;) {
                char enc[4];
                ws_buf_append(out, enc, ws_utf8_put(enc, ws_cp_lower(ws_utf8_next(s, end, &k))));
            }
        }
        i = end;
    }
}

size_t ws_text_whole_words(const char *s, size_t n)
{
    size_t i = 0, word_start = n;
    bool in_word = false;
    while (i < n) {
        size_t at = i;
        bool alnum = ws_cp_is_alnum(ws_utf8_next(s, n, &i));
        if (alnum && !in_word)
            word_start = at;
        in_word = alnum;
    }
    return in_word ? word_start : n;
}
