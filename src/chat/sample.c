/* What an export teaches about itself from its first MiB (the reader's sample): the layout
 * most of its headers share, which then alone starts a message, and the placeholders several
 * of its authors send many times (kinds.c counts those). Every reader of a file, whatever byte
 * range it reads, samples the same bytes, so all agree. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_int.h"
#include "core/mem.h"

/* What the sample counts: header lines per layout, and "<...>" bodies. */
typedef struct sample_counts {
    chat_sample bodies;
    uint32_t layout[8];
    unsigned count[8], layouts, headers;
} sample_counts;

#define SAMPLE_MAX_HEADERS 256 /* header lines whose layout the sample counts */

/* One line of the sample: its header's layout is counted, a "<...>" body too. */
static void sample_line(sample_counts *sc, const char *line, size_t len)
{
    chat_header h;
    size_t end = len;
    while (end && line[end - 1] == ' ')
        end--;
    bool candidate = end && line[end - 1] == '>';
    if (sc->headers >= SAMPLE_MAX_HEADERS && !candidate)
        return;
    if (!ws__chat_maybe_header(line, len) && !ws__chat_mark_len(line, len))
        return;
    if (!ws__chat_parse_header(line, len, &h))
        return;
    ws_datetime t;
    if (!ws__chat_resolve(&h, WS_DATE_DMY, &t))
        return;
    if (sc->headers < SAMPLE_MAX_HEADERS) {
        sc->headers++;
        unsigned k = 0;
        while (k < sc->layouts && sc->layout[k] != h.layout)
            k++;
        if (k == sc->layouts && k < 8) {
            sc->layout[k] = h.layout;
            sc->layouts++;
        }
        if (k < 8)
            sc->count[k]++;
    }
    const char *colon = ws__chat_colon_space(line + h.body, len - h.body);
    if (candidate && colon && colon > line + h.body)
        ws__chat_sample_add(&sc->bodies, line + h.body, (size_t)(colon - line - h.body), colon + 2,
                            (size_t)(line + len - colon - 2));
}

/* The layout 90% of the sample's headers share (at least 3 of them), or 0: test files that
 * mix layouts on purpose are read line by line as before. */
static uint32_t dominant_layout(const sample_counts *sc)
{
    unsigned best = 0;
    for (unsigned k = 1; k < sc->layouts; k++)
        if (sc->count[k] > sc->count[best])
            best = k;
    if (!sc->layouts || sc->count[best] < 3 || (uint64_t)sc->count[best] * 10 < (uint64_t)sc->headers * 9)
        return 0;
    return sc->layout[best];
}

void ws__chat_sample_scan(const char *buf, size_t have, bool complete, uint32_t *layout,
                          chat_learned *learned)
{
    sample_counts *sc = ws_xcalloc(1, sizeof *sc);
    bool any_cr = memchr(buf, '\r', have) != NULL;
    for (size_t at = 0; at < have;) {
        const char *line = buf + at;
        const char *nl = memchr(line, '\n', have - at);
        size_t n = nl ? (size_t)(nl - line) : have - at;
        if (!nl && !complete)
            break; /* a line cut by the sample's end */
        /* up to a CR (the sample skips what follows a lone CR: it only counts) */
        const char *cr = any_cr ? memchr(line, '\r', n) : NULL;
        sample_line(sc, line, cr ? (size_t)(cr - line) : n);
        at += n + 1;
    }
    *layout = dominant_layout(sc);
    ws__chat_sample_learn(&sc->bodies, learned);
    free(sc);
}
