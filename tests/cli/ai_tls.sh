#!/usr/bin/env bash
# TLS between the gateway and the AI nodes, with certificates made here by openssl: a node with
# --tls-cert/--tls-key answers grpcurl and Python grpcio that trust its CA (ALPN h2); a client
# with another CA, or a certificate for another host name, or an expired one, is refused, and
# a cleartext client gets no answer (never a hang); --tls-client-ca refuses a client without a
# certificate (mTLS). Then `serve --ai grpcs://... --ai-ca` replies through a TLS node, and each
# misconfiguration (wrong CA, host name, expired certificate, grpc:// to a TLS port, grpcs:// to
# a cleartext one, no client certificate for an mTLS node) ends in 503 with Retry-After and a
# message saying why, logged by the gateway without secrets.
set -u
bin=${1:?usage: ai_tls.sh path/to/whatstyle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
tools=$(bash tools/install-grpc-tools.sh) || { echo "FAIL: cannot install the gRPC clients"; exit 1; }
grpcurl=$tools/bin/grpcurl; py=$tools/venv/bin/python
data=$(mktemp -d); pki=$data/pki; pids=(); spid=
cleanup() { for p in "${pids[@]}" $spid; do kill -9 "$p" 2>/dev/null; done; rm -rf "$data"; }
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# ---- the certificates: two CAs, leaves for the right and a wrong host, an expired one ----
mkdir -p "$pki"
for c in ca ca2; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$c.key" \
    -out "$pki/$c.pem" -days 2 -subj "/CN=whatstyle test $c" 2>/dev/null || { echo "FAIL: openssl CA"; exit 1; }
done
leaf() { # leaf NAME SUBJECT_ALT_NAMES DAYS: a certificate signed by ca
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" -out "$pki/$1.csr" \
    -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/$1.pem" -days "$3" -extfile "$pki/$1.ext" 2>/dev/null || { echo "FAIL: openssl leaf $1"; exit 1; }
}
leaf node "DNS:localhost,IP:127.0.0.1" 2
leaf other "DNS:other.example" 2
leaf expired "DNS:localhost,IP:127.0.0.1" -1 # not after < not before: expired
leaf gateway "DNS:gateway.internal" 2

# ---- the gateway (trains; its first AI node is the TLS one) ----
key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
port=$(free_port); base="http://127.0.0.1:$port"; auth="Authorization: Bearer $key"
start_serve() { # start_serve AI_SPEC [options]
  [ -n "$spid" ] && { kill -TERM "$spid"; wait "$spid" 2>/dev/null; }
  "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --ai "$@" --ai-timeout-ms 2000 \
    > "$data/serve.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 200); do curl -sf "$base/healthz" >/dev/null && return 0; sleep 0.05; done
  echo "FAIL: serve did not start: $(tail -3 "$data/serve.log")"; exit 1
}
declare -A node_port
start_node() { # start_node NAME [options]
  local p; p=$(free_port)
  "$bin" ai --listen "127.0.0.1:$p" --data "$data" "${@:2}" > "$data/$1.out" 2> "$data/$1.err" &
  pids+=($!); node_port[$1]=$p
  for _ in $(seq 100); do grep -q listening "$data/$1.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "FAIL: node $1 did not start: $(cat "$data/$1.err")"; exit 1
}
start_node tls --tls-cert "$pki/node.pem" --tls-key "$pki/node.key"
start_node plain
start_node other --tls-cert "$pki/other.pem" --tls-key "$pki/other.key"
start_node expired --tls-cert "$pki/expired.pem" --tls-key "$pki/expired.key"
start_node mtls --tls-cert "$pki/node.pem" --tls-key "$pki/node.key" --tls-client-ca "$pki/ca.pem"
expect "the node says it serves TLS ($(cat "$data/tls.out"))" grep -q "(gRPC, TLS)" "$data/tls.out"
expect "the mTLS node says so" grep -q "client certificates required" "$data/mtls.out"
pt=${node_port[tls]}

# ---- stock clients against the TLS node ----
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca.pem" "127.0.0.1:$pt" list 2>&1)
expect "grpcurl over TLS lists the services ($out)" grep -q whatstyle.ai.v1.AiService <<< "$out"
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca.pem" -d '{"user_id":"ghost","message":"hi"}' \
  "localhost:$pt" whatstyle.ai.v1.AiService/GenerateResponse 2>&1)
expect "grpcurl over TLS by host name calls the service ($out)" grep -q "Code: NotFound" <<< "$out"
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca2.pem" "127.0.0.1:$pt" list 2>&1)
expect "grpcurl with another CA is refused ($out)" grep -q "certificate signed by unknown authority" <<< "$out"
t0=$(date +%s%N)
out=$(timeout 20 "$grpcurl" -plaintext -max-time 10 "127.0.0.1:$pt" list 2>&1); rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "grpcurl in cleartext to the TLS port fails ($rc: $out)" test "$rc" -ne 0
expect "... at once, no hang (${ms} ms)" test "$ms" -lt 5000
expect "the node logs the cleartext client without secrets" \
  grep -q '"event.action":"grpc.tls_failed".*does not speak TLS' "$data/tls.out"
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca.pem" "localhost:${node_port[other]}" list 2>&1)
expect "grpcurl: a certificate for another host is refused ($out)" grep -q "valid for other.example" <<< "$out"
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca.pem" "127.0.0.1:${node_port[expired]}" list 2>&1)
expect "grpcurl: an expired certificate is refused ($out)" grep -q "expired" <<< "$out"
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca.pem" "127.0.0.1:${node_port[mtls]}" list 2>&1)
expect "grpcurl without a client certificate: the mTLS node refuses ($out)" test -n "$(grep -i 'certificate required\|bad certificate\|handshake failure' <<< "$out")"
out=$(timeout 20 "$grpcurl" -cacert "$pki/ca.pem" -cert "$pki/gateway.pem" -key "$pki/gateway.key" \
  "127.0.0.1:${node_port[mtls]}" list 2>&1)
expect "grpcurl with a client certificate: the mTLS node answers ($out)" grep -q whatstyle.ai.v1.AiService <<< "$out"

timeout 60 "$py" - "$pki" "$pt" "${node_port[mtls]}" > "$data/py.out" 2>&1 <<'PY'
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
pki, port, mport = sys.argv[1:4]
rd = lambda n: open(f"{pki}/{n}", "rb").read()
def check(ca, p, cert=None):
    creds = grpc.ssl_channel_credentials(root_certificates=rd(ca), private_key=cert and rd(cert + ".key"),
                                         certificate_chain=cert and rd(cert + ".pem"))
    ch = grpc.secure_channel(f"localhost:{p}", creds)
    try:
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
    except grpc.RpcError as e:
        return e.code().name
    finally:
        ch.close()
print("good", check("ca.pem", port))
print("wrongca", check("ca2.pem", port))
print("mtls-nocert", check("ca.pem", mport))
print("mtls-cert", check("ca.pem", mport, "gateway"))
PY
expect "grpcio over TLS: SERVING ($(cat "$data/py.out"))" grep -q "^good SERVING" "$data/py.out"
expect "grpcio with another CA: UNAVAILABLE" grep -q "^wrongca UNAVAILABLE" "$data/py.out"
expect "grpcio without a client certificate on the mTLS node: UNAVAILABLE" grep -q "^mtls-nocert UNAVAILABLE" "$data/py.out"
expect "grpcio with a client certificate on the mTLS node: SERVING" grep -q "^mtls-cert SERVING" "$data/py.out"

# ---- the gateway over grpcs:// ----
start_serve "grpcs://127.0.0.1:$pt" --ai-ca "$pki/ca.pem"
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
n=0; code=
ask() { # ask: a fresh message each time (no reply cache); sets code, the body in $data/r.json
  n=$((n + 1))
  code=$(curl -s -m 10 -o "$data/r.json" -D "$data/r.h" -w '%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
    -d "{\"message\":\"are you coming tonight $n?\"}" "$base/v1/reply")
}
ask
expect "serve --ai grpcs:// replies through the TLS node ($code: $(cat "$data/r.json"))" test "$code" = 200
expect "... and the node served it" grep -q '"event.action":"ai.call".*"rpc.grpc.status":"OK"' "$data/tls.out"

refused() { # refused DESCRIPTION PATTERN: the reply is 503 with Retry-After, its message and the log say why
  ask
  expect "$1: 503 ($code: $(cat "$data/r.json"))" test "$code" = 503
  expect "$1: Retry-After" grep -qi '^Retry-After:' "$data/r.h"
  expect "$1: the message says why ($(cat "$data/r.json"))" grep -q "$2" "$data/r.json"
  expect "$1: the gateway logs why" grep -q "\"event.action\":\"ai.node_failed\".*$2" "$data/serve.log"
  expect "$1: no token in the log" test -z "$(grep -i 'bearer\|eyJ' "$data/serve.log")"
}
start_serve "grpcs://127.0.0.1:$pt" --ai-ca "$pki/ca2.pem"
refused "another CA" "certificate did not verify: unable to get local issuer certificate"
start_serve "grpcs://127.0.0.1:${node_port[other]}" --ai-ca "$pki/ca.pem"
refused "a certificate for another host" "certificate did not verify: IP address mismatch"
start_serve "grpcs://localhost:${node_port[expired]}" --ai-ca "$pki/ca.pem"
refused "an expired certificate" "certificate did not verify: certificate has expired"
start_serve "grpc://127.0.0.1:$pt"
refused "grpc:// to a TLS port" "before speaking HTTP/2 (a TLS port? use grpcs://)"
start_serve "grpcs://127.0.0.1:${node_port[plain]}" --ai-ca "$pki/ca.pem"
refused "grpcs:// to a cleartext port" "does not speak TLS"
start_serve "grpcs://127.0.0.1:${node_port[mtls]}" --ai-ca "$pki/ca.pem"
refused "no client certificate for the mTLS node" "certificate required"
start_serve "grpcs://127.0.0.1:${node_port[mtls]}" --ai-ca "$pki/ca.pem" --ai-cert "$pki/gateway.pem" --ai-key "$pki/gateway.key"
ask
expect "with its client certificate the gateway replies through the mTLS node ($code: $(cat "$data/r.json"))" test "$code" = 200
"$bin" serve --port "$(free_port)" --data "$data" --ai "grpc://127.0.0.1:$pt" --ai-ca "$pki/ca.pem" > "$data/bad.log" 2>&1 &&
  bad "TLS options without grpcs:// are refused"
expect "... with a message ($(cat "$data/bad.log"))" grep -q "need --ai grpcs://" "$data/bad.log"

kill -TERM "$spid"; wait "$spid" 2>/dev/null; spid=
echo "ai_tls: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
