#!/usr/bin/env bash
# The web dashboard end to end: type check and lint of web/, then Playwright in Debian's
# Chromium against a real `whatstyle serve --allow-signup` (embedded defaults, no base
# model) with the sample chat; another user (bob) with a key and a training job exists so
# the test can check that the page cannot reach them. WhatsApp is configured (webhook secret,
# the Graph API stand-in tests/helpers/graph_standin.py on loopback) so the WhatsApp page can
# link a number, see drafts of signed webhook messages, and really send them.
# Usage: web_dashboard.sh path/to/whatstyle   (screenshots: WS_WEB_SHOTS=DIR, default build/web-shots)
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAIL: $*" >&2; [ -f "${data:-/nonexistent}/log" ] && tail -20 "$data/log" >&2; exit 1; }
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium missing: run tools/install-deps.sh"
[ -d "$root/web/node_modules/@playwright/test" ] || fail "web/node_modules missing: run tools/install-deps.sh"
[ -f "$root/web/dist/index.html" ] || fail "web/dist missing: run make with Node installed"

data=$(mktemp -d)
pid="" gpid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$gpid" ]; then kill "$gpid" 2>/dev/null; wait "$gpid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

cd "$root/web"
export PATH="$root/web/node_modules/.bin:$PATH"
tsc --noEmit || fail "tsc --noEmit"
eslint src tests || fail "eslint"

# the Graph API stand-in that receives what the WhatsApp page sends
wa_secret=web-test-app-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$wa_secret" > "$data/wa.secret"
wa_pnid=106540352242922
wa_token=EAAGwebtest$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
python3 "$root/tests/helpers/graph_standin.py" "$data/gport" "$data/graph.log" v99.0 "$wa_pnid=$wa_token" &
gpid=$!
for _ in $(seq 1 400); do [ -s "$data/gport" ] && break; sleep 0.05; done
[ -s "$data/gport" ] || fail "the Graph API stand-in did not start"

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user alice 2>/dev/null)
bob=$("$bin" keys create --data "$data" --user bob 2>/dev/null)
WS_BASE_MODEL=none "$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --threads 2 --allow-signup --max-export-mb 1 \
  --whatsapp-app-secret-file "$data/wa.secret" --whatsapp-graph-url "http://127.0.0.1:$(cat "$data/gport")/" \
  --whatsapp-graph-version v99.0 --whatsapp-recipient-gap-ms 300 > "$data/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 200); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "$base/healthz" >/dev/null || fail "server did not come up"
# bob's training job (1 s budget; it trains before alice's)
job=$(curl -sf -H "Authorization: Bearer $bob" -H 'Content-Type: text/plain' --data-binary @"$root/samples/group_chat.txt" \
  "$base/v1/exports?persona=Henrik&budget=1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["job_id"])') \
  || fail "bob's upload"

WS_WEB_BASE="$base" WS_KEY="$key" WS_OTHER_JOB="$job" WS_OTHER_KEY_ID="${bob:0:16}" \
WS_SAMPLE="$root/samples/group_chat.txt" WS_SHOTS="${WS_WEB_SHOTS:-$root/build/web-shots}" \
WS_WEB_OUT="$data/playwright" WS_WA_SECRET="$wa_secret" WS_WA_PNID="$wa_pnid" WS_WA_TOKEN="$wa_token" \
WS_WA_GRAPH_LOG="$data/graph.log" \
  playwright test || fail "playwright"
# a clean shutdown, and nothing from the sanitizers (ASan build) in the server's log
kill -TERM "$pid"; wait "$pid" || fail "server exit status $?"
pid=""
if grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$data/log"; then fail "sanitizer report"; fi
# WhatsApp message text and the access token never reach the log
if grep -E "barbecue tonight|see you at 8|lend me your bike|$wa_token" "$data/log"; then fail "WhatsApp text or token in the log"; fi
echo "web dashboard: ok"
