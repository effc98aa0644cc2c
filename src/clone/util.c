/* Clone helpers: the byte-level tokenizer file, the turn format, per-reply style features,
 * echo detection and small file utilities (atomic writes, SHA-256, mkdir -p). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "clone/clone_int.h"
#include "core/hex.h"
#include "core/json.h"
#include "core/mem.h"
#include "style/text.h"

/* ---- token id arrays ---- */
void ws__clone_ibuf_push(ibuf *b, int32_t x)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->v = ws_xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = x;
}

void ws__clone_ibuf_free(ibuf *b)
{
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* ---- byte-level tokenizer.json ---- */
/* GPT-2's byte -> code point map: printable bytes stand for themselves, the rest 256+k. */
static uint32_t byte_cp(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (uint32_t)b;
    int k = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
            k++;
    return 256u + (uint32_t)k;
}

static const char *const special_names[] = {"<|endoftext|>", "<|me|>", "<|other|>", "<|pad|>"};

/* The byte-level string of a byte sequence (GPT-2 mapping), appended to out. */
static void byte_str(const unsigned char *p, size_t n, ws_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char u[8];
        ws_buf_append(out, u, ws_utf8_put(u, byte_cp(p[i])));
    }
}

/* Writes tokenizer.json: bytes 0..255, the specials, then merged tokens (tok_bytes[k] of
 * tok_len[k] bytes for id 260+k, made by merging ids merge_a[k] and merge_b[k]). */
static int write_tokenizer(const char *path, const unsigned char *const *tok_bytes, const size_t *tok_len,
                           const int32_t *merge_a, const int32_t *merge_b, size_t n_merges, ws_error *err)
{
    ws_buf b = WS_BUF_INIT, t = WS_BUF_INIT;
    ws_buf_puts(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
                    "  \"added_tokens\": [\n");
    for (int i = 0; i < 4; i++)
        ws_buf_printf(&b,
                      "    {\"id\": %d, \"content\": \"%s\", \"single_word\": false, \"lstrip\": false, "
                      "\"rstrip\": false, \"normalized\": false, \"special\": true}%s\n",
                      CLONE_TOK_END + i, special_names[i], i < 3 ? "," : "");
    ws_buf_puts(
        &b, "  ],\n  \"normalizer\": null,\n"
            "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
            "\"trim_offsets\": false, \"use_regex\": false},\n"
            "  \"post_processor\": null,\n"
            "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
            "\"use_regex\": false},\n"
            "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
            "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, "
            "\"byte_fallback\": false, \"ignore_merges\": false, \"vocab\": {");
    for (int i = 0; i < 256; i++) {
        unsigned char one = (unsigned char)i;
        ws_buf_reset(&t);
        byte_str(&one, 1, &t);
        if (i)
            ws_buf_puts(&b, ", ");
        ws_json_put_str(&b, t.data, t.len);
        ws_buf_printf(&b, ": %d", i);
    }
    for (int i = 0; i < 4; i++)
        ws_buf_printf(&b, ", \"%s\": %d", special_names[i], CLONE_TOK_END + i);
    for (size_t k = 0; k < n_merges; k++) {
        ws_buf_reset(&t);
        byte_str(tok_bytes[CLONE_VOCAB + k], tok_len[CLONE_VOCAB + k], &t);
        ws_buf_puts(&b, ", ");
        ws_json_put_str(&b, t.data, t.len);
        ws_buf_printf(&b, ": %zu", CLONE_VOCAB + k);
    }
    ws_buf_puts(&b, "}, \"merges\": [");
    for (size_t k = 0; k < n_merges; k++) {
        ws_buf_puts(&b, k ? ", [" : "[");
        ws_buf_reset(&t);
        byte_str(tok_bytes[merge_a[k]], tok_len[merge_a[k]], &t);
        ws_json_put_str(&b, t.data, t.len);
        ws_buf_puts(&b, ", ");
        ws_buf_reset(&t);
        byte_str(tok_bytes[merge_b[k]], tok_len[merge_b[k]], &t);
        ws_json_put_str(&b, t.data, t.len);
        ws_buf_puts(&b, "]");
    }
    ws_buf_puts(&b, "]}\n}\n");
    int rc = ws_file_write_atomic(path, b.data, b.len, err);
    ws_buf_free(&b);
    ws_buf_free(&t);
    return rc;
}

int ws__clone_write_byte_tokenizer(const char *path, ws_error *err)
{
    return write_tokenizer(path, NULL, NULL, NULL, NULL, 0, err);
}

/* Byte-pair merges learned from texts (merges never cross a text boundary): each round counts
 * adjacent pairs and merges the most frequent (ties: the smaller ids), until n_merges or no
 * pair occurs twice. */
int ws__clone_write_bpe_tokenizer(const char *path, const char *const *texts, size_t n_texts, size_t n_merges,
                                  ws_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n_texts; i++)
        total += strlen(texts[i]) + 1;
    int32_t *seq = ws_xmalloc((total + 1) * sizeof *seq); /* -1 separates texts */
    size_t n = 0;
    for (size_t i = 0; i < n_texts; i++) {
        for (const unsigned char *p = (const unsigned char *)texts[i]; *p; p++)
            seq[n++] = *p;
        seq[n++] = -1;
    }
    size_t vocab = CLONE_VOCAB + n_merges;
    unsigned char **tb = ws_xcalloc(vocab, sizeof *tb);
    size_t *tl = ws_xcalloc(vocab, sizeof *tl);
    static unsigned char bytes[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (unsigned char)i;
        tb[i] = &bytes[i];
        tl[i] = 1;
    }
    int32_t *ma = ws_xmalloc((n_merges + 1) * sizeof *ma), *mb = ws_xmalloc((n_merges + 1) * sizeof *mb);
    size_t done = 0;
    /* pair counts in an open-addressing table keyed by (a, b) */
    size_t cap = 1;
    while (cap < total * 2 + 64)
        cap <<= 1;
    uint64_t *keys = ws_xmalloc(cap * sizeof *keys);
    uint32_t *cnt = ws_xmalloc(cap * sizeof *cnt);
    for (; done < n_merges; done++) {
        memset(keys, 0xff, cap * sizeof *keys);
        uint64_t best = UINT64_MAX;
        uint32_t best_n = 1;
        for (size_t i = 0; i + 1 < n; i++) {
            if (seq[i] < 0 || seq[i + 1] < 0)
                continue;
            uint64_t k = (uint64_t)(uint32_t)seq[i] << 32 | (uint32_t)seq[i + 1];
            size_t h = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
            while (keys[h] != UINT64_MAX && keys[h] != k)
                h = (h + 1) & (cap - 1);
            if (keys[h] == UINT64_MAX) {
                keys[h] = k;
                cnt[h] = 0;
            }
            uint32_t c = ++cnt[h];
            if (c > best_n || (c == best_n && best != UINT64_MAX && k < best))
                best = k, best_n = c;
        }
        if (best == UINT64_MAX)
            break;
        int32_t a = (int32_t)(best >> 32), b = (int32_t)(best & 0xffffffffu),
                id = (int32_t)(CLONE_VOCAB + done);
        ma[done] = a;
        mb[done] = b;
        tl[id] = tl[a] + tl[b];
        tb[id] = ws_xmalloc(tl[id]);
        memcpy(tb[id], tb[a], tl[a]);
        memcpy(tb[id] + tl[a], tb[b], tl[b]);
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && seq[i] == a && seq[i + 1] == b) {
                seq[w++] = id;
                i++;
            } else {
                seq[w++] = seq[i];
            }
        }
        n = w;
    }
    int rc = write_tokenizer(path, (const unsigned char *const *)tb, tl, ma, mb, done, err);
    for (size_t k = CLONE_VOCAB; k < CLONE_VOCAB + done; k++)
        free(tb[k]);
    free(tb);
    free(tl);
    free(ma);
    free(mb);
    free(keys);
    free(cnt);
    free(seq);
    return rc;
}

/* ---- turn format ---- */
static int encode_into(const ws_tokenizer *tok, const char *s, int32_t *out, int cap, ws_error *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = ws_tokenizer_encode(tok, s, strlen(s), false, &ids, &n, err);
    if (rc)
        return rc;
    if (n > (size_t)cap) {
        free(ids);
        return ws_error_set(err, WS_EUNSUPPORTED, "turn prefix \"%s\" takes too many tokens", s);
    }
    memcpy(out, ids, n * sizeof *ids);
    free(ids);
    return (int)n;
}

int ws__clone_fmt_init(clone_fmt *f, const ws_tokenizer *tok, ws_error *err)
{
    memset(f, 0, sizeof *f);
    if (!tok) {
        f->bytes = true;
        f->me[0] = CLONE_TOK_ME;
        f->other[0] = CLONE_TOK_OTHER;
        f->n_me = f->n_other = 1;
        f->end = CLONE_TOK_END;
        return 0;
    }
    f->tok = tok;
    /* A model of our own byte vocabulary used as a base keeps its turn tokens. */
    int32_t me = ws_tokenizer_token_id(tok, "<|me|>"), other = ws_tokenizer_token_id(tok, "<|other|>");
    int32_t eos = ws_tokenizer_eos_id(tok);
    if (me >= 0 && other >= 0 && eos >= 0) {
        f->me[0] = me;
        f->other[0] = other;
        f->n_me = f->n_other = 1;
        f->end = eos;
        return 0;
    }
    int n = encode_into(tok, "\nme: ", f->me, 16, err);
    if (n < 0)
        return n;
    f->n_me = n;
    n = encode_into(tok, "\nthem: ", f->other, 16, err);
    if (n < 0)
        return n;
    f->n_other = n;
    if (eos >= 0) {
        f->end = eos;
    } else {
        int32_t nl[16];
        n = encode_into(tok, "\n", nl, 16, err);
        if (n < 0)
            return n;
        if (n != 1)
            return ws_error_set(err, WS_EUNSUPPORTED, "the base model's tokenizer has no end-of-text token");
        f->end = nl[0];
    }
    return 0;
}

/* Largest cut <= max at a UTF-8 boundary (from the front) or smallest start (tail). */
static void cut_utf8(const char *s, size_t n, size_t max, bool tail, size_t *start, size_t *len)
{
    if (n <= max) {
        *start = 0;
        *len = n;
        return;
    }
    if (tail) {
        size_t st = n - max;
        while (st < n && ((unsigned char)s[st] & 0xC0) == 0x80)
            st++;
        *start = st;
        *len = n - st;
    } else {
        size_t l = max;
        while (l > 0 && ((unsigned char)s[l] & 0xC0) == 0x80)
            l--;
        *start = 0;
        *len = l;
    }
}

size_t ws__clone_fmt_text(const clone_fmt *f, const char *text, size_t max_bytes, bool tail, ibuf *out)
{
    size_t n = strlen(text), st, len;
    cut_utf8(text, n, max_bytes, tail, &st, &len);
    if (f->bytes) {
        for (size_t i = 0; i < len; i++)
            ws__clone_ibuf_push(out, (unsigned char)text[st + i]);
        return len;
    }
    /* encoded in pieces cut inside every "<|", so text can never spell a special token */
    size_t total = 0;
    const char *p = text + st, *end = text + st + len;
    while (p < end) {
        const char *q = p;
        while (q + 1 < end && !(q[0] == '<' && q[1] == '|'))
            q++;
        q = q + 1 < end ? q + 1 : end;
        int32_t *ids = NULL;
        size_t k = 0;
        if (ws_tokenizer_encode(f->tok, p, (size_t)(q - p), false, &ids, &k, NULL))
            return total;
        for (size_t i = 0; i < k; i++)
            ws__clone_ibuf_push(out, ids[i]);
        free(ids);
        total += k;
        p = q;
    }
    return total;
}

size_t ws__clone_fmt_turn(const clone_fmt *f, bool me, const char *text, size_t max_bytes, bool tail,
                          ibuf *out)
{
    const int32_t *p = me ? f->me : f->other;
    int np = me ? f->n_me : f->n_other;
    for (int i = 0; i < np; i++)
        ws__clone_ibuf_push(out, p[i]);
    size_t at = out->n;
    ws__clone_fmt_text(f, text, max_bytes, tail, out);
    ws__clone_ibuf_push(out, f->end);
    return at;
}

/* ---- per-reply style features ---- */
void ws__clone_style_feats(const char *s, double out[CLONE_SF_N])
{
    size_t n = strlen(s), i = 0, chars = 0;
    int upper = 0, lower = 0, first_case = 0, emoji = 0, caps_word = 0, word_up = 0, word_lo = 0;
    bool excl2 = false, quest = false, comma = false, lines = false;
    uint32_t last_cp = 0, prev_cp = 0;
    while (i < n) {
        size_t e = ws_emoji_at(s, n, i);
        if (e) {
            emoji++;
            i += e;
            chars++;
            prev_cp = last_cp;
            last_cp = 0x1F600;
            continue;
        }
        uint32_t cp = ws_utf8_next(s, n, &i);
        chars++;
        int c = ws_cp_case(cp);
        if (c > 0)
            upper++, word_up++;
        else if (c < 0)
            lower++, word_lo++;
        if (c && !first_case)
            first_case = c;
        if (!ws_cp_is_alnum(cp)) {
            if (word_up >= 2 && word_lo == 0)
                caps_word = 1;
            word_up = word_lo = 0;
        }
        if (cp == '!' && last_cp == '!')
            excl2 = true;
        if (cp == '?')
            quest = true;
        if (cp == ',')
            comma = true;
        if (cp == '\n')
            lines = true;
        if (!ws_cp_is_space(cp)) {
            prev_cp = last_cp;
            last_cp = cp;
        }
    }
    if (word_up >= 2 && word_lo == 0)
        caps_word = 1;
    (void)prev_cp;
    out[0] = (lower > 0 && upper == 0) ? 1 : 0;
    out[1] = first_case > 0 ? 1 : 0;
    out[2] = last_cp == '.' ? 1 : 0;
    out[3] = emoji ? 1 : 0;
    out[4] = excl2 ? 1 : 0;
    out[5] = quest ? 1 : 0;
    out[6] = caps_word ? 1 : 0;
    out[7] = chars > 60 ? 1 : 0;
    out[8] = comma ? 1 : 0;
    out[9] = lines ? 1 : 0;
}

void ws__clone_style_rates(const char *const *texts, size_t n, double rates[CLONE_SF_N])
{
    double f[CLONE_SF_N];
    for (int k = 0; k < CLONE_SF_N; k++)
        rates[k] = 0;
    for (size_t i = 0; i < n; i++) {
        ws__clone_style_feats(texts[i], f);
        for (int k = 0; k < CLONE_SF_N; k++)
            rates[k] += f[k];
    }
    for (int k = 0; k < CLONE_SF_N; k++)
        rates[k] = n ? rates[k] / (double)n : 0.5;
}

double ws__clone_style_fit(const char *s, const double rates[CLONE_SF_N])
{
    double f[CLONE_SF_N], sum = 0;
    ws__clone_style_feats(s, f);
    for (int k = 0; k < CLONE_SF_N; k++) {
        double p = f[k] > 0.5 ? rates[k] : 1 - rates[k];
        sum += log(p < 0.02 ? 0.02 : p);
    }
    return exp(sum / CLONE_SF_N);
}

char *ws__clone_in_their_case(const ws_clone *c, char *text)
{
    if (!c->lower_case || !text)
        return text;
    ws_buf b = WS_BUF_INIT;
    ws_text_lower_capitalised(text, strlen(text), &b);
    free(text);
    return ws_buf_take(&b);
}

/* ---- echo ---- */
bool ws__clone_is_echo(const char *reply, const char *message)
{
    return ws_text_is_echo(reply, message);
}

char *ws__clone_trim(const char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    size_t st = 0;
    while (st < n && (s[st] == ' ' || s[st] == '\n' || s[st] == '\t' || s[st] == '\r'))
        st++;
    return ws_xstrndup(s + st, n - st);
}

/* ---- files ---- */

bool ws__clone_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *ws__clone_path(const char *dir, const char *name)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "%s/%s", dir, name);
    return ws_buf_take(&b);
}

void ws__clone_context_key(const char *const *texts, size_t n, ws_buf *out)
{
    size_t first = n > CLONE_CTX_TURNS ? n - CLONE_CTX_TURNS : 0;
    for (size_t i = first; i < n; i++) {
        if (i > first)
            ws_buf_putc(out, '\n');
        ws_buf_puts(out, texts[i]);
    }
    if (!out->data)
        ws_buf_puts(out, "");
}
