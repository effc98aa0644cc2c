#!/usr/bin/env bash
# A request's own time budget (X-Request-Timeout-Ms) flows into the gateway's gRPC call to the
# AI node as grpc-timeout, capped by --ai-timeout-ms: the node's ai.call log line shows the
# timeout it was given. With the node frozen (SIGSTOP) a tight budget ends in 504
# deadline_exceeded within it (REST and MCP), none hangs, and those timeouts do not open the
# node's circuit breaker; once the node runs again it drops the calls whose time is up
# (CANCELLED / DEADLINE_EXCEEDED, never OK). Without the header the gateway's own budget ends
# in 504 too. A malformed header is 400.
set -u
bin=${1:?usage: ai_deadline.sh path/to/whatstyle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
data=$(mktemp -d); npid=; spid=
cleanup() { for p in $npid $spid; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; rm -rf "$data"; }
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
np=$(free_port); port=$(free_port); base="http://127.0.0.1:$port"; auth="Authorization: Bearer $key"
"$bin" ai --listen "127.0.0.1:$np" --data "$data" > "$data/node.out" 2> "$data/node.err" &
npid=$!
for _ in $(seq 100); do grep -q listening "$data/node.out" 2>/dev/null && break; sleep 0.1; done
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --ai "grpc://127.0.0.1:$np" --ai-timeout-ms 3000 \
  > "$data/serve.log" 2>&1 &
spid=$!
for _ in $(seq 1 200); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
curl -s -o "$data/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary @samples/group_chat.txt \
  "$base/v1/exports?persona=Maya&budget=3"
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json") ||
  { echo "FAIL: upload: $(cat "$data/up.json")"; exit 1; }
for _ in $(seq 1 240); do
  st=$(curl -s -H "$auth" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$st" = completed ] || [ "$st" = failed ] && break
  sleep 0.5
done
[ "$st" = completed ] || { echo "FAIL: training ended as '$st'"; exit 1; }

n=0; ms=0; code=
ask() { # ask [curl options]: a fresh message (no reply cache); sets code and ms
  n=$((n + 1))
  local t0; t0=$(date +%s%N)
  code=$(curl -s -m 20 -o "$data/r.json" -D "$data/r.h" -w '%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
    "$@" -d "{\"message\":\"are you coming tonight $n?\"}" "$base/v1/reply")
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}
last_timeout() { # the grpc-timeout (ms) of the node's latest GenerateResponse
  grep '"event.action":"ai.call"' "$data/node.out" | grep '"rpc.method":"GenerateResponse"' | tail -1 |
    sed -n 's/.*"rpc.grpc.timeout_ms":\([0-9]*\).*/\1/p'
}
in_range() { [ -n "$1" ] && [ "$1" -gt "$2" ] && [ "$1" -le "$3" ]; }

ask -H 'X-Request-Timeout-Ms: 1500'; t=$(last_timeout)
expect "a budget of 1500 ms: 200 ($code: $(cat "$data/r.json"))" test "$code" = 200
expect "... the node was given it as grpc-timeout (${t:-none} ms)" in_range "${t:-}" 500 1500
ask; t=$(last_timeout)
expect "no header: 200 ($code)" test "$code" = 200
expect "... the node was given --ai-timeout-ms (${t:-none} ms)" in_range "${t:-}" 2000 3000
ask -H 'X-Request-Timeout-Ms: 60000'; t=$(last_timeout)
expect "a budget over --ai-timeout-ms is capped by it (${t:-none} ms)" in_range "${t:-}" 2000 3000
ask -H 'X-Request-Timeout-Ms: soon'
expect "a malformed header: 400 ($code: $(cat "$data/r.json"))" grep -q '"invalid_timeout"' "$data/r.json"

# the node freezes: tight budgets end in 504 within them
kill -STOP "$npid"
for i in 1 2 3 4; do
  ask -H 'X-Request-Timeout-Ms: 400'
  expect "frozen node, budget 400 ms: 504 ($code: $(cat "$data/r.json"))" test "$code" = 504
  expect "... deadline_exceeded" grep -q '"deadline_exceeded"' "$data/r.json"
  expect "... within the budget (${ms} ms)" test "$ms" -lt 1400
  expect "... no Retry-After (retrying with the same budget does not help)" test -z "$(grep -i '^Retry-After:' "$data/r.h")"
done
t0=$(date +%s%N)
curl -s -m 20 -o "$data/mcp.json" -H "$auth" -H 'Content-Type: application/json' -H 'Accept: application/json' \
  -H 'X-Request-Timeout-Ms: 400' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"reply_as","arguments":{"message":"mcp in a hurry"}}}' \
  "$base/mcp"
mms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "MCP reply_as with budget 400 ms: a tool error deadline_exceeded ($(cat "$data/mcp.json"))" \
  grep -q '"isError":true' "$data/mcp.json"
expect "... saying so" grep -q 'deadline_exceeded' "$data/mcp.json"
expect "... within the budget (${mms} ms)" test "$mms" -lt 1400
kill -CONT "$npid"
sleep 1
# the node drops what it was sent while frozen: every call with a short timeout ended not OK
short=$(grep '"event.action":"ai.call"' "$data/node.out" | grep '"rpc.method":"GenerateResponse"' |
  awk -F'"rpc.grpc.timeout_ms":' 'NF > 1 { split($2, a, /[,}]/); if (a[1] + 0 <= 400) print }')
expect "the node saw the five short calls ($(grep -c . <<< "$short"))" test "$(grep -c . <<< "$short")" -ge 5
expect "... and did none of them ($(grep -o '"rpc.grpc.status":"[A-Z_]*"' <<< "$short" | sort | uniq -c | tr '\n' ' '))" \
  test -z "$(grep '"rpc.grpc.status":"OK"' <<< "$short")"
ask
expect "the caller's timeouts did not open the node's breaker: 200 at once ($code: $(cat "$data/r.json"), ${ms} ms)" \
  test "$code" = 200
grep -q '"event.action":"ai.node_breaker_open"' "$data/serve.log" && bad "the breaker opened on the caller's timeouts"

# without a header the gateway's own budget (--ai-timeout-ms 3000) ends a frozen node's call: 504
kill -STOP "$npid"
ask
expect "frozen node, no header: 504 ($code: $(cat "$data/r.json"))" test "$code" = 504
expect "... after the gateway's budget (${ms} ms)" test "$ms" -ge 2900 -a "$ms" -lt 4500
kill -CONT "$npid"

kill -TERM "$spid"; wait "$spid" 2>/dev/null; spid=
echo "ai_deadline: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
