#!/usr/bin/env bash
# The structured logs of `whatstyle serve`: every stdout line is one JSON object with the ECS
# fields (@timestamp, log.level, event.action, service.*), the start, config summary, each
# request (method, route, status, duration, user id; the caller's trace id from traceparent),
# each training job; and neither message text, phone numbers, the export's content nor the
# API key appears anywhere in the log. WS_LOG_FORMAT=text gives the human format.
# Usage: ops_logs.sh path/to/whatstyle
set -euo pipefail
bin=$1
data=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -30 "$data/log" 2>/dev/null; exit 1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"

key=$("$bin" keys create --data "$data" --user carol 2>/dev/null)
WS_LOG_FORMAT=json "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --threads 2 \
  > "$data/log" 2> "$data/err" &
pid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "$base/healthz" >/dev/null || fail "server did not come up"

# an export whose lines carry a phone number and a distinctive phrase
for i in $(seq 10 59); do
  printf '12/01/2024, 10:%s - Ann: call me on +44 7700 900%s zebracactus%s\n' "$i" "$i" "$i"
  printf '12/01/2024, 10:%s - Bob: sure thing quokkalamp%s\n' "$i" "$i"
done > "$data/chat.txt"
code=$(curl -s -o "$data/up.json" -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' \
  --data-binary @"$data/chat.txt" "$base/v1/exports?persona=Ann&budget=3")
[ "$code" = 202 ] || fail "upload: $code"
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json")
for _ in $(seq 1 600); do
  st=$(curl -s -H "Authorization: Bearer $key" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$st" = completed ] || [ "$st" = failed ] && break; sleep 0.2
done
[ "$st" = completed ] || fail "training job: $st"
tp="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
for _ in 1 2; do  # the second reply comes from the cache
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H "traceparent: $tp" \
    -d '{"message":"ring +1 202 555 0143 about the marmotbanjo"}' "$base/v1/reply")
  [ "$code" = 200 ] || fail "reply: $code"
done
curl -s -o /dev/null "$base/v1/nowhere"
kill -TERM $pid; wait $pid || fail "exit status"; pid=

python3 - "$data/log" "$key" <<'PY' || fail "log lines"
import json, sys
path, key = sys.argv[1], sys.argv[2]
raw = open(path, encoding="utf-8").read()
for secret in (key, key[:20], "zebracactus", "quokkalamp", "marmotbanjo", "7700 900", "+44", "555 0143", "ring +1"):
    assert secret not in raw, "leaked into the log: %r" % secret
lines = [json.loads(l) for l in raw.splitlines()]   # every line is one JSON object
assert lines, "no log lines"
for l in lines:
    for f in ("@timestamp", "log.level", "event.action", "service.name", "service.node.role"):
        assert f in l, (f, l)
    assert l["service.node.role"] == "serve" and l["log.level"] in ("debug", "info", "warn", "error")
    assert l["@timestamp"].endswith("Z") and "T" in l["@timestamp"]
acts = [l["event.action"] for l in lines]
for a in ("server.config", "server.started", "job.started", "job.completed", "server.draining", "server.stopped"):
    assert a in acts, "missing %s in %s" % (a, sorted(set(acts)))
cfg = next(l for l in lines if l["event.action"] == "server.config")
assert cfg["config.store"] == "sqlite" and cfg["config.cache"] == "memory" and cfg["config.threads"] == 2
reqs = [l for l in lines if l["event.action"] == "http.request"]
replies = [l for l in reqs if l["http.route"] == "/v1/reply"]
assert len(replies) == 2, replies
for r in replies:
    assert r["http.request.method"] == "POST" and r["http.response.status_code"] == 200
    assert r["user.id"].startswith("usr_") and isinstance(r["event.duration"], int) and r["event.duration"] > 0
    assert r["trace.id"] == "4bf92f3577b34da6a3ce929d0e0e4736", r
    assert len(r["span.id"]) == 16 and r["span.id"] != "00f067aa0ba902b7"
up = [l for l in reqs if l["http.route"] == "/v1/exports"]
assert up and up[0]["http.response.status_code"] == 202
nf = [l for l in reqs if l["http.route"] == "unmatched"]
assert nf and nf[0]["http.response.status_code"] == 404 and nf[0]["user.id"] is None
assert not [l for l in reqs if l["http.route"] == "/healthz"], "health checks log at debug"
done = next(l for l in lines if l["event.action"] == "job.completed")
assert done["user.id"] == replies[0]["user.id"] and done["event.duration"] > 0
PY

# the human format and the level filter
port=$(free_port)
WS_LOG_FORMAT=text WS_LOG_LEVEL=debug "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --no-training \
  > "$data/log2" 2>&1 &
pid=$!
for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
kill -TERM $pid; wait $pid; pid=
grep -Eq '^[0-9:.]+ info  serve server.started: listening on 127.0.0.1:[0-9]+ \(http\)$' "$data/log2" || fail "text format"
grep -q 'debug serve http.request .*http.route=/healthz' "$data/log2" || fail "debug level shows health checks"
WS_LOG_LEVEL=loud "$bin" version > /dev/null 2>&1 && fail "a bad WS_LOG_LEVEL is refused"
echo ok
