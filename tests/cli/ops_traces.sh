#!/usr/bin/env bash
# Traces of `whatstyle serve` in a real Jaeger v2 (all-in-one, in memory; built once by
# tools/setup-ops-tools.sh): a reply with a caller's traceparent shows the request span as
# the child of the caller's span, and cache, store, AI call, model load and generation spans
# with the right parents; the cached reply has no AI span; the training job continues the
# upload's trace. An unreachable collector drops spans and counts them, and requests still succeed.
# Usage: ops_traces.sh path/to/whatstyle
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
bash "$root/tools/setup-ops-tools.sh" jaeger
jaeger=${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}/jaeger-v1.75.0
work=$(mktemp -d)
spid= jpid=
cleanup() { [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; [ -n "$jpid" ] && kill -9 "$jpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$work/serve.log" "$work/jaeger.log" 2>/dev/null; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

export JQ_HTTP=$(free_port) JQ_GRPC=$(free_port) JQ_HEALTH=$(free_port) JQ_OTLP=$(free_port)
"$jaeger" --config "file:$root/tests/fixtures/ops/jaeger.yaml" > "$work/jaeger.log" 2>&1 &
jpid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$JQ_HEALTH/status" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$JQ_HEALTH/status" >/dev/null || fail "jaeger did not come up"

key=$("$bin" keys create --data "$work" --user erin 2>/dev/null)
port=$(free_port); base="http://127.0.0.1:$port"
"$bin" serve --port "$port" --host 127.0.0.1 --data "$work" --otlp-endpoint "http://127.0.0.1:$JQ_OTLP" \
  --trace-ratio 0 > "$work/serve.log" 2>&1 &
spid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
for i in $(seq 10 59); do
  printf '12/01/2024, 10:%s - Ann: hello there friend %s\n12/01/2024, 10:%s - Bob: sure thing %s\n' $i $i $i $i
done > "$work/chat.txt"
tp_up="00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1111111111111111-01"
curl -sf -o "$work/up.json" -H "Authorization: Bearer $key" -H "traceparent: $tp_up" -H 'Content-Type: text/plain' \
  --data-binary @"$work/chat.txt" "$base/v1/exports?persona=Ann&budget=3" || fail upload
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$work/up.json")
for _ in $(seq 1 600); do
  st=$(curl -s -H "Authorization: Bearer $key" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$st" = completed ] || [ "$st" = failed ] && break; sleep 0.2
done
[ "$st" = completed ] || fail "training: $st"
tid1=4bf92f3577b34da6a3ce929d0e0e4736 tid2=5bf92f3577b34da6a3ce929d0e0e4737
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H "traceparent: 00-$tid1-00f067aa0ba902b7-01" \
  -d '{"message":"how are you"}' "$base/v1/reply" || fail reply
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H "traceparent: 00-$tid2-00f067aa0ba902b8-01" \
  -d '{"message":"how are you"}' "$base/v1/reply" || fail "cached reply"
# not sampled by the caller and ratio 0: nothing recorded
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H "traceparent: 00-6bf92f3577b34da6a3ce929d0e0e4738-00f067aa0ba902b9-00" \
  "$base/v1/me" || fail me
sleep 1.5   # one flush interval of the exporter
python3 - "http://127.0.0.1:$JQ_HTTP" "$tid1" "$tid2" <<'PY' || fail "traces in jaeger"
import json, sys, time, urllib.request
q, tid1, tid2 = sys.argv[1:4]
def trace(tid, want):
    for _ in range(50):
        try:
            d = json.load(urllib.request.urlopen("%s/api/traces/%s" % (q, tid)))
            spans = d["data"][0]["spans"] if d.get("data") else []
            if len(spans) >= want:
                return d["data"][0]
        except urllib.error.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("trace %s: not found with %d spans" % (tid, want))
def parent(s):
    refs = [r for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None
def tags(s):
    return {t["key"]: t["value"] for t in s.get("tags", [])}
t = trace(tid1, 5)
by = {}
for s in t["spans"]:
    by.setdefault(s["operationName"], []).append(s)
    assert t["processes"][s["processID"]]["serviceName"] == "whatstyle-serve"
req = by["POST /v1/reply"][0]
assert parent(req) == "00f067aa0ba902b7", "the request span continues the caller's span"
assert tags(req)["http.route"] == "/v1/reply" and tags(req)["http.response.status_code"] == 200
cache = by["cache get"][0]
assert parent(cache) == req["spanID"] and tags(cache)["cache.hit"] == "false"
ai = by["ai generate"][0]
assert parent(ai) == req["spanID"]
assert cache["startTime"] <= ai["startTime"], "the cache is asked before the AI"
gen = by["generation"]
assert gen and all(parent(g) == ai["spanID"] for g in gen) and tags(gen[0])["gen.tokens"] > 0
assert parent(by["model load"][0]) == ai["spanID"]
assert all(parent(d) == req["spanID"] for d in by.get("db query", [])), "store queries hang under the request"
t2 = trace(tid2, 2)
names = [s["operationName"] for s in t2["spans"]]
assert "cache get" in names and "ai generate" not in names, names
hit = [s for s in t2["spans"] if s["operationName"] == "cache get"][0]
assert tags(hit)["cache.hit"] == "true"
# the upload's trace goes on in the training job (the trace context travels in the job row)
t3 = trace("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 3)
up = [s for s in t3["spans"] if s["operationName"] == "POST /v1/exports"]
assert up and parent(up[0]) == "1111111111111111"
job = [s for s in t3["spans"] if s["operationName"] == "training job"]
assert job and parent(job[0]) == up[0]["spanID"], "the job is a child of the upload"
assert tags(job[0])["job.id"].startswith("job_")
jq = [s for s in t3["spans"] if s["operationName"] == "db query" and parent(s) == job[0]["spanID"]]
assert jq, "the job's store queries hang under it"
try:
    urllib.request.urlopen("%s/api/traces/6bf92f3577b34da6a3ce929d0e0e4738" % q)
    raise SystemExit("an unsampled trace was recorded")
except urllib.error.HTTPError as e:
    assert e.code == 404
PY
kill -TERM $spid; wait $spid; spid=

# a collector that is not there: requests still answer, the spans are counted as dropped
dead=$(free_port)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$work" --no-training --otlp-endpoint "http://127.0.0.1:$dead" \
  --trace-ratio 1 > "$work/serve.log" 2>&1 &
spid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
for _ in 1 2 3; do curl -sf -o /dev/null -H "Authorization: Bearer $key" "$base/v1/me" || fail "request with a dead collector"; done
sleep 1.5
dropped=$(curl -s "$base/metrics" | awk '/^ws_trace_spans_dropped_total /{print $2}')
[ "${dropped:-0}" -ge 3 ] || fail "dropped spans not counted: ${dropped:-none}"
grep -q '"event.action":"trace.export_failed"' "$work/serve.log" || fail "no export failure logged"
"$bin" serve --port "$port" --data "$work" --otlp-endpoint http://x --trace-ratio 2 > "$work/bad.log" 2>&1 &&
  fail "a ratio above 1 is refused"
grep -q "0..1" "$work/bad.log" || fail "ratio message"
echo ok
