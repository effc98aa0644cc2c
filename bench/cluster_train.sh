#!/usr/bin/env bash
# Benchmark (not a test): the time from an upload to a model served for samples/group_chat.txt,
# embedded (`whatstyle serve --data DIR`: SQLite, file blobs, the in-process trainer and AI)
# against the cluster (tools/cluster.sh in a private folder: upload through nginx -> outbox ->
# relay -> Kafka -> `whatstyle worker` -> model in SeaweedFS -> training-events -> the gateways
# reload -> a reply from the AI nodes). BENCH_REPEAT runs each, alternating, a new user per run;
# per run the total (upload until the first reply carrying the new model's version) and its
# stages from the job's own timestamps: queued (upload -> a trainer took the job; in the
# cluster the relay, Kafka and the worker's take), train (took -> completed), serve (completed
# -> the first reply from the model: events, reloads, caches). Prints medians.
# Usage: bash bench/cluster_train.sh   env: BENCH_REPEAT (3), BENCH_BUDGET (training budget, 8 s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeat=${BENCH_REPEAT:-3}
budget=${BENCH_BUDGET:-8}
export WS_BIN=${WS_BIN:-$root/build/whatstyle} WS_BASE_MODEL=${WS_BASE_MODEL:-none} WS_MINILM_DIR=/nonexistent
export WS_LOG_LEVEL=${WS_LOG_LEVEL:-warn}
export WS_CLUSTER_DIR
WS_CLUSTER_DIR=$(mktemp -d /tmp/ws-bench-train.XXXXXX)
chmod 755 "$WS_CLUSTER_DIR"
work=$(mktemp -d)
emb=
trap '[ -n "$emb" ] && kill $emb 2>/dev/null; bash "$root/tools/cluster.sh" down --wipe >/dev/null 2>&1; rm -rf "$work"' EXIT
eval "$(bash "$root/tools/cluster.sh" up 2> "$work/up.log")"
set -a; source "$WS_CLUSTER_DIR/ports.env"; set +a
PG_URL="postgresql://postgres@127.0.0.1:$PORT_PG/postgres"
mkdir -p "$work/embedded"
eport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$WS_BIN" serve --port "$eport" --host 127.0.0.1 --data "$work/embedded" > "$work/embedded.log" 2>&1 &
emb=$!
for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$eport/healthz" > /dev/null && break; sleep 0.05; done

# run BASE KEY: prints "total queued train serve" (seconds) for one upload
run() {
  local base=$1 key=$2 t0 job st v t1
  t0=$(python3 -c 'import time;print(time.time())')
  job=$(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' --data-binary @"$root/samples/group_chat.txt" \
    "$base/v1/exports?persona=Maya&budget=$budget" | python3 -c 'import json,sys;print(json.load(sys.stdin)["job_id"])')
  for _ in $(seq 1 6000); do
    v=$(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      -d '{"message":"are you coming saturday?"}' "$base/v1/reply" |
      python3 -c 'import json,sys;print(json.load(sys.stdin).get("model_version",""))' 2>/dev/null || true)
    [[ $v == maya-* ]] && break
    sleep 0.05
  done
  t1=$(python3 -c 'import time;print(time.time())')
  [[ $v == maya-* ]] || { echo "no reply from the model after 300 s" >&2; return 1; }
  curl -s -H "Authorization: Bearer $key" "$base/v1/training-jobs/$job" | python3 -c '
import json, sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2])
j = json.load(sys.stdin)
s, c = j["started_at"] / 1000, j["completed_at"] / 1000
print(f"{t1 - t0:.2f} {s - t0:.2f} {c - s:.2f} {t1 - c:.2f}")' "$t0" "$t1"
}
emb_runs=(); cl_runs=()
for i in $(seq 1 "$repeat"); do
  key=$("$WS_BIN" keys create --database-url "$PG_URL" --user "bench-maya-$i" 2> /dev/null)
  cl_runs+=("$(run "$WS_URL" "$key")")
  ekey=$("$WS_BIN" keys create --data "$work/embedded" --user "maya-$i" 2> /dev/null)
  emb_runs+=("$(run "http://127.0.0.1:$eport" "$ekey")")
done
med() { python3 -c 'import statistics,sys;print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }
col() { local n=$1; shift; for r in "$@"; do echo "$r" | cut -d' ' -f"$n"; done; }
echo "upload -> first reply from the new model (samples/group_chat.txt, budget ${budget}s, WS_BASE_MODEL=$WS_BASE_MODEL):"
echo "$repeat runs each, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %8s %8s %8s %8s  runs (total queued train serve)\n' mode total_s queued_s train_s serve_s
for mode in embedded cluster; do
  if [ $mode = embedded ]; then r=("${emb_runs[@]}"); else r=("${cl_runs[@]}"); fi
  printf '%-9s %8s %8s %8s %8s  %s\n' $mode "$(med $(col 1 "${r[@]}"))" "$(med $(col 2 "${r[@]}"))" \
    "$(med $(col 3 "${r[@]}"))" "$(med $(col 4 "${r[@]}"))" "$(IFS='|'; echo "${r[*]}")"
done
