/* `whatstyle parse FILE`: reads a WhatsApp export and prints its messages as JSON Lines,
 * a JSON array or CSV, or (--stats) a JSON summary of the whole chat. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/fanout.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/strset.h"

typedef enum { OUT_JSONL, OUT_JSON, OUT_CSV } out_format;

typedef struct parse_cli {
    const char *format, *date_order, *max_size;
    bool stats;
} parse_cli;

static const ws_opt rows[] = {
    {.name = "format",
     .kind = WS_OPT_STR,
     .off = offsetof(parse_cli, format),
     .dflt = "jsonl",
     .choices = "jsonl|json|csv",
     .arg = "FMT",
     .help = "one record per message, a JSON array, or CSV"},
    {.name = "stats",
     .kind = WS_OPT_FLAG,
     .off = offsetof(parse_cli, stats),
     .help = "print only a summary: messages, participants, first, last, date_order, kinds"},
    {.name = "date-order",
     .kind = WS_OPT_STR,
     .off = offsetof(parse_cli, date_order),
     .choices = "dmy|mdy|ymd",
     .arg = "ORDER",
     .help = "force the day/month order (default: decided from the file)"},
    {.name = "max-size",
     .kind = WS_OPT_STR,
     .off = offsetof(parse_cli, max_size),
     .arg = "BYTES[K|M|G]",
     .help = "refuse larger exports (default: the parser's cap)"},
};

const ws_cli_spec ws_cli_spec_parse = {
    .name = "parse",
    .synopsis =
        "FILE [--format jsonl|json|csv] [--stats] [--date-order dmy|mdy|ymd] [--max-size BYTES[K|M|G]]",
    .about = "Reads a WhatsApp export (.txt, or a .zip holding _chat.txt) and prints one record\n"
             "per message: {\"ts\",\"author\",\"text\",\"kind\"} (+ \"edited\", \"line\").\n",
    .min_pos = 1,
    .max_pos = 1,
    WS_CLI_SPEC_ROWS(rows),
};

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        end++;
        break;
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
    ws_buf_puts(b, ",\"kind\":\"");
    ws_buf_puts(b, ws_msg_kind_name(m->kind));
    ws_buf_puts(b, m->edited ? "\",\"edited\":true,\"line\":" : "\",\"line\":");
    char num[24], *p = num + sizeof num;
    uint64_t v = m->line;
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10));
    ws_buf_append(b, p, (size_t)(num + sizeof num - p));
    ws_buf_putc(b, '}');
}

/* An order-keeping key of a resolved time: its fields packed in bit ranges wider than their
 * values (month <= 12, day <= 31, hour <= 23, minute and second <= 59), so shifts instead of
 * multiplications. */
static inline long long datetime_key(const ws_datetime *t)
{
    return (long long)t->year << 26 | (long long)t->month << 22 | t->day << 17 | t->hour << 12 |
           t->minute << 6 | t->second;
}

/* The --stats summary of a run of messages; runs over parts of a file merge in order. */
typedef struct chat_stats {
    uint64_t count, kinds[4], invalid_utf8, skipped;
    long long first, last;
    ws_strset authors;
    /* authors already in the set, by a hash of length and end bytes: most messages find
     * theirs with one comparison, without hashing the whole name */
    struct {
        const char *name;
        size_t len;
    } seen[64];
} chat_stats;

/* a[0..n) == b[0..n) for short names, inline: word loads that stay inside both. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        uint64_t x, y;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y)
                return false;
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) { /* two overlapping 4-byte words */
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, a, 4);
        memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    /* 1 to 3 bytes: first, middle and last */
    return ((a[0] ^ b[0]) | (a[n / 2] ^ b[n / 2]) | (a[n - 1] ^ b[n - 1])) == 0;
}

/* first and last start at the ends of the key range, so that no count check is needed */
#define STATS_INIT                                                                                           \
    {                                                                                                        \
        .first = LLONG_MAX, .last = LLONG_MIN                                                                \
    }

static inline __attribute__((always_inline)) void stats_add(chat_stats *st, const ws_message *m)
{
    size_t n = m->author_len;
    if (n) {
        const unsigned char *a = (const unsigned char *)m->author;
        unsigned h = ((unsigned)n * 37u + a[0] * 5u + a[n - 1]) & 63u;
        if (st->seen[h].len != n || !same_bytes(st->seen[h].name, (const char *)a, n)) {
            size_t i = ws_strset_add(&st->authors, m->author, n);
            st->seen[h].name = st->authors.items[i];
            st->seen[h].len = n;
        }
    } else if (m->author) {
        ws_strset_add(&st->authors, m->author, 0);
    }
    st->kinds[m->kind]++;
    long long k = datetime_key(&m->ts);
    st->first = k < st->first ? k : st->first;
    st->last = k > st->last ? k : st->last;
    st->count++;
}

static void stats_merge(chat_stats *into, chat_stats *from)
{
    for (size_t i = 0; i < from->authors.count; i++)
        ws_strset_add(&into->authors, from->authors.items[i], from->authors.lens[i]);
    for (int k = 0; k < 4; k++)
        into->kinds[k] += from->kinds[k];
    if (from->first < into->first)
        into->first = from->first;
    if (from->last > into->last)
        into->last = from->last;
    into->count += from->count;
    into->invalid_utf8 += from->invalid_utf8;
    into->skipped += from->skipped;
}

static void key_format(long long k, char out[20])
{
    ws_datetime t;
    t.second = (int)(k & 63);
    t.minute = (int)(k >> 6 & 63);
    t.hour = (int)(k >> 12 & 31);
    t.day = (int)(k >> 17 & 31);
    t.month = (int)(k >> 22 & 15);
    t.year = (int)(k >> 26);
    ws_datetime_format(&t, out);
}

/* One part of a file read by a worker thread for --stats. */
typedef struct stats_part {
    ws_chat_options opt;
    chat_stats st;
    ws_error err;
    int rc;
} stats_part;

/* Reads one part with the worker's reader *r: opened at its first part, moved to the next
 * ones with ws_chat_set_range (one window per worker, not one per part). */
static void stats_part_run(const char *path, ws_chat_reader **r, stats_part *part)
{
    ws_message m;
    part->rc = *r ? ws_chat_set_range(*r, part->opt.range_start, part->opt.range_end, &part->err)
                  : ws_chat_open_file(path, &part->opt, r, &part->err);
    if (part->rc)
        return;
    while ((part->rc = ws_chat_next(*r, &m, &part->err)) == 1)
        stats_add(&part->st, &m);
    part->st.invalid_utf8 = ws_chat_invalid_utf8(*r);
    part->st.skipped = ws_chat_lines_skipped(*r);
}

/* The first line start at or after offset (> 0) in the file open as fd, or 0 when there is none. */
static uint64_t line_start_after(int fd, uint64_t offset)
{
    char buf[4096];
    uint64_t pos = offset - 1;
    for (;;) {
        ssize_t got = pread(fd, buf, sizeof buf, (off_t)pos);
        if (got <= 0)
            return 0;
        const char *nl = memchr(buf, '\n', (size_t)got);
        if (nl)
            return pos + (uint64_t)(nl - buf) + 1;
        pos += (uint64_t)got;
    }
}

/* The parts and the next one to take: each worker takes parts in file order until none is
 * left, so a worker that gets more of the CPU (other processes share the cores) reads more. */
typedef struct stats_pool {
    const char *path;
    stats_part *parts;
    int n, next;
} stats_pool;

/* A worker: the pool it takes parts from and its reader (the main reader for the first
 * worker, whose window the sample already faulted in; NULL: opened at its first part). */
typedef struct stats_worker_arg {
    stats_pool *pool;
    ws_chat_reader *r;
    bool borrowed; /* r is the caller's: not closed here */
} stats_worker_arg;

static void stats_worker(void *arg)
{
    stats_worker_arg *w = arg;
    stats_pool *pool = w->pool;
    int k;
    while ((k = __atomic_fetch_add(&pool->next, 1, __ATOMIC_RELAXED)) < pool->n)
        stats_part_run(pool->path, &w->r, &pool->parts[k]);
    if (!w->borrowed)
        ws_chat_close(w->r);
}

/* Line-aligned cuts of a file of size bytes for workers threads: parts that shrink as the
 * rest does (a quarter of the rest per worker, at least min_part bytes), so that the last
 * parts are small and the workers finish together. Returns the number of parts; cut[k] is
 * where part k starts and cut[parts] is 0 (to the end). */
static int stats_cuts(const char *path, uint64_t size, int workers, uint64_t min_part, uint64_t *cut,
                      int max_parts)
{
    int parts = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t at = 0;
    cut[0] = 0;
    while (parts + 1 < max_parts) {
        uint64_t rest = size - at, len = rest / (4u * (unsigned)workers);
        if (len < min_part)
            len = min_part;
        if (len + min_part / 2 >= rest)
            break; /* the rest is one part */
        uint64_t c = fd < 0 ? 0 : line_start_after(fd, at + len);
        if (!c || c >= size)
            break; /* no line starts after it: the rest is one part */
        cut[++parts] = c;
        at = c;
    }
    cut[++parts] = 0;
    if (fd >= 0)
        close(fd);
    return parts;
}

/* --stats with one worker thread per core over line-aligned parts of a large text export.
 * Returns 1 when it did the work (rc in *rc), 0 when the file is not suited. */
static int stats_parallel(const char *path, ws_chat_reader *r, chat_stats *st, ws_error *err, int *rc)
{
    enum { MAX_WORKERS = 8, MAX_PARTS = 32 };
    uint64_t size = 0;
    ws_chat_bytes_read(r, &size);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = cores < 1 ? 1 : cores > MAX_WORKERS ? MAX_WORKERS : (int)cores;
    if (ws_chat_is_zip(r) || size < (8u << 20) || workers < 2)
        return 0;
    stats_part parts[MAX_PARTS];
    uint64_t cut[MAX_PARTS + 1];
    int n = stats_cuts(path, size, workers, 4u << 20, cut, MAX_PARTS);
    if (n < 2)
        return 0;
    ws_chat_options base = {.date_order = ws_chat_date_order(r)};
    for (int k = 0; k < n; k++) {
        memset(&parts[k], 0, sizeof parts[k]);
        parts[k].st = (chat_stats)STATS_INIT;
        parts[k].opt = base;
        parts[k].opt.range_start = cut[k];
        parts[k].opt.range_end = cut[k + 1];
    }
    stats_pool pool = {.path = path, .parts = parts, .n = n};
    stats_worker_arg w[MAX_WORKERS] = {{.pool = &pool, .r = r, .borrowed = true}};
    for (int i = 1; i < workers; i++)
        w[i] = (stats_worker_arg){.pool = &pool};
    ws_fanout((size_t)(workers < n ? workers : n), stats_worker, w, sizeof w[0]);
    *rc = 0;
    for (int k = 0; k < n; k++) {
        if (parts[k].rc < 0 && !*rc) {
            *rc = parts[k].rc;
            *err = parts[k].err;
        }
        stats_merge(st, &parts[k].st);
        ws_strset_free(&parts[k].st.authors);
    }
    /* no part saw a header (possible when the order was forced, so not checked up front) */
    if (!*rc && !st->count)
        *rc = ws_error_set(err, WS_EFORMAT, "%s: no WhatsApp message headers found", path);
    return 1;
}

int ws_cmd_parse(int argc, char **argv)
{
    parse_cli o = {0};
    ws_cli_pos pos;
    int pr = ws_cli_parse(&ws_cli_spec_parse, argc, argv, &o, &pos, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    const char *path = pos.v[0];
    out_format fmt = !strcmp(o.format, "json") ? OUT_JSON : !strcmp(o.format, "csv") ? OUT_CSV : OUT_JSONL;
    bool stats = o.stats;
    ws_chat_options opt = {0};
    if (o.date_order)
        opt.date_order = !strcmp(o.date_order, "dmy")   ? WS_DATE_DMY
                         : !strcmp(o.date_order, "mdy") ? WS_DATE_MDY
                                                        : WS_DATE_YMD;
    if (o.max_size && parse_size(o.max_size, &opt.max_file_bytes))
        return ws_cli_fail(&ws_cli_spec_parse, "bad size '%s' (BYTES, or with K, M or G)", o.max_size);

    ws_error err = {0};
    ws_chat_reader *r = NULL;
    int rc = ws_chat_open_file(path, &opt, &r, &err);
    if (rc) {
        fprintf(stderr, "whatstyle parse: %s\n", err.msg);
        return 1;
    }
    if (ws_chat_is_empty(r)) {
        fprintf(stderr, "whatstyle parse: %s: the file is empty (0 bytes); there is nothing to parse\n",
                path);
        ws_chat_close(r);
        return 1;
    }

    ws_buf out = WS_BUF_INIT;
    chat_stats st = STATS_INIT;
    uint64_t count = 0;
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
    if (stats && stats_parallel(path, r, &st, &err, &rc)) {
        if (rc < 0)
            goto fail;
        goto summary;
    }
    while ((rc = ws_chat_next(r, &m, &err)) == 1) {
        if (stats) {
            stats_add(&st, &m);
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
    if (rc < 0)
        goto fail;
    st.invalid_utf8 = ws_chat_invalid_utf8(r);
    st.skipped = ws_chat_lines_skipped(r);
summary:
    ws_progress_finish(&bar, NULL);
    if (stats) {
        char a[20], b[20];
        key_format(st.first, a);
        key_format(st.last, b);
        ws_buf_printf(&out, "{\"messages\":%llu,\"participants\":[", (unsigned long long)st.count);
        for (size_t i = 0; i < st.authors.count; i++) {
            if (i)
                ws_buf_putc(&out, ',');
            ws_json_put_str(&out, st.authors.items[i], st.authors.lens[i]);
        }
        ws_buf_puts(&out, "],\"first\":");
        if (st.count)
            ws_buf_printf(&out, "\"%s\",\"last\":\"%s\"", a, b);
        else
            ws_buf_puts(&out, "null,\"last\":null");
        ws_buf_printf(&out,
                      ",\"date_order\":\"%s\",\"kinds\":{\"text\":%llu,\"system\":%llu,"
                      "\"media\":%llu,\"deleted\":%llu},\"invalid_utf8\":%llu,\"lines_skipped\":%llu}\n",
                      ws_chat_date_order_name(ws_chat_date_order(r)), (unsigned long long)st.kinds[0],
                      (unsigned long long)st.kinds[1], (unsigned long long)st.kinds[2],
                      (unsigned long long)st.kinds[3], (unsigned long long)st.invalid_utf8,
                      (unsigned long long)st.skipped);
    } else if (fmt == OUT_JSON) {
        ws_buf_puts(&out, count ? "\n]\n" : "]\n");
    }
    flush_if_big(&out, true);
    if (st.invalid_utf8)
        fprintf(stderr, "whatstyle parse: warning: %s: %llu invalid UTF-8 sequences replaced by U+FFFD\n",
                path, (unsigned long long)st.invalid_utf8);
    rc = 0;
    goto out;
fail:
    flush_if_big(&out, true);
    fflush(stdout);
    fprintf(stderr, "whatstyle parse: %s\n", err.msg);
out:
    ws_buf_free(&out);
    ws_strset_free(&st.authors);
    ws_chat_close(r);
    return rc ? 1 : 0;
}
