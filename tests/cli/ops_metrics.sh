#!/usr/bin/env bash
# The Prometheus exposition of `whatstyle serve` passes `promtool check metrics` (names,
# types, HELP, units, counters ending in _total) and carries the RED metrics (requests by
# route/method/code class, duration histograms) and the domain ones: training jobs by state
# and queue lag, job duration, model cache, tokens, log volume and the trace exporter.
# Usage: ops_metrics.sh path/to/whatstyle
set -euo pipefail
bin=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
bash "$root/tools/setup-ops-tools.sh" promtool
data=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$data/log"; exit 1; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
key=$("$bin" keys create --data "$data" --user frank 2>/dev/null)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --no-training > "$data/log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
curl -s -o /dev/null "$base/v1/me"                                   # 401
curl -s -o /dev/null -H "Authorization: Bearer $key" "$base/v1/me"   # 200
curl -s -o /dev/null "$base/nowhere"                                 # 404, unmatched
printf '12/01/2024, 10:00 - Ann: hi\n' > "$data/chat.txt"
curl -s -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' \
  --data-binary @"$data/chat.txt" "$base/v1/exports?persona=Ann"    # queued (no trainer here)
sleep 1.1   # the job gauges refresh at most once a second
curl -sf "$base/metrics" > "$data/metrics" || fail "GET /metrics"
promtool check metrics < "$data/metrics" || fail "promtool check metrics"
has() { grep -Eq "$1" "$data/metrics" || fail "missing: $1"; }
has '^ws_http_requests_total\{route="/v1/me",method="GET",code="4xx"\} 1$'
has '^ws_http_requests_total\{route="/v1/me",method="GET",code="2xx"\} 1$'
has '^ws_http_requests_total\{route="unmatched",method="\*",code="4xx"\} 1$'
has '^ws_http_request_duration_seconds_bucket\{route="/v1/reply",method="POST",le="\+Inf"\} 0$'
has '^ws_training_jobs\{state="queued"\} 1$'
has '^ws_training_queue_lag_seconds [0-9]+$'
has '^# TYPE ws_training_job_duration_seconds histogram$'
has '^ws_build_info\{version="[0-9.]+",role="serve"\} 1$'
has '^ws_log_lines_total [1-9][0-9]*$'
for m in ws_model_cache_hits_total ws_model_cache_misses_total ws_models_resident ws_tokens_generated_total \
         ws_trace_spans_dropped_total ws_trace_spans_exported_total ws_reply_cache_hits_total ws_ai_generate_duration_seconds; do
  has "^# TYPE $m "
done
kill -TERM $pid; wait $pid; pid=
echo ok
