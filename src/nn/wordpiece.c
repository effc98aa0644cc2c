/* WordPiece tokenizer with BERT normalisation (see wordpiece.h). */
#include "nn/wordpiece.h"

#include "core/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/mem.h"
#include "nn/wordpiece_tables.h"
#include "core/utf8.h"

struct ws_wordpiece {
    char *text;       /* the vocabulary file, lines NUL-terminated in place */
    const char **tok; /* id -> token */
    size_t n;
    int32_t *slot; /* open-addressing hash: id + 1, 0 = empty */
    size_t mask;
    bool lowercase;
    int32_t unk, cls, sep;
};

/* ---- Unicode look-ups ------------------------------------------------------------------------ */

static int class_of(uint32_t cp)
{
    size_t lo = 0, hi = ws_wp_n_class_ranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < ws_wp_class_ranges[mid].lo)
            hi = mid;
        else if (cp > ws_wp_class_ranges[mid].hi)
            lo = mid + 1;
        else
            return ws_wp_class_ranges[mid].cls;
    }
    return 0;
}

static const ws_wp_strip *strip_of(uint32_t cp)
{
    size_t lo = 0, hi = ws_wp_n_strip;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < ws_wp_strip_table[mid].cp)
            hi = mid;
        else if (cp > ws_wp_strip_table[mid].cp)
            lo = mid + 1;
        else
            return &ws_wp_strip_table[mid];
    }
    return NULL;
}

static uint32_t lower_of(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t lo = 0, hi = ws_wp_n_lower;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < ws_wp_lower_table[mid].cp)
            hi = mid;
        else if (cp > ws_wp_lower_table[mid].cp)
            lo = mid + 1;
        else
            return ws_wp_lower_table[mid].lower;
    }
    return cp;
}

/* Unicode White_Space (what Rust's char::is_whitespace, used by the reference, accepts). */
static bool is_white_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

static bool is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static void put_cp(ws_buf *out, uint32_t cp)
{
    char enc[4];
    ws_buf_append(out, enc, ws_utf8_put(enc, cp));
}

/* Accent stripping + lowercasing of one code point (after clean-up). */
static void emit_folded(ws_buf *out, uint32_t cp, bool lowercase)
{
    if (!lowercase) {
        put_cp(out, cp);
        return;
    }
    if (cp >= 0xAC00 && cp <= 0xD7A3) { /* Hangul syllable -> L V (T) jamo */
        uint32_t s = cp - 0xAC00;
        put_cp(out, 0x1100 + s / 588);
        put_cp(out, 0x1161 + (s % 588) / 28);
        if (s % 28)
            put_cp(out, 0x11A7 + s % 28);
        return;
    }
    if (class_of(cp) & WS_WP_MN)
        return;
    const ws_wp_strip *st = strip_of(cp);
    if (st) {
        for (uint8_t k = 0; k < st->len; k++)
            put_cp(out, lower_of(ws_wp_strip_data[st->off + k]));
        return;
    }
    put_cp(out, lower_of(cp));
}

void ws_wordpiece_normalize(const char *s, size_t n, bool lowercase, ws_buf *out)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp = ws_utf8_next(s, n, &i);
        if (cp == 0 || cp == 0xFFFD || (class_of(cp) & WS_WP_CTRL))
            continue;
        if (is_white_space(cp)) {
            ws_buf_putc(out, ' ');
            continue;
        }
        if (is_cjk(cp)) {
            ws_buf_putc(out, ' ');
            emit_folded(out, cp, lowercase);
            ws_buf_putc(out, ' ');
            continue;
        }
        emit_folded(out, cp, lowercase);
    }
}

/* ---- vocabulary ----------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = ws_hash_fnv1a(s, n);
    return h ^ (h >> 31);
}

static int32_t lookup(const ws_wordpiece *wp, const char *s, size_t n)
{
    size_t j = hash_bytes(s, n) & wp->mask;
    while (wp->slot[j]) {
        const char *t = wp->tok[wp->slot[j] - 1];
        if (strncmp(t, s, n) == 0 && t[n] == '\0')
            return wp->slot[j] - 1;
        j = (j + 1) & wp->mask;
    }
    return -1;
}

int32_t ws_wordpiece_id(const ws_wordpiece *wp, const char *token)
{
    return lookup(wp, token, strlen(token));
}

const char *ws_wordpiece_token(const ws_wordpiece *wp, int32_t id)
{
    return id >= 0 && (size_t)id < wp->n ? wp->tok[id] : NULL;
}

size_t ws_wordpiece_vocab_size(const ws_wordpiece *wp)
{
    return wp->n;
}

void ws_wordpiece_free(ws_wordpiece *wp)
{
    if (!wp)
        return;
    free(wp->text);
    free(wp->tok);
    free(wp->slot);
    free(wp);
}

int ws_wordpiece_load_memory(const char *text, size_t len, bool lowercase, ws_wordpiece **out, ws_error *err)
{
    *out = NULL;
    if (len > WS_WORDPIECE_MAX_VOCAB_FILE)
        return ws_error_set(err, WS_ETOOBIG, "WordPiece vocabulary above %u bytes",
                            WS_WORDPIECE_MAX_VOCAB_FILE);
    ws_wordpiece *wp = ws_xcalloc(1, sizeof *wp);
    int rc = 0;
    wp->lowercase = lowercase;
    wp->text = ws_xmalloc(len + 1);
    memcpy(wp->text, text, len);
    wp->text[len] = '\0';
    size_t cap = 1024;
    wp->tok = ws_xmalloc(cap * sizeof *wp->tok);
    size_t pos = 0, line = 0;
    while (pos < len) {
        size_t e = pos;
        while (e < len && wp->text[e] != '\n')
            e++;
        line++;
        size_t l = e - pos;
        if (l && wp->text[pos + l - 1] == '\r')
            l--;
        if (l > WS_WORDPIECE_MAX_TOKEN || memchr(wp->text + pos, '\0', l)) {
            rc = ws_error_set(err, WS_EFORMAT, "WordPiece vocabulary line %zu: bad entry", line);
            goto out;
        }
        wp->text[pos + l] = '\0';
        if (wp->n == cap) {
            cap *= 2;
            wp->tok = ws_xrealloc(wp->tok, cap * sizeof *wp->tok);
        }
        wp->tok[wp->n++] = wp->text + pos;
        pos = e + 1;
    }
    size_t slots = 16;
    while (slots < wp->n * 2)
        slots *= 2;
    wp->slot = ws_xcalloc(slots, sizeof *wp->slot);
    wp->mask = slots - 1;
    for (size_t id = 0; id < wp->n; id++) {
        const char *t = wp->tok[id];
        size_t j = hash_bytes(t, strlen(t)) & wp->mask;
        bool dup = false;
        while (wp->slot[j]) {
            if (strcmp(wp->tok[wp->slot[j] - 1], t) == 0) {
                dup = true; /* first occurrence wins */
                break;
            }
            j = (j + 1) & wp->mask;
        }
        if (!dup)
            wp->slot[j] = (int32_t)id + 1;
    }
    wp->unk = ws_wordpiece_id(wp, "[UNK]");
    wp->cls = ws_wordpiece_id(wp, "[CLS]");
    wp->sep = ws_wordpiece_id(wp, "[SEP]");
    if (wp->unk < 0 || wp->cls < 0 || wp->sep < 0)
        rc = ws_error_set(err, WS_EFORMAT, "WordPiece vocabulary lacks [UNK], [CLS] or [SEP]");
out:
    if (rc) {
        ws_wordpiece_free(wp);
        return rc;
    }
    *out = wp;
    return 0;
}

int ws_wordpiece_load(const char *path, bool lowercase, ws_wordpiece **out, ws_error *err)
{
    *out = NULL;
    char *buf;
    size_t n;
    int rc = ws_file_read(path, WS_WORDPIECE_MAX_VOCAB_FILE, &buf, &n, err);
    if (rc)
        return rc;
    rc = ws_wordpiece_load_memory(buf, n, lowercase, out, err);
    free(buf);
    return rc;
}

/* ---- encoding ------------------------------------------------------------------------------- */

typedef struct ids_out {
    int32_t *v;
    size_t n, cap, max;
} ids_out;

static bool push_id(ids_out *o, int32_t id)
{
    if (o->n >= o->max)
        return false;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = ws_xrealloc(o->v, o->cap * sizeof *o->v);
    }
    o->v[o->n++] = id;
    return true;
}

/* WordPiece over one word (bytes w[0..n)); false when the output is full. */
static bool encode_word(const ws_wordpiece *wp, const char *w, size_t n, ids_out *o, char *scratch)
{
    if (ws_utf8_count(w, n) > WS_WORDPIECE_MAX_WORD_CHARS)
        return push_id(o, wp->unk);
    size_t first = o->n, start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (end > start) {
            size_t pl = 0;
            if (start > 0) {
                memcpy(scratch, "##", 2);
                pl = 2;
            }
            if (pl + end - start <= WS_WORDPIECE_MAX_TOKEN) {
                memcpy(scratch + pl, w + start, end - start);
                found = lookup(wp, scratch, pl + end - start);
                if (found >= 0)
                    break;
            }
            /* back off one code point */
            end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80)
                end--;
        }
        if (found < 0) {
            o->n = first;
            return push_id(o, wp->unk);
        }
        if (!push_id(o, found))
            return false;
        start = end;
    }
    return true;
}

int ws_wordpiece_encode(const ws_wordpiece *wp, const char *text, size_t len, size_t max_len, int32_t **ids,
                        size_t *n_ids, ws_error *err)
{
    (void)err;
    if (max_len == 0)
        max_len = 512;
    if (max_len < 2)
        max_len = 2;
    ws_buf norm = WS_BUF_INIT;
    ws_wordpiece_normalize(text, len, wp->lowercase, &norm);
    ids_out o = {NULL, 0, 0, max_len - 1};
    char scratch[WS_WORDPIECE_MAX_TOKEN + 8];
    push_id(&o, wp->cls);
    const char *s = norm.data ? norm.data : "";
    size_t n = norm.len, i = 0, word = 0;
    bool full = false;
    while (i < n && !full) {
        size_t at = i;
        uint32_t cp = ws_utf8_next(s, n, &i);
        bool space = cp == ' ', punct = !space && (class_of(cp) & WS_WP_PUNCT);
        if (space || punct) {
            if (at > word)
                full = !encode_word(wp, s + word, at - word, &o, scratch);
            if (punct && !full)
                full = !encode_word(wp, s + at, i - at, &o, scratch);
            word = i;
        }
    }
    if (!full && n > word)
        encode_word(wp, s + word, n - word, &o, scratch);
    o.max = max_len;
    push_id(&o, wp->sep);
    ws_buf_free(&norm);
    *ids = o.v;
    *n_ids = o.n;
    return 0;
}
