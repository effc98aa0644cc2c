/* Tests of the reader's inline "plain text" answer (ws__chat_plain_text, chat_int.h): whenever
 * it says a body is plain, ws__chat_classify must say WS_MSG_TEXT and not edited, for every
 * phrase of the table (as written, case-changed, cut, with text or emoji around it) and for
 * random bodies built from the bytes that matter (marks, quotes, '<' '>', folded letters). */
#include "harness.h"

#include <stdlib.h>

#include "chat/chat.h"
#include "chat/chat_int.h"

extern const unsigned char ws__chat_locale_tsv[];
extern const size_t ws__chat_locale_tsv_len;

static long plain_count;

/* The promise on s[0..n), with and without learned placeholders. */
static bool promise_holds(const char *s, size_t n, const chat_learned *learned)
{
    if (!ws__chat_plain_text(ws__chat_plain_filter(), s, n))
        return true;
    plain_count++;
    bool edited = true;
    ws_msg_kind k = ws__chat_classify(s, n, learned, &edited);
    if (k != WS_MSG_TEXT || edited) {
        fprintf(stderr, "plain but classified %s%s: '%.*s'\n", ws_msg_kind_name(k), edited ? " (edited)" : "",
                (int)n, s);
        return false;
    }
    return true;
}

static chat_learned some_learned(void)
{
    chat_learned l = {0};
    const char *texts[] = {"<Mídia oculta>", "<bearbeitet>"};
    for (unsigned i = 0; i < 2; i++) {
        l.len[i] = (unsigned char)strlen(texts[i]);
        memcpy(l.text[i], texts[i], l.len[i]);
        l.suffix[i] = i == 1;
    }
    l.count = 2;
    return l;
}

static bool check_all(const char *s, size_t n)
{
    chat_learned l = some_learned();
    return promise_holds(s, n, NULL) & promise_holds(s, n, &l);
}

/* Upper-cases ASCII and the 2-byte letters the table folds (the reverse of its folding, for
 * the common cases): the classifier ignores that case, so the filter must too. */
static void upper(char *s, size_t n)
{
    unsigned char *b = (unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (b[i] >= 'a' && b[i] <= 'z')
            b[i] = (unsigned char)(b[i] - 32);
        else if (b[i] == 0xC3 && i + 1 < n && b[i + 1] >= 0xA0 && b[i + 1] <= 0xBE && b[i + 1] != 0xB7)
            b[++i] -= 0x20;
        else if (b[i] == 0xD0 && i + 1 < n && b[i + 1] >= 0xB0 && b[i + 1] <= 0xBF)
            b[++i] -= 0x20;
        else if (b[i] == 0xD1 && i + 1 < n && b[i + 1] >= 0x80 && b[i + 1] <= 0x8F)
            b[i] = 0xD0, b[++i] += 0x20;
    }
}

static void table_phrases_and_variants(void)
{
    const char *t = (const char *)ws__chat_locale_tsv, *end = t + ws__chat_locale_tsv_len;
    const char *around[] = {"", "ok ", " ", ".", "…", "👍", "\xE2\x80\x8E", "x", "Média ", "(", ")", "É"};
    size_t na = sizeof around / sizeof *around;
    bool ok = true;
    long rows = 0;
    for (const char *line = t; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *stop = nl ? nl : end;
        const char *f[5] = {line};
        int k = 1;
        for (const char *p = line; p < stop && k < 5; p++)
            if (*p == '\t')
                f[k++] = p + 1;
        if (line[0] != '#' && k >= 4) {
            const char *text = f[3];
            size_t len = (size_t)((k >= 5 ? f[4] - 1 : stop) - text);
            char buf[512], up[512];
            rows++;
            for (size_t a = 0; a < na; a++)
                for (size_t b = 0; b < na; b++) {
                    size_t la = strlen(around[a]), lb = strlen(around[b]);
                    if (la + len + lb > sizeof buf)
                        continue;
                    memcpy(buf, around[a], la);
                    memcpy(buf + la, text, len);
                    memcpy(buf + la + len, around[b], lb);
                    size_t n = la + len + lb;
                    ok &= check_all(buf, n);
                    memcpy(up, buf, n);
                    upper(up, n);
                    ok &= check_all(up, n);
                    /* the phrase cut short at both ends (keeps length classes near the phrase's) */
                    if (n > 2)
                        ok &= check_all(buf + 1, n - 2);
                }
        }
        line = stop + 1;
    }
    CHECK(rows > 1000);
    CHECK(ok);
}

/* Random bodies from pieces that touch every rule of the filter. */
static void random_bodies(void)
{
    const char *pieces[] = {"a",
                            "M",
                            "m",
                            "<",
                            ">",
                            " ",
                            ".",
                            ")",
                            "(",
                            "é",
                            "É",
                            "Ω",
                            "ω",
                            "Д",
                            "д",
                            "👍",
                            "😂",
                            "فایل",
                            ":",
                            "\xE2\x80\x8E",
                            "\xE2\x80\x8F",
                            "\xEF\xBB\xBF",
                            "\xD8\x9C",
                            "\xE2\x81\xA6",
                            "o",
                            "Z",
                            "media",
                            "omitted",
                            "deleted",
                            "attached",
                            "<attached: ",
                            "file",
                            "\"",
                            "«",
                            "“",
                            "x.jpg",
                            "ــ",
                            "\xC2\xA0",
                            "1",
                            "\xC3",
                            "\x8E"};
    size_t np = sizeof pieces / sizeof *pieces;
    unsigned seed = 12345;
    bool ok = true;
    char buf[256];
    long plain_before = plain_count;
    for (int it = 0; it < 200000; it++) {
        size_t n = 0;
        int parts = 1 + (int)(rand_r(&seed) % 6);
        for (int p = 0; p < parts; p++) {
            const char *s = pieces[rand_r(&seed) % np];
            size_t l = strlen(s);
            if (n + l > sizeof buf)
                break;
            memcpy(buf + n, s, l);
            n += l;
        }
        ok &= check_all(buf, n);
    }
    CHECK(ok);
    CHECK(plain_count - plain_before > 10000); /* the filter answered for many of them */
}

/* The filter answers for the usual bodies, non-ASCII ends included (else it is no help). */
static void usual_bodies_are_plain(void)
{
    const char *plain[] = {"ok free when late", "café", "ok 👍", "👍 ok", "été là", "привет", "Ωραία!", "lol!"};
    const chat_plain_filter *f = ws__chat_plain_filter();
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        CHECK(ws__chat_plain_text(f, plain[i], strlen(plain[i])));
    const char *not_plain[] = {"<Media omitted>",
                               "This message was deleted",
                               "ok ",
                               "ok.",
                               "Messages x",
                               "\xE2\x80\x8Eimage omitted",
                               "hello <edited>",
                               "a.jpg (file attached)"};
    for (size_t i = 0; i < sizeof not_plain / sizeof *not_plain; i++)
        CHECK(!ws__chat_plain_text(f, not_plain[i], strlen(not_plain[i])));
    CHECK(!ws__chat_plain_text(f, "", 0));
}

WS_TEST_MAIN(T(table_phrases_and_variants), T(random_bodies), T(usual_bodies_are_plain))
