#!/usr/bin/env bash
# Benchmark (not a test): what logging and tracing cost on the cached-reply path of
# `POST /v1/reply` of the real `whatstyle serve` (a clone trained from scratch for 3 s, every
# measured request a reply-cache hit), with wrk. Configurations, run in turn BENCH_REPEAT
# times (default 3) in the same run, medians reported:
#   quiet   WS_LOG_LEVEL=warn, no tracing            (the floor)
#   logs    request log lines (JSON, to a file), no tracing
#   t1      logs + tracing at 1% to a real Jaeger v2 (OTLP/HTTP)
#   t100    logs + tracing at 100%
# plus the server's CPU time per request (user + system from /proc, which moves much less than
# req/s when other jobs load the machine; the collector's (Jaeger's) CPU per request is printed
# apart: it shares the 2 cores here, in a cluster it runs elsewhere) and the
# log volume per request (bytes and lines, from ws_log_bytes_total).
# Usage: bash bench/ops_overhead.sh [SECONDS per run, default 5] [CONNECTIONS, default 64]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}; conns=${2:-64}; repeat=${BENCH_REPEAT:-3}
bin=$root/build/whatstyle
command -v wrk >/dev/null || { echo "wrk missing (apt-get install wrk)"; exit 1; }
bash "$root/tools/setup-ops-tools.sh" jaeger
jaeger=${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}/jaeger-v1.75.0
work=$(mktemp -d)
srv= jpid=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; [ -n "$jpid" ] && kill $jpid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
export JQ_HTTP=$(free_port) JQ_GRPC=$(free_port) JQ_HEALTH=$(free_port) JQ_OTLP=$(free_port)
"$jaeger" --config "file:$root/tests/fixtures/ops/jaeger.yaml" > "$work/jaeger.log" 2>&1 &
jpid=$!
key=$(WS_BASE_MODEL=none "$bin" keys create --data "$work" --user bench 2>/dev/null)
port=$(free_port); base="http://127.0.0.1:$port"
start() { # start LEVEL [serve options...]
  local level=$1; shift
  WS_BASE_MODEL=none WS_LOG_LEVEL=$level "$bin" serve --port "$port" --host 127.0.0.1 --data "$work" \
    --threads "$(nproc)" "$@" > "$work/serve.log" 2>&1 &
  srv=$!
  for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && return 0; sleep 0.05; done
  echo "server did not start"; cat "$work/serve.log"; exit 1
}
stop() { kill -TERM $srv; wait $srv || true; srv=; }
start info
job=$(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' \
  --data-binary @"$root/tests/fixtures/server/chat_ann_bob.txt" "$base/v1/exports?persona=Ann&budget=3" |
  python3 -c 'import json,sys;print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 600); do
  [[ $(curl -s -H "Authorization: Bearer $key" "$base/v1/training-jobs/$job") == *'"status":"completed"'* ]] && break; sleep 0.2
done
stop
body='{"message":"are we still on for coffee tomorrow?","context":[{"author":"Bob","text":"hey"}]}'
cat > "$work/reply.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
otlp="http://127.0.0.1:$JQ_OTLP"
declare -A opts=([quiet]="warn" [logs]="info" [t1]="info --otlp-endpoint $otlp --trace-ratio 0.01"
                 [t100]="info --otlp-endpoint $otlp --trace-ratio 1")
order=(quiet logs t1 t100)
for r in $(seq 1 "$repeat"); do
  for c in "${order[@]}"; do
    # shellcheck disable=SC2086
    start ${opts[$c]}
    for _ in 1 2; do curl -s -o /dev/null -H "Authorization: Bearer $key" -d "$body" "$base/v1/reply"; done
    m0=$(curl -s "$base/metrics" | awk '/^ws_log_bytes_total /{b=$2} /^ws_log_lines_total /{l=$2} END{print b, l}')
    cpu0=$(awk '{print $14 + $15}' "/proc/$srv/stat"); j0=$(awk '{print $14 + $15}' "/proc/$jpid/stat")
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/reply.lua" "$base/v1/reply")
    cpu1=$(awk '{print $14 + $15}' "/proc/$srv/stat"); j1=$(awk '{print $14 + $15}' "/proc/$jpid/stat")
    m1=$(curl -s "$base/metrics" | awk '/^ws_log_bytes_total /{b=$2} /^ws_log_lines_total /{l=$2} END{print b, l}')
    dropped=$(curl -s "$base/metrics" | awk '/^ws_trace_spans_dropped_total /{print $2}')
    stop
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    n=$(awk '/requests in/{print $1}' <<<"$out")
    p99=$(awk '/ 99%/{print $2}' <<<"$out")
    read -r b0 l0 <<<"$m0"; read -r b1 l1 <<<"$m1"
    bpr=$(python3 -c "print('%.1f' % (($b1-$b0)/max($n,1)))"); lpr=$(python3 -c "print('%.3f' % (($l1-$l0)/max($n,1)))")
    cpr=$(python3 -c "import os;print('%.1f' % (($cpu1-$cpu0)*1e6/os.sysconf('SC_CLK_TCK')/max($n,1)))")
    jpr=$(python3 -c "import os;print('%.1f' % (($j1-$j0)*1e6/os.sysconf('SC_CLK_TCK')/max($n,1)))")
    printf '%-6s run %d: %9s req/s  p99 %8s  CPU %5s us/req (jaeger %4s)  log %6s B/req %6s lines/req  spans dropped %s\n' \
      "$c" "$r" "$rps" "$p99" "$cpr" "$jpr" "$bpr" "$lpr" "${dropped:-0}"
    echo "$c $rps $cpr" >> "$work/results"
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cs = ("quiet", "logs", "t1", "t100")
med = {c: statistics.median(float(r[1]) for r in rows if r[0] == c) for c in cs}
cpu = {c: statistics.median(float(r[2]) for r in rows if r[0] == c) for c in cs}
for c in cs:
    print("median %-6s %9.0f req/s (%+.1f%% vs logs, %+.1f%% vs quiet)  CPU %5.1f us/req (%+.1f%% vs logs)"
          % (c, med[c], 100 * (med[c] / med["logs"] - 1), 100 * (med[c] / med["quiet"] - 1), cpu[c],
             100 * (cpu[c] / cpu["logs"] - 1)))
PY
