#!/usr/bin/env bash
# HTTP benchmark (not a test): the cached-reply path of `POST /v1/reply` at 64/256/1024
# connections against nginx serving a small static file on the same machine (the practical
# ceiling here), with wrk; then 10k idle keep-alive connections and the server's RSS.
# Goals: >= 60% of nginx's RPS, p99 < 10 ms at 256 connections, < 150 MB RSS with 10k idle.
# The server is the real gateway (tests/helpers/serve_double.c: embedded SQLite + in-process
# cache) with the counting test-double AI; every measured request is a reply-cache hit.
# Usage: bash bench/http.sh [SECONDS per run, default 10] [CONNECTIONS...]
#   e.g. `bash bench/http.sh 5 256` runs only 256 connections (a subset while iterating).
#   BENCH_IDLE=0 skips the 10k idle-connection step; BENCH_REPEAT=N runs each point N times
#   (alternating whatstyle and nginx) and prints every run plus the medians;
#   BENCH_PERF=FILE records `perf record -g` of the server during the whatstyle runs;
#   BENCH_WORKERS=N sets the server's event loops and nginx's workers (default: cores),
#   BENCH_WRK_THREADS=N wrk's threads (default: cores).
# Fairness: the server runs as many event loops as nginx has workers (= cores), wrk uses the
# same threads, connections, duration and keep-alive for both, and neither logs requests
# (nginx access_log off; the server runs with WS_LOG_LEVEL=warn, so no request log lines;
# bench/ops_overhead.sh measures what the request log costs). Nothing is pinned: wrk, the server
# and nginx share all cores, as they would if run by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-${BENCH_SECONDS:-10}}
shift || true
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(64 256 1024)
repeat=${BENCH_REPEAT:-1}
threads=${BENCH_WORKERS:-$(nproc)}   # server event loops = nginx workers
wrk_threads=${BENCH_WRK_THREADS:-$(nproc)}
bin=${BENCH_BIN:-$root/build}   # BENCH_BIN=DIR: the helper_serve_double of another build (before/after)
command -v wrk >/dev/null || { echo "wrk missing (apt-get install wrk)"; exit 1; }
command -v nginx >/dev/null || { echo "nginx missing (apt-get install nginx-light)"; exit 1; }
[ -x "$bin/helper_serve_double" ] && [ -x "$bin/bench_http_idle" ] || make -C "$root" >/dev/null
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
srv=; ngx=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; [ -n "$ngx" ] && kill $ngx 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# --- whatstyle ----------------------------------------------------------------------------
WS_LOG_LEVEL=${WS_LOG_LEVEL:-warn} "$bin/helper_serve_double" "$work" "$work/info.json" 0 "$threads" > "$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 1 400); do [ -s "$work/info.json" ] && break; sleep 0.05; done
port=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["port"])' "$work/info.json")
key=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["bench_key"])' "$work/info.json")
base="http://127.0.0.1:$port"
job=$(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' \
  --data-binary @"$root/tests/fixtures/server/chat_ann_bob.txt" "$base/v1/exports?persona=Ann" |
  python3 -c 'import json,sys;print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 400); do
  [[ $(curl -s -H "Authorization: Bearer $key" "$base/v1/training-jobs/$job") == *completed* ]] && break; sleep 0.05
done
body='{"message":"are we still on for coffee tomorrow?","context":[{"author":"Bob","text":"hey"}]}'
curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" "$base/v1/reply" > "$work/reply.json"
cat > "$work/reply.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
[[ $(curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" "$base/v1/reply") == *'"cached":true'* ]] ||
  { echo "reply is not served from the cache"; exit 1; }

# --- nginx: a static file the size of the reply --------------------------------------------
nport=$(free_port)
mkdir -p "$work/www" "$work/ngx"
cp "$work/reply.json" "$work/www/reply.json"
chmod 755 "$work" "$work/www"; chmod 644 "$work/www/reply.json"   # nginx workers are not root
cat > "$work/ngx/nginx.conf" <<NGX
worker_processes $threads;
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $work/ngx; proxy_temp_path $work/ngx; fastcgi_temp_path $work/ngx;
  uwsgi_temp_path $work/ngx; scgi_temp_path $work/ngx;
  server { listen 127.0.0.1:$nport reuseport; root $work/www; default_type application/json; }
}
NGX
nginx -c "$work/ngx/nginx.conf" -g 'daemon off;' &
ngx=$!
sleep 0.3

cpu_ticks() { # CPU time (user + system, clock ticks) of the processes given, threads included
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
ngx_pids() { echo "$ngx $(ps -o pid= --ppid "$ngx" 2>/dev/null)"; }
hz=$(getconf CLK_TCK)
run() { # run URL CONNS [LUA]
  local args=(-t "$wrk_threads" -c "$2" -d "${secs}s" --latency)
  [ -n "${3:-}" ] && args+=(-s "$3")
  local pids c0
  if [[ $1 == "$base"* ]]; then pids=$srv; else pids=$(ngx_pids); fi
  c0=$(cpu_ticks $pids)
  wrk "${args[@]}" "$1" > "$work/wrk.out" 2>&1 || true
  local ticks=$(( $(cpu_ticks $pids) - c0 ))
  local rps p50 p99 reqs cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  cpu=$(python3 -c "print('%.1f' % ($ticks * 1e6 / $hz / max(1, ${reqs:-0})))")
  errs=$(grep -E "Non-2xx|Socket errors" "$work/wrk.out" | tr '\n' ' ' || true)
  echo "$rps $p50 $p99 $cpu $errs"
}
ms() { # wrk latency (us/ms/s) -> ms
  python3 -c 'import sys,re;v=sys.argv[1];m=re.match(r"([\d.]+)(us|ms|s)",v);print("%.2f"%(float(m.group(1))*{"us":0.001,"ms":1,"s":1000}[m.group(2)]) if m else "nan")' "$1"
}
echo "cached reply (POST /v1/reply) vs nginx static file (${#body}-byte request body, $(wc -c < "$work/reply.json")-byte reply)"
echo "settings: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); server: $threads event loops" \
  "(SO_REUSEPORT), no access log; nginx: worker_processes $threads, reuseport, access_log off;" \
  "wrk -t$wrk_threads, ${secs}s per run, keep-alive (HTTP/1.1), nothing pinned; $repeat run(s) per point"
echo "cpu_us: CPU time (user + system) of the server's process / nginx's processes per request during the run"
printf "%-6s %10s %9s %9s %7s   %10s %9s %9s %7s   %6s\n" conns ws_rps ws_p50ms ws_p99ms ws_cpu nginx_rps ng_p50ms ng_p99ms ng_cpu ratio
summary=()
for c in "${conns[@]}"; do
  rows=()
  for _ in $(seq 1 "$repeat"); do
    if [ -n "${BENCH_PERF:-}" ]; then
      perf record -F 999 -g -o "$BENCH_PERF.$c" -p "$srv" -- sleep "$secs" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    read -r wr w50 w99 wcpu werr < <(run "$base/v1/reply" $c "$work/reply.lua")
    [ -n "${BENCH_PERF:-}" ] && wait $perf_pid
    read -r nr n50 n99 ncpu nerr < <(run "http://127.0.0.1:$nport/reply.json" $c)
    [ -n "$werr$nerr" ] && echo "warning: errors: whatstyle: ${werr:-none}; nginx: ${nerr:-none}"
    ratio=$(python3 -c "print('%.2f' % (float('$wr')/float('$nr')))")
    printf "%-6s %10.0f %9s %9s %7s   %10.0f %9s %9s %7s   %6s\n" $c "$wr" "$(ms $w50)" "$(ms $w99)" "$wcpu" \
      "$nr" "$(ms $n50)" "$(ms $n99)" "$ncpu" "$ratio"
    rows+=("$wr $(ms $w50) $(ms $w99) $wcpu $nr $(ms $n50) $(ms $n99) $ncpu $ratio")
  done
  if [ "$repeat" -gt 1 ]; then
    summary+=("$(printf '%s\n' "${rows[@]}" | python3 -c '
import sys,statistics as st
r=[l.split() for l in sys.stdin if l.strip()]
m=[st.median(float(x[i]) for x in r) for i in range(9)]
print("%-6s %10.0f %9.2f %9.2f %7.1f   %10.0f %9.2f %9.2f %7.1f   %6.2f" % (sys.argv[1],*m))' "$c")")
  fi
done
if [ "$repeat" -gt 1 ]; then
  echo "medians of $repeat runs:"
  printf '%s\n' "${summary[@]}"
fi
kill $ngx; wait $ngx 2>/dev/null || true; ngx=

if [ "${BENCH_IDLE:-1}" != 0 ]; then
  echo "10k idle keep-alive connections:"
  "$bin/bench_http_idle" "$port" 10000 "$srv" /healthz
fi
curl -s "$base/metrics" | grep -E '^ws_reply_cache_hits_total|^ws_ai_calls_total|^ws_conversations_(written|sync_writes|backpressure_waits|failed)_total'
