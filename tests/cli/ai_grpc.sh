#!/usr/bin/env bash
# `whatstyle ai` with clients we did not write: grpcurl through server reflection and with the
# .proto files, Python grpcio (unary, streaming, deadlines, cancellation, health, errors) and a
# raw HTTP/2 suite of malformed frames and oversized messages (tests/grpc/clients.py); the LRU
# model cache within --memory-budget; GOAWAY and drain on SIGTERM with a call in flight.
set -u
bin=${1:?usage: ai_grpc.sh path/to/whatstyle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
tools=$(bash tools/install-grpc-tools.sh) || { echo "FAIL: cannot install the gRPC clients"; exit 1; }
grpcurl=$tools/bin/grpcurl; py=$tools/venv/bin/python
tmp=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }

mkdir -p "$tmp/data/models"
for who in Maya Henrik; do
  id=$(echo "$who" | tr 'A-Z' 'a-z')
  "$bin" train samples/group_chat.txt --as "$who" -o "$tmp/data/models/$id" --budget 4 --quiet 2> "$tmp/train.err" ||
    { echo "FAIL: train $who: $(tail -2 "$tmp/train.err")"; exit 1; }
done

start() { # start [options]: the AI service on a free port; sets pid and addr
  "$bin" ai --listen 127.0.0.1:0 --data "$tmp/data" "$@" > "$tmp/ai.out" 2> "$tmp/ai.err" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$tmp/ai.out" 2>/dev/null && break; sleep 0.1; done
  addr=127.0.0.1:$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/ai.out")
}
start --max-message-kb 64 --keepalive-s 1
expect "without --gateway-jwks it says calls are not authenticated" grep -q "calls are NOT authenticated" "$tmp/ai.err"

# grpcurl through reflection
out=$(timeout 20 "$grpcurl" -plaintext "$addr" list 2>&1)
expect "grpcurl list ($out)" test "$(printf '%s\n' "$out" | sort | tr '\n' ' ')" = \
  "grpc.health.v1.Health grpc.reflection.v1.ServerReflection whatstyle.ai.v1.AiService "
out=$(timeout 20 "$grpcurl" -plaintext "$addr" describe whatstyle.ai.v1.GenerateRequest 2>&1)
expect "grpcurl describe a message ($out)" grep -q "repeated .whatstyle.ai.v1.Turn context = 3;" <<< "$out"
out=$(timeout 20 "$grpcurl" -plaintext "$addr" describe grpc.health.v1.HealthCheckResponse.ServingStatus 2>&1)
expect "grpcurl describe a nested enum ($out)" grep -q "SERVING = 1;" <<< "$out"
out=$(timeout 30 "$grpcurl" -plaintext -d '{"user_id":"maya","message":"are you coming tonight?"}' "$addr" \
  whatstyle.ai.v1.AiService/GenerateResponse 2>&1)
expect "grpcurl GenerateResponse via reflection ($out)" grep -q '"modelVersion": "maya-' <<< "$out"
out=$(timeout 30 "$grpcurl" -plaintext -d '{"user_id":"henrik","message":"what time is the game"}' "$addr" \
  whatstyle.ai.v1.AiService/StreamResponse 2>&1)
expect "grpcurl StreamResponse ($out)" grep -q '"done": true' <<< "$out"
out=$(timeout 10 "$grpcurl" -plaintext "$addr" grpc.health.v1.Health/Check 2>&1)
expect "grpcurl health ($out)" grep -q '"status": "SERVING"' <<< "$out"
# grpcurl with the .proto files (no reflection)
out=$(timeout 30 "$grpcurl" -plaintext -import-path proto -proto whatstyle/ai/v1/ai.proto \
  -d '{"user_id":"maya","message":"where r u"}' "$addr" whatstyle.ai.v1.AiService/GenerateResponse 2>&1)
expect "grpcurl with the .proto ($out)" grep -q '"reply"' <<< "$out"
out=$(timeout 10 "$grpcurl" -plaintext -import-path proto -proto whatstyle/ai/v1/ai.proto \
  -d '{"user_id":"ghost","message":"hi"}' "$addr" whatstyle.ai.v1.AiService/GenerateResponse 2>&1)
expect "grpcurl NotFound ($out)" grep -q "Code: NotFound" <<< "$out"

# Python grpcio and raw HTTP/2
mkdir -p "$tmp/gen"
"$py" -m grpc_tools.protoc -Iproto --python_out="$tmp/gen" --grpc_python_out="$tmp/gen" whatstyle/ai/v1/ai.proto ||
  bad "grpcio-tools compiles the .proto"
touch "$tmp/gen/whatstyle/__init__.py" "$tmp/gen/whatstyle/ai/__init__.py" "$tmp/gen/whatstyle/ai/v1/__init__.py"
timeout 240 "$py" tests/grpc/clients.py "$addr" "$tmp/gen" > "$tmp/py.out" 2>&1
expect "python clients ($(grep -E 'FAIL|Error|failure' "$tmp/py.out" | head -20))" test $? -eq 0
tail -1 "$tmp/py.out"
kill -0 "$pid" 2>/dev/null || bad "server died during the client suites: $(tail -5 "$tmp/ai.err")"
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
expect "SIGTERM exits 0 (rc $rc)" test "$rc" -eq 0

# the LRU cache within a tiny budget: alternating users evicts; ModelStatus shows it
start --memory-budget 1
for who in maya henrik maya; do
  timeout 30 "$grpcurl" -plaintext -d "{\"user_id\":\"$who\",\"message\":\"hey\"}" "$addr" \
    whatstyle.ai.v1.AiService/GenerateResponse > /dev/null 2>&1 || bad "generate as $who"
done
out=$(timeout 10 "$grpcurl" -plaintext "$addr" whatstyle.ai.v1.AiService/ModelStatus 2>&1)
expect "LRU: loads 3, evictions 2 ($out)" grep -q '"loads": "3"' <<< "$out"
expect "LRU: evictions counted ($out)" grep -q '"evictions": "2"' <<< "$out"
expect "LRU: only the latest user resident ($out)" test "$(grep -c '"userId"' <<< "$out")" -eq 1

# drain: a Watch stream is open; SIGTERM sends NOT_SERVING, GOAWAY, and the process exits
timeout 20 "$grpcurl" -plaintext "$addr" grpc.health.v1.Health/Watch > "$tmp/watch.out" 2>&1 &
wpid=$!
sleep 1
t0=$(date +%s%N)
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$wpid"
expect "drain: exits 0 (rc $rc)" test "$rc" -eq 0
expect "drain: quickly (${ms} ms)" test "$ms" -lt 5000
expect "drain: Watch saw NOT_SERVING ($(cat "$tmp/watch.out"))" grep -q NOT_SERVING "$tmp/watch.out"

echo "ai_grpc: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
