#!/usr/bin/env bash
# Black-box tests of the main job on samples/group_chat.txt: `whatstyle demo` (non-interactive),
# `train` for every person with a short budget, `reply --json` to messages the chat never holds
# judged by style features (not string equality), `chat` over a pipe, a LoRA clone on a base
# model, and the failures a user can hit (empty export, unknown person, too few messages,
# corrupted model directory, missing base model).
set -u
bin=${1:?usage: clone.sh path/to/whatstyle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent   # the hashed n-gram embedder: fast and always there
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }
budget=${WS_CLONE_TEST_BUDGET:-12}
sample=samples/group_chat.txt

# demo without a terminal: trains Maya, prints profile + fidelity, runs scripted messages
"$bin" demo -o "$tmp/Maya" --budget "$budget" --quiet < /dev/null > "$tmp/demo.out" 2> "$tmp/demo.err"
expect "demo exits 0 ($(tail -2 "$tmp/demo.err"))" test $? -eq 0
expect "demo shows the profile" grep -q "== style profile ==" "$tmp/demo.out"
expect "demo shows the fidelity report" grep -q "Fidelity of the clone of Maya" "$tmp/demo.out"
expect "demo chats (scripted)" test "$(grep -c '^Maya: ' "$tmp/demo.out")" -ge 3

for who in Henrik Tomás Priya; do
  "$bin" train "$sample" --as "$who" -o "$tmp/$who" --budget "$budget" --quiet 2> "$tmp/train_$who.err"
  expect "train $who ($(tail -1 "$tmp/train_$who.err"))" test $? -eq 0
done
for who in Maya Henrik Tomás Priya; do
  for f in manifest.json model/model.safetensors model/tokenizer.json model/config.json profile.json \
           profile.txt index.bin replies.json fidelity.json fidelity.txt; do
    [ -s "$tmp/$who/$f" ] || bad "$who: $f missing"
  done
done

# replies to messages the chat never holds, judged by style features
messages=("are you free on saturday for a barbecue" "I finally finished my thesis"
          "did anyone see the news about the storm" "my cat knocked over a plant lol"
          "should we try the new ramen place" "happy new year everyone")
for who in Maya Henrik Tomás Priya; do
  : > "$tmp/replies_$who.jsonl"
  for m in "${messages[@]}"; do
    "$bin" reply "$tmp/$who" "$m" --json >> "$tmp/replies_$who.jsonl" 2>> "$tmp/reply.err" || bad "reply $who"
  done
done
expect "reply JSON contract, no echo, confidence in [0,1]" python3 - "$tmp" "${messages[@]}" <<'PY'
import json, sys
tmp, msgs = sys.argv[1], sys.argv[2:]
norm = lambda s: "".join(ch.lower() for ch in s if ch.isalnum())
for who in ["Maya", "Henrik", "Tomás", "Priya"]:
    rows = [json.loads(l) for l in open(f"{tmp}/replies_{who}.jsonl", encoding="utf-8")]
    assert len(rows) == len(msgs), who
    for r, m in zip(rows, msgs):
        assert set(r) == {"reply", "confidence", "fallback", "model_version", "processing_ms"}, r
        assert isinstance(r["reply"], str) and r["reply"].strip(), r
        assert 0 <= r["confidence"] <= 1 and isinstance(r["fallback"], bool), r
        assert norm(r["reply"]) != norm(m), (who, r, m)
        assert r["processing_ms"] > 0 and r["model_version"], r
PY
expect "each clone writes in its person's style" python3 - "$tmp" <<'PY'
import json, re, sys
tmp = sys.argv[1]
def emoji(s): return any(ord(c) >= 0x1F300 or 0x2600 <= ord(c) <= 0x27BF for c in s)
def share(rows, f): return sum(1 for r in rows if f(r)) / len(rows)
R = {w: [json.loads(l)["reply"] for l in open(f"{tmp}/replies_{w}.jsonl", encoding="utf-8")]
     for w in ["Maya", "Henrik", "Tomás", "Priya"]}
checks = {
  "Maya lower case": share(R["Maya"], lambda s: s == s.lower()) >= 0.8,
  "Maya emoji or slang": share(R["Maya"], lambda s: emoji(s) or re.search(r"\b(lol|omg|u|ur|rn|ngl|im)\b", s)) >= 0.6,
  "Henrik capitalised": share(R["Henrik"], lambda s: s[:1].isupper()) >= 0.8,
  "Henrik full stops": share(R["Henrik"], lambda s: s.rstrip().endswith((".", "?"))) >= 0.8,
  "Henrik no emoji": share(R["Henrik"], lambda s: not emoji(s)) == 1.0,
  "Tomás !! or jaja or Spanish": share(R["Tomás"], lambda s: "!!" in s or "jaja" in s.lower()
      or re.search(r"\b(amigo|vamos|qué|sí|claro|hermano|dale|buenísimo|loco|manches|ay)\b", s.lower())) >= 0.7,
  "Priya ?? or haha or CAPS": share(R["Priya"], lambda s: "?" in s or "haha" in s.lower()
      or re.search(r"\b[A-Z]{2,}\b", s)) >= 0.7,
  "Priya not Maya": share(R["Priya"], lambda s: s == s.lower() and emoji(s)) <= 0.3,
}
bad = [k for k, v in checks.items() if not v]
if bad:
    print("style checks failed:", bad, json.dumps(R, ensure_ascii=False, indent=1))
    sys.exit(1)
PY
expect "fidelity report: verdict from its criteria, baselines beaten on style" python3 - "$tmp" <<'PY'
import json, sys
for who in ["Maya", "Henrik", "Tomás", "Priya"]:
    f = json.load(open(f"{sys.argv[1]}/{who}/fidelity.json", encoding="utf-8"))
    s, v = f["sets"], f["verdict"]
    measured = [c for c in v["criteria"] if c["measured"]]
    assert f["beats_baselines"] == v["pass"] == all(c["pass"] for c in measured), (who, v)
    assert {c["name"] for c in measured} >= {"style_distance", "verifier", "relevance_embedding",
        "relevance_ranking", "distinct_replies", "copy_rate", "echo_rate", "loss_lift"}, (who, v)
    assert f["loss"]["lift"] > 0, (who, f["loss"])
    assert s["clone"]["attribution"] > s["other_participant"]["attribution"], who
    assert s["clone"]["style_distance"] < s["other_participant"]["style_distance"], who
    assert "held-out" in f["baselines"]["other_participant"], f["baselines"]
    r = f["relevance"]["ranking"]
    assert r["examples"] > 0 and 0 <= r["model"]["r10_at_1_mean_logprob"] <= 1 and r["base"] is None, r
    assert 0 <= s["clone"]["copy_rate"] <= 1 and 0 < s["clone"]["distinct"] <= 1, s["clone"]
    m = json.load(open(f"{sys.argv[1]}/{who}/manifest.json", encoding="utf-8"))
    assert m["format"] == "whatstyle-clone-1" and m["persona"] == who and 0 <= m["threshold"] <= 1
    assert m["counts"]["heldout_examples"] > 0 and len(m["files"]) >= 9
PY

# context file, both forms
printf 'Priya: who is coming tonight??\nHenrik: I shall be there.\n' > "$tmp/ctx.txt"
"$bin" reply "$tmp/Maya" "and you?" --context-file "$tmp/ctx.txt" --json > "$tmp/ctx.out" || bad "reply with context lines"
printf '[{"author": "Priya", "text": "who is coming??"}, {"text": "me!"}]' > "$tmp/ctx.json"
"$bin" reply "$tmp/Maya" "and you?" --context-file "$tmp/ctx.json" > "$tmp/ctx2.out" || bad "reply with JSON context"
expect "context replies printed" test -s "$tmp/ctx.out" -a -s "$tmp/ctx2.out"

# chat over a pipe: one reply per message, commands understood
printf 'hey how are you\n\n/reset\nwhat are you up to this weekend\n/quit\nnot read\n' | "$bin" chat "$tmp/Tomás" > "$tmp/chat.out"
expect "chat exits 0" test $? -eq 0
expect "chat answers each message" test "$(grep -c '^Tomás: ' "$tmp/chat.out")" -eq 2

# LoRA adapter on a base model (the Maya model directory serves as a small base)
"$bin" train "$sample" --as Priya -o "$tmp/PriyaLoRA" --base-model "$tmp/Maya/model" --budget "$budget" --quiet 2> "$tmp/lora.err"
expect "train with --base-model ($(tail -1 "$tmp/lora.err"))" test $? -eq 0
expect "adapter saved" test -s "$tmp/PriyaLoRA/adapter/adapter_model.safetensors"
"$bin" reply "$tmp/PriyaLoRA" "did you book the table" --json > "$tmp/lora.out" || bad "reply with LoRA clone"
expect "LoRA clone manifest names its base" grep -q '"kind": "lora"' "$tmp/PriyaLoRA/manifest.json"
expect "LoRA clone's report ranks with the base too" python3 -c '
import json, sys
f = json.load(open(sys.argv[1], encoding="utf-8"))
assert f["loss"]["base"] == "base model without the adapter", f["loss"]
b = f["relevance"]["ranking"]["base"]
assert 0 <= b["r10_at_1_mean_logprob"] <= 1 and 0 <= b["r10_at_1_total_logprob"] <= 1, b
' "$tmp/PriyaLoRA/fidelity.json"

# failures, each with a clear message and a non-zero exit
: > "$tmp/empty.txt"
"$bin" train "$tmp/empty.txt" --as Maya -o "$tmp/x" 2> "$tmp/e1" && bad "empty export accepted"
expect "empty export message" grep -q "holds no messages" "$tmp/e1"
"$bin" train "$sample" --as Nobody -o "$tmp/x" --quiet 2> "$tmp/e2" && bad "unknown person accepted"
expect "unknown person lists participants" grep -q "Henrik" "$tmp/e2"
head -40 "$sample" > "$tmp/few.txt"
"$bin" train "$tmp/few.txt" --as Maya -o "$tmp/x" --quiet 2> "$tmp/e3" && bad "too few messages accepted"
expect "too few messages names the minimum" grep -q "at least 30" "$tmp/e3"
"$bin" train "$sample" --as Maya -o "$tmp/x" --base-model "$tmp/no-such-model" --quiet 2> "$tmp/e4" && bad "missing base accepted"
expect "missing base model message" grep -q "base model .* not found" "$tmp/e4"
cp -r "$tmp/Henrik" "$tmp/broken"; printf 'x' >> "$tmp/broken/index.bin"
"$bin" reply "$tmp/broken" "hello" 2> "$tmp/e5" && bad "corrupted model accepted"
expect "corrupted model message" grep -q "corrupted model directory" "$tmp/e5"
rm "$tmp/broken/manifest.json"
"$bin" reply "$tmp/broken" "hello" 2> "$tmp/e6" && bad "directory without manifest accepted"
expect "not a model directory message" grep -q "not a trained clone" "$tmp/e6"
mv "$tmp/Maya/model/model.safetensors" "$tmp/Maya/model/gone"
"$bin" reply "$tmp/PriyaLoRA" "hello" 2> "$tmp/e7" && bad "LoRA clone without its base weights accepted"
expect "base weights gone message" test -s "$tmp/e7"
"$bin" reply "$tmp/Henrik" "" 2> "$tmp/e8" && bad "empty message accepted"
expect "empty message message" grep -q "empty" "$tmp/e8"

echo "clone.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
