/* Unicode for the tokenizer: character classes of the tokenizers regex engine, UTF-8
 * validation/repair and NFC normalisation, all over the generated tables in
 * tokenizer_unidata.h (tools/gen_tokenizer_unicode.py). */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/tokenizer_int.h"
#include "nn/tokenizer_unidata.h"

unsigned ws_uni_class(uint32_t cp)
{
    if (cp >= 0x110000)
        return 0;
    return uni_stage2[(size_t)uni_stage1[cp >> 8] * 256 + (cp & 255)];
}

/* Length of the well-formed sequence at s[i] (> 0), or minus the length of the maximal
 * ill-formed subpart to replace (< 0). */
static long utf8_seq(const unsigned char *s, size_t len, size_t i)
{
    unsigned char c = s[i];
    if (c < 0x80)
        return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;
    } else if (c == 0xED) {
        need = 2;
        hi = 0x9F;
    } else if (c >= 0xE1 && c <= 0xEF)
        need = 2;
    else if (c == 0xF0) {
        need = 3;
        lo = 0x90;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;
    } else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else
        return -1;
    for (int k = 1; k <= need; k++) {
        if (i + (size_t)k >= len)
            return -(long)k;
        unsigned char b = s[i + (size_t)k];
        if (b < lo || b > hi)
            return -(long)k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

size_t ws_utf8_unfinished_tail(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        unsigned char c = u[len - k];
        if ((c & 0xC0) == 0x80)
            continue;
        if (c < 0xC2 || c > 0xF4)
            return 0;
        long r = utf8_seq(u, len, len - k);
        return r < 0 && (size_t)-r == k ? k : 0;
    }
    return 0;
}

void ws_utf8_sanitize(const char *s, size_t len, ws_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < len) {
        long n = u[i] < 0x80 ? 1 : utf8_seq(u, len, i);
        if (n > 0) {
            i += (size_t)n;
            continue;
        }
        ws_buf_append(out, s + run, i - run);
        ws_buf_append(out, "\xEF\xBF\xBD", 3);
        i += (size_t)-n;
        run = i;
    }
    ws_buf_append(out, s + run, len - run);
}

/* ------------------------------------------------------------------ NFC */

enum {
    SBASE = 0xAC00,
    LBASE = 0x1100,
    VBASE = 0x1161,
    TBASE = 0x11A7,
    LCOUNT = 19,
    VCOUNT = 21,
    TCOUNT = 28,
    NCOUNT = VCOUNT * TCOUNT,
    SCOUNT = LCOUNT * NCOUNT
};

static unsigned ccc_of(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    size_t lo = 0, hi = UNI_N_CCC;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uni_ccc[mid].cp == cp)
            return uni_ccc[mid].ccc;
        if (uni_ccc[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Full canonical decomposition of cp (not Hangul): count and pointer, or 0. */
static size_t decomp_of(uint32_t cp, const uint32_t **d)
{
    if (cp < 0xC0)
        return 0;
    size_t lo = 0, hi = UNI_N_DECOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uni_decomp[mid].cp == cp) {
            *d = uni_decomp_pool + uni_decomp[mid].off;
            return uni_decomp[mid].len;
        }
        if (uni_decomp[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    size_t lo = 0, hi = UNI_N_COMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint32_t ma = uni_comp[mid].a, mb = uni_comp[mid].b;
        if (ma == a && mb == b)
            return uni_comp[mid].c;
        if (ma < a || (ma == a && mb < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Stable sort of n non-starters by combining class: insertion sort for the usual short runs,
 * a counting sort for long ones (so that a flood of marks stays linear). */
static void sort_run(uint32_t *cps, uint8_t *cls, size_t n)
{
    if (n <= 16) {
        for (size_t k = 1; k < n; k++)
            for (size_t j = k; j > 0 && cls[j - 1] > cls[j]; j--) {
                uint32_t tc = cps[j];
                cps[j] = cps[j - 1];
                cps[j - 1] = tc;
                uint8_t tk = cls[j];
                cls[j] = cls[j - 1];
                cls[j - 1] = tk;
            }
        return;
    }
    size_t start[257] = {0};
    for (size_t k = 0; k < n; k++)
        start[cls[k] + 1]++;
    for (int c = 1; c <= 256; c++)
        start[c] += start[c - 1];
    uint32_t *tmp = ws_xmalloc(n * sizeof *tmp);
    for (size_t k = 0; k < n; k++)
        tmp[start[cls[k]]++] = cps[k];
    memcpy(cps, tmp, n * sizeof *tmp);
    size_t k = 0;
    for (int c = 0; c < 256; c++)
        while (k < start[c])
            cls[k++] = (uint8_t)c;
    free(tmp);
}

/* NFC of one segment that starts with a starter and after which nothing can interact. */
static void nfc_segment(const char *s, size_t len, ws_buf *out)
{
    uint32_t stack_cps[256];
    uint8_t stack_cls[256];
    bool heap = len * 4 + 4 > 256;
    uint32_t *cps = heap ? ws_xmalloc((len * 4 + 4) * sizeof *cps) : stack_cps;
    uint8_t *cls = heap ? ws_xmalloc(len * 4 + 4) : stack_cls;
    size_t i;
    /* 1. full canonical decomposition into code points (at most 4 per UTF-8 byte... far less) */
    size_t n = 0;
    for (i = 0; i < len;) {
        uint32_t cp;
        i += ws_utf8_at(s, len, i, &cp);
        if (cp >= SBASE && cp < SBASE + SCOUNT) {
            uint32_t si = cp - SBASE;
            cps[n++] = LBASE + si / NCOUNT;
            cps[n++] = VBASE + (si % NCOUNT) / TCOUNT;
            if (si % TCOUNT)
                cps[n++] = TBASE + si % TCOUNT;
            continue;
        }
        const uint32_t *d;
        size_t dn = decomp_of(cp, &d);
        if (dn) {
            memcpy(cps + n, d, dn * sizeof *d);
            n += dn;
        } else {
            cps[n++] = cp;
        }
    }
    for (size_t k = 0; k < n; k++)
        cls[k] = (uint8_t)ccc_of(cps[k]);
    /* 2. canonical ordering: stable sort of each run of non-starters by class */
    for (size_t k = 0; k < n;) {
        if (!cls[k]) {
            k++;
            continue;
        }
        size_t end = k;
        while (end < n && cls[end])
            end++;
        sort_run(cps + k, cls + k, end - k);
        k = end;
    }
    /* 3. canonical composition, in place */
    size_t m = 0;
    long starter = -1;
    unsigned last = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t c = cps[k];
        unsigned kc = cls[k];
        if (starter >= 0 && (last < kc || (last == 0 && m - 1 == (size_t)starter))) {
            uint32_t p = compose(cps[starter], c);
            if (p) {
                cps[starter] = p;
                continue;
            }
        }
        if (kc == 0)
            starter = (long)m;
        last = kc;
        cps[m++] = c;
    }
    char *dst = ws_buf_reserve(out, m * 4);
    size_t w = 0;
    for (size_t k = 0; k < m; k++)
        w += ws_utf8_put(dst + w, cps[k]);
    out->len += w;
    out->data[out->len] = '\0';
    if (heap) {
        free(cls);
        free(cps);
    }
}

void ws_uni_nfc(const char *s, size_t len, ws_buf *out)
{
    /* Characters whose quick check is "yes" (class bit WS_UNI_NFC_CHECK clear) stay as they are;
     * each run of the others is normalized together with the character before it (which they
     * may compose with). Nothing interacts across a "yes" character: it is a starter that does
     * not compose with what precedes it. Below U+0300 every character is "yes". */
    size_t copied = 0, i = 0, prev = 0;
    while (i < len) {
        if ((unsigned char)s[i] < 0xCC) {
            prev = i++;
            while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
                i++;
            continue;
        }
        uint32_t cp;
        size_t n = ws_utf8_at(s, len, i, &cp);
        if (!(ws_uni_class(cp) & WS_UNI_NFC_CHECK)) {
            prev = i;
            i += n;
            continue;
        }
        size_t seg = i > 0 ? prev : 0, end = i + n;
        while (end < len) {
            n = ws_utf8_at(s, len, end, &cp);
            if (!(ws_uni_class(cp) & WS_UNI_NFC_CHECK))
                break;
            end += n;
        }
        ws_buf_append(out, s + copied, seg - copied);
        nfc_segment(s + seg, end - seg, out);
        copied = i = end;
        prev = end;
    }
    ws_buf_append(out, s + copied, len - copied);
}
