#!/usr/bin/env bash
# POST /v1/reply as Server-Sent Events: train Maya on the sample chat, then a streamed reply
# ("stream": true) gives "token" events before one "done" event whose JSON is the plain reply's
# (the tokens spell the reply unless it is the fallback); the same request again is cached and
# streams as one piece; Accept: text/event-stream works too; the conversation is recorded;
# a client that leaves mid-stream does not hurt the server; errors before the stream are plain
# HTTP errors (409 without a model, 400 for a bad "stream").
# Usage: reply_stream.sh path/to/whatstyle
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
data=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$data/log" 2>/dev/null; exit 1; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
nokey=$("$bin" keys create --data "$data" --user nomodel 2>/dev/null)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" > "$data/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
auth="Authorization: Bearer $key"
# errors before any token: plain HTTP errors
code=$(curl -s -o "$data/e.json" -w '%{http_code}' -H "Authorization: Bearer $nokey" -H 'Content-Type: application/json' \
  -d '{"message":"hi","stream":true}' "$base/v1/reply")
[ "$code" = 409 ] && grep -q no_model "$data/e.json" || fail "no model: $code $(cat "$data/e.json")"
code=$(curl -s -o "$data/e.json" -w '%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
  -d '{"message":"hi","stream":"yes"}' "$base/v1/reply")
[ "$code" = 400 ] || fail "bad stream flag: $code $(cat "$data/e.json")"
curl -s -o "$data/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary @samples/group_chat.txt \
  "$base/v1/exports?persona=Maya&budget=8"
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json") || fail "upload: $(cat "$data/up.json")"
status=
for _ in $(seq 1 240); do
  status=$(curl -s -H "$auth" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$status" = completed ] || [ "$status" = failed ] && break
  sleep 0.5
done
[ "$status" = completed ] || fail "training job ended as '$status'"
cat > "$data/sse.py" <<'PY'
import http.client, json, sys, time, urllib.parse
base, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
u = urllib.parse.urlparse(base)

def sse(body, headers=None, stop_after=None):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    h.update(headers or {})
    c.request("POST", "/v1/reply", json.dumps(body), h)
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    assert r.getheader("Content-Type", "").startswith("text/event-stream"), r.getheaders()
    events, ev, data = [], None, []
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode("utf-8").rstrip("\n")
        if line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and ev:
            events.append((ev, json.loads("\n".join(data)), time.monotonic()))
            ev, data = None, []
            if (stop_after and len(events) >= stop_after) or events[-1][0] in ("done", "error"):
                c.close()
                return events
    c.close()
    return events

msgs = ["are you coming to the barbecue on saturday?", "what are you doing tonight?", "did you see the game??",
        "who is bringing the snacks", "omg did u hear about the concert"]
if mode == "grpc":   # through the gateway's gRPC client: fresh messages (not in the cache)
    msgs = [m + " (again)" for m in msgs[:3]]
spelled = 0
for m in msgs:
    evs = sse({"message": m, "stream": True})
    kinds = [e[0] for e in evs]
    assert kinds and kinds[-1] == "done" and kinds.count("done") == 1, kinds
    assert "error" not in kinds, evs
    toks = [e[1]["text"] for e in evs if e[0] == "token"]
    assert toks and all(t for t in toks), evs            # at least one piece, none empty
    done = evs[-1][1]
    assert set(done) >= {"reply", "confidence", "fallback", "cached", "processing_time_ms", "model_version"}, done
    assert 0 <= done["confidence"] <= 1 and done["model_version"].startswith("maya-") and not done["cached"], done
    assert evs[0][2] <= evs[-1][2]
    if not done["fallback"]:
        assert "".join(toks) == done["reply"], (toks, done)
        spelled += 1
    # the same request again: cached, one piece that is the reply
    again = sse({"message": m, "stream": True})
    assert [e[0] for e in again] == ["token", "done"], again
    assert again[1][1]["cached"] and again[0][1]["text"] == again[1][1]["reply"] == done["reply"], again
print("%s: streamed %d replies, %d spelled by their tokens" % (mode, len(msgs), spelled))
if mode == "grpc":
    sys.exit(0)
# Accept: text/event-stream without the flag
evs = sse({"message": "see you at the park later?"}, {"Accept": "text/event-stream"})
assert evs[-1][0] == "done", evs
# a client leaving after the first event: the server goes on serving
sse({"message": "tell me something funny please", "stream": True}, stop_after=1)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
c.request("GET", "/v1/conversations?limit=50", headers={"Authorization": "Bearer " + key})
r = c.getresponse()
conv = json.loads(r.read())
texts = [x.get("message") for x in conv.get("conversations", conv.get("items", []))]
for m in msgs:
    assert m in texts, (m, texts)
PY
python3 "$data/sse.py" "$base" "$key" local || fail "streaming (in-process AI)"
curl -sf "$base/healthz" >/dev/null || fail "server down after a client left mid-stream"
kill -TERM $pid; wait $pid || true; pid=
# the same through `whatstyle ai`: the gateway's gRPC client consumes StreamResponse
aport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$bin" ai --listen "127.0.0.1:$aport" --data "$data" > "$data/ai.out" 2> "$data/ai.err" &
apid=$!
for _ in $(seq 100); do grep -q listening "$data/ai.out" 2>/dev/null && break; sleep 0.1; done
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --ai "grpc://127.0.0.1:$aport" >> "$data/log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
python3 "$data/sse.py" "$base" "$key" grpc || { kill -9 $apid; fail "streaming (gRPC AI): $(tail -5 "$data/ai.err")"; }
kill -TERM $pid; wait $pid || true; pid=
grep -q 'StreamResponse' "$data/ai.out" "$data/ai.err" || { kill -9 $apid; fail "the AI node served no StreamResponse"; }
kill -TERM $apid; wait $apid || true
echo ok
