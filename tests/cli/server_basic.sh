#!/usr/bin/env bash
# Black-box checks of `whatstyle serve` on the embedded defaults: start-up on a port, health,
# readiness, Prometheus metrics, auth, a config file, keep-alive, bad requests, graceful
# SIGTERM shutdown that finishes a request in flight, and a restart with the data intact.
# Usage: server_basic.sh path/to/whatstyle
set -euo pipefail
bin=$1
data=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$data/log" 2>/dev/null; exit 1; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start() {
  port=$(free_port)
  "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" "$@" > "$data/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.05; done
  fail "server did not come up"
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

key=$("$bin" keys create --data "$data" --user alice --rate-limit 5 2>/dev/null)
[[ $key == ws_live_* ]] || fail "no key"
"$bin" keys list --data "$data" | grep -q "active" || fail "keys list"

printf '# test config\nthreads = 2\nuser_rate_limit = 1000\nhead_timeout_ms = 700\n' > "$data/serve.conf"
start --config "$data/serve.conf"
base="http://127.0.0.1:$port"
grep -q "listening on 127.0.0.1:$port" "$data/log" || fail "no listening line"
[ "$(curl -s $base/healthz)" = '{"status":"ok"}' ] || fail healthz
[[ $(curl -s $base/readyz) == *'"status":"ready"'* ]] || fail readyz
[ "$(code $base/v1/me)" = 401 ] || fail "no key should be 401"
[ "$(code -H "Authorization: Bearer wrong" $base/v1/me)" = 401 ] || fail "bad key should be 401"
[ "$(code -H "Authorization: Bearer $key" $base/v1/me)" = 200 ] || fail "/v1/me"
# the AI engine is not part of this binary yet: replying needs a model first (409)
[ "$(code -H "Authorization: Bearer $key" -d '{"message":"hi"}' $base/v1/reply)" = 409 ] || fail "reply without model"
# rate limit 5/min on this key: 2 used above -> 3 more pass, then 429 with Retry-After
code -H "Authorization: Bearer $key" $base/v1/me >/dev/null
code -H "Authorization: Bearer $key" $base/v1/me >/dev/null
code -H "Authorization: Bearer $key" $base/v1/me >/dev/null
hdrs=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $key" $base/v1/me)
echo "$hdrs" | grep -q "^HTTP/1.1 429" || fail "expected 429"
echo "$hdrs" | grep -qi "^Retry-After: [0-9]" || fail "Retry-After missing"
# keep-alive: two requests on one connection
out=$(curl -s -v $base/healthz $base/healthz 2>&1)
echo "$out" | grep -q "Re-using existing connection" || fail "no keep-alive"
# malformed request line -> 400, oversized head -> 431
resp=$(printf 'BAD REQUEST\r\n\r\n' | timeout 5 python3 -c '
import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read()); print(s.recv(100).decode().split("\r\n")[0])' "$port")
[[ $resp == "HTTP/1.1 400"* ]] || fail "bad request line: $resp"
[ "$(code -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" $base/healthz)" = 431 ] || fail "431"
# a slow client (half a request head, then nothing) gets 408 after the head timeout (0.7 s)
resp=$(timeout 5 python3 -c '
import socket,sys,time
s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
t=time.time(); d=s.recv(100).decode(); print(d.split("\r\n")[0], "%.1f" % (time.time()-t))' "$port")
[[ $resp == "HTTP/1.1 408"* ]] || fail "slow client: $resp"
curl -s $base/metrics > "$data/metrics"
grep -q '^ws_http_requests_total{route="/healthz",method="GET",code="2xx"}' "$data/metrics" || fail metrics
grep -q '^# TYPE ws_http_request_duration_seconds histogram' "$data/metrics" || fail "metrics histogram"
grep -q '^ws_rate_limited_total 1$' "$data/metrics" || fail "rate-limited metric"

# graceful shutdown: a slow upload that is in flight when SIGTERM arrives still gets its answer
for i in $(seq 10 49); do printf '12/01/2024, 10:%s - Ann: hello number %s\n12/01/2024, 10:%s - Bob: hey there %s\n' $i $i $i $i; done > "$data/chat.txt"
key2=$("$bin" keys create --data "$data" --user bob 2>/dev/null)
( sleep 0.3; kill -TERM $pid ) &
# curl sends the body slowly (limit-rate) so the request is still being received at SIGTERM
status=$(curl -s -o "$data/up.json" -w '%{http_code}' --limit-rate 2000 -H "Authorization: Bearer $key2" \
  -H 'Content-Type: text/plain' --data-binary @"$data/chat.txt" "$base/v1/exports?persona=Ann")
[ "$status" = 202 ] || fail "in-flight upload got $status"
grep -q "draining" "$data/log" || fail "SIGTERM came after the upload finished"
wait $pid || fail "server exit status"
pid=
grep -q "draining" "$data/log" && grep -q "stopped" "$data/log" || fail "no drain"
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json")

# restart with the data intact
start
base="http://127.0.0.1:$port"
[[ $(curl -s -H "Authorization: Bearer $key2" "$base/v1/training-jobs/$job") == *"\"job_id\":\"$job\""* ]] || fail "job lost"
kill -INT $pid; wait $pid; pid=
echo ok
