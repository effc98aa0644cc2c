#!/usr/bin/env bash
# Clones on a pretrained base in its chat template (the default when the base is installed):
# a tiny GGUF base made by the test (both builds) — train, manifest with the base's identity,
# replies, an adapter refused on another base, `--base-model none` for a model from scratch —
# then, in the optimised build only, the real SmolLM2 base that tools/setup-base-model.sh
# installs: it answers a factual question through its chat template on the quantized path and
# on the dequantized one, and a clone of Maya trains on it by default and replies. (Under
# ASan+UBSan at -O0 one training step of the 135M model takes minutes; the sanitizer build
# covers the same code on the tiny base here and in tests/unit/test_nn_gguf_model.c.)
set -u
bin=${1:?usage: clone_base.sh path/to/whatstyle}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
helper=$(dirname "$bin")/helper_make_tiny_gguf
cd "$(dirname "$0")/../.."
export WS_MINILM_DIR=/nonexistent
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get(sys.argv[2]))' "$@"; }
sample=samples/group_chat.txt

# ---- a tiny base
"$helper" "$tmp/tiny.gguf" 7 || bad "helper_make_tiny_gguf failed"
WS_BASE_MODEL="$tmp/tiny.gguf" "$bin" train "$sample" --as Maya -o "$tmp/tiny_maya" --budget 15 --quiet \
  2> "$tmp/tiny.err"
expect "train on the tiny base ($(tail -1 "$tmp/tiny.err"))" test $? -eq 0
expect "manifest: kind lora" test "$(json_get "$tmp/tiny_maya/manifest.json" kind)" = lora
settings() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["settings"]; print(s["contrast_weight"], s["pairs"]["model_context_turns"])' "$1"; }
expect "manifest: trained with mismatched twins, 4 turns of context" test "$(settings "$tmp/tiny_maya/manifest.json")" = "0.5 4"
expect "manifest: the base's SHA-256" test "$(json_get "$tmp/tiny_maya/manifest.json" base_id)" = \
  "$(sha256sum "$tmp/tiny.gguf" | cut -d' ' -f1)"
expect "adapter saved in PEFT format" test -s "$tmp/tiny_maya/adapter/adapter_model.safetensors"
"$bin" reply "$tmp/tiny_maya" "are we still on for tonight?" --json > "$tmp/r1.json" 2> "$tmp/r1.err"
expect "reply on the tiny base ($(cat "$tmp/r1.err"))" test $? -eq 0
expect "reply has text" test -n "$(json_get "$tmp/r1.json" reply)"
# the adapter belongs to that base: another file at the same path is refused
"$helper" "$tmp/tiny.gguf" 8
"$bin" reply "$tmp/tiny_maya" "hello" --json > /dev/null 2> "$tmp/r2.err" && bad "adapter accepted on another base"
expect "another base named in the error" grep -q "another base" "$tmp/r2.err"
# none: a small model from scratch
WS_BASE_MODEL="$tmp/tiny.gguf" "$bin" train "$sample" --as Maya -o "$tmp/scratch" --budget 8 --base-model none \
  --quiet 2> /dev/null
expect "--base-model none trains from scratch" test "$(json_get "$tmp/scratch/manifest.json" kind)" = scratch
expect "from scratch: no twins, 2 turns of context" test "$(settings "$tmp/scratch/manifest.json")" = "0 2"
# a broken base: refused before any work, naming the problem
head -c 5000 "$tmp/tiny.gguf" > "$tmp/cut.gguf"
"$bin" train "$sample" --as Maya -o "$tmp/cut" --base-model "$tmp/cut.gguf" --quiet 2> "$tmp/cut.err" &&
  bad "a truncated base accepted"
expect "truncated base: a clear message ($(cat "$tmp/cut.err"))" grep -qi "gguf\|tensor\|file" "$tmp/cut.err"
expect "truncated base: no clone written" test ! -e "$tmp/cut/manifest.json"

# ---- the real base (optimised build only)
case "$bin" in
*build-asan*) echo "clone_base: the SmolLM2 steps run in the optimised build only (see the header)" ;;
*)
  base=models/base/SmolLM2-135M-Instruct.Q4_1.gguf
  expect "the base is installed (tools/setup-base-model.sh)" test -s "$base"
  for mode in "" --f32; do
    out=$("$bin" generate --model "$base" --chat --prompt "What is the capital of France? Answer in one word." \
          --max-new-tokens 16 $mode 2>&1)
    expect "base answers on its chat template $mode ($out)" grep -q "Paris" <<< "$out"
  done
  # llama.cpp's sum order: its greedy tokens for the committed reference's first prompt
  ref=tests/reference/gguf/llamacpp_greedy.json
  refget() { python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["prompts"][0]
print(eval(sys.argv[2]))' "$ref" "$1"; }
  want=$(refget '",".join(map(str, p["llamacpp_tokens"]))')
  out=$("$bin" generate --model "$base" --chat --system "$(refget 'p["messages"][0]["content"]')" \
        --prompt "$(refget 'p["messages"][1]["content"]')" --max-new-tokens 32 --temperature 0 --llamacpp-order \
        --json 2>&1)
  got=$(python3 -c 'import json,sys; print(",".join(map(str, json.loads(sys.argv[1])["tokens"])))' "$out" 2>/dev/null)
  expect "--llamacpp-order gives llama.cpp's 32 greedy tokens ($got)" test "$got" = "$want"
  err=$("$bin" generate --model "$base" --f32 --prompt hi --llamacpp-order 2>&1)
  expect "--llamacpp-order refused on --f32 ($err)" grep -q "needs a quantized GGUF" <<< "$err"
  unset WS_BASE_MODEL
  "$bin" train "$sample" --as Maya -o "$tmp/maya" --budget 40 --quiet 2> "$tmp/maya.err"
  expect "train on the default base ($(tail -1 "$tmp/maya.err"))" test $? -eq 0
  expect "default base used" test "$(json_get "$tmp/maya/manifest.json" base_model)" = "$base"
  for m in "what did you have for dinner?" "I got the job!!"; do
    "$bin" reply "$tmp/maya" "$m" --json > "$tmp/r.json" 2> "$tmp/r.err"
    expect "reply to '$m' ($(cat "$tmp/r.err"))" test -n "$(json_get "$tmp/r.json" reply)"
  done
  ;;
esac
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
