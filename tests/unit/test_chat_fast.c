/* Tests of the reader's fast paths. The header fast path (ws__chat_template_fast, header.c):
 * on every line it accepts, its time must be the general path's (template match, then
 * ws__chat_resolve), and it must accept every valid line of the remembered date, for 24h and
 * 12h layouts, 1- and 2-digit hours and every hour, minute and second, valid or not. And a
 * range reader, which reads only a little past its end: two ranges split at any line start
 * give the messages of the whole, long messages and lines across the end included. And the
 * newline index: every implementation (portable, AVX2, AVX-512BW) gives the byte loop's bits.
 * A reader moved to another range (ws_chat_set_range) reads it as a fresh one; the reader's
 * memo of classified bodies gives ws__chat_classify's answers. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

#include "chat/chat.h"
#include "chat/chat_int.h"
#include "chat/synth.h"
#include "core/buf.h"
#include "core/utf8.h"

/* Each layout as a printf format of day, month, hour, minute (and second, marker). */
static const char *layouts[] = {
    "%02d/%02d/2021, %02d:%02d - Ana: hi",     "[%02d/%02d/2021, %02d:%02d:%02d] Ana: hi",
    "%d/%d/21, %d:%02d %s - Ana: hi",          "[%02d.%02d.21, %02d:%02d:%02d %s] Ana: hi",
    "%02d-%02d-2021 %d:%02d - Ana: hi x long", "%02d/%02d/2021, %d:%02d %s - Ana: hi",
};

static int format_line(char *out, size_t cap, int layout, int day, int month, int hour, int minute,
                       int second, const char *marker)
{
    switch (layout) {
    case 0: return snprintf(out, cap, layouts[0], day, month, hour, minute);
    case 1: return snprintf(out, cap, layouts[1], day, month, hour, minute, second);
    case 2: return snprintf(out, cap, layouts[2], month, day, hour, minute, marker);
    case 3: return snprintf(out, cap, layouts[3], day, month, hour, minute, second, marker);
    case 4: return snprintf(out, cap, layouts[4], day, month, hour, minute);
    default: return snprintf(out, cap, layouts[5], day, month, hour, minute, marker);
    }
}

static bool same_time(const ws_datetime *a, const ws_datetime *b)
{
    return a->year == b->year && a->month == b->month && a->day == b->day && a->hour == b->hour &&
           a->minute == b->minute && a->second == b->second;
}

static void fast_path_agrees_with_general_path(void)
{
#if defined(WS_CHAT_HAVE_MATCH_AVX2)
    if (!ws_cpu_avx2()) {
        CHECK(true); /* the fast path is never taken without AVX2: nothing to compare */
        return;
    }
    const char *markers[] = {"AM", "PM", "a.m.", "p.m."};
    long fast = 0, compared = 0;
    bool ok = true;
    for (int layout = 0; layout < 6; layout++)
        for (int mk = 0; mk < 4; mk++) {
            /* a template and its remembered date from a first valid line */
            _Alignas(32) char line[128] = {0}, first[128] = {0};
            int n = format_line(first, sizeof first, layout, 13, 5, 9, 30, 15, markers[mk]);
            chat_header h;
            chat_template t;
            ws_datetime ts;
            ws_date_order order = layout == 2 ? WS_DATE_MDY : WS_DATE_DMY;
            if (!ws__chat_parse_header(first, (size_t)n, &h) || !ws__chat_template_make(first, &h, &t) ||
                !t.avx2_32 || !ws__chat_resolve(&h, order, &ts))
                continue;
            ws__chat_template_remember_date(&t, first, sizeof first, &ts);
            for (int hour = 0; hour < 100; hour++)
                for (int minute = 0; minute < 100; minute += 7)
                    for (int second = 0; second < 100; second += 29) {
                        memset(line, 0, sizeof line);
                        n = format_line(line, sizeof line, layout, 13, 5, hour, minute, second, markers[mk]);
                        ws_datetime a, b;
                        bool f = ws__chat_template_fast(&t, line, (size_t)n, sizeof line, &a);
                        bool g = ws__chat_template_match(&t, line, (size_t)n, sizeof line, &h) &&
                                 ws__chat_resolve(&h, order, &b);
                        compared++;
                        fast += f;
                        if (f != g || (f && !same_time(&a, &b))) {
                            fprintf(stderr, "fast %d general %d on '%s'\n", f, g, line);
                            ok = false;
                        }
                    }
        }
    CHECK(ok);
    CHECK(compared > 10000);
    CHECK(fast > 1000);
#else
    CHECK(true); /* no AVX2 fast path on this platform */
#endif
}

/* Messages of text[0..n) in [start, end) (0 = to the end), into a checksum and a count. */
static int read_range(const char *text, size_t n, uint64_t start, uint64_t end, uint64_t *sum,
                      uint64_t *count)
{
    ws_chat_options opt = {.date_order = WS_DATE_DMY, .range_start = start, .range_end = end};
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    int rc = ws_chat_open_memory(text, n, &opt, &r, &err);
    ws_message m;
    if (rc)
        return rc;
    while ((rc = ws_chat_next(r, &m, &err)) == 1) {
        ws_chat_checksum_add(sum, &m);
        (*count)++;
    }
    ws_chat_close(r);
    return rc;
}

static void ranges_split_anywhere_give_the_whole(void)
{
    /* ordinary messages, then messages with long lines and many lines around the cuts */
    ws_chat_synth s;
    ws_chat_synth_init(&s, 7);
    ws_buf b = WS_BUF_INIT;
    uint64_t ignored = 0;
    for (int i = 0; i < 3000; i++)
        ws_chat_synth_next(&s, &b, &ignored);
    for (int i = 0; i < 40; i++) {
        ws_buf_printf(&b, "02/03/2020, 10:%02d - Ana: start %d\n", i, i);
        for (int k = 0; k < i % 5; k++) {
            for (int j = 0; j < 1500 * (k + 1); j++)
                ws_buf_putc(&b, (char)('a' + (i + j) % 26));
            ws_buf_puts(&b, "\n");
        }
        if (i % 7 == 0)
            ws_buf_puts(&b, "03/03/2020 not a header of this layout\n");
    }
    for (int i = 0; i < 3000; i++)
        ws_chat_synth_next(&s, &b, &ignored);
    uint64_t whole = 1469598103934665603ull, whole_n = 0;
    CHECK_EQ_INT(read_range(b.data, b.len, 0, 0, &whole, &whole_n), 0);
    CHECK(whole_n > 6000);
    bool ok = true;
    int cuts = 0;
    /* every line start in the long-message stretch, and every 97th elsewhere */
    for (size_t at = 1, line = 0; at < b.len; at++) {
        if (b.data[at - 1] != '\n')
            continue;
        line++;
        bool long_part = at > b.len / 2 - 80000 && at < b.len / 2 + 80000;
        if (!long_part && line % 199)
            continue;
        uint64_t sum = 1469598103934665603ull, n = 0;
        int rc = read_range(b.data, b.len, 0, at, &sum, &n);
        rc = rc ? rc : read_range(b.data, b.len, at, 0, &sum, &n);
        cuts++;
        if (rc || sum != whole || n != whole_n) {
            fprintf(stderr, "split at %zu: rc %d, %llu messages, expected %llu\n", at, rc,
                    (unsigned long long)n, (unsigned long long)whole_n);
            ok = false;
            break;
        }
    }
    CHECK(ok);
    CHECK(cuts > 100);
    ws_buf_free(&b);
}

/* Per part: messages, checksum, invalid UTF-8 and skipped lines. */
typedef struct part_result {
    uint64_t sum, count, invalid, skipped;
    int rc;
} part_result;

static void drain(ws_chat_reader *r, part_result *p)
{
    ws_message m;
    ws_error err = {0};
    p->sum = 1469598103934665603ull;
    p->count = 0;
    while ((p->rc = ws_chat_next(r, &m, &err)) == 1) {
        ws_chat_checksum_add(&p->sum, &m);
        p->count++;
    }
    p->invalid = ws_chat_invalid_utf8(r);
    p->skipped = ws_chat_lines_skipped(r);
}

/* One reader moved over the parts of an export with ws_chat_set_range (in an order that
 * jumps back and forth, as workers take parts) reads each part as a fresh reader does:
 * messages, bad UTF-8 counts, skipped lines; nothing of the part before leaks in. */
static void set_range_reads_as_a_fresh_reader(void)
{
    ws_chat_synth s;
    ws_chat_synth_init(&s, 11);
    ws_buf b = WS_BUF_INIT;
    uint64_t ignored = 0;
    ws_buf_puts(&b, "a line before any header\n");
    for (int i = 0; i < 4000; i++) {
        ws_chat_synth_next(&s, &b, &ignored);
        if (i % 301 == 0)
            ws_buf_puts(&b, "bad \xC3\x28 byte\n"); /* continues a message, counted as bad UTF-8 */
        if (i % 977 == 0)
            for (int j = 0; j < 3000; j++)
                ws_buf_putc(&b, j % 80 == 79 ? '\n' : 'x');
    }
    enum { PARTS = 9 };
    uint64_t cut[PARTS + 1] = {0};
    for (int k = 1; k < PARTS; k++) {
        size_t at = b.len / PARTS * (size_t)k;
        while (b.data[at - 1] != '\n')
            at++;
        cut[k] = at;
    }
    part_result fresh[PARTS], reused[PARTS];
    for (int k = 0; k < PARTS; k++) {
        ws_chat_options opt = {.date_order = WS_DATE_DMY, .range_start = cut[k], .range_end = cut[k + 1]};
        ws_chat_reader *r = NULL;
        ws_error err = {0};
        CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &opt, &r, &err), 0);
        drain(r, &fresh[k]);
        ws_chat_close(r);
    }
    static const int order[PARTS] = {4, 0, 8, 1, 7, 2, 6, 3, 5};
    ws_chat_options opt = {.date_order = WS_DATE_DMY};
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &opt, &r, &err), 0);
    part_result whole;
    drain(r, &whole); /* the whole first: every later part starts from a used reader */
    for (int i = 0; i < PARTS; i++) {
        int k = order[i];
        CHECK_EQ_INT(ws_chat_set_range(r, cut[k], cut[k + 1], &err), 0);
        drain(r, &reused[k]);
    }
    ws_chat_close(r);
    bool ok = true;
    uint64_t total = 0, bad = 0;
    for (int k = 0; k < PARTS; k++) {
        ok = ok && fresh[k].rc == 0 && reused[k].rc == 0 && fresh[k].sum == reused[k].sum &&
             fresh[k].count == reused[k].count && fresh[k].invalid == reused[k].invalid &&
             fresh[k].skipped == reused[k].skipped;
        total += reused[k].count;
        bad += reused[k].invalid;
    }
    CHECK(ok);
    CHECK(total == whole.count);
    CHECK(bad == whole.invalid && bad >= 13);
    CHECK(reused[0].skipped == 1);
    ws_buf_free(&b);
}

/* The reader remembers the kinds of bodies it classified (placeholders repeat): bodies that
 * share a memo slot (same length and last byte), placeholders and near misses alternating,
 * must still get ws__chat_classify's answer each time. */
static void repeated_bodies_keep_their_kind(void)
{
    static const char *bodies[] = {
        "<Media omitted>",
        "<Media omitter>",
        "<MEDIA OMITTED>",
        "<Media omitted> ",
        "This message was deleted",
        "This message was deletes",
        "This message was deleteD",
        "image omitted",
        "image omitteD.",
        "video omitted",
        "hello <This message was edited>",
        "hello <This message was editex>",
        "caf\xC3\xA9",
        "caf\xC3\x89",
        "ok \xF0\x9F\x91\x8D",
        "You deleted this message",
        "You deleted this messagf",
        "x",
        "y",
    };
    enum { N = sizeof bodies / sizeof bodies[0] };
    ws_buf b = WS_BUF_INIT;
    unsigned seed = 5;
    int want[3000];
    for (int i = 0; i < 3000; i++) {
        want[i] = rand_r(&seed) % N;
        ws_buf_printf(&b, "02/03/2020, %02d:%02d - Ana: %s\n", i / 60 % 24, i % 60, bodies[want[i]]);
    }
    ws_chat_options opt = {.date_order = WS_DATE_DMY};
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &opt, &r, &err), 0);
    ws_message m;
    int i = 0, rc, kinds[4] = {0};
    bool ok = true;
    while ((rc = ws_chat_next(r, &m, &err)) == 1 && i < 3000) {
        bool edited;
        const char *body = bodies[want[i++]];
        ws_msg_kind k = ws__chat_classify(body, strlen(body), NULL, &edited);
        kinds[k]++;
        if (m.kind != k || m.edited != edited || strcmp(m.text, body) != 0) {
            fprintf(stderr, "message %d '%s': kind %d edited %d, expected %d %d\n", i, body, m.kind, m.edited,
                    k, edited);
            ok = false;
        }
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(i, 3000);
    CHECK(ok);
    CHECK(kinds[WS_MSG_MEDIA] > 500 && kinds[WS_MSG_DELETED] > 300 && kinds[WS_MSG_TEXT] > 1000);
    ws_chat_close(r);
    ws_buf_free(&b);
}

/* Continuation lines after a lone '\n' join their message in the window, the others (CRLF,
 * a lone CR, a repaired line) by copy: the texts are the same either way, and the message cap
 * holds at its exact size. */
static void continuation_lines_join_alike(void)
{
    const char *text = "02/03/2020, 10:00 - Ana: one\ntwo\nthree\n"
                       "02/03/2020, 10:01 - Bob: crlf\r\nnext\r\n"
                       "02/03/2020, 10:02 - Ana: mixed\nlf\r\ncr\rend\n"
                       "02/03/2020, 10:03 - Bob: bad\n\xC3(\nafter\n"
                       "02/03/2020, 10:04 - Ana: last\n\n";
    static const char *want[] = {"one\ntwo\nthree", "crlf\nnext", "mixed\nlf\ncr\nend",
                                 "bad\n\xEF\xBF\xBD(\nafter", "last\n"};
    ws_chat_options opt = {.date_order = WS_DATE_DMY};
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    ws_message m;
    int n = 0, rc;
    CHECK_EQ_INT(ws_chat_open_memory(text, strlen(text), &opt, &r, &err), 0);
    bool ok = true;
    while ((rc = ws_chat_next(r, &m, &err)) == 1) {
        ok = ok && n < 5 && strcmp(m.text, want[n]) == 0 && m.text_len == strlen(want[n]) &&
             m.text[m.text_len] == '\0' && m.author[m.author_len] == '\0';
        n++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, 5);
    CHECK(ok);
    ws_chat_close(r);
    /* the cap counts "author: text" with its joined lines: 100 bytes pass, 101 do not */
    for (int extra = 0; extra <= 1; extra++) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_puts(&b, "02/03/2020, 10:00 - Ana: ");
        for (int i = 0; i < 40; i++)
            ws_buf_putc(&b, 'x');
        ws_buf_putc(&b, '\n');
        for (int i = 0; i < 54 + extra; i++)
            ws_buf_putc(&b, 'y');
        ws_buf_puts(&b, "\n02/03/2020, 10:01 - Bob: end\n");
        ws_chat_options capped = {.date_order = WS_DATE_DMY, .max_message_bytes = 100};
        CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &capped, &r, &err), 0);
        rc = ws_chat_next(r, &m, &err);
        if (extra) {
            CHECK_EQ_INT(rc, WS_ETOOBIG);
        } else {
            CHECK_EQ_INT(rc, 1);
            CHECK_EQ_INT(m.text_len, 95);
        }
        ws_chat_close(r);
        ws_buf_free(&b);
    }
}

static void newline_bits_agree(void)
{
    enum { WORDS = 40 };
    static unsigned char b[WORDS * 64];
    unsigned seed = 99;
    bool ok = true;
    int impls = 0;
    for (int round = 0; round < 400; round++) {
        /* densities from no newline at all to every byte one; '\r' in some rounds only */
        unsigned density = (unsigned)round % 9;
        for (size_t i = 0; i < sizeof b; i++) {
            unsigned x = (unsigned)rand_r(&seed);
            b[i] = (unsigned char)(x & 0xFF);
            if (density && x % (1u << density) == 0)
                b[i] = '\n';
            else if (b[i] == '\r' && round % 3)
                b[i] = 'r';
        }
        size_t words = 1 + (size_t)round % WORDS;
        uint64_t want[WORDS] = {0};
        bool want_cr = false;
        for (size_t i = 0; i < words * 64; i++) {
            want[i / 64] |= (uint64_t)(b[i] == '\n') << (i % 64);
            want_cr |= b[i] == '\r';
        }
        for (int impl = WS_UTF8_SCALAR; impl <= WS_UTF8_AVX512; impl++) {
            uint64_t got[WORDS + 1];
            got[words] = 0x5A5A5A5A;
            bool cr = !want_cr;
            if (!ws__chat_newline_bits_with((ws_utf8_impl)impl, b, words, got, &cr))
                continue;
            impls++;
            if (cr != want_cr || memcmp(got, want, words * sizeof *got) != 0 || got[words] != 0x5A5A5A5A) {
                fprintf(stderr, "impl %d differs (round %d, %zu words)\n", impl, round, words);
                ok = false;
            }
        }
    }
    CHECK(ok);
    CHECK(impls >= 400); /* the portable one at least, every round */
    printf("newline index implementations compared: %d runs\n", impls);
}

WS_TEST_MAIN(T(fast_path_agrees_with_general_path), T(ranges_split_anywhere_give_the_whole),
             T(set_range_reads_as_a_fresh_reader), T(repeated_bodies_keep_their_kind),
             T(continuation_lines_join_alike), T(newline_bits_agree))
