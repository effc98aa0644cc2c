#!/usr/bin/env python3
"""Writes the Grafana dashboards of deploy/grafana/ (one per role: serve, ai, worker).

Each is a plain dashboard JSON (schemaVersion 39) with a Prometheus datasource variable and
a pod variable; every query names metrics that `whatstyle serve` exports (checked by
tests/cli/ops_deploy.sh). Run after changing a panel: python3 tools/make-dashboards.py [OUT_DIR]
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, title, exprs, unit, x, y, w=12, h=8, kind="timeseries", desc=""):
    targets = [{"refId": chr(65 + i), "expr": e, "legendFormat": lf, "datasource": DS}
               for i, (e, lf) in enumerate(exprs)]
    return {"id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}


def dashboard(uid, title, role, panels):
    return {
        "uid": uid, "title": title, "tags": ["whatstyle", role], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "pod", "type": "query", "datasource": DS, "includeAll": True, "multi": True,
             "query": {"query": 'label_values(ws_build_info{role="%s"}, pod)' % role, "refId": "pods"},
             "refresh": 2, "label": "pod"},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


P = 'pod=~"$pod"'

serve = dashboard("whatstyle-serve", "WhatStyle / gateway (serve)", "serve", [
    panel(1, "Requests per second by route", [
        ('sum by (route) (rate(ws_http_requests_total{%s}[5m]))' % P, "{{route}}")], "reqps", 0, 0,
        desc="Rate: every answered request, by route pattern."),
    panel(2, "Errors (5xx share) and refusals", [
        ('sum(rate(ws_http_requests_total{code="5xx",%s}[5m])) / clamp_min(sum(rate(ws_http_requests_total{%s}[5m])), 1e-9)' % (P, P), "5xx share"),
        ('sum(rate(ws_rate_limited_total{%s}[5m]))' % P, "429 per s"),
        ('sum(rate(ws_auth_failures_total{%s}[5m]))' % P, "401 per s")], "percentunit", 12, 0,
        desc="Errors: the alert fires above 2% for 5 minutes."),
    panel(3, "Latency p50 / p99 by route", [
        ('histogram_quantile(0.5, sum by (le, route) (rate(ws_http_request_duration_seconds_bucket{%s}[5m])))' % P, "p50 {{route}}"),
        ('histogram_quantile(0.99, sum by (le, route) (rate(ws_http_request_duration_seconds_bucket{%s}[5m])))' % P, "p99 {{route}}")],
        "s", 0, 8, desc="Duration: from the complete head to the response queued."),
    panel(4, "Reply cache hit ratio", [
        ('sum(rate(ws_reply_cache_hits_total{%s}[5m])) / clamp_min(sum(rate(ws_reply_cache_hits_total{%s}[5m])) + sum(rate(ws_reply_cache_misses_total{%s}[5m])), 1e-9)' % (P, P, P), "hit ratio")],
        "percentunit", 12, 8),
    panel(5, "AI calls: rate, errors, p99", [
        ('sum(rate(ws_ai_calls_total{%s}[5m]))' % P, "calls/s"),
        ('sum(rate(ws_ai_errors_total{%s}[5m]))' % P, "errors/s"),
        ('histogram_quantile(0.99, sum by (le) (rate(ws_ai_generate_duration_seconds_bucket{%s}[5m])))' % P, "p99 s")],
        "short", 0, 16),
    panel(6, "Connections and requests in flight", [
        ('sum(ws_http_connections{%s})' % P, "open connections"),
        ('sum(ws_http_requests_in_flight{%s})' % P, "in flight"),
        ('sum(rate(ws_http_connections_rejected_total{%s}[5m]))' % P, "rejected/s")], "short", 12, 16),
    panel(7, "Conversation writer", [
        ('sum(ws_writer_queue_length{%s})' % P, "queued rows"),
        ('sum(rate(ws_conversations_written_total{%s}[5m]))' % P, "written/s"),
        ('sum(rate(ws_conversations_failed_total{%s}[5m]))' % P, "failed/s")], "short", 0, 24),
    panel(8, "MCP tool calls", [
        ('sum(rate(ws_mcp_tool_calls_total{%s}[5m]))' % P, "calls/s")], "short", 12, 24),
    panel(9, "Logs and traces", [
        ('sum(rate(ws_log_bytes_total{%s}[5m]))' % P, "log bytes/s"),
        ('sum(rate(ws_trace_spans_exported_total{%s}[5m]))' % P, "spans exported/s"),
        ('sum(rate(ws_trace_spans_dropped_total{%s}[5m]))' % P, "spans dropped/s")], "short", 0, 32),
    panel(10, "Version and uptime", [
        ('count by (version) (ws_build_info{role="serve",%s})' % P, "{{version}}"),
        ('time() - max(ws_process_start_time_seconds{%s})' % P, "uptime")], "short", 12, 32, kind="stat"),
])

ai = dashboard("whatstyle-ai", "WhatStyle / AI service", "ai", [
    panel(1, "Generate calls seen by the gateway", [
        ('sum(rate(ws_ai_calls_total[5m]))', "calls/s"),
        ('sum(rate(ws_ai_errors_total[5m]))', "errors/s")], "reqps", 0, 0),
    panel(2, "Generate latency p50 / p99", [
        ('histogram_quantile(0.5, sum by (le) (rate(ws_ai_generate_duration_seconds_bucket[5m])))', "p50"),
        ('histogram_quantile(0.99, sum by (le) (rate(ws_ai_generate_duration_seconds_bucket[5m])))', "p99")], "s", 12, 0),
    panel(3, "Tokens generated per second", [
        ('sum by (pod) (rate(ws_tokens_generated_total{%s}[5m]))' % P, "{{pod}}")], "short", 0, 8),
    panel(4, "Model cache: hit ratio and loads", [
        ('sum(rate(ws_model_cache_hits_total{%s}[5m])) / clamp_min(sum(rate(ws_model_cache_hits_total{%s}[5m])) + sum(rate(ws_model_cache_misses_total{%s}[5m])), 1e-9)' % (P, P, P), "hit ratio"),
        ('sum(rate(ws_model_cache_misses_total{%s}[5m]))' % P, "loads/s")], "percentunit", 12, 8),
    panel(5, "Adapters resident", [
        ('sum by (pod) (ws_models_resident{%s})' % P, "{{pod}}")], "short", 0, 16),
    panel(6, "Version and uptime", [
        ('count by (version) (ws_build_info{role="ai",%s})' % P, "{{version}}"),
        ('time() - max(ws_process_start_time_seconds{%s})' % P, "uptime")], "short", 12, 16, kind="stat"),
])

worker = dashboard("whatstyle-worker", "WhatStyle / training (worker)", "worker", [
    panel(1, "Training jobs by state", [
        ('max by (state) (ws_training_jobs)', "{{state}}")], "short", 0, 0),
    panel(2, "Queue lag (oldest queued job)", [
        ('max(ws_training_queue_lag_seconds)', "lag")], "s", 12, 0, desc="The alert fires above 15 minutes."),
    panel(3, "Jobs accepted, completed, failed", [
        ('sum(rate(ws_training_jobs_queued_total[1h])) * 3600', "accepted/h"),
        ('sum(rate(ws_training_jobs_completed_total[1h])) * 3600', "completed/h"),
        ('sum(rate(ws_training_jobs_failed_total[1h])) * 3600', "failed/h")], "short", 0, 8),
    panel(4, "Job duration p50 / p90", [
        ('histogram_quantile(0.5, sum by (le) (rate(ws_training_job_duration_seconds_bucket[1h])))', "p50"),
        ('histogram_quantile(0.9, sum by (le) (rate(ws_training_job_duration_seconds_bucket[1h])))', "p90")], "s", 12, 8),
    panel(5, "Version and uptime", [
        ('count by (version) (ws_build_info{role="worker",%s})' % P, "{{version}}"),
        ('time() - max(ws_process_start_time_seconds{%s})' % P, "uptime")], "short", 0, 16, kind="stat"),
])

import sys
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "grafana")
for name, d in (("serve", serve), ("ai", ai), ("worker", worker)):
    with open(os.path.join(out, "whatstyle-%s.json" % name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
