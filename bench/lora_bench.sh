#!/usr/bin/env bash
# LoRA training on the GGUF base against PyTorch + PEFT on the same model dequantized to f32
# (bench/peft_peer.py, in build/pyref-venv from tools/pyref-venv.sh): same shapes, rank, targets,
# thread count and loss over every position, the two alternating in one run; medians over ROUNDS
# rounds of tokens/s, CPU seconds per step and peak memory, and the ratio (ours / theirs).
# Usage: bench/lora_bench.sh [THREADS] [BATCH] [SEQ] [ROUNDS] [GGUF]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; batch=${2:-4}; seq=${3:-128}; rounds=${4:-3}
gguf=${5:-models/base/SmolLM2-135M-Instruct.Q4_1.gguf}
make -s all >/dev/null
[ -s "$gguf" ] || bash tools/setup-base-model.sh
py=build/pyref-venv/bin/python
[ -x "$py" ] || bash tools/pyref-venv.sh
out=$(mktemp); trap 'rm -f "$out"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$rounds"); do   # each row is printed as it comes, then the medians
  ./build/bench_lora_gguf_bench "$threads" "$batch" "$seq" 3 "$gguf" | tee -a "$out"
  "$py" -W ignore::FutureWarning bench/peft_peer.py "$threads" "$batch" "$seq" 3 "$gguf" | tee -a "$out"
done
echo "load average (1, 5, 15 min) at start: $load0, at end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, key):
    return statistics.median(r[key] for r in rows if r["impl"] == impl)
print(f"{'':26} {'whatstyle':>10} {'torch+peft':>11} {'ratio':>7}")
for key, label in (("tokens_per_s", "LoRA step (tokens/s)"), ("cpu_s", "CPU s per step"), ("peak_mb", "peak memory (MB)")):
    a, b = med("whatstyle", key), med("torch+peft", key)
    print(f"{label:26} {a:10.1f} {b:11.1f} {a / b:6.2f}x")
r = rows[0]
print(f"(batch {r['batch']} x {r['seq']}, {r['threads']} threads, medians of {len(rows) // 2} rounds of 3 steps)")
PY
