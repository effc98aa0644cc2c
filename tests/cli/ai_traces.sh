#!/usr/bin/env bash
# One trace across the gateway and an AI node in a real Jaeger v2 (all-in-one, in memory; built
# once by tools/setup-ops-tools.sh): `serve --ai grpc://...` and `whatstyle ai` both export
# over OTLP/HTTP (--otlp-endpoint); a reply with a caller's sampled traceparent shows the
# gateway's request and AI-call spans (service whatstyle-serve), the node's
# AiService/GenerateResponse span as the child of the gateway's AI-call span (service
# whatstyle-ai, continuing the traceparent metadata, with the grpc-timeout it was given),
# and the generation under it. Usage: ai_traces.sh path/to/whatstyle
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
bash tools/setup-ops-tools.sh jaeger
jaeger=${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}/jaeger-v1.75.0
work=$(mktemp -d)
spid= jpid= npid=
cleanup() { for p in $spid $npid $jpid; do kill -9 "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -5 "$work/serve.log" "$work/node.out" "$work/jaeger.log" 2>/dev/null; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

export JQ_HTTP=$(free_port) JQ_GRPC=$(free_port) JQ_HEALTH=$(free_port) JQ_OTLP=$(free_port)
"$jaeger" --config "file:$root/tests/fixtures/ops/jaeger.yaml" > "$work/jaeger.log" 2>&1 &
jpid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$JQ_HEALTH/status" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$JQ_HEALTH/status" >/dev/null || fail "jaeger did not come up"
otlp="http://127.0.0.1:$JQ_OTLP"

key=$("$bin" keys create --data "$work" --user erin 2>/dev/null)
np=$(free_port); port=$(free_port); base="http://127.0.0.1:$port"
"$bin" ai --listen "127.0.0.1:$np" --data "$work" --otlp-endpoint "$otlp" --trace-ratio 0 \
  > "$work/node.out" 2> "$work/node.err" &
npid=$!
for _ in $(seq 100); do grep -q listening "$work/node.out" 2>/dev/null && break; sleep 0.1; done
grep -q '"event.action":"trace.exporter_started"' "$work/node.out" || fail "the node did not start its exporter"
"$bin" serve --port "$port" --host 127.0.0.1 --data "$work" --ai "grpc://127.0.0.1:$np" \
  --otlp-endpoint "$otlp" --trace-ratio 0 > "$work/serve.log" 2>&1 &
spid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
for i in $(seq 10 59); do
  printf '12/01/2024, 10:%s - Ann: hello there friend %s\n12/01/2024, 10:%s - Bob: sure thing %s\n' $i $i $i $i
done > "$work/chat.txt"
curl -sf -o "$work/up.json" -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' \
  --data-binary @"$work/chat.txt" "$base/v1/exports?persona=Ann&budget=3" || fail upload
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$work/up.json")
for _ in $(seq 1 600); do
  st=$(curl -s -H "Authorization: Bearer $key" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$st" = completed ] || [ "$st" = failed ] && break; sleep 0.2
done
[ "$st" = completed ] || fail "training: $st"
tid=$(openssl rand -hex 16)
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H "traceparent: 00-$tid-00f067aa0ba902b7-01" \
  -H 'X-Request-Timeout-Ms: 2500' -d '{"message":"how are you"}' "$base/v1/reply" || fail reply
sleep 1.5 # one flush interval of both exporters
python3 - "http://127.0.0.1:$JQ_HTTP" "$tid" <<'PY' || fail "the trace in jaeger"
import json, sys, time, urllib.request
q, tid = sys.argv[1:3]
def tags(s):
    return {t["key"]: t["value"] for t in s.get("tags", [])}
def parent(s):
    refs = [r for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None
for _ in range(50):
    try:
        d = json.load(urllib.request.urlopen("%s/api/traces/%s" % (q, tid)))
        t = d["data"][0]
        names = {s["operationName"] for s in t["spans"]}
        if {"POST /v1/reply", "ai generate", "AiService/GenerateResponse", "generation"} <= names:
            break
    except urllib.error.HTTPError:
        pass
    time.sleep(0.2)
else:
    raise SystemExit("trace %s: the spans of both services did not arrive" % tid)
svc = lambda s: t["processes"][s["processID"]]["serviceName"]
by = {}
for s in t["spans"]:
    by.setdefault(s["operationName"], []).append(s)
req, call, srv = by["POST /v1/reply"][0], by["ai generate"][0], by["AiService/GenerateResponse"][0]
assert svc(req) == "whatstyle-serve" and svc(call) == "whatstyle-serve", (svc(req), svc(call))
assert svc(srv) == "whatstyle-ai", svc(srv)
assert parent(req) == "00f067aa0ba902b7", "the request continues the caller's span"
assert parent(call) == req["spanID"], "the AI call is a child of the request"
assert parent(srv) == call["spanID"], "the node's span continues the gateway's AI call"
assert tags(srv)["rpc.system"] == "grpc" and tags(srv)["rpc.grpc.status_code"] == 0
assert 0 < tags(srv)["rpc.grpc.timeout_ms"] <= 2500, tags(srv)
gen = [g for g in by["generation"] if svc(g) == "whatstyle-ai"]
assert gen and all(parent(g) == srv["spanID"] for g in gen), "generation runs under the node's span"
assert srv["startTime"] >= call["startTime"] - 5000, "the node's span starts after the call (µs, same clock)"
print("one trace: %d spans, %s" % (len(t["spans"]), sorted({svc(s) for s in t["spans"]})))
PY
kill -TERM $spid $npid; wait $spid $npid 2>/dev/null || true; spid= npid=
echo ok
