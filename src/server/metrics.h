/* Prometheus metrics: counters, gauges and histograms registered at start-up, updated from
 * any thread with relaxed atomics, rendered in the text exposition format (version 0.0.4).
 *
 * Ownership: a ws_metrics owns every metric registered on it; pointers returned by the
 * register calls stay valid until ws_metrics_free. Registration is NOT thread-safe (do it
 * before threads start); updates and ws_metrics_render are thread-safe. */
#ifndef WS_SERVER_METRICS_H
#define WS_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define WS_HIST_MAX_BUCKETS 24

typedef enum { WS_METRIC_COUNTER, WS_METRIC_GAUGE, WS_METRIC_HISTOGRAM } ws_metric_type;

typedef struct ws_metric {
    ws_metric_type type;
    char *name;
    char *labels; /* 'route="/v1/reply",code="2xx"' or "" */
    char *help;
    _Atomic int64_t value; /* counter, gauge */
    size_t n_bounds;       /* histogram */
    double bounds[WS_HIST_MAX_BUCKETS];
    _Atomic uint64_t buckets[WS_HIST_MAX_BUCKETS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_ns;                           /* sum of observations x 1e9 */
    _Atomic uint64_t count;
} ws_metric;

typedef struct ws_metrics ws_metrics;

ws_metrics *ws_metrics_new(void);
void ws_metrics_free(ws_metrics *m); /* NULL is a no-op */

/* Registers a metric; labels may be NULL. Metrics of one name must share type and help. */
ws_metric *ws_metrics_counter(ws_metrics *m, const char *name, const char *labels, const char *help);
ws_metric *ws_metrics_gauge(ws_metrics *m, const char *name, const char *labels, const char *help);
/* bounds: increasing upper bounds (at most WS_HIST_MAX_BUCKETS); NULL = latency defaults
 * (0.5 ms ... 10 s). */
ws_metric *ws_metrics_histogram(ws_metrics *m, const char *name, const char *labels, const char *help,
                                const double *bounds, size_t n_bounds);

static inline void ws_metric_add(ws_metric *c, int64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}
static inline void ws_metric_set(ws_metric *g, int64_t v)
{
    atomic_store_explicit(&g->value, v, memory_order_relaxed);
}
static inline int64_t ws_metric_get(const ws_metric *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}
void ws_metric_observe(ws_metric *h, double v);

/* The metrics every role exports besides its own (names shared by serve, ai and worker):
 * ws_build_info, ws_process_start_time_seconds, ws_log_lines_total / ws_log_bytes_total,
 * the trace exporter's ws_trace_spans_{exported,dropped}_total and ws_trace_queue_length,
 * and (with_ai: a role running the in-process engine) ws_model_cache_{hits,misses}_total,
 * ws_models_resident and ws_tokens_generated_total. Register before threads start; refresh
 * just before rendering (any thread). */
typedef struct ws_proc_metrics {
    ws_metric *build, *start, *log_lines, *log_bytes, *spans_exported, *spans_dropped, *spans_queued;
    ws_metric *model_hits, *model_misses, *resident, *tokens;
} ws_proc_metrics;
void ws_proc_metrics_register(ws_metrics *m, ws_proc_metrics *pm, const char *role, bool with_ai);
void ws_proc_metrics_refresh(ws_proc_metrics *pm);

/* Appends the whole exposition to out. */
int ws_metrics_render(ws_metrics *m, ws_buf *out);

#endif
