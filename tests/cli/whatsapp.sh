#!/usr/bin/env bash
# Black-box test of the WhatsApp channel on `whatstyle serve` with its embedded clone and a
# Graph API stand-in (tests/helpers/graph_standin.py) on loopback: the verification handshake;
# signatures (missing, wrong, other secret: 401 before parsing; Meta's fixtures signed with a
# test secret: 200); replays counted once; an unlinked number; linking (token sealed in the
# blobs, never in plaintext on disk; another account cannot take the number); draft mode
# (reason, edit, approve -> read receipt + reply with context.message_id to the stand-in);
# the 24-hour window; off per contact; auto mode; throttling (130429) retried with backoff;
# 131047 recorded on the draft; statuses applied by rank; a business-scoped recipient;
# metrics; erasure of every WhatsApp row and the token by DELETE /v1/me.
# Usage: whatsapp.sh path/to/whatstyle
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent
data=$(mktemp -d)
pid= gpid=
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  if [ -n "$gpid" ]; then kill -9 "$gpid" 2>/dev/null; wait "$gpid" 2>/dev/null || true; fi
  rm -rf "$data" || true
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$data/log" 2>/dev/null; exit 1; }
secret=test-app-secret-0123456789abcdef
printf '%s\n' "$secret" > "$data/app.secret"
pnid=106540352242922
token=EAAGtesttoken$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

# the Graph API stand-in
python3 tests/helpers/graph_standin.py "$data/gport" "$data/graph.log" v99.0 "$pnid=$token" &
gpid=$!
for _ in $(seq 1 400); do [ -s "$data/gport" ] && break; sleep 0.05; done
gport=$(cat "$data/gport")

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user maya 2>/dev/null)
key2=$("$bin" keys create --data "$data" --user intruder 2>/dev/null)
WS_WHATSAPP_VERIFY_TOKEN=verify-me-42 "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" \
  --whatsapp-app-secret-file "$data/app.secret" --whatsapp-graph-url "http://127.0.0.1:$gport/" \
  --whatsapp-graph-version v99.0 --whatsapp-recipient-gap-ms 300 > "$data/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
auth="Authorization: Bearer $key"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
metric() { curl -s "$base/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
sign() { python3 -c 'import hmac,hashlib,sys;print("sha256="+hmac.new(sys.argv[1].encode(),open(sys.argv[2],"rb").read(),hashlib.sha256).hexdigest())' "$2" "$1"; }
post() { curl -s -o /dev/null -w '%{http_code}' -H "X-Hub-Signature-256: $(sign "$1" "$secret")" \
  -H 'Content-Type: application/json' --data-binary @"$1" "$base/v1/whatsapp/webhook"; }
wait_metric() { # name value
  for _ in $(seq 1 600); do [ "$(metric "$1")" = "$2" ] && return 0; sleep 0.05; done
  fail "$1 is $(metric "$1"), expected $2"
}
# a fresh text message (timestamp now) in Meta's shape: file wamid from text [user_id]
mkmsg() {
  python3 - "$@" <<'PY'
import json, sys, time
path, wamid, frm, text = sys.argv[1:5]
uid = sys.argv[5] if len(sys.argv) > 5 else None
msg = {"id": wamid, "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}
contact = {"profile": {"name": "Test"}}
if frm != "-":
    msg["from"] = frm; contact["wa_id"] = frm
if uid:
    msg["from_user_id"] = uid; contact["user_id"] = uid
body = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"value": {
    "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881",
    "phone_number_id": "106540352242922"}, "contacts": [contact], "messages": [msg]}, "field": "messages"}]}]}
open(path, "w").write(json.dumps(body, ensure_ascii=True, separators=(",", ":")))
PY
}
drafts() { curl -s -H "$auth" "$base/v1/whatsapp/drafts$1"; }
# the draft answering wamid, as "status|reason|reply|error code|error message|draft id", once it left "generating"
draft_of() {
  local out=
  for _ in $(seq 1 1200); do
    out=$(drafts "" | python3 -c '
import json,sys
for d in json.load(sys.stdin)["items"]:
    if d["message_id"] == sys.argv[1] and d["status"] not in ("generating", "queued"):
        e = d["error"] or {}
        print("%s|%s|%s|%s|%s|%s" % (d["status"], d["reason"], d["reply"], e.get("code", ""), e.get("message"), d["draft_id"]))' "$1")
    [ -n "$out" ] && break; sleep 0.05
  done
  [ -n "$out" ] || fail "no settled draft for $1: $(drafts "")"
  echo "$out"
}
sends_to() { python3 -c '
import json,sys
n=0
for l in open(sys.argv[1]):
    e=json.loads(l); b=e.get("body") or {}
    if b.get("type")=="text" and (b.get("to")==sys.argv[2] or b.get("recipient")==sys.argv[2]) and e["status"]==200: n+=1
print(n)' "$data/graph.log" "$1" 2>/dev/null || echo 0; }

# 1. the verification handshake
[ "$(curl -s "$base/v1/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=verify-me-42&hub.challenge=1158201444")" = 1158201444 ] || fail "handshake"
[ "$(code "$base/v1/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")" = 403 ] || fail "wrong verify token"
[ "$(code "$base/v1/whatsapp/webhook?hub.mode=unsubscribe&hub.verify_token=verify-me-42&hub.challenge=1")" = 403 ] || fail "wrong mode"

# 2. signatures: missing, wrong, another secret -> 401 (even for a body that is not JSON)
f=tests/fixtures/whatsapp/text_emoji.json
[ "$(code -H 'Content-Type: application/json' --data-binary @$f "$base/v1/whatsapp/webhook")" = 401 ] || fail "unsigned"
[ "$(code -H "X-Hub-Signature-256: sha256=$(printf '0%.0s' $(seq 64))" --data-binary @$f "$base/v1/whatsapp/webhook")" = 401 ] || fail "wrong signature"
[ "$(code -H "X-Hub-Signature-256: $(sign $f other-secret)" --data-binary @$f "$base/v1/whatsapp/webhook")" = 401 ] || fail "other secret"
[ "$(code -H "X-Hub-Signature-256: sha256=zz" --data-binary 'not json' "$base/v1/whatsapp/webhook")" = 401 ] || fail "garbage"
[ "$(metric ws_whatsapp_signature_failures_total)" = 4 ] || fail "signature failure metric"
head -c $((3 * 1024 * 1024 + 10)) /dev/zero | tr '\0' ' ' > "$data/big"
[ "$(code -H "X-Hub-Signature-256: $(sign "$data/big" "$secret")" --data-binary @"$data/big" "$base/v1/whatsapp/webhook")" = 413 ] || fail "body cap"

# 3. an unlinked number: acknowledged, counted, nothing drafted
[ "$(post tests/fixtures/whatsapp/unlinked.json)" = 200 ] || fail "unlinked post"
wait_metric ws_whatsapp_messages_received_total 1

# 4. linking: the token is sealed (never plaintext on disk), another account cannot take the number
[ "$(code -H "$auth" -d "{\"phone_number_id\":\"$pnid\",\"access_token\":\"$token\",\"mode\":\"sometimes\"}" "$base/v1/whatsapp/links")" = 400 ] || fail "bad mode"
[ "$(code -H "$auth" -d "{\"phone_number_id\":\"+1 555\",\"access_token\":\"$token\"}" "$base/v1/whatsapp/links")" = 400 ] || fail "bad number id"
[ "$(code -H "$auth" -d "{\"phone_number_id\":\"$pnid\",\"access_token\":\"$token\",\"mode\":\"draft\"}" "$base/v1/whatsapp/links")" = 201 ] || fail "link"
[ "$(code -H "Authorization: Bearer $key2" -d "{\"phone_number_id\":\"$pnid\",\"access_token\":\"x\"}" "$base/v1/whatsapp/links")" = 409 ] || fail "taken number"
curl -s -H "$auth" "$base/v1/whatsapp/links" | grep -q "\"phone_number_id\":\"$pnid\",\"mode\":\"draft\"" || fail "links list"
curl -s -H "$auth" "$base/v1/whatsapp/links" | grep -q "$token" && fail "the token is echoed"
grep -rq "$token" "$data" --exclude=graph.log && fail "the access token is on disk in plaintext"

# 5. a fixture from 2025 (outside the 24-hour window), replayed 3 times: processed once
for _ in 1 2 3 4; do [ "$(post $f)" = 200 ] || fail "signed fixture"; done
wait_metric ws_whatsapp_messages_received_total 2
wait_metric ws_whatsapp_duplicates_total 3
d=$(draft_of "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
# no clone trained yet: the draft shows why
[[ $d == failed\|*"no trained model"* ]] || fail "draft without a clone: $d"
drafts "" | grep -q 'Ol\\u00e1\|Olá' || fail "the draft does not show the message"

# 6. train the clone (short budget)
curl -s -o "$data/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary @samples/group_chat.txt \
  "$base/v1/exports?persona=Maya&budget=5"
job=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["job_id"])' "$data/up.json") || fail "upload"
for _ in $(seq 1 600); do
  st=$(curl -s -H "$auth" "$base/v1/training-jobs/$job" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
  [ "$st" = completed ] || [ "$st" = failed ] && break; sleep 0.5
done
[ "$st" = completed ] || fail "training: $st"

# 7. the old message again under a new id: drafted, outside the window; approving is refused
python3 -c 'import sys;s=open(sys.argv[1]).read().replace("RgA=","OLD1");open(sys.argv[2],"w").write(s)' $f "$data/old.json"
[ "$(post "$data/old.json")" = 200 ] || fail "old post"
d=$(draft_of "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0OLD1")
[[ $d == pending\|outside\ the\ 24-hour* ]] || fail "outside the window: $d"
id=${d##*|}
[ "$(code -X POST -H "$auth" "$base/v1/whatsapp/drafts/$id/approve")" = 409 ] || fail "approve outside the window"

# 8. draft mode inside the window: pending with a reply; edit + send -> read receipt and reply
mkmsg "$data/m1.json" wamid.FRESH1 16505551234 "are you coming to the barbecue on saturday?"
[ "$(post "$data/m1.json")" = 200 ] || fail "m1"
d=$(draft_of wamid.FRESH1)
[[ $d == pending\|draft\ mode* ]] || fail "draft mode: $d"
id=${d##*|}
[ "$(code -H "$auth" -H 'Content-Type: application/json' -d '{"text":"yes!! see you at 8 \ud83c\udf89","send":true}' "$base/v1/whatsapp/drafts/$id/edit")" = 200 ] || fail "edit+send"
for _ in $(seq 1 600); do [ "$(sends_to 16505551234)" = 1 ] && break; sleep 0.05; done
python3 - "$data/graph.log" <<'PY' || fail "what the stand-in got: $(cat "$data/graph.log")"
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
reads = [e for e in log if (e.get("body") or {}).get("status") == "read"]
texts = [e for e in log if (e.get("body") or {}).get("type") == "text"]
assert any(e["body"]["message_id"] == "wamid.FRESH1" and e["status"] == 200 for e in reads), reads
t = texts[0]
assert t["path"] == "/v99.0/106540352242922/messages" and t["status"] == 200, t
assert t["body"]["to"] == "16505551234" and t["body"]["context"] == {"message_id": "wamid.FRESH1"}, t
assert t["body"]["text"]["body"] == "yes!! see you at 8 \U0001f389", t
assert not any(e.get("bad_token") or e.get("shape_error") for e in log), log
PY
for _ in $(seq 1 400); do drafts "?status=sent" | grep -q "\"draft_id\":\"$id\"" && break; sleep 0.05; done
drafts "?status=sent" | grep -q "\"draft_id\":\"$id\"" || fail "not marked sent: $(drafts "")"
sent_wamid=$(drafts "?status=sent" | python3 -c 'import json,sys;print(json.load(sys.stdin)["items"][0]["sent_message_id"])')
[[ $sent_wamid == wamid.* ]] || fail "sent message id"
# the exchange is a conversation row
curl -s -H "$auth" "$base/v1/conversations" | grep -q 'see you at 8' || fail "no conversation row"

# 9. statuses of the sent message arrive out of order: read wins over a late delivered
python3 - "$sent_wamid" "$data" <<'PY'
import json, sys
w, d = sys.argv[1], sys.argv[2]
def st(s): return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
    "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
    "statuses": [{"id": w, "status": s, "timestamp": "1750263800", "recipient_id": "16505551234"}]}}]}]}
open(d + "/read.json", "w").write(json.dumps(st("read")))
open(d + "/delivered.json", "w").write(json.dumps(st("delivered")))
PY
[ "$(post "$data/read.json")" = 200 ] && [ "$(post "$data/delivered.json")" = 200 ] || fail "statuses"
for _ in $(seq 1 400); do
  s=$(python3 -c 'import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute("select status from wa_messages where wamid=?",(sys.argv[2],)).fetchone()[0])' "$data/whatstyle.db" "$sent_wamid" 2>/dev/null || true)
  [ "$s" = read ] && [ "$(python3 -c 'import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute("select count(*) from wa_inbox").fetchone()[0])' "$data/whatstyle.db")" = 0 ] && break
  sleep 0.05
done
[ "$s" = read ] || fail "status after read, delivered: $s"

# 10. off for one contact: logged, not drafted
[ "$(code -X PUT -H "$auth" -d '{"contact":"+16505551234","mode":"off"}' "$base/v1/whatsapp/links/$pnid/mode")" = 200 ] || fail "mode off"
mkmsg "$data/m2.json" wamid.FRESH2 16505551234 "still there?"
[ "$(post "$data/m2.json")" = 200 ] || fail "m2"
wait_metric ws_whatsapp_messages_received_total 5
sleep 0.3
drafts "" | grep -q wamid.FRESH2 && fail "drafted although off"

# 11. throttling: 130429 twice, retried with backoff, then sent; 131047 recorded on the draft
mkmsg "$data/m3.json" wamid.THROTTLE 15550130429 "what time is it?"
mkmsg "$data/m4.json" wamid.LATE 15550131047 "hello??"
[ "$(post "$data/m3.json")" = 200 ] && [ "$(post "$data/m4.json")" = 200 ] || fail "m3/m4"
for w in wamid.THROTTLE wamid.LATE; do
  d=$(draft_of $w); id=${d##*|}
  [ "$(code -X POST -H "$auth" "$base/v1/whatsapp/drafts/$id/approve")" = 200 ] || fail "approve $w"
done
for _ in $(seq 1 600); do [ "$(sends_to 15550130429)" = 1 ] && break; sleep 0.05; done
[ "$(sends_to 15550130429)" = 1 ] || fail "throttled reply never sent"
[ "$(metric 'ws_whatsapp_sent_total{status="retried"}')" -ge 2 ] || fail "retries not counted"
d=$(draft_of wamid.LATE)
[[ $d == failed\|*\|131047\|* ]] || fail "131047 not on the draft: $d"

# 12. auto mode, a business-scoped sender without a phone: sent when confident, else drafted
[ "$(code -X PUT -H "$auth" -d '{"mode":"auto"}' "$base/v1/whatsapp/links/$pnid/mode")" = 200 ] || fail "auto"
mkmsg "$data/m5.json" wamid.AUTO1 - "are you coming to the barbecue on saturday?" US.99887766554433221100
[ "$(post "$data/m5.json")" = 200 ] || fail "m5"
for _ in $(seq 1 1200); do
  a=$(drafts "" | python3 -c '
import json,sys
for d in json.load(sys.stdin)["items"]:
    if d["message_id"] == "wamid.AUTO1" and d["status"] in ("sent", "pending", "failed"): print(d["status"], d["reason"], d["confidence"])')
  [ -n "$a" ] && break; sleep 0.05
done
case "$a" in
  sent*) [ "$(sends_to US.99887766554433221100)" = 1 ] || fail "auto: sent but the stand-in has no reply to the user id" ;;
  "pending confidence"*"below the clone's threshold"*) ;;
  *) fail "auto mode: $a" ;;
esac
[ "$(metric 'ws_whatsapp_sent_total{status="sent"}')" -ge 2 ] || fail "sent metric"
[ "$(metric 'ws_whatsapp_sent_total{status="failed"}')" -ge 1 ] || fail "failed metric"
grep -q "barbecue\|see you at 8\|still there" "$data/log" && fail "message text in the log"

# 13. the right of access: the export holds the WhatsApp rows (never the token)
curl -s -H "$auth" "$base/v1/me/export" > "$data/export.json"
python3 - "$data/export.json" "$token" <<'PY' || fail "export: $(head -c 600 "$data/export.json")"
import json, sys
e = json.load(open(sys.argv[1], encoding="utf-8"))
assert [l["phone_number_id"] for l in e["whatsapp_links"]] == ["106540352242922"], e["whatsapp_links"]
assert any(c["contact"] == "16505551234" and c["mode"] == "off" for c in e["whatsapp_contacts"])
texts = [m["text"] for m in e["whatsapp_messages"]]
assert "yes!! see you at 8 \U0001f389" in texts and "still there?" in texts, texts
assert any(d["message_id"] == "wamid.LATE" and d["error_code"] == 131047 for d in e["whatsapp_drafts"])
assert sys.argv[2] not in open(sys.argv[1], encoding="utf-8").read()
PY
# DELETE /v1/me erases every WhatsApp row of the user and the sealed token
[ "$(code -X DELETE -H "$auth" "$base/v1/me")" = 204 ] || fail "delete me"
python3 - "$data/whatstyle.db" <<'PY' || fail "rows left after erasure"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for t in ("wa_links", "wa_contacts", "wa_drafts"):
    assert db.execute("select count(*) from " + t).fetchone()[0] == 0, t
assert db.execute("select count(*) from wa_messages where body is not null or contact_phone is not null").fetchone()[0] == 0
assert db.execute("select count(*) from conversations").fetchone()[0] == 0
PY
[ -z "$(find "$data/blobs" -path '*whatsapp*' -type f 2>/dev/null)" ] || fail "token blob left"
kill -TERM $pid; wait $pid || fail "exit status"
pid=

# 14. configuration: the secret from WS_WHATSAPP_APP_SECRET; bad settings stop the start-up
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
WS_WHATSAPP_APP_SECRET=$secret "$bin" serve --port "$port" --host 127.0.0.1 --data "$data/env" --no-training > "$data/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
[ "$(post tests/fixtures/whatsapp/image.json)" = 200 ] || fail "secret from the environment"
[ "$(code "$base/v1/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=&hub.challenge=1")" = 403 ] || fail "no verify token configured"
kill -TERM $pid; wait $pid || fail "exit status (env)"
pid=
out=$("$bin" serve --port 0 --data "$data/bad" --whatsapp-graph-url ftp://example 2>&1) && fail "bad Graph URL accepted"
[[ $out == *"Graph API URL"* ]] || fail "bad Graph URL message: $out"
out=$("$bin" serve --port 0 --data "$data/bad" --whatsapp-app-secret-file "$data/none" 2>&1) && fail "missing secret file accepted"
[[ $out == *"whatsapp-app-secret-file"* ]] || fail "missing secret file message: $out"
echo "whatsapp: ok"
