#!/usr/bin/env bash
# The gateway over two `whatstyle ai` nodes (serve --ai grpc://A,B): training in the gateway
# then ReloadUserModel on the nodes (a second training's model is used at once); the user's
# calls stick to one node (consistent hashing); kill -9 of that node under load: every request
# ends in a reply (failover), a clean 503 with Retry-After or a 504 within the time budget, none
# hangs; with both nodes dead, 503 at once; the restarted node is used again after its
# breaker's probe. The nodes trust only the gateway's key (its JWKS from
# /.well-known/jwks.json): grpcurl without a token is UNAUTHENTICATED, with another user's
# PERMISSION_DENIED; a request's traceparent reaches the node's log.
set -u
bin=${1:?usage: ai_failover.sh path/to/whatstyle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
tools=$(bash tools/install-grpc-tools.sh) || { echo "FAIL: cannot install the gRPC clients"; exit 1; }
grpcurl=$tools/bin/grpcurl
data=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$data"; }
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

declare -A node_pid
start_node() { # start_node NAME PORT
  "$bin" ai --listen "127.0.0.1:$2" --data "$data" --drain-grace-s 1 --gateway-jwks "$data/gateway.jwks" \
    > "$data/$1.out" 2>> "$data/$1.err" &
  node_pid[$1]=$!; pids+=($!)
  for _ in $(seq 100); do grep -q listening "$data/$1.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "FAIL: node $1 did not start: $(cat "$data/$1.err")"; exit 1
}
b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
mint() { # mint SUB: a token as the gateway signs it, with its key (openssl, not our code)
  local now h p; now=$(date +%s)
  h=$(printf '{"alg":"EdDSA","typ":"JWT"}' | b64u)
  p=$(printf '{"sub":"%s","role":"user","iss":"whatstyle-gateway","aud":"whatstyle-ai","iat":%d,"exp":%d}' \
    "$1" "$now" $((now + 60)) | b64u)
  printf '%s.%s' "$h" "$p" > "$data/tok.in"
  printf '%s.%s.%s' "$h" "$p" "$(openssl pkeyutl -sign -rawin -inkey "$data/service-ed25519.pem" -in "$data/tok.in" | b64u)"
}
resident() { # resident PORT: the user ids resident on that node
  timeout 5 "$grpcurl" -plaintext -H "authorization: Bearer $(mint ops)" "127.0.0.1:$1" \
    whatstyle.ai.v1.AiService/ModelStatus 2>/dev/null |
    sed -n 's/.*"userId": "\(.*\)".*/\1/p'
}
pa=$(free_port); pb=$(free_port)

key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
port=$(free_port)
# the AI nodes from the config file (keys as the long options)
printf 'ai = grpc://127.0.0.1:%s,127.0.0.1:%s\nai_timeout_ms = 3000\n' "$pa" "$pb" > "$data/serve.conf"
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --config "$data/serve.conf" \
  --key-rate-limit 1000000 --user-rate-limit 1000000 > "$data/serve.log" 2>&1 &
spid=$!; pids+=($spid)
base="http://127.0.0.1:$port"; auth="Authorization: Bearer $key"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
# the gateway's public key, as the AI nodes are given it
curl -sf "$base/.well-known/jwks.json" > "$data/gateway.jwks"
expect "JWKS published ($(cat "$data/gateway.jwks"))" grep -q '"kty":"OKP","crv":"Ed25519"' "$data/gateway.jwks"
start_node a "$pa"; start_node b "$pb"
expect "the node says it authenticates calls" grep -q "authenticated with the gateway key" "$data/a.err"
gen() { # gen PORT USER [TOKEN_SUB]: grpcurl GenerateResponse straight to a node
  timeout 10 "$grpcurl" -plaintext ${3:+-H "authorization: Bearer $(mint "$3")"} \
    -d "{\"user_id\":\"$2\",\"message\":\"hi\"}" "127.0.0.1:$1" whatstyle.ai.v1.AiService/GenerateResponse 2>&1
}
out=$(gen "$pa" maya)
expect "a call without a token: Unauthenticated ($out)" grep -q "Code: Unauthenticated" <<< "$out"
out=$(gen "$pa" maya tom)
expect "a token for another user: PermissionDenied ($out)" grep -q "Code: PermissionDenied" <<< "$out"
out=$(timeout 10 "$grpcurl" -plaintext "127.0.0.1:$pa" grpc.health.v1.Health/Check 2>&1)
expect "health stays open ($out)" grep -q SERVING <<< "$out"

train() { # train BUDGET FILE: upload an export for Maya, wait for the job
  curl -s -o "$data/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary "@$2" \
    "$base/v1/exports?persona=Maya&budget=$1"
  local job st=
  job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json") ||
    { echo "FAIL: upload: $(cat "$data/up.json")"; exit 1; }
  for _ in $(seq 1 240); do
    st=$(curl -s -H "$auth" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
    [ "$st" = completed ] || [ "$st" = failed ] && break
    sleep 0.5
  done
  [ "$st" = completed ] || { echo "FAIL: training ended as '$st': $(curl -s -H "$auth" "$base/v1/training-jobs/$job")"; exit 1; }
}
reply() { curl -s -m 10 -H "$auth" -H 'Content-Type: application/json' -d "{\"message\":\"$1\"}" "$base/v1/reply"; }
mv_of() { python3 -c 'import json,sys;print(json.load(sys.stdin).get("model_version",""))'; }

train 4 samples/group_chat.txt
v1=$(reply "are you coming tonight?" | mv_of)
expect "reply through the AI nodes ($v1)" test -n "$v1"
# a newer export (more of her messages): a new model, with another version (hash of the weights)
{ cat samples/group_chat.txt; for i in $(seq 40); do
    echo "23/01/2025, 10:$((10 + i)) - Tom: so what's the plan for tonight $i"
    echo "23/01/2025, 10:$((10 + i)) - Maya: omg idk yet lol $i"; done; } > "$data/newer.txt"
train 5 "$data/newer.txt"
v2=$(reply "where are you now?" | mv_of)
expect "after the second training the nodes reloaded ($v1 -> $v2)" test -n "$v2" -a "$v1" != "$v2"
# W3C trace context: the caller's trace id reaches the AI node's call (its span and log line)
tid=$(openssl rand -hex 16)
curl -s -o /dev/null -H "$auth" -H "traceparent: 00-$tid-$(openssl rand -hex 8)-01" \
  -H 'Content-Type: application/json' -d '{"message":"traced?"}' "$base/v1/reply"
traced() { cat "$data/a.out" "$data/b.out" | grep '"event.action":"ai.call"' | grep '"rpc.method":"GenerateResponse"' |
  grep '"rpc.grpc.status":"OK"' | grep -q "\"trace.id\":\"$tid\""; }
for _ in $(seq 20); do traced && break; sleep 0.1; done
expect "the traceparent reached the AI node (trace $tid)" traced

# consistent hashing: maya's model is resident on exactly one node
for i in 1 2 3 4 5; do reply "message number $i" > /dev/null; done
ra2=$(resident "$pa"); rb2=$(resident "$pb")
uid=$ra2$rb2 # the gateway's id of the key's user
if [ -n "$ra2" ] && [ -z "$rb2" ]; then home=a; hport=$pa; other=b; oport=$pb
elif [ -n "$rb2" ] && [ -z "$ra2" ]; then home=b; hport=$pb; other=a; oport=$pa
else home=; fi
expect "one home node for the user (a: '$ra2', b: '$rb2')" test -n "$home"
[ -n "$home" ] || { echo "ai_failover: $pass passed, $fail failed"; exit 1; }

# kill -9 the home node under load and with a stream open on it (a health Watch, grpcio):
# replies fail over or end in 503/504 within the budget; the stream ends UNAVAILABLE at once
"$tools/venv/bin/python" - "127.0.0.1:$hport" > "$data/watch.out" 2>&1 <<'PY' &
import sys, time, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
w = health_pb2_grpc.HealthStub(grpc.insecure_channel(sys.argv[1])).Watch(health_pb2.HealthCheckRequest(), timeout=60)
print("first", next(w).status, flush=True)
try:
    for _ in w:
        pass
    print("ended OK", time.time())
except grpc.RpcError as e:
    print("ended", e.code().name, time.time())
PY
wpid=$!
python3 tests/grpc/load.py "$base" "$key" 6 8 15 > "$data/load1.jsonl" &
lpid=$!
sleep 2
killed_at=$(date +%s.%N)
kill -9 "${node_pid[$home]}"
wait "$lpid"
wait "$wpid"
read -r _ wcode wat < <(grep '^ended' "$data/watch.out")
expect "stream on the killed node: UNAVAILABLE ($(cat "$data/watch.out"))" test "${wcode:-}" = UNAVAILABLE
expect "stream on the killed node: ended at once" python3 -c "import sys; sys.exit(not (float(sys.argv[1]) - float(sys.argv[2]) < 2))" "${wat:-1e12}" "$killed_at"
python3 - "$data/load1.jsonl" <<'PY' > "$data/load1.sum"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
after = [r for r in rs if r["t"] > 2.2]
# 504: a call that used up the budget on the node as it died (docs/ai-service.md)
bad = [r for r in rs if r["status"] not in (200, 503, 504) or r["ms"] > 3000 + 1500 or (r["status"] == 503 and not r["retry_after"])]
ok_after = sum(1 for r in after if r["status"] == 200)
print(len(rs), len(bad), ok_after, max(r["ms"] for r in rs))
PY
read -r total nbad okafter maxms < "$data/load1.sum"
echo "load: $total requests, max ${maxms} ms, $okafter replies after the kill"
expect "load: requests were made ($total)" test "$total" -gt 20
expect "load: none hung or failed uncleanly ($nbad bad, max ${maxms} ms)" test "$nbad" -eq 0
expect "load: the other node took over ($okafter replies after the kill)" test "$okafter" -gt 5
expect "the other node holds the user now" test "$(resident "$oport")" = "$uid"

# both nodes dead: 503 with Retry-After at once, never a hang
kill -9 "${node_pid[$other]}"
sleep 0.2
t0=$(date +%s%N)
code=$(curl -s -m 10 -o "$data/r503.json" -D "$data/h503" -w '%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
  -d '{"message":"anyone there?"}' "$base/v1/reply")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "no node: 503 ($code: $(cat "$data/r503.json"))" test "$code" = 503
expect "no node: Retry-After" grep -qi '^Retry-After:' "$data/h503"
expect "no node: within the budget (${ms} ms)" test "$ms" -lt 4000

# the home node comes back on its port: after the breaker's probe it serves the user again
start_node "$home" "$hport"
served=
for i in $(seq 1 40); do
  [ "$(reply "back again $i" | mv_of)" = "$v2" ] && [ "$(resident "$hport")" = "$uid" ] && { served=1; break; }
  sleep 0.25
done
expect "the restarted home node is used again after the probe" test -n "$served"

kill -TERM "$spid"; wait "$spid" 2>/dev/null
echo "ai_failover: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
