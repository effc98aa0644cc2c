#!/usr/bin/env bash
# Drives /mcp with the MCP Inspector CLI (@modelcontextprotocol/inspector 1.0.3,
# --cli --transport http): tools/list, tools/call of every tool, and a bad key.
# Usage: inspector_cli.sh INFO_JSON CHAT_TXT (run from tests/mcp after npm ci).
set -euo pipefail
info=$1; chat=$2
port=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).port)' "$info")
key=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).key2)' "$info")
url="http://127.0.0.1:$port/mcp"
insp() { ./node_modules/.bin/node ./node_modules/.bin/mcp-inspector --cli "$url" --transport http --header "Authorization: Bearer $key" "$@" 2>/dev/null; }
check() { # check NAME NEEDLE OUTPUT
  if [[ $3 == *"$2"* ]]; then echo "ok   $1"; else echo "FAIL $1: $3"; exit 1; fi
}
out=$(insp --method tools/list)
for t in reply_as train_style training_status style_profile list_conversations; do
  check "tools/list has $t" "\"name\": \"$t\"" "$out"
done
check "tools/list has output schemas" '"outputSchema"' "$out"
out=$(insp --method tools/call --tool-name train_style --tool-arg persona=Bob "export_text=$(cat "$chat")")
check "train_style" '"status": "queued"' "$out"
job=$(echo "$out" | ./node_modules/.bin/node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).structuredContent.job_id))')
for i in $(seq 1 100); do
  out=$(insp --method tools/call --tool-name training_status --tool-arg "job_id=$job")
  [[ $out == *'"status": "completed"'* ]] && break
  sleep 0.05
done
check "training_status completed" '"status": "completed"' "$out"
out=$(insp --method tools/call --tool-name reply_as --tool-arg "message=see you at 11?")
check "reply_as" '"reply":' "$out"
check "reply_as not an error" '"isError": false' "$out"
out=$(insp --method tools/call --tool-name style_profile)
check "style_profile" '"profile":' "$out"
out=$(insp --method tools/call --tool-name list_conversations --tool-arg limit=5)
check "list_conversations" '"items":' "$out"
set +e
out=$(./node_modules/.bin/node ./node_modules/.bin/mcp-inspector --cli "$url" --transport http --header "Authorization: Bearer nope" --method tools/list 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && echo "ok   bad key refused" || { echo "FAIL bad key accepted: $out"; exit 1; }
