#!/usr/bin/env bash
# WhatsApp webhook benchmark (not a test): signed POST /v1/whatsapp/webhook notifications
# against `whatstyle serve` (embedded SQLite), with wrk at 256 connections (or as given).
# Each run cycles through 1,000 distinct notifications (one text message each, distinct
# wamids, signed with the app secret); every 200 means the body was durably stored in the
# inbox first. Reports requests/s and the p50/p99 of the acknowledgement per run and the
# medians over the runs, then how long the processor took to drain the inbox (messages
# deduped and logged per second). After each run, GET /healthz with the same settings gives
# the machine's floor (on a shared machine the tail is mostly scheduling). Goal: p99 < 50 ms
# at 256 connections on 2 cores.
# Usage: bash bench/whatsapp_webhook.sh [SECONDS per run, default 10] [RUNS, default 3] [CONNECTIONS, default 256]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}; runs=${2:-3}; conns=${3:-256}
threads=${BENCH_WORKERS:-$(nproc)}
bin=${BENCH_BIN:-$root/build}/whatstyle
command -v wrk >/dev/null || { echo "wrk missing (apt-get install wrk)"; exit 1; }
[ -x "$bin" ] || make -C "$root" >/dev/null
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
secret=bench-app-secret-$RANDOM$RANDOM
printf '%s' "$secret" > "$work/secret"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
WS_BASE_MODEL=none "$bin" serve --port "$port" --host 127.0.0.1 --data "$work/data" --threads "$threads" \
  --no-training --whatsapp-app-secret-file "$work/secret" > "$work/serve.log" 2>&1 &
srv=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
python3 - "$secret" "$work/wh.lua" <<'PY'
import hashlib, hmac, json, sys, time
secret, out = sys.argv[1].encode(), sys.argv[2]
bodies, sigs = [], []
for i in range(1000):
    body = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881",
        "phone_number_id": "106540352242922"}, "contacts": [{"profile": {"name": "Bench"}, "wa_id": "1650555%04d" % i}],
        "messages": [{"from": "1650555%04d" % i, "id": "wamid.BENCH%06d" % i, "timestamp": str(int(time.time())),
        "type": "text", "text": {"body": "Ol\u00e1 n\u00famero %d, are we still on for tonight? \U0001f600" % i}}]},
        "field": "messages"}]}]}
    raw = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    bodies.append(raw)
    sigs.append("sha256=" + hmac.new(secret, raw.encode(), hashlib.sha256).hexdigest())
with open(out, "w") as f:
    f.write("local bodies = {%s}\n" % ",".join(json.dumps(b) for b in bodies))
    f.write("local sigs = {%s}\n" % ",".join('"%s"' % s for s in sigs))
    f.write("""local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  wrk.headers["X-Hub-Signature-256"] = sigs[i]
  return wrk.format(nil, "/v1/whatsapp/webhook", nil, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
end
""")
PY
cat > "$work/hz.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
end
LUA
metric() { curl -s "$base/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
echo "whatsapp webhook: $conns connections, ${secs}s x $runs runs, $threads event loops, $(nproc) cores"
total=0
for r in $(seq 1 "$runs"); do
  line=$(wrk -t "$threads" -c "$conns" -d "${secs}s" --latency -s "$work/wh.lua" "$base" | grep '^RESULT')
  read -r _ rps p50 p99 errs n <<< "$line"
  total=$((total + n))
  # the machine's floor right after: GET /healthz (no store, no pool) with the same wrk settings
  hz=$(wrk -t "$threads" -c "$conns" -d "${secs}s" --latency -s "$work/hz.lua" "$base" | grep '^RESULT')
  read -r _ hrps hp50 hp99 _ _ <<< "$hz"
  echo "run $r: $rps req/s  p50 ${p50} ms  p99 ${p99} ms  non-2xx $errs   (/healthz: $hrps req/s, p99 ${hp99} ms)"
  echo "$rps $p50 $p99 $hrps $hp99" >> "$work/runs"
done
python3 - "$work/runs" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
print("median: %.0f req/s  p50 %.2f ms  p99 %.2f ms   (/healthz: %.0f req/s, p99 %.2f ms)"
      % tuple(statistics.median(c) for c in zip(*rows)))
PY
# the processor drains the inbox behind the acknowledgements
t0=$(date +%s.%N)
for _ in $(seq 1 1200); do
  seen=$(( $(metric ws_whatsapp_messages_received_total) + $(metric ws_whatsapp_duplicates_total) ))
  [ "$seen" -ge "$total" ] && break; sleep 0.1
done
t1=$(date +%s.%N)
echo "inbox drained $seen of $total notifications $(python3 -c "print('%.1f' % ($t1 - $t0))") s after the last run" \
     "(received $(metric ws_whatsapp_messages_received_total), duplicates $(metric ws_whatsapp_duplicates_total))"
