#!/usr/bin/env bash
# Black-box tests of `whatstyle parse`: output formats, --stats, --date-order, zips and the
# errors a user can hit (missing, empty, not an export, too big), each with a clear message.
set -u
bin=${1:?usage: parse.sh path/to/whatstyle}
fixtures=${WS_FIXTURES:-tests/fixtures}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { # expect DESCRIPTION COMMAND... (must succeed)
  local d=$1; shift
  if "$@"; then ok; else bad "$d"; fi
}

fx=tests/fixtures/chat/ios_en_us.txt
# jsonl: one valid JSON object per message with the contract keys
"$bin" parse "$fx" --format jsonl > "$tmp/out.jsonl" || bad "jsonl exit"
expect "jsonl has 12 lines" test "$(wc -l < "$tmp/out.jsonl")" -eq 12
expect "jsonl is valid and keyed" python3 - "$tmp/out.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert all(set(["ts", "author", "text", "kind"]) <= set(r) for r in rows), rows[0]
assert rows[0]["author"] is None and rows[0]["kind"] == "system"
assert rows[3]["text"].startswith("Plan:\n1. 05/01/2024 is the date"), rows[3]
assert rows[2]["author"] == "~\u202fBea", rows[2]
PY
# json: an array with the same records
"$bin" parse "$fx" --format json > "$tmp/out.json" || bad "json exit"
expect "json array equals jsonl" python3 - "$tmp/out.json" "$tmp/out.jsonl" <<'PY'
import json, sys
a = json.load(open(sys.argv[1], encoding="utf-8"))
b = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert a == b
PY
# csv: RFC 4180, multi-line bodies quoted
"$bin" parse "$fx" --format csv > "$tmp/out.csv" || bad "csv exit"
expect "csv parses back" python3 - "$tmp/out.csv" "$tmp/out.jsonl" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8", newline="")))
ref = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert len(rows) == len(ref)
for r, j in zip(rows, ref):
    assert r["ts"] == j["ts"] and r["text"] == j["text"] and r["kind"] == j["kind"]
    assert r["author"] == (j["author"] or "")
PY
# --stats on the shared corpus
"$bin" parse "$fixtures/corpus/whatsapp/Pustur-whatsapp-chat-parser/short-chat.txt" --stats > "$tmp/stats.json" || bad "stats exit"
expect "stats summary" python3 - "$tmp/stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["messages"] == 5, s
assert s["participants"] == ["Sample User", "TestBot", "+410123456789"], s
assert s["first"] == "2017-03-06T00:45:00" and s["last"] == "2017-05-08T01:48:00", s
assert s["date_order"] == "dmy" and s["kinds"] == {"text": 3, "system": 2, "media": 0, "deleted": 0}, s
PY
# --date-order forces the reading
"$bin" parse "$fixtures/corpus/whatsapp/Pustur-whatsapp-chat-parser/short-chat.txt" --date-order mdy --stats > "$tmp/mdy.json"
expect "forced mdy" grep -q '"first":"2017-06-03T00:45:00".*"date_order":"mdy"' "$tmp/mdy.json"
# zip export
cp tests/fixtures/chat/android_en_gb.txt "$tmp/_chat.txt"
(cd "$tmp" && zip -q chat.zip _chat.txt)
expect "zip parses" bash -c "'$bin' parse '$tmp/chat.zip' --stats | grep -q '\"messages\":12'"
# errors: message and non-zero exit
check_error() { # check_error DESCRIPTION EXPECTED_TEXT COMMAND...
  local d=$1 want=$2; shift 2
  if "$@" > "$tmp/o" 2> "$tmp/e"; then bad "$d: exit 0"; return; fi
  if grep -q "$want" "$tmp/e"; then ok; else bad "$d: stderr lacks '$want': $(cat "$tmp/e")"; fi
}
check_error "missing file" "cannot open" "$bin" parse "$tmp/nope.txt"
: > "$tmp/empty.txt"
check_error "empty file" "is empty" "$bin" parse "$tmp/empty.txt"
printf 'just some notes\nnothing else\n' > "$tmp/notes.txt"
check_error "not an export" "no WhatsApp message headers found" "$bin" parse "$tmp/notes.txt"
check_error "size cap" "above the size cap" "$bin" parse "$fx" --max-size 100
printf 'PK\003\004garbage' > "$tmp/broken.zip"
check_error "broken zip" "zip" "$bin" parse "$tmp/broken.zip"
check_error "bad option" "unknown option" "$bin" parse "$fx" --bogus
# invalid UTF-8 is replaced, counted and reported, not fatal
printf '13/01/2024, 10:00 - A: caf\xc3 \xff\n' > "$tmp/bad-utf8.txt"
"$bin" parse "$tmp/bad-utf8.txt" --stats > "$tmp/o" 2> "$tmp/e" || bad "invalid utf-8 exit"
expect "invalid utf-8 counted" grep -q '"invalid_utf8":2' "$tmp/o"
expect "invalid utf-8 reported" grep -q "invalid UTF-8" "$tmp/e"

# --stats is what the messages imply (count, participants in order, first/last, kinds, invalid
# UTF-8): on every fixture, and on a generated export above the 8 MB from which --stats splits
# the file over threads, with invalid UTF-8, CRLF and lone CR sprinkled through it
stats_vs_messages() { # FILE
  "$bin" parse "$1" --stats > "$tmp/s.json" 2> "$tmp/s.err" || { bad "stats exit: $1"; return; }
  "$bin" parse "$1" --format jsonl > "$tmp/m.jsonl" 2> "$tmp/m.err" || { bad "jsonl exit: $1"; return; }
  expect "stats = messages: $1" python3 - "$tmp/s.json" "$tmp/m.jsonl" "$tmp/s.err" "$tmp/m.err" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1], encoding="utf-8"))
rows = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert s["messages"] == len(rows), (s["messages"], len(rows))
people = []
for r in rows:
    if r["author"] is not None and r["author"] not in people:
        people.append(r["author"])
assert s["participants"] == people, (s["participants"], people)
ts = sorted(r["ts"] for r in rows)
assert s["first"] == (ts[0] if ts else None) and s["last"] == (ts[-1] if ts else None), s
kinds = {k: sum(r["kind"] == k for r in rows) for k in ("text", "system", "media", "deleted")}
assert s["kinds"] == kinds, (s["kinds"], kinds)
def warned(path):
    m = re.search(r"(\d+) invalid UTF-8", open(path, encoding="utf-8").read())
    return int(m.group(1)) if m else 0
assert s["invalid_utf8"] == warned(sys.argv[3]) == warned(sys.argv[4]), s
PY
}
for f in tests/fixtures/chat/*.txt tests/fixtures/chat/lang/*.txt; do stats_vs_messages "$f"; done
# every language of the phrase table is in a fixture; an edited marker sets "edited"
expect "a fixture per language and platform" test "$(ls tests/fixtures/chat/lang/*.txt | wc -l)" -ge 100
"$bin" parse tests/fixtures/chat/lang/de_android.txt --format jsonl > "$tmp/de.jsonl" || bad "de jsonl exit"
expect "edited marker reported" grep -q '"text":"fixed typo <Diese Nachricht wurde bearbeitet.>","kind":"text".*"edited":true' "$tmp/de.jsonl"
# a placeholder the table lacks, learned from the export itself, is media in --stats too
"$bin" parse tests/fixtures/chat/trap_unknown_language_media.txt --stats > "$tmp/u.json" || bad "unknown placeholder exit"
expect "learned placeholder counted as media" grep -q '"media":7' "$tmp/u.json"
gen=$(dirname "$bin")/bench_gen_export
if [ -x "$gen" ]; then
  "$gen" 130000 "$tmp/gen.txt" > /dev/null
  python3 - "$tmp/gen.txt" "$tmp/big.txt" <<'PY'
import random, sys
random.seed(11)
b = bytearray(open(sys.argv[1], "rb").read())
bits = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\r", b"\r\n",
        b"\x80", b"\xe2\x80\x8e"]
for at in sorted(random.sample(range(len(b)), 3000), reverse=True):
    b[at:at] = random.choice(bits)
open(sys.argv[2], "wb").write(bytes(b))
PY
  expect "generated export above 8 MB" test "$(stat -c %s "$tmp/big.txt")" -gt 8500000
  stats_vs_messages "$tmp/big.txt"
  # a first half with no header at all (notes pasted before the chat): the part read without
  # headers is not an error, and the notes are lines_skipped
  python3 - "$tmp/gen.txt" "$tmp/notes-first.txt" <<'PY'
import sys
chat = open(sys.argv[1], "rb").read()[:3000000]
open(sys.argv[2], "wb").write(b"".join(b"just some notes, line %d\n" % i for i in range(250000)) + chat)
PY
  stats_vs_messages "$tmp/notes-first.txt"
  expect "notes are skipped lines" grep -q '"lines_skipped":250000' "$tmp/s.json"
  python3 -c 'import sys; open(sys.argv[1], "wb").write(b"".join(b"only notes, line %d\n" % i for i in range(400000)))' \
    "$tmp/notes-only.txt"
  expect "notes-only above 8 MB" test "$(stat -c %s "$tmp/notes-only.txt")" -gt 8500000
  check_error "no headers, order forced, read in parts" "no WhatsApp message headers found" \
    "$bin" parse "$tmp/notes-only.txt" --stats --date-order dmy
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
