/* Prometheus metrics registry and text exposition (see metrics.h). */
#include "server/metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

struct ws_metrics {
    ws_metric **items;
    size_t n, cap;
};

static const double default_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};

ws_metrics *ws_metrics_new(void)
{
    return ws_xcalloc(1, sizeof(ws_metrics));
}

void ws_metrics_free(ws_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i]->name);
        free(m->items[i]->labels);
        free(m->items[i]->help);
        free(m->items[i]);
    }
    free(m->items);
    free(m);
}

static ws_metric *add(ws_metrics *m, ws_metric_type t, const char *name, const char *labels, const char *help)
{
    ws_metric *x = ws_xcalloc(1, sizeof *x);
    x->type = t;
    x->name = ws_xstrdup(name);
    x->labels = ws_xstrdup(labels ? labels : "");
    x->help = ws_xstrdup(help ? help : "");
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->items = ws_xrealloc(m->items, m->cap * sizeof *m->items);
    }
    m->items[m->n++] = x;
    return x;
}

ws_metric *ws_metrics_counter(ws_metrics *m, const char *name, const char *labels, const char *help)
{
    return add(m, WS_METRIC_COUNTER, name, labels, help);
}

ws_metric *ws_metrics_gauge(ws_metrics *m, const char *name, const char *labels, const char *help)
{
    return add(m, WS_METRIC_GAUGE, name, labels, help);
}

ws_metric *ws_metrics_histogram(ws_metrics *m, const char *name, const char *labels, const char *help,
                                const double *bounds, size_t n_bounds)
{
    ws_metric *h = add(m, WS_METRIC_HISTOGRAM, name, labels, help);
    if (!bounds) {
        bounds = default_bounds;
        n_bounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    if (n_bounds > WS_HIST_MAX_BUCKETS)
        n_bounds = WS_HIST_MAX_BUCKETS;
    memcpy(h->bounds, bounds, n_bounds * sizeof *bounds);
    h->n_bounds = n_bounds;
    return h;
}

void ws_metric_observe(ws_metric *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (v > 0 && isfinite(v))
        atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(v * 1e9), memory_order_relaxed);
}

static const char *type_name(ws_metric_type t)
{
    return t == WS_METRIC_COUNTER ? "counter" : t == WS_METRIC_GAUGE ? "gauge" : "histogram";
}

/* "{labels,extra}" or "{extra}" or "{labels}" or "". */
static void put_labels(ws_buf *out, const char *labels, const char *extra)
{
    if (!*labels && !extra)
        return;
    ws_buf_putc(out, '{');
    ws_buf_puts(out, labels);
    if (extra) {
        if (*labels)
            ws_buf_putc(out, ',');
        ws_buf_puts(out, extra);
    }
    ws_buf_putc(out, '}');
}

int ws_metrics_render(ws_metrics *m, ws_buf *out)
{
    for (size_t i = 0; i < m->n; i++) {
        ws_metric *x = m->items[i];
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            if (!strcmp(m->items[j]->name, x->name))
                first = false;
        if (first)
            ws_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, type_name(x->type));
        if (x->type != WS_METRIC_HISTOGRAM) {
            ws_buf_puts(out, x->name);
            put_labels(out, x->labels, NULL);
            ws_buf_printf(out, " %lld\n", (long long)ws_metric_get(x));
            continue;
        }
        uint64_t cum = 0;
        char le[64];
        for (size_t b = 0; b <= x->n_bounds; b++) {
            cum += atomic_load_explicit(&x->buckets[b], memory_order_relaxed);
            if (b < x->n_bounds)
                snprintf(le, sizeof le, "le=\"%g\"", x->bounds[b]);
            else
                snprintf(le, sizeof le, "le=\"+Inf\"");
            ws_buf_printf(out, "%s_bucket", x->name);
            put_labels(out, x->labels, le);
            ws_buf_printf(out, " %llu\n", (unsigned long long)cum);
        }
        ws_buf_printf(out, "%s_sum", x->name);
        put_labels(out, x->labels, NULL);
        ws_buf_printf(out, " %.9f\n", (double)atomic_load_explicit(&x->sum_ns, memory_order_relaxed) / 1e9);
        ws_buf_printf(out, "%s_count", x->name);
        put_labels(out, x->labels, NULL);
        /* _count equals the +Inf bucket (cum) so the exposition is self-consistent */
        ws_buf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    return 0;
}
