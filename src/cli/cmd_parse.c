/* `whatstyle parse FILE`: reads a WhatsApp export and prints its messages as JSON Lines,
 * a JSON array or CSV, or (--stats) a JSON summary of the whole chat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "cli/commands.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/strset.h"

typedef enum { OUT_JSONL, OUT_JSON, OUT_CSV } out_format;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: whatstyle parse FILE [--format jsonl|json|csv] [--stats]\n"
            "                       [--date-order dmy|mdy|ymd] [--max-size BYTES[K|M|G]]\n\n"
            "Reads a WhatsApp export (.txt, or a .zip holding _chat.txt) and prints one record\n"
            "per message: {\"ts\",\"author\",\"text\",\"kind\"} (+ \"edited\", \"line\").\n"
            "--stats prints only a summary: messages, participants, first, last, date_order, kinds.\n"
            "The day/month order is decided from the file unless --date-order forces it.\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return -1;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end || v == 0)
        return -1;
    *out = v;
    return 0;
}

static void flush_if_big(ws_buf *out, bool force)
{
    if (out->len && (force || out->len > (1u << 20))) {
        fwrite(out->data, 1, out->len, stdout);
        ws_buf_reset(out);
    }
}

static void put_csv_field(ws_buf *b, const char *s, size_t n)
{
    if (!s)
        return;
    if (!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\n', n) && !memchr(s, '\r', n)) {
        ws_buf_append(b, s, n);
        return;
    }
    ws_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            ws_buf_putc(b, '"');
        ws_buf_putc(b, s[i]);
    }
    ws_buf_putc(b, '"');
}

static void put_message(ws_buf *b, const ws_message *m, out_format fmt, char ts[20])
{
    if (fmt == OUT_CSV) {
        ws_buf_append(b, ts, 19);
        ws_buf_putc(b, ',');
        put_csv_field(b, m->author, m->author_len);
        ws_buf_putc(b, ',');
        put_csv_field(b, m->text, m->text_len);
        ws_buf_printf(b, ",%s,%s\n", ws_msg_kind_name(m->kind), m->edited ? "true" : "false");
        return;
    }
    ws_buf_puts(b, "{\"ts\":\"");
    ws_buf_append(b, ts, 19);
    ws_buf_puts(b, "\",\"author\":");
    if (m->author)
        ws_json_put_str(b, m->author, m->author_len);
    else
        ws_buf_puts(b, "null");
    ws_buf_puts(b, ",\"text\":");
    ws_json_put_str(b, m->text, m->text_len);
    ws_buf_printf(b, ",\"kind\":\"%s\"", ws_msg_kind_name(m->kind));
    if (m->edited)
        ws_buf_puts(b, ",\"edited\":true");
    ws_buf_printf(b, ",\"line\":%llu}", (unsigned long long)m->line);
}

static int datetime_cmp(const ws_datetime *a, const ws_datetime *b)
{
    int av[6] = {a->year, a->month, a->day, a->hour, a->minute, a->second};
    int bv[6] = {b->year, b->month, b->day, b->hour, b->minute, b->second};
    for (int i = 0; i < 6; i++)
        if (av[i] != bv[i])
            return av[i] < bv[i] ? -1 : 1;
    return 0;
}

int ws_cmd_parse(int argc, char **argv)
{
    const char *path = NULL;
    out_format fmt = OUT_JSONL;
    bool stats = false;
    ws_chat_options opt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "jsonl")) fmt = OUT_JSONL;
            else if (!strcmp(f, "json")) fmt = OUT_JSON;
            else if (!strcmp(f, "csv")) fmt = OUT_CSV;
            else {
                fprintf(stderr, "whatstyle parse: unknown format '%s' (jsonl, json or csv)\n", f);
                return 2;
            }
        } else if (!strcmp(a, "--date-order") && i + 1 < argc) {
            const char *o = argv[++i];
            if (!strcmp(o, "dmy")) opt.date_order = WS_DATE_DMY;
            else if (!strcmp(o, "mdy")) opt.date_order = WS_DATE_MDY;
            else if (!strcmp(o, "ymd")) opt.date_order = WS_DATE_YMD;
            else {
                fprintf(stderr, "whatstyle parse: unknown date order '%s' (dmy, mdy or ymd)\n", o);
                return 2;
            }
        } else if (!strcmp(a, "--max-size") && i + 1 < argc) {
            if (parse_size(argv[++i], &opt.max_file_bytes)) {
                fprintf(stderr, "whatstyle parse: bad size '%s'\n", argv[i]);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "whatstyle parse: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "whatstyle parse: one file at a time\n");
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    ws_error err = {0};
    ws_chat_reader *r = NULL;
    int rc = ws_chat_open_file(path, &opt, &r, &err);
    if (rc) {
        fprintf(stderr, "whatstyle parse: %s\n", err.msg);
        return 1;
    }
    if (ws_chat_is_empty(r)) {
        fprintf(stderr, "whatstyle parse: %s: the file is empty (0 bytes); there is nothing to parse\n", path);
        ws_chat_close(r);
        return 1;
    }

    ws_buf out = WS_BUF_INIT;
    ws_strset authors = WS_STRSET_INIT;
    uint64_t count = 0, kinds[4] = {0};
    ws_datetime first = {0}, last = {0};
    ws_message m;
    ws_progress bar;
    uint64_t total = 0;
    ws_chat_bytes_read(r, &total);
    ws_progress_start(&bar, "parse", total);
    bar.enabled = bar.enabled && total > (64u << 20);
    if (!stats && fmt == OUT_JSON)
        ws_buf_puts(&out, "[");
    if (!stats && fmt == OUT_CSV)
        ws_buf_puts(&out, "ts,author,text,kind,edited\n");
    while ((rc = ws_chat_next(r, &m, &err)) == 1) {
        if (stats) {
            if (m.author)
                ws_strset_add(&authors, m.author, m.author_len);
            kinds[m.kind]++;
            if (!count || datetime_cmp(&m.ts, &first) < 0)
                first = m.ts;
            if (!count || datetime_cmp(&m.ts, &last) > 0)
                last = m.ts;
        } else {
            char ts[20];
            ws_datetime_format(&m.ts, ts);
            if (fmt == OUT_JSON)
                ws_buf_puts(&out, count ? ",\n" : "\n");
            put_message(&out, &m, fmt, ts);
            if (fmt == OUT_JSONL)
                ws_buf_putc(&out, '\n');
            flush_if_big(&out, false);
        }
        count++;
        if ((count & 0xFFFF) == 0)
            ws_progress_update(&bar, ws_chat_bytes_read(r, NULL), NULL);
    }
    if (rc < 0) {
        flush_if_big(&out, true);
        fflush(stdout);
        fprintf(stderr, "whatstyle parse: %s\n", err.msg);
        goto out;
    }
    ws_progress_finish(&bar, NULL);
    if (stats) {
        char a[20], b[20];
        ws_datetime_format(&first, a);
        ws_datetime_format(&last, b);
        ws_buf_printf(&out, "{\"messages\":%llu,\"participants\":[", (unsigned long long)count);
        for (size_t i = 0; i < authors.count; i++) {
            if (i)
                ws_buf_putc(&out, ',');
            ws_json_put_str(&out, authors.items[i], authors.lens[i]);
        }
        ws_buf_puts(&out, "],\"first\":");
        if (count)
            ws_buf_printf(&out, "\"%s\",\"last\":\"%s\"", a, b);
        else
            ws_buf_puts(&out, "null,\"last\":null");
        ws_buf_printf(&out, ",\"date_order\":\"%s\",\"kinds\":{\"text\":%llu,\"system\":%llu,"
                      "\"media\":%llu,\"deleted\":%llu},\"invalid_utf8\":%llu,\"lines_skipped\":%llu}\n",
                      ws_chat_date_order_name(ws_chat_date_order(r)), (unsigned long long)kinds[0],
                      (unsigned long long)kinds[1], (unsigned long long)kinds[2],
                      (unsigned long long)kinds[3], (unsigned long long)ws_chat_invalid_utf8(r),
                      (unsigned long long)ws_chat_lines_skipped(r));
    } else if (fmt == OUT_JSON) {
        ws_buf_puts(&out, count ? "\n]\n" : "]\n");
    }
    flush_if_big(&out, true);
    if (ws_chat_invalid_utf8(r))
        fprintf(stderr, "whatstyle parse: warning: %s: %llu invalid UTF-8 sequences replaced by U+FFFD\n",
                path, (unsigned long long)ws_chat_invalid_utf8(r));
    rc = 0;
out:
    ws_buf_free(&out);
    ws_strset_free(&authors);
    ws_chat_close(r);
    return rc ? 1 : 0;
}
