#!/usr/bin/env bash
# `whatstyle serve` with its embedded AI (the in-process clone): upload the sample export for
# Maya with a short budget, wait for the training job, then /v1/reply answers in her style
# (lower case) with her model version, and /v1/style-profile returns her profile. The model is
# kept only encrypted (her words appear nowhere on disk in plaintext) and a restarted server
# replies from it.
# Usage: serve_clone.sh path/to/whatstyle
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent
data=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$data/log" 2>/dev/null; exit 1; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" > "$data/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
[[ $(curl -s "$base/readyz") == *'"ai":"ok"'* ]] || fail "the AI is not wired in: $(curl -s "$base/readyz")"
auth="Authorization: Bearer $key"
curl -s -o "$data/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary @samples/group_chat.txt \
  "$base/v1/exports?persona=Maya&budget=8"
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json") || fail "upload: $(cat "$data/up.json")"
status=
for _ in $(seq 1 240); do
  status=$(curl -s -H "$auth" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$status" = completed ] || [ "$status" = failed ] && break
  sleep 0.5
done
[ "$status" = completed ] || fail "training job ended as '$status': $(curl -s -H "$auth" "$base/v1/training-jobs/$job")"
curl -s -H "$auth" -H 'Content-Type: application/json' -d '{"message":"are you coming to the barbecue on saturday?"}' \
  "$base/v1/reply" > "$data/reply.json"
python3 - "$data/reply.json" <<'PY' || fail "reply: $(cat "$data/reply.json")"
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
assert r["reply"].strip() and r["reply"] == r["reply"].lower(), r
assert 0 <= r["confidence"] <= 1 and r["model_version"].startswith("maya-"), r
PY
[[ $(curl -s -H "$auth" "$base/v1/style-profile") == *'"emoji'* ]] || fail "style profile"
kill -TERM $pid; wait $pid || true; pid=
# her real replies are in the model (retrieval); on disk they exist only encrypted
if grep -rqF "why would u do that" "$data/models" "$data/blobs"; then fail "a plaintext model is on disk"; fi
[ -z "$(ls -A "$data/models/.scratch")" ] || fail "scratch left behind: $(ls -A "$data/models/.scratch")"
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" >> "$data/log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
curl -s -H "$auth" -H 'Content-Type: application/json' -d '{"message":"what are you doing tonight?"}' \
  "$base/v1/reply" > "$data/reply2.json"
[[ $(cat "$data/reply2.json") == *'"model_version":"maya-'* ]] || fail "reply after restart: $(cat "$data/reply2.json")"
kill -TERM $pid; wait $pid || true; pid=
echo ok
