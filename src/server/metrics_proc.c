/* The metrics every role exports besides its own: build, start time, log volume, the trace
 * exporter and the in-process AI's model cache and tokens (see metrics.h). */
#include "server/metrics.h"

#include <stdio.h>
#include <time.h>

#include "ai/ai_local.h"
#include "clone/clone.h"
#include "core/log.h"
#include "core/trace_export.h"
#include "core/version.h"

void ws_proc_metrics_register(ws_metrics *m, ws_proc_metrics *pm, const char *role, bool with_ai)
{
    char labels[96];
    snprintf(labels, sizeof labels, "version=\"%s\",role=\"%s\"", WS_VERSION, role);
    pm->build =
        ws_metrics_gauge(m, "ws_build_info", labels, "Always 1: the version and role of this process.");
    ws_metric_set(pm->build, 1);
    pm->start = ws_metrics_gauge(m, "ws_process_start_time_seconds", NULL,
                                 "Start time of the process (Unix seconds).");
    ws_metric_set(pm->start, (int64_t)time(NULL));
    pm->log_lines = ws_metrics_counter(m, "ws_log_lines_total", NULL, "Log lines written.");
    pm->log_bytes = ws_metrics_counter(m, "ws_log_bytes_total", NULL, "Bytes of log lines written.");
    pm->spans_exported =
        ws_metrics_counter(m, "ws_trace_spans_exported_total", NULL, "Spans the OTLP collector accepted.");
    pm->spans_dropped = ws_metrics_counter(m, "ws_trace_spans_dropped_total", NULL,
                                           "Sampled spans dropped (exporter queue full or a failed send).");
    pm->spans_queued = ws_metrics_gauge(m, "ws_trace_queue_length", NULL, "Spans waiting for the exporter.");
    pm->model_hits = pm->model_misses = pm->resident = pm->tokens = NULL;
    if (!with_ai)
        return;
    pm->model_hits = ws_metrics_counter(m, "ws_model_cache_hits_total", NULL,
                                        "Replies that found the user's clone loaded.");
    pm->model_misses = ws_metrics_counter(m, "ws_model_cache_misses_total", NULL,
                                          "Replies that had to load the user's clone.");
    pm->resident = ws_metrics_gauge(m, "ws_models_resident", NULL, "Users' clones (adapters) loaded now.");
    pm->tokens =
        ws_metrics_counter(m, "ws_tokens_generated_total", NULL, "Tokens sampled by reply generation.");
}

void ws_proc_metrics_refresh(ws_proc_metrics *pm)
{
    ws_metric_set(pm->log_lines, (int64_t)ws_log_lines());
    ws_metric_set(pm->log_bytes, (int64_t)ws_log_bytes());
    ws_trace_export_stats ts;
    ws_trace_export_get_stats(&ts);
    ws_metric_set(pm->spans_exported, (int64_t)ts.exported);
    ws_metric_set(pm->spans_dropped, (int64_t)ts.dropped);
    ws_metric_set(pm->spans_queued, (int64_t)ts.queued);
    if (!pm->model_hits)
        return;
    ws_ai_local_stats as;
    ws_ai_local_get_stats(&as);
    ws_metric_set(pm->model_hits, (int64_t)as.cache_hits);
    ws_metric_set(pm->model_misses, (int64_t)as.cache_misses);
    ws_metric_set(pm->resident, as.resident);
    ws_metric_set(pm->tokens, (int64_t)ws_clone_tokens_generated());
}
