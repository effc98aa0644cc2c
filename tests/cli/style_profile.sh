#!/usr/bin/env bash
# Black-box test of `whatstyle profile`: a readable summary and JSON for one person of the
# sample group chat, masking rules from a file, and clean errors for an unknown person or file.
# Usage: style_profile.sh path/to/whatstyle
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$bin" profile samples/group_chat.txt --as Maya) || fail "profile Maya"
echo "$out" | grep -q "^Chat: 4705 messages, 4 participants" || fail "no chat line: $out"
echo "$out" | grep -q "all lower-case 9[0-9]%" || fail "Maya is not lower-case: $out"
echo "$out" | grep -q 'Signature phrases: .*"omg"' || fail "no signature phrases: $out"

json=$("$bin" profile samples/group_chat.txt --as Henrik --json --set heldout) || fail "profile --json"
echo "$json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = d["profile"]
assert d["pairs"]["heldout"] > 0 and p["messages"] == d["pairs"]["heldout"], d["pairs"]
assert p["punctuation"]["ends_with_period"] > 0.9, p["punctuation"]
assert p["emoji"]["per_message"] == 0, p["emoji"]
assert len(p["active_hours"]) == 24
' || fail "JSON profile is wrong: $json"

# masking rules from a file apply to the chat text
cat > "$tmp/chat.txt" <<'CHAT'
01/02/2024, 10:00 - Bob: call me on +44 7700 900123 or bob@example.com
01/02/2024, 10:01 - Ann: ok will do, see https://example.org/x
CHAT
printf 'tel phone [TEL]\n' > "$tmp/rules.txt"
out=$("$bin" profile "$tmp/chat.txt" --as Ann --mask-rules "$tmp/rules.txt") || fail "profile with rules"
echo "$out" | grep -q "1 personal-data items masked" || fail "rules file not applied: $out"
out=$("$bin" profile "$tmp/chat.txt" --as Ann --rules "$tmp/rules.txt") || fail "profile with --rules (old spelling)"
echo "$out" | grep -q "1 personal-data items masked" || fail "--rules alias not applied: $out"
out=$("$bin" profile "$tmp/chat.txt" --as Ann) || fail "profile with default rules"
echo "$out" | grep -q "3 personal-data items masked" || fail "default rules not applied: $out"

set +e
err=$("$bin" profile samples/group_chat.txt --as Nobody 2>&1); rc=$?
[ $rc -eq 1 ] || fail "unknown person exit $rc"
echo "$err" | grep -q '"Henrik", "Maya"' || fail "participants not listed: $err"
"$bin" profile /nonexistent.txt --as X >/dev/null 2>&1; [ $? -eq 1 ] || fail "missing file"
"$bin" profile samples/group_chat.txt >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing --as"
echo "style_profile: ok"
