#!/usr/bin/env bash
# `whatstyle keys rotate-master` with `whatstyle serve` running on the same data directory:
# upload an export and train (tiny budget), rotate the master key, then the job and the model
# still work, every object is under the new key id, the retired key file is gone, a new
# upload and the model it trains are sealed under the new key by the running server, and a
# restarted server replies from its model. Env mode is refused with instructions, and
# `keys reseal` finds nothing left to do.
# Usage: keys_rotate.sh path/to/whatstyle
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent
unset WS_MASTER_KEY WS_MASTER_KEYS_RETIRED WS_BLOBS_URL
data=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$data/log" 2>/dev/null; exit 1; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
start() {
  "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" >> "$data/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && return; sleep 0.05; done
  fail "the server did not start"
}
base="http://127.0.0.1:$port"
auth="Authorization: Bearer $key"
upload() { # FILE; prints the job id
  curl -s -o "$data/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary "@$1" \
    "$base/v1/exports?persona=Maya&budget=2"
  python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json" ||
    fail "upload: $(cat "$data/up.json")"
}
wait_job() {
  local status=
  for _ in $(seq 1 240); do
    status=$(curl -s -H "$auth" "$base/v1/training-jobs/$1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
    [ "$status" = completed ] || [ "$status" = failed ] && break
    sleep 0.5
  done
  [ "$status" = completed ] || fail "training job $1 ended as '$status': $(curl -s -H "$auth" "$base/v1/training-jobs/$1")"
}
reply() {
  curl -s -H "$auth" -H 'Content-Type: application/json' -d '{"message":"are you coming on saturday?"}' \
    "$base/v1/reply" > "$data/reply.json"
  [[ $(cat "$data/reply.json") == *'"model_version":"maya-'* ]] || fail "reply $1: $(cat "$data/reply.json")"
}
# key ids: of DATA/master.key, and of every object in DATA/blobs ("path id" lines)
key_id() {
  python3 -c 'import hashlib,sys;print(hashlib.sha256(b"whatstyle-blob-key-id"+open(sys.argv[1],"rb").read()).hexdigest()[:8])' \
    "$data/master.key"
}
object_ids() {
  python3 - "$data/blobs" <<'PY'
import os, sys
root = sys.argv[1]
for d, _, files in os.walk(root):
    for f in sorted(files):
        p = os.path.join(d, f)
        raw = open(p, "rb").read(24)
        assert raw[:4] == b"WSBL", p
        print(os.path.relpath(p, root), raw[8:12].hex())
PY
}

start
job1=$(upload samples/group_chat.txt)
wait_job "$job1"
reply "before the rotation"
old=$(key_id)
object_ids > "$data/ids.before"
grep -q "exports/" "$data/ids.before" || fail "no export in the blobs"
grep -q "models/current" "$data/ids.before" || fail "no model in the blobs"
[ "$(awk '{print $2}' "$data/ids.before" | sort -u)" = "$old" ] || fail "objects not under the key id $old"

echo "== rotate-master with the server running"
"$bin" keys rotate-master --data "$data" > "$data/rotate.out" 2> "$data/rotate.err" ||
  fail "rotate-master: $(cat "$data/rotate.out" "$data/rotate.err")"
cat "$data/rotate.out"
new=$(key_id)
[ "$new" != "$old" ] || fail "the master key did not change"
n=$(wc -l < "$data/ids.before")
grep -q "objects: $n, re-sealed: $n, .* failed: 0" "$data/rotate.out" || fail "not every object was re-sealed"
grep -q "retired key id $old: 0 objects left (key file deleted)" "$data/rotate.out" || fail "report"
[ ! -e "$data/master.key.retired-$old" ] || fail "the retired key file is still there"
[ "$(stat -c %a "$data/master.key")" = 600 ] || fail "master.key is not 0600"
object_ids > "$data/ids.after"
[ "$(awk '{print $2}' "$data/ids.after" | sort -u)" = "$new" ] || fail "objects not under the new key id $new"

echo "== the running server after the rotation"
[[ $(curl -s -H "$auth" "$base/v1/training-jobs/$job1") == *'"completed"'* ]] || fail "job after rotation"
reply "after the rotation"
# another export (the same one would train the same model version, which exists)
{ cat samples/group_chat.txt; echo "22/01/2025, 15:45 - Maya: omg yes i checked, sunny all day"; } > "$data/chat2.txt"
job2=$(upload "$data/chat2.txt")
wait_job "$job2"
reply "from the model trained after the rotation"
object_ids > "$data/ids.new"
[ "$(wc -l < "$data/ids.new")" -gt 0 ] || fail "no objects"
grep -q "exports/" "$data/ids.new" || fail "no export"
if grep -v " $new\$" "$data/ids.new"; then fail "objects written after the rotation under another key"; fi
# the second export is new (not in the listing before)
[ "$(grep -c exports/ "$data/ids.new")" -gt "$(grep -c exports/ "$data/ids.after")" ] || fail "second export missing"
kill -TERM $pid; wait $pid || true; pid=
if grep -q "different master key" "$data/log"; then fail "the server met an unknown key"; fi

echo "== a restarted server opens its model under the new key"
start
reply "after a restart"
kill -TERM $pid; wait $pid || true; pid=

echo "== reseal: nothing left; env mode refuses rotate-master"
"$bin" keys reseal --data "$data" > "$data/reseal.out" || fail "reseal: $(cat "$data/reseal.out")"
grep -q "re-sealed: 0, already under the current key: $(wc -l < "$data/ids.new")," "$data/reseal.out" ||
  fail "reseal: $(cat "$data/reseal.out")"
set +e
WS_MASTER_KEY=$(python3 -c 'print("ab"*32)') "$bin" keys rotate-master --data "$data" > /dev/null 2> "$data/env.err"
rc=$?
set -e
[ "$rc" = 2 ] || fail "rotate-master in env mode exited $rc"
grep -q "openssl rand -hex 32" "$data/env.err" && grep -q WS_MASTER_KEYS_RETIRED "$data/env.err" &&
  grep -q "keys reseal" "$data/env.err" || fail "env mode instructions: $(cat "$data/env.err")"
[ "$(key_id)" = "$new" ] || fail "env mode changed master.key"
echo ok
