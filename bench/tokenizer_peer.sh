#!/usr/bin/env bash
# Peer benchmark for the tokenizer: the same 4 MB of chat text encoded by build/bench_tokenizer
# (C) and by Hugging Face `tokenizers` (Rust, via Python), no special tokens, single thread:
#   one-call  the whole text in one encode call (C: 7 runs, peer: 5 runs, medians)
#   per-line  each line (message) encoded on its own (peer: encode_batch with one thread)
# for the committed qwen2/llama3 reference tokenizers and a 16k-vocab Qwen2-style tokenizer
# trained on the text here. Prints MB/s, the ratio C / peer and whether token counts agree.
# Needs a Python with `tokenizers` (WS_REF_PYTHON, default build/pyref-venv/bin/python,
# made by tools/pyref-venv.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${WS_REF_PYTHON:-build/pyref-venv/bin/python}
[ -n "${WS_REF_PYTHON:-}" ] || [ -x "$PY" ] || bash tools/pyref-venv.sh pyref >/dev/null
[ -x build/bench_tokenizer ] || make
if ! "$PY" -c "import tokenizers" 2>/dev/null; then
  echo "tokenizer peer: no Python with tokenizers at $PY; skipped"; exit 0
fi
export HF_HUB_OFFLINE=1 RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
build/bench_tokenizer --write-text "$tmp/chat.txt"
"$PY" - "$tmp" <<'PYEOF'
import sys
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
re = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
tok = Tokenizer(models.BPE())
tok.normalizer = normalizers.NFC()
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(re), behavior="isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
text = open(sys.argv[1] + "/chat.txt", encoding="utf-8").read()
words = open("tests/reference/tokenizer/cases.jsonl", encoding="utf-8").read()
tok.train_from_iterator([text[i:i + 4096] for i in range(0, len(text), 4096)] + [words],
                        trainers.BpeTrainer(vocab_size=16000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                            show_progress=False))
tok.save(sys.argv[1] + "/big16k.json")
PYEOF
for tj in tests/reference/tokenizer/qwen2.json tests/reference/tokenizer/llama3.json "$tmp/big16k.json"; do
  c_out=$(build/bench_tokenizer "$tj" "$tmp/chat.txt")
  py_out=$("$PY" - "$tj" "$tmp/chat.txt" <<'PYEOF'
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
text = open(sys.argv[2], encoding="utf-8").read()
lines = text.splitlines(keepends=True)
nbytes = len(text.encode())
for mode in ("one-call", "per-line"):
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        if mode == "one-call":
            n = len(tok.encode(text, add_special_tokens=False).ids)
        else:
            n = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"{mode} {nbytes / 1e6 / times[2]:.2f} {n}")
PYEOF
)
  for mode in one-call per-line; do
    c_mbs=$(echo "$c_out" | sed -n "s/^encode $mode .* \([0-9.]*\) MB\/s.*/\1/p")
    c_tok=$(echo "$c_out" | sed -n "s/^encode $mode .*-> \([0-9]*\) tokens.*/\1/p")
    read -r _ py_mbs py_tok < <(echo "$py_out" | grep "^$mode ")
    same=$([ "$c_tok" = "$py_tok" ] && echo "same $c_tok tokens" || echo "TOKEN COUNTS DIFFER: $c_tok vs $py_tok")
    ratio=$(awk -v a="$c_mbs" -v b="$py_mbs" 'BEGIN { printf "%.1f", a / b }')
    echo "tokenizer $(basename "$tj") $mode: C ${c_mbs} MB/s, tokenizers ${py_mbs} MB/s, C/peer ${ratio}x ($same)"
  done
done
