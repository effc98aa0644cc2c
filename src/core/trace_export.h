/* The span exporter: OTLP/HTTP with JSON encoding (POST <endpoint>/v1/traces) from one
 * background thread. Finished sampled spans go into a bounded queue; a full queue drops the
 * span and counts it (a request never waits for the exporter); the thread sends a batch
 * when batch_max spans are waiting or every flush_ms. A failed send drops its batch
 * (counted) and the next one is tried as usual.
 *
 * Thread-safety: start/stop from the main thread (once each, before/after the threads that
 * make spans); ws_trace_export_stats from any thread. */
#ifndef WS_CORE_TRACE_EXPORT_H
#define WS_CORE_TRACE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/trace.h"

typedef struct ws_trace_export_opts {
    const char *endpoint;     /* "http://collector:4318" (the path /v1/traces is added) */
    const char *service_name; /* resource service.name, e.g. "whatstyle-serve" */
    double ratio;             /* sampling ratio of new traces, 0..1 */
    size_t queue_max;         /* spans waiting; default 4096 */
    size_t batch_max;         /* spans per request; default 512 */
    int flush_ms;             /* default 1000 */
    int timeout_ms;           /* per request; default 5000 */
} ws_trace_export_opts;

typedef struct ws_trace_export_stats {
    uint64_t exported; /* spans the collector accepted */
    uint64_t dropped;  /* spans dropped: queue full or a failed send */
    uint64_t failed_sends;
    uint64_t queued; /* waiting now */
} ws_trace_export_stats;

/* Starts the exporter and installs it as the span sink (core/trace.h) with the ratio.
 * Errors: WS_EINVAL (no endpoint, ratio outside 0..1), WS_ECONFLICT (already running). */
int ws_trace_export_start(const ws_trace_export_opts *opts, ws_error *err);
/* Sends what is queued (one last try), stops the thread, uninstalls the sink. No-op when
 * not running. */
void ws_trace_export_stop(void);
void ws_trace_export_get_stats(ws_trace_export_stats *out);

/* Appends the OTLP/JSON ExportTraceServiceRequest of n spans to out (for tests). */
void ws_trace_export_encode(ws_buf *out, const char *service_name, ws_span *const *spans, size_t n);

#endif
