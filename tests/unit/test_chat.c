/* Tests of the WhatsApp export parser (src/chat): our fixtures of every export variant, the
 * shared corpus against its upstream expectations, edge cases, zips, bad input, and a
 * generated 1M-message export checked by count and checksum. */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "chat/chat.h"
#include "chat/synth.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"

/* ------------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ws_buf b = WS_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        ws_buf_append(&b, tmp, n);
    fclose(f);
    if (len)
        *len = b.len;
    return ws_buf_take(&b);
}

typedef struct parsed {
    size_t n;
    char **ts, **author, **text;
    ws_msg_kind *kind;
    bool *edited;
} parsed;

static void parsed_free(parsed *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->ts[i]);
        free(p->author[i]);
        free(p->text[i]);
    }
    free(p->ts);
    free(p->author);
    free(p->text);
    free(p->kind);
    free(p->edited);
    memset(p, 0, sizeof *p);
}

/* Parses everything from an open reader; returns the final code (0 or negative). */
static int collect(ws_chat_reader *r, parsed *p, ws_error *err)
{
    ws_message m;
    int rc;
    size_t cap = 0;
    while ((rc = ws_chat_next(r, &m, err)) == 1) {
        if (p->n == cap) {
            cap = cap ? cap * 2 : 16;
            p->ts = ws_xrealloc(p->ts, cap * sizeof *p->ts);
            p->author = ws_xrealloc(p->author, cap * sizeof *p->author);
            p->text = ws_xrealloc(p->text, cap * sizeof *p->text);
            p->kind = ws_xrealloc(p->kind, cap * sizeof *p->kind);
            p->edited = ws_xrealloc(p->edited, cap * sizeof *p->edited);
        }
        char ts[20];
        ws_datetime_format(&m.ts, ts);
        p->ts[p->n] = ws_xstrdup(ts);
        p->author[p->n] = m.author ? ws_xstrndup(m.author, m.author_len) : NULL;
        p->text[p->n] = ws_xstrndup(m.text, m.text_len);
        p->kind[p->n] = m.kind;
        p->edited[p->n] = m.edited;
        p->n++;
    }
    return rc < 0 ? rc : 0;
}

static int parse_path(const char *path, ws_date_order order, parsed *p, ws_error *err)
{
    ws_chat_options opt = {.date_order = order};
    ws_chat_reader *r = NULL;
    int rc = ws_chat_open_file(path, &opt, &r, err);
    if (rc)
        return rc;
    rc = collect(r, p, err);
    ws_chat_close(r);
    return rc;
}

static int parse_mem(const char *text, size_t len, ws_date_order order, parsed *p, ws_error *err)
{
    ws_chat_options opt = {.date_order = order};
    ws_chat_reader *r = NULL;
    int rc = ws_chat_open_memory(text, len, &opt, &r, err);
    if (rc)
        return rc;
    rc = collect(r, p, err);
    ws_chat_close(r);
    return rc;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares a parse with an expectations file (JSON Lines of ts, author, text, kind, and
 * "edited" exactly where the body ends with an edited marker). */
static void check_against_jsonl(const char *txt_path, const char *expected_path)
{
    parsed p = {0};
    ws_error err = {0};
    int rc = parse_path(txt_path, WS_DATE_AUTO, &p, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", txt_path, err.msg);
        CHECK(rc == 0);
        return;
    }
    char *exp = slurp(expected_path, NULL);
    CHECK(exp != NULL);
    size_t i = 0;
    for (char *line = exp, *nl; exp && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            nl = line + strlen(line);
        ws_json_doc *doc = NULL;
        CHECK(ws_json_parse(line, (size_t)(nl - line), &doc, &err) == 0);
        if (!doc)
            break;
        const ws_json *o = ws_json_root(doc);
        if (i >= p.n) {
            fprintf(stderr, "%s: only %zu messages parsed, expected more\n", txt_path, p.n);
            CHECK(i < p.n);
            ws_json_doc_free(doc);
            break;
        }
        const ws_json *author = ws_json_get(o, "author");
        const char *want_author = author && author->type == WS_JSON_STRING ? author->str : NULL;
        bool want_edited = ws_json_get(o, "edited") != NULL;
        if (!str_eq(p.ts[i], ws_json_get_str(o, "ts")) || !str_eq(p.author[i], want_author) ||
            !str_eq(p.text[i], ws_json_get_str(o, "text")) ||
            !str_eq(ws_msg_kind_name(p.kind[i]), ws_json_get_str(o, "kind")) || want_edited != p.edited[i]) {
            fprintf(stderr, "%s: message %zu differs:\n  got  %s | %s | %s | %s\n  want %s | %s | %s | %s\n",
                    txt_path, i, p.ts[i], p.author[i] ? p.author[i] : "(null)", p.text[i],
                    ws_msg_kind_name(p.kind[i]), ws_json_get_str(o, "ts"),
                    want_author ? want_author : "(null)", ws_json_get_str(o, "text"),
                    ws_json_get_str(o, "kind"));
            CHECK(!"message matches expectation");
        }
        ws_json_doc_free(doc);
        i++;
        if (!*nl)
            break;
    }
    if (i != p.n)
        fprintf(stderr, "%s: parsed %zu messages, expected %zu\n", txt_path, p.n, i);
    CHECK_EQ_INT(p.n, i);
    free(exp);
    parsed_free(&p);
}

/* ------------------------------------------------------------------ our fixtures */

/* Every <name>.txt of dir against its <name>.expected.jsonl; returns the count. */
static int fixtures_of(const char *dir)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return 0;
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        const char *suffix = ".expected.jsonl";
        if (n <= strlen(suffix) || strcmp(e->d_name + n - strlen(suffix), suffix))
            continue;
        char txt[512], exp[512];
        snprintf(exp, sizeof exp, "%s/%s", dir, e->d_name);
        snprintf(txt, sizeof txt, "%s/%.*s.txt", dir, (int)(n - strlen(suffix)), e->d_name);
        check_against_jsonl(txt, exp);
        files++;
    }
    closedir(d);
    return files;
}

static void every_variant_fixture_parses_exactly(void)
{
    /* the layouts, line endings and the traps of issue 14 (trap_*.txt) */
    CHECK(fixtures_of("tests/fixtures/chat") >= 24);
}

/* One export per language and platform of src/chat/locale_strings.tsv, every row of the table
 * in it (tools/make-chat-fixtures.py): placeholders, deletions, edited markers, group events. */
static void every_language_of_the_table_parses_exactly(void)
{
    CHECK(fixtures_of("tests/fixtures/chat/lang") >= 100);
}

static void corpus_with_our_expectations(void)
{
    static const char *const files[][2] = {
        {"Pustur-whatsapp-chat-parser/short-chat.txt",
         "tests/fixtures/corpus/pustur_short_chat.expected.jsonl"},
        {"emmaakachukwu-whatsapp-chat-parser-rb/sample.txt",
         "tests/fixtures/corpus/emma_sample.expected.jsonl"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/corpus/whatsapp/%s", ws_t_fixtures(), files[i][0]);
        check_against_jsonl(path, files[i][1]);
    }
}

static void corpus_empty_file_has_no_messages(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/whatsapp/Pustur-whatsapp-chat-parser/empty.txt", ws_t_fixtures());
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_chat_open_file(path, NULL, &r, &err), 0);
    if (!r)
        return;
    CHECK(ws_chat_is_empty(r));
    ws_message m;
    CHECK_EQ_INT(ws_chat_next(r, &m, &err), 0);
    ws_chat_close(r);
}

/* chat-miner semantics (SOURCE.md): newest first, system lines dropped, bodies joined with a
 * space and stripped, NBSP normalised to a space. Returns the transformed message count. */
static size_t chatminer_view(const parsed *p, bool keep_system, char ***ts, char ***author, char ***text)
{
    size_t n = 0;
    *ts = ws_xcalloc(p->n + 1, sizeof **ts);
    *author = ws_xcalloc(p->n + 1, sizeof **author);
    *text = ws_xcalloc(p->n + 1, sizeof **text);
    for (size_t k = p->n; k-- > 0;) {
        const char *a = p->author[k];
        char *body = ws_xstrdup(p->text[k]);
        char *who = a ? ws_xstrdup(a) : NULL;
        if (p->kind[k] == WS_MSG_SYSTEM) {
            size_t bl = strlen(body);
            if (bl > 2 && !strcmp(body + bl - 2, ":.")) {
                /* "John Doe:." — chat-miner's disappearing message */
                if (!keep_system) {
                    free(body);
                    continue;
                }
                who = ws_xstrndup(body, bl - 2);
                free(body);
                body = ws_xstrdup("<Disappearing Message>");
            } else if (!keep_system) {
                free(body);
                continue;
            } else {
                who = ws_xstrdup("System");
            }
        }
        ws_buf b = WS_BUF_INIT;
        for (const char *s = body; *s; s++) {
            if (*s == '\n')
                ws_buf_putc(&b, ' ');
            else if ((unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xA0) {
                ws_buf_putc(&b, ' ');
                s++;
            } else
                ws_buf_putc(&b, *s);
        }
        free(body);
        char *t = ws_buf_take(&b);
        size_t tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
            t[--tl] = '\0';
        (*ts)[n] = ws_xstrdup(p->ts[k]);
        (*author)[n] = who;
        (*text)[n] = t;
        n++;
    }
    return n;
}

static void free_view(size_t n, char **ts, char **author, char **text)
{
    for (size_t i = 0; i < n; i++) {
        free(ts[i]);
        free(author[i]);
        free(text[i]);
    }
    free(ts);
    free(author);
    free(text);
}

static void corpus_chatminer_json_targets(void)
{
    static const char *const files[] = {
        "test_[mmddyy]_24hrs.txt", "test_ddmmyy_24hrs.txt",   "test_mmddyy_24hrs.txt",
        "test_mmddyyyy_12hrs.txt", "test_yyyymmdd_24hrs.txt",
    };
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/whatsapp/joweich-chat-miner/target.json", ws_t_fixtures());
    size_t len;
    char *target = slurp(path, &len);
    CHECK(target != NULL);
    ws_json_doc *doc = NULL;
    ws_error err = {0};
    CHECK(target && ws_json_parse(target, len, &doc, &err) == 0);
    if (!doc) {
        free(target);
        return;
    }
    const ws_json *want = ws_json_root(doc);
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        snprintf(path, sizeof path, "%s/corpus/whatsapp/joweich-chat-miner/%s", ws_t_fixtures(), files[f]);
        /* the date order must come from the file itself: [mmddyy] and mmddyy hold 01/20/19 */
        parsed p = {0};
        CHECK_EQ_INT(parse_path(path, WS_DATE_AUTO, &p, &err), 0);
        char **ts, **author, **text;
        size_t n = chatminer_view(&p, false, &ts, &author, &text);
        CHECK_EQ_INT(n, want->len);
        for (size_t i = 0; i < n && i < want->len; i++) {
            const ws_json *o = ws_json_at(want, i);
            if (!str_eq(ts[i], ws_json_get_str(o, "timestamp")) ||
                !str_eq(author[i], ws_json_get_str(o, "author")) ||
                !str_eq(text[i], ws_json_get_str(o, "message"))) {
                fprintf(stderr, "%s #%zu: got %s|%s|%s want %s|%s|%s\n", files[f], i, ts[i], author[i],
                        text[i], ws_json_get_str(o, "timestamp"), ws_json_get_str(o, "author"),
                        ws_json_get_str(o, "message"));
                CHECK(!"matches chat-miner target");
            }
        }
        free_view(n, ts, author, text);
        parsed_free(&p);
    }
    ws_json_doc_free(doc);
    free(target);
}

/* Splits one CSV record (RFC 4180) from *s into fields; returns the count. */
static int csv_record(const char **s, char fields[][512], int max)
{
    int n = 0;
    const char *p = *s;
    while (*p && n < max) {
        size_t k = 0;
        if (*p == '"') {
            p++;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"')
                    p++;
                if (k < 511)
                    fields[n][k++] = *p;
                p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',' && *p != '\n') {
                if (k < 511)
                    fields[n][k++] = *p;
                p++;
            }
        }
        fields[n++][k] = '\0';
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\n')
            p++;
        break;
    }
    *s = p;
    return n;
}

static void corpus_chatminer_csv_targets(void)
{
    static const char *const names[] = {
        "test_dateformat1", "test_dateformat2", "test_dateformat3", "test_dateformat4",
        "test_dateformat5", "test_dateformat6", "test_unicode",
    };
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/corpus/whatsapp/joweich-chat-miner/history-62d255f/%s_target.csv",
                 ws_t_fixtures(), names[f]);
        char *csv = slurp(path, NULL);
        CHECK(csv != NULL);
        if (!csv)
            continue;
        snprintf(path, sizeof path, "%s/corpus/whatsapp/joweich-chat-miner/history-62d255f/%s.txt",
                 ws_t_fixtures(), names[f]);
        parsed p = {0};
        ws_error err = {0};
        CHECK_EQ_INT(parse_path(path, WS_DATE_AUTO, &p, &err), 0);
        char **ts, **author, **text;
        size_t n = chatminer_view(&p, true, &ts, &author, &text);
        const char *s = csv;
        static char fields[8][512];
        csv_record(&s, fields, 8); /* header */
        size_t i = 0;
        while (*s) {
            int nf = csv_record(&s, fields, 8);
            if (nf < 3)
                continue;
            char want_ts[32];
            snprintf(want_ts, sizeof want_ts, "%.31s", fields[0]);
            if (strlen(want_ts) > 10)
                want_ts[10] = 'T';
            if (i >= n || !str_eq(ts[i], want_ts) || !str_eq(author[i], fields[1]) ||
                !str_eq(text[i], fields[2])) {
                fprintf(stderr, "%s #%zu: got %s|%s|%s want %s|%s|%s\n", names[f], i, i < n ? ts[i] : "-",
                        i < n ? author[i] : "-", i < n ? text[i] : "-", want_ts, fields[1], fields[2]);
                CHECK(!"matches chat-miner target");
            }
            i++;
        }
        CHECK_EQ_INT(i, n);
        free_view(n, ts, author, text);
        parsed_free(&p);
        free(csv);
    }
}

static void corpus_chatminer_testlog(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus/whatsapp/joweich-chat-miner/history-a7e9d8c/target.json",
             ws_t_fixtures());
    char *target = slurp(path, NULL);
    CHECK(target != NULL);
    snprintf(path, sizeof path, "%s/corpus/whatsapp/joweich-chat-miner/history-a7e9d8c/testlog.txt",
             ws_t_fixtures());
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_path(path, WS_DATE_AUTO, &p, &err), 0);
    char **ts, **author, **text;
    size_t n = chatminer_view(&p, true, &ts, &author, &text), i = 0;
    for (char *line = target, *nl; target && *line; line = nl + 1, i++) {
        nl = strchr(line, '\n');
        if (!nl)
            nl = line + strlen(line);
        ws_json_doc *doc = NULL;
        CHECK(ws_json_parse(line, (size_t)(nl - line), &doc, &err) == 0);
        if (!doc)
            break;
        const ws_json *o = ws_json_root(doc);
        double ms = 0;
        ws_json_get_num(o, "datetime", &ms);
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want_ts[32];
        strftime(want_ts, sizeof want_ts, "%Y-%m-%dT%H:%M:%S", &tm);
        if (i >= n || !str_eq(ts[i], want_ts) || !str_eq(author[i], ws_json_get_str(o, "author")) ||
            !str_eq(text[i], ws_json_get_str(o, "message"))) {
            fprintf(stderr, "testlog #%zu: got %s|%s|%s want %s|%s|%s\n", i, i < n ? ts[i] : "-",
                    i < n ? author[i] : "-", i < n ? text[i] : "-", want_ts, ws_json_get_str(o, "author"),
                    ws_json_get_str(o, "message"));
            CHECK(!"matches chat-miner target");
        }
        ws_json_doc_free(doc);
        if (!*nl)
            break;
    }
    CHECK_EQ_INT(i + 1, n);
    free_view(n, ts, author, text);
    parsed_free(&p);
    free(target);
}

/* The phrase table is a reviewable file with a fixed shape: 5 tab-separated fields, known
 * platforms and kinds, a source on every row, and 60 languages or more, each with a media
 * placeholder and a deletion notice. */
static void phrase_table_is_well_formed(void)
{
    static const char *const kinds[] = {
        "media",         "image",   "video",       "audio",         "sticker",      "gif",
        "document",      "contact", "attached",    "file_attached", "deleted",      "deleted_you",
        "deleted_admin", "edited",  "joined_link", "subject",       "created",      "added",
        "left",          "removed", "icon",        "security_code", "disappearing", "description"};
    char *tsv = slurp("src/chat/locale_strings.tsv", NULL);
    CHECK(tsv != NULL);
    if (!tsv)
        return;
    char langs[128][16] = {{0}};
    bool has_media[128] = {0}, has_deleted[128] = {0};
    int n_langs = 0, rows = 0, bad = 0;
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *field[6] = {0};
        int k = 0;
        for (char *p = line; k < 6 && p; k++) {
            field[k] = p;
            p = strchr(p, '\t');
            if (p)
                *p++ = '\0';
        }
        rows++;
        bool kind_ok = false;
        for (size_t i = 0; k == 5 && i < sizeof kinds / sizeof kinds[0]; i++)
            kind_ok |= strcmp(field[2], kinds[i]) == 0;
        if (k != 5 || (strcmp(field[1], "android") && strcmp(field[1], "ios")) || !kind_ok || !*field[3] ||
            !*field[4] || strlen(field[0]) >= 16) {
            if (bad++ < 5)
                fprintf(stderr, "bad row %d: %s\n", rows, line);
            continue;
        }
        int l = 0;
        while (l < n_langs && strcmp(langs[l], field[0]))
            l++;
        if (l == n_langs && n_langs < 128)
            snprintf(langs[n_langs++], sizeof langs[0], "%s", field[0]);
        if (l < 128) {
            has_media[l] |= !strcmp(field[2], "media") || !strcmp(field[2], "image");
            has_deleted[l] |= !strncmp(field[2], "deleted", 7);
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(rows > 2000);
    CHECK(n_langs >= 60);
    int deleted_langs = 0;
    for (int l = 0; l < n_langs; l++) {
        if (!has_media[l])
            fprintf(stderr, "language %s has no media placeholder\n", langs[l]);
        CHECK(has_media[l]);
        deleted_langs += has_deleted[l];
    }
    CHECK(deleted_langs >= 55); /* a few sources give no deletion notice (Lao, Albanian, Telugu) */
    free(tsv);
}

/* A placeholder learned from the export and the locked layout come from the file's start, so a
 * reader of the second half agrees with one of the whole file (what --stats relies on). */
static void learned_placeholder_and_layout_hold_in_every_range(void)
{
    ws_buf b = WS_BUF_INIT;
    for (int i = 0; i < 20000; i++) {
        const char *who = i % 3 == 0 ? "Ana" : i % 3 == 1 ? "Bea" : "Omar";
        ws_buf_printf(&b, "%02d/01/2024, 10:%02d - %s: %s\n", 13 + i / 2000, i % 60, who,
                      i % 5 == 0 ? "<Aŭdvidaĵo forlasita>" : "saluton");
        if (i % 1000 == 999)
            ws_buf_puts(&b, "13/01/2024, 11:00 - Ana: quoting\n[13/01/2024, 11:00:00] Bea: an iPhone line\n");
    }
    size_t cut = b.len / 2;
    while (b.data[cut - 1] != '\n')
        cut++;
    parsed whole = {0}, part = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(b.data, b.len, WS_DATE_DMY, &whole, &err), 0);
    ws_chat_options opt = {.date_order = WS_DATE_DMY, .range_start = cut};
    ws_chat_reader *r = NULL;
    CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &opt, &r, &err), 0);
    CHECK_EQ_INT(collect(r, &part, &err), 0);
    ws_chat_close(r);
    /* 20000 messages plus the 20 "quoting" ones; the iPhone lines continue them */
    CHECK_EQ_INT(whole.n, 20020);
    size_t media = 0, multi = 0;
    for (size_t i = 0; i < whole.n; i++) {
        media += whole.kind[i] == WS_MSG_MEDIA;
        multi += strchr(whole.text[i], '\n') != NULL;
    }
    CHECK_EQ_INT(media, 4000);
    CHECK_EQ_INT(multi, 20);
    CHECK(part.n > 0 && part.n < whole.n);
    size_t off = whole.n - part.n, same = 0;
    for (size_t i = 0; i < part.n; i++)
        same += !strcmp(part.text[i], whole.text[off + i]) && part.kind[i] == whole.kind[off + i];
    CHECK_EQ_INT(same, part.n);
    parsed_free(&whole);
    parsed_free(&part);
    ws_buf_free(&b);
}

/* ------------------------------------------------------------------ edge cases */

static void date_order_evidence_and_forcing(void)
{
    /* no day above 12 anywhere and no en-US layout: D/M/Y is assumed */
    const char *ambiguous = "01/02/2024, 10:00 - A: x\n03/04/2024, 10:00 - B: y\n";
    parsed p = {0};
    ws_error err = {0};
    ws_chat_reader *r = NULL;
    CHECK_EQ_INT(ws_chat_open_memory(ambiguous, strlen(ambiguous), NULL, &r, &err), 0);
    CHECK_EQ_INT(ws_chat_date_order(r), WS_DATE_DMY);
    CHECK_EQ_INT(collect(r, &p, &err), 0);
    ws_chat_close(r);
    CHECK_EQ_STR(p.ts[0], "2024-02-01T10:00:00");
    parsed_free(&p);
    /* forced */
    CHECK_EQ_INT(parse_mem(ambiguous, strlen(ambiguous), WS_DATE_MDY, &p, &err), 0);
    CHECK_EQ_STR(p.ts[0], "2024-01-02T10:00:00");
    CHECK_EQ_STR(p.ts[1], "2024-03-04T10:00:00");
    parsed_free(&p);
    /* evidence late in the file decides for every line */
    ws_buf b = WS_BUF_INIT;
    for (int i = 0; i < 5000; i++)
        ws_buf_printf(&b, "0%d/0%d/2024, 10:%02d - A: msg %d\n", 1 + i % 9, 1 + i % 7, i % 60, i);
    ws_buf_puts(&b, "12/25/2024, 10:00 - A: christmas\n");
    CHECK_EQ_INT(parse_mem(b.data, b.len, WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_STR(p.ts[0], "2024-01-01T10:00:00");
    CHECK_EQ_STR(p.ts[1], "2024-02-02T10:01:00");
    CHECK_EQ_STR(p.ts[5000], "2024-12-25T10:00:00");
    parsed_free(&p);
    /* time running forward decides when no field is above 12 */
    ws_buf_reset(&b);
    for (int m = 1; m <= 6; m++)
        for (int d = 1; d <= 12; d++)
            ws_buf_printf(&b, "%d/%d/24, 9:00 - A: day %d\n", m, d, d);
    CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, NULL, &r, &err), 0);
    CHECK_EQ_INT(ws_chat_date_order(r), WS_DATE_MDY);
    ws_chat_close(r);
    ws_buf_free(&b);
}

static void twelve_hour_clock_edges(void)
{
    const char *text = "[13/01/2024, 12:00:00 AM] A: midnight\n"
                       "[13/01/2024, 12:59:59 AM] A: before one\n"
                       "[13/01/2024, 12:00:00 PM] A: noon\n"
                       "[13/01/2024, 11:59:59 PM] A: last second\n"
                       "13/01/2024, 1:05 pm - A: lower case\n"
                       "13/01/2024, 1:05 a.m. - A: dotted\n"
                       "13/01/2024, 1:05\xE2\x80\xAF"
                       "PM - A: narrow nbsp\n"
                       "13/01/2024, 01:05 p. m. - A: spanish\n"
                       "13/01/2024, 13:37 p.m. - A: already 24h\n";
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(text, strlen(text), WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 9);
    if (p.n == 9) {
        CHECK_EQ_STR(p.ts[0], "2024-01-13T00:00:00");
        CHECK_EQ_STR(p.ts[1], "2024-01-13T00:59:59");
        CHECK_EQ_STR(p.ts[2], "2024-01-13T12:00:00");
        CHECK_EQ_STR(p.ts[3], "2024-01-13T23:59:59");
        CHECK_EQ_STR(p.ts[4], "2024-01-13T13:05:00");
        CHECK_EQ_STR(p.ts[5], "2024-01-13T01:05:00");
        CHECK_EQ_STR(p.ts[6], "2024-01-13T13:05:00");
        CHECK_EQ_STR(p.ts[7], "2024-01-13T13:05:00");
        CHECK_EQ_STR(p.ts[8], "2024-01-13T13:37:00");
    }
    parsed_free(&p);
}

/* Lines of the file's layout on the date of the header before them take a fast path (only
 * the time is read): 12 AM/PM, an hour a 12h clock cannot have, a minute above 59, a day
 * change and back, an impossible date on repeated lines must all read as the full path reads
 * them (the last three stay in the body before them). */
static void same_day_lines_read_as_the_grammar_reads_them(void)
{
    const char *text = "1/13/24, 10:00 AM - A: first\n"
                       "1/13/24, 10:01 AM - A: second\n"
                       "1/13/24, 12:05 AM - A: midnight\n"
                       "1/13/24, 12:06 PM - B: noon\n"
                       "1/13/24, 11:59 PM - A: late\n"
                       "1/13/24, 13:00 AM - A: bad hour\n"
                       "1/13/24, 10:60 AM - A: bad minute\n"
                       "1/14/24, 10:00 AM - B: next day\n"
                       "1/13/24, 10:02 AM - A: back\n"
                       "2/30/24, 10:00 AM - A: no such day\n"
                       "2/30/24, 10:01 AM - A: again\n"
                       "1/13/24, 10:03 AM - A: end\n";
    static const char *const ts[] = {
        "2024-01-13T10:00:00", "2024-01-13T10:01:00", "2024-01-13T00:05:00", "2024-01-13T12:06:00",
        "2024-01-13T23:59:00", "2024-01-14T10:00:00", "2024-01-13T10:02:00", "2024-01-13T10:03:00",
    };
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(text, strlen(text), WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 8);
    for (size_t i = 0; i < p.n && i < 8; i++)
        CHECK_EQ_STR(p.ts[i], ts[i]);
    if (p.n == 8) {
        CHECK_EQ_STR(p.author[3], "B");
        CHECK_EQ_STR(p.text[4], "late\n1/13/24, 13:00 AM - A: bad hour\n1/13/24, 10:60 AM - A: bad minute");
        CHECK_EQ_STR(p.text[6], "back\n2/30/24, 10:00 AM - A: no such day\n2/30/24, 10:01 AM - A: again");
        CHECK_EQ_STR(p.text[7], "end");
    }
    parsed_free(&p);
}

static void bodies_that_look_like_headers_stay_bodies(void)
{
    const char *text = "13/01/2024, 10:00 - A: list:\n"
                       "13/01/2024 was a good day\n"
                       "10:30 - coffee\n"
                       "[13/01/2024] nope\n"
                       "13/01/2024, 25:00 - not a time\n"
                       "32/01/2024, 10:00 - not a date\n"
                       "13/01/2024, 10:00 no dash\n"
                       "13/01/2024, 10:01 - B: next\n";
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(text, strlen(text), WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 2);
    if (p.n == 2) {
        CHECK_EQ_STR(p.text[0], "list:\n13/01/2024 was a good day\n10:30 - coffee\n[13/01/2024] nope\n"
                                "13/01/2024, 25:00 - not a time\n32/01/2024, 10:00 - not a date\n"
                                "13/01/2024, 10:00 no dash");
        CHECK_EQ_STR(p.author[1], "B");
    }
    parsed_free(&p);
}

static void kinds_in_many_languages(void)
{
    const char *text =
        "13/01/2024, 10:00 - A: <Media omitted>\n"
        "13/01/2024, 10:00 - A: <Multimedia omitido>\n"
        "13/01/2024, 10:00 - A: IMG-20240113-WA0001.jpg (file attached)\n"
        "13/01/2024, 10:00 - A: This message was deleted\n"
        "13/01/2024, 10:00 - A: Diese Nachricht wurde gel\xC3\xB6scht\n"
        "13/01/2024, 10:00 - A: Hello <This message was edited>\n"
        "[13/01/2024, 10:00:00] A: \xE2\x80\x8E<attached: 00000012-PHOTO-2024-01-13-10-00-00.jpg>\n"
        "[13/01/2024, 10:00:00] A: \xE2\x80\x8Esticker omitted\n"
        "[13/01/2024, 10:00:00] Group: \xE2\x80\x8EMessages and calls are end-to-end encrypted.\n"
        "13/01/2024, 10:00 - Messages and calls are end-to-end encrypted.\n"
        "13/01/2024, 10:00 - A changed the subject from \"a: b\" to \"c\"\n"
        "13/01/2024, 10:00 - A: I deleted this message from my memory\n";
    static const ws_msg_kind want[] = {
        WS_MSG_MEDIA, WS_MSG_MEDIA, WS_MSG_MEDIA,  WS_MSG_DELETED, WS_MSG_DELETED, WS_MSG_TEXT,
        WS_MSG_MEDIA, WS_MSG_MEDIA, WS_MSG_SYSTEM, WS_MSG_SYSTEM,  WS_MSG_SYSTEM,  WS_MSG_TEXT,
    };
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(text, strlen(text), WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < p.n && i < sizeof want / sizeof want[0]; i++) {
        if (p.kind[i] != want[i])
            fprintf(stderr, "message %zu (%s): kind %s, want %s\n", i, p.text[i], ws_msg_kind_name(p.kind[i]),
                    ws_msg_kind_name(want[i]));
        CHECK(p.kind[i] == want[i]);
    }
    CHECK(p.n > 8 && p.author[8] == NULL);
    CHECK(p.n > 10 && p.author[10] == NULL);
    parsed_free(&p);
}

static void invalid_utf8_is_replaced_and_counted(void)
{
    const char text[] = "13/01/2024, 10:00 - A\xFF: caf\xC3 ok \xE2\x82 end\xF0\x9F\n";
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_chat_open_memory(text, sizeof text - 1, NULL, &r, &err), 0);
    parsed p = {0};
    CHECK_EQ_INT(collect(r, &p, &err), 0);
    CHECK_EQ_INT(ws_chat_invalid_utf8(r), 4);
    ws_chat_close(r);
    CHECK_EQ_INT(p.n, 1);
    if (p.n) {
        CHECK_EQ_STR(p.author[0], "A\xEF\xBF\xBD");
        CHECK_EQ_STR(p.text[0], "caf\xEF\xBF\xBD ok \xEF\xBF\xBD end\xEF\xBF\xBD");
    }
    parsed_free(&p);
}

static void line_endings_and_long_lines(void)
{
    /* lone CR, CRLF and LF mixed; a 3 MB line; no final newline */
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(&b, "13/01/2024, 10:00 - A: one\rtwo\r\n13/01/2024, 10:01 - B: ");
    for (int i = 0; i < 300000; i++)
        ws_buf_puts(&b, "0123456789");
    ws_buf_puts(&b, "\n13/01/2024, 10:02 - A: last");
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(b.data, b.len, WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 3);
    if (p.n == 3) {
        CHECK_EQ_STR(p.text[0], "one\ntwo");
        CHECK_EQ_INT(strlen(p.text[1]), 3000000);
        CHECK_EQ_STR(p.text[2], "last");
    }
    parsed_free(&p);
    /* the per-message cap turns a huge message into a clean error */
    ws_chat_options opt = {.max_message_bytes = 1 << 20};
    ws_chat_reader *r = NULL;
    CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &opt, &r, &err), 0);
    CHECK_EQ_INT(collect(r, &p, &err), WS_ETOOBIG);
    CHECK(strstr(err.msg, "longer than") != NULL);
    ws_chat_close(r);
    parsed_free(&p);
    ws_buf_free(&b);
}

static void bad_input_fails_cleanly(void)
{
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    const char *prose = "Dear diary,\ntoday nothing happened.\n";
    CHECK_EQ_INT(ws_chat_open_memory(prose, strlen(prose), NULL, &r, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "no WhatsApp message headers found") != NULL);
    CHECK(r == NULL);
    CHECK_EQ_INT(ws_chat_open_file("/nonexistent/chat.txt", NULL, &r, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_chat_open_file("tests", NULL, &r, &err), WS_EINVAL);
    ws_chat_options small = {.max_file_bytes = 10};
    CHECK_EQ_INT(ws_chat_open_memory(prose, strlen(prose), &small, &r, &err), WS_ETOOBIG);
    CHECK_EQ_INT(ws_chat_open_file("tests/fixtures/chat/android_en_gb.txt", &small, &r, &err), WS_ETOOBIG);
    /* forced order on a file without headers: the error comes from ws_chat_next */
    ws_chat_options forced = {.date_order = WS_DATE_DMY};
    CHECK_EQ_INT(ws_chat_open_memory(prose, strlen(prose), &forced, &r, &err), 0);
    ws_message m;
    CHECK_EQ_INT(ws_chat_next(r, &m, &err), WS_EFORMAT);
    ws_chat_close(r);
}

/* ------------------------------------------------------------------ zips */

static const char *tmpdir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/ws-test-chat-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

/* Writes a zip with the given entries (name, data, len); returns its path (static). */
static const char *make_zip(const char *name, int n, const char *const *names, const char *const *data,
                            const size_t *lens, bool encrypt)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir(), name);
    unlink(path);
    int zerr;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (!z)
        abort();
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, data[i], lens[i], 0);
        zip_int64_t idx = zip_file_add(z, names[i], s, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8);
        if (idx < 0)
            abort();
        if (encrypt)
            zip_file_set_encryption(z, (zip_uint64_t)idx, ZIP_EM_AES_256, "secret");
    }
    if (zip_close(z) != 0)
        abort();
    return path;
}

static void zip_exports(void)
{
    size_t len;
    char *chat = slurp("tests/fixtures/chat/ios_en_gb.txt", &len);
    CHECK(chat != NULL);
    if (!chat)
        return;
    const char *names[] = {"00000012-PHOTO-2024-01-13.jpg", "_chat.txt", "other.txt"};
    const char *data[] = {"\xFF\xD8\xFF not really a jpeg", chat, "13/01/2024, 10:00 - X: wrong file\n"};
    size_t lens[] = {strlen(data[0]), len, strlen(data[2])};
    parsed p = {0};
    ws_error err = {0};
    /* _chat.txt is preferred over any other .txt */
    const char *path = make_zip("ios.zip", 3, names, data, lens, false);
    CHECK_EQ_INT(parse_path(path, WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 12);
    parsed_free(&p);
    /* the same from memory */
    size_t zlen;
    char *zbytes = slurp(path, &zlen);
    CHECK_EQ_INT(parse_mem(zbytes, zlen, WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 12);
    parsed_free(&p);
    free(zbytes);
    /* Android names the file after the chat */
    const char *names2[] = {"WhatsApp Chat with Ana.txt"};
    const char *data2[] = {chat};
    path = make_zip("android.zip", 1, names2, data2, &len, false);
    CHECK_EQ_INT(parse_path(path, WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 12);
    parsed_free(&p);
    /* refusals */
    ws_chat_reader *r = NULL;
    const char *evil[] = {"../../etc/cron.d/evil.txt"};
    path = make_zip("traversal.zip", 1, evil, data2, &len, false);
    CHECK_EQ_INT(ws_chat_open_file(path, NULL, &r, &err), WS_EUNSAFE);
    CHECK(strstr(err.msg, "unsafe entry name") != NULL);
    path = make_zip("encrypted.zip", 1, names + 1, data2, &len, true);
    CHECK_EQ_INT(ws_chat_open_file(path, NULL, &r, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "encrypted") != NULL);
    const char *nochat[] = {"photo.jpg"};
    path = make_zip("nochat.zip", 1, nochat, data, lens, false);
    CHECK_EQ_INT(ws_chat_open_file(path, NULL, &r, &err), WS_EFORMAT);
    /* a bomb: 64 MB of one byte compresses far beyond any chat */
    size_t bomb_len = 64u << 20;
    char *bomb = ws_xmalloc(bomb_len);
    memset(bomb, 'a', bomb_len);
    const char *bomb_data[] = {bomb};
    path = make_zip("bomb.zip", 1, names + 1, bomb_data, &bomb_len, false);
    CHECK_EQ_INT(ws_chat_open_file(path, NULL, &r, &err), WS_EUNSAFE);
    CHECK(strstr(err.msg, "zip bomb") != NULL);
    free(bomb);
    /* above the cap */
    ws_chat_options cap = {.max_file_bytes = 100};
    path = make_zip("big.zip", 1, names + 1, data2, &len, false);
    CHECK_EQ_INT(ws_chat_open_file(path, &cap, &r, &err), WS_ETOOBIG);
    /* broken: a truncated archive */
    zbytes = slurp(path, &zlen);
    CHECK_EQ_INT(ws_chat_open_memory(zbytes, zlen / 2, NULL, &r, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "zip") != NULL);
    free(zbytes);
    free(chat);
}

/* ------------------------------------------------------------------ scale */

static void generated_million_messages(void)
{
    ws_chat_synth s;
    ws_chat_synth_init(&s, 42);
    ws_buf b = WS_BUF_INIT;
    uint64_t want = 1469598103934665603ull, got = 1469598103934665603ull;
    const uint64_t n = 1000000;
    for (uint64_t i = 0; i < n; i++)
        ws_chat_synth_next(&s, &b, &want);
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, NULL, &r, &err), 0);
    if (!r) {
        ws_buf_free(&b);
        return;
    }
    ws_message m;
    uint64_t count = 0;
    int rc;
    while ((rc = ws_chat_next(r, &m, &err)) == 1) {
        ws_chat_checksum_add(&got, &m);
        count++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(count, n);
    CHECK(got == want);
    printf("generated export: %zu bytes, %llu messages\n", b.len, (unsigned long long)count);
    ws_chat_close(r);
    /* three readers over byte ranges split at line starts give the same messages */
    size_t cut[4] = {0, b.len / 3, b.len / 3 * 2, 0};
    for (int k = 1; k < 3; k++)
        cut[k] = (size_t)((char *)memchr(b.data + cut[k], '\n', b.len - cut[k]) - b.data) + 1;
    uint64_t split = 1469598103934665603ull;
    count = 0;
    for (int k = 0; k < 3; k++) {
        ws_chat_options opt = {.date_order = WS_DATE_DMY, .range_start = cut[k], .range_end = cut[k + 1]};
        CHECK_EQ_INT(ws_chat_open_memory(b.data, b.len, &opt, &r, &err), 0);
        while (r && (rc = ws_chat_next(r, &m, &err)) == 1) {
            ws_chat_checksum_add(&split, &m);
            count++;
        }
        CHECK_EQ_INT(rc, 0);
        ws_chat_close(r);
    }
    CHECK_EQ_INT(count, n);
    CHECK(split == want);
    ws_buf_free(&b);
}

/* A header cut at its dash ("... 10:00 -" and the line ends) must not teach the fast path a
 * layout without the space: later lines keep the grammar's author (found by comparing
 * --stats, which reads in two parts, with the messages on a damaged export). */
static void header_at_line_end_teaches_no_layout(void)
{
    const char *text = "11/01/2019, 14:27 -\n"
                       "11/01/2019, 14:28 - Bea: hi\n"
                       "11/01/2019, 14:29 - Bea: ok\n"
                       "[11/01/2019, 14:30:00]\n"
                       "[11/01/2019, 14:31:00] Omar: yes\n"
                       "[11/01/2019, 14:32:00]Omar: no space\n"
                       "[11/01/2019, 14:33:00] Omar: again\n";
    parsed p = {0};
    ws_error err = {0};
    CHECK_EQ_INT(parse_mem(text, strlen(text), WS_DATE_AUTO, &p, &err), 0);
    CHECK_EQ_INT(p.n, 7);
    if (p.n == 7) {
        CHECK(p.author[0] == NULL && strcmp(p.text[0], "") == 0);
        CHECK_EQ_STR(p.author[1], "Bea");
        CHECK_EQ_STR(p.author[2], "Bea");
        CHECK_EQ_STR(p.text[2], "ok");
        CHECK(p.author[3] == NULL);
        CHECK_EQ_STR(p.author[4], "Omar");
        CHECK_EQ_STR(p.author[5], "Omar");
        CHECK_EQ_STR(p.text[5], "no space");
        CHECK_EQ_STR(p.author[6], "Omar");
    }
    parsed_free(&p);
}

WS_TEST_MAIN(T(every_variant_fixture_parses_exactly), T(every_language_of_the_table_parses_exactly),
             T(phrase_table_is_well_formed), T(learned_placeholder_and_layout_hold_in_every_range),
             T(header_at_line_end_teaches_no_layout), T(corpus_with_our_expectations),
             T(corpus_empty_file_has_no_messages), T(corpus_chatminer_json_targets),
             T(corpus_chatminer_csv_targets), T(corpus_chatminer_testlog), T(date_order_evidence_and_forcing),
             T(twelve_hour_clock_edges), T(same_day_lines_read_as_the_grammar_reads_them),
             T(bodies_that_look_like_headers_stay_bodies), T(kinds_in_many_languages),
             T(invalid_utf8_is_replaced_and_counted), T(line_endings_and_long_lines),
             T(bad_input_fails_cleanly), T(zip_exports), T(generated_million_messages))
