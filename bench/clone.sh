#!/usr/bin/env bash
# Benchmarks of the style clone on samples/group_chat.txt: retrieval at 50k contexts (exact vs
# HNSW latency and recall), then training time per 1k examples, reply latency p50/p95/p99 and
# peak memory of the default model trained from scratch, and (BASE=smollm2-135m or BASE=DIR)
# of a LoRA adapter on a base model. Env: BUDGET (training seconds, default 60), N (contexts).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all >/dev/null
./build/bench_clone_retrieval "${N:-50000}"
if [ -n "${BASE:-}" ]; then
  BENCH_BASE=$BASE ./build/bench_clone_reply samples/group_chat.txt Maya "${BUDGET:-60}" 200
else
  ./build/bench_clone_reply samples/group_chat.txt Maya "${BUDGET:-60}" 200
fi
