/* Building training pairs from a stream of chat messages (see pairs.h). */
#include "style/pairs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/utf8.h"

struct ws_pairs_builder {
    char *persona;
    ws_pairs_options opt;
    ws_mask_rules mask;
    ws_arena *arena;
    ws_pairs *p;
    size_t turns_cap, parts_cap, masked_names;
    /* the open turn */
    bool open;
    ws_turn cur;
    ws_buf text, reply;
    bool have_last;
    int64_t last_ts;
    uint32_t session;
    ws_buf tmp;
};

int64_t ws_datetime_seconds(const ws_datetime *t)
{
    /* days from civil (proleptic Gregorian) */
    int y = t->year - (t->month <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    int m = t->month;
    unsigned doy = (unsigned)((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + t->day - 1);
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + (int64_t)doe - 719468;
    return days * 86400 + t->hour * 3600 + t->minute * 60 + t->second;
}

int ws_weekday_of(int64_t seconds)
{
    int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
    /* 1970-01-01 was a Thursday (3 with Monday = 0) */
    int64_t w = (days + 3) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

ws_pairs_builder *ws_pairs_builder_new(const char *persona, const ws_pairs_options *opt)
{
    ws_pairs_builder *b = ws_xcalloc(1, sizeof *b);
    b->persona = ws_xstrdup(persona);
    if (opt)
        b->opt = *opt;
    if (b->opt.merge_gap_s <= 0)
        b->opt.merge_gap_s = 120;
    if (b->opt.session_gap_s <= 0)
        b->opt.session_gap_s = 3600;
    if (b->opt.max_context == 0)
        b->opt.max_context = 8;
    if (b->opt.heldout_fraction == 0)
        b->opt.heldout_fraction = 0.10;
    if (b->opt.heldout_fraction < 0)
        b->opt.heldout_fraction = 0;
    if (b->opt.heldout_fraction > 0.9)
        b->opt.heldout_fraction = 0.9;
    if (b->opt.mask)
        b->mask = *b->opt.mask;
    else
        ws_mask_rules_default(&b->mask);
    b->opt.mask = NULL;
    b->arena = ws_arena_new(64 * 1024);
    b->p = ws_xcalloc(1, sizeof *b->p);
    b->p->persona = ws_arena_strndup(b->arena, persona, strlen(persona));
    return b;
}

void ws_pairs_builder_free(ws_pairs_builder *b)
{
    if (!b)
        return;
    if (b->p) {
        b->p->priv = b->arena;
        ws_pairs_free(b->p);
    } else {
        ws_arena_free(b->arena);
    }
    ws_buf_free(&b->text);
    ws_buf_free(&b->reply);
    ws_buf_free(&b->tmp);
    free(b->persona);
    free(b);
}

void ws_pairs_free(ws_pairs *p)
{
    if (!p)
        return;
    free(p->turns);
    free(p->examples);
    free(p->participants);
    free(p->display_names);
    free(p->participant_msgs);
    ws_arena_free(p->priv);
    free(p);
}

/* True when name (around direction marks and spaces) is only a phone number. */
static bool phone_name(const char *name, size_t len)
{
    size_t a = 0, e = len;
    for (;;) {
        size_t i = a;
        if (i >= e)
            break;
        uint32_t cp = ws_utf8_next(name, e, &i);
        if (!(cp == ' ' || cp == 0xA0 || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202F) ||
              (cp >= 0x2066 && cp <= 0x2069)))
            break;
        a = i;
    }
    while (e > a) {
        /* step back one code point */
        size_t st = e - 1;
        while (st > a && ((unsigned char)name[st] & 0xC0) == 0x80)
            st--;
        size_t i = st;
        uint32_t cp = ws_utf8_next(name, e, &i);
        if (!(cp == ' ' || cp == 0xA0 || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202F) ||
              (cp >= 0x2066 && cp <= 0x2069)))
            break;
        e = st;
    }
    return e > a && ws_mask_match(WS_MASK_PHONE, name + a, e - a, 0) == e - a;
}

static const char *display_name(ws_pairs_builder *b, const char *name, size_t len)
{
    if (!b->opt.no_mask && phone_name(name, len)) {
        for (size_t k = 0; k < b->mask.n; k++)
            if (b->mask.rule[k].kind == WS_MASK_PHONE) {
                char buf[96];
                const char *rep = b->mask.rule[k].replacement[0] ? b->mask.rule[k].replacement : "Contact";
                int n = snprintf(buf, sizeof buf, "%s %zu", rep, ++b->masked_names);
                b->p->n_masked++;
                return ws_arena_strndup(b->arena, buf, (size_t)n);
            }
    }
    return ws_arena_strndup(b->arena, name, len);
}

static uint32_t participant(ws_pairs_builder *b, const char *name, size_t len)
{
    ws_pairs *p = b->p;
    for (size_t i = p->n_participants; i-- > 0;)
        if (strlen(p->participants[i]) == len && memcmp(p->participants[i], name, len) == 0)
            return (uint32_t)i;
    if (p->n_participants == b->parts_cap) {
        b->parts_cap = b->parts_cap ? b->parts_cap * 2 : 8;
        p->participants = ws_xrealloc(p->participants, b->parts_cap * sizeof *p->participants);
        p->display_names = ws_xrealloc(p->display_names, b->parts_cap * sizeof *p->display_names);
        p->participant_msgs = ws_xrealloc(p->participant_msgs, b->parts_cap * sizeof *p->participant_msgs);
    }
    p->participants[p->n_participants] = ws_arena_strndup(b->arena, name, len);
    p->display_names[p->n_participants] = display_name(b, name, len);
    p->participant_msgs[p->n_participants] = 0;
    return (uint32_t)p->n_participants++;
}

static void close_turn(ws_pairs_builder *b)
{
    if (!b->open)
        return;
    ws_pairs *p = b->p;
    if (p->n_turns == b->turns_cap) {
        b->turns_cap = b->turns_cap ? b->turns_cap * 2 : 256;
        p->turns = ws_xrealloc(p->turns, b->turns_cap * sizeof *p->turns);
    }
    ws_turn t = b->cur;
    t.text = ws_arena_strndup(b->arena, b->text.data ? b->text.data : "", b->text.len);
    t.reply = b->reply.len ? ws_arena_strndup(b->arena, b->reply.data, b->reply.len) : NULL;
    p->turns[p->n_turns++] = t;
    ws_buf_reset(&b->text);
    ws_buf_reset(&b->reply);
    b->open = false;
}

void ws_pairs_builder_add(ws_pairs_builder *b, const ws_message *m)
{
    ws_pairs *p = b->p;
    p->n_messages++;
    if (m->kind == WS_MSG_SYSTEM || !m->author) {
        p->n_system_dropped++;
        return;
    }
    int64_t ts = ws_datetime_seconds(&m->ts);
    int64_t gap = b->have_last ? ts - b->last_ts : 0;
    if (gap < 0)
        gap = 0; /* clock went back (time-zone change): treat as simultaneous */
    bool new_session = !b->have_last || gap > b->opt.session_gap_s;
    if (new_session && b->have_last)
        b->session++;
    b->have_last = true;
    b->last_ts = ts;
    uint32_t who = participant(b, m->author, m->author_len);
    p->participant_msgs[who]++;
    bool merge = b->open && !new_session && b->cur.author_idx == who && gap <= b->opt.merge_gap_s;
    if (!merge) {
        close_turn(b);
        memset(&b->cur, 0, sizeof b->cur);
        b->cur.author = p->display_names[who];
        b->cur.author_idx = who;
        b->cur.start = ts;
        b->cur.session = b->session;
        b->cur.hour = (uint8_t)(m->ts.hour >= 0 && m->ts.hour < 24 ? m->ts.hour : 0);
        b->cur.weekday = (uint8_t)ws_weekday_of(ts);
        b->cur.persona = strcmp(p->participants[who], b->persona) == 0;
        b->open = true;
    }
    b->cur.end = b->cur.n_bubbles == 0 || ts > b->cur.end ? ts : b->cur.end;
    b->cur.n_bubbles++;
    if (b->text.len)
        ws_buf_putc(&b->text, '\n');
    if (m->kind == WS_MSG_MEDIA) {
        p->n_media++;
        ws_buf_puts(&b->text, WS_PAIRS_MEDIA_MARKER);
        return;
    }
    if (m->kind == WS_MSG_DELETED) {
        p->n_deleted++;
        ws_buf_puts(&b->text, WS_PAIRS_DELETED_MARKER);
        return;
    }
    ws_buf_reset(&b->tmp);
    const char *body = m->text ? m->text : "";
    size_t blen = m->text ? m->text_len : 0;
    if (!b->opt.no_mask) {
        p->n_masked += ws_mask_apply(&b->mask, body, blen, &b->tmp);
        body = b->tmp.data ? b->tmp.data : "";
        blen = b->tmp.len;
    }
    ws_buf_append(&b->text, body, blen);
    if (b->reply.len)
        ws_buf_putc(&b->reply, '\n');
    ws_buf_append(&b->reply, body, blen);
}

typedef struct {
    int64_t t;
    uint32_t ex;
} by_time;

static int cmp_time(const void *a, const void *b)
{
    const by_time *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->ex < y->ex ? -1 : x->ex > y->ex;
}

int ws_pairs_builder_finish(ws_pairs_builder *b, ws_pairs **out, ws_error *err)
{
    int rc = 0;
    *out = NULL;
    close_turn(b);
    ws_pairs *p = b->p;
    uint32_t me = UINT32_MAX;
    for (size_t i = 0; i < p->n_participants; i++)
        if (strcmp(p->participants[i], b->persona) == 0)
            me = (uint32_t)i;
    if (p->n_turns == 0) {
        rc = ws_error_set(err, WS_EEMPTY, "the chat holds no messages from anyone");
        goto out;
    }
    if (me == UINT32_MAX) {
        ws_buf names = WS_BUF_INIT;
        for (size_t i = 0; i < p->n_participants && names.len < 300; i++)
            ws_buf_printf(&names, "%s\"%s\"", i ? ", " : "", p->participants[i]);
        rc = ws_error_set(err, WS_EINVAL, "'%s' wrote nothing in this chat; participants: %s", b->persona,
                          names.data ? names.data : "(none)");
        ws_buf_free(&names);
        goto out;
    }
    p->n_sessions = p->turns[p->n_turns - 1].session + 1;
    p->examples = ws_xcalloc(p->n_turns, sizeof *p->examples);
    for (size_t i = 1; i < p->n_turns; i++) {
        const ws_turn *t = &p->turns[i], *prev = &p->turns[i - 1];
        if (!t->persona || !t->reply || prev->persona || prev->session != t->session)
            continue;
        size_t first = i;
        while (first > 0 && i - first < b->opt.max_context && p->turns[first - 1].session == t->session)
            first--;
        ws_example *e = &p->examples[p->n_examples++];
        e->turn = (uint32_t)i;
        e->ctx_first = (uint32_t)first;
        e->n_context = (uint32_t)(i - first);
        double rs = (double)(t->start - prev->end);
        e->response_s = rs > 0 ? rs : 0;
    }
    /* hold out the last fraction by time */
    if (p->n_examples >= 2 && b->opt.heldout_fraction > 0) {
        size_t h = (size_t)((double)p->n_examples * b->opt.heldout_fraction + 0.5);
        if (h == 0)
            h = 1;
        by_time *order = ws_xmalloc(p->n_examples * sizeof *order);
        for (size_t i = 0; i < p->n_examples; i++)
            order[i] = (by_time){p->turns[p->examples[i].turn].start, (uint32_t)i};
        qsort(order, p->n_examples, sizeof *order, cmp_time);
        for (size_t i = p->n_examples - h; i < p->n_examples; i++)
            p->examples[order[i].ex].heldout = true;
        p->n_heldout = h;
        free(order);
    }
    p->priv = b->arena;
    *out = p;
    b->p = NULL;
    b->arena = NULL;
out:
    ws_pairs_builder_free(b);
    return rc;
}

int ws_pairs_from_chat(ws_chat_reader *r, const char *persona, const ws_pairs_options *opt, ws_pairs **out,
                       ws_error *err)
{
    *out = NULL;
    ws_pairs_builder *b = ws_pairs_builder_new(persona, opt);
    ws_message m;
    int rc;
    while ((rc = ws_chat_next(r, &m, err)) == 1)
        ws_pairs_builder_add(b, &m);
    if (rc < 0) {
        ws_pairs_builder_free(b);
        return rc;
    }
    return ws_pairs_builder_finish(b, out, err);
}

int ws_pairs_from_file(const char *path, const char *persona, const ws_pairs_options *opt, ws_pairs **out,
                       ws_error *err)
{
    *out = NULL;
    ws_chat_reader *r = NULL;
    int rc = ws_chat_open_file(path, NULL, &r, err);
    if (rc)
        return rc;
    rc = ws_pairs_from_chat(r, persona, opt, out, err);
    ws_chat_close(r);
    return rc;
}
