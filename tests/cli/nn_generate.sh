#!/usr/bin/env bash
# Black-box test of `whatstyle generate` on the committed tiny model + BPE tokenizer
# (tests/reference/nn/tiny_chat, made by tools/reference/make_nn_ref.py with transformers):
# prompt ids, greedy tokens, log-probabilities (within 1e-4) and text as transformers gives them;
# streaming text mode; clean errors. Usage: nn_generate.sh path/to/whatstyle
set -euo pipefail
bin=$1
fail() { echo "FAIL: $*"; exit 1; }
dir=tests/reference/nn/tiny_chat
exp=$(cat $dir/expected.json)
prompt='hey, are you at the station? 😂'

out=$("$bin" generate --model $dir --prompt "$prompt" --max-new-tokens 8 --temperature 0 --json) || fail "generate --json"
field() { # field NAME JSON -> the array's contents without spaces
  echo "$2" | tr -d ' ' | sed -n "s/.*\"$1\":\[\([^]]*\)\].*/\1/p"
}
[ "$(field prompt_tokens "$out")" = "$(field prompt_tokens "$exp")" ] || fail "prompt ids: $out"
[ "$(field tokens "$out")" = "$(field tokens "$exp")" ] || fail "tokens: $out"
paste -d' ' <(field logprobs "$out" | tr ',' '\n') <(field logprobs "$exp" | tr ',' '\n') |
  awk '{d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 || NF != 2) bad = 1; n++} END {exit bad || n != 8}' ||
  fail "logprobs differ: $out"
jtext() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["text"])' "$1"; }
want=$(jtext "$exp")
# the reference must be varied text (it once collapsed into "88888888"): at least 5 distinct tokens
[ "$(field tokens "$exp" | tr ',' '\n' | sort -u | wc -l)" -ge 5 ] || fail "reference collapsed: $exp"
[ "$(jtext "$out")" = "$want" ] || fail "text: $out, want $want"

# streaming text mode prints the same text
txt=$("$bin" generate --model $dir --prompt "$prompt" --max-new-tokens 8) || fail "generate text"
[ "$txt" = "$want" ] || fail "streamed text: $txt, want $want"

# sampling is reproducible with a seed
a=$("$bin" generate --model $dir --prompt hey --max-new-tokens 6 --temperature 0.9 --top-p 0.9 --seed 5 --json)
b=$("$bin" generate --model $dir --prompt hey --max-new-tokens 6 --temperature 0.9 --top-p 0.9 --seed 5 --json)
[ "$a" = "$b" ] || fail "seeded sampling differs"

# errors
if "$bin" generate --model /nonexistent --prompt hi 2>/dev/null; then fail "missing model accepted"; fi
err=$("$bin" generate --model $dir --prompt hi --adapter tests/reference/nn/qwen2_bias/adapter_init 2>&1 >/dev/null) &&
  fail "mismatched adapter accepted"
echo "$err" | grep -q "does not fit\|wrong shape" || fail "adapter error: $err"
if "$bin" generate --model $dir 2>/dev/null; then fail "missing prompt accepted"; fi
echo "ok"
