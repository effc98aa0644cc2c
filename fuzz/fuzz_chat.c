/* libFuzzer target: the WhatsApp export reader (text and zip, detected by content) must never
 * crash, hang or leak, whatever the bytes. The first byte picks the date order. A text export
 * that parses is parsed again in two byte ranges split at a line start (as `parse --stats`
 * does over threads): the two parts must give exactly the same messages and invalid-UTF-8
 * count as the whole, and so must one reader moved over the two with ws_chat_set_range. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct digest {
    uint64_t hash, count, invalid;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        d->hash ^= b[i];
        d->hash *= 1099511628211ull;
    }
    d->hash ^= 0xFF;
    d->hash *= 1099511628211ull;
}

/* Reads every message of reader r into d; returns the final code. */
static int drain(ws_chat_reader *r, digest *d)
{
    ws_error err = {0};
    ws_message m;
    int rc;
    while ((rc = ws_chat_next(r, &m, &err)) == 1) {
        if (m.author && m.author_len == 0)
            __builtin_trap();
        char ts[20];
        ws_datetime_format(&m.ts, ts);
        mix(d, ts, sizeof ts);
        mix(d, m.author ? m.author : "\x01", m.author ? m.author_len : 1);
        mix(d, m.text, m.text_len);
        mix(d, &m.kind, sizeof m.kind);
        d->count++;
    }
    d->invalid += ws_chat_invalid_utf8(r);
    return rc;
}

/* Reads every message of one reader into d; returns the final code. */
static int read_all(const uint8_t *text, size_t len, const ws_chat_options *opt, digest *d,
                    ws_date_order *order, int *is_zip)
{
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    if (ws_chat_open_memory(text, len, opt, &r, &err) != 0)
        return -1;
    int rc = drain(r, d);
    if (order)
        *order = ws_chat_date_order(r);
    if (is_zip)
        *is_zip = ws_chat_is_zip(r);
    ws_chat_close(r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ws_chat_options opt = {
        .date_order = (ws_date_order)(data[0] % 4), .max_message_bytes = 1 << 16, .max_file_bytes = 1 << 22};
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    digest whole = {1469598103934665603ull, 0, 0};
    ws_date_order order = WS_DATE_AUTO;
    int is_zip = 0;
    if (read_all(text, len, &opt, &whole, &order, &is_zip) != 0 || is_zip || len < 2)
        return 0;
    /* split at the first line start after the middle */
    const uint8_t *nl = memchr(text + len / 2, '\n', len - len / 2);
    if (!nl || (size_t)(nl - text) + 1 >= len)
        return 0;
    uint64_t cut = (uint64_t)(nl - text) + 1;
    digest parts = {1469598103934665603ull, 0, 0};
    ws_chat_options a = opt, b = opt;
    a.date_order = b.date_order = order;
    a.range_end = cut;
    b.range_start = cut;
    if (read_all(text, len, &a, &parts, NULL, NULL) != 0 || read_all(text, len, &b, &parts, NULL, NULL) != 0)
        __builtin_trap();
    if (parts.hash != whole.hash || parts.count != whole.count || parts.invalid != whole.invalid)
        __builtin_trap();
    /* one reader moved over the parts with ws_chat_set_range, the second part first (a worker
     * takes parts in any order), reads each as the fresh readers did */
    digest fresh_a = {1469598103934665603ull, 0, 0}, fresh_b = fresh_a, moved_a = fresh_a, moved_b = fresh_a;
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    if (read_all(text, len, &a, &fresh_a, NULL, NULL) != 0 ||
        read_all(text, len, &b, &fresh_b, NULL, NULL) != 0 ||
        ws_chat_open_memory(text, len, &b, &r, &err) != 0)
        __builtin_trap();
    if (drain(r, &moved_b) != 0 || ws_chat_set_range(r, 0, cut, &err) != 0 || drain(r, &moved_a) != 0)
        __builtin_trap();
    ws_chat_close(r);
    if (memcmp(&fresh_a, &moved_a, sizeof fresh_a) != 0 || memcmp(&fresh_b, &moved_b, sizeof fresh_b) != 0)
        __builtin_trap();
    return 0;
}
