/* W3C trace context, spans and the per-thread current span (see trace.h). */
#include "core/trace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/error.h"
#include "core/hex.h"
#include "core/mem.h"

static double ratio;                     /* set before threads start */
static void (*sink)(ws_span *sp);        /* likewise */
static _Thread_local ws_span *current;   /* the thread's current span */
static _Thread_local uint64_t rng_state; /* xorshift64*, seeded from getrandom */

void ws_trace_set_ratio(double r)
{
    ratio = r < 0 ? 0 : r > 1 ? 1 : r;
}

void ws_trace_set_sink(void (*fn)(ws_span *sp))
{
    sink = fn;
}

static uint64_t rnd(void)
{
    if (!rng_state) {
        if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state || !rng_state)
            rng_state = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull | 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void fill_random(uint8_t *p, size_t n)
{
    while (n) {
        uint64_t v = rnd();
        size_t k = n < 8 ? n : 8;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static int hex_field(const char *s, size_t n_hex, uint8_t *out)
{
    for (size_t i = 0; i < n_hex / 2; i++) {
        int hi = ws_hex_digit(s[2 * i]), lo = ws_hex_digit(s[2 * i + 1]);
        /* the spec allows lower-case hex only */
        if (hi < 0 || lo < 0 || (s[2 * i] >= 'A' && s[2 * i] <= 'F') ||
            (s[2 * i + 1] >= 'A' && s[2 * i + 1] <= 'F'))
            return WS_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int ws_traceparent_parse(const char *s, size_t n, ws_trace_ctx *out)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n < WS_TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return WS_EINVAL;
    uint8_t ver, flags;
    ws_trace_ctx c = {0};
    if (hex_field(s, 2, &ver) || ver == 0xff || hex_field(s + 3, 32, c.trace_id) ||
        hex_field(s + 36, 16, c.span_id) || hex_field(s + 53, 2, &flags))
        return WS_EINVAL;
    /* version 00 is exactly 55 bytes; a later version may append "-..." fields */
    if ((ver == 0 && n != WS_TRACEPARENT_LEN) || (n > WS_TRACEPARENT_LEN && s[WS_TRACEPARENT_LEN] != '-'))
        return WS_EINVAL;
    if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8))
        return WS_EINVAL;
    c.sampled = flags & 1;
    *out = c;
    return 0;
}

void ws_trace_id_hex(const ws_trace_ctx *c, char *out33)
{
    ws_hex_encode(c->trace_id, 16, out33);
}

void ws_span_id_hex(const ws_trace_ctx *c, char *out17)
{
    ws_hex_encode(c->span_id, 8, out17);
}

void ws_traceparent_format(const ws_trace_ctx *c, char *out)
{
    memcpy(out, "00-", 3);
    ws_hex_encode(c->trace_id, 16, out + 3);
    out[35] = '-';
    ws_hex_encode(c->span_id, 8, out + 36);
    memcpy(out + 52, c->sampled ? "-01" : "-00", 4);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

ws_span *ws_span_begin(const char *name, ws_span_kind kind, const ws_trace_ctx *remote)
{
    ws_span *sp = ws_xcalloc(1, sizeof *sp);
    const ws_trace_ctx *parent = remote ? remote : current ? &current->ctx : NULL;
    if (parent) {
        memcpy(sp->ctx.trace_id, parent->trace_id, 16);
        memcpy(sp->parent_id, parent->span_id, 8);
        sp->has_parent = true;
        sp->ctx.sampled = parent->sampled;
    } else {
        fill_random(sp->ctx.trace_id, 16);
        sp->ctx.sampled = ratio > 0 && (double)(rnd() >> 11) * 0x1.0p-53 < ratio;
    }
    fill_random(sp->ctx.span_id, 8);
    sp->kind = kind;
    if (sp->ctx.sampled) {
        sp->name = ws_xstrdup(name);
        sp->start_ns = now_ns();
    }
    sp->prev_current = current;
    current = sp;
    return sp;
}

ws_span *ws_span_begin_child(const char *name, ws_span_kind kind)
{
    return current && current->ctx.sampled ? ws_span_begin(name, kind, NULL) : NULL;
}

void ws_span_attr_str(ws_span *sp, const char *key, const char *value)
{
    if (!sp || !sp->ctx.sampled || sp->n_attrs == WS_SPAN_MAX_ATTRS || !value)
        return;
    ws_span_attr *a = &sp->attrs[sp->n_attrs++];
    a->key = key;
    a->str = ws_xstrdup(value);
}

void ws_span_attr_int(ws_span *sp, const char *key, int64_t value)
{
    if (!sp || !sp->ctx.sampled || sp->n_attrs == WS_SPAN_MAX_ATTRS)
        return;
    ws_span_attr *a = &sp->attrs[sp->n_attrs++];
    a->key = key;
    a->str = NULL;
    a->num = value;
}

void ws_span_error(ws_span *sp, const char *description)
{
    if (!sp || !sp->ctx.sampled)
        return;
    free(sp->error);
    sp->error = ws_xstrdup(description ? description : "error");
}

void ws_span_free(ws_span *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < sp->n_attrs; i++)
        free(sp->attrs[i].str);
    free(sp->name);
    free(sp->error);
    free(sp);
}

void ws_span_end(ws_span *sp)
{
    if (!sp)
        return;
    if (current == sp)
        current = sp->prev_current;
    if (sp->ctx.sampled && sink) {
        sp->end_ns = now_ns();
        sink(sp);
        return;
    }
    ws_span_free(sp);
}

ws_span *ws_span_activate(ws_span *sp)
{
    ws_span *prev = current;
    current = sp;
    if (sp)
        sp->prev_current = prev;
    return prev;
}

void ws_span_deactivate(ws_span *previous)
{
    current = previous;
}

const ws_trace_ctx *ws_span_ctx(const ws_span *sp)
{
    return sp ? &sp->ctx : NULL;
}

const ws_trace_ctx *ws_trace_current(void)
{
    return current ? &current->ctx : NULL;
}

int ws_trace_current_traceparent(char *out)
{
    if (!current)
        return WS_ENOENT;
    ws_traceparent_format(&current->ctx, out);
    return 0;
}
