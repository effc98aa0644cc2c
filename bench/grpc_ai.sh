#!/usr/bin/env bash
# Benchmark of the AI service over gRPC (docs/ai-service.md, "Measured"): ghz load on
# GenerateResponse with the user's model resident (8 and 64 concurrent: RPS, p50, p99; the
# median of RUNS runs of SECS seconds), then bench_grpc_hop: the latency the gateway → AI hop
# adds over loopback against the in-process call, what TLS adds to that hop (h2c vs TLS, same
# run: pooled connections, and a new connection with its handshake; certificates made here with
# openssl), the time to switch users (model loaded from the encrypted blobs) and the memory per
# resident model.
# Env: RUNS (3), SECS (5), BASE (a base model for a LoRA clone; default none: scratch model),
# BUDGET (training seconds, 8), GHZ_CONCURRENCY ("8 64"; empty: no ghz), HOP_N (calls of the hop benchmark, 2000; a tenth for replies).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all >/dev/null
tools=$(bash tools/install-grpc-tools.sh)
export WS_MINILM_DIR=${WS_MINILM_DIR:-/nonexistent} WS_BASE_MODEL=${BASE:-none}
runs=${RUNS:-3}; secs=${SECS:-5}
data=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$data"' EXIT
mkdir -p "$data/models"
./build/whatstyle train samples/group_chat.txt --as Maya -o "$data/models/maya" --budget "${BUDGET:-8}" --quiet
./build/whatstyle ai --listen 127.0.0.1:0 --data "$data" > "$data/ai.out" 2> "$data/ai.err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$data/ai.out" 2>/dev/null && break; sleep 0.1; done
addr=127.0.0.1:$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$data/ai.out")
req='{"user_id":"maya","message":"are you coming tonight?","context":[{"author":"Tom","text":"party at 8"}]}'
"$tools/bin/grpcurl" -plaintext -d "$req" "$addr" whatstyle.ai.v1.AiService/GenerateResponse > /dev/null
echo "== ghz GenerateResponse (model resident), median of $runs x ${secs}s =="
for c in ${GHZ_CONCURRENCY-8 64}; do
  for r in $(seq "$runs"); do
    "$tools/bin/ghz" --insecure --proto proto/whatstyle/ai/v1/ai.proto --import-paths proto \
      --call whatstyle.ai.v1.AiService.GenerateResponse -d "$req" -c "$c" -z "${secs}s" --format json "$addr" \
      > "$data/ghz_${c}_$r.json" 2> /dev/null
  done
  python3 - "$c" "$data"/ghz_"${c}"_*.json <<'PY'
import json, statistics, sys
c, files = sys.argv[1], sys.argv[2:]
rps, p50, p99, err, cut = [], [], [], 0, 0
for f in files:
    d = json.load(open(f))
    rps.append(d["rps"])
    lat = {x["percentage"]: x["latency"] / 1e6 for x in d.get("latencyDistribution") or []}
    p50.append(lat.get(50, float("nan"))); p99.append(lat.get(99, float("nan")))
    # a duration run closes its connection when it ends: the calls then in flight (as many as the
    # concurrency) fail client-side with "transport is closing"; those are counted apart
    for k, v in (d.get("errorDistribution") or {}).items():
        if "transport is closing" in k:
            cut += v
        else:
            err += v
print(json.dumps({"concurrency": int(c), "rps": round(statistics.median(rps), 1),
                  "p50_ms": round(statistics.median(p50), 2), "p99_ms": round(statistics.median(p99), 2),
                  "errors": err, "cut_at_end": cut, "runs": len(files)}))
PY
done
"$tools/bin/grpcurl" -plaintext "$addr" whatstyle.ai.v1.AiService/ModelStatus | tr -d '\n ' ; echo
kill "$pid"; wait "$pid" || true; pid=
echo "== the gateway -> AI hop vs in-process; h2c vs TLS; user switch; memory per resident model (median of $runs) =="
mkdir -p "$data/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$data/pki/ca.key" \
  -out "$data/pki/ca.pem" -days 1 -subj "/CN=bench ca" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$data/pki/node.key" \
  -out "$data/pki/node.csr" -subj "/CN=node" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$data/pki/node.ext"
openssl x509 -req -in "$data/pki/node.csr" -CA "$data/pki/ca.pem" -CAkey "$data/pki/ca.key" -CAcreateserial \
  -out "$data/pki/node.pem" -days 1 -extfile "$data/pki/node.ext" 2>/dev/null
for r in $(seq "$runs"); do ./build/bench_grpc_hop "$data" maya "${HOP_N:-2000}" "$data/pki"; done > "$data/hop.jsonl"
python3 - "$data/hop.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r.get("call", "switch"), []).append(r)
for k, rs in by.items():
    out = {"call": k} if k != "switch" else {}
    for f in rs[0]:
        if f != "call":
            out[f] = round(statistics.median(r[f] for r in rs), 4)
    print(json.dumps(out))
PY
