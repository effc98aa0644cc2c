#!/usr/bin/env bash
# Inference speed on the GGUF base against llama.cpp (llama-cpp-python, built from source in
# build/llamacpp-venv by tools/pyref-venv.sh llamacpp), same model, same thread count, same
# workload, the two alternating in one run: prompt processing (512 tokens) and greedy
# generation tokens/s, peak memory; medians over ROUNDS rounds and the ratio (ours / theirs).
# Usage: bench/gguf_bench.sh [THREADS] [ROUNDS] [GEN_TOKENS] [GGUF]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; rounds=${2:-3}; gen=${3:-64}
gguf=${4:-models/base/SmolLM2-135M-Instruct.Q4_1.gguf}
make -s all >/dev/null
[ -s "$gguf" ] || bash tools/setup-base-model.sh
py=build/llamacpp-venv/bin/python
[ -x "$py" ] || bash tools/pyref-venv.sh llamacpp
out=$(mktemp); trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  ./build/bench_gguf_bench "$threads" 3 "$gen" "$gguf" >> "$out"
  "$py" bench/llamacpp_peer.py "$threads" 3 "$gen" "$gguf" >> "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, key):
    return statistics.median(r[key] for r in rows if r["impl"] == impl)
print(f"{'':28} {'whatstyle':>10} {'llama.cpp':>10} {'ratio':>7}")
for key, label in (("prompt_tokens_per_s", "prompt 512 tokens (tok/s)"), ("gen_tokens_per_s", "generation (tok/s)"),
                   ("peak_mb", "peak memory (MB)")):
    a, b = med("whatstyle", key), med("llama.cpp", key)
    print(f"{label:28} {a:10.1f} {b:10.1f} {a / b:6.2f}x")
print(f"(medians of {len(rows) // 2} rounds, each a median of 3 runs; {rows[0]['threads']} threads)")
PY
