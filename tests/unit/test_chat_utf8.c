/* Tests of the reader's UTF-8 validation (src/core/utf8_check.c): the AVX2 and AVX-512BW
 * versions must give exactly the scalar answer (the longest valid prefix) on random and
 * adversarial input (buffers of several 1 KiB runs too), and the scalar one the answer of a
 * plain decoder; the reader must count
 * and replace bad bytes the same wherever its 1 MiB window boundary falls. */
#include "harness.h"

#include "chat/chat.h"
#include "chat/chat_int.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/utf8.h"

/* The plain definition: decode sequence by sequence, stop at the first bad one. */
static size_t reference_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0, bad;
    while (i < n) {
        size_t k = ws_utf8_seq(s + i, n - i, &bad);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

static int impls_checked;

/* Every implementation this CPU has agrees with the reference on s[0..n). */
static long lines_checked; /* calls that ran ws_utf8_valid_prefix_lines */

static bool all_agree(const unsigned char *s, size_t n)
{
    size_t want = reference_prefix(s, n);
    bool ok = ws_utf8_valid_prefix((const char *)s, n) == want;
    for (int impl = WS_UTF8_SCALAR; impl <= WS_UTF8_AVX512; impl++) {
        size_t got;
        if (!ws_utf8_valid_prefix_with((ws_utf8_impl)impl, s, n, &got))
            continue;
        impls_checked++;
        if (got != want) {
            fprintf(stderr, "impl %d: prefix %zu, expected %zu (n %zu)\n", impl, got, want, n);
            ok = false;
        }
    }
    /* the fused check and line index (AVX-512BW only), on a copy with readable bytes up to the
     * next multiple of 64 */
    static unsigned char pad[8192 + 64];
    static uint64_t lf[8192 / 64 + 1];
    size_t words = (n + 63) / 64, got;
    bool any_cr = false, want_cr = false;
    if (n > 8192)
        return ok;
    memcpy(pad, s, n);
    memset(pad + n, 'x', 64);
    if (ws_utf8_valid_prefix_lines((const char *)pad, n, lf, &any_cr, &got)) {
        lines_checked++;
        bool bits_ok = true;
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = 0;
            for (int k = 0; k < 64; k++) {
                bits |= (uint64_t)(pad[w * 64 + (size_t)k] == '\n') << k;
                want_cr |= pad[w * 64 + (size_t)k] == '\r';
            }
            bits_ok = bits_ok && bits == lf[w];
        }
        if (got != want || !bits_ok || any_cr != want_cr) {
            fprintf(stderr, "lines: prefix %zu, expected %zu, bits %s, cr %d (n %zu)\n", got, want,
                    bits_ok ? "ok" : "wrong", any_cr, n);
            ok = false;
        }
    }
    return ok;
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

/* Appends one valid character: ASCII, 2, 3 or 4 bytes, edge code points included. */
static size_t put_char(unsigned char *out)
{
    static const uint32_t edges[] = {0x7F,   0x80,    0x7FF,    0x800,   0xD7FF, 0xE000, 0xFFFD,
                                     0xFFFF, 0x10000, 0x10FFFF, 0x1F602, 0xE9,   0x202F};
    uint64_t r = next_rand();
    uint32_t cp;
    switch (r % 6) {
    case 0:
    case 1: cp = 0x20 + (uint32_t)(r >> 8) % 0x5F; break;
    case 2: cp = 0x80 + (uint32_t)(r >> 8) % 0x780; break;
    case 3:
        cp = 0x800 + (uint32_t)(r >> 8) % 0xF800;
        if (cp >= 0xD800 && cp < 0xE000)
            cp -= 0x800;
        break;
    case 4: cp = 0x10000 + (uint32_t)(r >> 8) % 0x100000; break;
    default: cp = edges[(r >> 8) % (sizeof edges / sizeof edges[0])]; break;
    }
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Fills out with valid text of about len bytes (more ASCII when ascii is set); returns its length. */
static size_t valid_text(unsigned char *out, size_t len, bool ascii)
{
    size_t n = 0;
    while (n + 4 <= len)
        n += ascii && next_rand() % 8 ? (out[n] = (unsigned char)('a' + next_rand() % 26), 1)
                                      : put_char(out + n);
    return n;
}

static void random_buffers_agree(void)
{
    unsigned char buf[600];
    int bad = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = next_rand() % sizeof buf;
        size_t n = valid_text(buf, len, round & 1);
        /* sometimes break it: a random byte, or random bytes everywhere */
        uint64_t how = next_rand() % 4;
        if (how == 1 && n)
            buf[next_rand() % n] = (unsigned char)next_rand();
        else if (how == 2) {
            for (size_t i = 0; i < n; i++)
                if (next_rand() % 64 == 0)
                    buf[i] = (unsigned char)(0x80 + next_rand() % 0x80);
        } else if (how == 3 && n > 1)
            n -= 1 + next_rand() % (n < 3 ? n - 1 : 3); /* maybe a cut character */
        bad += !all_agree(buf, n);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(impls_checked > 0);
    /* the fused version exists only with AVX-512BW */
    CHECK(lines_checked > 0 || ws_utf8_impl_used() != WS_UTF8_AVX512);
}

/* Buffers of several 1 KiB runs (the vector versions test a run of 16 blocks at once, then
 * block by block after a run with an error): one bad byte, a cut character before an ASCII
 * block or a bad form near a run's or a block's edge, anywhere in up to 5 KiB. */
static void long_buffers_agree(void)
{
    static unsigned char buf[5200];
    static const unsigned char leads[] = {0xC3, 0xE2, 0xF0, 0xED, 0xF4, 0xC0, 0xFF, 0x80};
    int bad = 0;
    for (int round = 0; round < 6000; round++) {
        size_t len = 1024 + next_rand() % (sizeof buf - 1024);
        size_t n = valid_text(buf, len, round % 3 != 0);
        uint64_t how = next_rand() % 5;
        /* an edge: a run's (k * 1024) or a block's (k * 64), give or take 3 bytes */
        size_t edge = (how < 3 ? 1024 * (next_rand() % 5) : 64 * (next_rand() % 80)) + next_rand() % 7;
        edge = edge >= 3 ? edge - 3 : 0;
        if (edge >= n)
            edge = n ? n - 1 : 0;
        if (how == 1 && n)
            buf[next_rand() % n] = (unsigned char)next_rand();
        else if ((how == 2 || how == 3) && n) {
            buf[edge] = leads[next_rand() % sizeof leads]; /* then ASCII: a cut character */
            for (size_t k = edge + 1; k < n && k < edge + 70; k++)
                buf[k] = 'a';
        } else if (how == 4 && n)
            buf[edge] = (unsigned char)(0x80 + next_rand() % 0x80);
        /* line ends for the fused line index: ASCII bytes become '\n' (and '\r' in some rounds) */
        for (size_t k = 0; k < n; k++)
            if (buf[k] < 0x80 && next_rand() % 23 == 0)
                buf[k] = round % 4 == 0 && next_rand() % 3 == 0 ? '\r' : '\n';
        bad += !all_agree(buf, n);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(impls_checked > 0);
}

/* Each ill-formed shape, at every position of two 64-byte blocks and across their boundary. */
static void bad_forms_at_every_position(void)
{
    static const struct {
        const char *bytes;
        size_t len;
    } forms[] = {
        {"\x80", 1},
        {"\xBF", 1},
        {"\xC0\x80", 2},
        {"\xC1\xBF", 2},
        {"\xC2", 1},
        {"\xC2\x41", 2},
        {"\xE0\x80\x80", 3},
        {"\xE0\x9F\xBF", 3},
        {"\xED\xA0\x80", 3},
        {"\xED\xBF\xBF", 3},
        {"\xE2\x82", 2},
        {"\xE2\x41\x82", 3},
        {"\xF0\x80\x80\x80", 4},
        {"\xF0\x8F\xBF\xBF", 4},
        {"\xF4\x90\x80\x80", 4},
        {"\xF5\x80\x80\x80", 4},
        {"\xF7\xBF\xBF\xBF", 4},
        {"\xF0\x9F\x98", 3},
        {"\xF0\x9F", 2},
        {"\xF8\x88\x80\x80\x80", 5},
        {"\xFE", 1},
        {"\xFF", 1},
        {"\xE2\x82\xAC\x80", 4},
        {"\xF0\x9F\x98\x82\x80", 5},
        {"\xC3\xA9\xA9", 3},
    };
    unsigned char base[200], buf[200];
    int bad = 0;
    for (int kind = 0; kind < 3; kind++) {
        size_t n = kind == 0 ? (memset(base, 'a', sizeof base), sizeof base)
                             : valid_text(base, sizeof base, kind == 1);
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++)
            for (size_t at = 0; at + forms[f].len <= n && at < 140; at++) {
                memcpy(buf, base, n);
                memcpy(buf + at, forms[f].bytes, forms[f].len);
                bad += !all_agree(buf, n);
                bad += !all_agree(buf, at + forms[f].len); /* the form at the very end */
            }
    }
    CHECK_EQ_INT(bad, 0);
}

/* Every byte pair at the end of a block, across a block boundary and at the start. */
static void all_byte_pairs_around_block_boundaries(void)
{
    static const size_t where[] = {0, 62, 63, 64};
    unsigned char buf[130];
    int bad = 0;
    for (size_t w = 0; w < sizeof where / sizeof where[0]; w++)
        for (unsigned a = 0; a < 256; a++)
            for (unsigned b = 0; b < 256; b++) {
                memset(buf, 'a', sizeof buf);
                buf[where[w]] = (unsigned char)a;
                buf[where[w] + 1] = (unsigned char)b;
                bad += !all_agree(buf, sizeof buf);
            }
    CHECK_EQ_INT(bad, 0);
}

/* 3- and 4-byte shapes: every lead from E0, edge second bytes, good and bad later bytes. */
static void long_forms_around_block_boundaries(void)
{
    static const unsigned char second[] = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF0};
    static const unsigned char later[] = {0x41, 0x80, 0xBF, 0xC2, 0xF0};
    unsigned char buf[140];
    int bad = 0;
    for (size_t at = 60; at <= 64; at++)
        for (unsigned lead = 0xE0; lead <= 0xFF; lead++)
            for (size_t i = 0; i < sizeof second; i++)
                for (size_t j = 0; j < sizeof later; j++)
                    for (size_t k = 0; k < sizeof later; k++) {
                        memset(buf, 'a', sizeof buf);
                        buf[at] = (unsigned char)lead;
                        buf[at + 1] = second[i];
                        buf[at + 2] = later[j];
                        buf[at + 3] = later[k];
                        bad += !all_agree(buf, sizeof buf);
                        bad += !all_agree(buf, at + 3); /* cut at the end */
                        bad += !all_agree(buf, 128);
                    }
    CHECK_EQ_INT(bad, 0);
}

/* Valid text cut at every length, so the last character is whole or truncated. */
static void truncated_tails(void)
{
    unsigned char buf[300];
    int bad = 0;
    for (int round = 0; round < 200; round++) {
        size_t n = valid_text(buf, sizeof buf, false);
        for (size_t cut = 0; cut <= n; cut++)
            bad += !all_agree(buf, cut);
    }
    CHECK_EQ_INT(bad, 0);
}

/* An export with one character (valid, or cut short) sitting on the reader's 1 MiB window
 * boundary: messages, replacement and count are what a small export gives. */
static void reader_window_boundary(void)
{
    static const char *const pieces[] = {"\xF0\x9F\x98\x82", "\xE2\x82\xAC", "\xC3\xA9",
                                         "\xF0\x9F\x98",     "\xED\xA0\x80", "\xFF"};
    const size_t window = 1u << 20;
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++)
        for (size_t back = 1; back <= 4; back++) {
            ws_buf b = WS_BUF_INIT;
            ws_buf_puts(&b, "13/01/2024, 10:00 - A: hi\n13/01/2024, 10:01 - B: ");
            while (b.len < window - back)
                ws_buf_putc(&b, 'x');
            size_t at = b.len;
            ws_buf_puts(&b, pieces[p]);
            ws_buf_puts(&b, "y\n13/01/2024, 10:02 - A: end\n");
            ws_chat_reader *r = NULL;
            ws_error err = {0};
            CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, NULL, &r, &err), 0);
            ws_message m;
            int count = 0;
            bool body_ok = true;
            while (r && ws_chat_next(r, &m, &err) == 1) {
                if (++count == 2) {
                    /* the expected body: the piece kept when valid, else replaced */
                    size_t valid = reference_prefix((const unsigned char *)pieces[p], strlen(pieces[p]));
                    size_t off = at - (size_t)(strstr(b.data, "B: ") + 3 - b.data);
                    if (valid == strlen(pieces[p]))
                        body_ok =
                            m.text_len == off + valid + 1 && memcmp(m.text + off, pieces[p], valid) == 0;
                    else
                        body_ok =
                            memcmp(m.text + off, "\xEF\xBF\xBD", 3) == 0 && m.text[m.text_len - 1] == 'y';
                }
            }
            CHECK_EQ_INT(count, 3);
            CHECK(body_ok);
            size_t valid = reference_prefix((const unsigned char *)pieces[p], strlen(pieces[p]));
            uint64_t want = 0;
            for (size_t i = 0, bad; i < strlen(pieces[p]);) { /* maximal subparts, as the reader counts */
                size_t k = ws_utf8_seq((const unsigned char *)pieces[p] + i, strlen(pieces[p]) - i, &bad);
                want += !k;
                i += k ? k : bad;
            }
            CHECK(valid == strlen(pieces[p]) ? want == 0 : want > 0);
            if (r)
                CHECK_EQ_INT(ws_chat_invalid_utf8(r), want);
            ws_chat_close(r);
            ws_buf_free(&b);
        }
}

WS_TEST_MAIN(T(random_buffers_agree), T(long_buffers_agree), T(bad_forms_at_every_position),
             T(all_byte_pairs_around_block_boundaries), T(long_forms_around_block_boundaries),
             T(truncated_tails), T(reader_window_boundary))
