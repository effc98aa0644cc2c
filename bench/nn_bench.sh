#!/usr/bin/env bash
# The engine against PyTorch on the CPU, same configs, same thread count, one measurement per
# process (so peak memory is that measurement's): training step (full and LoRA r=8 on q,k,v,o;
# batch 4 x 256, AdamW, clipping), prompt processing (512 tokens), generation with a KV cache
# (16 + 64 tokens, greedy; transformers' generate), and sgemm GFLOP/s of this machine as the
# limit. The machine may be shared, so C and PyTorch processes alternate (ROUNDS rounds of one
# process each, 2 timed repetitions per process) and the medians over the rounds are compared.
# Usage: bench/nn_bench.sh [THREADS] [ROUNDS] [CONFIGS] [MODES]
# (CONFIGS default "small smol", MODES default "train-full train-lora prefill generate"; needs
# build/bench_nn_bench and build/pyref-venv from tools/pyref-venv.sh, made here if missing, or $WS_PYTHON). Training rows also give the CPU
# seconds per step of each side (user + system of the process, all threads): on a shared
# machine the steadier figure of how much work a step is.
set -uo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; rounds=${2:-3}; configs=${3:-small smol}; modes=${4:-train-full train-lora prefill generate}; reps=2
py=${WS_PYTHON:-build/pyref-venv/bin/python}
[ -n "${WS_PYTHON:-}" ] || [ -x "$py" ] || bash tools/pyref-venv.sh pyref >/dev/null
bin=build/bench_nn_bench
[ -x "$bin" ] || { echo "build first: make"; exit 1; }
have_torch=1; "$py" -c "import torch, transformers, peft" 2>/dev/null || have_torch=0
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
get() { # get KEY JSON-LINES -> median of the KEY values over the lines
  echo "$2" | sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | sort -g |
    awk '{v[NR] = $1} END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
echo "nn engine vs PyTorch $( [ $have_torch = 1 ] && "$py" -c 'import torch; print(torch.__version__)'), threads=$threads, rounds=$rounds, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
c=$($bin sgemm smol "$threads" "$reps"); sg=$(get gflops "$c")
t=""; [ $have_torch = 1 ] && t=$("$py" bench/nn_torch.py sgemm smol "$threads" "$reps" 2>/dev/null | tail -1)
printf "%-22s %-6s %14s %14s %8s %10s %10s\n" "measure" "config" "c" "torch" "ratio" "c MB" "torch MB"
printf "%-22s %-6s %14s %14s %8s\n" "sgemm GFLOP/s" "-" "$sg" "$(get gflops "$t")" ""
for cfg in $configs; do
  for mode in $modes; do
    c=""; t=""
    for r in $(seq "$rounds"); do
      c="$c$($bin $mode "$cfg" "$threads" "$reps")"$'\n'
      [ $have_torch = 1 ] && t="$t$("$py" bench/nn_torch.py $mode "$cfg" "$threads" "$reps" 2>/dev/null | tail -1)"$'\n'
    done
    if [ "${mode#train}" != "$mode" ]; then
      cv=$(get step_s "$c"); tv=$(get step_s "$t"); unit="step s"
      ratio=$(awk -v a="$cv" -v b="$tv" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", b / a }')
      extra=$(awk -v g="$(get gflops "$c")" -v s="$(get sgemm_gflops "$c")" -v cc="$(get cpu_s "$c")" \
        -v tc="$(get cpu_s "$t")" 'BEGIN { printf "(c %.0f GFLOP/s = %.0f%% of sgemm %.0f measured in the same process; CPU s/step c %.3f torch %s)", g, 100 * g / s, s, cc, tc == "" ? "-" : tc }')
    else
      cv=$(get tokens_per_s "$c"); tv=$(get tokens_per_s "$t"); unit="tok/s"
      ratio=$(awk -v a="$cv" -v b="$tv" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b }')
      extra=""
    fi
    printf "%-22s %-6s %14s %14s %8s %10s %10s %s\n" "$mode ($unit)" "$cfg" "$cv" "$tv" "$ratio" \
      "$(get peak_mb "$c")" "$(get peak_mb "$t")" "$extra"
  done
done
echo "values: medians over $rounds alternating rounds; ratio: how many times faster the C engine is (torch time / c time, or c tok/s / torch tok/s)"
