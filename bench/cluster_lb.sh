#!/usr/bin/env bash
# Cluster benchmark (not a test), on one machine: cached replies (POST /v1/reply, a reply-cache
# hit in Redis) through nginx with 2 gateways against 1 gateway (the second stopped): wrk,
# BENCH_REPEAT runs per setting alternating, medians of RPS and latency, and the RPS ratio 2:1.
# (Upload -> model served, embedded against the cluster: bench/cluster_train.sh.)
# Brings up its own cluster (tools/cluster.sh in a private folder) and takes it down.
# Usage: bash bench/cluster_lb.sh [SECONDS per run, default 10]
#   BENCH_CONNS (64), BENCH_REPEAT (3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
conns=${BENCH_CONNS:-64}
repeat=${BENCH_REPEAT:-3}
command -v wrk > /dev/null || { echo "wrk missing (apt-get install wrk)"; exit 1; }
export WS_BIN=${WS_BIN:-$root/build/whatstyle} WS_BASE_MODEL=${WS_BASE_MODEL:-none} WS_MINILM_DIR=/nonexistent
export WS_LOG_LEVEL=${WS_LOG_LEVEL:-warn}
export WS_CLUSTER_DIR
WS_CLUSTER_DIR=$(mktemp -d /tmp/ws-bench-cluster.XXXXXX)
chmod 755 "$WS_CLUSTER_DIR"
work=$(mktemp -d)
trap 'bash "$root/tools/cluster.sh" down --wipe >/dev/null 2>&1; rm -rf "$work"' EXIT
eval "$(bash "$root/tools/cluster.sh" up)"
set -a; source "$WS_CLUSTER_DIR/ports.env"; set +a
PG_URL="postgresql://postgres@127.0.0.1:$PORT_PG/postgres"
key=$("$WS_BIN" keys create --database-url "$PG_URL" --user bench-maya 2>/dev/null)
# a trained user (replies need a model): upload, then wait for a reply from the new model
curl -s -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' \
  --data-binary @"$root/samples/group_chat.txt" "$WS_URL/v1/exports?persona=Maya&budget=4"
for _ in $(seq 1 600); do
  curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d '{"message":"hi"}' \
    "$WS_URL/v1/reply" | grep -q '"model_version":"maya-' && break
  sleep 0.2
done

# --- cached replies through nginx, 2 gateways vs 1 ------------------------------------------
body='{"message":"are we still on for coffee tomorrow?"}'
for _ in 1 2; do curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" "$WS_URL/v1/reply" > "$work/r.json"; done
grep -q '"cached":true' "$work/r.json" || { echo "the reply is not served from the cache: $(cat "$work/r.json")"; exit 1; }
cat > "$work/reply.lua" << LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
run() { # prints "rps p50_ms p99_ms non2xx"
  wrk -t 2 -c "$conns" -d "${secs}s" --latency -s "$work/reply.lua" "$WS_URL/v1/reply" > "$work/wrk.out" 2>&1 || true
  python3 - "$work/wrk.out" << 'PY'
import re, sys
t = open(sys.argv[1]).read()
ms = lambda v: float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1]) * 1000
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1)); p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}
two=(); one=()
for i in $(seq 1 "$repeat"); do
  two+=("$(run)")
  bash "$root/tools/cluster.sh" stop gw2 > /dev/null
  curl -s -o /dev/null "$WS_URL/healthz"; curl -s -o /dev/null "$WS_URL/healthz" # nginx notes gw2 down
  one+=("$(run)")
  bash "$root/tools/cluster.sh" start gw2 > /dev/null 2>&1
  sleep 1
done
med() { python3 -c 'import statistics,sys;print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
col() { local n=$1; shift; for r in "$@"; do echo "$r" | cut -d' ' -f"$n"; done; }
echo "cached replies through nginx: wrk -t2 -c$conns ${secs}s, $repeat runs each, $(nproc) cores," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %10s %9s %9s  runs (rps p50 p99 non2xx)\n' gateways rps_med p50_ms p99_ms
printf '%-12s %10s %9s %9s  %s\n' 2 "$(med $(col 1 "${two[@]}"))" "$(med $(col 2 "${two[@]}"))" \
  "$(med $(col 3 "${two[@]}"))" "$(IFS='|'; echo "${two[*]}")"
printf '%-12s %10s %9s %9s  %s\n' 1 "$(med $(col 1 "${one[@]}"))" "$(med $(col 2 "${one[@]}"))" \
  "$(med $(col 3 "${one[@]}"))" "$(IFS='|'; echo "${one[*]}")"
echo "rps ratio 2:1 = $(python3 -c "print(round($(med $(col 1 "${two[@]}")) / $(med $(col 1 "${one[@]}")), 2))")"
