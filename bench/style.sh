#!/usr/bin/env bash
# Style-model benchmarks: retrieval search latency (p50/p95) and recall@10 of HNSW against the
# exact scan at N indexed examples, embedder cost (hash n-grams vs MiniLM, one at a time and
# batched), then pairs/masking/profile throughput on a synthetic export.
# Env: N (indexed examples, default 50000), QUERIES (default 500), MESSAGES (default 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all >/dev/null
bash tools/setup-minilm.sh >/dev/null 2>&1 || echo "(MiniLM not installed: its cost is skipped)"
# one BLAS thread: the numbers are per core, as the worker pool runs one query per core
OPENBLAS_NUM_THREADS=1 ./build/bench_retrieval "${N:-50000}" "${QUERIES:-500}"
echo
./build/bench_style_pairs "${MESSAGES:-200000}"
